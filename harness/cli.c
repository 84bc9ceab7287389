/* Strict option parsing and small process helpers for the drsch commands. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

int cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi,
                  int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "drsch %s: %s: '%s' is not an integer\n", cmd, flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        /* A bound of 2^31 or more is "no bound" to a person: say "at least lo" then. */
        if (hi >= INT32_MAX && v < lo)
            fprintf(stderr, "drsch %s: %s: %lld is out of range: it must be at least %lld\n", cmd,
                    flag, v, (long long)lo);
        else if (hi >= INT32_MAX)
            fprintf(stderr, "drsch %s: %s: %lld is out of range: it must be at most %lld\n", cmd,
                    flag, v, (long long)hi);
        else
            fprintf(stderr, "drsch %s: %s: %lld is out of range: it must be %lld to %lld\n", cmd,
                    flag, v, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "drsch %s: %s: '%s' is not a finite number\n", cmd, flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        if (hi >= 1e30 && v < lo)
            fprintf(stderr, "drsch %s: %s: %g is out of range: it must be at least %g\n", cmd, flag,
                    v, lo);
        else if (hi >= 1e30)
            fprintf(stderr, "drsch %s: %s: %g is out of range: it must be at most %g\n", cmd, flag,
                    v, hi);
        else
            fprintf(stderr, "drsch %s: %s: %g is out of range: it must be %g to %g\n", cmd, flag, v,
                    lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_precision(const char *cmd, const char *s, nn_precision *out)
{
    drsch_error err;
    if (nn_precision_parse(s, out, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: --precision: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

void cli_note_precision(const char *cmd, nn_precision p)
{
    if (p == NN_PRECISION_BF16 && !nn_bf16_native())
        fprintf(stderr,
                "drsch %s: note: oneDNN's ISA here is %s, without bf16 instructions; bf16 runs "
                "emulated "
                "(bf16 results, slower than f32)\n",
                cmd, nn_onednn_isa());
}

#ifdef DRSCH_HAVE_OPENMP
static int env_threads; /* OMP_NUM_THREADS's count when it was above CLI_THREADS_MAX, else 0 */
#endif

void cli_threads_init(void)
{
#ifdef DRSCH_HAVE_OPENMP
    static int done;
    if (done)
        return;
    done = 1;
    /* Without --threads the OpenMP default is OMP_NUM_THREADS, which nothing bounds: 100000 makes
     * the runtime fail to start its threads (search and eval crashed). The same limit as --threads.
     */
    int n = omp_get_max_threads();
    if (n > CLI_THREADS_MAX) {
        env_threads = n;
        omp_set_num_threads(CLI_THREADS_MAX);
    }
#endif
}

int cli_set_threads(int threads)
{
#ifdef DRSCH_HAVE_OPENMP
    cli_threads_init();
    if (threads > 0)
        omp_set_num_threads(threads < CLI_THREADS_MAX ? threads : CLI_THREADS_MAX);
    int n = omp_get_max_threads();
    /* More threads than cores: OpenMP threads spin then sleep at every barrier waiting for threads
     * that are not running, which made training 50x slower with 64 threads on 2 cores. Said once.
     */
    static int warned;
    int cores = omp_get_num_procs();
    if (!warned && n > cores) {
        warned = 1;
        char from[64] = "";
        if (threads <= 0 && env_threads)
            snprintf(from, sizeof from, " (OMP_NUM_THREADS=%d, at most %d)", env_threads,
                     CLI_THREADS_MAX);
        fprintf(
            stderr,
            "drsch: warning: %d threads%s on %d cores: OpenMP threads will wait for each other; "
            "use --threads %d\n",
            n, from, cores, cores);
    }
    return n;
#else
    (void)threads;
    return 1;
#endif
}

int cli_max_threads(void)
{
#ifdef DRSCH_HAVE_OPENMP
    cli_threads_init();
    return omp_get_max_threads();
#else
    return 1;
#endif
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_plant_slowdown(double factor, double t0)
{
    if (factor <= 1)
        return;
    const double real = cli_now() - t0;
    while (cli_now() - t0 < real * factor)
        ;
}

double cli_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes of the first line of the /proc file `path` that `line_format` ("Key: %lf kB") reads; -1
 * when the file cannot be read or has no such line. */
static double proc_kb_bytes(const char *path, const char *line_format)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, line_format, &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024.0;
}

double cli_mem_available(void)
{
    double b = proc_kb_bytes("/proc/meminfo", "MemAvailable: %lf kB");
    return b < 0 ? 0 : b;
}

/* The high-water mark of this program's own memory, VmHWM of /proc/self/status. Not getrusage's
 * ru_maxrss: Linux carries that across execve, so a drsch started by a program with a large
 * resident set (a Python benchmark holding FAISS's index, say) reported the parent's peak as its
 * own. getrusage only where /proc is not mounted. */
double cli_max_rss(void)
{
    double b = proc_kb_bytes("/proc/self/status", "VmHWM: %lf kB");
    if (b >= 0)
        return b;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss * 1024.0; /* Linux reports kilobytes */
}

int cli_check_memory(const char *cmd, const char *what, double need_bytes)
{
    double avail = cli_mem_available();
    if (avail > 0 && need_bytes > avail) {
        fprintf(stderr, "drsch %s: %s needs %.2f GiB of memory but only %.2f GiB are available\n",
                cmd, what, need_bytes / (1 << 30), avail / (1 << 30));
        return -1;
    }
    return 0;
}

int cli_usage_error(const char *cmd)
{
    fprintf(stderr, "drsch %s: invalid usage; see 'drsch %s --help'\n", cmd, cmd);
    return EXIT_USAGE;
}

/* The folder of `path` ("." when it has none) into buf; 0, or -1 when it does not fit. */
static int folder_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(buf, size, ".") < (int)size ? 0 : -1;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= size)
        return -1;
    memcpy(buf, path, len);
    buf[len] = '\0';
    return 0;
}

/* Creates and removes a probe file in `dir`; 0 when that worked, else errno. */
static int probe_folder(const char *dir)
{
    char probe[4096];
    if (snprintf(probe, sizeof probe, "%s/.drsch-probe.%ld", dir, (long)getpid()) >=
        (int)sizeof probe)
        return ENAMETOOLONG;
    FILE *f = fopen(probe, "w");
    if (!f)
        return errno;
    fclose(f);
    remove(probe);
    return 0;
}

/* Checks the folder an output goes into: exists, is a folder, takes a new file. */
static int check_folder(const char *cmd, const char *flag, const char *path, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "drsch %s: %s %s: folder '%s' %s\n", cmd, flag, path, dir,
                errno == ENOENT ? "does not exist" : strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "drsch %s: %s %s: '%s' is not a folder\n", cmd, flag, path, dir);
        return -1;
    }
    int e = probe_folder(dir);
    if (e) {
        fprintf(stderr, "drsch %s: %s %s: cannot create files in '%s': %s\n", cmd, flag, path, dir,
                strerror(e));
        return -1;
    }
    return 0;
}

static int check_output(const char *cmd, const char *flag, const char *path, int is_prefix)
{
    const char *what = is_prefix ? "prefix" : "file name";
    if (!path || !path[0]) {
        fprintf(stderr, "drsch %s: %s: the %s is empty\n", cmd, flag, what);
        return -1;
    }
    size_t len = strlen(path);
    struct stat st;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (path[len - 1] == '/' && !is_dir) {
        fprintf(stderr, "drsch %s: %s %s: ends with '/'; give a %s inside the folder, e.g. %s%s\n",
                cmd, flag, path, what, path, is_prefix ? "codes" : "out");
        return -1;
    }
    if (is_dir) {
        if (is_prefix)
            fprintf(stderr,
                    "drsch %s: %s %s: is a directory; give a prefix inside it, e.g. %s%scodes\n",
                    cmd, flag, path, path, path[len - 1] == '/' ? "" : "/");
        else
            fprintf(stderr, "drsch %s: %s %s: is a directory; give a file name\n", cmd, flag, path);
        return -1;
    }
    /* /dev/null, /dev/stdout, a FIFO: written in place, never replaced (fileio.h) */
    if (!is_prefix && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (access(path, W_OK) != 0) {
            fprintf(stderr, "drsch %s: %s %s: cannot write: %s\n", cmd, flag, path,
                    strerror(errno));
            return -1;
        }
        return 0;
    }
    /* a link's target is what gets replaced: its folder takes the temporary file */
    char target[PATH_MAX];
    const char *where = path;
    struct stat lst;
    if (!is_prefix && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) && realpath(path, target))
        where = target;
    char dir[4096];
    if (folder_of(where, dir, sizeof dir)) {
        fprintf(stderr, "drsch %s: %s: the path is too long\n", cmd, flag);
        return -1;
    }
    return check_folder(cmd, flag, path, dir);
}

int cli_check_output_file(const char *cmd, const char *flag, const char *path)
{
    return check_output(cmd, flag, path, 0);
}

int cli_check_output_prefix(const char *cmd, const char *flag, const char *prefix)
{
    return check_output(cmd, flag, prefix, 1);
}

/* mkdir -p */
static int make_folders(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir);
    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int cli_check_output_dir(const char *cmd, const char *flag, const char *dir)
{
    if (!dir || !dir[0]) {
        fprintf(stderr, "drsch %s: %s: the folder name is empty\n", cmd, flag);
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "drsch %s: %s %s: exists and is not a folder\n", cmd, flag, dir);
        return -1;
    }
    if (make_folders(dir) != 0) {
        fprintf(stderr, "drsch %s: %s %s: cannot create the folder: %s\n", cmd, flag, dir,
                strerror(errno));
        return -1;
    }
    return check_folder(cmd, flag, dir, dir);
}

void cli_report_counters(rp_report *r, rp_entry *e, const mc_counters *c, const mc_counts *k,
                         double runs)
{
    const char *why = mc_counters_unavailable(c);
    if (why) {
        char line[320];
        snprintf(line, sizeof line, "unavailable: %s", why);
        rp_context_set(r, "hw_counters", line);
        return;
    }
    rp_context_set(r, "hw_counters",
                   "per timed run, this process's threads, user space (Linux perf_event_open): "
                   "cycles, instructions, ipc, l1d_misses (L1 data read misses), llc_misses "
                   "(last-level cache read misses); a counter the CPU lacks is left out");
    for (int i = 0; i < MC_NCOUNTERS; i++)
        if (k->have[i])
            rp_counter(e, mc_counter_name(i), k->value[i] / runs);
    if (k->have[MC_CYCLES] && k->have[MC_INSTRUCTIONS] && k->value[MC_CYCLES] > 0)
        rp_counter(e, "ipc", k->value[MC_INSTRUCTIONS] / k->value[MC_CYCLES]);
}
