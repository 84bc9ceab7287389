/* Reads Google Benchmark-compatible JSON reports into per-name entries (see report_read.h).
 * Extracted from cmd_compare.c unchanged in behaviour so the fuzzer exercises exactly the
 * reader `drsch compare` uses. Does not print; does not validate counters (callers do). */
#include "report_read.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

static double unit_ns(const char *u)
{
    if (!u || !strcmp(u, "ns"))
        return 1;
    if (!strcmp(u, "us"))
        return 1e3;
    if (!strcmp(u, "ms"))
        return 1e6;
    if (!strcmp(u, "s"))
        return 1e9;
    return -1;
}

rp_read_entry *rp_read_find(rp_read_report *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->e[i].name, name))
            return &r->e[i];
    return NULL;
}

void rp_read_free(rp_read_report *r)
{
    if (!r)
        return;
    cJSON_Delete(r->root);
    free(r->e);
    memset(r, 0, sizeof *r);
}

static drsch_status fail(rp_read_report *r, drsch_error *err, drsch_status s, const char *fmt, ...)
{
    rp_read_free(r);
    va_list ap;
    va_start(ap, fmt);
    drsch_vfail(err, s, fmt, ap);
    va_end(ap);
    return s;
}

drsch_status rp_read_parse(const char *text, size_t len, const char *name, rp_read_report *r,
                           drsch_error *err)
{
    memset(r, 0, sizeof *r);
    /* cJSON_Parse needs a NUL-terminated string. */
    char *copy = malloc(len + 1);
    if (!copy)
        return fail(r, err, DRSCH_ERR_NOMEM, "%s: out of memory", name);
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = NULL;
    r->root = cJSON_ParseWithOpts(copy, &end, 0);
    if (!r->root) {
        /* where the parser stopped: a truncated report ends early, others have a stray byte */
        size_t at = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
        size_t line = 1, col = 1;
        for (size_t k = 0; k < at; k++) {
            col++;
            if (copy[k] == '\n') {
                line++;
                col = 1;
            }
        }
        char near[16] = "";
        if (at < len) {
            unsigned char ch = (unsigned char)copy[at];
            snprintf(near, sizeof near, ch >= 32 && ch < 127 ? "'%c'" : "byte 0x%02x", ch);
        }
        free(copy);
        if (at >= len)
            return fail(r, err, DRSCH_ERR_FORMAT,
                        "%s: JSON parse error at byte %zu (line %zu, column %zu): the text "
                        "ends early (a truncated report?)",
                        name, at, line, col);
        return fail(r, err, DRSCH_ERR_FORMAT,
                    "%s: JSON parse error at byte %zu (line %zu, column %zu), at %s", name, at,
                    line, col, near);
    }
    free(copy);
    cJSON *b = r->root ? cJSON_GetObjectItemCaseSensitive(r->root, "benchmarks") : NULL;
    if (!cJSON_IsArray(b))
        return fail(r, err, DRSCH_ERR_FORMAT,
                    "%s: not a Google Benchmark JSON report (no \"benchmarks\" array)", name);
    r->e = calloc((size_t)cJSON_GetArraySize(b) + 1, sizeof *r->e);
    if (!r->e)
        return fail(r, err, DRSCH_ERR_NOMEM, "%s: out of memory", name);
    int idx = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, b)
    {
        idx++;
        cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "run_name");
        if (!cJSON_IsString(nm))
            nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        cJSON *rt = cJSON_GetObjectItemCaseSensitive(it, "real_time");
        cJSON *tu = cJSON_GetObjectItemCaseSensitive(it, "time_unit");
        cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "run_type");
        cJSON *agg = cJSON_GetObjectItemCaseSensitive(it, "aggregate_name");
        double scale = unit_ns(cJSON_IsString(tu) ? tu->valuestring : NULL);
        if (!cJSON_IsString(nm) || !cJSON_IsNumber(rt) || scale < 0)
            return fail(r, err, DRSCH_ERR_FORMAT,
                        "%s: benchmarks[%d] lacks name, real_time or a valid time_unit", name,
                        idx - 1);
        int is_agg = cJSON_IsString(type) && !strcmp(type->valuestring, "aggregate");
        if (is_agg && !(cJSON_IsString(agg) && !strcmp(agg->valuestring, "median")))
            continue; /* mean, stddev, cv: not compared */
        rp_read_entry *e = rp_read_find(r, nm->valuestring);
        if (!e) {
            e = &r->e[r->n++];
            snprintf(e->name, sizeof e->name, "%s", nm->valuestring);
        }
        if (is_agg) {
            e->median_time = rt->valuedouble * scale;
            e->has_median = 1;
        } else if (e->nt < RP_READ_MAX_REPS) {
            e->times[e->nt++] = rt->valuedouble * scale;
        }
        if (!e->counters)
            e->counters = it;
    }
    return DRSCH_OK;
}

drsch_status rp_read_file(const char *path, rp_read_report *r, drsch_error *err)
{
    memset(r, 0, sizeof *r);
    /* a regular file only: a directory, a FIFO (which would block) or a device is refused */
    uint8_t *data = NULL;
    size_t len = 0;
    drsch_status st = fio_read_file(path, "JSON report", &data, &len, err);
    if (st != DRSCH_OK)
        return st;
    char *text = (char *)data;
    drsch_status s = rp_read_parse(text, (size_t)len, path, r, err);
    free(text);
    return s;
}

static int cmp_time(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of an entry's repetitions (its "median" aggregate when it has one); sorts times. */
static double run_median(rp_read_entry *e)
{
    if (e->has_median || e->nt == 0)
        return e->median_time;
    qsort(e->times, (size_t)e->nt, sizeof e->times[0], cmp_time);
    int h = e->nt / 2;
    return e->nt % 2 ? e->times[h] : 0.5 * (e->times[h - 1] + e->times[h]);
}

drsch_status rp_read_runs(const char *const *paths, size_t n, const char *name, rp_read_report *r,
                          drsch_error *err)
{
    memset(r, 0, sizeof *r);
    if (n == 0 || n > RP_READ_MAX_REPS)
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: %zu runs; 1 to %d can be compared", name, n,
                          RP_READ_MAX_REPS);
    r->root = cJSON_CreateArray(); /* owns every run's document, so counters stay valid */
    size_t cap = 0;
    if (!r->root)
        return fail(r, err, DRSCH_ERR_NOMEM, "%s: out of memory", name);
    for (size_t f = 0; f < n; f++) {
        rp_read_report one;
        drsch_status st = rp_read_file(paths[f], &one, err);
        if (st != DRSCH_OK) {
            rp_read_free(r);
            return st;
        }
        cJSON_AddItemToArray(r->root, one.root);
        one.root = NULL;
        for (size_t i = 0; i < one.n; i++) {
            rp_read_entry *src = &one.e[i];
            if (!src->nt && !src->has_median)
                continue;
            rp_read_entry *e = rp_read_find(r, src->name);
            if (!e) {
                if (r->n == cap) {
                    size_t nc = cap ? 2 * cap : 16;
                    rp_read_entry *grown = realloc(r->e, nc * sizeof *grown);
                    if (!grown) {
                        rp_read_free(&one);
                        return fail(r, err, DRSCH_ERR_NOMEM, "%s: out of memory", name);
                    }
                    r->e = grown;
                    cap = nc;
                }
                e = &r->e[r->n++];
                memset(e, 0, sizeof *e);
                snprintf(e->name, sizeof e->name, "%s", src->name);
                e->counters = src->counters;
            }
            e->times[e->nt++] = run_median(src);
        }
        rp_read_free(&one);
    }
    return DRSCH_OK;
}
