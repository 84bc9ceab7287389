/* The re-identification experiment of drsch reproduce (reproduce.h): CUHK03, classic protocol.
 * For each of the first N of the file's 20 testsets, one DRSCH model of long_bits bits trained on
 * the split's training identities (identities are the classes), its codes truncated to every
 * length (plain and weighted ranking), and LSH and ITQ on colour thumbnails; CMC rank 1..20
 * (single-gallery-shot, 10 seeded samplings), mAP and mINP per split; the queries and gallery
 * are the split's (first camera against second) or all its test images pooled (reid_gallery).
 * It does not train one model per length (5x the time) and does not cover the 767/700 protocol.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "xp_repro_internal.h"

/* LSH and ITQ see colour thumbnails of at most THUMB_H x THUMB_W block averages, so that ITQ's
 * PCA (a dim x dim covariance) stays cheap: 20 x 8 x 3 = 480 dimensions for 160 x 60 crops. */
#define THUMB_H 20
#define THUMB_W 8

drsch_status xp_reid_splits(const ds_dataset *d, int64_t splits, int quick, int *n_splits,
                            drsch_error *err)
{
    if (d->n_testsets == 0)
        return drsch_fail(err, DRSCH_ERR_RANGE,
                          "%s has no 'testsets': the CUHK03 classic protocol takes its splits from "
                          "them (the cuhk-03.mat of the CUHK03 release has 20)",
                          d->source);
    if (splits > d->n_testsets)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "--splits %lld: %s has %d testsets (classic protocol splits)",
                          (long long)splits, d->source, d->n_testsets);
    *n_splits = splits > 0 ? (int)splits : quick && d->n_testsets > 2 ? 2 : d->n_testsets;
    return DRSCH_OK;
}

void xp_reid_protocol(const ds_dataset *d, int n_splits, uint64_t seed, ev_reid_gallery gallery,
                      char *out, size_t cap)
{
    /* The default's text is that of the reports before the choice existed (it is compared). */
    const char *qg = gallery == EV_REID_ALL
                         ? "every image of the test identities (both cameras) is a query and the "
                           "gallery, less the query's identity-and-camera images (torchreid's "
                           "classic split)"
                         : "the test identities' first-camera images are the queries, their "
                           "second-camera images the gallery";
    snprintf(out, cap,
             "cuhk03 classic (Li et al., CVPR 2014): testsets{1..%d} of %d, one split each; %s, "
             "all other identities train; CMC from %d seeded single-gallery-shot samplings per "
             "split, mAP over the whole gallery; seed %lld",
             n_splits, d->n_testsets, qg, XP_REID_REPEATS, (long long)seed);
}

void xp_reid_result_free(xp_reid_result *res)
{
    for (int m = 0; m < XP_REID_METHODS; m++) {
        free(res->rows[m].r);
        free(res->rows[m].have);
        free(res->rows[m].seconds);
    }
    free(res->split_name);
    free(res->n_query);
    free(res->n_gallery);
    free(res->n_train);
    memset(res, 0, sizeof *res);
}

static int results_alloc(xp_reid_result *res, int nsplits, const uint32_t *cols, int ncols)
{
    memset(res, 0, sizeof *res);
    res->n_splits = nsplits;
    res->n_cols = ncols;
    memcpy(res->cols, cols, sizeof(uint32_t) * (size_t)ncols);
    size_t cells = (size_t)nsplits * (size_t)ncols;
    int bad = 0;
    for (int m = 0; m < XP_REID_METHODS; m++) {
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
        xp_reid_result_free(res);
        return -1;
    }
    return 0;
}

xp_reid_mean xp_reid_average(const xp_reid_result *res, int m, int col)
{
    xp_reid_mean a;
    memset(&a, 0, sizeof a);
    const xp_reid_row *row = &res->rows[m];
    for (int s = 0; s < res->n_splits; s++) {
        size_t k = (size_t)s * (size_t)res->n_cols + (size_t)col;
        if (!row->have[k])
            continue;
        a.n++;
        a.map += row->r[k].map;
        a.minp += row->r[k].minp;
        for (int r = 0; r < EV_CMC_RANKS; r++)
            a.cmc[r] += row->r[k].cmc[r];
    }
    if (!a.n)
        return a;
    a.map /= a.n;
    a.minp /= a.n;
    for (int r = 0; r < EV_CMC_RANKS; r++)
        a.cmc[r] /= a.n;
    if (a.n < 2)
        return a;
    for (int s = 0; s < res->n_splits; s++) {
        size_t k = (size_t)s * (size_t)res->n_cols + (size_t)col;
        if (!row->have[k])
            continue;
        a.sd_map += (row->r[k].map - a.map) * (row->r[k].map - a.map);
        a.sd_minp += (row->r[k].minp - a.minp) * (row->r[k].minp - a.minp);
        for (int r = 0; r < EV_CMC_RANKS; r++)
            a.sd_cmc[r] += (row->r[k].cmc[r] - a.cmc[r]) * (row->r[k].cmc[r] - a.cmc[r]);
    }
    a.sd_map = sqrt(a.sd_map / (a.n - 1));
    a.sd_minp = sqrt(a.sd_minp / (a.n - 1));
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

/* One baseline (XP_REID_LSH or XP_REID_ITQ) of split s at column i, on the thumbnails. */
static drsch_status baseline(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                             int s, int method, int i, const float *xtr, const float *xq,
                             const float *xg, int dim, xp_reid_result *res, drsch_error *err)
{
    xp_reid_row *row = &res->rows[method];
    uint32_t b = res->cols[i];
    bl_model bm;
    drsch_error be;
    double t = xp_now();
    drsch_status bad = method == XP_REID_ITQ
                           ? bl_itq_train(xtr, (size_t)sp->n_train, dim, b, 50, c->seed, &bm, &be)
                           : bl_lsh_train(xtr, (size_t)sp->n_train, dim, b, c->seed, &bm, &be);
    if (bad != DRSCH_OK)
        return drsch_fail(err, bad, "%s at %u bits: %s", row->method, b, be.msg);
    hm_codes q = {0}, g = {0};
    drsch_error he;
    int ok = hm_codes_alloc(&q, (size_t)sp->n_query, b, &he) == DRSCH_OK &&
             hm_codes_alloc(&g, (size_t)sp->n_db, b, &he) == DRSCH_OK;
    if (ok) {
        bl_encode(&bm, xq, (size_t)sp->n_query, &q, 0);
        bl_encode(&bm, xg, (size_t)sp->n_db, &g, 0);
    }
    bl_model_free(&bm);
    row->seconds[s] += xp_now() - t;
    size_t k = (size_t)s * (size_t)res->n_cols + (size_t)i;
    drsch_error ee;
    drsch_status es = ok ? xp_eval_reid(d, sp, &q, &g, b, NULL, c->reid_gallery, XP_REID_REPEATS,
                                        c->seed, &row->r[k], &ee)
                         : DRSCH_ERR_NOMEM;
    hm_codes_free(&q);
    hm_codes_free(&g);
    if (es != DRSCH_OK)
        return drsch_fail(err, es, "%s at %u bits: %s", row->method, b,
                          ok ? ee.msg : "out of memory");
    row->have[k] = 1;
    return DRSCH_OK;
}

/* LSH and ITQ on the split's thumbnails, trained on its training identities, at every column. */
static drsch_status baselines(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              int s, xp_reid_result *res, drsch_error *err)
{
    int dim = 0;
    float *xtr = thumbs(d, sp->train, sp->n_train, &dim),
          *xq = thumbs(d, sp->query, sp->n_query, &dim), *xg = thumbs(d, sp->db, sp->n_db, &dim);
    drsch_status st = DRSCH_OK;
    if (!xtr || !xq || !xg)
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for the baselines' thumbnails");
    for (int method = XP_REID_LSH; st == DRSCH_OK && method <= XP_REID_ITQ; method++)
        for (int i = 0; st == DRSCH_OK && i < res->n_cols; i++) {
            if (method == XP_REID_ITQ && (int)res->cols[i] > dim) {
                if (s == 0)
                    xp_note(c, "ITQ at %u bits skipped: the thumbnails have %d dimensions",
                            res->cols[i], dim);
                continue;
            }
            st = baseline(c, d, sp, s, method, i, xtr, xq, xg, dim, res, err);
        }
    free(xtr);
    free(xq);
    free(xg);
    return st;
}

/* The DRSCH model of split s, evaluated at every column with plain and weighted ranking. */
static drsch_status drsch_model(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                                int s, xp_reid_result *res, drsch_error *err)
{
    char path[4200], tag[64];
    uint32_t B = res->model_bits;
    snprintf(path, sizeof path, "%s/model-split%d-%u.bin", c->dir, s + 1, B);
    snprintf(tag, sizeof tag, "split %d/%d, %u bits", s + 1, res->n_splits, B);
    xp_note(c, "training DRSCH, %s (%lld iterations) -> %s", tag, (long long)c->train.iters, path);
    xp_codes codes;
    double secs;
    drsch_status st = xp_repro_model(c, d, sp, B, c->train.recipe, xp_repro_weight_power(c), path,
                                     tag, &secs, &codes, NULL, err);
    if (st != DRSCH_OK)
        return st;
    res->rows[XP_REID_DRSCH].seconds[s] = res->rows[XP_REID_WEIGHTED].seconds[s] = secs;
    for (int weighted = 0; weighted < 2; weighted++) {
        xp_reid_row *row = &res->rows[weighted ? XP_REID_WEIGHTED : XP_REID_DRSCH];
        for (int i = 0; i < res->n_cols; i++) {
            size_t k = (size_t)s * (size_t)res->n_cols + (size_t)i;
            drsch_error ee;
            drsch_status es = xp_eval_reid(d, sp, &codes.query, &codes.db, res->cols[i],
                                           weighted ? codes.weights : NULL, c->reid_gallery,
                                           XP_REID_REPEATS, c->seed, &row->r[k], &ee);
            if (es != DRSCH_OK) {
                xp_codes_free(&codes);
                return drsch_fail(err, es, "%s: %s", tag, ee.msg);
            }
            row->have[k] = 1;
        }
    }
    xp_codes_free(&codes);
    for (int i = 0; i < res->n_cols; i++) {
        const ev_reid *r = &res->rows[XP_REID_DRSCH].r[(size_t)s * (size_t)res->n_cols + (size_t)i];
        xp_note(c,
                "split %d, DRSCH at %u bits: rank-1 %.4f  rank-5 %.4f  rank-10 %.4f  rank-20 %.4f  "
                "mAP %.4f  mINP %.4f  (%zu queries)",
                s + 1, res->cols[i], r->cmc[0], r->cmc[4], r->cmc[9], r->cmc[19], r->map, r->minp,
                r->queries);
    }
    return DRSCH_OK;
}

/* One split: the classic protocol's testsets{s + 1}, a DRSCH model trained on its training
 * identities, its codes truncated to every column (plain and weighted ranking), the baselines. */
static drsch_status split(const xp_repro_config *c, const ds_dataset *d, int s, xp_reid_result *res,
                          drsch_error *err)
{
    ds_split sp = {0};
    drsch_error de;
    /* The whole second camera as gallery: single-gallery-shot sampling happens in the metric,
     * repeated, instead of once in the split. */
    ds_cuhk03_opts co = {.testset = s, .single_shot = 0};
    drsch_status ds = ds_split_cuhk03_classic(d, &co, c->seed, &sp, &de);
    if (ds != DRSCH_OK)
        return drsch_fail(err, ds == DRSCH_ERR_NOMEM ? DRSCH_ERR_NOMEM : DRSCH_ERR_RANGE,
                          "split %d: %s", s + 1, de.msg);
    snprintf(res->split_name[s], sizeof res->split_name[s], "%s", sp.name);
    /* Pooled (EV_REID_ALL): every test image is a query and in the gallery. */
    int64_t pooled = sp.n_query + sp.n_db;
    res->n_query[s] = c->reid_gallery == EV_REID_ALL ? pooled : sp.n_query;
    res->n_gallery[s] = c->reid_gallery == EV_REID_ALL ? pooled : sp.n_db;
    res->n_train[s] = sp.n_train;
    xp_note(c, "split %d/%d: %s; %lld queries, %lld gallery (%s), %lld training images", s + 1,
            res->n_splits, sp.name, (long long)res->n_query[s], (long long)res->n_gallery[s],
            ev_reid_gallery_name(c->reid_gallery), (long long)sp.n_train);
    drsch_status st = DRSCH_OK;
    if (sp.n_query == 0 || sp.n_db == 0)
        st =
            drsch_fail(err, DRSCH_ERR_RANGE, "split %d leaves no query or no gallery image", s + 1);
    if (st == DRSCH_OK)
        st = drsch_model(c, d, &sp, s, res, err);
    if (st == DRSCH_OK) {
        xp_note(c, "split %d: LSH and ITQ on %s", s + 1, "colour thumbnails");
        st = baselines(c, d, &sp, s, res, err);
    }
    ds_split_free(&sp);
    return st;
}

/* Distributed: split s's results from the rank that ran it to every rank (a collective). */
static void share_split(const xp_parallel *par, xp_reid_result *res, int s)
{
    const int root = s % par->size;
    const size_t at = (size_t)s * (size_t)res->n_cols, n = (size_t)res->n_cols;
    for (int m = 0; m < XP_REID_METHODS; m++) {
        xp_reid_row *row = &res->rows[m];
        par->broadcast(par->ctx, row->r + at, sizeof *row->r * n, root);
        par->broadcast(par->ctx, row->have + at, sizeof *row->have * n, root);
        par->broadcast(par->ctx, &row->seconds[s], sizeof row->seconds[s], root);
    }
    par->broadcast(par->ctx, res->split_name[s], sizeof res->split_name[s], root);
    par->broadcast(par->ctx, &res->n_query[s], sizeof res->n_query[s], root);
    par->broadcast(par->ctx, &res->n_gallery[s], sizeof res->n_gallery[s], root);
    par->broadcast(par->ctx, &res->n_train[s], sizeof res->n_train[s], root);
}

drsch_status xp_reid_run(const xp_repro_config *c, const ds_dataset *d, xp_reid_result *res,
                         drsch_error *err)
{
    const int wp = xp_repro_weight_power(c);
    if (wp != 1 && wp != 2) {
        memset(res, 0, sizeof *res);
        return drsch_fail(err, DRSCH_ERR_ARG, "weight power %d: it is 1 (|w|) or 2 (w^2)", wp);
    }
    uint32_t cols[XP_REPRO_MAX_LENGTHS + 1];
    memcpy(cols, c->lengths, sizeof(uint32_t) * (size_t)c->n_lengths);
    cols[c->n_lengths] = c->long_bits;
    if (results_alloc(res, c->splits, cols, c->n_lengths + 1))
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    res->model_bits = c->long_bits;
    snprintf(res->rows[XP_REID_DRSCH].method, sizeof res->rows[0].method, "DRSCH-%u truncated",
             c->long_bits);
    snprintf(res->rows[XP_REID_WEIGHTED].method, sizeof res->rows[0].method,
             "DRSCH-%u truncated, weighted ranking", c->long_bits);
    snprintf(res->rows[XP_REID_LSH].method, sizeof res->rows[0].method, "LSH (thumbnails)");
    snprintf(res->rows[XP_REID_ITQ].method, sizeof res->rows[0].method, "ITQ (thumbnails)");
    const xp_parallel *par = c->par && c->par->size > 1 ? c->par : NULL;
    const int P = par ? par->size : 1, rank = par ? par->rank : 0;
    double t0 = xp_now();
    int done = 0;
    drsch_status st = DRSCH_OK;
    /* split s on rank s mod P, in rounds of one split per rank, failures agreed after each */
    for (int first = 0; first < c->splits; first += P) {
        int s = first + rank;
        if (st == DRSCH_OK && s < c->splits) {
            st = split(c, d, s, res, err);
            double per = (xp_now() - t0) / ++done;
            int mine = (c->splits - rank + P - 1) / P, left = (int)(per * (mine - done) + 0.5);
            if (st == DRSCH_OK)
                xp_note(c, "split %d/%d done (%.0f s per split so far; about %dm%02ds left)", s + 1,
                        c->splits, per, left / 60, left % 60);
        }
        if (par && par->max(par->ctx, st != DRSCH_OK) && st == DRSCH_OK)
            st = drsch_fail(err, DRSCH_ERR_PEER, "another rank failed");
        if (st != DRSCH_OK)
            break;
    }
    for (int s = 0; par && st == DRSCH_OK && s < c->splits; s++)
        share_split(par, res, s);
    if (st != DRSCH_OK)
        xp_reid_result_free(res);
    return st;
}
