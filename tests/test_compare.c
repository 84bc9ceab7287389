/* Compare suite: the comparison rules of report_compare.c on hand-made reports (times, accuracy
 * counters, missing and allowed entries, the agreement drsch reproduce reports: identical /
 * within noise / different), and `drsch compare` end to end: a baseline entry missing in the
 * current report fails the gate unless --allow-missing names it, the table's columns stay
 * aligned whatever the length of the names, and --help. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
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
                      strstr(out, "--max-metric-drop") && strstr(out, "--alpha A") &&
                      strstr(out, "Mann-Whitney"),
                  "%s", out);
    }
    cr_assert_eq(tu_run(out, sizeof out, "%s compare %s", tu_exe(), tu_path("only-one.json")), 2,
                 "%s", out);
}

/* ---- the statistical speed gate ----------------------------------------------------------------
 */

/* scipy.stats.mannwhitneyu(x, y) (scipy 1.10, alternative='two-sided', default method) gave
 * these statistics and p-values; the exact ones are also counts over the C(nx + ny, nx)
 * arrangements: 3 vs 3 with x above y: 2/20 = 0.1; 6 vs 5: 2/462 = 0.004329... */
Test(report_compare, mann_whitney_matches_scipy)
{
    static const double x1[] = {4, 5, 6}, y1[] = {1, 2, 3};
    static const double x2[] = {6, 7, 8, 9, 10, 11}, y2[] = {1, 2, 3, 4, 5};
    static const double x3[] = {11.5, 13.5, 19, 20, 21, 22, 23, 24, 25, 26},
                        y3[] = {10, 12, 15, 11, 13, 14, 9, 16, 17, 18};
    static const double x4[] = {2, 3, 4, 4, 5}, y4[] = {1, 2, 2, 3, 3, 3};
    static const double x5[] = {5, 5, 5}, y5[] = {5, 5, 5};
    static const double x6[] = {3.0, 3.3, 3.4, 3.5, 3.6, 3.05, 3.15, 3.25, 3.35},
                        y6[] = {3.1, 2.9, 3.0, 3.2};
    struct {
        const double *x, *y;
        size_t nx, ny;
        double u, p;
        int exact;
    } c[] = {
        {x1, y1, 3, 3, 9.0, 0.1, 1},
        {x2, y2, 6, 5, 30.0, 0.004329004329004329, 1},
        {x3, y3, 10, 10, 88.0, 0.004586392080253494, 0},
        {x4, y4, 5, 6, 24.5, 0.08871369199677616, 0},
        {x5, y5, 3, 3, 4.5, 1.0, 0},
        {x6, y6, 9, 4, 30.5, 0.06371213755493223, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        rpc_mwu t;
        drsch_error err;
        cr_assert_eq(rpc_mann_whitney(c[i].x, c[i].nx, c[i].y, c[i].ny, &t, &err), DRSCH_OK, "%s",
                     err.msg);
        cr_assert_eq(t.u, c[i].u, "case %zu: U %.17g", i, t.u);
        cr_assert(fabs(t.p - c[i].p) <= 1e-12 * c[i].p, "case %zu: p %.17g, scipy %.17g", i, t.p,
                  c[i].p);
        cr_assert_eq(t.exact, c[i].exact, "case %zu", i);
    }
    rpc_mwu t;
    drsch_error err;
    const double nan_sample[2] = {1, NAN};
    cr_assert_eq(rpc_mann_whitney(x1, 3, nan_sample, 2, &t, &err), DRSCH_ERR_ARG);
    cr_assert_eq(rpc_mann_whitney(x1, 0, y1, 3, &t, &err), DRSCH_ERR_ARG);
}

/* The JSON text of a report with one entry "BM_t" of n repetitions, times in ms, written with
 * rp_repetitions (the caller frees it). */
static char *repetitions_json(const double *ms, int n)
{
    rp_report *r = rp_create();
    rp_entry *e = rp_add(r, "BM_t", 1, ms[0], ms[0], "ms", 1);
    rp_counter(e, "items_per_second", 1234);
    rp_repetitions(r, e, ms, n);
    char *text = rp_print(r);
    rp_free(r);
    return text;
}

/* That report, parsed into out; its text in *json when json is not NULL. */
static void repetitions_report(const double *ms, int n, rp_read_report *out, char **json)
{
    char *text = repetitions_json(ms, n);
    parse(text, out);
    if (json)
        *json = text;
    else
        free(text);
}

Test(report_compare, repetitions_are_written_as_google_benchmark_writes_them)
{
    const double ms[5] = {3, 1, 2, 5, 4};
    rp_read_report r;
    char *json;
    repetitions_report(ms, 5, &r, &json);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.e[0].nt, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(r.e[0].times[i], ms[i] * 1e6, "repetition %d", i);
    cr_assert(r.e[0].has_median && r.e[0].median_time == 3e6);
    int items = 0;
    for (const char *p = json; (p = strstr(p, "\"items_per_second\"")); p++)
        items++;
    cr_assert_eq(items, 5, "the counters on each repetition: %s", json);
    cr_assert(strstr(json, "\"BM_t_mean\"") && strstr(json, "\"BM_t_stddev\"") &&
                  strstr(json, "\"BM_t_cv\"") && strstr(json, "\"aggregate_name\":\t\"median\"") &&
                  strstr(json, "\"repetition_index\":\t4"),
              "%s", json);
    free(json);
    rp_read_free(&r);
}

/* Compares n repetitions of base with n of cur (ms) at max_slowdown; returns the time row. */
static rpc_row time_row(const double *base, const double *cur, int n, double max_slowdown)
{
    rp_read_report b, c;
    repetitions_report(base, n, &b, NULL);
    repetitions_report(cur, n, &c, NULL);
    rpc_options o;
    rpc_options_default(&o);
    o.max_slowdown = max_slowdown;
    rpc_result res;
    drsch_error err;
    cr_assert_eq(rpc_compare(&b, &c, &o, &res, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(res.rows[0].kind, RPC_TIME);
    rpc_row row = res.rows[0];
    cr_assert_eq(res.regressions, row.verdict == RPC_REGRESSION);
    rpc_result_free(&res);
    rp_read_free(&b);
    rp_read_free(&c);
    return row;
}

Test(report_compare, a_slowdown_fails_only_when_significant_and_beyond_the_threshold)
{
    double base[10], slow[10], mixed[10], slight[10];
    for (int i = 0; i < 10; i++) {
        base[i] = 100 + i;
        slow[i] = 1.2 * base[i];             /* every run slower: p = 2/C(20,10) */
        mixed[i] = i < 5 ? 95 + i : 200 + i; /* median +43%, but half the runs faster */
        slight[i] = 104.5 + i;               /* +4.3%, p = 0.0091 (scipy) */
    }
    rpc_row r = time_row(base, slow, 10, 0.05);
    cr_assert_eq(r.verdict, RPC_REGRESSION);
    cr_assert(r.p > 0 && r.p < 0.001 && r.n_base == 10 && r.n_cur == 10, "p %g", r.p);
    cr_assert(fabs(r.change - 0.2) < 1e-12, "%g", r.change);
    r = time_row(base, mixed, 10, 0.05);
    cr_assert_eq(r.verdict, RPC_NOISE, "p %g", r.p);
    cr_assert(r.change > 0.4 && r.p > 0.5, "change %g p %g", r.change, r.p);
    r = time_row(base, slight, 10, 0.05);
    cr_assert_eq(r.verdict, RPC_OK, "p %g change %g", r.p, r.change);
    cr_assert(r.p < 0.05 && r.change < 0.05, "p %g change %g", r.p, r.change);
    r = time_row(base, slight, 10, 0.02); /* the same change with a tighter threshold */
    cr_assert_eq(r.verdict, RPC_REGRESSION, "p %g change %g", r.p, r.change);
}

Test(report_compare, too_few_repetitions_for_the_test_fall_back_to_the_spread)
{
    const double base[3] = {100, 101, 102}, far[3] = {130, 131, 132}, near[3] = {101, 102, 103};
    rpc_row r = time_row(base, far, 3, 0.05); /* 3 vs 3: the smallest p is 0.1 */
    cr_assert_eq(r.verdict, RPC_REGRESSION);
    cr_assert_eq(r.p, -1);
    r = time_row(base, near, 3, 0);
    cr_assert_eq(r.verdict, RPC_NOISE, "change %g", r.change);
}

/* End to end: a benchmark with a planted slowdown fails the gate; its context says so. The
 * Mann-Whitney test loads libRmath then (LD_DEBUG=files), not before (test_cli.c). The runs skip
 * the machine's limits, as ci/regression's do (under ASan they took 7 of each run's 8 s). */
Test(compare_cli, a_planted_slowdown_fails_the_gate)
{
    char out[16384];
    const char *common = "bench hamming --n 20000 --queries 50 --bits 64 --k 10 --threads 1 "
                         "--repetitions 6 --no-limits";
    cr_assert_eq(
        tu_run(out, sizeof out, "%s %s --json %s 2>&1", tu_exe(), common, tu_path("a.json")), 0,
        "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s %s --plant-slowdown 10 --json %s 2>&1", tu_exe(),
                        common, tu_path("b.json")),
                 0, "%s", out);
    char *b = tu_slurp(tu_path("b.json"), NULL);
    cr_assert(strstr(b, "\"planted_slowdown\":\t10") != NULL, "%s", b);
    free(b);
    cr_assert_eq(tu_run(out, sizeof out, "LD_DEBUG=files %s compare --max-slowdown 2 %s %s 2>&1",
                        tu_exe(), tu_path("a.json"), tu_path("b.json")),
                 1, "%s", out);
    cr_assert(strstr(out, "SLOWER (regression)") && strstr(out, "(6 vs 6 runs)"), "%s", out);
    cr_assert(strstr(out, "file=libRmath"), "the test did not load libRmath: %s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --max-slowdown 2 %s %s 2>&1", tu_exe(),
                        tu_path("a.json"), tu_path("a.json")),
                 0, "%s", out);
}

/* The training and encoding gates of ci/regression: directories of runs of bench train / bench
 * encode (--no-limits: no peak measured, none reported); a set planted 10x slower fails the gate,
 * the same build against itself does not (5 runs a side: enough for the Mann-Whitney test, so
 * one run slowed by a busy machine does not decide), and --plant-slowdown below 1 is refused. */
Test(compare_cli, planted_training_and_encoding_slowdowns_fail_the_gate)
{
    const char *cmds[2] = {"bench train --batch 20 --iters 3 --warmup 1 --repetitions 2",
                           "bench encode --batch 20 --images 40 --iters 2 --repetitions 2"};
    char out[16384], dir[600];
    for (int c = 0; c < 2; c++) {
        const char *sets[3] = {"a", "b", "p"};
        for (int s = 0; s < 3; s++) {
            snprintf(dir, sizeof dir, "%s", tu_path(sets[s]));
            if (c)
                tu_run(out, sizeof out, "rm -rf %s", dir);
            cr_assert_eq(mkdir(dir, 0755), 0, "%s", dir);
        }
        for (int i = 0; i < 5; i++)
            for (int s = 0; s < 3; s++) {
                snprintf(dir, sizeof dir, "%s/run-%d.json", tu_path(sets[s]), i);
                cr_assert_eq(tu_run(out, sizeof out,
                                    "%s %s --threads 1 --no-limits%s --json %s 2>&1", tu_exe(),
                                    cmds[c], s == 2 ? " --plant-slowdown 10" : "", dir),
                             0, "%s", out);
                cr_assert(strstr(out, "f32 peak not measured (--no-limits)") != NULL, "%s", out);
            }
        snprintf(dir, sizeof dir, "%s/run-0.json", tu_path("p"));
        char *p = tu_slurp(dir, NULL);
        cr_assert(strstr(p, "\"planted_slowdown\":\t10") && !strstr(p, "peak_fraction") &&
                      strstr(p, "\"peak_source\":\t\"not measured (--no-limits)\""),
                  "%s", p);
        free(p);
        cr_assert_eq(tu_run(out, sizeof out, "%s compare --max-slowdown 2 %s %s 2>&1", tu_exe(),
                            tu_path("a"), tu_path("p")),
                     1, "%s: %s", cmds[c], out);
        cr_assert(strstr(out, "SLOWER (regression)") && strstr(out, "(5 vs 5 runs)"), "%s", out);
        cr_assert_eq(tu_run(out, sizeof out, "%s compare --max-slowdown 2 %s %s 2>&1", tu_exe(),
                            tu_path("a"), tu_path("b")),
                     0, "%s: %s", cmds[c], out);
        cr_assert_eq(tu_run(out, sizeof out, "%s %s --plant-slowdown 0.5 2>&1", tu_exe(), cmds[c]),
                     2, "%s", out);
        cr_assert(strstr(out, "--plant-slowdown") != NULL, "%s", out);
    }
}

/* Writes n runs (DIR/run-I.json), run i with 5 repetitions of "BM_t" around ms[i] (+-0.1%). */
static void write_runs(const char *dir, const double *ms, int n)
{
    char path[600];
    snprintf(path, sizeof path, "%s", tu_path(dir));
    cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
    for (int i = 0; i < n; i++) {
        const double reps[5] = {ms[i] * 0.999, ms[i], ms[i] * 1.001, ms[i] * 0.9995,
                                ms[i] * 1.0005};
        char *text = repetitions_json(reps, 5);
        snprintf(path, sizeof path, "%s/run-%d.json", tu_path(dir), i);
        tu_write_file(path, text, strlen(text));
        free(text);
    }
}

/* Runs whose medians spread widely (noise between processes) but each with tight repetitions: one
 * run against another looks significant, the directories of runs show the change is noise; a
 * directory of runs all 50% slower (each above every baseline run) fails. */
Test(compare_cli, a_directory_of_runs_tests_the_runs_medians)
{
    const double base[5] = {100, 130, 90, 120, 110}, shifted[5] = {105, 135, 95, 125, 115};
    double slow[5];
    for (int i = 0; i < 5; i++)
        slow[i] = 1.5 * base[i];
    write_runs("base", base, 5);
    write_runs("shifted", shifted, 5);
    write_runs("slow", slow, 5);
    char out[16384], a[600], b[600];
    snprintf(a, sizeof a, "%s/run-0.json", tu_path("base"));
    snprintf(b, sizeof b, "%s/run-0.json", tu_path("shifted"));
    cr_assert_eq(
        tu_run(out, sizeof out, "%s compare --max-slowdown 0.03 %s %s 2>&1", tu_exe(), a, b), 1,
        "one run against one: 5%% slower, p < 0.05: %s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --max-slowdown 0.03 %s %s 2>&1", tu_exe(),
                        tu_path("base"), tu_path("shifted")),
                 0, "%s", out);
    cr_assert(strstr(out, "(5 vs 5 runs)") && strstr(out, "within noise"), "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare --max-slowdown 0.03 %s %s 2>&1", tu_exe(),
                        tu_path("base"), tu_path("slow")),
                 1, "%s", out);
    cr_assert(strstr(out, "SLOWER (regression)") && strstr(out, "p=0.00794"), "%s", out);
    cr_assert_eq(mkdir(tu_path("empty"), 0755), 0);
    cr_assert_eq(tu_run(out, sizeof out, "%s compare %s %s 2>&1", tu_exe(), tu_path("base"),
                        tu_path("empty")),
                 2, "%s", out);
    cr_assert(strstr(out, "holds no .json report") != NULL, "%s", out);
}
