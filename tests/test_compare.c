/* Compare suite: the comparison rules of report_compare.c on hand-made reports (times, accuracy
 * counters, missing and allowed entries, the agreement drsch reproduce reports: identical /
 * within noise / different), and `drsch compare` end to end: a baseline entry missing in the
 * current report fails the gate unless --allow-missing names it, the table's columns stay
 * aligned whatever the length of the names, and --help. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_compare.h"
#include "report_read.h"
#include "test_util.h"

/* ---- hand-made reports ----------------------------------------------------------------------- */

/* A report of n entries called names[i], each with real_time time_ms[i] (ms) and the counters
 * "mAP" = map[i] and "P_at_radius" = p[i] (a counter is left out when its value is < 0). */
static char *report_json(int n, const char *const *names, const double *time_ms, const double *map,
                         const double *p)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    int k = snprintf(buf, cap, "{\"context\": {}, \"benchmarks\": [");
    for (int i = 0; i < n; i++) {
        k += snprintf(
            buf + k, cap - (size_t)k,
            "%s{\"name\": \"%s\", \"run_name\": \"%s\", \"run_type\": \"iteration\", "
            "\"repetitions\": 1, "
            "\"repetition_index\": 0, \"threads\": 1, \"iterations\": 1, \"real_time\": %.17g, "
            "\"cpu_time\": %.17g, \"time_unit\": \"ms\", \"queries\": 100",
            i ? ", " : "", names[i], names[i], time_ms[i], time_ms[i]);
        if (map[i] >= 0)
            k += snprintf(buf + k, cap - (size_t)k, ", \"mAP\": %.17g", map[i]);
        if (p[i] >= 0)
            k += snprintf(buf + k, cap - (size_t)k, ", \"P_at_radius\": %.17g", p[i]);
        k += snprintf(buf + k, cap - (size_t)k, "}");
    }
    snprintf(buf + k, cap - (size_t)k, "]}");
    return buf;
}

static void parse(const char *json, rp_read_report *r)
{
    drsch_error err;
    cr_assert_eq(rp_read_parse(json, strlen(json), "test.json", r, &err), DRSCH_OK, "%s", err.msg);
}

static const char *const NAMES[3] = {"reproduce/x/DRSCH/bits:12", "reproduce/x/DRSCH/bits:48",
                                     "BM_HammingTopK/avx512/bits:64/n:1000"};
static const double TIMES[4] = {10, 20, 30,
                                40}; /* the fourth for a current report with a new entry */
static const double MAP[3] = {0.60, 0.70, -1};
static const double PR2[3] = {0.40, 0.50, 0.30};

/* Compares the baseline above with one whose counters are map / p (entries names[0..n)). */
static void compare_with(int n, const char *const *names, const double *map, const double *p,
                         const rpc_options *o, rpc_result *res, rp_read_report *base,
                         rp_read_report *cur)
{
    char *b = report_json(3, NAMES, TIMES, MAP, PR2), *c = report_json(n, names, TIMES, map, p);
    parse(b, base);
    parse(c, cur);
    free(b);
    free(c);
    drsch_error err;
    cr_assert_eq(rpc_compare(base, cur, o, res, &err), DRSCH_OK, "%s", err.msg);
}

static void release(rpc_result *res, rp_read_report *base, rp_read_report *cur)
{
    rpc_result_free(res);
    rp_read_free(base);
    rp_read_free(cur);
}

TestSuite(report_compare);

Test(report_compare, identical_reports_agree_exactly)
{
    rpc_options o;
    rpc_options_default(&o);
    rpc_result res;
    rp_read_report base, cur;
    compare_with(3, NAMES, MAP, PR2, &o, &res, &base, &cur);
    cr_assert_eq(res.regressions, 0);
    cr_assert_eq(res.metrics, 5, "%d metrics", res.metrics); /* "queries" is not a metric */
    cr_assert_eq(res.metrics_equal, 5);
    cr_assert_eq(res.max_drop_row, -1);
    cr_assert_eq(rpc_agreement_of(&res), RPC_IDENTICAL);
    cr_assert_eq(res.n, 3 + 5, "%zu rows", res.n); /* a time row per entry, a row per metric */
    release(&res, &base, &cur);
}

Test(report_compare, differences_within_the_threshold_are_noise)
{
    rpc_options o;
    rpc_options_default(&o);
    rpc_result res;
    rp_read_report base, cur;
    const double map[3] = {0.595, 0.708, -1}, p[3] = {0.40, 0.50, 0.301};
    compare_with(3, NAMES, map, p, &o, &res, &base, &cur);
    cr_assert_eq(res.regressions, 0);
    cr_assert_eq(res.metrics_equal, 2);
    cr_assert_eq(res.metrics_beyond, 0);
    cr_assert_eq(rpc_agreement_of(&res), RPC_WITHIN_NOISE);
    cr_assert_float_eq(res.max_drop, 0.005, 1e-12);
    cr_assert_float_eq(res.max_diff, 0.008, 1e-12);
    const rpc_row *worst = &res.rows[res.max_drop_row];
    cr_assert(worst->kind == RPC_METRIC && !strcmp(worst->entry, NAMES[0]) &&
              !strcmp(worst->counter, "mAP"));
    release(&res, &base, &cur);
}

Test(report_compare, differences_beyond_the_threshold_either_way_are_counted)
{
    rpc_options o;
    rpc_options_default(&o);
    rpc_result res;
    rp_read_report base, cur;
    /* bits:48 mAP 0.03 lower (a regression), P@r2 of bits:12 0.02 higher (not a regression, but
     * not the same figures either) */
    const double map[3] = {0.60, 0.67, -1}, p[3] = {0.42, 0.50, 0.30};
    compare_with(3, NAMES, map, p, &o, &res, &base, &cur);
    cr_assert_eq(res.regressions, 1);
    cr_assert_eq(res.metrics_beyond, 2);
    cr_assert_eq(res.metrics_equal, 3);
    cr_assert_eq(rpc_agreement_of(&res), RPC_DIFFERENT);
    cr_assert_float_eq(res.max_drop, 0.03, 1e-12);
    const rpc_row *worst = &res.rows[res.max_drop_row];
    cr_assert(!strcmp(worst->entry, NAMES[1]) && !strcmp(worst->counter, "mAP") &&
              worst->verdict == RPC_REGRESSION);
    /* a looser threshold takes both in */
    rpc_result_free(&res);
    o.max_metric_drop = 0.05;
    cr_assert_eq(rpc_compare(&base, &cur, &o, &res, NULL), DRSCH_OK);
    cr_assert_eq(res.regressions, 0);
    cr_assert_eq(rpc_agreement_of(&res), RPC_WITHIN_NOISE);
    release(&res, &base, &cur);
}

Test(report_compare, missing_entries_fail_unless_allowed)
{
    rpc_options o;
    rpc_options_default(&o);
    rpc_result res;
    rp_read_report base, cur;
    /* the avx512 entry (one metric) is not in the current report */
    compare_with(2, NAMES, MAP, PR2, &o, &res, &base, &cur);
    cr_assert_eq(res.regressions, 1);
    cr_assert_eq(res.entries_missing, 1);
    cr_assert_eq(res.metrics_missing, 1);
    cr_assert_eq(rpc_agreement_of(&res), RPC_DIFFERENT);
    int found = 0;
    for (size_t i = 0; i < res.n; i++)
        if (res.rows[i].kind == RPC_MISSING_ENTRY) {
            cr_assert_str_eq(res.rows[i].entry, NAMES[2]);
            cr_assert_eq(res.rows[i].verdict, RPC_REGRESSION);
            found++;
        }
    cr_assert_eq(found, 1);
    rpc_result_free(&res);

    /* a glob naming another ISA does not allow it; one naming it ('*' spans '/') does */
    const char *other[] = {"BM_HammingTopK/avx2/*"},
               *isa[] = {"BM_HammingTopK/avx2/*", "BM_HammingTopK/avx512/*"};
    o.allow_missing = other;
    o.n_allow_missing = 1;
    cr_assert_eq(rpc_compare(&base, &cur, &o, &res, NULL), DRSCH_OK);
    cr_assert_eq(res.regressions, 1);
    rpc_result_free(&res);
    o.allow_missing = isa;
    o.n_allow_missing = 2;
    cr_assert_eq(rpc_compare(&base, &cur, &o, &res, NULL), DRSCH_OK);
    cr_assert_eq(res.regressions, 0);
    cr_assert_eq(res.entries_allowed, 1);
    cr_assert_eq(res.metrics, 4, "an allowed entry's metrics are not counted");
    cr_assert_eq(rpc_agreement_of(&res), RPC_IDENTICAL);
    release(&res, &base, &cur);

    /* an empty current report: every entry missing */
    rpc_options_default(&o);
    char *b = report_json(3, NAMES, TIMES, MAP, PR2);
    parse(b, &base);
    parse("{\"benchmarks\": []}", &cur);
    free(b);
    cr_assert_eq(rpc_compare(&base, &cur, &o, &res, NULL), DRSCH_OK);
    cr_assert_eq(res.regressions, 3);
    cr_assert_eq(res.metrics_missing, 5);
    release(&res, &base, &cur);
}

Test(report_compare, missing_counters_and_new_entries)
{
    rpc_options o;
    rpc_options_default(&o);
    rpc_result res;
    rp_read_report base, cur;
    const char *names[4] = {NAMES[0], NAMES[1], NAMES[2], "reproduce/x/new/bits:12"};
    const double map[4] = {0.60, -1, -1, 0.5}, p[4] = {0.40, 0.50, 0.30, 0.5};
    compare_with(4, names, map, p, &o, &res, &base, &cur);
    cr_assert_eq(res.regressions, 1); /* bits:48 lost its mAP */
    cr_assert_eq(res.metrics_missing, 1);
    cr_assert_eq(res.entries_new, 1);
    cr_assert_eq(res.rows[res.n - 1].kind, RPC_NEW_ENTRY);
    cr_assert_eq(rpc_agreement_of(&res), RPC_DIFFERENT);
    release(&res, &base, &cur);
    /* a baseline without accuracy counters */
    const double none[3] = {-1, -1, -1};
    char *b = report_json(3, NAMES, TIMES, none, none);
    parse(b, &base);
    parse(b, &cur);
    free(b);
    cr_assert_eq(rpc_compare(&base, &cur, &o, &res, NULL), DRSCH_OK);
    cr_assert_eq(rpc_agreement_of(&res), RPC_NO_METRICS);
    release(&res, &base, &cur);
}

/* ---- drsch compare -------------------------------------------------------------------------- */

static void make_tmpdir(void) { tu_tmpdir_make("compare"); }

TestSuite(compare_cli, .init = make_tmpdir, .fini = tu_tmpdir_remove);

static void write_json(const char *file, int n, const char *const *names, const double *time_ms,
                       const double *map, const double *p)
{
    char *j = report_json(n, names, time_ms, map, p);
    tu_write_file(tu_path(file), j, strlen(j));
    free(j);
}

Test(compare_cli, a_missing_entry_fails_unless_allowed)
{
    char out[16384];
    write_json("base.json", 3, NAMES, TIMES, MAP, PR2);
    write_json("two.json", 2, NAMES, TIMES, MAP, PR2);
    tu_write_file(tu_path("empty.json"), "{\"benchmarks\": []}", 18);
    /* stderr names the missing entry */
    int rc = tu_run(out, sizeof out, "{ %s compare %s %s 2>%s; }", tu_exe(), tu_path("base.json"),
                    tu_path("empty.json"), tu_path("err.txt"));
    cr_assert_eq(rc, 1, "%s", out);
    char *err = tu_slurp(tu_path("err.txt"), NULL);
    for (int i = 0; i < 3; i++)
        cr_assert(strstr(err, NAMES[i]) && strstr(err, "missing in current"), "%s", err);
    free(err);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --allow-missing '*' %s %s", tu_exe(),
                        tu_path("base.json"), tu_path("empty.json")),
                 0, "%s", out);
    cr_assert(strstr(out, "missing in current (allowed)") != NULL, "%s", out);
    /* only the entries named are allowed */
    cr_assert_eq(tu_run(out, sizeof out, "%s compare %s %s", tu_exe(), tu_path("base.json"),
                        tu_path("two.json")),
                 1, "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --allow-missing 'BM_HammingTopK/avx2/*' %s %s",
                        tu_exe(), tu_path("base.json"), tu_path("two.json")),
                 1, "%s", out);
    cr_assert_eq(tu_run(out, sizeof out,
                        "%s compare --allow-missing 'BM_HammingTopK/avx2/*' --allow-missing "
                        "'BM_HammingTopK/avx512/*' "
                        "%s %s",
                        tu_exe(), tu_path("base.json"), tu_path("two.json")),
                 0, "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --allow-missing '' %s %s", tu_exe(),
                        tu_path("base.json"), tu_path("two.json")),
                 2, "%s", out);
}

/* The right edge of a right-aligned column: the offset just past the first occurrence of what
 * (a value of known text) in line from offset from on. */
static long edge(const char *line, long from, const char *what)
{
    const char *p = strstr(line + from, what);
    cr_assert_not_null(p, "no '%s' in '%s'", what, line);
    return (long)(p - line) + (long)strlen(what);
}

Test(compare_cli, columns_stay_aligned_with_long_names)
{
    char longname[200];
    memset(longname, 'x', sizeof longname);
    memcpy(longname, "reproduce/", 10);
    longname[sizeof longname - 1] = '\0'; /* 199 characters */
    const char *names[2] = {"BM_a", longname};
    const double t[2] = {100e-6, 100e-6}, map[2] = {0.5, 0.5}, p[2] = {-1, -1};
    write_json("a.json", 2, names, t, map, p);
    char out[16384];
    cr_assert_eq(tu_run(out, sizeof out, "%s compare %s %s 2>/dev/null", tu_exe(),
                        tu_path("a.json"), tu_path("a.json")),
                 0, "%s", out);
    /* header, then per entry a time row (100 ns) and an mAP row (0.5000) */
    char *lines[8];
    int n = 0;
    for (char *s = strtok(out, "\n"); s && n < 8; s = strtok(NULL, "\n"))
        lines[n++] = s;
    cr_assert_eq(n, 5, "%d lines", n);
    long base_edge = edge(lines[0], 0, "baseline"), cur_edge = edge(lines[0], base_edge, "current");
    for (int e = 0; e < 2; e++) {
        const char *tl = lines[1 + 2 * e], *ml = lines[2 + 2 * e];
        long name_end = (long)strlen(names[e]);
        cr_assert(!strncmp(tl, names[e], (size_t)name_end) && !strncmp(ml, "  mAP ", 6), "%s\n%s",
                  tl, ml);
        cr_assert_eq(edge(tl, name_end, "100 ns"), base_edge, "\n%s\n%s", lines[0], tl);
        cr_assert_eq(edge(tl, base_edge, "100 ns"), cur_edge, "\n%s\n%s", lines[0], tl);
        cr_assert_eq(edge(ml, 5, "0.5000"), base_edge, "\n%s\n%s", lines[0], ml);
        cr_assert_eq(edge(ml, base_edge, "0.5000"), cur_edge, "\n%s\n%s", lines[0], ml);
    }
}

Test(compare_cli, help_on_stdout_exits_0)
{
    char out[8192];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(
            tu_run(out, sizeof out, "%s compare %s 2>/dev/null", tu_exe(), i ? "--help" : "-h"), 0);
        cr_assert(strstr(out, "usage: drsch compare") && strstr(out, "--allow-missing GLOB") &&
                      strstr(out, "--no-time") && strstr(out, "--max-slowdown") &&
                      strstr(out, "--max-metric-drop"),
                  "%s", out);
    }
    cr_assert_eq(tu_run(out, sizeof out, "%s compare %s", tu_exe(), tu_path("only-one.json")), 2,
                 "%s", out);
}
