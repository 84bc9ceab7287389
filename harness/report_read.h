/* Reading Google Benchmark-compatible JSON reports back (the input of `drsch compare`): the
 * "benchmarks" array reduced to one entry per name (run_name, else name) with its repetition
 * times in ns, its "median" aggregate when present, and the cJSON object holding its user
 * counters. Mean / stddev / cv aggregates are skipped. Does not compare anything, does not
 * print (errors go to drsch_error); the comparison rules live in report_compare.c. Also the entry
 * point of the report fuzzer (tests/fuzz/fuzz_report.c). */
#ifndef DRSCH_REPORT_READ_H
#define DRSCH_REPORT_READ_H

#include <stddef.h>

#include "report.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RP_READ_MAX_REPS 64

typedef struct {
    char name[256];                 /* truncated when longer */
    double times[RP_READ_MAX_REPS]; /* real_time of each repetition in ns, file order */
    int nt;
    double median_time; /* from a "median" aggregate when has_median */
    int has_median;
    struct cJSON *counters; /* the first repetition's object (owned by root) */
} rp_read_entry;

typedef struct {
    rp_read_entry *e; /* n entries, first-seen order */
    size_t n;
    struct cJSON *root;
} rp_read_report;

/* Parses the JSON text text[0..len) (need not be NUL-terminated; parsing stops at the first
 * NUL as cJSON_Parse does); name is the file name used in messages. On failure *out is empty. */
DRSCH_API drsch_status rp_read_parse(const char *text, size_t len, const char *name,
                                     rp_read_report *out, drsch_error *err);
/* Reads and parses path. */
DRSCH_API drsch_status rp_read_file(const char *path, rp_read_report *out, drsch_error *err);
DRSCH_API void rp_read_free(rp_read_report *r);
/* Several runs of the same benchmarks, one report per file (paths[0..n), at most
 * RP_READ_MAX_REPS): each entry's times are one value per run holding it, that run's median
 * over its repetitions (its "median" aggregate when present), in the order of paths; its
 * counters are those of the first run holding it. A test over these times then sees the noise
 * between runs (processes), which repetitions within one process do not show. name is used in
 * messages. On failure *out is empty and err names the file. */
DRSCH_API drsch_status rp_read_runs(const char *const *paths, size_t n, const char *name,
                                    rp_read_report *out, drsch_error *err);
/* The entry called name, NULL when absent. */
DRSCH_API rp_read_entry *rp_read_find(rp_read_report *r, const char *name);

#ifdef __cplusplus
}
#endif

#endif
