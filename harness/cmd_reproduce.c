/* drsch reproduce: one command regenerates the paper's table on a dataset.
 *
 * Retrieval datasets (Fashion-MNIST / MNIST, CIFAR-10, NUS-WIDE): DRSCH models trained at each
 * code length, one longer model truncated to every length (bit-scalability; plain and weighted
 * ranking), and LSH and ITQ on the same pixels under the same protocol; the paper's published
 * figures beside them where the dataset is one of the paper's (results/paper/drsch_map.csv,
 * labelled "quoted, unverified"). Re-id datasets (CUHK03) are refused with a message for now: their
 * CMC table over the classic splits is not implemented here (drsch train / eval --model do one
 * split).
 *
 * Writes DIR/report.json (Google Benchmark-compatible; metrics as counters; the context records
 * what is needed to rerun), DIR/table.md, the curves as .dat files and SVG plots drawn by gnuplot,
 * and the models. Progress on stderr throughout. */
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
#include "metrics.h"
#include "report.h"
#include "train.h"
#include "version.h"

#define MAX_LENGTHS 8
#define MAX_ROWS 12

static void usage(FILE *f)
{
    fprintf(f,
            "usage: drsch reproduce [--dataset SPEC] [--quick] [--out DIR] [options]\n\n"
            "Trains and evaluates DRSCH at 12, 24, 32 and 48 bits plus one longer model truncated to\n"
            "each length, with LSH and ITQ under the same protocol, and writes the paper's table\n"
            "(mAP vs code length) with the published figures beside it. Re-identification\n"
            "datasets (CUHK03) are not covered yet: use drsch train and drsch eval --model.\n\n"
            "  --dataset SPEC   dataset (default fashion-mnist, the embedded default)\n"
            "  --quick          short schedule for CI (about 2 minutes on 2 cores)\n"
            "  --out DIR        output directory (default results/<dataset>[-quick])\n"
            "  --bits LIST      code lengths (default 12,24,32,48)\n"
            "  --long-bits B    the longer model truncated to each length (default 64)\n"
            "  --iters N        iterations per model (default 12000; --quick: 1000); the learning\n"
            "                   rate steps down every third of them\n"
            "  --seed S         seed of protocol, training and baselines (default 1)\n"
            "  --threads T      OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
            "  --paper FILE     published figures (default " DRSCH_SOURCE_DIR "/results/paper/drsch_map.csv)\n"
            "  -h, --help       this text\n");
}

typedef struct {
    char method[96];
    double map[MAX_LENGTHS + 1], ties[MAX_LENGTHS + 1], pr2[MAX_LENGTHS + 1];
    int have[MAX_LENGTHS + 1];
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
    fprintf(stderr, "  [%s] iter %lld/%lld  loss %.4f  active %.1f%%  distinct %.0f%%  %.0f img/s  ETA %dm%02ds\n",
            tag, (long long)p->iter, (long long)p->iters, p->loss, 100 * p->active_share, 100 * p->distinct_share,
            p->images_per_second, eta / 60, eta % 60);
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Writes text to path atomically. */
static int write_text(const char *path, const char *text)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* A growing string for the Markdown table and gnuplot files. */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s)
            return;
        b->s = s;
        b->cap = cap;
    }
}

/* Float features of images idx[0..n) (pixels scaled to [0, 1], no crop) for the baselines. */
static float *pixels(const ds_dataset *d, const int64_t *idx, int64_t n)
{
    ds_augment a;
    ds_augment_default(&a);
    ds_error de;
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)d->c * (size_t)d->h * (size_t)d->w + 1);
    if (x && ds_batch_build(d, idx, n, &a, 0, x, &de) != DS_OK) {
        free(x);
        return NULL;
    }
    return x;
}

/* Paper figures for a dataset name ("cifar10", "nuswide") from the CSV; fills map by length. */
static int paper_row(const char *csv, const char *dataset, const uint32_t *lengths, int nl, row *r, char *metric,
                     size_t mcap)
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
        if (sscanf(line, "%63[^,],%63[^,],%u,%lf,%63[^,]", ds, met, &bits, &v, status) != 5 || strcmp(ds, dataset))
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

static void add_entry(rp_report *rep, const char *dataset, const row *r, const uint32_t *lengths, int nl, int threads,
                      const char *metric)
{
    for (int i = 0; i < nl; i++) {
        if (!r->have[i])
            continue;
        char name[256], slug[96];
        size_t k = 0;
        for (const char *p = r->method; *p && k + 1 < sizeof slug; p++)
            slug[k++] = (*p == ' ' || *p == ',' || *p == '(' || *p == ')') ? (*p == ' ' ? '_' : '-') : *p;
        slug[k] = '\0';
        snprintf(name, sizeof name, "reproduce/%s/%s/bits:%u", dataset, slug, lengths[i]);
        rp_entry *e = rp_add(rep, name, 1, r->seconds, r->seconds, "s", threads);
        rp_counter(e, "mAP", r->map[i]);
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
static void md_table(sbuf *md, const row *rows, int nrows, const uint32_t *cols, int ncols, column what)
{
    sb_printf(md, "| method |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " %u bits |", cols[i]);
    sb_printf(md, "\n| --- |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    for (int k = 0; k < nrows; k++) {
        const double *v = what == COL_MAP ? rows[k].map : what == COL_TIES ? rows[k].ties : rows[k].pr2;
        int ok[MAX_LENGTHS + 1], any = 0;
        for (int i = 0; i < ncols; i++) {
            ok[i] = rows[k].have[i] && (what == COL_MAP || (what == COL_TIES ? v[i] > 0 : v[i] >= 0));
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

static int retrieval(const run_ctx *rc, const ds_dataset *d, const ds_split *sp, const tr_config *base,
                     const uint32_t *lengths, int nl, uint32_t long_bits, const char *paper_csv, rp_report *rep,
                     sbuf *md)
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
        fprintf(stderr, "drsch reproduce: training %s (%lld iterations) -> %s\n", tag, (long long)c.iters, path);
        tr_error te;
        double t = cli_now();
        tr_status st = tr_train(&c, d, sp, path, NULL, NULL, progress, tag, &te);
        double secs = cli_now() - t;
        if (st != TR_OK) {
            fprintf(stderr, "drsch reproduce: %s: %s\n", tag, te.msg);
            goto done;
        }
        nn_net *net = NULL;
        nn_error ne;
        hm_codes q = {0}, db = {0};
        if (nn_model_load(&net, path, 100, 0, &ne) != NN_OK) {
            fprintf(stderr, "drsch reproduce: %s\n", ne.msg);
            goto done;
        }
        float *w = malloc(sizeof(float) * B);
        const float *bw = nn_bit_weights(net);
        const uint32_t *order = nn_bit_order(net);
        for (uint32_t j = 0; w && j < B; j++)
            w[j] = bw ? fabsf(bw[order[j]]) : 1.0f;
        int bad = !w || tr_encode(net, d, sp->query, sp->n_query, &q, &te) != TR_OK ||
                  tr_encode(net, d, sp->db, sp->n_db, &db, &te) != TR_OK;
        nn_net_free(net);
        if (bad) {
            fprintf(stderr, "drsch reproduce: %s: %s\n", tag, w ? te.msg : "out of memory");
            free(w);
            hm_codes_free(&q);
            hm_codes_free(&db);
            goto done;
        }
        /* Row 0: models trained at each length; rows 1, 2: the long model truncated. */
        row *r_len = &rows[0], *r_cut = &rows[1], *r_wcut = &rows[2];
        snprintf(r_len->method, sizeof r_len->method, "DRSCH (trained at each length)");
        snprintf(r_cut->method, sizeof r_cut->method, "DRSCH-%u truncated", long_bits);
        snprintf(r_wcut->method, sizeof r_wcut->method, "DRSCH-%u truncated, weighted ranking", long_bits);
        for (int i = 0; i <= nl; i++) {
            uint32_t b = i < nl ? lengths[i] : long_bits;
            if ((m < nl && i != m) || b > B)
                continue;
            for (int weighted = 0; weighted < 1 + (m == nl); weighted++) {
                ev_retrieval r;
                ev_error ee;
                ev_options o = opt;
                o.pr_curve = !weighted && m < nl;
                if (xp_eval_retrieval(d, sp, &q, &db, b, weighted ? w : NULL, &o, &r, &ee) != EV_OK) {
                    fprintf(stderr, "drsch reproduce: %s\n", ee.msg);
                    free(w);
                    hm_codes_free(&q);
                    hm_codes_free(&db);
                    goto done;
                }
                row *dst = m < nl ? r_len : weighted ? r_wcut : r_cut;
                int col = i;
                dst->map[col] = multi ? r.map_at_k : r.map_all;
                dst->ties[col] = multi ? 0 : r.map_tie_aware;
                dst->pr2[col] = r.precision_radius;
                dst->have[col] = 1;
                dst->seconds = m < nl ? dst->seconds + secs : secs;
                fprintf(stderr, "drsch reproduce: %s at %u bits%s: %s %.4f\n", tag, b, weighted ? " (weighted)" : "",
                        metric, dst->map[col]);
                if (o.pr_curve) {
                    sb_printf(&pr, "# %u bits: radius recall precision\n", b);
                    for (size_t k = 0; k < r.pr_points; k++)
                        sb_printf(&pr, "%zu %.6f %.6f\n", k, r.pr_recall[k], r.pr_precision[k]);
                    sb_printf(&pr, "\n\n");
                }
                ev_retrieval_free(&r);
            }
        }
        free(w);
        hm_codes_free(&q);
        hm_codes_free(&db);
    }
    nrows = 3;

    /* Baselines on the pixels of the same split. */
    fprintf(stderr, "drsch reproduce: LSH and ITQ baselines on %d x %d x %d pixels\n", d->c, d->h, d->w);
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
                bl_error be;
                double t = cli_now();
                int bad = method ? bl_itq_train(xtr, (size_t)sp->n_train, dim, lengths[i], 50, rc->seed, &bm, &be)
                                 : bl_lsh_train(xtr, (size_t)sp->n_train, dim, lengths[i], rc->seed, &bm, &be);
                if (bad) {
                    fprintf(stderr, "drsch reproduce: %s\n", be.msg);
                    free(xtr);
                    free(xq);
                    goto done;
                }
                hm_codes q = {0}, db = {0};
                hm_error he;
                int ok = hm_codes_alloc(&q, (size_t)sp->n_query, lengths[i], &he) == HM_OK &&
                         hm_codes_alloc(&db, (size_t)sp->n_db, lengths[i], &he) == HM_OK;
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
                ev_error ee;
                ev_options o = opt;
                o.pr_curve = 0;
                if (!ok || xp_eval_retrieval(d, sp, &q, &db, lengths[i], NULL, &o, &r, &ee) != EV_OK) {
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
                dst->have[i] = 1;
                dst->seconds += secs;
                fprintf(stderr, "drsch reproduce: %s at %u bits: %s %.4f\n", dst->method, lengths[i], metric,
                        dst->map[i]);
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
    const char *paper_name = !strcmp(d->name, "cifar10") ? "cifar10" : !strncmp(d->name, "nuswide", 7) ? "nuswide" : NULL;
    char paper_metric[64] = "";
    int have_paper = 0;
    if (paper_name) {
        row *p = &rows[nrows];
        snprintf(p->method, sizeof p->method, "DRSCH, published (quoted, unverified)");
        for (int i = 0; i < nl; i++)
            p->pr2[i] = -1;
        if (paper_row(paper_csv, paper_name, lengths, nl, p, paper_metric, sizeof paper_metric) == 0) {
            have_paper = 1;
            nrows++;
        } else {
            fprintf(stderr, "drsch reproduce: no published figures for %s in %s\n", paper_name, paper_csv);
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
        sb_printf(md, "\nThe published row is %s as quoted by later work (results/paper/drsch_map.csv): "
                      "quoted, unverified.\n", paper_metric);
    else
        sb_printf(md, "\nThe paper reports no figures for this dataset; its CIFAR-10 and NUS-WIDE figures are in "
                      "results/paper/drsch_map.csv (quoted, unverified).\n");
    sb_printf(md, "\nBit-scalability: the %u-bit model truncated to each length against a model trained at that "
                  "length (mAP points, truncated minus trained):",
              long_bits);
    for (int i = 0; i < nl; i++)
        sb_printf(md, " %u bits %+.1f;", lengths[i], 100 * (rows[1].map[i] - rows[0].map[i]));
    sb_printf(md, "\n\nTie-aware %s (expected value when tied Hamming distances are ordered at random), same "
                  "rows:\n\n",
              metric);
    md_table(md, rows, nrows, cols, nl + 1, COL_TIES);
    sb_printf(md, "\nPrecision within Hamming radius 2 (0 when nothing is retrieved), same rows:\n\n");
    md_table(md, rows, nrows, cols, nl + 1, COL_PR2);

    /* Curves and plots. */
    sbuf dat = {0}, gp = {0};
    sb_printf(&dat, "# bits");
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
    int wbad = write_text(path, dat.s ? dat.s : "");
    snprintf(path, sizeof path, "%s/pr.dat", rc->dir);
    wbad |= write_text(path, pr.s ? pr.s : "");
    sb_printf(&gp, "set terminal svg size 720,480 dynamic font 'sans,12'\nset datafile missing 'NaN'\n"
                   "set output '%s/map_vs_bits.svg'\nset title '%s: %s vs code length'\n"
                   "set xlabel 'bits'\nset ylabel '%s'\nset key bottom right\nset grid\nset yrange [0:1]\n"
                   "plot for [k=2:%d] '%s/map_vs_bits.dat' using 1:k with linespoints title columnhead(k)\n",
              rc->dir, d->name, metric, metric, nrows + 1, rc->dir);
    sb_printf(&gp, "set output '%s/pr.svg'\nset title '%s: precision-recall over Hamming radius (DRSCH)'\n"
                   "set xlabel 'recall'\nset ylabel 'precision'\nset xrange [0:1]\nset key bottom left\n"
                   "plot for [i=0:%d] '%s/pr.dat' index i using 2:3 with linespoints title sprintf('%%d bits', "
                   "word('",
              rc->dir, d->name, nl - 1, rc->dir);
    for (int i = 0; i < nl; i++)
        sb_printf(&gp, "%s%u", i ? " " : "", lengths[i]);
    sb_printf(&gp, "', i+1)+0)\n");
    snprintf(path, sizeof path, "%s/plots.gp", rc->dir);
    wbad |= write_text(path, gp.s ? gp.s : "");
    free(dat.s);
    free(gp.s);
    if (wbad) {
        fprintf(stderr, "drsch reproduce: cannot write the curves in %s\n", rc->dir);
        goto done;
    }
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s/plots.gp'", rc->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "drsch reproduce: gnuplot failed or is missing (Debian package gnuplot-nox); the curves "
                        "are in %s/*.dat and %s/plots.gp\n", rc->dir, rc->dir);
    sb_printf(md, "\nPlots: `map_vs_bits.svg` (%s vs bits), `pr.svg` (precision-recall of the models trained at "
                  "each length, one point per Hamming radius); data in `map_vs_bits.dat`, `pr.dat`.\n",
              metric);
    rc_out = 0;
done:
    free(pr.s);
    return rc_out;
}

int cmd_reproduce(int argc, char **argv)
{
    enum { O_DATASET = 256, O_QUICK, O_OUT, O_BITS, O_LONG, O_ITERS, O_SEED, O_THREADS, O_PAPER };
    static const struct option opts[] = {
        {"dataset", required_argument, 0, O_DATASET}, {"quick", no_argument, 0, O_QUICK},
        {"out", required_argument, 0, O_OUT},         {"bits", required_argument, 0, O_BITS},
        {"long-bits", required_argument, 0, O_LONG},  {"iters", required_argument, 0, O_ITERS},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"paper", required_argument, 0, O_PAPER},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0},
    };
    const char *spec = "fashion-mnist", *out = NULL, *bits_s = "12,24,32,48",
               *paper = DRSCH_SOURCE_DIR "/results/paper/drsch_map.csv";
    int64_t long_bits = 64, iters = -1, seed = 1, threads = 0;
    int quick = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DATASET: spec = optarg; break;
        case O_QUICK: quick = 1; break;
        case O_OUT: out = optarg; break;
        case O_BITS: bits_s = optarg; break;
        case O_PAPER: paper = optarg; break;
        case O_LONG: bad = cli_parse_i64("reproduce", "--long-bits", optarg, 1, HM_MAX_BITS, &long_bits); break;
        case O_ITERS: bad = cli_parse_i64("reproduce", "--iters", optarg, 1, (int64_t)1 << 40, &iters); break;
        case O_SEED: bad = cli_parse_i64("reproduce", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_THREADS: bad = cli_parse_i64("reproduce", "--threads", optarg, 1, 1024, &threads); break;
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
        if (end == p || v < 1 || v > long_bits || nl == MAX_LENGTHS || (nl && (uint32_t)v <= lengths[nl - 1]) ||
            (*end && *end != ',')) {
            fprintf(stderr, "drsch reproduce: --bits: '%s' must be up to %d increasing lengths, each <= --long-bits "
                            "%lld\n", bits_s, MAX_LENGTHS, (long long)long_bits);
            return EXIT_USAGE;
        }
        lengths[nl++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    if (nl == 0 || (uint32_t)long_bits <= lengths[nl - 1]) {
        fprintf(stderr, "drsch reproduce: --long-bits %lld must exceed the longest of --bits\n", (long long)long_bits);
        return EXIT_USAGE;
    }
    run_ctx rc = {.seed = (uint64_t)seed, .t0 = cli_now()};
    rc.threads = cli_set_threads((int)threads);
    hm_error he;
    if (hm_isa_init(&he) != HM_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", he.msg);
        return 1;
    }
    ds_dataset *d = NULL;
    ds_split sp = {0};
    ds_error de;
    if (ds_load(spec, NULL, &d, &de) != DS_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", de.msg);
        return 1;
    }
    char dirbuf[1024];
    if (!out) {
        snprintf(dirbuf, sizeof dirbuf, "results/%s%s", d->name, quick ? "-quick" : "");
        out = dirbuf;
    }
    rc.dir = out;
    int status = 1;
    rp_report *rep = NULL;
    sbuf md = {0};
    if (mkdirs(out)) {
        fprintf(stderr, "drsch reproduce: cannot create %s: %s\n", out, strerror(errno));
        goto done;
    }
    if (xp_make_split(d, XP_PROTO_AUTO, (uint64_t)seed, 0, NULL, &sp, &de) != DS_OK) {
        fprintf(stderr, "drsch reproduce: %s: %s\n", spec, de.msg);
        goto done;
    }
    tr_config base;
    tr_config_default(&base, d);
    base.seed = (uint64_t)seed;
    base.checkpoint_every = 0;
    /* Five models must fit the run's budget (about 15 minutes on 2 cores, 2 with --quick): 12k
     * iterations each (drsch train's default is 30k), the learning rate stepped down every third
     * of the run as drsch train does. */
    base.iters = quick ? 1000 : 12000;
    if (iters > 0)
        base.iters = iters;
    base.sgd.step = base.iters / 3 > 0 ? base.iters / 3 : 1;
    base.log_every = base.iters >= 10 ? base.iters / 5 : 1;
    rep = rp_create();
    if (!rep)
        goto done;
    char buf[512];
    rp_context_set(rep, "command", quick ? "drsch reproduce --quick" : "drsch reproduce");
    rp_context_set(rep, "dataset", spec);
    rp_context_set(rep, "dataset_name", d->name);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_crc32", buf);
    rp_context_set(rep, "protocol", sp.name);
    rp_context_set_num(rep, "seed", (double)seed);
    rp_context_set_num(rep, "iterations_per_model", (double)base.iters);
    rp_context_set(rep, "tie_rule", "(distance, database index); tie-aware mAP = expectation under random tie order");
    rp_context_set(rep, "empty_query_rule", "queries without a relevant item count as AP 0");
    snprintf(buf, sizeof buf, "lr %g momentum %g weight decay %g step %lld gamma %g; beta %g (label graph); margin "
                              "-B/2 growing by B/24 every %lld; hash scale %g x %g every %lld; batch %d x %d; crop "
                              "%dx%d mirror %d",
             base.sgd.base_lr, base.sgd.momentum, base.sgd.weight_decay, (long long)base.sgd.step, base.sgd.gamma,
             base.loss.beta, (long long)base.loss.margin_every, base.scale0,
             base.scale_mult, (long long)base.scale_every, base.classes_per_batch, base.images_per_class, base.crop_h,
             base.crop_w, base.mirror);
    rp_context_set(rep, "hyperparameters", buf);
    struct utsname un;
    char machine[512] = "unknown";
    if (uname(&un) == 0)
        snprintf(machine, sizeof machine, "%s %s, %d threads", un.machine, un.release, rc.threads);
    sb_printf(&md, "# drsch reproduce: %s\n\n", d->name);
    sb_printf(&md, "Command: `drsch reproduce%s%s%s` (drsch %s, commit %s, %s, ISA %s). Machine: %s.\n\n",
              quick ? " --quick" : "", strcmp(spec, "fashion-mnist") ? " --dataset " : "",
              strcmp(spec, "fashion-mnist") ? spec : "", drsch_version(), drsch_git_commit(), drsch_compiler(),
              hm_isa_name(hm_isa_active()), machine);
    sb_printf(&md, "Dataset: %s (%lld images, crc32 %08x). Protocol: %s. Seed %lld; %lld iterations per model; "
                   "%s.\n\nRanking ties are ordered by database index; queries without a relevant item count as AP 0.\n\n",
              d->source, (long long)d->n, ds_checksum(d), sp.name, (long long)seed, (long long)base.iters, buf);
    if (d->cams || d->label_kind == DS_LABELS_IDENTITY) {
        fprintf(stderr, "drsch reproduce: %s is a re-identification dataset; run drsch train and drsch eval --model "
                        "per CUHK03 split (reproduce covers the retrieval tables)\n", d->name);
        goto done;
    }
    if (retrieval(&rc, d, &sp, &base, lengths, nl, (uint32_t)long_bits, paper, rep, &md))
        goto done;
    double total = cli_now() - rc.t0;
    sb_printf(&md, "\nTotal time: %.0f s.\n", total);
    rp_context_set_num(rep, "total_seconds", total);
    char path[4200];
    rp_error re;
    snprintf(path, sizeof path, "%s/report.json", out);
    if (rp_write(rep, path, &re) != RP_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", re.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/table.md", out);
    if (write_text(path, md.s)) {
        fprintf(stderr, "drsch reproduce: cannot write %s\n", path);
        goto done;
    }
    fputs(md.s, stdout);
    fprintf(stderr, "drsch reproduce: wrote %s/report.json and %s/table.md in %.0f s\n", out, out, total);
    status = 0;
done:
    free(md.s);
    rp_free(rep);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return status;
}
