/* drsch reproduce: one command regenerates the paper's table on a dataset.
 *
 * Retrieval datasets (Fashion-MNIST / MNIST, CIFAR-10, NUS-WIDE): DRSCH models trained at each
 * code length, one longer model truncated to every length (bit-scalability; plain and weighted
 * ranking), and LSH and ITQ on the same pixels under the same protocol; the paper's published
 * figures beside them where the dataset is one of the paper's (results/paper/drsch_map.csv,
 * labelled "quoted, unverified").
 *
 * Re-identification (CUHK03, classic protocol): for each of the first N of the file's 20
 * testsets, one DRSCH model of --long-bits bits trained on the split's training identities
 * (identities are the classes), its codes truncated to every length (plain and weighted
 * ranking), and LSH and ITQ on colour thumbnails; CMC rank 1..20 (single-gallery-shot, 10
 * seeded samplings) and mAP per split and averaged. No published CUHK03 figure of DRSCH could
 * be confirmed, so none is printed. It does not train one model per length (5x the time) and
 * does not cover the 767/700 protocol.
 *
 * Writes DIR/report.json (Google Benchmark-compatible; metrics as counters; the context records
 * what is needed to rerun), DIR/table.md, the curves as .dat files and SVG plots drawn by gnuplot,
 * and the models. DIR defaults to runs/<dataset>[-quick] (git-ignored), so that a run never
 * overwrites the committed results/; the run ends with one line saying whether it reproduced the
 * committed report of the same name (results/<dataset>[-quick]/report.json of the source tree),
 * compared as drsch compare does (accuracy counters only: times depend on the machine).
 * Progress on stderr throughout. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "baselines.h"
#include "cli.h"
#include "commands.h"
#include "experiment.h"
#include "inputs.h"
#include "fileio.h"
#include "metrics.h"
#include "report.h"
#include "report_compare.h"
#include "report_read.h"
#include "train.h"
#include "version.h"

#define MAX_LENGTHS 8
#define MAX_ROWS 12

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch reproduce [--dataset SPEC] [--quick] [--out DIR] [options]\n\n"
        "Retrieval datasets: trains and evaluates DRSCH at 12, 24, 32 and 48 bits plus one longer\n"
        "model truncated to each length, with LSH and ITQ under the same protocol, and writes the\n"
        "paper's table (mAP vs code length) with the published figures beside it.\n"
        "CUHK03 (cuhk03:FILE.mat[:labeled|detected]): the classic protocol, one split per "
        "testset:\n"
        "one model of --long-bits bits per split, truncated to each length, with LSH and ITQ;\n"
        "CMC rank 1/5/10/20 and mAP per split and averaged, and the CMC curves.\n"
        "The last line says whether the run reproduced the committed figures (see --baseline).\n\n"
        "  --dataset SPEC   dataset (default fashion-mnist, the embedded default)\n"
        "  --quick          short schedule for CI (about 2 minutes on 2 cores): 1000 iterations\n"
        "                   per model; CUHK03: 150 iterations and 2 splits (about 3 minutes)\n"
        "  --out DIR        output folder (default runs/<dataset>, runs/<dataset>-quick with\n"
        "                   --quick); an explicit --out results/<dataset>[-quick] updates the\n"
        "                   committed results\n"
        "  --baseline FILE  report to compare the run's accuracy with at the end, as drsch "
        "compare\n"
        "                   does (default: results/<dataset>[-quick]/report.json of the source "
        "tree\n"
        "                   drsch was built from, when there is one)\n"
        "  --bits LIST      code lengths (default 12,24,32,48)\n"
        "  --long-bits B    the longer model truncated to each length (default 64)\n"
        "  --iters N        iterations per model (default 12000; CUHK03: 3000 per split, about\n"
        "                   20 minutes each on 2 cores); the learning rate steps down every third\n"
        "  --splits N       CUHK03: run the first N classic splits (default all: 20 in the\n"
        "                   CUHK03 release; --quick: 2)\n"
        "  --size HxW       resize NUS-WIDE / CUHK03 images on loading (default 32x32 / 160x60)\n"
        "  --seed S         seed of protocol, training, baselines and CMC sampling (default 1)\n"
        "  --threads T      OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores (default "
        "0)\n"
        "  --paper FILE     published figures (default: results/paper/drsch_map.csv of the source\n"
        "                   tree drsch was built from)\n"
        "  -h, --help       this text\n");
}

typedef struct {
    char method[96];
    double map[MAX_LENGTHS + 1], ties[MAX_LENGTHS + 1], pr2[MAX_LENGTHS + 1];
    int have[MAX_LENGTHS + 1];
    size_t no_relevant[MAX_LENGTHS + 1]; /* queries with no relevant item in the database */
    size_t queries;
    double seconds; /* training time */
} row;

typedef struct {
    const char *dir;
    uint64_t seed;
    int threads;
    double t0;
} run_ctx;

static void progress(const tr_progress *p, void *ctx)
{
    const char *tag = ctx;
    int eta = (int)(p->eta_seconds + 0.5);
    fprintf(stderr,
            "  [%s] iter %lld/%lld  loss %.4f  active %.1f%%  distinct %.0f%%  %.0f img/s  ETA "
            "%dm%02ds\n",
            tag, (long long)p->iter, (long long)p->iters, p->loss, 100 * p->active_share,
            100 * p->distinct_share, p->images_per_second, eta / 60, eta % 60);
}

/* Writes text to path whole (fileio.h); a failure is printed with the file and its cause. */
static int write_text(const char *path, const char *text)
{
    drsch_error fe;
    if (fio_write_file(path, text, strlen(text), 0, &fe) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", fe.msg);
        return -1;
    }
    return 0;
}

/* The training state (MODEL.state, what --resume needs; twice the model's size) is of no use to
 * reproduce once the model is trained: it is kept only while a model trains. */
static void drop_state(const char *model_path)
{
    char state[4300];
    snprintf(state, sizeof state, "%s.state", model_path);
    remove(state);
}

/* A growing string for the Markdown table and gnuplot files; failed: an allocation failed, the
 * text is incomplete (write_sbuf refuses to write it). */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* Writes the text of b to path whole; a text cut short by a failed allocation is not written. */
static int write_sbuf(const char *path, const sbuf *b)
{
    if (b->failed) {
        fprintf(stderr, "drsch reproduce: out of memory for the text of %s\n", path);
        return -1;
    }
    return write_text(path, b->s ? b->s : "");
}

/* Draws DIR/plots.gp with gnuplot; a missing or failing gnuplot is reported, not fatal (the data
 * and the script stay in DIR). */
static void run_gnuplot(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s/plots.gp'", dir);
    if (system(cmd) != 0)
        fprintf(stderr,
                "drsch reproduce: gnuplot failed or is missing (Debian package gnuplot-nox); the "
                "curves "
                "are in %s/*.dat and %s/plots.gp\n",
                dir, dir);
}

/* Float features of images idx[0..n) (pixels scaled to [0, 1], no crop) for the baselines. */
static float *pixels(const ds_dataset *d, const int64_t *idx, int64_t n)
{
    ds_augment a;
    ds_augment_default(&a);
    drsch_error de;
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)d->c * (size_t)d->h * (size_t)d->w + 1);
    if (x && ds_batch_build(d, idx, n, &a, 0, x, &de) != DRSCH_OK) {
        free(x);
        return NULL;
    }
    return x;
}

/* Paper figures for a dataset name ("cifar10", "nuswide") from the CSV; fills map by length. */
static int paper_row(const char *csv, const char *dataset, const uint32_t *lengths, int nl, row *r,
                     char *metric, size_t mcap)
{
    FILE *f = fopen(csv, "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strncmp(line, "dataset,", 8))
            continue;
        char ds[64], met[64], status[64];
        unsigned bits;
        double v;
        if (sscanf(line, "%63[^,],%63[^,],%u,%lf,%63[^,]", ds, met, &bits, &v, status) != 5 ||
            strcmp(ds, dataset))
            continue;
        for (int i = 0; i < nl; i++)
            if (lengths[i] == bits) {
                r->map[i] = v;
                r->have[i] = 1;
                found = 1;
                snprintf(metric, mcap, "%s", met);
            }
    }
    fclose(f);
    return found ? 0 : -1;
}

/* "DRSCH-64 truncated" -> "DRSCH-64_truncated": entry names without spaces, commas or brackets. */
static void slug(const char *method, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = method; *p && k + 1 < cap; p++)
        out[k++] =
            (*p == ' ' || *p == ',' || *p == '(' || *p == ')') ? (*p == ' ' ? '_' : '-') : *p;
    out[k] = '\0';
}

static void add_entry(rp_report *rep, const char *dataset, const row *r, const uint32_t *lengths,
                      int nl, int threads, const char *metric)
{
    for (int i = 0; i < nl; i++) {
        if (!r->have[i])
            continue;
        char name[256], sl[96];
        slug(r->method, sl, sizeof sl);
        snprintf(name, sizeof name, "reproduce/%s/%s/bits:%u", dataset, sl, lengths[i]);
        rp_entry *e = rp_add(rep, name, 1, r->seconds, r->seconds, "s", threads);
        rp_counter(e, "mAP", r->map[i]);
        if (r->queries) {
            rp_counter(e, "queries", (double)r->queries);
            rp_counter(e, "queries_without_relevant", (double)r->no_relevant[i]);
        }
        if (r->ties[i] > 0)
            rp_counter(e, "mAP_tie_aware", r->ties[i]);
        if (r->pr2[i] >= 0)
            rp_counter(e, "P_at_radius", r->pr2[i]);
        rp_label(e, metric);
    }
}

typedef enum { COL_MAP, COL_TIES, COL_PR2 } column;

/* One Markdown table of a metric: a row per method, a column per code length; rows without any
 * value of that metric are left out, missing cells blank. */
static void md_table(sbuf *md, const row *rows, int nrows, const uint32_t *cols, int ncols,
                     column what)
{
    sb_printf(md, "| method |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " %u bits |", cols[i]);
    sb_printf(md, "\n| --- |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    for (int k = 0; k < nrows; k++) {
        const double *v = what == COL_MAP    ? rows[k].map
                          : what == COL_TIES ? rows[k].ties
                                             : rows[k].pr2;
        int ok[MAX_LENGTHS + 1], any = 0;
        for (int i = 0; i < ncols; i++) {
            ok[i] =
                rows[k].have[i] && (what == COL_MAP || (what == COL_TIES ? v[i] > 0 : v[i] >= 0));
            any |= ok[i];
        }
        if (!any)
            continue;
        sb_printf(md, "| %s |", rows[k].method);
        for (int i = 0; i < ncols; i++)
            ok[i] ? sb_printf(md, " %.4f |", v[i]) : sb_printf(md, " |");
        sb_printf(md, "\n");
    }
}

static int retrieval(const run_ctx *rc, const ds_dataset *d, const ds_split *sp,
                     const tr_config *base, const uint32_t *lengths, int nl, uint32_t long_bits,
                     const char *paper_csv, rp_report *rep, sbuf *md)
{
    const int multi = d->label_kind == DS_LABELS_MULTI;
    const char *metric = multi ? "mAP@5000" : "mAP@all";
    ev_options opt = {.topk = multi ? 5000 : 0, .radius = 2, .pr_curve = 1};
    row rows[MAX_ROWS];
    int nrows = 0;
    memset(rows, 0, sizeof rows);
    sbuf pr = {0};
    char path[4200];
    int rc_out = 1;

    /* One model per length, then the long model truncated. */
    for (int m = 0; m <= nl; m++) {
        uint32_t B = m < nl ? lengths[m] : long_bits;
        tr_config c = *base;
        c.bits = (int32_t)B;
        char tag[64];
        snprintf(tag, sizeof tag, "DRSCH %u bits", B);
        snprintf(path, sizeof path, "%s/model-%u.bin", rc->dir, B);
        fprintf(stderr, "drsch reproduce: training %s (%lld iterations) -> %s\n", tag,
                (long long)c.iters, path);
        drsch_error te;
        double t = cli_now();
        drsch_status st = tr_train(&c, d, sp, path, NULL, NULL, progress, tag, &te);
        double secs = cli_now() - t;
        if (st != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: %s: %s\n", tag, te.msg);
            goto done;
        }
        drop_state(path);
        xp_codes codes;
        drsch_error xe;
        drsch_status xs = xp_model_codes(path, d, sp->query, sp->n_query, sp->db, sp->n_db,
                                         NN_PRECISION_F32, &codes, &xe);
        if (xs != DRSCH_OK) {
            if (strcmp(xe.file, path) == 0) /* loading the model failed: the message names it */
                fprintf(stderr, "drsch reproduce: %s\n", xe.msg);
            else
                fprintf(stderr, "drsch reproduce: %s: %s\n", tag, xe.msg);
            goto done;
        }
        const hm_codes *q = &codes.query, *db = &codes.db;
        const float *w = codes.weights;
        /* Row 0: models trained at each length; rows 1, 2: the long model truncated. */
        row *r_len = &rows[0], *r_cut = &rows[1], *r_wcut = &rows[2];
        snprintf(r_len->method, sizeof r_len->method, "DRSCH (trained at each length)");
        snprintf(r_cut->method, sizeof r_cut->method, "DRSCH-%u truncated", long_bits);
        snprintf(r_wcut->method, sizeof r_wcut->method, "DRSCH-%u truncated, weighted ranking",
                 long_bits);
        for (int i = 0; i <= nl; i++) {
            uint32_t b = i < nl ? lengths[i] : long_bits;
            if ((m < nl && i != m) || b > B)
                continue;
            for (int weighted = 0; weighted < 1 + (m == nl); weighted++) {
                ev_retrieval r;
                drsch_error ee;
                ev_options o = opt;
                o.pr_curve = !weighted && m < nl;
                if (xp_eval_retrieval(d, sp, q, db, b, weighted ? w : NULL, &o, &r, &ee) !=
                    DRSCH_OK) {
                    fprintf(stderr, "drsch reproduce: %s\n", ee.msg);
                    xp_codes_free(&codes);
                    goto done;
                }
                row *dst = m < nl ? r_len : weighted ? r_wcut : r_cut;
                int col = i;
                dst->map[col] = multi ? r.map_at_k : r.map_all;
                dst->ties[col] = multi ? 0 : r.map_tie_aware;
                dst->pr2[col] = r.precision_radius;
                dst->no_relevant[col] = r.queries_without_relevant;
                dst->queries = r.queries;
                dst->have[col] = 1;
                dst->seconds = m < nl ? dst->seconds + secs : secs;
                fprintf(stderr, "drsch reproduce: %s at %u bits%s: %s %.4f\n", tag, b,
                        weighted ? " (weighted)" : "", metric, dst->map[col]);
                if (o.pr_curve) {
                    sb_printf(&pr, "# %u bits: radius recall precision\n", b);
                    for (size_t k = 0; k < r.pr_points; k++)
                        sb_printf(&pr, "%zu %.6f %.6f\n", k, r.pr_recall[k], r.pr_precision[k]);
                    sb_printf(&pr, "\n\n");
                }
                ev_retrieval_free(&r);
            }
        }
        xp_codes_free(&codes);
    }
    nrows = 3;

    /* Baselines on the pixels of the same split. */
    fprintf(stderr, "drsch reproduce: LSH and ITQ baselines on %d x %d x %d pixels\n", d->c, d->h,
            d->w);
    {
        float *xtr = pixels(d, sp->train, sp->n_train), *xq = pixels(d, sp->query, sp->n_query);
        int dim = d->c * d->h * d->w;
        row *r_lsh = &rows[nrows], *r_itq = &rows[nrows + 1];
        snprintf(r_lsh->method, sizeof r_lsh->method, "LSH (pixels)");
        snprintf(r_itq->method, sizeof r_itq->method, "ITQ (pixels)");
        if (!xtr || !xq) {
            fprintf(stderr, "drsch reproduce: out of memory for baseline features\n");
            free(xtr);
            free(xq);
            goto done;
        }
        for (int i = 0; i < nl; i++) {
            for (int method = 0; method < 2; method++) {
                bl_model bm;
                drsch_error be;
                double t = cli_now();
                int bad = method ? bl_itq_train(xtr, (size_t)sp->n_train, dim, lengths[i], 50,
                                                rc->seed, &bm, &be)
                                 : bl_lsh_train(xtr, (size_t)sp->n_train, dim, lengths[i], rc->seed,
                                                &bm, &be);
                if (bad) {
                    fprintf(stderr, "drsch reproduce: %s\n", be.msg);
                    free(xtr);
                    free(xq);
                    goto done;
                }
                hm_codes q = {0}, db = {0};
                drsch_error he;
                int ok = hm_codes_alloc(&q, (size_t)sp->n_query, lengths[i], &he) == DRSCH_OK &&
                         hm_codes_alloc(&db, (size_t)sp->n_db, lengths[i], &he) == DRSCH_OK;
                if (ok)
                    bl_encode(&bm, xq, (size_t)sp->n_query, &q, 0);
                for (int64_t s = 0; ok && s < sp->n_db; s += 8192) {
                    int64_t cnt = sp->n_db - s < 8192 ? sp->n_db - s : 8192;
                    float *xd = pixels(d, sp->db + s, cnt);
                    ok = xd != NULL;
                    if (ok)
                        bl_encode(&bm, xd, (size_t)cnt, &db, (size_t)s);
                    free(xd);
                }
                double secs = cli_now() - t;
                bl_model_free(&bm);
                ev_retrieval r;
                drsch_error ee;
                ev_options o = opt;
                o.pr_curve = 0;
                if (!ok ||
                    xp_eval_retrieval(d, sp, &q, &db, lengths[i], NULL, &o, &r, &ee) != DRSCH_OK) {
                    fprintf(stderr, "drsch reproduce: %s\n", ok ? ee.msg : "out of memory");
                    hm_codes_free(&q);
                    hm_codes_free(&db);
                    free(xtr);
                    free(xq);
                    goto done;
                }
                row *dst = method ? r_itq : r_lsh;
                dst->map[i] = multi ? r.map_at_k : r.map_all;
                dst->ties[i] = multi ? 0 : r.map_tie_aware;
                dst->pr2[i] = r.precision_radius;
                dst->no_relevant[i] = r.queries_without_relevant;
                dst->queries = r.queries;
                dst->have[i] = 1;
                dst->seconds += secs;
                fprintf(stderr, "drsch reproduce: %s at %u bits: %s %.4f\n", dst->method,
                        lengths[i], metric, dst->map[i]);
                ev_retrieval_free(&r);
                hm_codes_free(&q);
                hm_codes_free(&db);
            }
        }
        free(xtr);
        free(xq);
        nrows += 2;
    }

    /* The paper's figures where the dataset is one of the paper's. */
    const char *paper_name = !strcmp(d->name, "cifar10")       ? "cifar10"
                             : !strncmp(d->name, "nuswide", 7) ? "nuswide"
                                                               : NULL;
    char paper_metric[64] = "";
    int have_paper = 0;
    if (paper_name) {
        row *p = &rows[nrows];
        snprintf(p->method, sizeof p->method, "DRSCH, published (quoted, unverified)");
        for (int i = 0; i < nl; i++)
            p->pr2[i] = -1;
        if (paper_row(paper_csv, paper_name, lengths, nl, p, paper_metric, sizeof paper_metric) ==
            0) {
            have_paper = 1;
            nrows++;
        } else {
            fprintf(stderr, "drsch reproduce: no published figures for %s in %s\n", paper_name,
                    paper_csv);
        }
    }

    /* Report entries and the Markdown table. */
    for (int i = 0; i < nrows; i++)
        if (!(have_paper && i == nrows - 1))
            add_entry(rep, d->name, &rows[i], lengths, nl + 1, rc->threads, metric);
    uint32_t cols[MAX_LENGTHS + 1];
    memcpy(cols, lengths, sizeof(uint32_t) * (size_t)nl);
    cols[nl] = long_bits;
    sb_printf(md, "## %s by code length\n\n", metric);
    md_table(md, rows, nrows, cols, nl + 1, COL_MAP);
    if (have_paper)
        sb_printf(
            md,
            "\nThe published row is %s as quoted by later work (results/paper/drsch_map.csv): "
            "quoted, unverified.\n",
            paper_metric);
    else
        sb_printf(md, "\nThe paper reports no figures for this dataset; its CIFAR-10 and NUS-WIDE "
                      "figures are in "
                      "results/paper/drsch_map.csv (quoted, unverified).\n");
    /* Relevance depends on the labels only, so every row has the same count. */
    if (rows[0].queries)
        sb_printf(md,
                  "\n%zu of %zu queries have no relevant item in the database (counted as AP 0).\n",
                  rows[0].no_relevant[0], rows[0].queries);
    sb_printf(md,
              "\nBit-scalability: the %u-bit model truncated to each length against a model "
              "trained at that "
              "length (mAP points, truncated minus trained):",
              long_bits);
    for (int i = 0; i < nl; i++)
        sb_printf(md, " %u bits %+.1f;", lengths[i], 100 * (rows[1].map[i] - rows[0].map[i]));
    sb_printf(
        md,
        "\n\nTie-aware %s (expected value when tied Hamming distances are ordered at random), same "
        "rows:\n\n",
        metric);
    md_table(md, rows, nrows, cols, nl + 1, COL_TIES);
    sb_printf(md,
              "\nPrecision within Hamming radius 2 (0 when nothing is retrieved), same rows:\n\n");
    md_table(md, rows, nrows, cols, nl + 1, COL_PR2);

    /* Curves and plots. */
    sbuf dat = {0}, gp = {0};
    /* A plain header line (not a comment): gnuplot's columnhead() takes the first line it reads. */
    sb_printf(&dat, "bits");
    for (int k = 0; k < nrows; k++)
        sb_printf(&dat, " \"%s\"", rows[k].method);
    sb_printf(&dat, "\n");
    for (int i = 0; i <= nl; i++) {
        sb_printf(&dat, "%u", cols[i]);
        for (int k = 0; k < nrows; k++)
            rows[k].have[i] ? sb_printf(&dat, " %.6f", rows[k].map[i]) : sb_printf(&dat, " NaN");
        sb_printf(&dat, "\n");
    }
    snprintf(path, sizeof path, "%s/map_vs_bits.dat", rc->dir);
    int wbad = write_sbuf(path, &dat);
    snprintf(path, sizeof path, "%s/pr.dat", rc->dir);
    wbad = wbad || write_sbuf(path, &pr);
    sb_printf(
        &gp,
        "set terminal svg size 720,480 dynamic noenhanced font 'sans,12'\nset datafile missing "
        "'NaN'\n"
        "set output '%s/map_vs_bits.svg'\nset title '%s: %s vs code length'\n"
        "set xlabel 'bits'\nset ylabel '%s'\nset key bottom right\nset grid\nset yrange [0:1]\n"
        "plot for [k=2:%d] '%s/map_vs_bits.dat' using 1:k with linespoints title columnhead(k)\n",
        rc->dir, d->name, metric, metric, nrows + 1, rc->dir);
    sb_printf(
        &gp,
        "set output '%s/pr.svg'\nset title '%s: precision-recall over Hamming radius (DRSCH)'\n"
        "set xlabel 'recall'\nset ylabel 'precision'\nset xrange [0:1]\nset key bottom left\n"
        "plot for [i=0:%d] '%s/pr.dat' index i using 2:3 with linespoints title sprintf('%%d "
        "bits', "
        "word('",
        rc->dir, d->name, nl - 1, rc->dir);
    for (int i = 0; i < nl; i++)
        sb_printf(&gp, "%s%u", i ? " " : "", lengths[i]);
    sb_printf(&gp, "', i+1)+0)\n");
    snprintf(path, sizeof path, "%s/plots.gp", rc->dir);
    wbad = wbad || write_sbuf(path, &gp);
    free(dat.s);
    free(gp.s);
    if (wbad)
        goto done;
    run_gnuplot(rc->dir);
    sb_printf(md,
              "\nPlots: `map_vs_bits.svg` (%s vs bits), `pr.svg` (precision-recall of the models "
              "trained at "
              "each length, one point per Hamming radius); data in `map_vs_bits.dat`, `pr.dat`.\n",
              metric);
    rc_out = 0;
done:
    free(pr.s);
    return rc_out;
}

/* ---- Re-identification: CUHK03, classic protocol ------------------------------------------ */

/* CMC ranks of the table and of the report counters (the usual re-id summary, INTERNALS.md). */
static const int REID_RANKS[] = {1, 5, 10, 20};
#define N_REID_RANKS (int)(sizeof REID_RANKS / sizeof REID_RANKS[0])
/* Single-gallery-shot samplings per split (INTERNALS.md: seeded and repeated 10 times). */
#define REID_REPEATS 10
/* LSH and ITQ see colour thumbnails of at most THUMB_H x THUMB_W block averages, so that ITQ's
 * PCA (a dim x dim covariance) stays cheap: 20 x 8 x 3 = 480 dimensions for 160 x 60 crops. */
#define THUMB_H 20
#define THUMB_W 8

enum { RR_DRSCH, RR_WEIGHTED, RR_LSH, RR_ITQ, RR_COUNT };

typedef struct {
    char method[96];
    ev_reid *r;      /* [split * ncols + col] */
    uint8_t *have;   /* [split * ncols + col] */
    double *seconds; /* [split]: training (DRSCH), training + encoding (LSH, ITQ) */
} reid_row;

typedef struct {
    int nsplits, ncols;
    uint32_t cols[MAX_LENGTHS + 1]; /* the --bits lengths, then --long-bits */
    uint32_t model_bits;
    reid_row rows[RR_COUNT];
    char (*split_name)[256];                /* [split] the protocol's description of the split */
    int64_t *n_query, *n_gallery, *n_train; /* [split] */
} reid_results;

typedef struct {
    double cmc[EV_CMC_RANKS], map;       /* means over the splits */
    double sd_cmc[EV_CMC_RANKS], sd_map; /* sample standard deviations (0 with one split) */
    int n;                               /* splits averaged */
} reid_mean;

static void reid_results_free(reid_results *res)
{
    for (int m = 0; m < RR_COUNT; m++) {
        free(res->rows[m].r);
        free(res->rows[m].have);
        free(res->rows[m].seconds);
    }
    free(res->split_name);
    free(res->n_query);
    free(res->n_gallery);
    free(res->n_train);
}

static int reid_results_alloc(reid_results *res, int nsplits, const uint32_t *cols, int ncols)
{
    memset(res, 0, sizeof *res);
    res->nsplits = nsplits;
    res->ncols = ncols;
    memcpy(res->cols, cols, sizeof(uint32_t) * (size_t)ncols);
    size_t cells = (size_t)nsplits * (size_t)ncols;
    int bad = 0;
    for (int m = 0; m < RR_COUNT; m++) {
        res->rows[m].r = calloc(cells, sizeof(ev_reid));
        res->rows[m].have = calloc(cells, 1);
        res->rows[m].seconds = calloc((size_t)nsplits, sizeof(double));
        bad |= !res->rows[m].r || !res->rows[m].have || !res->rows[m].seconds;
    }
    res->split_name = calloc((size_t)nsplits, sizeof *res->split_name);
    res->n_query = calloc((size_t)nsplits, sizeof(int64_t));
    res->n_gallery = calloc((size_t)nsplits, sizeof(int64_t));
    res->n_train = calloc((size_t)nsplits, sizeof(int64_t));
    if (bad || !res->split_name || !res->n_query || !res->n_gallery || !res->n_train) {
        reid_results_free(res);
        return -1;
    }
    return 0;
}

static reid_mean reid_average(const reid_results *res, int m, int col)
{
    reid_mean a;
    memset(&a, 0, sizeof a);
    const reid_row *row = &res->rows[m];
    for (int s = 0; s < res->nsplits; s++) {
        size_t k = (size_t)s * (size_t)res->ncols + (size_t)col;
        if (!row->have[k])
            continue;
        a.n++;
        a.map += row->r[k].map;
        for (int r = 0; r < EV_CMC_RANKS; r++)
            a.cmc[r] += row->r[k].cmc[r];
    }
    if (!a.n)
        return a;
    a.map /= a.n;
    for (int r = 0; r < EV_CMC_RANKS; r++)
        a.cmc[r] /= a.n;
    if (a.n < 2)
        return a;
    for (int s = 0; s < res->nsplits; s++) {
        size_t k = (size_t)s * (size_t)res->ncols + (size_t)col;
        if (!row->have[k])
            continue;
        a.sd_map += (row->r[k].map - a.map) * (row->r[k].map - a.map);
        for (int r = 0; r < EV_CMC_RANKS; r++)
            a.sd_cmc[r] += (row->r[k].cmc[r] - a.cmc[r]) * (row->r[k].cmc[r] - a.cmc[r]);
    }
    a.sd_map = sqrt(a.sd_map / (a.n - 1));
    for (int r = 0; r < EV_CMC_RANKS; r++)
        a.sd_cmc[r] = sqrt(a.sd_cmc[r] / (a.n - 1));
    return a;
}

/* Block-averaged colour thumbnails of images idx[0..n): n x (c * gh * gw) floats in [0, 1],
 * gh = min(h, THUMB_H), gw = min(w, THUMB_W); cell (y, x) averages rows [y h / gh, (y + 1) h / gh)
 * and the matching columns. */
static float *thumbs(const ds_dataset *d, const int64_t *idx, int64_t n, int *dim)
{
    int gh = d->h < THUMB_H ? d->h : THUMB_H, gw = d->w < THUMB_W ? d->w : THUMB_W;
    const int D = d->c * gh * gw;
    *dim = D;
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)D);
    if (!x)
        return NULL;
    size_t plane = (size_t)d->h * (size_t)d->w;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *img = d->images + (size_t)idx[i] * (size_t)d->c * plane;
        float *out = x + (size_t)i * (size_t)D;
        for (int ch = 0; ch < d->c; ch++)
            for (int cy = 0; cy < gh; cy++)
                for (int cx = 0; cx < gw; cx++) {
                    int y0 = cy * d->h / gh, y1 = (cy + 1) * d->h / gh;
                    int x0 = cx * d->w / gw, x1 = (cx + 1) * d->w / gw;
                    unsigned sum = 0;
                    for (int y = y0; y < y1; y++)
                        for (int xx = x0; xx < x1; xx++)
                            sum += img[(size_t)ch * plane + (size_t)y * (size_t)d->w + (size_t)xx];
                    *out++ = (float)sum / (255.0f * (float)((y1 - y0) * (x1 - x0)));
                }
    }
    return x;
}

/* LSH and ITQ on the split's thumbnails, trained on its training identities, at every column. */
static int reid_baselines(const run_ctx *rc, const ds_dataset *d, const ds_split *sp, int s,
                          reid_results *res)
{
    int dim = 0, status = 1;
    float *xtr = thumbs(d, sp->train, sp->n_train, &dim),
          *xq = thumbs(d, sp->query, sp->n_query, &dim), *xg = thumbs(d, sp->db, sp->n_db, &dim);
    if (!xtr || !xq || !xg) {
        fprintf(stderr, "drsch reproduce: out of memory for the baselines' thumbnails\n");
        goto done;
    }
    for (int method = RR_LSH; method <= RR_ITQ; method++) {
        reid_row *row = &res->rows[method];
        for (int i = 0; i < res->ncols; i++) {
            uint32_t b = res->cols[i];
            if (method == RR_ITQ && (int)b > dim) {
                if (s == 0)
                    fprintf(stderr,
                            "drsch reproduce: ITQ at %u bits skipped: the thumbnails have %d "
                            "dimensions\n",
                            b, dim);
                continue;
            }
            bl_model bm;
            drsch_error be;
            double t = cli_now();
            int bad = method == RR_ITQ
                          ? bl_itq_train(xtr, (size_t)sp->n_train, dim, b, 50, rc->seed, &bm, &be)
                          : bl_lsh_train(xtr, (size_t)sp->n_train, dim, b, rc->seed, &bm, &be);
            if (bad) {
                fprintf(stderr, "drsch reproduce: %s at %u bits: %s\n", row->method, b, be.msg);
                goto done;
            }
            hm_codes q = {0}, g = {0};
            drsch_error he;
            int ok = hm_codes_alloc(&q, (size_t)sp->n_query, b, &he) == DRSCH_OK &&
                     hm_codes_alloc(&g, (size_t)sp->n_db, b, &he) == DRSCH_OK;
            if (ok) {
                bl_encode(&bm, xq, (size_t)sp->n_query, &q, 0);
                bl_encode(&bm, xg, (size_t)sp->n_db, &g, 0);
            }
            bl_model_free(&bm);
            row->seconds[s] += cli_now() - t;
            size_t k = (size_t)s * (size_t)res->ncols + (size_t)i;
            drsch_error ee;
            if (!ok || xp_eval_reid(d, sp, &q, &g, b, NULL, REID_REPEATS, rc->seed, &row->r[k],
                                    &ee) != DRSCH_OK) {
                fprintf(stderr, "drsch reproduce: %s at %u bits: %s\n", row->method, b,
                        ok ? ee.msg : "out of memory");
                hm_codes_free(&q);
                hm_codes_free(&g);
                goto done;
            }
            row->have[k] = 1;
            hm_codes_free(&q);
            hm_codes_free(&g);
        }
    }
    status = 0;
done:
    free(xtr);
    free(xq);
    free(xg);
    return status;
}

/* One split: the classic protocol's testsets{s + 1}, a DRSCH model trained on its training
 * identities, its codes truncated to every column (plain and weighted ranking), the baselines. */
static int reid_split(const run_ctx *rc, const ds_dataset *d, int s, const tr_config *base,
                      reid_results *res)
{
    ds_split sp = {0};
    drsch_error de;
    /* The whole second camera as gallery: single-gallery-shot sampling happens in the metric,
     * repeated, instead of once in the split. */
    ds_cuhk03_opts co = {.testset = s, .single_shot = 0};
    if (ds_split_cuhk03_classic(d, &co, rc->seed, &sp, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: split %d: %s\n", s + 1, de.msg);
        return 1;
    }
    int status = 1;
    xp_codes codes = {0};
    snprintf(res->split_name[s], sizeof res->split_name[s], "%s", sp.name);
    res->n_query[s] = sp.n_query;
    res->n_gallery[s] = sp.n_db;
    res->n_train[s] = sp.n_train;
    fprintf(stderr,
            "drsch reproduce: split %d/%d: %s; %lld queries, %lld gallery, %lld training images\n",
            s + 1, res->nsplits, sp.name, (long long)sp.n_query, (long long)sp.n_db,
            (long long)sp.n_train);
    if (sp.n_query == 0 || sp.n_db == 0) {
        fprintf(stderr, "drsch reproduce: split %d leaves no query or no gallery image\n", s + 1);
        goto done;
    }
    char path[4200], tag[64];
    uint32_t B = res->model_bits;
    snprintf(path, sizeof path, "%s/model-split%d-%u.bin", rc->dir, s + 1, B);
    snprintf(tag, sizeof tag, "split %d/%d, %u bits", s + 1, res->nsplits, B);
    tr_config c = *base;
    c.bits = (int32_t)B;
    fprintf(stderr, "drsch reproduce: training DRSCH, %s (%lld iterations) -> %s\n", tag,
            (long long)c.iters, path);
    drsch_error te;
    double t = cli_now();
    if (tr_train(&c, d, &sp, path, NULL, NULL, progress, tag, &te) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s: %s\n", tag, te.msg);
        goto done;
    }
    res->rows[RR_DRSCH].seconds[s] = res->rows[RR_WEIGHTED].seconds[s] = cli_now() - t;
    drop_state(path);
    drsch_error xe;
    drsch_status xs = xp_model_codes(path, d, sp.query, sp.n_query, sp.db, sp.n_db,
                                     NN_PRECISION_F32, &codes, &xe);
    if (xs != DRSCH_OK) {
        if (strcmp(xe.file, path) == 0) /* loading the model failed: the message names it */
            fprintf(stderr, "drsch reproduce: %s\n", xe.msg);
        else
            fprintf(stderr, "drsch reproduce: %s: %s\n", tag, xe.msg);
        goto done;
    }
    for (int weighted = 0; weighted < 2; weighted++) {
        reid_row *row = &res->rows[weighted ? RR_WEIGHTED : RR_DRSCH];
        for (int i = 0; i < res->ncols; i++) {
            size_t k = (size_t)s * (size_t)res->ncols + (size_t)i;
            drsch_error ee;
            if (xp_eval_reid(d, &sp, &codes.query, &codes.db, res->cols[i],
                             weighted ? codes.weights : NULL, REID_REPEATS, rc->seed, &row->r[k],
                             &ee) != DRSCH_OK) {
                fprintf(stderr, "drsch reproduce: %s: %s\n", tag, ee.msg);
                goto done;
            }
            row->have[k] = 1;
        }
    }
    for (int i = 0; i < res->ncols; i++) {
        const ev_reid *r = &res->rows[RR_DRSCH].r[(size_t)s * (size_t)res->ncols + (size_t)i];
        fprintf(
            stderr,
            "drsch reproduce: split %d, DRSCH at %u bits: rank-1 %.4f  rank-5 %.4f  rank-10 %.4f  "
            "rank-20 %.4f  mAP %.4f  (%zu queries)\n",
            s + 1, res->cols[i], r->cmc[0], r->cmc[4], r->cmc[9], r->cmc[19], r->map, r->queries);
    }
    fprintf(stderr, "drsch reproduce: split %d: LSH and ITQ on %s\n", s + 1, "colour thumbnails");
    if (reid_baselines(rc, d, &sp, s, res))
        goto done;
    status = 0;
done:
    xp_codes_free(&codes);
    ds_split_free(&sp);
    return status;
}

static void reid_counters(rp_entry *e, const double *cmc, double map)
{
    for (int r = 0; r < N_REID_RANKS; r++) {
        char cn[16];
        snprintf(cn, sizeof cn, "rank-%d", REID_RANKS[r]);
        rp_counter(e, cn, cmc[REID_RANKS[r] - 1]);
    }
    rp_counter(e, "mAP", map);
}

/* Entries: reproduce/<dataset>/<method>/split:<k>/bits:<b> for every split, and
 * reproduce/<dataset>/<method>/mean/bits:<b> averaged over the splits. */
static void reid_report(rp_report *rep, const ds_dataset *d, const reid_results *res, int threads)
{
    for (int m = 0; m < RR_COUNT; m++) {
        const reid_row *row = &res->rows[m];
        char sl[96], name[300], label[300];
        slug(row->method, sl, sizeof sl);
        for (int i = 0; i < res->ncols; i++) {
            double secs = 0;
            for (int s = 0; s < res->nsplits; s++) {
                size_t k = (size_t)s * (size_t)res->ncols + (size_t)i;
                if (!row->have[k])
                    continue;
                secs += row->seconds[s];
                snprintf(name, sizeof name, "reproduce/%s/%s/split:%d/bits:%u", d->name, sl, s + 1,
                         res->cols[i]);
                rp_entry *e = rp_add(rep, name, 1, row->seconds[s], row->seconds[s], "s", threads);
                reid_counters(e, row->r[k].cmc, row->r[k].map);
                rp_counter(e, "queries", (double)row->r[k].queries);
                rp_label(e, res->split_name[s]);
            }
            reid_mean a = reid_average(res, m, i);
            if (!a.n)
                continue;
            snprintf(name, sizeof name, "reproduce/%s/%s/mean/bits:%u", d->name, sl, res->cols[i]);
            rp_entry *e = rp_add(rep, name, 1, secs / a.n, secs / a.n, "s", threads);
            reid_counters(e, a.cmc, a.map);
            rp_counter(e, "splits", a.n);
            snprintf(label, sizeof label,
                     "mean over %d CUHK03 classic split%s; CMC from %d single-gallery-shot "
                     "samplings per split",
                     a.n, a.n > 1 ? "s" : "", REID_REPEATS);
            rp_label(e, label);
        }
    }
}

/* The CMC table (rank 1, 5, 10, 20 and mAP, mean +- sd over the splits), rank-1 per split, and
 * the gnuplot data and script of the CMC curves. */
static int reid_write(const run_ctx *rc, const ds_dataset *d, const reid_results *res, int nl,
                      sbuf *md)
{
    const int S = res->nsplits;
    sb_printf(md, "## CMC and mAP by code length, mean over %d split%s\n\n", S, S > 1 ? "s" : "");
    sb_printf(
        md,
        "DRSCH: one %u-bit model per split, truncated to each length (bit-scalable codes, "
        "INTERNALS.md); "
        "training one model per length would take %d times as long, so the shorter lengths are not "
        "trained separately. LSH and ITQ: trained on the split's training identities, on %s.\n\n",
        res->model_bits, res->ncols,
        "block-averaged colour thumbnails (at most 20 x 8 cells per channel)");
    sb_printf(md, "| method | bits |");
    for (int r = 0; r < N_REID_RANKS; r++)
        sb_printf(md, " rank-%d |", REID_RANKS[r]);
    sb_printf(md, " mAP |\n| --- | --- |");
    for (int r = 0; r <= N_REID_RANKS; r++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    for (int m = 0; m < RR_COUNT; m++)
        for (int i = 0; i < res->ncols; i++) {
            reid_mean a = reid_average(res, m, i);
            if (!a.n)
                continue;
            sb_printf(md, "| %s | %u |", res->rows[m].method, res->cols[i]);
            for (int r = 0; r < N_REID_RANKS; r++) {
                int k = REID_RANKS[r] - 1;
                S > 1 ? sb_printf(md, " %.4f ± %.4f |", a.cmc[k], a.sd_cmc[k])
                      : sb_printf(md, " %.4f |", a.cmc[k]);
            }
            S > 1 ? sb_printf(md, " %.4f ± %.4f |\n", a.map, a.sd_map)
                  : sb_printf(md, " %.4f |\n", a.map);
        }
    if (S > 1)
        sb_printf(md, "\n± is the sample standard deviation over the splits.\n");
    sb_printf(md, "\nPublished figures: none. No CUHK03 CMC figure of DRSCH could be confirmed "
                  "(the paper's text "
                  "was not available; see results/paper/README.md), so there is no published row "
                  "to print beside "
                  "these.\n");

    sb_printf(md,
              "\n## Per split (DRSCH-%u truncated, plain ranking)\n\n| split | queries | gallery | "
              "training "
              "images | training s |",
              res->model_bits);
    for (int i = 0; i < res->ncols; i++)
        sb_printf(md, " rank-1 @%u |", res->cols[i]);
    sb_printf(md, " mAP @%u |\n| --- | --- | --- | --- | --- |", res->cols[nl - 1]);
    for (int i = 0; i <= res->ncols; i++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    const reid_row *dr = &res->rows[RR_DRSCH];
    for (int s = 0; s < S; s++) {
        sb_printf(md, "| %d | %lld | %lld | %lld | %.0f |", s + 1, (long long)res->n_query[s],
                  (long long)res->n_gallery[s], (long long)res->n_train[s], dr->seconds[s]);
        for (int i = 0; i < res->ncols; i++)
            sb_printf(md, " %.4f |", dr->r[(size_t)s * (size_t)res->ncols + (size_t)i].cmc[0]);
        sb_printf(md, " %.4f |\n", dr->r[(size_t)s * (size_t)res->ncols + (size_t)(nl - 1)].map);
    }

    /* Curves: DRSCH at every length; every method at the longest --bits length. */
    sbuf cmc = {0}, meth = {0}, gp = {0};
    sb_printf(&cmc, "rank");
    for (int i = 0; i < res->ncols; i++)
        sb_printf(&cmc, " \"%u bits\"", res->cols[i]);
    sb_printf(&cmc, "\n");
    const int at = nl - 1;
    sb_printf(&meth, "rank");
    for (int m = 0; m < RR_COUNT; m++)
        sb_printf(&meth, " \"%s\"", res->rows[m].method);
    sb_printf(&meth, "\n");
    reid_mean all[RR_COUNT][MAX_LENGTHS + 1];
    for (int m = 0; m < RR_COUNT; m++)
        for (int i = 0; i < res->ncols; i++)
            all[m][i] = reid_average(res, m, i);
    for (int r = 0; r < EV_CMC_RANKS; r++) {
        sb_printf(&cmc, "%d", r + 1);
        for (int i = 0; i < res->ncols; i++)
            sb_printf(&cmc, " %.6f", all[RR_DRSCH][i].cmc[r]);
        sb_printf(&cmc, "\n");
        sb_printf(&meth, "%d", r + 1);
        for (int m = 0; m < RR_COUNT; m++)
            all[m][at].n ? sb_printf(&meth, " %.6f", all[m][at].cmc[r]) : sb_printf(&meth, " NaN");
        sb_printf(&meth, "\n");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/cmc.dat", rc->dir);
    int wbad = write_sbuf(path, &cmc);
    snprintf(path, sizeof path, "%s/cmc_methods.dat", rc->dir);
    wbad = wbad || write_sbuf(path, &meth);
    sb_printf(
        &gp,
        "set terminal svg size 720,480 dynamic noenhanced font 'sans,12'\nset datafile missing "
        "'NaN'\n"
        "set xlabel 'rank'\nset ylabel 'matching rate (CMC)'\nset key bottom right\nset grid\n"
        "set xrange [1:%d]\nset yrange [0:1]\nset xtics (1, 5, 10, 15, 20)\n",
        EV_CMC_RANKS);
    sb_printf(
        &gp,
        "set output '%s/cmc.svg'\nset title '%s: CMC of DRSCH-%u truncated, mean over %d split%s'\n"
        "plot for [k=2:%d] '%s/cmc.dat' using 1:k with linespoints title columnhead(k)\n",
        rc->dir, d->name, res->model_bits, S, S > 1 ? "s" : "", res->ncols + 1, rc->dir);
    sb_printf(
        &gp,
        "set output '%s/cmc_methods.svg'\nset title '%s: CMC at %u bits, mean over %d split%s'\n"
        "plot for [k=2:%d] '%s/cmc_methods.dat' using 1:k with linespoints title columnhead(k)\n",
        rc->dir, d->name, res->cols[at], S, S > 1 ? "s" : "", RR_COUNT + 1, rc->dir);
    snprintf(path, sizeof path, "%s/plots.gp", rc->dir);
    wbad = wbad || write_sbuf(path, &gp);
    free(cmc.s);
    free(meth.s);
    free(gp.s);
    if (wbad)
        return 1;
    run_gnuplot(rc->dir);
    sb_printf(md,
              "\nPlots: `cmc.svg` (CMC of DRSCH at each length), `cmc_methods.svg` (every method "
              "at %u bits); "
              "data in `cmc.dat`, `cmc_methods.dat`; script `plots.gp`.\n",
              res->cols[at]);
    return 0;
}

/* The CUHK03 table: nsplits classic splits, each trained and evaluated on its own. */
static int reid(const run_ctx *rc, const ds_dataset *d, const tr_config *base,
                const uint32_t *lengths, int nl, uint32_t long_bits, int nsplits, rp_report *rep,
                sbuf *md)
{
    uint32_t cols[MAX_LENGTHS + 1];
    memcpy(cols, lengths, sizeof(uint32_t) * (size_t)nl);
    cols[nl] = long_bits;
    reid_results res;
    if (reid_results_alloc(&res, nsplits, cols, nl + 1)) {
        fprintf(stderr, "drsch reproduce: out of memory\n");
        return 1;
    }
    res.model_bits = long_bits;
    snprintf(res.rows[RR_DRSCH].method, sizeof res.rows[0].method, "DRSCH-%u truncated", long_bits);
    snprintf(res.rows[RR_WEIGHTED].method, sizeof res.rows[0].method,
             "DRSCH-%u truncated, weighted ranking", long_bits);
    snprintf(res.rows[RR_LSH].method, sizeof res.rows[0].method, "LSH (thumbnails)");
    snprintf(res.rows[RR_ITQ].method, sizeof res.rows[0].method, "ITQ (thumbnails)");
    int status = 1;
    double t0 = cli_now();
    for (int s = 0; s < nsplits; s++) {
        if (reid_split(rc, d, s, base, &res))
            goto done;
        double per = (cli_now() - t0) / (s + 1);
        int left = (int)(per * (nsplits - s - 1) + 0.5);
        fprintf(
            stderr,
            "drsch reproduce: split %d/%d done (%.0f s per split so far; about %dm%02ds left)\n",
            s + 1, nsplits, per, left / 60, left % 60);
    }
    reid_report(rep, d, &res, rc->threads);
    status = reid_write(rc, d, &res, nl, md);
done:
    reid_results_free(&res);
    return status;
}

/* "drsch" and the arguments as given, quoted where a shell would need it: the table's record of
 * the command that produced it. */
static void command_line(int argc, char **argv, char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "drsch");
    for (int i = 0; i < argc && k < cap; i++) {
        const char *a = argv[i];
        int quote = !*a || a[strcspn(a, " \t'\"$`\\|&;<>()*?[]{}~#!")] != '\0';
        k += (size_t)snprintf(out + k, cap - k, quote ? " '%s'" : " %s", a);
    }
}

/* The report the run is compared with at the end, read before the run's own report is written
 * (--out may be its folder) at report_path. 1 when *ref holds it; else 0 with the reason, a whole
 * output line, in msg. A missing default (no committed results for this dataset) is no error. */
static int read_baseline(const char *path, const char *report_path, rp_read_report *ref, char *msg,
                         size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        snprintf(msg, cap,
                 "Reproduction: not checked: there is no committed report %s to compare %s with "
                 "(--baseline FILE names one)",
                 path, report_path);
        return 0;
    }
    drsch_error err;
    if (rp_read_file(path, ref, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", err.msg);
        return 0;
    }
    return 1;
}

/* The run's settings recorded in both contexts that differ ("seed, threads"), so
 * that a difference of figures is not read as a failure to reproduce the same run. */
static void settings_differ(const struct cJSON *ref_root, const struct cJSON *cur_root, char *out,
                            size_t cap)
{
    static const char *const keys[] = {"dataset_crc32",        "protocol", "seed",
                                       "iterations_per_model", "splits",   "model_bits",
                                       "image_size",           "threads",  "onednn_isa"};
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ref_root, "context");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cur_root, "context");
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && k < cap; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        if (!x && !y)
            continue;
        if (x && y && cJSON_Compare(x, y, 1))
            continue;
        k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? ", " : "", keys[i]);
    }
}

/* The one line saying whether the run (report rep, written to path) reproduced the baseline ref
 * read from ref_path: its accuracy counters compared as drsch compare does, times ignored. */
static void reproduction_line(const rp_report *rep, const char *path, rp_read_report *ref,
                              const char *ref_path, char *msg, size_t cap)
{
    char *text = rp_print(rep);
    rp_read_report cur;
    drsch_error err;
    if (!text || rp_read_parse(text, strlen(text), path, &cur, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", text ? err.msg : "out of memory");
        free(text);
        return;
    }
    free(text);
    rpc_options o;
    rpc_options_default(&o);
    o.gate_time = 0;
    rpc_result res;
    if (rpc_compare(ref, &cur, &o, &res, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", err.msg);
        rp_read_free(&cur);
        return;
    }
    char settings[256];
    settings_differ(ref->root, cur.root, settings, sizeof settings);
    size_t k = 0;
    switch (rpc_agreement_of(&res)) {
    case RPC_IDENTICAL:
        k = (size_t)snprintf(msg, cap,
                             "Reproduction: identical: all %d metrics of %s equal those of %s",
                             res.metrics, path, ref_path);
        break;
    case RPC_WITHIN_NOISE:
        k = (size_t)snprintf(
            msg, cap,
            "Reproduction: within noise: all %d metrics of %s within %.2f of %s (%d identical, "
            "largest difference %.4f)",
            res.metrics, path, o.max_metric_drop, ref_path, res.metrics_equal, res.max_diff);
        break;
    case RPC_DIFFERENT:
        k = (size_t)snprintf(
            msg, cap,
            "Reproduction: NOT reproduced: %d of %d metrics of %s differ from %s by more "
            "than %.2f",
            res.metrics_beyond, res.metrics, path, ref_path, o.max_metric_drop);
        if (res.metrics_missing && k < cap)
            k += (size_t)snprintf(msg + k, cap - k, ", %d missing", res.metrics_missing);
        if (res.max_drop_row >= 0 && k < cap) {
            const rpc_row *w = &res.rows[res.max_drop_row];
            k += (size_t)snprintf(msg + k, cap - k, " (largest drop %.4f: %s %s)", res.max_drop,
                                  w->entry, w->counter);
        }
        break;
    case RPC_NO_METRICS:
        k = (size_t)snprintf(msg, cap, "Reproduction: not checked: %s has no accuracy counters",
                             ref_path);
        break;
    }
    if (settings[0] && k < cap)
        snprintf(msg + k, cap - k, "; the baseline's run differs in %s", settings);
    rpc_result_free(&res);
    rp_read_free(&cur);
}

int cmd_reproduce(int argc, char **argv)
{
    enum {
        O_DATASET = 256,
        O_QUICK,
        O_OUT,
        O_BITS,
        O_LONG,
        O_ITERS,
        O_SPLITS,
        O_SIZE,
        O_SEED,
        O_THREADS,
        O_PAPER,
        O_BASELINE
    };
    static const struct option opts[] = {
        {"dataset", required_argument, 0, O_DATASET},
        {"quick", no_argument, 0, O_QUICK},
        {"out", required_argument, 0, O_OUT},
        {"bits", required_argument, 0, O_BITS},
        {"long-bits", required_argument, 0, O_LONG},
        {"iters", required_argument, 0, O_ITERS},
        {"splits", required_argument, 0, O_SPLITS},
        {"size", required_argument, 0, O_SIZE},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"paper", required_argument, 0, O_PAPER},
        {"baseline", required_argument, 0, O_BASELINE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *spec = "fashion-mnist", *out = NULL, *bits_s = "12,24,32,48",
               *paper = DRSCH_SOURCE_DIR "/results/paper/drsch_map.csv", *baseline = NULL;
    int64_t long_bits = 64, iters = -1, splits = -1, seed = 1, threads = 0;
    int quick = 0, c;
    ds_load_opts lo;
    ds_load_opts_default(&lo);
    char cmdline[2048];
    command_line(argc, argv, cmdline, sizeof cmdline); /* before getopt permutes argv */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DATASET: spec = optarg; break;
        case O_QUICK: quick = 1; break;
        case O_OUT: out = optarg; break;
        case O_BITS: bits_s = optarg; break;
        case O_PAPER: paper = optarg; break;
        case O_BASELINE: baseline = optarg; break;
        case O_LONG:
            bad = cli_parse_i64("reproduce", "--long-bits", optarg, 1, HM_MAX_BITS, &long_bits);
            break;
        case O_ITERS:
            bad = cli_parse_i64("reproduce", "--iters", optarg, 1, (int64_t)1 << 40, &iters);
            break;
        case O_SPLITS:
            bad = cli_parse_i64("reproduce", "--splits", optarg, 1, 1000, &splits);
            break;
        case O_SIZE: bad = in_parse_size("reproduce", optarg, &lo.out_h, &lo.out_w); break;
        case O_SEED: bad = cli_parse_i64("reproduce", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_THREADS:
            bad = cli_parse_i64("reproduce", "--threads", optarg, 0, 1024, &threads);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("reproduce");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch reproduce: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    uint32_t lengths[MAX_LENGTHS];
    int nl = 0;
    for (const char *p = bits_s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > long_bits || nl == MAX_LENGTHS ||
            (nl && (uint32_t)v <= lengths[nl - 1]) || (*end && *end != ',')) {
            fprintf(stderr,
                    "drsch reproduce: --bits: '%s' must be up to %d increasing lengths, each <= "
                    "--long-bits "
                    "%lld\n",
                    bits_s, MAX_LENGTHS, (long long)long_bits);
            return EXIT_USAGE;
        }
        lengths[nl++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    if (nl == 0 || (uint32_t)long_bits <= lengths[nl - 1]) {
        fprintf(stderr, "drsch reproduce: --long-bits %lld must exceed the longest of --bits\n",
                (long long)long_bits);
        return EXIT_USAGE;
    }
    ds_spec dspec;
    drsch_error de;
    if (ds_spec_parse(spec, &dspec, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", de.msg);
        return EXIT_USAGE;
    }
    const int is_reid = dspec.kind == DS_KIND_CUHK03;
    if (splits > 0 && !is_reid) {
        fprintf(stderr,
                "drsch reproduce: --splits counts CUHK03 classic splits; %s has a single protocol "
                "split\n",
                dspec.name);
        return EXIT_USAGE;
    }
    if (lo.out_h && in_size_check("reproduce", spec))
        return EXIT_USAGE;
    if (out && cli_check_output_dir("reproduce", "--out", out))
        return EXIT_USAGE;
    if (baseline) { /* readable now, not only after the training */
        rp_read_report b;
        drsch_error be;
        if (rp_read_file(baseline, &b, &be) != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: --baseline: %s\n", be.msg);
            return EXIT_USAGE;
        }
        rp_read_free(&b);
    }
    run_ctx rc = {.seed = (uint64_t)seed, .t0 = cli_now()};
    rc.threads = cli_set_threads((int)threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", he.msg);
        return 1;
    }
    ds_dataset *d = NULL;
    ds_split sp = {0};
    fprintf(stderr, "drsch reproduce: loading %s\n", spec);
    if (ds_load_spec(&dspec, &lo, &d, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", de.msg);
        return 1;
    }
    int status = 1, nsplits = 0;
    fio_lock lock = {.fd = -1};
    rp_report *rep = NULL;
    rp_read_report ref = {0};
    sbuf md = {0};
    char protocol[1024];
    if (is_reid) {
        if (d->n_testsets == 0) {
            fprintf(stderr,
                    "drsch reproduce: %s has no 'testsets': the CUHK03 classic protocol takes its "
                    "splits "
                    "from them (the cuhk-03.mat of the CUHK03 release has 20)\n",
                    d->source);
            goto done;
        }
        if (splits > d->n_testsets) {
            fprintf(
                stderr,
                "drsch reproduce: --splits %lld: %s has %d testsets (classic protocol splits)\n",
                (long long)splits, d->source, d->n_testsets);
            status = EXIT_USAGE;
            goto done;
        }
        nsplits = splits > 0 ? (int)splits : quick && d->n_testsets > 2 ? 2 : d->n_testsets;
        snprintf(protocol, sizeof protocol,
                 "cuhk03 classic (Li et al., CVPR 2014): testsets{1..%d} of %d, one split each; "
                 "the test identities' "
                 "first-camera images are the queries, their second-camera images the gallery, all "
                 "other identities "
                 "train; CMC from %d seeded single-gallery-shot samplings per split, mAP over the "
                 "whole gallery; "
                 "seed %lld",
                 nsplits, d->n_testsets, REID_REPEATS, (long long)seed);
    } else {
        if (xp_make_split(d, XP_PROTO_AUTO, (uint64_t)seed, 0, NULL, &sp, &de) != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: %s: %s\n", spec, de.msg);
            goto done;
        }
        snprintf(protocol, sizeof protocol, "%s", sp.name);
    }
    /* The folder name of the committed results of this run (results/NAME) and the default
     * output folder (runs/NAME), checked now that the dataset's name is known, before training. */
    char folder[128], dirbuf[256], committed[4200];
    snprintf(folder, sizeof folder, "%s%s", d->name, quick ? "-quick" : "");
    if (!out) {
        snprintf(dirbuf, sizeof dirbuf, "runs/%s", folder);
        out = dirbuf;
        if (cli_check_output_dir("reproduce", "--out", out)) {
            status = EXIT_USAGE;
            goto done;
        }
    }
    rc.dir = out;
    /* One run per folder: a second reproduce into it is refused while this one runs. */
    drsch_error le;
    if (fio_lock_take(&lock, out, &le) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", le.msg);
        goto done;
    }
    if (baseline)
        snprintf(committed, sizeof committed, "%s", baseline);
    else
        snprintf(committed, sizeof committed, "%s/results/%s/report.json", DRSCH_SOURCE_DIR,
                 folder);
    tr_config base;
    tr_config_default(&base, d);
    base.seed = (uint64_t)seed;
    base.checkpoint_every = 0;
    /* Retrieval: five models must fit the run's budget (about 15 minutes on 2 cores, 2 with
     * --quick): 12k iterations each (drsch train's default is 30k). Re-id: one model per split
     * of 160 x 60 crops, about 0.37 s per iteration of 100 images on 2 cores (measured: 270
     * images/s), so 3000 iterations (about 20 minutes) per split and 150 with --quick. The
     * learning rate steps down every third of the run (drsch train: every quarter). */
    base.iters = is_reid ? (quick ? 150 : 3000) : (quick ? 1000 : 12000);
    if (iters > 0)
        base.iters = iters;
    base.sgd.step = base.iters / 3 > 0 ? base.iters / 3 : 1;
    base.log_every = base.iters >= 10 ? base.iters / 5 : 1;
    rep = rp_create();
    if (!rep) {
        fprintf(stderr, "drsch reproduce: out of memory\n");
        goto done;
    }
    char buf[512];
    rp_context_set(rep, "command", cmdline);
    rp_context_set(rep, "dataset", spec);
    rp_context_set(rep, "dataset_name", d->name);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_crc32", buf);
    rp_context_set(rep, "protocol", protocol);
    rp_context_set_num(rep, "seed", (double)seed);
    rp_context_set_num(rep, "iterations_per_model", (double)base.iters);
    if (is_reid) {
        rp_context_set_num(rep, "splits", nsplits);
        rp_context_set_num(rep, "single_shot_repeats", REID_REPEATS);
        rp_context_set_num(rep, "model_bits", (double)long_bits);
        rp_context_set(rep, "tie_rule", "(distance, gallery index)");
        rp_context_set(rep, "reid_rule",
                       "gallery items with the query's identity and camera removed; queries "
                       "without a true match skipped; CMC single-gallery-shot, mAP over the whole "
                       "gallery");
        snprintf(buf, sizeof buf, "%dx%d", d->h, d->w);
        rp_context_set(rep, "image_size", buf);
    } else {
        rp_context_set(
            rep, "tie_rule",
            "(distance, database index); tie-aware mAP = expectation under random tie order");
        rp_context_set(rep, "empty_query_rule", "queries without a relevant item count as AP 0");
    }
    snprintf(buf, sizeof buf,
             "lr %g momentum %g weight decay %g step %lld gamma %g warmup %lld; clip grad %g; "
             "beta %g (label graph); margin -B/2 growing by B/24 every %lld down to -B; triplets "
             "%s, divided by %s; hash scale %g x %g every %lld; batch %d x %d; crop %dx%d mirror "
             "%d rotate %g zoom %g; bit order %s",
             base.sgd.base_lr, base.sgd.momentum, base.sgd.weight_decay, (long long)base.sgd.step,
             base.sgd.gamma, (long long)base.sgd.warmup, base.clip_grad, base.loss.beta,
             (long long)base.loss.margin_every,
             base.loss.triplets == DH_TRIPLETS_HARD ? "batch-hard" : "all in the batch",
             base.loss.norm == DH_NORM_ACTIVE ? "the active ones" : "their number", base.scale0,
             base.scale_mult, (long long)base.scale_every, base.classes_per_batch,
             base.images_per_class, base.crop_h, base.crop_w, base.mirror, base.rotate, base.zoom,
             base.bit_order == TR_BIT_ORDER_WEIGHT ? "by |w|" : "by |w| discounted by redundancy");
    rp_context_set(rep, "hyperparameters", buf);
    struct utsname un;
    char machine[512] = "unknown";
    if (uname(&un) == 0)
        snprintf(machine, sizeof machine, "%s %s, %d threads", un.machine, un.release, rc.threads);
    sb_printf(&md, "# drsch reproduce: %s\n\n", d->name);
    sb_printf(&md, "Command: `%s` (drsch %s, commit %s, %s, ISA %s). Machine: %s.\n\n", cmdline,
              drsch_version(), drsch_git_commit(), drsch_compiler(), hm_isa_name(hm_isa_active()),
              machine);
    if (is_reid) {
        sb_printf(
            &md,
            "Dataset: %s (%lld images of %dx%d, %d identities, crc32 %08x). Protocol: %s. %lld "
            "iterations per model; %s.\n\n",
            d->source, (long long)d->n, d->h, d->w, d->n_classes, ds_checksum(d), protocol,
            (long long)base.iters, buf);
        sb_printf(&md,
                  "Ranking ties are ordered by gallery index. Gallery images with the query's "
                  "identity and "
                  "camera are removed; queries without a true match are skipped. CMC rank k: share "
                  "of queries "
                  "whose true match is within the first k when the gallery holds one random image "
                  "per identity "
                  "(%d seeded samplings per split, averaged); mAP: over the whole gallery.\n\n",
                  REID_REPEATS);
        if (reid(&rc, d, &base, lengths, nl, (uint32_t)long_bits, nsplits, rep, &md))
            goto done;
    } else {
        sb_printf(&md,
                  "Dataset: %s (%lld images, crc32 %08x). Protocol: %s. Seed %lld; %lld iterations "
                  "per model; "
                  "%s.\n\nRanking ties are ordered by database index; queries without a relevant "
                  "item count as "
                  "AP 0.\n\n",
                  d->source, (long long)d->n, ds_checksum(d), protocol, (long long)seed,
                  (long long)base.iters, buf);
        if (retrieval(&rc, d, &sp, &base, lengths, nl, (uint32_t)long_bits, paper, rep, &md))
            goto done;
    }
    double total = cli_now() - rc.t0;
    sb_printf(&md, "\nTotal time: %.0f s.\n", total);
    rp_context_set_num(rep, "total_seconds", total);
    char path[4200];
    drsch_error re;
    snprintf(path, sizeof path, "%s/report.json", out);
    char report_path[4200];
    snprintf(report_path, sizeof report_path, "%s", path);
    /* The baseline is read before the report is written: --out may be its folder. */
    char ref_msg[9000];
    int have_ref = read_baseline(committed, report_path, &ref, ref_msg, sizeof ref_msg);
    if (rp_write(rep, path, &re) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", re.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/table.md", out);
    if (write_sbuf(path, &md))
        goto done;
    fputs(md.s, stdout);
    fprintf(stderr, "drsch reproduce: wrote %s/report.json and %s/table.md in %.0f s\n", out, out,
            total);
    if (have_ref)
        reproduction_line(rep, report_path, &ref, committed, ref_msg, sizeof ref_msg);
    printf("%s\n", ref_msg);
    status = 0;
done:
    fio_lock_release(&lock);
    rp_read_free(&ref);
    free(md.s);
    rp_free(rep);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return status;
}
