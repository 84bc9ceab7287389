/* The comparison rules of drsch compare and drsch reproduce (see report_compare.h). */
#include "report_compare.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rpc_options_default(rpc_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_slowdown = 0.10;
    o->max_metric_drop = 0.01;
    o->gate_time = 1;
    o->alpha = 0.05;
}

int rpc_is_metric(const char *k)
{
    return k && (!strncmp(k, "mAP", 3) || !strncmp(k, "mINP", 4) || !strncmp(k, "rank-", 5) ||
                 !strncmp(k, "P_at", 4) || !strncmp(k, "precision", 9));
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts e->times (spread_of relies on it) and returns the median time. */
static double median_of(rp_read_entry *e)
{
    qsort(e->times, (size_t)e->nt, sizeof e->times[0], cmp_d);
    if (e->has_median || e->nt == 0)
        return e->median_time;
    return e->nt % 2 ? e->times[e->nt / 2] : 0.5 * (e->times[e->nt / 2 - 1] + e->times[e->nt / 2]);
}

static double spread_of(const rp_read_entry *e)
{
    return e->nt > 1 ? e->times[e->nt - 1] - e->times[0] : 0;
}

static int allowed(const rpc_options *o, const char *name)
{
    for (size_t i = 0; i < o->n_allow_missing; i++)
        if (fnmatch(o->allow_missing[i], name, 0) == 0)
            return 1;
    return 0;
}

typedef struct {
    rpc_result *r;
    size_t cap;
    int oom;
} builder;

static rpc_row *add(builder *b, rpc_kind kind, const char *entry, const char *counter)
{
    rpc_result *r = b->r;
    if (b->oom)
        return NULL;
    if (r->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        rpc_row *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows) {
            b->oom = 1;
            return NULL;
        }
        r->rows = rows;
        b->cap = cap;
    }
    rpc_row *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    row->kind = kind;
    row->verdict = RPC_OK;
    row->entry = entry;
    row->counter = counter;
    return row;
}

static void regression(rpc_result *r, rpc_row *row)
{
    row->verdict = RPC_REGRESSION;
    r->regressions++;
}

/* Whether the U test can reach alpha with na and nb repetitions: the smallest two-sided p-value
 * (every value of one sample above every value of the other) is 2 / C(na + nb, na). */
static int test_can_decide(int na, int nb, double alpha)
{
    if (na < 2 || nb < 2)
        return 0;
    double c = 1; /* C(na + nb, na), exact in doubles for the sizes a report holds */
    for (int i = 1; i <= na; i++)
        c = c * (nb + i) / i;
    return 2 / c < alpha;
}

static void compare_time(builder *b, const rpc_options *o, rp_read_entry *be, rp_read_entry *ce)
{
    if (!be->nt && !be->has_median)
        return;
    rpc_row *row = add(b, RPC_TIME, be->name, NULL);
    if (!row)
        return;
    double tb = median_of(be), tc = median_of(ce);
    row->base = tb;
    row->cur = tc;
    row->change = tb > 0 ? (tc - tb) / tb : 0;
    row->n_base = be->nt;
    row->n_cur = ce->nt;
    row->p = -1;
    int significant;
    rpc_mwu t;
    if (test_can_decide(be->nt, ce->nt, o->alpha) &&
        rpc_mann_whitney(ce->times, (size_t)ce->nt, be->times, (size_t)be->nt, &t, NULL) ==
            DRSCH_OK) {
        row->p = t.p;
        significant = t.p < o->alpha;
    } else {
        double noise = fmax(spread_of(be), spread_of(ce));
        significant = !(noise > 0 && fabs(tc - tb) <= noise);
    }
    if (!significant)
        row->verdict = RPC_NOISE;
    else if (row->change > o->max_slowdown) {
        if (o->gate_time)
            regression(b->r, row);
        else
            row->verdict = RPC_NOT_GATED;
    }
}

static void compare_metrics(builder *b, const rpc_options *o, const rp_read_entry *be,
                            const rp_read_entry *ce)
{
    rpc_result *r = b->r;
    cJSON *k;
    cJSON_ArrayForEach(k, be->counters)
    {
        if (!cJSON_IsNumber(k) || !rpc_is_metric(k->string))
            continue;
        r->metrics++;
        cJSON *ck = ce ? cJSON_GetObjectItemCaseSensitive(ce->counters, k->string) : NULL;
        if (!cJSON_IsNumber(ck)) {
            r->metrics_missing++;
            if (ce) { /* a missing entry is one row, not one per counter */
                rpc_row *row = add(b, RPC_MISSING_METRIC, be->name, k->string);
                if (row) {
                    row->base = k->valuedouble;
                    regression(r, row);
                }
            }
            continue;
        }
        rpc_row *row = add(b, RPC_METRIC, be->name, k->string);
        if (!row)
            return;
        row->base = k->valuedouble;
        row->cur = ck->valuedouble;
        row->change = row->cur - row->base;
        double drop = -row->change;
        if (row->cur == row->base)
            r->metrics_equal++;
        if (fabs(row->change) > o->max_metric_drop)
            r->metrics_beyond++;
        if (fabs(row->change) > r->max_diff)
            r->max_diff = fabs(row->change);
        if (drop > r->max_drop) {
            r->max_drop = drop;
            r->max_drop_row = (long)(r->n - 1);
        }
        if (drop > o->max_metric_drop)
            regression(r, row);
    }
}

drsch_status rpc_compare(rp_read_report *base, rp_read_report *cur, const rpc_options *o,
                         rpc_result *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    out->max_drop_row = -1;
    builder b = {.r = out};
    for (size_t i = 0; i < base->n; i++) {
        rp_read_entry *be = &base->e[i], *ce = rp_read_find(cur, be->name);
        if (!ce) {
            rpc_row *row = add(&b, RPC_MISSING_ENTRY, be->name, NULL);
            out->entries_missing++;
            if (row && allowed(o, be->name)) {
                row->verdict = RPC_ALLOWED;
                out->entries_allowed++;
            } else {
                if (row)
                    regression(out, row);
                compare_metrics(&b, o, be, NULL); /* counted as missing metrics */
            }
            continue;
        }
        compare_time(&b, o, be, ce);
        compare_metrics(&b, o, be, ce);
    }
    for (size_t i = 0; i < cur->n; i++)
        if (!rp_read_find(base, cur->e[i].name)) {
            add(&b, RPC_NEW_ENTRY, cur->e[i].name, NULL);
            out->entries_new++;
        }
    if (b.oom) {
        rpc_result_free(out);
        if (err)
            strcpy(err->msg, "out of memory comparing the reports");
        return DRSCH_ERR_NOMEM;
    }
    return DRSCH_OK;
}

void rpc_result_free(rpc_result *r)
{
    if (!r)
        return;
    free(r->rows);
    memset(r, 0, sizeof *r);
    r->max_drop_row = -1;
}

rpc_agreement rpc_agreement_of(const rpc_result *r)
{
    if (r->metrics == 0)
        return RPC_NO_METRICS;
    if (r->metrics_missing || r->metrics_beyond)
        return RPC_DIFFERENT;
    return r->metrics_equal == r->metrics ? RPC_IDENTICAL : RPC_WITHIN_NOISE;
}
