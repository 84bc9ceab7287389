/* drsch compare: the regression gate. Matches the benchmark entries of two Google
 * Benchmark-compatible JSON reports by name and compares their times and accuracy counters:
 * a time slower than --max-slowdown (relative) or an accuracy counter (mAP*, rank-*, P_at_*)
 * lower than --max-metric-drop (absolute) is a regression, and the exit status is 1.
 * With repetitions (several entries of one name, or median aggregates) medians are compared,
 * and a time difference smaller than the spread of the repetitions is reported as noise and
 * not gated. Entries present on one side only are listed. Reading the reports is
 * report_read.c's job (shared with the fuzzer). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "report_read.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: drsch compare BASELINE.json CURRENT.json [options]\n\n"
            "Compares two Google Benchmark-compatible reports entry by entry (matched by name).\n"
            "Exit status 1 when a time got slower or an accuracy counter dropped beyond its\n"
            "threshold, naming each offender; 2 on unreadable input.\n\n"
            "  --max-slowdown F     allowed relative time increase (default 0.10)\n"
            "  --max-metric-drop F  allowed absolute drop of mAP / CMC / precision counters\n"
            "                       (default 0.01)\n"
            "  --no-time            do not gate times (report them only)\n"
            "  -h, --help           this text\n");
}

typedef rp_read_entry entry;

static entry *find(rp_read_report *r, const char *name)
{
    return rp_read_find(r, name);
}

static int load_report(const char *path, rp_read_report *r)
{
    rp_error err;
    if (rp_read_file(path, r, &err) != RP_OK) {
        fprintf(stderr, "drsch compare: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(entry *e)
{
    if (e->has_median)
        return e->median_time;
    qsort(e->times, (size_t)e->nt, sizeof e->times[0], cmp_d);
    return e->nt % 2 ? e->times[e->nt / 2] : 0.5 * (e->times[e->nt / 2 - 1] + e->times[e->nt / 2]);
}

static double spread_of(const entry *e)
{
    return e->nt > 1 ? e->times[e->nt - 1] - e->times[0] : 0; /* times sorted by median_of */
}

static int is_metric(const char *k)
{
    return !strncmp(k, "mAP", 3) || !strncmp(k, "rank-", 5) || !strncmp(k, "P_at", 4) || !strncmp(k, "precision", 9);
}

int cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {
        {"max-slowdown", required_argument, 0, 's'},
        {"max-metric-drop", required_argument, 0, 'm'},
        {"no-time", no_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    double max_slow = 0.10, max_drop = 0.01;
    int gate_time = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (cli_parse_f64("compare", "--max-slowdown", optarg, 0, 1e6, &max_slow))
                return EXIT_USAGE;
            break;
        case 'm':
            if (cli_parse_f64("compare", "--max-metric-drop", optarg, 0, 1, &max_drop))
                return EXIT_USAGE;
            break;
        case 'n': gate_time = 0; break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("compare");
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "drsch compare: needs BASELINE.json and CURRENT.json; see 'drsch compare --help'\n");
        return EXIT_USAGE;
    }
    rp_read_report base, cur;
    if (load_report(argv[optind], &base))
        return EXIT_USAGE;
    if (load_report(argv[optind + 1], &cur)) {
        rp_read_free(&base);
        return EXIT_USAGE;
    }
    int offenders = 0;
    printf("%-60s %14s %14s %9s\n", "Benchmark / counter", "baseline", "current", "change");
    for (size_t i = 0; i < base.n; i++) {
        entry *b = &base.e[i], *n = find(&cur, b->name);
        if (!n) {
            printf("%-60s %14s %14s %9s  missing in current\n", b->name, "", "-", "");
            continue;
        }
        if (b->nt || b->has_median) {
            double tb = median_of(b), tn = median_of(n);
            double change = tb > 0 ? (tn - tb) / tb : 0;
            double noise = spread_of(b) > spread_of(n) ? spread_of(b) : spread_of(n);
            const char *verdict = "";
            if (noise > 0 && fabs(tn - tb) <= noise)
                verdict = "  within noise";
            else if (change > max_slow)
                verdict = gate_time ? "  SLOWER (regression)" : "  slower (not gated)";
            printf("%-60s %11.4g ns %11.4g ns %+8.1f%%%s\n", b->name, tb, tn, change * 100, verdict);
            if (gate_time && change > max_slow && !(noise > 0 && fabs(tn - tb) <= noise)) {
                fprintf(stderr, "drsch compare: regression: %s time %+.1f%% (allowed %+.1f%%)\n", b->name,
                        change * 100, max_slow * 100);
                offenders++;
            }
        }
        cJSON *k;
        cJSON_ArrayForEach(k, b->counters)
        {
            if (!cJSON_IsNumber(k) || !is_metric(k->string))
                continue;
            cJSON *nk = cJSON_GetObjectItemCaseSensitive(n->counters, k->string);
            char label[300];
            snprintf(label, sizeof label, "  %s", k->string);
            if (!cJSON_IsNumber(nk)) {
                printf("%-60s %14.4f %14s %9s  missing in current\n", label, k->valuedouble, "-", "");
                fprintf(stderr, "drsch compare: regression: %s %s missing in current\n", b->name, k->string);
                offenders++;
                continue;
            }
            double drop = k->valuedouble - nk->valuedouble;
            int bad = drop > max_drop;
            printf("%-60s %14.4f %14.4f %+9.4f%s\n", label, k->valuedouble, nk->valuedouble, -drop,
                   bad ? "  DROPPED (regression)" : "");
            if (bad) {
                fprintf(stderr, "drsch compare: regression: %s %s %.4f -> %.4f (allowed drop %.4f)\n", b->name,
                        k->string, k->valuedouble, nk->valuedouble, max_drop);
                offenders++;
            }
        }
    }
    for (size_t i = 0; i < cur.n; i++)
        if (!find(&base, cur.e[i].name))
            printf("%-60s %14s %14s %9s  new (not in baseline)\n", cur.e[i].name, "-", "", "");
    rp_read_free(&base);
    rp_read_free(&cur);
    if (offenders) {
        fprintf(stderr, "drsch compare: %d regression%s\n", offenders, offenders > 1 ? "s" : "");
        return 1;
    }
    return 0;
}
