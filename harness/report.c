/* Google Benchmark-compatible JSON reports (see report.h). The context mirrors what
 * libbenchmark 1.7 writes (so its compare.py accepts our files) plus drsch's reproducibility
 * fields. Written with cJSON; saved atomically. */
#include "report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "hamming.h"
#include "machine.h"
#include "nn.h"
#include "version.h"

#include "dnnl_lazy.h" /* oneDNN, loaded on first use */
#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

struct rp_report {
    cJSON *root, *context, *benchmarks;
    int n_entries;
};

/* The OpenMP threads of this process (1 without OpenMP). */
static int max_threads(void)
{
#ifdef DRSCH_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static long read_long_file(const char *path, long fallback)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fallback;
    long v = fallback;
    char buf[64];
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        long x = strtol(buf, &end, 10);
        if (end != buf) {
            v = x;
            if (*end == 'K')
                v *= 1024;
            else if (*end == 'M')
                v *= 1024 * 1024;
        }
    }
    fclose(f);
    return v;
}

static void read_str_file(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* CPU caches as libbenchmark reports them, from sysfs of cpu0. */
static cJSON *caches_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < 8; i++) {
        char path[128], type[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        read_str_file(path, type, sizeof type);
        if (!type[0])
            break;
        if (!strcmp(type, "Instruction"))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        long level = read_long_file(path, 0);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        long size = read_long_file(path, 0);
        char shared[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_list",
                 i);
        read_str_file(path, shared, sizeof shared);
        int sharing = 1;
        int a, b;
        if (sscanf(shared, "%d-%d", &a, &b) == 2)
            sharing = b - a + 1;
        else
            for (char *p = shared; *p; p++)
                sharing += *p == ',';
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", type);
        cJSON_AddNumberToObject(c, "level", (double)level);
        cJSON_AddNumberToObject(c, "size", (double)size);
        cJSON_AddNumberToObject(c, "num_sharing", sharing);
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

static double cpu_mhz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0;
    if (!f)
        return 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            char *colon = strchr(line, ':');
            if (colon)
                mhz = atof(colon + 1);
            break;
        }
    fclose(f);
    return mhz;
}

int rp_isa_limits(char *buf, size_t cap)
{
    static const char *const vars[] = {"DRSCH_FORCE_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"};
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v && k < cap)
            k += (size_t)snprintf(buf + k, cap - k, "%s%s=%s", k ? " " : "", vars[i], v);
    }
    return buf[0] != '\0';
}

rp_report *rp_create(void)
{
    rp_report *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->root = cJSON_CreateObject();
    r->context = cJSON_AddObjectToObject(r->root, "context");
    r->benchmarks = cJSON_AddArrayToObject(r->root, "benchmarks");
    if (!r->root || !r->context || !r->benchmarks) {
        rp_free(r);
        return NULL;
    }
    char buf[512];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
    cJSON_AddStringToObject(r->context, "date", buf);
    if (gethostname(buf, sizeof buf) != 0)
        strcpy(buf, "unknown");
    buf[sizeof buf - 1] = '\0';
    cJSON_AddStringToObject(r->context, "host_name", buf);
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    cJSON_AddStringToObject(r->context, "executable", buf);
    cJSON_AddNumberToObject(r->context, "num_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(r->context, "mhz_per_cpu", (double)(long)cpu_mhz());
    /* The machine as a reader needs it (mhz_per_cpu above is /proc/cpuinfo's, kept for Google
     * Benchmark's tools; the measured clock is the one loops run at). */
    mc_machine m;
    mc_describe(&m);
    cJSON_AddStringToObject(r->context, "cpu_model", m.cpu_model);
    cJSON_AddNumberToObject(r->context, "num_cores", m.physical_cores);
    cJSON_AddNumberToObject(r->context, "memory_bytes", (double)m.memory_bytes);
    cJSON_AddStringToObject(r->context, "kernel", m.kernel);
    cJSON_AddNumberToObject(r->context, "cpu_ghz_measured", round(m.clock_ghz * 1000) / 1000);
    char gov[64];
    read_str_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", gov, sizeof gov);
    cJSON_AddBoolToObject(r->context, "cpu_scaling_enabled",
                          gov[0] && strcmp(gov, "performance") != 0);
    cJSON_AddItemToObject(r->context, "caches", caches_json());
    double load[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = load[1] = load[2] = 0;
        fclose(f);
    }
    cJSON_AddItemToObject(r->context, "load_avg", cJSON_CreateDoubleArray(load, 3));
    cJSON_AddStringToObject(r->context, "library_build_type",
                            strcmp(drsch_build_type(), "Debug") ? "release" : "debug");
    cJSON_AddStringToObject(r->context, "drsch_version", drsch_version());
    cJSON_AddStringToObject(r->context, "git_commit", drsch_git_commit());
    cJSON_AddStringToObject(r->context, "compiler", drsch_compiler());
    cJSON_AddStringToObject(r->context, "compiler_flags", drsch_compiler_flags());
    cJSON_AddStringToObject(r->context, "build_type", drsch_build_type());
    drsch_error err;
    hm_isa_init(&err);
    cJSON_AddStringToObject(r->context, "isa", hm_isa_name(hm_isa_active()));
    cJSON_AddStringToObject(r->context, "isa_best", hm_isa_name(hm_isa_best()));
    char limits[256];
    if (rp_isa_limits(limits, sizeof limits))
        cJSON_AddStringToObject(r->context, "isa_limits", limits);
    cJSON_AddNumberToObject(r->context, "threads", max_threads());
    const dnnl_version_t *dv = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", dv->major, dv->minor, dv->patch);
    cJSON_AddStringToObject(r->context, "onednn_version", buf);
    /* oneDNN's kernels (and so the last bits of every trained weight) depend on its ISA. */
    cJSON_AddStringToObject(r->context, "onednn_isa", nn_onednn_isa());
    return r;
}

void rp_free(rp_report *r)
{
    if (!r)
        return;
    cJSON_Delete(r->root);
    free(r);
}

void rp_context_set(rp_report *r, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(r->context, key);
    cJSON_AddStringToObject(r->context, key, value);
}

void rp_context_set_num(rp_report *r, const char *key, double value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(r->context, key);
    cJSON_AddNumberToObject(r->context, key, value);
}

rp_entry *rp_add(rp_report *r, const char *name, int64_t iterations, double real_time,
                 double cpu_time, const char *time_unit, int threads)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddNumberToObject(e, "family_index", r->n_entries);
    cJSON_AddNumberToObject(e, "per_family_instance_index", 0);
    cJSON_AddStringToObject(e, "run_name", name);
    cJSON_AddStringToObject(e, "run_type", "iteration");
    cJSON_AddNumberToObject(e, "repetitions", 1);
    cJSON_AddNumberToObject(e, "repetition_index", 0);
    cJSON_AddNumberToObject(e, "threads", threads);
    cJSON_AddNumberToObject(e, "iterations", (double)iterations);
    cJSON_AddNumberToObject(e, "real_time", real_time);
    cJSON_AddNumberToObject(e, "cpu_time", cpu_time);
    cJSON_AddStringToObject(e, "time_unit", time_unit);
    cJSON_AddItemToArray(r->benchmarks, e);
    r->n_entries++;
    return e;
}

static void set_num(cJSON *e, const char *key, double v)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(e, key);
    if (it)
        cJSON_SetNumberValue(it, v);
    else
        cJSON_AddNumberToObject(e, key, v);
}

static cJSON *aggregate(const cJSON *e, const char *agg, const char *unit, double v, int n)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
    const cJSON *tu = cJSON_GetObjectItemCaseSensitive(e, "time_unit");
    double threads = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "threads"));
    char full[600];
    snprintf(full, sizeof full, "%s_%s", name ? name : "", agg);
    cJSON *a = cJSON_CreateObject();
    if (!a)
        return NULL;
    cJSON_AddStringToObject(a, "name", full);
    cJSON_AddItemToObject(a, "family_index",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e, "family_index"), 0));
    cJSON_AddNumberToObject(a, "per_family_instance_index", 0);
    cJSON_AddStringToObject(a, "run_name", name ? name : "");
    cJSON_AddStringToObject(a, "run_type", "aggregate");
    cJSON_AddNumberToObject(a, "repetitions", n);
    cJSON_AddNumberToObject(a, "threads", threads);
    cJSON_AddStringToObject(a, "aggregate_name", agg);
    cJSON_AddStringToObject(a, "aggregate_unit", unit);
    cJSON_AddNumberToObject(a, "iterations", n);
    cJSON_AddNumberToObject(a, "real_time", v);
    cJSON_AddNumberToObject(a, "cpu_time", strcmp(unit, "time") ? v : v * threads);
    cJSON_AddStringToObject(a, "time_unit", tu && cJSON_IsString(tu) ? tu->valuestring : "ns");
    return a;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rp_repetitions(rp_report *r, rp_entry *e, const double *times, int n)
{
    if (n < 2)
        return;
    double threads = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "threads"));
    for (int i = 0; i < n; i++) {
        cJSON *x = i ? cJSON_Duplicate(e, 1) : e;
        if (!x)
            return; /* out of memory: the repetitions so far, no aggregates */
        set_num(x, "repetitions", n);
        set_num(x, "repetition_index", i);
        set_num(x, "iterations", 1);
        set_num(x, "real_time", times[i]);
        set_num(x, "cpu_time", times[i] * threads);
        if (i)
            cJSON_AddItemToArray(r->benchmarks, x);
    }
    double *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted)
        return;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += sorted[i] = times[i];
    double mean = sum / n;
    for (int i = 0; i < n; i++)
        sq += (times[i] - mean) * (times[i] - mean);
    double sd = sqrt(sq / (n - 1)); /* the sample standard deviation, as Google Benchmark's */
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    free(sorted);
    cJSON *aggs[4] = {aggregate(e, "mean", "time", mean, n),
                      aggregate(e, "median", "time", median, n),
                      aggregate(e, "stddev", "time", sd, n),
                      aggregate(e, "cv", "percentage", mean > 0 ? sd / mean : 0, n)};
    for (int i = 0; i < 4; i++)
        if (aggs[i])
            cJSON_AddItemToArray(r->benchmarks, aggs[i]);
}

void rp_counter(rp_entry *e, const char *name, double value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(e, name);
    cJSON_AddNumberToObject(e, name, value);
}

void rp_label(rp_entry *e, const char *label)
{
    cJSON_DeleteItemFromObjectCaseSensitive(e, "label");
    cJSON_AddStringToObject(e, "label", label);
}

char *rp_print(const rp_report *r) { return cJSON_Print(r->root); }

drsch_status rp_write(const rp_report *r, const char *path, drsch_error *err)
{
    char *text = cJSON_Print(r->root);
    if (!text) {
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory formatting the report", path);
    }
    /* through fileio.h: the old file or the new one, never half of one; /dev/null stays a device */
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print's terminator becomes the final newline */
    drsch_status st = fio_write_file(path, text, len + 1, 0, err);
    free(text);
    return st;
}

void rp_command_line(const char *prog, int argc, char *const *argv, char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "%s", prog);
    for (int i = 0; i < argc && k < cap; i++) {
        const char *a = argv[i];
        int quote = !*a || a[strcspn(a, " \t'\"$`\\|&;<>()*?[]{}~#!")] != '\0';
        k += (size_t)snprintf(out + k, cap - k, quote ? " '%s'" : " %s", a);
    }
}
