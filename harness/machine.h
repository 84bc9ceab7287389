/* The machine a result was measured on, as a reader of the result needs it, and the limits a
 * benchmark is measured against, measured in the same run rather than read from /proc/cpuinfo
 * (whose "cpu MHz" is a base or momentary clock, not the clock the cores run a loop at).
 *
 *   mc_describe        CPU model, logical CPUs, physical cores, memory, kernel, and the clock
 *                      measured by a chain of dependent integer adds (one add per cycle on every
 *                      x86-64 and AArch64 core drsch targets), ~30 ms.
 *   mc_fma_peak        the f32 multiply-add throughput the cores reach in a loop of independent
 *                      FMA chains at the widest vector width this CPU runs (AVX-512, AVX2+FMA,
 *                      NEON), with the given number of OpenMP threads: the peak a compute-bound
 *                      benchmark is a fraction of.
 *   mc_counters_*      hardware counters of this process and the threads it starts afterwards
 *                      (Linux perf_event_open, user space only): cycles, instructions, L1D and
 *                      last-level-cache read misses; or the reason they are unavailable
 *                      (perf_event_paranoid, a virtual machine without a PMU, a container).
 * Library code: never prints. */
#ifndef DRSCH_MACHINE_H
#define DRSCH_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char cpu_model[128];   /* "model name" (x86) or implementer/part (AArch64); "unknown" */
    int logical_cpus;      /* online */
    int physical_cores;    /* distinct (package, core) pairs; 0 when the kernel does not say */
    uint64_t memory_bytes; /* physical memory */
    char kernel[256];      /* uname: sysname release version */
    double clock_ghz;      /* measured; 0 when no measurement exists for this CPU architecture */
} mc_machine;

/* Fills m (never fails: what cannot be read is "unknown" or 0). */
DRSCH_API void mc_describe(mc_machine *m);
/* The clock one core runs a dependent add chain at, best of a few short runs; 0 if unavailable. */
DRSCH_API double mc_clock_ghz(void);

typedef struct {
    double gflops;   /* f32 flops per second (a multiply-add = 2), all threads, x 1e-9 */
    int threads;     /* threads that ran the loop */
    int lanes;       /* f32 lanes of one FMA: 16 (AVX-512), 8 (AVX2), 4 (NEON), 1 (scalar) */
    const char *isa; /* "avx512", "avx2+fma", "neon" or "scalar" */
    double seconds;  /* time the measurement took */
} mc_peak;

/* Measures the f32 FMA peak with `threads` OpenMP threads (0 = omp_get_max_threads) for about
 * `seconds` (0.05 to 10). */
DRSCH_API drsch_status mc_fma_peak(int threads, double seconds, mc_peak *out, drsch_error *err);

/* ---- hardware counters ------------------------------------------------------------------- */
enum { MC_CYCLES, MC_INSTRUCTIONS, MC_L1D_MISSES, MC_LLC_MISSES, MC_NCOUNTERS };

typedef struct mc_counters mc_counters;
typedef struct {
    double value[MC_NCOUNTERS]; /* events between mc_counters_start and mc_counters_stop */
    int have[MC_NCOUNTERS];     /* 0: that counter could not be opened (value 0) */
} mc_counts;

/* Opens the counters for the calling process, inherited by the threads it creates afterwards:
 * call it before the first OpenMP parallel region that should be counted. NULL only when out of
 * memory. A counter that cannot be opened is left out; mc_counters_unavailable says why. */
DRSCH_API mc_counters *mc_counters_open(void);
/* NULL when cycles and instructions are counted, else one line: why they are not. The functions
 * below accept c == NULL (nothing counted). */
DRSCH_API const char *mc_counters_unavailable(const mc_counters *c);
DRSCH_API const char *mc_counter_name(int which); /* "cycles", "instructions", ... */
DRSCH_API void mc_counters_start(mc_counters *c);
DRSCH_API void mc_counters_stop(mc_counters *c, mc_counts *out);
DRSCH_API void mc_counters_close(mc_counters *c);

#ifdef __cplusplus
}
#endif

#endif
