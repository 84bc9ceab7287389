/* core/ utilities: status strings, error messages (library code never prints), precisions, the
 * oneDNN ISA, a thread's share of a parallel loop, whether an output goes past the caches and the
 * pass timers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn_internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void nn_thread_share(int n, int *lo, int *hi)
{
#ifdef _OPENMP
    const int th = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    const int th = 0, nth = 1;
#endif
    static const float none[NN_RATE_THREADS]; /* no rates: equal shares */
    nn_rate_share(none, n, th, nth, lo, hi);
}

void nn_rate_share(const float *rate, int n, int th, int nth, int *lo, int *hi)
{
    double w[NN_RATE_THREADS], total = 0, mean = 0;
    bool known = nth <= NN_RATE_THREADS;
    for (int i = 0; known && i < nth; i++)
        known = rate[i] > 0, mean += rate[i] / nth;
    if (!known) {
        *lo = (int)((long)n * th / nth);
        *hi = (int)((long)n * (th + 1) / nth);
        return;
    }
    for (int i = 0; i < nth; i++)
        total += w[i] = rate[i] > mean / 4 ? rate[i] : mean / 4;
    double cum = 0;
    for (int i = 0; i < th; i++)
        cum += w[i];
    *lo = (int)(n * (cum / total) + 0.5);
    *hi = th + 1 == nth ? n : (int)(n * ((cum + w[th]) / total) + 0.5);
}

double nn_wall(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0;
#endif
}

double nn_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nn_lap(nn_net *net, double *slot, double *t)
{
    if (!net->timing)
        return;
    dnnl_stream_wait(net->stream); /* a failure shows in the pass's own wait */
    const double now = nn_clock();
    *slot += now - *t;
    *t = now;
}

void nn_rate_note(float *rate, int th, int items, double seconds)
{
    if (th >= NN_RATE_THREADS || items <= 0 || !(seconds > 0))
        return;
    const double r = items / seconds;
    rate[th] = rate[th] > 0 ? (float)(0.5 * rate[th] + 0.5 * r) : (float)r;
}

bool nn_write_past_caches(size_t bytes)
{
    static long l2; /* the L2's size, once (sysconf asks cpuid, which a VM traps): every thread
                     * that reads 0 finds the same value */
    long size = __atomic_load_n(&l2, __ATOMIC_RELAXED);
    if (size == 0) {
        size = sysconf(_SC_LEVEL2_CACHE_SIZE);
        if (size <= 0) /* not reported: 1 MiB */
            size = 1L << 20;
        __atomic_store_n(&l2, size, __ATOMIC_RELAXED);
    }
    const char *env = getenv("DRSCH_L2_BYTES"); /* tests: the non-temporal paths on small data */
    if (env && *env) {
        char *end;
        const long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0)
            size = v;
    }
#ifdef _OPENMP
    const size_t threads = (size_t)omp_get_max_threads();
#else
    const size_t threads = 1;
#endif
    return bytes / threads > (size_t)size;
}

const char *nn_bytes_str(double bytes, char buf[32])
{
    if (bytes < 1e3)
        snprintf(buf, 32, "%.0f bytes", bytes);
    else if (bytes < 1e6)
        snprintf(buf, 32, "%.1f KB", bytes / 1e3);
    else if (bytes < 1e9)
        snprintf(buf, 32, "%.1f MB", bytes / 1e6);
    else
        snprintf(buf, 32, "%.2f GB", bytes / 1e9);
    return buf;
}

const char *nn_precision_name(nn_precision p)
{
    switch (p) {
    case NN_PRECISION_F32: return "f32";
    case NN_PRECISION_BF16: return "bf16";
    }
    return "unknown";
}

drsch_status nn_precision_parse(const char *name, nn_precision *out, drsch_error *err)
{
    static const nn_precision all[] = {NN_PRECISION_F32, NN_PRECISION_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && !strcmp(name, nn_precision_name(all[i]))) {
            *out = all[i];
            return DRSCH_OK;
        }
    return drsch_fail(err, DRSCH_ERR_ARG, "unknown precision '%s' (known: f32, bf16)",
                      name ? name : "(null)");
}

int nn_bf16_native(void)
{
    /* oneDNN's ISA values are feature masks: every ISA with bf16 instructions contains these bits.
     */
    const unsigned bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return ((unsigned)dnnl_get_effective_cpu_isa() & bf16) == bf16;
}

dnnl_dim_t nn_gemm_depth(const nn_layer *L)
{
    return L->spec.kind == NN_LAYER_FC ? (dnnl_dim_t)L->in_c * L->in_h * L->in_w
                                       : (dnnl_dim_t)L->in_c * L->spec.kernel * L->spec.kernel;
}

bool nn_onednn_avx512(void)
{
    const unsigned core = (unsigned)dnnl_cpu_isa_avx512_core;
    return ((unsigned)dnnl_get_effective_cpu_isa() & core) == core;
}

const char *nn_onednn_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    }
    return "unknown";
}

static const char *dnnl_status_name(dnnl_status_t st)
{
    switch (st) {
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    default: return "error";
    }
}

drsch_status nn_dnnl_fail(drsch_error *err, dnnl_status_t st, const char *what)
{
    const char *unloaded = dnnl_lazy_error();
    if (unloaded)
        return drsch_fail(err, DRSCH_ERR_DNNL, "%s: %s", what, unloaded);
    return drsch_fail(err, st == dnnl_out_of_memory ? DRSCH_ERR_NOMEM : DRSCH_ERR_DNNL,
                      "oneDNN %s: %s (status %d)", what, dnnl_status_name(st), (int)st);
}
