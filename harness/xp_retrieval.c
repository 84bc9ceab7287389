/* The retrieval experiment of drsch reproduce (reproduce.h): DRSCH models trained at each code
 * length, one longer model per training recipe truncated to every length (in its saved bit order
 * and by |w|; Hamming and weighted ranking), LSH and ITQ on the pixels of the same split, and the
 * paper's published figures where the dataset is one of the paper's (results/paper/drsch_map.csv,
 * "quoted, unverified"). Also what both experiments share (xp_repro_internal.h): the clock,
 * progress lines, training a model and taking its codes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines.h"
#include "xp_repro_internal.h"

double xp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void xp_note(const xp_repro_config *c, const char *fmt, ...)
{
    if (!c->progress)
        return;
    char text[4800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    xp_event e = {.kind = XP_EVENT_NOTE, .text = text};
    c->progress(&e, c->progress_ctx);
}

int xp_repro_weight_power(const xp_repro_config *c)
{
    return c->weight_power ? c->weight_power : XP_WEIGHT_POWER_DEFAULT;
}

typedef struct {
    const xp_repro_config *c;
    const char *tag;
} train_ctx;

static void train_progress(const tr_progress *p, void *ctx)
{
    const train_ctx *t = ctx;
    if (!t->c->progress)
        return;
    xp_event e = {.kind = XP_EVENT_TRAIN, .tag = t->tag, .train = p};
    t->c->progress(&e, t->c->progress_ctx);
}

drsch_status xp_repro_parse_recipes(const char *list, xp_repro_config *c, drsch_error *err)
{
    int n = 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        int r = -1;
        for (int k = NN_RECIPE_DRSCH; k <= NN_RECIPE_AUTHORS; k++)
            if (strlen(nn_recipe_name((nn_recipe)k)) == len &&
                !strncmp(p, nn_recipe_name((nn_recipe)k), len))
                r = k;
        for (int k = 0; r >= 0 && k < n; k++)
            if ((int)c->recipes[k] == r)
                return drsch_fail(err, DRSCH_ERR_ARG, "recipes '%s': %s twice", list,
                                  nn_recipe_name((nn_recipe)r));
        if (r < 0)
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "recipes '%s': '%.*s' is not a recipe (drsch or authors)", list,
                              (int)len, p);
        c->recipes[n++] = (nn_recipe)r;
        if (!p[len])
            break;
        p += len + 1;
    }
    c->n_recipes = n;
    return DRSCH_OK;
}

drsch_status xp_repro_model(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                            uint32_t bits, nn_recipe recipe, int weight_power, const char *path,
                            const char *tag, double *seconds, xp_codes *codes, xp_codes *by_weight,
                            drsch_error *err)
{
    memset(codes, 0, sizeof *codes);
    if (by_weight)
        memset(by_weight, 0, sizeof *by_weight);
    tr_config tc = c->train;
    tc.bits = (int32_t)bits;
    tc.recipe = recipe;
    drsch_error te;
    train_ctx ctx = {c, tag};
    double t = xp_now();
    drsch_status st = tr_train(&tc, d, sp, path, NULL, NULL, train_progress, &ctx, &te);
    *seconds = xp_now() - t;
    if (st != DRSCH_OK)
        return drsch_fail(err, st, "%s: %s", tag, te.msg);
    char state[4300];
    snprintf(state, sizeof state, "%s.state", path);
    remove(state);
    nn_net *net = NULL;
    drsch_status xs = nn_model_load(&net, path, 100, 0, err);
    if (xs != DRSCH_OK) { /* the loader's message names the model */
        snprintf(err->file, sizeof err->file, "%s", path);
        return xs;
    }
    xs = xp_net_codes(net, d, sp->query, sp->n_query, sp->db, sp->n_db, NN_PRECISION_F32,
                      weight_power, codes, err);
    if (xs == DRSCH_OK && by_weight && /* the same codes, bits in the authors' order */
        (xs = xp_codes_in_order(net, codes, XP_BIT_ORDER_WEIGHT, by_weight, err)) != DRSCH_OK)
        xp_codes_free(codes);
    nn_net_free(net);
    if (xs != DRSCH_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        drsch_fail(err, xs, "%s: %s", tag, msg);
    }
    return xs;
}

void xp_repro_train_config(const ds_dataset *d, int reid, int quick, int64_t iters, uint64_t seed,
                           tr_config *c)
{
    tr_config_default(c, d);
    c->seed = seed;
    c->checkpoint_every = 0;
    /* Retrieval: five models in the run's budget (about 15 minutes on 2 cores when chosen, 2
     * with quick; on a 2-core Zen 5 now 6.8 minutes and 45 s): 12k iterations each (drsch
     * train's default is 30k). Re-id: one model per split of 160 x 60 crops, 3000 iterations and
     * 150 with quick, chosen when training ran at 270 images/s (about 20 minutes a split); on a
     * synthetic file of the release's shape (tests/make_cuhk03.c) a split now takes about 4.6
     * minutes on a 2-core Zen 5 (README, CUHK03). The learning rate steps down every third of
     * the run (drsch train: every quarter). */
    c->iters = reid ? (quick ? 150 : 3000) : (quick ? 1000 : 12000);
    if (iters > 0)
        c->iters = iters;
    c->sgd.step = c->iters / 3 > 0 ? c->iters / 3 : 1;
    c->log_every = c->iters >= 10 ? c->iters / 5 : 1;
}

/* ---- Retrieval ------------------------------------------------------------------------------ */

void xp_retrieval_result_free(xp_retrieval_result *r)
{
    for (int i = 0; i < XP_REPRO_MAX_LENGTHS; i++) {
        free(r->pr[i].recall);
        free(r->pr[i].precision);
    }
    memset(r, 0, sizeof *r);
}

static drsch_status eval_failed(drsch_error *err, drsch_status es, const char *msg)
{
    return drsch_fail(err, es, "%s", msg);
}

/* Column col of row dst from an evaluation. */
static void fill(xp_repro_row *dst, int col, const ev_retrieval *r, int multi)
{
    dst->map[col] = multi ? r->map_at_k : r->map_all;
    dst->ties[col] = multi ? 0 : r->map_tie_aware;
    dst->pr2[col] = r->precision_radius;
    dst->no_relevant[col] = r->queries_without_relevant;
    dst->queries = r->queries;
    dst->have[col] = 1;
}

/* Evaluates codes at b bits into column i of row dst (weights NULL: Hamming ranking); the
 * precision-recall curve into *pr unless pr is NULL. */
static drsch_status eval_into(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              const ev_options *opt, const xp_codes *codes, const float *weights,
                              uint32_t b, int i, xp_repro_row *dst, xp_pr_curve *pr,
                              const char *metric, drsch_error *err)
{
    ev_retrieval r;
    drsch_error ee;
    ev_options o = *opt;
    o.pr_curve = pr != NULL;
    drsch_status es = xp_eval_retrieval(d, sp, &codes->query, &codes->db, b, weights, &o, &r, &ee);
    if (es != DRSCH_OK)
        return eval_failed(err, es, ee.msg);
    fill(dst, i, &r, d->label_kind == DS_LABELS_MULTI);
    xp_note(c, "%s at %u bits: %s %.4f", dst->method, b, metric, dst->map[i]);
    if (pr) { /* the curve's arrays move into the result */
        *pr = (xp_pr_curve){r.pr_points, r.pr_recall, r.pr_precision};
        r.pr_recall = r.pr_precision = NULL;
    }
    ev_retrieval_free(&r);
    return DRSCH_OK;
}

/* Model m, trained at lengths[m] with the drsch recipe (c->train's) and evaluated there: row 0. */
static drsch_status length_model(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                                 const ev_options *opt, int m, xp_retrieval_result *res,
                                 drsch_error *err)
{
    const uint32_t B = c->lengths[m];
    char tag[64], path[4200];
    snprintf(tag, sizeof tag, "DRSCH %u bits", B);
    snprintf(path, sizeof path, "%s/model-%u.bin", c->dir, B);
    xp_note(c, "training %s (%lld iterations) -> %s", tag, (long long)c->train.iters, path);
    xp_codes codes;
    double secs;
    drsch_status st = xp_repro_model(c, d, sp, B, c->train.recipe, xp_repro_weight_power(c), path,
                                     tag, &secs, &codes, NULL, err);
    if (st != DRSCH_OK)
        return st;
    xp_repro_row *dst = &res->rows[0];
    dst->seconds += secs;
    st = eval_into(c, d, sp, opt, &codes, NULL, B, m, dst, &res->pr[m], res->metric, err);
    xp_codes_free(&codes);
    return st;
}

/* The name of a row of the long model: "DRSCH-64 truncated" and "DRSCH-64 truncated, weighted
 * ranking" (at the config's power) for drsch's recipe in its saved order, as they have been
 * named; the others say their recipe, order and power. */
static void long_row_name(const xp_repro_config *c, xp_repro_row *r)
{
    int legacy = !strcmp(r->recipe, "drsch") && r->order == XP_BIT_ORDER_SAVED;
    char rank[64] = "";
    if (r->ranking && legacy && r->ranking == xp_repro_weight_power(c))
        snprintf(rank, sizeof rank, ", weighted ranking");
    else if (r->ranking)
        snprintf(rank, sizeof rank, ", weighted ranking power %d", r->ranking);
    snprintf(r->method, sizeof r->method, "DRSCH-%u%s truncated%s%s", c->long_bits,
             strcmp(r->recipe, "drsch") ? " (authors recipe)" : "",
             r->order == XP_BIT_ORDER_WEIGHT ? " in weight order" : "", rank);
}

/* Column i of row src into row dst. */
static void copy_column(xp_repro_row *dst, const xp_repro_row *src, int i)
{
    dst->map[i] = src->map[i];
    dst->ties[i] = src->ties[i];
    dst->pr2[i] = src->pr2[i];
    dst->no_relevant[i] = src->no_relevant[i];
    dst->queries = src->queries;
    dst->have[i] = src->have[i];
}

/* The experiment's units of work, in the serial run's order, and the rows each fills; and the
 * long models, whose evaluations (cells: one row's column each) are dealt out after the units. */
typedef struct {
    const nn_recipe *recipes;
    int n_recipes, n_units, clf;
    int long_row, clf_row, base_row, n_rows; /* rows: 0; long_row + 6k; the classifier; LSH, ITQ */
    double seconds[XP_REPRO_MAX_LENGTHS];    /* the training time of each length's model */
    /* recipe k's long model: its codes in the saved order and by |w| (weights |w|), their
     * weights squared, its training time */
    xp_codes long_codes[XP_REPRO_MAX_RECIPES][2];
    float *long_sq[XP_REPRO_MAX_RECIPES][2];
    double long_seconds[XP_REPRO_MAX_RECIPES];
} plan;

static void plan_free(plan *pl)
{
    for (int k = 0; k < XP_REPRO_MAX_RECIPES; k++)
        for (int o = 0; o < 2; o++) {
            xp_codes_free(&pl->long_codes[k][o]);
            free(pl->long_sq[k][o]);
            pl->long_sq[k][o] = NULL;
        }
}

/* Recipe k's long model: trained, its codes (in both bit orders) kept in the plan. */
static drsch_status long_train(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                               plan *pl, int k, drsch_error *err)
{
    const nn_recipe recipe = pl->recipes[k];
    const uint32_t B = c->long_bits;
    const char *rname = nn_recipe_name(recipe);
    char tag[96], path[4200];
    snprintf(tag, sizeof tag, "DRSCH %u bits%s%s", B, recipe ? ", recipe " : "",
             recipe ? rname : "");
    snprintf(path, sizeof path, "%s/model-%u%s%s.bin", c->dir, B, recipe ? "-" : "",
             recipe ? rname : "");
    xp_note(c, "training %s (%lld iterations) -> %s", tag, (long long)c->train.iters, path);
    return xp_repro_model(c, d, sp, B, recipe, 1, path, tag, &pl->long_seconds[k],
                          &pl->long_codes[k][0], &pl->long_codes[k][1], err);
}

/* Rows long_row + 6k .. + 5, recipe k's long model: its codes in the saved order and in order
 * by |w|, each with Hamming ranking and weighted ranking of power 1 and 2; named, their columns
 * still empty; and the squared weights of weighted ranking of power 2. */
static drsch_status long_rows(const xp_repro_config *c, plan *pl, int k, xp_retrieval_result *res,
                              drsch_error *err)
{
    const uint32_t B = c->long_bits;
    for (int o = 0; o < 2; o++) {
        float *sq = pl->long_sq[k][o] = malloc(sizeof(float) * B);
        if (!sq)
            return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %u bit weights", B);
        for (uint32_t j = 0; j < B; j++) /* as xp_net_codes squares */
            sq[j] = pl->long_codes[k][o].weights[j] * pl->long_codes[k][o].weights[j];
        for (int rank = 0; rank <= 2; rank++) {
            xp_repro_row *dst = &res->rows[pl->long_row + 6 * k + 3 * o + rank];
            *dst = (xp_repro_row){.recipe = nn_recipe_name(pl->recipes[k]),
                                  .truncated = 1,
                                  .ranking = rank,
                                  .order = o ? XP_BIT_ORDER_WEIGHT : XP_BIT_ORDER_SAVED,
                                  .seconds = pl->long_seconds[k]};
            long_row_name(c, dst);
        }
    }
    return DRSCH_OK;
}

/* The long models' cells: recipe k, row r (3 x order + ranking) of its six, column i (0..nl, nl
 * its own length). At the model's own length both orders hold the same bits (the same
 * distances, the same figures): the order by |w| takes the saved order's figures there
 * (long_copies) rather than evaluating them again, so those three are no cells. */
static int long_cells(const xp_repro_config *c, const plan *pl)
{
    return pl->n_recipes * (6 * (c->n_lengths + 1) - 3);
}

static void long_cell(const xp_repro_config *c, int j, int *k, int *r, int *i)
{
    const int nl = c->n_lengths, per = 6 * (nl + 1) - 3;
    *k = j / per;
    j %= per;
    *r = j < 3 * (nl + 1) ? j / (nl + 1) : 3 + (j - 3 * (nl + 1)) / nl;
    *i = j < 3 * (nl + 1) ? j % (nl + 1) : (j - 3 * (nl + 1)) % nl;
}

static drsch_status long_eval(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              const ev_options *opt, const plan *pl, int j,
                              xp_retrieval_result *res, drsch_error *err)
{
    int k, r, i;
    long_cell(c, j, &k, &r, &i);
    const int o = r / 3, rank = r % 3;
    const xp_codes *codes = &pl->long_codes[k][o];
    const float *w = rank == 0 ? NULL : rank == 1 ? codes->weights : pl->long_sq[k][o];
    return eval_into(c, d, sp, opt, codes, w, i < c->n_lengths ? c->lengths[i] : c->long_bits, i,
                     &res->rows[pl->long_row + 6 * k + r], NULL, res->metric, err);
}

/* The order by |w|'s column at the model's own length: the saved order's figures. */
static void long_copies(const xp_repro_config *c, const plan *pl, xp_retrieval_result *res)
{
    for (int k = 0; k < pl->n_recipes; k++)
        for (int rank = 0; rank <= 2; rank++) {
            const xp_repro_row *saved = &res->rows[pl->long_row + 6 * k + rank];
            copy_column(&res->rows[pl->long_row + 6 * k + 3 + rank], saved, c->n_lengths);
        }
}

/* The classifier baseline (Sablayrolles et al., ICASSP 2017): the network of c->train trained
 * with softmax cross-entropy on the same training images, its code the one-hot of the predicted
 * class (C bits for the split's C training classes), evaluated once and shown at every column
 * of at least C bits. Skipped (with a note) where it does not apply: multi-label datasets. */
static drsch_status classifier(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                               const ev_options *opt, xp_retrieval_result *res, drsch_error *err)
{
    const int C = tr_train_classes(d, sp);
    if (d->label_kind == DS_LABELS_MULTI || C < 2) {
        xp_note(c, "no classifier baseline: it needs a single-label dataset");
        return DRSCH_OK;
    }
    if (c->long_bits < (uint32_t)C) {
        xp_note(c, "no classifier baseline: its %d-bit code is longer than every column", C);
        return DRSCH_OK;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model-classifier.bin", c->dir);
    xp_note(c, "training the classifier baseline (softmax, %d classes, %lld iterations) -> %s", C,
            (long long)c->train.iters, path);
    train_ctx ctx = {c, "classifier"};
    xp_codes codes;
    drsch_error ce;
    double t = xp_now();
    drsch_status st =
        xp_classifier_codes(&c->train, d, sp, path, NULL, NULL, train_progress, &ctx, &codes, &ce);
    double secs = xp_now() - t;
    if (st != DRSCH_OK)
        return drsch_fail(err, st, "classifier baseline: %s", ce.msg);
    char state[4300];
    snprintf(state, sizeof state, "%s.state", path);
    remove(state);
    xp_repro_row *dst = &res->rows[res->n_rows];
    snprintf(dst->method, sizeof dst->method,
             "Classifier (softmax; one-hot of the predicted class, %d bits)", C);
    dst->recipe = nn_recipe_name(c->train.recipe);
    dst->seconds = secs;
    xp_repro_row one = *dst;
    st = eval_into(c, d, sp, opt, &codes, NULL, (uint32_t)C, 0, &one, NULL, res->metric, err);
    xp_codes_free(&codes);
    if (st != DRSCH_OK)
        return st;
    for (int i = 0; i <= c->n_lengths; i++) {
        uint32_t bits = i < c->n_lengths ? c->lengths[i] : c->long_bits;
        if (bits < (uint32_t)C)
            continue;
        dst->map[i] = one.map[0];
        dst->ties[i] = one.ties[0];
        dst->pr2[i] = one.pr2[0];
        dst->no_relevant[i] = one.no_relevant[0];
        dst->have[i] = 1;
    }
    dst->queries = one.queries;
    res->n_rows++;
    return DRSCH_OK;
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

/* One baseline (method 0 LSH, 1 ITQ) at lengths[i], trained on xtr and evaluated on the split. */
static drsch_status baseline(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                             const ev_options *opt, const float *xtr, const float *xq, int method,
                             int i, xp_repro_row *dst, drsch_error *err)
{
    const int dim = d->c * d->h * d->w, multi = d->label_kind == DS_LABELS_MULTI;
    const uint32_t bits = c->lengths[i];
    bl_model bm;
    drsch_error be;
    double t = xp_now();
    drsch_status bad =
        method ? bl_itq_train(xtr, (size_t)sp->n_train, dim, bits, 50, c->seed, &bm, &be)
               : bl_lsh_train(xtr, (size_t)sp->n_train, dim, bits, c->seed, &bm, &be);
    if (bad != DRSCH_OK)
        return drsch_fail(err, bad, "%s", be.msg);
    hm_codes q = {0}, db = {0};
    drsch_error he;
    int ok = hm_codes_alloc(&q, (size_t)sp->n_query, bits, &he) == DRSCH_OK &&
             hm_codes_alloc(&db, (size_t)sp->n_db, bits, &he) == DRSCH_OK;
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
    double secs = xp_now() - t;
    bl_model_free(&bm);
    ev_retrieval r;
    drsch_error ee;
    ev_options o = *opt;
    o.pr_curve = 0;
    drsch_status es =
        ok ? xp_eval_retrieval(d, sp, &q, &db, bits, NULL, &o, &r, &ee) : DRSCH_ERR_NOMEM;
    hm_codes_free(&q);
    hm_codes_free(&db);
    if (es != DRSCH_OK)
        return eval_failed(err, es, ok ? ee.msg : "out of memory");
    fill(dst, i, &r, multi);
    dst->seconds += secs;
    xp_note(c, "%s at %u bits: %s %.4f", dst->method, bits, opt->topk ? "mAP@5000" : "mAP@all",
            dst->map[i]);
    ev_retrieval_free(&r);
    return DRSCH_OK;
}

/* LSH and ITQ on the pixels of the split, at every length: the next two rows. */
static drsch_status baselines(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              const ev_options *opt, xp_retrieval_result *res, drsch_error *err)
{
    xp_note(c, "LSH and ITQ baselines on %d x %d x %d pixels", d->c, d->h, d->w);
    float *xtr = pixels(d, sp->train, sp->n_train), *xq = pixels(d, sp->query, sp->n_query);
    xp_repro_row *r_lsh = &res->rows[res->n_rows], *r_itq = &res->rows[res->n_rows + 1];
    snprintf(r_lsh->method, sizeof r_lsh->method, "LSH (pixels)");
    snprintf(r_itq->method, sizeof r_itq->method, "ITQ (pixels)");
    drsch_status st = DRSCH_OK;
    if (!xtr || !xq)
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for baseline features");
    for (int i = 0; st == DRSCH_OK && i < c->n_lengths; i++)
        for (int method = 0; st == DRSCH_OK && method < 2; method++)
            st = baseline(c, d, sp, opt, xtr, xq, method, i, method ? r_itq : r_lsh, err);
    free(xtr);
    free(xq);
    if (st == DRSCH_OK)
        res->n_rows += 2;
    return st;
}

/* Paper figures for a dataset name ("cifar10", "nuswide") from the CSV; fills map by length. */
static int paper_row(const char *csv, const char *dataset, const uint32_t *lengths, int nl,
                     xp_repro_row *r, char *metric, size_t mcap)
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

/* The paper's figures where the dataset is one of the paper's: the last row. */
static void paper(const xp_repro_config *c, const ds_dataset *d, xp_retrieval_result *res)
{
    const char *paper_name = !strcmp(d->name, "cifar10")       ? "cifar10"
                             : !strncmp(d->name, "nuswide", 7) ? "nuswide"
                                                               : NULL;
    if (!paper_name)
        return;
    xp_repro_row *p = &res->rows[res->n_rows];
    snprintf(p->method, sizeof p->method, "DRSCH, published (quoted, unverified)");
    for (int i = 0; i < c->n_lengths; i++)
        p->pr2[i] = -1;
    if (paper_row(c->paper_csv, paper_name, c->lengths, c->n_lengths, p, res->paper_metric,
                  sizeof res->paper_metric) == 0) {
        res->have_paper = 1;
        res->n_rows++;
    } else {
        xp_note(c, "no published figures for %s in %s", paper_name, c->paper_csv);
    }
}

/* Whether the classifier baseline has a row (classifier() trains it). */
static int has_classifier(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp)
{
    const int C = tr_train_classes(d, sp);
    return !c->no_classifier && d->label_kind != DS_LABELS_MULTI && C >= 2 &&
           c->long_bits >= (uint32_t)C;
}

/* Unit u: the model of length u, the long model of recipe u - n_lengths, the classifier, the
 * baselines (each writing the rows of the plan). */
static drsch_status run_unit(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                             const ev_options *opt, plan *pl, int u, xp_retrieval_result *out,
                             drsch_error *err)
{
    const int nl = c->n_lengths;
    if (u < nl) {
        double before = out->rows[0].seconds;
        drsch_status st = length_model(c, d, sp, opt, u, out, err);
        pl->seconds[u] = out->rows[0].seconds - before;
        return st;
    }
    if (u < nl + pl->n_recipes)
        return long_train(c, d, sp, pl, u - nl, err);
    if (u == nl + pl->n_recipes) {
        out->n_rows = pl->clf_row; /* the classifier's row, unless it has none */
        return c->no_classifier ? DRSCH_OK : classifier(c, d, sp, opt, out, err);
    }
    out->n_rows = pl->base_row;
    return baselines(c, d, sp, opt, out, err);
}

/* Distributed: column i of row r (what fill writes) from rank root to every rank. */
static void share_column(const xp_parallel *par, xp_repro_row *r, int i, int root)
{
    par->broadcast(par->ctx, &r->map[i], sizeof r->map[i], root);
    par->broadcast(par->ctx, &r->ties[i], sizeof r->ties[i], root);
    par->broadcast(par->ctx, &r->pr2[i], sizeof r->pr2[i], root);
    par->broadcast(par->ctx, &r->have[i], sizeof r->have[i], root);
    par->broadcast(par->ctx, &r->no_relevant[i], sizeof r->no_relevant[i], root);
    par->broadcast(par->ctx, &r->queries, sizeof r->queries, root);
}

/* Distributed: unit u's results from the rank that ran it to every rank (a collective). */
static drsch_status share_unit(const xp_repro_config *c, plan *pl, int u, xp_retrieval_result *out,
                               drsch_error *err)
{
    const xp_parallel *par = c->par;
    const int nl = c->n_lengths, root = u % par->size;
    void *ctx = par->ctx;
    if (u < nl) { /* column u of row 0, its training time and its precision-recall curve */
        share_column(par, &out->rows[0], u, root);
        par->broadcast(ctx, &pl->seconds[u], sizeof pl->seconds[u], root);
        xp_pr_curve *pr = &out->pr[u];
        par->broadcast(ctx, &pr->n, sizeof pr->n, root);
        if (par->rank != root && pr->n) {
            pr->recall = malloc(sizeof(double) * pr->n);
            pr->precision = malloc(sizeof(double) * pr->n);
        }
        /* every rank learns whether a receiver is out of memory before the arrays are sent */
        int32_t short_of = par->max(ctx, pr->n && (!pr->recall || !pr->precision));
        if (short_of)
            return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a precision-recall curve");
        if (pr->n) {
            par->broadcast(ctx, pr->recall, sizeof(double) * pr->n, root);
            par->broadcast(ctx, pr->precision, sizeof(double) * pr->n, root);
        }
        return DRSCH_OK;
    }
    if (u < nl + pl->n_recipes) /* the long models: their codes before, their cells after */
        return DRSCH_OK;
    /* whole rows; their recipe names are pointers, set again on every rank */
    int first, n;
    const char *recipe = NULL;
    if (u == nl + pl->n_recipes) {
        first = pl->clf_row, n = pl->clf;
        recipe = nn_recipe_name(c->train.recipe);
    } else {
        first = pl->base_row, n = 2;
    }
    if (n)
        par->broadcast(ctx, &out->rows[first], sizeof(xp_repro_row) * (size_t)n, root);
    for (int i = first; i < first + n; i++)
        out->rows[i].recipe = recipe;
    return DRSCH_OK;
}

/* Distributed: whether any rank failed, agreed on (a collective); the failing rank keeps its
 * error, the others get DRSCH_ERR_PEER. One process: st. */
static drsch_status agree(const xp_parallel *par, drsch_status st, drsch_error *err)
{
    if (!par || !par->max(par->ctx, st != DRSCH_OK))
        return st;
    return st != DRSCH_OK ? st : drsch_fail(err, DRSCH_ERR_PEER, "another rank failed");
}

/* Distributed: each long model's codes and training time, from the rank that trained it to
 * every rank (a collective), for the cells dealt out after. */
static drsch_status share_long_codes(const xp_repro_config *c, plan *pl, drsch_error *err)
{
    const xp_parallel *par = c->par;
    for (int k = 0; k < pl->n_recipes; k++) {
        const int root = (c->n_lengths + k) % par->size;
        par->broadcast(par->ctx, &pl->long_seconds[k], sizeof pl->long_seconds[k], root);
        for (int o = 0; o < 2; o++) {
            xp_codes *x = &pl->long_codes[k][o];
            uint64_t shape[3] = {x->query.n, x->db.n, x->bits};
            par->broadcast(par->ctx, shape, sizeof shape, root);
            drsch_status st = DRSCH_OK;
            if (par->rank != root) {
                x->bits = (uint32_t)shape[2];
                x->weights = malloc(sizeof(float) * x->bits);
                if (!x->weights ||
                    (shape[0] && hm_codes_alloc(&x->query, shape[0], x->bits, err) != DRSCH_OK) ||
                    (shape[1] && hm_codes_alloc(&x->db, shape[1], x->bits, err) != DRSCH_OK))
                    st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a long model's codes");
            }
            if ((st = agree(par, st, err)) != DRSCH_OK)
                return st;
            par->broadcast(par->ctx, x->weights, sizeof(float) * x->bits, root);
            if (shape[0])
                par->broadcast(par->ctx, x->query.data,
                               sizeof(uint64_t) * x->query.n * x->query.words, root);
            if (shape[1])
                par->broadcast(par->ctx, x->db.data, sizeof(uint64_t) * x->db.n * x->db.words,
                               root);
        }
    }
    return DRSCH_OK;
}

/* Every unit, in the serial run's order (par NULL), or this rank's share of them in rounds, each
 * round ending with an agreement on failures; then the long models' cells the same way (in one
 * round, each long model's codes first sent to every rank); then every unit's and cell's
 * results shared. */
static drsch_status run_units(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              const ev_options *opt, plan *pl, xp_retrieval_result *out,
                              drsch_error *err)
{
    const xp_parallel *par = c->par && c->par->size > 1 ? c->par : NULL;
    const int rank = par ? par->rank : 0, size = par ? par->size : 1;
    drsch_status st = DRSCH_OK;
    for (int first = 0; first < pl->n_units; first += size) {
        for (int u = first; u < first + size && u < pl->n_units; u++)
            if (st == DRSCH_OK && (!par || u % size == rank))
                st = run_unit(c, d, sp, opt, pl, u, out, err);
        if ((st = agree(par, st, err)) != DRSCH_OK) /* some rank failed: every rank stops */
            return st;
    }
    if (par && (st = share_long_codes(c, pl, err)) != DRSCH_OK)
        return st;
    for (int k = 0; st == DRSCH_OK && k < pl->n_recipes; k++)
        st = long_rows(c, pl, k, out, err);
    if ((st = agree(par, st, err)) != DRSCH_OK)
        return st;
    const int cells = long_cells(c, pl);
    for (int j = rank; st == DRSCH_OK && j < cells; j += size)
        st = long_eval(c, d, sp, opt, pl, j, out, err);
    if ((st = agree(par, st, err)) != DRSCH_OK)
        return st;
    if (par) {
        out->rows[0].seconds = 0;
        for (int u = 0; st == DRSCH_OK && u < pl->n_units; u++)
            st = share_unit(c, pl, u, out, err);
        for (int j = 0; j < cells; j++) { /* cell j's column, from the rank that evaluated it */
            int k, r, i;
            long_cell(c, j, &k, &r, &i);
            share_column(par, &out->rows[pl->long_row + 6 * k + r], i, j % size);
        }
        for (int m = 0; m < c->n_lengths; m++)
            out->rows[0].seconds += pl->seconds[m];
    }
    long_copies(c, pl, out);
    return st;
}

drsch_status xp_retrieval_run(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                              xp_retrieval_result *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    const int wp = xp_repro_weight_power(c);
    if (wp != 1 && wp != 2)
        return drsch_fail(err, DRSCH_ERR_ARG, "weight power %d: it is 1 (|w|) or 2 (w^2)", wp);
    const nn_recipe drsch_only[1] = {NN_RECIPE_DRSCH};
    plan pl = {.recipes = c->n_recipes ? c->recipes : drsch_only,
               .n_recipes = c->n_recipes ? c->n_recipes : 1};
    if (pl.n_recipes < 0 || pl.n_recipes > XP_REPRO_MAX_RECIPES)
        return drsch_fail(err, DRSCH_ERR_ARG, "%d recipes: at most %d", pl.n_recipes,
                          XP_REPRO_MAX_RECIPES);
    for (int k = 0; k < pl.n_recipes; k++)
        if (!nn_recipe_name(pl.recipes[k]))
            return drsch_fail(err, DRSCH_ERR_ARG, "recipe %d: it is drsch or authors",
                              (int)pl.recipes[k]);
    pl.n_units = c->n_lengths + pl.n_recipes + 2;
    pl.clf = has_classifier(c, d, sp);
    pl.long_row = 1;
    pl.clf_row = pl.long_row + 6 * pl.n_recipes;
    pl.base_row = pl.clf_row + pl.clf;
    pl.n_rows = pl.base_row + 2;
    const int multi = d->label_kind == DS_LABELS_MULTI;
    out->metric = multi ? "mAP@5000" : "mAP@all";
    ev_options opt = {.topk = multi ? 5000 : 0, .radius = 2, .pr_curve = 1};
    xp_repro_row *r0 = &out->rows[0];
    snprintf(r0->method, sizeof r0->method, "DRSCH (trained at each length)");
    r0->recipe = nn_recipe_name(c->train.recipe);
    /* One model per length, the long model of each recipe truncated, the classifier, LSH, ITQ */
    drsch_status st = run_units(c, d, sp, &opt, &pl, out, err);
    plan_free(&pl);
    if (st != DRSCH_OK) {
        xp_retrieval_result_free(out);
        return st;
    }
    out->n_rows = pl.n_rows;
    paper(c, d, out);
    return DRSCH_OK;
}
