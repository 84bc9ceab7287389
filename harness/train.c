/* The DRSCH training loop, tr_train, and its steps (see train.h).
 *
 * One iteration: a class-balanced batch (ds_sampler), augmented into floats (ds_batch_build,
 * seeded by (seed, iteration) so a batch does not depend on the thread count or on resuming),
 * forward, the DRSCH objective on the bit-weighted outputs (dh_loss), backward, SGD step (with
 * the lr and decay multipliers of tr_config.recipe), hash scale annealed on the authors'
 * schedule. Checkpoints are the model file (written atomically
 * by nn_model_save, in the bit order of tr_config.bit_order, so a checkpoint can be used for
 * encoding right away) plus PATH.state, one self-contained atomic file: iteration, the settings
 * (flag=value lines, so a resume with other flags names them), the parameters and the SGD
 * momentum history. Resuming takes the architecture from the model file
 * and everything else from the state, so a kill between the two renames cannot pair a model of
 * one iteration with the state of another; it replays the sampler to the saved iteration, so a
 * resumed run takes exactly the batches an uninterrupted one would. A resume may raise --iters
 * (no schedule depends on it): the extended run equals one run of the larger count.
 *
 * The classifier baseline (tr_config.objective TR_OBJECTIVE_SOFTMAX) runs the same loop on the
 * same batches with the network's classifier (nn_config_classifier) and softmax cross-entropy
 * (ce_loss) on the labels renumbered 0..C-1 (tr_class_map); its saved bit order is the identity
 * (bit k = class k), and it has no collapse check (a batch's one-hot codes are at most C).
 *
 * Elsewhere: the defaults (train_config.c), the state file (train_state.c), encoding
 * (train_encode.c). */
#include "train_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "experiment.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *default_arch(const ds_dataset *d)
{
    if (d->kind == DS_KIND_CUHK03 || d->label_kind == DS_LABELS_IDENTITY)
        return "drsch-reid";
    return d->c == 1 ? "drsch-mnist" : "drsch-cifar";
}

/* Augmentation of the model's input: crop to (crop_h, crop_w), normalisation per channel. */
static void make_augment(const tr_config *c, const ds_dataset *d, const float *mean,
                         const float *scale, int train, ds_augment *a)
{
    ds_augment_default(a);
    a->out_h = c->crop_h ? c->crop_h : d->h;
    a->out_w = c->crop_w ? c->crop_w : d->w;
    a->pad = train ? c->pad : 0;
    a->random_crop = train;
    a->mirror = train && c->mirror;
    a->rotate = train ? c->rotate : 0.0f;
    a->scale_jitter = train ? c->zoom : 0.0f;
    for (int ch = 0; ch < DS_MAX_CHANNELS && ch < NN_MAX_IN_C; ch++) {
        a->mean[ch] = mean[ch];
        a->scale[ch] = scale[ch];
    }
}

static void code_stats(const float *u, int32_t n, int32_t B, double *balance, double *distinct)
{
    double bal = 0;
    for (int32_t j = 0; j < B; j++) {
        int pos = 0;
        for (int32_t i = 0; i < n; i++)
            pos += u[(size_t)i * B + j] > 0;
        bal += fabs(2.0 * pos / n - 1.0);
    }
    *balance = bal / B;
    int uniq = 0;
    for (int32_t i = 0; i < n; i++) {
        int seen = 0;
        for (int32_t k = 0; k < i && !seen; k++) {
            int same = 1;
            for (int32_t j = 0; j < B && same; j++)
                same = (u[(size_t)i * B + j] > 0) == (u[(size_t)k * B + j] > 0);
            seen = same;
        }
        uniq += !seen;
    }
    *distinct = (double)uniq / n;
}

/* Gradient values a block of grad_norm sums (the last block of a tensor may be shorter) */
#define GN_BLOCK 4096

/* The squares of g[0 .. n) summed in double in 8 lanes (value k in lane k % 8), then the lanes
 * in pairs: 8 independent chains, where one chain of dependent additions took about 0.3 ms for
 * drsch-mnist's 348,000 values, 4% of a training step at 2 threads. */
static double block_squares(const float *g, size_t n)
{
    double acc[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)g[k + (size_t)j] * g[k + (size_t)j];
    for (; k < n; k++)
        acc[k % 8] += (double)g[k] * g[k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Blocks a parallel pass of tr_grad_norm sums into its array on the stack */
#define GN_PASS 256

double tr_grad_norm(const nn_net *net)
{
    double s = 0, part[GN_PASS];
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        const nn_param p = nn_param_at(net, i);
        const size_t nb = (p.count + GN_BLOCK - 1) / GN_BLOCK;
        for (size_t j0 = 0; j0 < nb; j0 += GN_PASS) {
            const size_t m = nb - j0 < GN_PASS ? nb - j0 : GN_PASS;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (m > 1)
#endif
            for (size_t j = 0; j < m; j++) {
                const size_t lo = (j0 + j) * GN_BLOCK;
                part[j] =
                    block_squares(p.grad + lo, p.count - lo < GN_BLOCK ? p.count - lo : GN_BLOCK);
            }
            for (size_t j = 0; j < m; j++) /* in order: the same bits at any thread count */
                s += part[j];
        }
    }
    return sqrt(s);
}

static void scale_grads(nn_net *net, float f)
{
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        const nn_param p = nn_param_at(net, i);
        const ptrdiff_t n = (ptrdiff_t)p.count;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
        for (ptrdiff_t k = 0; k < n; k++)
            p.grad[k] *= f;
    }
}

/* -1 when every parameter is finite, else the index of the first layer holding a NaN or Inf. */
static int32_t nonfinite_layer(const nn_net *net, int *is_bias)
{
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        nn_param p = nn_param_at(net, i);
        for (size_t k = 0; k < p.count; k++)
            if (!isfinite(p.data[k])) {
                *is_bias = p.is_bias;
                return p.layer;
            }
    }
    return -1;
}

static drsch_status check_finite(const nn_net *net, int64_t iter, const char *path,
                                 drsch_error *err)
{
    int is_bias = 0;
    int32_t layer = nonfinite_layer(net, &is_bias);
    if (layer < 0)
        return DRSCH_OK;
    return drsch_fail(err, DRSCH_ERR_NUMERIC,
                      "iteration %lld: the %s of layer %d (%s) hold NaN or Inf; training stopped, "
                      "nothing was written "
                      "over %s (try a lower --lr)",
                      (long long)iter, is_bias ? "biases" : "weights", layer,
                      nn_net_config(net)->arch.name, path);
}

/* Sample codes for the decorrelated bit order: at most this many training images, evenly spread. */
#define ORDER_SAMPLE 5000

/* Sets the bit order a saved model carries (tr_bit_order). */
static drsch_status order_bits(nn_net *net, const tr_config *c, const ds_dataset *d,
                               const ds_split *split, drsch_error *err)
{
    if (c->bit_order == TR_BIT_ORDER_WEIGHT || c->objective == TR_OBJECTIVE_SOFTMAX) {
        nn_bit_order_by_weight(net); /* a classifier has no bit weights: the identity */
        return DRSCH_OK;
    }
    const int32_t B = nn_net_config(net)->bits;
    uint32_t *ident = malloc(sizeof *ident * (size_t)B);
    int64_t m = split->n_train < ORDER_SAMPLE ? split->n_train : ORDER_SAMPLE;
    int64_t *idx = malloc(sizeof *idx * (size_t)m);
    if (!ident || !idx) {
        free(ident), free(idx);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for the bit order");
    }
    for (int32_t j = 0; j < B; j++)
        ident[j] = (uint32_t)j;
    for (int64_t k = 0; k < m; k++)
        idx[k] = split->train[k * split->n_train / m];
    drsch_error ne;
    nn_set_bit_order(net, ident, &ne); /* codes in network bit order */
    hm_codes codes = {0};
    drsch_status st = tr_encode(net, d, idx, m, &codes, err);
    if (st == DRSCH_OK)
        st = nn_bit_order_decorrelated(net, &codes, err);
    hm_codes_free(&codes);
    free(ident);
    free(idx);
    return st;
}

static drsch_status save_checkpoint(nn_net *net, const tr_config *c, const ds_dataset *d,
                                    const ds_split *split, const char *path, int64_t iter,
                                    const char *settings, drsch_error *err)
{
    drsch_status st = check_finite(net, iter, path, err);
    if (st != DRSCH_OK)
        return st;
    if ((st = order_bits(net, c, d, split, err)) != DRSCH_OK)
        return st;
    if ((st = nn_model_save(net, path, err)) != DRSCH_OK)
        return st;
    /* State blob: plain parameters, then the momentum history in the same plain layout. */
    size_t np = nn_params_plain_size(net);
    float *blob = malloc(sizeof(float) * (2 * np + 1));
    if (!blob)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a checkpoint");
    if ((st = nn_params_export(net, blob, np, err)) != DRSCH_OK ||
        (st = nn_sgd_history_export(net, blob + np, np, err)) != DRSCH_OK) {
        free(blob);
        return st;
    }
    st = tr_write_state(path, iter, settings, blob, 2 * np, err);
    free(blob);
    return st;
}

/* One training run: what its steps share. */
typedef struct {
    tr_config c; /* the settings with the margins and the architecture resolved */
    const ds_dataset *d;
    const ds_split *split;
    const char *out_path;
    ds_sampler *sampler;
    ds_augment aug;
    char settings[TR_STATE_SETTINGS_MAX]; /* as recorded in the state (tr_read_state /
                                             tr_write_state) */
    uint32_t fp_v1;                       /* the version 1 fingerprint, to read older states */
    nn_net *net;   /* the network, or the lead of the replicas (then team's) */
    nn_team *team; /* --replicas above 1: the copies sharing each batch, else NULL */
    int32_t N, B;  /* images per batch, code bits */
    int64_t start; /* the first iteration to run (0, or where the resumed checkpoint stopped) */
    /* the batch: images, loss gradient, pairwise similarity, indices, labels, multi-hot masks */
    float *x, *dy;
    uint8_t *sim;
    int64_t *idx;
    int32_t *cls;
    uint64_t *multi;
    size_t words;
    /* the classifier: output of each label (tr_class_map), the batch's renumbered labels */
    int32_t *class_map, *target;
    /* the last step's loss statistics, gradient norm and (classifier) accuracy, for progress */
    dh_stats ls;
    double gnorm, accuracy;
    /* data parallel (NULL in one process): this rank's rows [lo, lo + nl) of the batch (else 0,
     * N); the whole batch's outputs and hash outputs; per rank, the floats of each gather; the
     * parameter gradients packed for the sum */
    const tr_parallel *par;
    int32_t lo, nl;
    float *y_all, *u_all, *gbuf;
    int32_t *counts;
    size_t gsize;
    double t_loss, t_collective; /* seconds in the loss, in collectives (tr_progress) */
} run;

static void run_free(run *r)
{
    ds_sampler_free(r->sampler);
    if (r->team)
        nn_team_free(r->team); /* r->net, its lead, with it */
    else
        nn_net_free(r->net);
    free(r->x);
    free(r->dy);
    free(r->sim);
    free(r->idx);
    free(r->cls);
    free(r->multi);
    free(r->class_map);
    free(r->target);
    free(r->y_all);
    free(r->u_all);
    free(r->gbuf);
    free(r->counts);
}

/* Whether this rank writes files: rank 0, or the one process. */
static int writer(const run *r) { return !r->par || r->par->rank == 0; }

/* Data parallel: every rank learns whether a step failed on any rank (a collective); a rank whose
 * own step went well returns DRSCH_ERR_PEER when another's did not. In one process: st. */
static drsch_status agree(const run *r, drsch_status st, drsch_error *err)
{
    if (!r->par)
        return st;
    double t0 = now();
    int32_t failed = r->par->max(r->par->ctx, st != DRSCH_OK);
    ((run *)r)->t_collective += now() - t0;
    if (failed && st == DRSCH_OK)
        return drsch_fail(err, DRSCH_ERR_PEER, "another rank failed");
    return st;
}

/* The whole batch's rows of width w, each rank's nl rows at rows (a collective), into all. */
static void gather_rows(run *r, const float *rows, int32_t w, float *all)
{
    for (int32_t k = 0; k < r->par->size; k++) {
        int32_t lo = (int32_t)((int64_t)k * r->N / r->par->size);
        int32_t hi = (int32_t)((int64_t)(k + 1) * r->N / r->par->size);
        r->counts[k] = (hi - lo) * w;
    }
    double t0 = now();
    r->par->allgather(r->par->ctx, rows, all, r->counts);
    r->t_collective += now() - t0;
}

/* Data parallel: the parameter gradients summed over the ranks (a collective). */
static void sum_grads(run *r)
{
    size_t at = 0;
    for (int32_t i = 0; i < nn_param_count(r->net); i++) {
        nn_param p = nn_param_at(r->net, i);
        memcpy(r->gbuf + at, p.grad, sizeof(float) * p.count);
        at += p.count;
    }
    double t0 = now();
    r->par->sum(r->par->ctx, r->gbuf, at);
    r->t_collective += now() - t0;
    at = 0;
    for (int32_t i = 0; i < nn_param_count(r->net); i++) {
        nn_param p = nn_param_at(r->net, i);
        memcpy(p.grad, r->gbuf + at, sizeof(float) * p.count);
        at += p.count;
    }
}

/* The settings of the run, the defaults that depend on --bits and the dataset filled in. */
static drsch_status resolve_settings(run *r, const tr_config *cfg, drsch_error *err)
{
    tr_config *c = &r->c;
    *c = *cfg;
    if (c->objective != TR_OBJECTIVE_DRSCH && c->objective != TR_OBJECTIVE_SOFTMAX)
        return drsch_fail(err, DRSCH_ERR_ARG, "unknown training objective %d", (int)c->objective);
    if (c->objective == TR_OBJECTIVE_SOFTMAX) {
        int classes;
        if (r->d->label_kind != DS_LABELS_SINGLE)
            return drsch_fail(
                err, DRSCH_ERR_ARG,
                "the softmax classifier needs a single-label dataset ('%s' has %s)", r->d->name,
                r->d->label_kind == DS_LABELS_MULTI ? "multi-label concepts" : "person identities");
        if (!(r->class_map = tr_class_map(r->d, r->split, &classes)))
            return drsch_fail(err, DRSCH_ERR_RANGE,
                              "the training labels of '%s' are out of range (or out of memory)",
                              r->d->name);
        if (classes < 2 || classes > HM_MAX_BITS)
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "the protocol '%s' trains %d classes; a classifier needs 2..%d",
                              r->split->name, classes, HM_MAX_BITS);
        c->bits = classes;
    }
    if (c->margin_auto) {
        c->loss.margin0 = -(float)c->bits / 2.0f;
        c->loss.margin_step = -(float)c->bits / 24.0f;
        c->loss.margin_min = -(float)c->bits;
    }
    if (!c->arch[0])
        snprintf(c->arch, sizeof c->arch, "%s", default_arch(r->d));
    if (c->bits < 1 || c->bits > HM_MAX_BITS || c->iters < 0 || c->classes_per_batch < 2 ||
        c->images_per_class < 2)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "invalid training settings (bits %d, iterations %lld, batch %d x %d)",
                          c->bits, (long long)c->iters, c->classes_per_batch, c->images_per_class);
    if (r->split->n_train < 2)
        return drsch_fail(err, DRSCH_ERR_ARG, "the protocol '%s' leaves no training images",
                          r->split->name);
    if (r->d->c > NN_MAX_IN_C)
        return drsch_fail(err, DRSCH_ERR_ARG, "%d image channels; at most %d are supported",
                          r->d->c, NN_MAX_IN_C);
    return DRSCH_OK;
}

/* The class-balanced sampler, the input normalisation from the training images (per-channel
 * mean and 1/std), the augmentation, and the settings as the state records them. */
static drsch_status set_up_data(run *r, float *mean, float *scale, drsch_error *err)
{
    const tr_config *c = &r->c;
    const ds_dataset *d = r->d;
    drsch_status st = ds_sampler_create(d, r->split->train, r->split->n_train, c->classes_per_batch,
                                        c->images_per_class, c->seed ^ 0x5A5A, &r->sampler, err);
    if (st != DRSCH_OK)
        return st;
    r->N = (int32_t)ds_sampler_batch_size(r->sampler);
    double dmean[DS_MAX_CHANNELS] = {0}, dstd[DS_MAX_CHANNELS] = {0};
    ds_channel_stats(d, r->split->train, r->split->n_train, dmean, dstd);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++) {
        mean[ch] = ch < d->c ? (float)dmean[ch] : 0.0f;
        scale[ch] = ch < d->c && dstd[ch] > 0 ? (float)(1.0 / dstd[ch]) : 1.0f;
    }
    make_augment(c, d, mean, scale, 1, &r->aug);
    r->fp_v1 = tr_config_fingerprint(c, r->split);
    if (tr_config_settings(c, r->split, r->settings, sizeof r->settings) < 0)
        return drsch_fail(
            err, DRSCH_ERR_ARG,
            "the training settings do not fit in a state file (protocol name too long?)");
    return DRSCH_OK;
}

/* Resume: the network and its SGD history from the checkpoint (the sampler is replayed by
 * the caller, so the remaining batches are those of an uninterrupted run). */
static drsch_status resume(run *r, const char *resume_path, drsch_error *err)
{
    const tr_config *c = &r->c;
    drsch_status st = nn_model_load(&r->net, resume_path, r->nl, 1, err);
    if (st != DRSCH_OK)
        return st;
    const nn_config *lc = nn_net_config(r->net);
    const int32_t head = c->objective == TR_OBJECTIVE_SOFTMAX ? NN_HEAD_SOFTMAX : NN_HEAD_HASH;
    if (lc->head != head)
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: a %s model cannot continue a %s run (--loss %s)",
                          resume_path,
                          lc->head == NN_HEAD_SOFTMAX ? "classifier (softmax)" : "hash",
                          head == NN_HEAD_SOFTMAX ? "classifier" : "DRSCH",
                          head == NN_HEAD_SOFTMAX ? "softmax" : "drsch");
    if (strcmp(lc->arch.name, c->arch) || lc->bits != c->bits || lc->in_c != r->d->c ||
        lc->in_h != r->aug.out_h || lc->in_w != r->aug.out_w)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "%s: a %s model of %d bits for %dx%dx%d input does not match this run "
                          "(%s, %d bits, %dx%dx%d)",
                          resume_path, lc->arch.name, lc->bits, lc->in_c, lc->in_h, lc->in_w,
                          c->arch, c->bits, r->d->c, r->aug.out_h, r->aug.out_w);
    size_t nh, np = nn_params_plain_size(r->net);
    float *hist = nn_sgd_history(r->net, &nh);
    float *blob = malloc(sizeof(float) * (np + (nh > np ? nh : np) + 1));
    if (!blob)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    int old = 0;
    st = tr_read_state(resume_path, c, r->settings, r->fp_v1, &r->start, blob, 2 * np, np + nh,
                       &old, err);
    if (st == DRSCH_OK)
        st = nn_params_import(r->net, blob, np, err);
    if (st == DRSCH_OK && !old)
        st = nn_sgd_history_import(r->net, blob + np, np, err);
    if (st == DRSCH_OK && old) {
        /* Its momentum is laid out as the oneDNN kernels of the build that wrote it chose, which
         * this build may not share (they changed with the CPU and between versions): read in
         * another layout it would be other numbers, so it starts again from zero. */
        memset(hist, 0, sizeof(float) * nh);
        fprintf(stderr,
                "drsch train: %s.state was written by an older drsch, which kept the momentum in "
                "the layout of its oneDNN kernels: the momentum starts again from zero, so the "
                "run does not continue exactly as an uninterrupted one would\n",
                resume_path);
    }
    free(blob);
    if (st != DRSCH_OK)
        return st;
    /* Checkpoints carry the saved bit order (tr_config.bit_order); training uses network order. */
    uint32_t *ident = malloc(sizeof(uint32_t) * (size_t)c->bits);
    r->idx = malloc(sizeof *r->idx * (size_t)r->N);
    if (!ident || !r->idx) {
        free(ident);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    }
    for (int32_t j = 0; j < c->bits; j++)
        ident[j] = (uint32_t)j;
    st = nn_set_bit_order(r->net, ident, err); /* the identity: cannot fail */
    free(ident);
    return st;
}

/* A new network of the run's architecture, seeded by --seed. */
static drsch_status create_net(run *r, drsch_error *err)
{
    nn_config nc;
    drsch_status st = nn_config_init(&nc, r->c.arch, r->c.bits, r->nl, 1, err);
    if (st != DRSCH_OK)
        return st;
    if (r->c.objective == TR_OBJECTIVE_SOFTMAX &&
        (st = nn_config_classifier(&nc, r->c.bits, err)) != DRSCH_OK)
        return st;
    nc.in_c = r->d->c;
    nc.in_h = r->aug.out_h;
    nc.in_w = r->aug.out_w;
    nc.seed = r->c.seed;
    return nn_net_create(&r->net, &nc, err);
}

static drsch_status alloc_batch(run *r, drsch_error *err)
{
    const int32_t N = r->N;
    r->B = nn_output_dim(r->net);
    r->x = malloc(sizeof(float) * (size_t)N * nn_input_size(r->net));
    r->dy = malloc(sizeof(float) * (size_t)N * (size_t)r->B);
    r->sim = malloc((size_t)N * (size_t)N);
    if (!r->idx)
        r->idx = malloc(sizeof *r->idx * (size_t)N);
    r->cls = malloc(sizeof *r->cls * (size_t)N);
    if (r->class_map && !(r->target = malloc(sizeof *r->target * (size_t)N)))
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a batch of %d", N);
    r->words =
        r->d->label_kind == DS_LABELS_MULTI ? xp_multi_hot_words((size_t)r->d->n_classes) : 0;
    if (r->words)
        r->multi = calloc((size_t)N * r->words, sizeof *r->multi);
    if (!r->x || !r->dy || !r->sim || !r->idx || !r->cls || (r->words && !r->multi))
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a batch of %d", N);
    if (r->par) {
        r->gsize = 0;
        for (int32_t i = 0; i < nn_param_count(r->net); i++)
            r->gsize += nn_param_at(r->net, i).count;
        r->y_all = malloc(sizeof(float) * (size_t)N * (size_t)r->B);
        r->u_all = malloc(sizeof(float) * (size_t)N * (size_t)r->c.bits);
        r->gbuf = malloc(sizeof(float) * (r->gsize + 1));
        r->counts = malloc(sizeof *r->counts * (size_t)r->par->size);
        if (!r->y_all || !r->u_all || !r->gbuf || !r->counts)
            return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a batch of %d", N);
    }
    return DRSCH_OK;
}

/* Data parallel: every rank starts from rank 0's network (new or resumed) and iteration (a
 * collective). */
static drsch_status share_start(run *r, drsch_error *err)
{
    size_t np = nn_params_plain_size(r->net);
    float *blob = malloc(sizeof(float) * (2 * np + 1));
    drsch_status st = blob ? DRSCH_OK : drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    if (st == DRSCH_OK && writer(r)) {
        st = nn_params_export(r->net, blob, np, err);
        if (st == DRSCH_OK)
            st = nn_sgd_history_export(r->net, blob + np, np, err);
    }
    if ((st = agree(r, st, err)) == DRSCH_OK) {
        r->par->broadcast(r->par->ctx, &r->start, sizeof r->start);
        r->par->broadcast(r->par->ctx, blob, sizeof(float) * 2 * np);
        if (!writer(r)) {
            st = nn_params_import(r->net, blob, np, err);
            if (st == DRSCH_OK)
                st = nn_sgd_history_import(r->net, blob + np, np, err);
        }
        st = agree(r, st, err);
    }
    free(blob);
    return st;
}

/* The batch of iteration it: its images, augmented with a seed of (seed, it), and the pairwise
 * similarity of their labels. */
static drsch_status next_batch(run *r, int64_t it, drsch_error *err)
{
    const ds_dataset *d = r->d;
    const int32_t N = r->N;
    ds_sampler_next(r->sampler, r->idx, r->cls);
    uint64_t bseed = r->c.seed * 0x9E3779B97F4A7C15ull + (uint64_t)it;
    drsch_status st = ds_batch_build(d, r->idx, N, &r->aug, bseed, r->x, err);
    if (st != DRSCH_OK)
        return st;
    if (r->words) {
        xp_pack_multi_hot(d->multi, (size_t)d->n_classes, r->idx, (size_t)N, r->multi);
        dh_similarity(NULL, r->multi, r->words, N, r->sim);
    } else {
        for (int32_t i = 0; i < N; i++)
            r->cls[i] = d->labels[r->idx[i]];
        dh_similarity(r->cls, NULL, 0, N, r->sim);
        for (int32_t i = 0; r->target && i < N; i++)
            r->target[i] = r->class_map[r->cls[i]];
    }
    return DRSCH_OK;
}

/* The loss of the whole batch and its gradient in r->dy, from the outputs y of every image. */
static drsch_status loss(run *r, int64_t it, const float *y, drsch_error *err)
{
    const tr_config *c = &r->c;
    drsch_error ne;
    if (c->objective == TR_OBJECTIVE_SOFTMAX) {
        memset(&r->ls, 0, sizeof r->ls);
        drsch_status st = ce_loss(y, r->target, r->N, r->B, r->dy, &r->ls.loss, &r->accuracy, &ne);
        if (st == DRSCH_ERR_NUMERIC)
            r->ls.loss = NAN; /* named by the caller, with where the NaN is */
        else if (st != DRSCH_OK)
            return drsch_fail(err, st, "iteration %lld: %s", (long long)it, ne.msg);
    } else if (dh_loss(&c->loss, it, y, r->N, r->B, r->sim, r->x, (int32_t)nn_input_size(r->net),
                       r->dy, &r->ls)) {
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory in the loss");
    }
    return DRSCH_OK;
}

/* One SGD step on the batch (st: whether the batch was built): forward, the DRSCH objective and
 * its gradient, backward, gradient clipping, the update. A non-finite loss stops the run, naming
 * where the NaN is. Data parallel, this rank forwards and back-propagates its rows, the outputs
 * are gathered before the loss and the gradients summed before the update; every failure is
 * agreed on before the next collective. */
static drsch_status step(run *r, int64_t it, drsch_status st, const char *last_ckpt,
                         drsch_error *err)
{
    const tr_config *c = &r->c;
    nn_net *net = r->net;
    drsch_error ne;
    nn_set_hash_scale(net, nn_hash_scale_at(c->scale0, c->scale_mult, c->scale_every, it));
    const float *x = r->x + (size_t)r->lo * nn_input_size(net);
    if (st == DRSCH_OK &&
        (st = r->team ? nn_team_forward(r->team, x, &ne) : nn_forward(net, x, &ne)) != DRSCH_OK)
        st = drsch_fail(err, st, "iteration %lld: %s", (long long)it, ne.msg);
    if ((st = agree(r, st, err)) != DRSCH_OK)
        return st;
    const float *y = r->team ? nn_team_output(r->team) : nn_output(net);
    if (r->par) {
        gather_rows(r, y, r->B, r->y_all);
        y = r->y_all;
    }
    /* the loss is the same on every rank: so are its failures */
    double t0 = now();
    st = loss(r, it, y, err);
    r->t_loss += now() - t0;
    if (st != DRSCH_OK)
        return st;
    if (!isfinite(r->ls.loss)) {
        int is_bias = 0;
        int32_t layer = nonfinite_layer(net, &is_bias);
        char where[96] = "the network outputs";
        if (layer >= 0)
            snprintf(where, sizeof where, "the %s of layer %d", is_bias ? "biases" : "weights",
                     layer);
        return drsch_fail(
            err, DRSCH_ERR_NUMERIC,
            "iteration %lld: the loss is %g: %s hold NaN or Inf; training stopped, %s",
            (long long)it, r->ls.loss, where, last_ckpt);
    }
    const float *dy = r->dy + (size_t)r->lo * (size_t)r->B;
    if ((st = r->team ? nn_team_backward(r->team, dy, &ne) : nn_backward(net, dy, NULL, &ne)) !=
        DRSCH_OK)
        st = drsch_fail(err, st, "iteration %lld: %s", (long long)it, ne.msg);
    if ((st = agree(r, st, err)) != DRSCH_OK)
        return st;
    if (r->par)
        sum_grads(r);
    r->gnorm = tr_grad_norm(net);
    if (c->clip_grad > 0 && r->gnorm > c->clip_grad)
        scale_grads(net, (float)(c->clip_grad / r->gnorm));
    if ((st = nn_sgd_step(net, &c->sgd, it, &ne)) != DRSCH_OK)
        return drsch_fail(err, st, "iteration %lld: %s", (long long)it, ne.msg);
    return DRSCH_OK;
}

/* Progress between two reports: times and the run of collapsed batches. */
typedef struct {
    double t_start, t_log;
    int64_t it_log, collapsed_logs;
} progress_clock;

/* After iteration it (done = it + 1 iterations): the parameters are checked to be finite, the
 * progress of the run is reported, and a collapse of the codes (almost every image of a
 * class-balanced batch sharing one code in two reports in a row, the first report excepted:
 * random initialisation can start near-constant) stops the run. */
static drsch_status report(run *r, int64_t it, progress_clock *pc, tr_progress_fn progress,
                           void *ctx, drsch_error *err)
{
    const tr_config *c = &r->c;
    const int64_t done = it + 1;
    drsch_status st = check_finite(r->net, done, r->out_path, err);
    if (st != DRSCH_OK)
        return st;
    tr_progress p = {0};
    double t = now();
    p.iter = done;
    p.iters = c->iters;
    p.loss = r->ls.loss;
    p.triplet_loss = r->ls.triplet_loss;
    p.laplacian_loss = r->ls.laplacian_loss;
    p.active_share = r->ls.triplets ? (double)r->ls.active / (double)r->ls.triplets : 0;
    p.objective = c->objective;
    p.accuracy = r->accuracy;
    if (c->objective == TR_OBJECTIVE_DRSCH) { /* a classifier has no hash outputs (0, 0) */
        const float *u = r->team ? nn_team_hash_output(r->team) : nn_hash_output(r->net);
        if (r->par) {
            gather_rows(r, u, r->B, r->u_all);
            u = r->u_all;
        }
        code_stats(u, r->N, r->B, &p.bit_balance, &p.distinct_share);
    }
    const float *bw = nn_bit_weights(r->net);
    p.bitw_min = p.bitw_max = bw ? fabsf(bw[0]) : 1.0;
    for (int32_t j = 1; bw && j < r->B; j++) {
        p.bitw_min = fmin(p.bitw_min, fabsf(bw[j]));
        p.bitw_max = fmax(p.bitw_max, fabsf(bw[j]));
    }
    p.grad_norm = r->gnorm;
    p.images_per_second = (double)(done - pc->it_log) * r->N / (t - pc->t_log);
    p.eta_seconds = (double)(c->iters - done) * (t - pc->t_start) / (double)(done - r->start);
    p.lr = nn_sgd_lr(&c->sgd, it);
    p.hash_scale = nn_hash_scale(r->net);
    p.margin = dh_margin_at(&c->loss, it);
    p.loss_seconds = r->t_loss;
    p.collective_seconds = r->t_collective;
    pc->t_log = t;
    pc->it_log = done;
    if (progress)
        progress(&p, ctx);
    pc->collapsed_logs =
        p.distinct_share < c->collapse_distinct && c->objective == TR_OBJECTIVE_DRSCH
            ? pc->collapsed_logs + 1
            : 0;
    if (pc->collapsed_logs >= 2 && done > c->log_every)
        return drsch_fail(
            err, DRSCH_ERR_COLLAPSE,
            "iteration %lld: the codes collapsed (%.0f%% distinct codes in a batch of %d, bit "
            "balance %.2f); lower --lr or raise --margin; the last checkpoint in %s is kept",
            (long long)done, 100 * p.distinct_share, r->N, p.bit_balance, r->out_path);
    return DRSCH_OK;
}

/* A checkpoint (rank 0 writes it), agreed on by every rank. */
static drsch_status checkpoint(run *r, int64_t iter, drsch_error *err)
{
    drsch_status st = DRSCH_OK;
    if (writer(r))
        st = save_checkpoint(r->net, &r->c, r->d, r->split, r->out_path, iter, r->settings, err);
    return agree(r, st, err);
}

/* Everything before the first iteration: the settings, the data, the network (new, resumed, or
 * rank 0's), the batch. */
static drsch_status set_up(run *r, const tr_config *cfg, const char *resume_path, float *mean,
                           float *scale, drsch_error *err)
{
    drsch_status st = resolve_settings(r, cfg, err);
    if (st == DRSCH_OK)
        st = set_up_data(r, mean, scale, err);
    if (st == DRSCH_OK && r->par) {
        if (r->N < r->par->size)
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "a batch of %d images cannot be shared by %d ranks", r->N,
                              r->par->size);
        r->lo = (int32_t)((int64_t)r->par->rank * r->N / r->par->size);
        r->nl = (int32_t)((int64_t)(r->par->rank + 1) * r->N / r->par->size) - r->lo;
    } else {
        r->nl = r->N;
    }
    if (st == DRSCH_OK)
        st = resume_path && writer(r) ? resume(r, resume_path, err) : create_net(r, err);
    /* the recipe's multipliers: the net's, and those its model files record */
    if (st == DRSCH_OK)
        st = nn_net_set_recipe(r->net, r->c.recipe, err);
    if (st == DRSCH_OK)
        nn_set_input_norm(r->net, mean, scale);
    if (st == DRSCH_OK && r->c.replicas > 1) {
        /* the replicas copy the net (its recipe and normalisation included); their lead takes
         * its place */
        drsch_error ne;
        st = nn_team_create(&r->team, r->net, r->c.replicas, &ne);
        if (st != DRSCH_OK)
            return drsch_fail(err, st, "--replicas %d: %s", r->c.replicas, ne.msg);
        nn_net_free(r->net);
        r->net = nn_team_lead(r->team);
    }
    if (st == DRSCH_OK)
        st = alloc_batch(r, err);
    return st;
}

drsch_status tr_train_parallel(const tr_config *cfg, const ds_dataset *d, const ds_split *split,
                               const char *out_path, const char *resume_path,
                               volatile sig_atomic_t *stop, tr_progress_fn progress, void *ctx,
                               const tr_parallel *par, drsch_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.split = split;
    r.out_path = out_path;
    r.par = par && par->size > 1 ? par : NULL;
    float mean[NN_MAX_IN_C] = {0}, scale[NN_MAX_IN_C];
    drsch_status st = agree(&r, set_up(&r, cfg, resume_path, mean, scale, err), err);
    if (st == DRSCH_OK && r.par)
        st = share_start(&r, err);
    const tr_config *c = &r.c;
    /* the batches before the first iteration, so the rest are those of an uninterrupted run */
    for (int64_t i = 0; st == DRSCH_OK && i < r.start; i++)
        ds_sampler_next(r.sampler, r.idx, NULL);
    /* What a numeric failure leaves behind, for its message. */
    char last_ckpt[600];
    snprintf(last_ckpt, sizeof last_ckpt,
             resume_path ? "the checkpoint it resumed from is kept"
                         : "no checkpoint was written yet");
    progress_clock pc = {.t_start = now(), .it_log = r.start};
    pc.t_log = pc.t_start;
    for (int64_t it = r.start; st == DRSCH_OK && it < c->iters; it++) {
        int32_t stop_now = stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE);
        if (r.par) { /* every rank stops at the same iteration */
            double t0 = now();
            stop_now = r.par->max(r.par->ctx, stop_now);
            r.t_collective += now() - t0;
        }
        if (stop_now) {
            if ((st = checkpoint(&r, it, err)) == DRSCH_OK)
                st = drsch_fail(err, DRSCH_INTERRUPTED,
                                "interrupted at iteration %lld; checkpoint written to %s",
                                (long long)it, out_path);
            break;
        }
        st = step(&r, it, next_batch(&r, it, err), last_ckpt, err);
        int64_t done = it + 1;
        if (st == DRSCH_OK && (done % c->log_every == 0 || done == c->iters))
            st = report(&r, it, &pc, progress, ctx, err);
        if (st == DRSCH_OK && c->checkpoint_every > 0 && done % c->checkpoint_every == 0 &&
            done < c->iters) {
            st = checkpoint(&r, done, err);
            snprintf(last_ckpt, sizeof last_ckpt, "the checkpoint of iteration %lld in %s is kept",
                     (long long)done, out_path);
        }
    }
    if (st == DRSCH_OK)
        st = checkpoint(&r, c->iters, err);
    run_free(&r);
    return st;
}

drsch_status tr_train(const tr_config *cfg, const ds_dataset *d, const ds_split *split,
                      const char *out_path, const char *resume_path, volatile sig_atomic_t *stop,
                      tr_progress_fn progress, void *ctx, drsch_error *err)
{
    return tr_train_parallel(cfg, d, split, out_path, resume_path, stop, progress, ctx, NULL, err);
}
