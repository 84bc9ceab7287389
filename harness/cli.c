/* Strict option parsing and small process helpers for the drsch commands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "commands.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

int cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "drsch %s: %s: '%s' is not an integer\n", cmd, flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "drsch %s: %s: %lld is out of range [%lld, %lld]\n", cmd, flag, v,
                (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f64(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "drsch %s: %s: '%s' is not a finite number\n", cmd, flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "drsch %s: %s: %g is out of range [%g, %g]\n", cmd, flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_precision(const char *cmd, const char *s, nn_precision *out)
{
    nn_error err;
    if (nn_precision_parse(s, out, &err) != NN_OK) {
        fprintf(stderr, "drsch %s: --precision: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

void cli_note_precision(const char *cmd, nn_precision p)
{
    if (p == NN_PRECISION_BF16 && !nn_bf16_native())
        fprintf(stderr, "drsch %s: note: oneDNN's ISA here is %s, without bf16 instructions; bf16 runs emulated "
                        "(bf16 results, slower than f32)\n", cmd, nn_onednn_isa());
}

int cli_set_threads(int threads)
{
#ifdef DRSCH_HAVE_OPENMP
    if (threads > 0)
        omp_set_num_threads(threads);
    return omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

int cli_max_threads(void)
{
#ifdef DRSCH_HAVE_OPENMP
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

double cli_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024.0;
}

double cli_max_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss * 1024.0; /* Linux reports kilobytes */
}

int cli_check_memory(const char *cmd, const char *what, double need_bytes)
{
    double avail = cli_mem_available();
    if (avail > 0 && need_bytes > avail) {
        fprintf(stderr, "drsch %s: %s needs %.2f GiB of memory but only %.2f GiB are available\n", cmd, what,
                need_bytes / (1 << 30), avail / (1 << 30));
        return -1;
    }
    return 0;
}

int cli_usage_error(const char *cmd)
{
    fprintf(stderr, "drsch %s: invalid usage; see 'drsch %s --help'\n", cmd, cmd);
    return EXIT_USAGE;
}
