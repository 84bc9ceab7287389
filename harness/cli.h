/* Small helpers shared by the command implementations: strict number parsing (a whole string,
 * in range, or an error naming the flag), thread selection, wall clock. */
#ifndef DRSCH_CLI_H
#define DRSCH_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "machine.h"
#include "nn.h"
#include "report.h"

/* Parse the whole of `s` as an integer in [lo, hi]; on failure print
 * "drsch <cmd>: --flag: ..." to stderr and return -1. */
int cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi,
                  int64_t *out);
int cli_parse_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out);
/* The most threads a command runs: the range of --threads is 0..CLI_THREADS_MAX. */
#define CLI_THREADS_MAX 1024
/* Caps the OpenMP default thread count (OMP_NUM_THREADS) at CLI_THREADS_MAX; main() calls it
 * before any command, cli_set_threads and cli_max_threads too (it acts once). */
void cli_threads_init(void);
/* Sets the OpenMP thread count (0 = keep OMP_NUM_THREADS, capped, or all cores) and returns the
 * count used. The first time the count exceeds the cores (omp_get_num_procs), prints a warning:
 * "drsch: warning: 64 threads on 2 cores: OpenMP threads will wait for each other; use
 * --threads 2". */
int cli_set_threads(int threads);
int cli_max_threads(void);
/* "s" after a count other than one, for the headers that name ranks and threads ("1 thread",
 * "2 threads") */
static inline const char *cli_plural(long long n) { return n == 1 ? "" : "s"; }
double cli_now(void);         /* monotonic seconds */
double cli_cpu_seconds(void); /* CPU time of the whole process (all threads) */
/* The benchmarks' --plant-slowdown F (for testing the regression gate): busy until the timed work
 * begun at t0 (cli_now) took F times its real time, as slower code would; nothing when F <= 1. */
void cli_plant_slowdown(double factor, double t0);
double
cli_mem_available(void);  /* bytes the kernel reports available (MemAvailable); 0 if unknown */
double cli_max_rss(void); /* peak resident memory of this program (since its exec), bytes */
/* Benchmarks' hardware counters: k (counted over `runs` timed runs) as per-run user counters of e
 * (cycles, instructions, ipc, l1d_misses, llc_misses), and the report's context "hw_counters"
 * saying what they are or why there are none ("unavailable: ..."). c may be NULL (no memory). */
void cli_report_counters(rp_report *r, rp_entry *e, const mc_counters *c, const mc_counts *k,
                         double runs);
/* Refuses work needing more memory than is available: prints "drsch <cmd>: <what> needs X GiB
 * but only Y GiB are available" and returns -1. */
int cli_check_memory(const char *cmd, const char *what, double need_bytes);
/* --precision: "f32" | "bf16" -> *out; else prints "drsch <cmd>: --precision: ..." and returns -1.
 */
int cli_parse_precision(const char *cmd, const char *s, nn_precision *out);
/* For bf16 on a CPU where oneDNN emulates bf16 (no avx512_bf16): a note on stderr that it runs,
 * with bf16 results, slower than f32. Nothing for f32 or native bf16. */
void cli_note_precision(const char *cmd, nn_precision p);
/* Prints "drsch <cmd>: unknown option; see drsch <cmd> --help" style errors for getopt '?' */
int cli_usage_error(const char *cmd);

/* Output checks, made before any long work starts so that a run is never lost to an output it
 * cannot write. Each prints "drsch <cmd>: <flag> <path>: <what is wrong>" and returns -1.
 * cli_check_output_file: an output file (--out M, --json F): refuses "", a path ending in '/',
 *   a directory, a folder that does not exist or is not a folder, and a folder where a file
 *   cannot be created (tried by creating and removing a probe file: permissions alone do not
 *   tell for root or a read-only file system). An existing regular file is fine (replaced).
 * cli_check_output_prefix: an output prefix (PREFIX.indices.npy, ...): the same, except that a
 *   prefix naming a directory is refused with a hint to put a name inside it (DIR/codes), so
 *   that nothing is written as hidden files (DIR/.indices.npy) or beside the directory.
 * cli_check_output_dir: an output folder (reproduce --out DIR): created with its parents when
 *   missing; refused when it is not a directory or a file cannot be created in it. */
int cli_check_output_file(const char *cmd, const char *flag, const char *path);
int cli_check_output_prefix(const char *cmd, const char *flag, const char *prefix);
int cli_check_output_dir(const char *cmd, const char *flag, const char *dir);

#endif
