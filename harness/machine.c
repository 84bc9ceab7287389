/* The machine's description and its measured limits (machine.h). The loops are written so that
 * the compiler cannot shorten them: the add chain is inline assembly, the FMA chains feed a sum
 * that is returned. */
#define _GNU_SOURCE
#include "machine.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- description ------------------------------------------------------------------------- */

/* The value after "key<spaces>: " of the first /proc/cpuinfo line starting with key. */
static int cpuinfo_value(const char *key, char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    size_t kl = strlen(key);
    while (!found && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, key, kl) != 0 || !colon || (line[kl] != ' ' && line[kl] != '\t'))
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        snprintf(out, cap, "%s", v);
        found = 1;
    }
    fclose(f);
    return found;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Distinct (package, core) pairs over the online CPUs' sysfs topology; 0 if unreadable. */
static int physical_cores(int logical)
{
    enum { MAX_PAIRS = 4096 };
    long(*pairs)[2] =
        malloc(sizeof(long[2]) * (size_t)(logical < MAX_PAIRS ? logical : MAX_PAIRS) + 1);
    if (!pairs)
        return 0;
    int n = 0;
    for (int c = 0; c < logical && c < MAX_PAIRS; c++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
        long core = read_long(path);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 c);
        long pkg = read_long(path);
        if (core < 0 || pkg < 0) {
            free(pairs);
            return 0;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = pairs[i][0] == pkg && pairs[i][1] == core;
        if (!seen) {
            pairs[n][0] = pkg;
            pairs[n][1] = core;
            n++;
        }
    }
    free(pairs);
    return n;
}

double mc_clock_ghz(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
    /* A chain of dependent register-register adds: one a cycle on every core of these
     * architectures. Not "add $1": Intel's cores since Golden Cove (Sapphire Rapids, Alder Lake)
     * fold an add of a small immediate into the register renamer, so a chain of them runs at
     * several a cycle (19 GHz "measured" on a 3.6 GHz Xeon). The increment comes from memory
     * through a volatile, so nothing knows its value before the loop runs. */
    const long iters = 2000000; /* x 16 adds: 32 M cycles, ~10 ms at 3 GHz */
    static volatile uint64_t one = 1;
    const uint64_t inc = one;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t x = 0;
        double t0 = now_s();
        for (long i = 0; i < iters; i++) {
#if defined(__x86_64__)
#define ADD1 "add %1, %0\n\t"
#else
#define ADD1 "add %0, %0, %1\n\t"
#endif
            __asm__ volatile(
                ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1
                : "+r"(x)
                : "r"(inc));
#undef ADD1
        }
        double t = now_s() - t0;
        if (x != (uint64_t)iters * 16 || t <= 0)
            return 0;
        double ghz = 16.0 * (double)iters / t * 1e-9;
        if (ghz > best)
            best = ghz;
    }
    return best;
#else
    return 0;
#endif
}

void mc_describe(mc_machine *m)
{
    memset(m, 0, sizeof *m);
    if (!cpuinfo_value("model name", m->cpu_model, sizeof m->cpu_model)) {
        char impl[32] = "", part[32] = "";
        if (cpuinfo_value("CPU implementer", impl, sizeof impl) &&
            cpuinfo_value("CPU part", part, sizeof part))
            snprintf(m->cpu_model, sizeof m->cpu_model, "implementer %s part %s", impl, part);
        else
            snprintf(m->cpu_model, sizeof m->cpu_model, "unknown");
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    m->logical_cpus = online > 0 ? (int)online : 0;
    m->physical_cores = physical_cores(m->logical_cpus);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    struct utsname un;
    if (uname(&un) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", un.sysname, un.release, un.version);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
    m->clock_ghz = mc_clock_ghz();
}

/* ---- FMA peak ---------------------------------------------------------------------------- */

/* Each loop runs CH independent chains of a = a * m + c (m just under 1, so values stay finite)
 * for iters iterations and returns the sum of the chains, so that none can be removed. CH = 12
 * covers 2 FMA units x a latency of up to 6 cycles. */
enum { CH = 12 };

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
    __m512 a[CH];
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < CH; j++)
        a[j] = _mm512_set1_ps(1.0f + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < CH; j++)
            a[j] = _mm512_fmadd_ps(a[j], m, c);
    __m512 s = a[0];
    for (int j = 1; j < CH; j++)
        s = _mm512_add_ps(s, a[j]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
    __m256 a[CH];
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < CH; j++)
        a[j] = _mm256_set1_ps(1.0f + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < CH; j++)
            a[j] = _mm256_fmadd_ps(a[j], m, c);
    __m256 s = a[0];
    for (int j = 1; j < CH; j++)
        s = _mm256_add_ps(s, a[j]);
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}
#elif defined(__aarch64__)
static float fma_neon(long iters)
{
    float32x4_t a[CH];
    const float32x4_t m = vdupq_n_f32(0.9999999f), c = vdupq_n_f32(1e-7f);
    for (int j = 0; j < CH; j++)
        a[j] = vdupq_n_f32(1.0f + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < CH; j++)
            a[j] = vfmaq_f32(c, a[j], m);
    float32x4_t s = a[0];
    for (int j = 1; j < CH; j++)
        s = vaddq_f32(s, a[j]);
    return vaddvq_f32(s);
}
#endif

static float fma_scalar(long iters)
{
    float a[CH];
    for (int j = 0; j < CH; j++)
        a[j] = 1.0f + (float)j;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < CH; j++)
            a[j] = fmaf(a[j], 0.9999999f, 1e-7f);
    float s = 0;
    for (int j = 0; j < CH; j++)
        s += a[j];
    return s;
}

typedef float (*fma_loop)(long);

static fma_loop pick_loop(int *lanes, const char **isa)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *lanes = 16, *isa = "avx512";
        return fma_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *lanes = 8, *isa = "avx2+fma";
        return fma_avx2;
    }
#elif defined(__aarch64__)
    *lanes = 4, *isa = "neon";
    return fma_neon;
#endif
    *lanes = 1, *isa = "scalar";
    return fma_scalar;
}

/* Seconds all threads take to run loop(iters) each, started together. */
static double run_loop(fma_loop loop, long iters, int threads, float *sink)
{
    float total = 0;
    double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += loop(iters);
    double t = now_s() - t0;
    *sink += total;
    return t;
}

drsch_status mc_fma_peak(int threads, double seconds, mc_peak *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    if (threads < 0 || threads > 1024)
        return drsch_fail(err, DRSCH_ERR_RANGE, "FMA peak: %d threads is outside 0..1024", threads);
    if (!(seconds >= 0.05 && seconds <= 10))
        return drsch_fail(err, DRSCH_ERR_RANGE, "FMA peak: %g s is outside 0.05..10", seconds);
    if (threads == 0)
        threads = omp_get_max_threads();
    int lanes;
    const char *isa;
    fma_loop loop = pick_loop(&lanes, &isa);
    float sink = 0;
    /* Calibrate on a short run (which also wakes the threads), then time the rest in 3 parts and
     * keep the fastest: the machine may be shared. */
    long iters = 100000;
    double t = run_loop(loop, iters, threads, &sink);
    while (t < 0.01 && iters < (1L << 40)) {
        iters *= 4;
        t = run_loop(loop, iters, threads, &sink);
    }
    long part = (long)((double)iters * (seconds / 3) / (t > 0 ? t : 1e-3));
    if (part < 1000)
        part = 1000;
    double best = 1e300, t0 = now_s();
    for (int rep = 0; rep < 3; rep++) {
        double tr = run_loop(loop, part, threads, &sink);
        if (tr < best)
            best = tr;
    }
    if (!isfinite(sink) || !(best > 0))
        return drsch_fail(err, DRSCH_ERR_NUMERIC, "FMA peak: the timing loop gave no usable time");
    out->gflops = (double)part * CH * lanes * 2 * threads / best * 1e-9;
    out->threads = threads;
    out->lanes = lanes;
    out->isa = isa;
    out->seconds = now_s() - t0 + t;
    return DRSCH_OK;
}
