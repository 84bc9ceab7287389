/* Reports: Google Benchmark-compatible JSON (libbenchmark 1.7 schema: "context" + "benchmarks"
 * with name, run_name, run_type, repetitions, repetition_index, threads, iterations, real_time,
 * cpu_time, time_unit and user counters), written with cJSON so that Google Benchmark's
 * compare.py reads drsch's files. The context also records what is needed to rerun a report:
 * drsch version, git commit, compiler and flags, active ISA, threads; callers add seed, dataset,
 * protocol, tie rule with rp_context_set. Library code: never prints; rp_write is atomic. */
#ifndef DRSCH_REPORT_H
#define DRSCH_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rp_report rp_report;
/* An entry is the cJSON object of one benchmark (cJSON's own API may add fields to it). */
struct cJSON;
typedef struct cJSON rp_entry;

/* A report with the standard context filled in (date, host_name, executable, num_cpus,
 * mhz_per_cpu, cpu_scaling_enabled, caches, load_avg, library_build_type), the machine (cpu_model,
 * num_cores, memory_bytes, kernel, cpu_ghz_measured: machine.h) and drsch's own
 * fields (drsch_version, git_commit, compiler, compiler_flags, isa, isa_best, threads,
 * onednn_version; isa_limits when rp_isa_limits finds any). */
DRSCH_API rp_report *rp_create(void);
/* The environment variables that hold this process's kernels below the CPU's best, as
 * "DRSCH_FORCE_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2" (drsch's own and oneDNN's, set and non-empty):
 * figures made so are those of a lesser CPU and their report says so. Returns 0 (buf "") when
 * none is set. */
DRSCH_API int rp_isa_limits(char *buf, size_t cap);
DRSCH_API void rp_free(rp_report *r);
DRSCH_API void rp_context_set(rp_report *r, const char *key, const char *value);
DRSCH_API void rp_context_set_num(rp_report *r, const char *key, double value);

/* One benchmark entry ("run_type": "iteration"). time_unit: "ns", "us", "ms" or "s". The
 * returned entry stays owned by the report; add user counters to it. */
DRSCH_API rp_entry *rp_add(rp_report *r, const char *name, int64_t iterations, double real_time,
                           double cpu_time, const char *time_unit, int threads);
DRSCH_API void rp_counter(rp_entry *e, const char *name, double value);
/* Turns e (added with rp_add, its counters and label set) into n repetitions as Google Benchmark's
 * --benchmark_repetitions writes them: e becomes repetition 0 (iterations 1, real_time times[0]),
 * copies of it repetitions 1..n-1 with times[i] (the counters are copied: they describe the run
 * as a whole), then the aggregates NAME_mean, NAME_median, NAME_stddev (sample) and NAME_cv
 * (run_type "aggregate", run_name NAME). times are in e's time_unit; each cpu_time is the
 * real_time times the threads. Nothing changes when n < 2. */
DRSCH_API void rp_repetitions(rp_report *r, rp_entry *e, const double *times, int n);
DRSCH_API void rp_label(rp_entry *e, const char *label);
/* The report's JSON text (caller frees with free()); for tests and stdout. */
DRSCH_API char *rp_print(const rp_report *r);

/* prog and the arguments argv[0..argc) as one line, each argument quoted ('...') where a shell
 * would need it: what a report records as the command that produced it (cut at cap - 1 bytes). */
DRSCH_API void rp_command_line(const char *prog, int argc, char *const *argv, char *out,
                               size_t cap);

/* Writes the report to path via a temporary file and rename(2). */
DRSCH_API drsch_status rp_write(const rp_report *r, const char *path, drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
