/* Comparing two reports read by report_read.h: the rules of `drsch compare` (the regression
 * gate) and of the reproduction check that ends `drsch reproduce`. Entries are matched by name.
 *  - Times: medians of the repetitions; slower than max_slowdown (relative) is a regression
 *    when it is also significant, unless times are not gated. Significant: when both reports
 *    hold enough repetitions for the test to reach alpha, a two-sided Mann-Whitney U test of the
 *    repetition times gives p < alpha; otherwise (one repetition, or too few), the difference
 *    exceeds the spread (max - min) of the repetitions of either report.
 *  - Accuracy counters (mAP*, rank-*, P_at*, precision*): a drop beyond max_metric_drop
 *    (absolute) is a regression; a counter of the baseline missing in the current entry too.
 *  - A baseline entry missing in the current report is a regression unless its name matches
 *    one of the allow_missing globs (fnmatch(3), '*' also matches '/'); entries only in the
 *    current report are listed, never gated.
 * Library code: prints nothing; the result lists one row per line of the table drsch compare
 * prints, with counts for a one-line summary. */
#ifndef DRSCH_REPORT_COMPARE_H
#define DRSCH_REPORT_COMPARE_H

#include <stddef.h>

#include "report_read.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RPC_TIME,           /* an entry's median time (ns) */
    RPC_METRIC,         /* an accuracy counter of an entry */
    RPC_MISSING_ENTRY,  /* a baseline entry absent from the current report */
    RPC_MISSING_METRIC, /* a baseline accuracy counter absent from the current entry */
    RPC_NEW_ENTRY       /* a current entry absent from the baseline */
} rpc_kind;

typedef enum {
    RPC_OK,        /* within its threshold (or, for a new entry, just listed) */
    RPC_NOISE,     /* time difference within the spread of the repetitions: not gated */
    RPC_NOT_GATED, /* time slower than allowed, but times are not gated */
    RPC_ALLOWED,   /* missing entry matched by an allow_missing glob */
    RPC_REGRESSION /* fails the gate */
} rpc_verdict;

typedef struct {
    rpc_kind kind;
    rpc_verdict verdict;
    const char *entry;   /* the entry's name; points into the reports (valid while they are) */
    const char *counter; /* RPC_METRIC, RPC_MISSING_METRIC: the counter's name; else NULL */
    double base, cur;    /* ns for times, counter values for metrics; cur is 0 when missing */
    double change;       /* times: (cur - base) / base; metrics: cur - base */
    double p;            /* RPC_TIME: p-value of the U test of the repetition times; -1: not run */
    int n_base, n_cur;   /* RPC_TIME: repetition times in each report */
} rpc_row;

typedef struct {
    double max_slowdown;              /* allowed relative time increase (default 0.10) */
    double max_metric_drop;           /* allowed absolute accuracy drop (default 0.01) */
    int gate_time;                    /* 0: slow times are reported, not regressions (default 1) */
    double alpha;                     /* significance level of the U test (default 0.05) */
    const char *const *allow_missing; /* globs of baseline entries that may be missing */
    size_t n_allow_missing;
} rpc_options;

typedef struct {
    rpc_row *rows; /* table order: each baseline entry (time, then its metrics), then new ones */
    size_t n;
    int regressions;     /* rows with RPC_REGRESSION */
    int entries_missing; /* baseline entries absent from current, allowed or not */
    int entries_allowed; /* of which allowed by a glob */
    int entries_new;     /* current entries absent from the baseline */
    /* Accuracy counters of the baseline (those of allowed missing entries not counted): */
    int metrics;         /* all of them */
    int metrics_equal;   /* bit-identical in current */
    int metrics_beyond;  /* present in current and differing by more than max_metric_drop */
    int metrics_missing; /* absent from current (missing entry or counter) */
    double max_drop;     /* largest base - cur over present metrics, 0 when none dropped */
    long max_drop_row;   /* its row index, -1 when none dropped */
    double max_diff;     /* largest |cur - base| over present metrics */
} rpc_result;

/* How a current report agrees with a baseline on accuracy (times ignored). */
typedef enum {
    RPC_IDENTICAL,    /* every metric bit-identical, none missing */
    RPC_WITHIN_NOISE, /* every metric within max_metric_drop, none missing */
    RPC_DIFFERENT,    /* some metric beyond max_metric_drop or missing */
    RPC_NO_METRICS    /* the baseline has no accuracy counter */
} rpc_agreement;

/* The two-sided Mann-Whitney U test (Wilcoxon rank-sum test) of samples x and y, as
 * scipy.stats.mannwhitneyu computes it by default (Google Benchmark's compare.py uses it): u is
 * the U statistic of x (pairs with x_i > y_j, ties counting 1/2); p is exact when there are no
 * ties and one sample has at most 8 values, else from the normal approximation with the tie
 * and continuity corrections. Not thread-safe (libRmath's pwilcox caches in static memory). */
typedef struct {
    double u, p;
    int exact;
} rpc_mwu;
DRSCH_API drsch_status rpc_mann_whitney(const double *x, size_t nx, const double *y, size_t ny,
                                        rpc_mwu *out, drsch_error *err);

DRSCH_API void rpc_options_default(rpc_options *o);
/* 1 when counter is an accuracy counter (mAP*, mINP, rank-*, P_at*, precision*). */
DRSCH_API int rpc_is_metric(const char *counter);
/* Compares cur with base (times sorted in place to take medians). On DRSCH_ERR_NOMEM *out is
 * empty and err says so. Free the result with rpc_result_free. */
DRSCH_API drsch_status rpc_compare(rp_read_report *base, rp_read_report *cur, const rpc_options *o,
                                   rpc_result *out, drsch_error *err);
DRSCH_API void rpc_result_free(rpc_result *r);
DRSCH_API rpc_agreement rpc_agreement_of(const rpc_result *r);

#ifdef __cplusplus
}
#endif

#endif
