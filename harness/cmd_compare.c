/* drsch compare: the regression gate. Matches the benchmark entries of two Google
 * Benchmark-compatible JSON reports by name and compares their times and accuracy counters
 * with report_compare.c's rules (shared with drsch reproduce): a median time slower than
 * --max-slowdown (relative) and significantly so (Mann-Whitney U test at --alpha), an accuracy
 * counter (mAP*, mINP, rank-*, P_at*) lower than --max-metric-drop (absolute), or a baseline
 * entry or counter missing in the current report is a regression, and the exit status is 1. Entries
 * that may be missing (benchmarks of an ISA the machine lacks) are named with --allow-missing GLOB.
 * This file only prints the table. */
#define _GNU_SOURCE /* asprintf */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "flags.h"
#include "report_compare.h"
#include "report_read.h"

static int is_json(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && !strcmp(d->d_name + n - 5, ".json") && d->d_name[0] != '.';
}

/* A report file, or a directory of reports (*.json, one run each, in name order). */
static int load_report(const char *path, rp_read_report *r)
{
    drsch_error err;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct dirent **list = NULL;
        int n = scandir(path, &list, is_json, alphasort);
        if (n < 0) {
            fprintf(stderr, "drsch compare: %s: cannot list the directory: %s\n", path,
                    strerror(errno));
            return -1;
        }
        char **paths = calloc((size_t)n + 1, sizeof *paths);
        int ok = paths != NULL;
        for (int i = 0; i < n; i++) {
            if (ok && asprintf(&paths[i], "%s/%s", path, list[i]->d_name) < 0) {
                paths[i] = NULL;
                ok = 0;
            }
            free(list[i]);
        }
        free(list);
        drsch_status s = DRSCH_ERR_NOMEM;
        if (!ok)
            snprintf(err.msg, sizeof err.msg, "%s: out of memory", path);
        else if (n == 0)
            snprintf(err.msg, sizeof err.msg, "%s: the directory holds no .json report", path);
        else
            s = rp_read_runs((const char *const *)paths, (size_t)n, path, r, &err);
        for (int i = 0; paths && i < n; i++)
            free(paths[i]);
        free(paths);
        if (s != DRSCH_OK) {
            fprintf(stderr, "drsch compare: %s\n", err.msg);
            return -1;
        }
        return 0;
    }
    if (rp_read_file(path, r, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch compare: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The table's first column: the entry's name, or its counter indented under it. */
static int label_of(const rpc_row *r, char *buf, size_t cap)
{
    if (r->counter)
        return snprintf(buf, cap, "  %s", r->counter);
    return snprintf(buf, cap, "%s", r->entry);
}

/* A time row: medians, change, the test's p-value and the verdict. */
static void print_time_row(const rpc_row *r, int w, const char *label)
{
    char test[64] = "";
    if (r->p >= 0)
        snprintf(test, sizeof test, "  p=%.3g (%d vs %d runs)", r->p, r->n_base, r->n_cur);
    else if (r->n_base > 1 || r->n_cur > 1)
        snprintf(test, sizeof test, "  spread (%d vs %d runs)", r->n_base, r->n_cur);
    printf("%-*s %11.4g ns %11.4g ns %+8.1f%%%s%s\n", w, label, r->base, r->cur, r->change * 100,
           test,
           r->verdict == RPC_NOISE        ? "  within noise"
           : r->verdict == RPC_REGRESSION ? "  SLOWER (regression)"
           : r->verdict == RPC_NOT_GATED  ? "  slower (not gated)"
                                          : "");
}

static void print_table(const rpc_result *res)
{
    static const char *const head = "Benchmark / counter";
    char label[600];
    int w = (int)strlen(head);
    for (size_t i = 0; i < res->n; i++) {
        int len = label_of(&res->rows[i], label, sizeof label);
        w = len > w ? len : w;
    }
    printf("%-*s %14s %14s %9s\n", w, head, "baseline", "current", "change");
    for (size_t i = 0; i < res->n; i++) {
        const rpc_row *r = &res->rows[i];
        label_of(r, label, sizeof label);
        switch (r->kind) {
        case RPC_TIME: print_time_row(r, w, label); break;
        case RPC_METRIC:
            printf("%-*s %14.4f %14.4f %+9.4f%s\n", w, label, r->base, r->cur, r->change,
                   r->verdict == RPC_REGRESSION ? "  DROPPED (regression)" : "");
            break;
        case RPC_MISSING_METRIC:
            printf("%-*s %14.4f %14s %9s  missing in current\n", w, label, r->base, "-", "");
            break;
        case RPC_MISSING_ENTRY:
            printf("%-*s %14s %14s %9s  missing in current%s\n", w, label, "", "-", "",
                   r->verdict == RPC_ALLOWED ? " (allowed)" : "");
            break;
        case RPC_NEW_ENTRY:
            printf("%-*s %14s %14s %9s  new (not in baseline)\n", w, label, "-", "", "");
            break;
        }
    }
}

static void print_regressions(const rpc_result *res, const rpc_options *o)
{
    for (size_t i = 0; i < res->n; i++) {
        const rpc_row *r = &res->rows[i];
        if (r->verdict != RPC_REGRESSION)
            continue;
        switch (r->kind) {
        case RPC_TIME:
            if (r->p >= 0)
                fprintf(stderr,
                        "drsch compare: regression: %s time %+.1f%% (allowed %+.1f%%), p = %.3g "
                        "< %g\n",
                        r->entry, r->change * 100, o->max_slowdown * 100, r->p, o->alpha);
            else
                fprintf(stderr, "drsch compare: regression: %s time %+.1f%% (allowed %+.1f%%)\n",
                        r->entry, r->change * 100, o->max_slowdown * 100);
            break;
        case RPC_METRIC:
            fprintf(stderr, "drsch compare: regression: %s %s %.4f -> %.4f (allowed drop %.4f)\n",
                    r->entry, r->counter, r->base, r->cur, o->max_metric_drop);
            break;
        case RPC_MISSING_METRIC:
            fprintf(stderr, "drsch compare: regression: %s %s missing in current\n", r->entry,
                    r->counter);
            break;
        case RPC_MISSING_ENTRY:
            fprintf(stderr,
                    "drsch compare: regression: %s missing in current (see --allow-missing)\n",
                    r->entry);
            break;
        case RPC_NEW_ENTRY: break;
        }
    }
}

/* The settings of a run: the thresholds, and the --allow-missing globs (one per argument at most).
 */
typedef struct {
    rpc_options o;
    const char **allow;
    size_t n_allow;
} compare_opts;

/* --allow-missing GLOB, repeatable: appends to the globs. */
static int parse_allow(const char *cmd, const char *flag, const char *value, void *dest)
{
    compare_opts *c = dest;
    if (!value[0]) {
        fprintf(stderr, "drsch %s: %s: the pattern is empty ('*' allows any entry)\n", cmd, flag);
        return -1;
    }
    c->allow[c->n_allow++] = value;
    return 0;
}

/* Parses the flags and leaves the two reports at argv[*first]; returns -1 to go on, else the
 * exit status (0 after the help). */
static int parse(int argc, char **argv, compare_opts *c, int *first)
{
    cli_flag flags[] = {
        CLI_FLOAT("max-slowdown", &c->o.max_slowdown, 0, 1e6, "F",
                  "allowed relative increase of an entry's median time"),
        CLI_FLOAT("alpha", &c->o.alpha, 1e-9, 0.5, "A",
                  "significance level of the Mann-Whitney U test of the repetition times: a "
                  "slower median is a regression only when p < A"),
        CLI_FLOAT("max-metric-drop", &c->o.max_metric_drop, 0, 1, "F",
                  "allowed absolute drop of mAP / CMC / precision counters"),
        CLI_SWITCH("no-time", &c->o.gate_time, 0,
                   "do not gate times (report them only) (default: a slower time is a regression)"),
        CLI_CUSTOM("allow-missing", c, parse_allow, "GLOB",
                   "baseline entries whose name matches GLOB (fnmatch; '*' also matches '/') may "
                   "be missing in the current report, e.g. 'BM_HammingTopK/avx512/*' on a machine "
                   "without AVX-512; repeatable; '*' allows any entry to be missing (default: "
                   "none may be missing)"),
        CLI_END,
    };
    int rc = cli_flags_parse("compare", flags, argc, argv, first);
    if (rc == CLI_FLAGS_HELP) {
        printf(
            "usage: drsch compare BASELINE CURRENT [options]\n\n"
            "Compares two Google Benchmark-compatible reports entry by entry (matched by name).\n"
            "BASELINE and CURRENT are each a .json report, or a directory of them (*.json, each\n"
            "one run, i.e. one process, of the same benchmarks): then an entry's times are the\n"
            "runs' medians, one per run, so the test sees the noise between processes too.\n"
            "Exit status 1 when a time got slower or an accuracy counter dropped beyond its\n"
            "threshold, or when an entry or accuracy counter of the baseline is missing in the\n"
            "current report, naming each offender on stderr; 2 on unreadable input.\n\n"
            "Times: an entry's median over its repetitions (one JSON entry per repetition, as\n"
            "--benchmark_repetitions writes them). A slower median fails only when the change\n"
            "is beyond --max-slowdown and significant: a two-sided Mann-Whitney U test of the\n"
            "two reports' repetition times (as Google Benchmark's compare.py) gives p < --alpha.\n"
            "With too few repetitions for the test to reach --alpha (e.g. 3 vs 3 at 0.05; 4 vs 4\n"
            "suffices), a change within the spread (max - min) of the repetitions is noise.\n"
            "Accuracy counters are deterministic: compared exactly against --max-metric-drop.\n\n");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (argc - *first != 2) {
        fprintf(
            stderr,
            "drsch compare: needs BASELINE.json and CURRENT.json; see 'drsch compare --help'\n");
        return EXIT_USAGE;
    }
    c->o.allow_missing = c->allow;
    c->o.n_allow_missing = c->n_allow;
    return -1;
}

/* Compares the reports at base_path and cur_path; prints the table and the regressions. */
static int run(const char *base_path, const char *cur_path, const rpc_options *o)
{
    rp_read_report base, cur;
    if (load_report(base_path, &base))
        return EXIT_USAGE;
    if (load_report(cur_path, &cur)) {
        rp_read_free(&base);
        return EXIT_USAGE;
    }
    int status = 0;
    rpc_result res;
    drsch_error err;
    if (rpc_compare(&base, &cur, o, &res, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch compare: %s\n", err.msg);
        status = 1;
    } else {
        print_table(&res);
        print_regressions(&res, o);
        if (res.regressions) {
            fprintf(stderr, "drsch compare: %d regression%s\n", res.regressions,
                    res.regressions > 1 ? "s" : "");
            status = 1;
        }
        rpc_result_free(&res);
    }
    rp_read_free(&base);
    rp_read_free(&cur);
    return status;
}

int cmd_compare(int argc, char **argv)
{
    compare_opts c = {.n_allow = 0};
    rpc_options_default(&c.o);
    c.allow = calloc((size_t)argc + 1, sizeof *c.allow); /* at most one glob per argument */
    if (!c.allow) {
        fprintf(stderr, "drsch compare: out of memory\n");
        return 1;
    }
    int first = 0;
    int status = parse(argc, argv, &c, &first);
    if (status < 0)
        status = run(argv[first], argv[first + 1], &c.o);
    free(c.allow);
    return status;
}
