/* DRSCH training loop and encoding (see train.h).
 *
 * One iteration: a class-balanced batch (ds_sampler), augmented into floats (ds_batch_build,
 * seeded by (seed, iteration) so a batch does not depend on the thread count or on resuming),
 * forward, the DRSCH objective on the bit-weighted outputs (dh_loss), backward, SGD step, hash
 * scale annealed on the authors' schedule. Checkpoints are the model file (written atomically
 * by nn_model_save, in the bit order of tr_config.bit_order, so a checkpoint can be used for
 * encoding right away) plus PATH.state, one self-contained atomic file: iteration, the settings
 * (flag=value lines, so a resume with other flags names them), the parameters and the SGD
 * momentum history. Resuming takes the architecture from the model file
 * and everything else from the state, so a kill between the two renames cannot pair a model of
 * one iteration with the state of another; it replays the sampler to the saved iteration, so a
 * resumed run takes exactly the batches an uninterrupted one would. A resume may raise --iters
 * (no schedule depends on it): the extended run equals one run of the larger count. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "experiment.h"
#include "fileio.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

static drsch_status fail(drsch_error *err, drsch_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return st;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tr_config_default(tr_config *c, const ds_dataset *d)
{
    memset(c, 0, sizeof *c);
    c->arch[0] = '\0';
    c->bits = 48;
    c->iters = 30000;
    c->classes_per_batch = 10;
    c->images_per_class = 10;
    c->seed = 1;
    nn_sgd_defaults(&c->sgd);
    /* drsch's schedule (README: where drsch differs): momentum 0.9 at lr 0.002 (the authors:
     * momentum 0, lr 0.00333, 50k+ iterations; lr 0.005 collapses here), the authors' gamma 1/3
     * on a step of 7.5k iterations, 30k iterations, so that a default run takes minutes on a CPU
     * (Fashion-MNIST, seed 1, 48 bits: 20k iterations with a 5k step 0.790 at 2 threads; 30k /
     * 7.5k 0.799 at 1 thread, and with the rotation and zoom below 0.805 at 1 thread, 0.801 at 2;
     * results/fashion-mnist-train-variants.md, results/fashion-mnist-train-48.md). */
    c->sgd.base_lr = 0.002f;
    c->sgd.momentum = 0.9f;
    c->sgd.step = 7500;
    dh_config_default(&c->loss);
    /* The margin in proportion to the code length (-B/2, growing by B/24 every 1k iterations):
     * with the authors' -5 the classes separate only in the relaxed outputs, not in the signs. */
    c->margin_auto = 1;
    c->loss.margin_every = 1000;
    /* Hash scale 5 x 1.1 as the authors, every 1k iterations instead of 10k, so the relaxation
     * approaches sign() within a CPU-sized schedule. */
    c->scale0 = 5.0f;
    c->scale_mult = 1.1f;
    c->scale_every = 1000;
    c->crop_h = c->crop_w = 0;
    c->pad = 0;
    c->mirror = 1;
    if (d && d->c == 1 && d->h == 28 && d->w == 28) {
        c->crop_h = c->crop_w = 26; /* the authors' MNIST crop, 28 -> 26 */
        /* and drsch's: the crop turned by up to 10 degrees and zoomed by up to 10%, as the
         * 5,000 training images of the paper protocol are otherwise learnt by heart (the
         * in-batch loss nears 0 while the queries' mAP stalls near 0.79) */
        c->rotate = 10.0f;
        c->zoom = 0.1f;
    }
    /* Gradient-norm clipping at 20 (typical norms here are 8-25): a safety net against the
     * sudden steps that collapse the codes; without it the default schedule collapsed on one
     * single-thread run at iteration ~8k, with it the same run trained on. */
    c->clip_grad = 20.0f;
    c->log_every = 100;
    c->checkpoint_every = 2000;
    c->collapse_distinct = 0.05;
    /* drsch's bit order (README: where drsch differs): the authors' order by |w| puts copies of
     * the same few bits first, so short prefixes lose up to 10 mAP points; discounting them keeps
     * the bits with the largest weights that still tell images apart. */
    c->bit_order = TR_BIT_ORDER_DECORRELATED;
}

/* The fingerprint of version 1 states (see read_state): a crc32 of the settings, --iters included.
 */
static uint32_t config_fingerprint(const tr_config *c, const ds_split *split)
{
    char buf[1024];
    int n = snprintf(
        buf, sizeof buf,
        "%s|%d|%lld|%d|%d|%llu|%.9g|%.9g|%.9g|%.9g|%lld|%.9g|%.9g|%.9g|%lld|%d|%.9g|%d|%.9g|%.9g|%"
        "lld|"
        "%d|%d|%d|%d|%.9g|%.9g|%d|%d|%lld|%s",
        c->arch, c->bits, (long long)c->iters, c->classes_per_batch, c->images_per_class,
        (unsigned long long)c->seed, c->sgd.base_lr, c->sgd.momentum, c->sgd.weight_decay,
        c->sgd.gamma, (long long)c->sgd.step, c->loss.beta, c->loss.margin0, c->loss.margin_step,
        (long long)c->loss.margin_every, (int)c->loss.graph, c->loss.graph_other, c->loss.knn_k,
        c->scale0, c->scale_mult, (long long)c->scale_every, c->crop_h, c->crop_w, c->pad,
        c->mirror, c->clip_grad, c->loss.margin_min, (int)c->loss.norm, (int)c->loss.triplets,
        (long long)c->sgd.warmup, split->name);
    /* rotation and zoom came later: named only when used, so older checkpoints still resume */
    if (c->rotate > 0 || c->zoom > 0)
        n +=
            snprintf(buf + n, sizeof buf - (size_t)n, "|rotate %.9g|zoom %.9g", c->rotate, c->zoom);
    return (uint32_t)crc32(0L, (const Bytef *)buf, (uInt)n);
}

/* The settings a resume must match, one "flag=value" a line, named as the flags of drsch train.
 * --iters is recorded but not compared: no schedule depends on it (learning rate: --lr-step,
 * --gamma, --warmup; margin: --margin-every; hash scale: --scale-every), so a run can be
 * extended by resuming it with a larger --iters, and the result is that of one longer run. */
typedef struct {
    char *buf;
    size_t n, used;
    int overflow;
} settings_out;

static void add_setting(settings_out *o, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char v[300];
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    int k = snprintf(o->buf + o->used, o->n - o->used, "%s=%s\n", key, v);
    if (k < 0 || o->used + (size_t)k >= o->n)
        o->overflow = 1;
    else
        o->used += (size_t)k;
}

/* A float as the shortest %g that reads back as the same float (0.002, not 0.00200000009). */
static void add_float(settings_out *o, const char *key, float f)
{
    char v[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(v, sizeof v, "%.*g", prec, f);
        if (strtof(v, NULL) == f)
            break;
    }
    add_setting(o, key, "%s", v);
}

static int config_settings(const tr_config *c, const ds_split *split, char *buf, size_t n)
{
    settings_out o = {buf, n, 0, 0};
    buf[0] = '\0';
    add_setting(&o, "arch", "%s", c->arch);
    add_setting(&o, "bits", "%d", c->bits);
    add_setting(&o, "protocol", "%s", split->name);
    add_setting(&o, "classes", "%d", c->classes_per_batch);
    add_setting(&o, "per-class", "%d", c->images_per_class);
    add_setting(&o, "seed", "%llu", (unsigned long long)c->seed);
    add_float(&o, "lr", c->sgd.base_lr);
    add_float(&o, "momentum", c->sgd.momentum);
    add_float(&o, "weight-decay", c->sgd.weight_decay);
    add_float(&o, "gamma", c->sgd.gamma);
    add_setting(&o, "lr-step", "%lld", (long long)c->sgd.step);
    add_setting(&o, "warmup", "%lld", (long long)c->sgd.warmup);
    add_float(&o, "beta", c->loss.beta);
    add_float(&o, "margin", c->loss.margin0);
    add_float(&o, "margin-step", c->loss.margin_step);
    add_setting(&o, "margin-every", "%lld", (long long)c->loss.margin_every);
    add_float(&o, "margin-min", c->loss.margin_min);
    add_setting(&o, "graph", "%d", (int)c->loss.graph);
    add_float(&o, "graph-other", c->loss.graph_other);
    add_setting(&o, "knn-k", "%d", c->loss.knn_k);
    add_setting(&o, "triplet-norm", "%d", (int)c->loss.norm);
    add_setting(&o, "triplets", "%d", (int)c->loss.triplets);
    add_float(&o, "scale", c->scale0);
    add_float(&o, "scale-mult", c->scale_mult);
    add_setting(&o, "scale-every", "%lld", (long long)c->scale_every);
    add_setting(&o, "crop", "%dx%d", c->crop_h, c->crop_w);
    add_setting(&o, "pad", "%d", c->pad);
    add_setting(&o, "mirror", "%d", c->mirror);
    add_float(&o, "rotate", c->rotate);
    add_float(&o, "zoom", c->zoom);
    add_float(&o, "clip-grad", c->clip_grad);
    add_setting(&o, "iters", "%lld", (long long)c->iters);
    return o.overflow ? -1 : (int)o.used;
}

/* The value of line "key=..." in a settings list (its length in *len), or NULL. */
static const char *setting_value(const char *list, size_t list_len, const char *key, size_t key_len,
                                 size_t *len)
{
    const char *p = list, *end = list + list_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if ((size_t)(eol - p) > key_len && p[key_len] == '=' && memcmp(p, key, key_len) == 0) {
            *len = (size_t)(eol - p) - key_len - 1;
            return p + key_len + 1;
        }
        p = eol + 1;
    }
    return NULL;
}

/* Names the settings of `have` (this run) that differ from `stored` (the state), as
 * "--lr 0.002 (this run: 0.1), --protocol ..." in out; 0 when none differs. iters is skipped. */
static int settings_diff(const char *stored, size_t stored_len, const char *have, char *out,
                         size_t n)
{
    int count = 0;
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = have; *p;) {
        const char *eq = strchr(p, '='), *nl = strchr(p, '\n');
        if (!eq || !nl || eq > nl)
            break;
        size_t klen = (size_t)(eq - p), vlen = (size_t)(nl - eq - 1), slen = 0;
        const char *sv = setting_value(stored, stored_len, p, klen, &slen);
        if (!(klen == 5 && !memcmp(p, "iters", 5)) &&
            (!sv || slen != vlen || memcmp(sv, eq + 1, vlen) != 0)) {
            int w = snprintf(out + used, n - used, "%s--%.*s %.*s (this run: %.*s)",
                             count ? ", " : "", (int)klen, p, sv ? (int)(slen > 40 ? 40 : slen) : 4,
                             sv ? sv : "none", (int)vlen, eq + 1);
            if (w > 0 && used + (size_t)w < n)
                used += (size_t)w;
            count++;
        }
        p = nl + 1;
    }
    return count;
}

/* State files. Version 2, "DRSCHTR2": u64 iteration, u32 length and the settings list above,
 * u64 count, f32 values[count] (parameters, then momentum history), u32 crc32 of every byte
 * before it. Version 1, "DRSCHTR1", held a crc32 of the settings instead of the list: still
 * read, but a mismatch cannot say which setting differs. */
static const char STATE_MAGIC[8] = {'D', 'R', 'S', 'C', 'H', 'T', 'R', '2'};
static const char STATE_MAGIC_V1[8] = {'D', 'R', 'S', 'C', 'H', 'T', 'R', '1'};
#define STATE_SETTINGS_MAX 4096

static drsch_status write_state(const char *model_path, int64_t iter, const char *settings,
                                const float *hist, size_t nh, drsch_error *err)
{
    size_t plen = strlen(model_path);
    char *path = malloc(plen + 8);
    if (!path)
        return fail(err, DRSCH_ERR_NOMEM, "out of memory");
    snprintf(path, plen + 8, "%s.state", model_path);
    uint64_t it = (uint64_t)iter, count = nh;
    uint32_t slen = (uint32_t)strlen(settings);
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)STATE_MAGIC, 8);
    crc = (uint32_t)crc32(crc, (const Bytef *)&it, 8);
    crc = (uint32_t)crc32(crc, (const Bytef *)&slen, 4);
    crc = (uint32_t)crc32(crc, (const Bytef *)settings, slen);
    crc = (uint32_t)crc32(crc, (const Bytef *)&count, 8);
    crc = (uint32_t)crc32(crc, (const Bytef *)hist, (uInt)(nh * sizeof(float)));
    /* Through fileio: PATH.state.tmp.PID (removed on SIGINT / SIGTERM), synced and renamed over
     * PATH.state; errors name the state's path and the cause ("No space left on device"). */
    char msg[480];
    fio_out o;
    drsch_status st = DRSCH_OK;
    if (fio_out_begin(&o, path, msg, sizeof msg) != 0) {
        st = fail(err, DRSCH_ERR_IO, "cannot write the training state: %s", msg);
    } else {
        fio_out_write(&o, STATE_MAGIC, 8);
        fio_out_write(&o, &it, 8);
        fio_out_write(&o, &slen, 4);
        fio_out_write(&o, settings, slen);
        fio_out_write(&o, &count, 8);
        fio_out_write(&o, hist, nh * sizeof(float));
        fio_out_write(&o, &crc, 4);
        if (fio_out_commit(&o, 1, msg, sizeof msg) != 0)
            st = fail(err, DRSCH_ERR_IO, "cannot write the training state: %s", msg);
    }
    free(path);
    return st;
}

/* Reads MODEL.state into hist (nh values) and *iter, for a run of settings `have` (and, for a
 * version 1 state, fingerprint fp_v1) and c->iters iterations. */
static drsch_status read_state(const char *model_path, const tr_config *c, const char *have,
                               uint32_t fp_v1, int64_t *iter, float *hist, size_t nh,
                               drsch_error *err)
{
    size_t plen = strlen(model_path);
    char *path = malloc(plen + 8), *stored = malloc(STATE_SETTINGS_MAX + 1);
    if (!path || !stored) {
        free(path);
        free(stored);
        return fail(err, DRSCH_ERR_NOMEM, "out of memory");
    }
    snprintf(path, plen + 8, "%s.state", model_path);
    char msg[480];
    /* a FIFO or a device is refused before the first read */
    FILE *f = fio_open_read(path, "drsch training state", msg, sizeof msg);
    drsch_status st = DRSCH_OK;
    char magic[8];
    uint64_t it = 0, count = 0;
    uint32_t sfp = 0, slen = 0, crc = 0;
    int v1 = 0;
    if (!f) {
        st = fail(err, DRSCH_ERR_IO, "the training state of the model to resume: %s", msg);
        goto out;
    }
    if (fread(magic, 1, 8, f) != 8 ||
        (memcmp(magic, STATE_MAGIC, 8) && memcmp(magic, STATE_MAGIC_V1, 8))) {
        st = fail(err, DRSCH_ERR_IO, "%s: not a drsch training state (bad magic)", path);
        goto out;
    }
    v1 = memcmp(magic, STATE_MAGIC_V1, 8) == 0;
    if (fread(&it, 8, 1, f) != 1 || (v1 && fread(&sfp, 4, 1, f) != 1) ||
        (!v1 && fread(&slen, 4, 1, f) != 1)) {
        st = fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
        goto out;
    }
    if (slen > STATE_SETTINGS_MAX) {
        st = fail(err, DRSCH_ERR_IO,
                  "%s: a settings list of %u bytes (at most %d): corrupt training state", path,
                  slen, STATE_SETTINGS_MAX);
        goto out;
    }
    if ((slen && fread(stored, 1, slen, f) != slen) || fread(&count, 8, 1, f) != 1) {
        st = fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
        goto out;
    }
    stored[slen] = '\0';
    char diff[400];
    int ndiff = v1 ? 0 : settings_diff(stored, slen, have, diff, sizeof diff);
    if (count != nh) {
        if (ndiff)
            st = fail(err, DRSCH_ERR_ARG,
                      "%s: the model was trained with other settings: %s; resume needs the same "
                      "flags",
                      path, diff);
        else
            st = fail(err, DRSCH_ERR_ARG, "%s: a state of %llu values, this network needs %zu",
                      path, (unsigned long long)count, nh);
        goto out;
    }
    if ((nh && fread(hist, sizeof(float), nh, f) != nh) || fread(&crc, 4, 1, f) != 1) {
        st = fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
        goto out;
    }
    uint32_t k = (uint32_t)crc32(0L, (const Bytef *)magic, 8);
    k = (uint32_t)crc32(k, (const Bytef *)&it, 8);
    if (v1) {
        k = (uint32_t)crc32(k, (const Bytef *)&sfp, 4);
    } else {
        k = (uint32_t)crc32(k, (const Bytef *)&slen, 4);
        k = (uint32_t)crc32(k, (const Bytef *)stored, slen);
    }
    k = (uint32_t)crc32(k, (const Bytef *)&count, 8);
    k = (uint32_t)crc32(k, (const Bytef *)hist, (uInt)(nh * sizeof(float)));
    if (k != crc) {
        st = fail(err, DRSCH_ERR_IO, "%s: checksum mismatch: corrupt training state", path);
        goto out;
    }
    if (v1 && sfp != fp_v1) {
        st = fail(err, DRSCH_ERR_ARG,
                  "%s: the model was trained with other settings (dataset split, schedule, "
                  "architecture or --iters; this state was written by an older drsch that does not "
                  "record which); "
                  "resume needs the same flags",
                  path);
        goto out;
    }
    if (ndiff) {
        st = fail(err, DRSCH_ERR_ARG,
                  "%s: the model was trained with other settings: %s; resume needs the same flags",
                  path, diff);
        goto out;
    }
    if (it > (uint64_t)c->iters) {
        size_t tl = 0;
        const char *tv = setting_value(stored, slen, "iters", 5, &tl);
        st = fail(
            err, DRSCH_ERR_ARG,
            "%s: the checkpoint is at iteration %llu, beyond --iters %lld%s%.*s%s; resume with "
            "--iters %llu or more",
            path, (unsigned long long)it, (long long)c->iters,
            tv ? " (the run it came from was set to " : "", tv ? (int)(tl > 24 ? 24 : tl) : 0,
            tv ? tv : "", tv ? ")" : "", (unsigned long long)it);
        goto out;
    }
    *iter = (int64_t)it;
out:
    if (f)
        fclose(f);
    free(path);
    free(stored);
    return st;
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

static double grad_norm(const nn_net *net)
{
    double s = 0;
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        nn_param p = nn_param_at(net, i);
        for (size_t k = 0; k < p.count; k++)
            s += (double)p.grad[k] * p.grad[k];
    }
    return sqrt(s);
}

static void scale_grads(nn_net *net, float f)
{
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        nn_param p = nn_param_at(net, i);
        for (size_t k = 0; k < p.count; k++)
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
    return fail(err, DRSCH_ERR_NUMERIC,
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
    if (c->bit_order == TR_BIT_ORDER_WEIGHT) {
        nn_bit_order_by_weight(net);
        return DRSCH_OK;
    }
    const int32_t B = nn_net_config(net)->bits;
    uint32_t *ident = malloc(sizeof *ident * (size_t)B);
    int64_t m = split->n_train < ORDER_SAMPLE ? split->n_train : ORDER_SAMPLE;
    int64_t *idx = malloc(sizeof *idx * (size_t)m);
    if (!ident || !idx) {
        free(ident), free(idx);
        return fail(err, DRSCH_ERR_NOMEM, "out of memory for the bit order");
    }
    for (int32_t j = 0; j < B; j++)
        ident[j] = (uint32_t)j;
    for (int64_t k = 0; k < m; k++)
        idx[k] = split->train[k * split->n_train / m];
    drsch_error ne;
    nn_set_bit_order(net, ident, &ne); /* codes in network bit order */
    hm_codes codes = {0};
    drsch_status st = tr_encode(net, d, idx, m, &codes, err);
    if (st == DRSCH_OK && nn_bit_order_decorrelated(net, &codes, &ne) != DRSCH_OK)
        st = fail(err, DRSCH_ERR_NET, "%s", ne.msg);
    hm_codes_free(&codes);
    free(ident);
    free(idx);
    return st;
}

static drsch_status save_checkpoint(nn_net *net, const tr_config *c, const ds_dataset *d,
                                    const ds_split *split, const char *path, int64_t iter,
                                    const char *settings, drsch_error *err)
{
    drsch_error ne;
    drsch_status st = check_finite(net, iter, path, err);
    if (st != DRSCH_OK)
        return st;
    if ((st = order_bits(net, c, d, split, err)) != DRSCH_OK)
        return st;
    if (nn_model_save(net, path, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_IO, "%s", ne.msg);
    /* State blob: plain parameters, then the momentum history. */
    size_t np = nn_params_plain_size(net), nh;
    float *hist = nn_sgd_history(net, &nh);
    float *blob = malloc(sizeof(float) * (np + nh + 1));
    if (!blob)
        return fail(err, DRSCH_ERR_NOMEM, "out of memory for a checkpoint");
    if (nn_params_export(net, blob, np, &ne) != DRSCH_OK) {
        free(blob);
        return fail(err, DRSCH_ERR_NET, "%s", ne.msg);
    }
    memcpy(blob + np, hist, sizeof(float) * nh);
    st = write_state(path, iter, settings, blob, np + nh, err);
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
    char settings[STATE_SETTINGS_MAX]; /* as recorded in the state (read_state / write_state) */
    uint32_t fp_v1;                    /* the version 1 fingerprint, to read older states */
    nn_net *net;
    int32_t N, B;  /* images per batch, code bits */
    int64_t start; /* the first iteration to run (0, or where the resumed checkpoint stopped) */
    /* the batch: images, loss gradient, pairwise similarity, indices, labels, multi-hot masks */
    float *x, *dy;
    uint8_t *sim;
    int64_t *idx;
    int32_t *cls;
    uint64_t *multi;
    size_t words;
    /* the last step's loss statistics and gradient norm, for progress */
    dh_stats ls;
    double gnorm;
} run;

static void run_free(run *r)
{
    ds_sampler_free(r->sampler);
    nn_net_free(r->net);
    free(r->x);
    free(r->dy);
    free(r->sim);
    free(r->idx);
    free(r->cls);
    free(r->multi);
}

/* The settings of the run, the defaults that depend on --bits and the dataset filled in. */
static drsch_status resolve_settings(run *r, const tr_config *cfg, drsch_error *err)
{
    tr_config *c = &r->c;
    *c = *cfg;
    if (c->margin_auto) {
        c->loss.margin0 = -(float)c->bits / 2.0f;
        c->loss.margin_step = -(float)c->bits / 24.0f;
        c->loss.margin_min = -(float)c->bits;
    }
    if (!c->arch[0])
        snprintf(c->arch, sizeof c->arch, "%s", default_arch(r->d));
    if (c->bits < 1 || c->bits > HM_MAX_BITS || c->iters < 0 || c->classes_per_batch < 2 ||
        c->images_per_class < 2)
        return fail(err, DRSCH_ERR_ARG,
                    "invalid training settings (bits %d, iterations %lld, batch %d x %d)", c->bits,
                    (long long)c->iters, c->classes_per_batch, c->images_per_class);
    if (r->split->n_train < 2)
        return fail(err, DRSCH_ERR_ARG, "the protocol '%s' leaves no training images",
                    r->split->name);
    if (r->d->c > NN_MAX_IN_C)
        return fail(err, DRSCH_ERR_ARG, "%d image channels; at most %d are supported", r->d->c,
                    NN_MAX_IN_C);
    return DRSCH_OK;
}

/* The class-balanced sampler, the input normalisation from the training images (per-channel
 * mean and 1/std), the augmentation, and the settings as the state records them. */
static drsch_status set_up_data(run *r, float *mean, float *scale, drsch_error *err)
{
    const tr_config *c = &r->c;
    const ds_dataset *d = r->d;
    drsch_error de;
    if (ds_sampler_create(d, r->split->train, r->split->n_train, c->classes_per_batch,
                          c->images_per_class, c->seed ^ 0x5A5A, &r->sampler, &de) != DRSCH_OK)
        return fail(err, DRSCH_ERR_DATA, "%s", de.msg);
    r->N = (int32_t)ds_sampler_batch_size(r->sampler);
    double dmean[DS_MAX_CHANNELS] = {0}, dstd[DS_MAX_CHANNELS] = {0};
    ds_channel_stats(d, r->split->train, r->split->n_train, dmean, dstd);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++) {
        mean[ch] = ch < d->c ? (float)dmean[ch] : 0.0f;
        scale[ch] = ch < d->c && dstd[ch] > 0 ? (float)(1.0 / dstd[ch]) : 1.0f;
    }
    make_augment(c, d, mean, scale, 1, &r->aug);
    r->fp_v1 = config_fingerprint(c, r->split);
    if (config_settings(c, r->split, r->settings, sizeof r->settings) < 0)
        return fail(err, DRSCH_ERR_ARG,
                    "the training settings do not fit in a state file (protocol name too long?)");
    return DRSCH_OK;
}

/* Resume: the network and its SGD history from the checkpoint, then the sampler replayed so
 * the remaining batches are those of an uninterrupted run. */
static drsch_status resume(run *r, const char *resume_path, drsch_error *err)
{
    const tr_config *c = &r->c;
    drsch_error ne;
    if (nn_model_load(&r->net, resume_path, r->N, 1, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NET, "%s", ne.msg);
    const nn_config *lc = nn_net_config(r->net);
    if (strcmp(lc->arch.name, c->arch) || lc->bits != c->bits || lc->in_c != r->d->c ||
        lc->in_h != r->aug.out_h || lc->in_w != r->aug.out_w)
        return fail(err, DRSCH_ERR_ARG,
                    "%s: a %s model of %d bits for %dx%dx%d input does not match this run "
                    "(%s, %d bits, %dx%dx%d)",
                    resume_path, lc->arch.name, lc->bits, lc->in_c, lc->in_h, lc->in_w, c->arch,
                    c->bits, r->d->c, r->aug.out_h, r->aug.out_w);
    size_t nh, np = nn_params_plain_size(r->net);
    float *hist = nn_sgd_history(r->net, &nh);
    float *blob = malloc(sizeof(float) * (np + nh + 1));
    if (!blob)
        return fail(err, DRSCH_ERR_NOMEM, "out of memory");
    drsch_status st =
        read_state(resume_path, c, r->settings, r->fp_v1, &r->start, blob, np + nh, err);
    if (st == DRSCH_OK) {
        if (nn_params_import(r->net, blob, np, &ne) != DRSCH_OK)
            st = fail(err, DRSCH_ERR_NET, "%s", ne.msg);
        memcpy(hist, blob + np, sizeof(float) * nh);
    }
    free(blob);
    if (st != DRSCH_OK)
        return st;
    /* Checkpoints carry the saved bit order (tr_config.bit_order); training uses network order. */
    uint32_t *ident = malloc(sizeof(uint32_t) * (size_t)c->bits);
    r->idx = malloc(sizeof *r->idx * (size_t)r->N);
    if (!ident || !r->idx) {
        free(ident);
        return fail(err, DRSCH_ERR_NOMEM, "out of memory");
    }
    for (int32_t j = 0; j < c->bits; j++)
        ident[j] = (uint32_t)j;
    nn_set_bit_order(r->net, ident, &ne);
    free(ident);
    for (int64_t i = 0; i < r->start; i++)
        ds_sampler_next(r->sampler, r->idx, NULL);
    return DRSCH_OK;
}

/* A new network of the run's architecture, seeded by --seed. */
static drsch_status create_net(run *r, drsch_error *err)
{
    drsch_error ne;
    nn_config nc;
    if (nn_config_init(&nc, r->c.arch, r->c.bits, r->N, 1, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_ARG, "%s", ne.msg);
    nc.in_c = r->d->c;
    nc.in_h = r->aug.out_h;
    nc.in_w = r->aug.out_w;
    nc.seed = r->c.seed;
    if (nn_net_create(&r->net, &nc, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NET, "%s", ne.msg);
    return DRSCH_OK;
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
    r->words =
        r->d->label_kind == DS_LABELS_MULTI ? xp_multi_hot_words((size_t)r->d->n_classes) : 0;
    if (r->words)
        r->multi = calloc((size_t)N * r->words, sizeof *r->multi);
    if (!r->x || !r->dy || !r->sim || !r->idx || !r->cls || (r->words && !r->multi))
        return fail(err, DRSCH_ERR_NOMEM, "out of memory for a batch of %d", N);
    return DRSCH_OK;
}

/* The batch of iteration it: its images, augmented with a seed of (seed, it), and the pairwise
 * similarity of their labels. */
static drsch_status next_batch(run *r, int64_t it, drsch_error *err)
{
    const ds_dataset *d = r->d;
    const int32_t N = r->N;
    drsch_error de;
    ds_sampler_next(r->sampler, r->idx, r->cls);
    uint64_t bseed = r->c.seed * 0x9E3779B97F4A7C15ull + (uint64_t)it;
    if (ds_batch_build(d, r->idx, N, &r->aug, bseed, r->x, &de) != DRSCH_OK)
        return fail(err, DRSCH_ERR_DATA, "%s", de.msg);
    if (r->words) {
        xp_pack_multi_hot(d->multi, (size_t)d->n_classes, r->idx, (size_t)N, r->multi);
        dh_similarity(NULL, r->multi, r->words, N, r->sim);
    } else {
        for (int32_t i = 0; i < N; i++)
            r->cls[i] = d->labels[r->idx[i]];
        dh_similarity(r->cls, NULL, 0, N, r->sim);
    }
    return DRSCH_OK;
}

/* One SGD step on the batch: forward, the DRSCH objective and its gradient, backward, gradient
 * clipping, the update. A non-finite loss stops the run, naming where the NaN is. */
static drsch_status step(run *r, int64_t it, const char *last_ckpt, drsch_error *err)
{
    const tr_config *c = &r->c;
    nn_net *net = r->net;
    drsch_error ne;
    nn_set_hash_scale(net, nn_hash_scale_at(c->scale0, c->scale_mult, c->scale_every, it));
    if (nn_forward(net, r->x, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NET, "iteration %lld: %s", (long long)it, ne.msg);
    if (dh_loss(&c->loss, it, nn_output(net), r->N, r->B, r->sim, r->x, (int32_t)nn_input_size(net),
                r->dy, &r->ls))
        return fail(err, DRSCH_ERR_NOMEM, "out of memory in the loss");
    if (!isfinite(r->ls.loss)) {
        int is_bias = 0;
        int32_t layer = nonfinite_layer(net, &is_bias);
        char where[96] = "the network outputs";
        if (layer >= 0)
            snprintf(where, sizeof where, "the %s of layer %d", is_bias ? "biases" : "weights",
                     layer);
        return fail(err, DRSCH_ERR_NUMERIC,
                    "iteration %lld: the loss is %g: %s hold NaN or Inf; training stopped, %s",
                    (long long)it, r->ls.loss, where, last_ckpt);
    }
    if (nn_backward(net, r->dy, NULL, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NET, "iteration %lld: %s", (long long)it, ne.msg);
    r->gnorm = grad_norm(net);
    if (c->clip_grad > 0 && r->gnorm > c->clip_grad)
        scale_grads(net, (float)(c->clip_grad / r->gnorm));
    if (nn_sgd_step(net, &c->sgd, it, &ne) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NET, "iteration %lld: %s", (long long)it, ne.msg);
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
    code_stats(nn_hash_output(r->net), r->N, r->B, &p.bit_balance, &p.distinct_share);
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
    pc->t_log = t;
    pc->it_log = done;
    if (progress)
        progress(&p, ctx);
    pc->collapsed_logs = p.distinct_share < c->collapse_distinct ? pc->collapsed_logs + 1 : 0;
    if (pc->collapsed_logs >= 2 && done > c->log_every)
        return fail(
            err, DRSCH_ERR_COLLAPSE,
            "iteration %lld: the codes collapsed (%.0f%% distinct codes in a batch of %d, bit "
            "balance %.2f); lower --lr or raise --margin; the last checkpoint in %s is kept",
            (long long)done, 100 * p.distinct_share, r->N, p.bit_balance, r->out_path);
    return DRSCH_OK;
}

drsch_status tr_train(const tr_config *cfg, const ds_dataset *d, const ds_split *split,
                      const char *out_path, const char *resume_path, volatile sig_atomic_t *stop,
                      tr_progress_fn progress, void *ctx, drsch_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.split = split;
    r.out_path = out_path;
    drsch_status st = resolve_settings(&r, cfg, err);
    if (st != DRSCH_OK)
        return st;
    const tr_config *c = &r.c;
    float mean[NN_MAX_IN_C] = {0}, scale[NN_MAX_IN_C];
    st = set_up_data(&r, mean, scale, err);
    if (st == DRSCH_OK)
        st = resume_path ? resume(&r, resume_path, err) : create_net(&r, err);
    if (st == DRSCH_OK) {
        nn_set_input_norm(r.net, mean, scale);
        st = alloc_batch(&r, err);
    }
    /* What a numeric failure leaves behind, for its message. */
    char last_ckpt[600];
    snprintf(last_ckpt, sizeof last_ckpt,
             resume_path ? "the checkpoint it resumed from is kept"
                         : "no checkpoint was written yet");
    progress_clock pc = {.t_start = now(), .it_log = r.start};
    pc.t_log = pc.t_start;
    for (int64_t it = r.start; st == DRSCH_OK && it < c->iters; it++) {
        if (stop && *stop) {
            if ((st = save_checkpoint(r.net, c, d, split, out_path, it, r.settings, err)) ==
                DRSCH_OK)
                st = fail(err, DRSCH_INTERRUPTED,
                          "interrupted at iteration %lld; checkpoint written to %s", (long long)it,
                          out_path);
            break;
        }
        st = next_batch(&r, it, err);
        if (st == DRSCH_OK)
            st = step(&r, it, last_ckpt, err);
        int64_t done = it + 1;
        if (st == DRSCH_OK && (done % c->log_every == 0 || done == c->iters))
            st = report(&r, it, &pc, progress, ctx, err);
        if (st == DRSCH_OK && c->checkpoint_every > 0 && done % c->checkpoint_every == 0 &&
            done < c->iters) {
            st = save_checkpoint(r.net, c, d, split, out_path, done, r.settings, err);
            snprintf(last_ckpt, sizeof last_ckpt, "the checkpoint of iteration %lld in %s is kept",
                     (long long)done, out_path);
        }
    }
    if (st == DRSCH_OK)
        st = save_checkpoint(r.net, c, d, split, out_path, c->iters, r.settings, err);
    run_free(&r);
    return st;
}

drsch_status tr_encode(const nn_net *model, const ds_dataset *d, const int64_t *idx, int64_t n,
                       hm_codes *out, drsch_error *err)
{
    return tr_encode_precision(model, d, idx, n, NN_PRECISION_F32, out, err);
}

drsch_status tr_encode_precision(const nn_net *model, const ds_dataset *d, const int64_t *idx,
                                 int64_t n, nn_precision precision, hm_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    const nn_config *mc = nn_net_config(model);
    if (mc->in_c != d->c || mc->in_h > d->h || mc->in_w > d->w)
        return fail(err, DRSCH_ERR_ARG,
                    "the model takes %dx%dx%d input (channels x height x width) but the dataset "
                    "'%s' has %dx%dx%d images",
                    mc->in_c, mc->in_h, mc->in_w, d->name, d->c, d->h, d->w);
    if (n <= 0)
        return fail(err, DRSCH_ERR_ARG, "nothing to encode (empty image set)");
    drsch_error he;
    if (hm_codes_alloc(out, (size_t)n, (uint32_t)mc->bits, &he) != DRSCH_OK)
        return fail(err, DRSCH_ERR_NOMEM, "%s", he.msg);
    ds_augment aug;
    ds_augment_default(&aug);
    aug.out_h = mc->in_h;
    aug.out_w = mc->in_w;
    for (int ch = 0; ch < DS_MAX_CHANNELS && ch < NN_MAX_IN_C; ch++) {
        aug.mean[ch] = mc->in_mean[ch];
        aug.scale[ch] = mc->in_scale[ch];
    }
    int threads = 1;
#ifdef DRSCH_HAVE_OPENMP
    threads = omp_get_max_threads();
#endif
    /* Whole batches in parallel (one replica per thread) over chunks of a few thousand images. */
    const int32_t batch = 100;
    const int64_t chunk = 4000;
    nn_encoder *enc = NULL;
    drsch_error ne;
    drsch_error de;
    float *x = malloc(sizeof(float) * (size_t)chunk * nn_input_size(model));
    hm_codes part = {0};
    drsch_status st = DRSCH_OK;
    if (!x || hm_codes_alloc(&part, (size_t)chunk, (uint32_t)mc->bits, &he) != DRSCH_OK) {
        st = fail(err, DRSCH_ERR_NOMEM, "out of memory for encoding");
        goto done;
    }
    drsch_status ns = nn_encoder_create(&enc, model, batch, threads, precision, &ne);
    if (ns != DRSCH_OK) {
        st = fail(err, ns == DRSCH_ERR_UNSUPPORTED ? DRSCH_ERR_UNSUPPORTED : DRSCH_ERR_NET, "%s",
                  ne.msg);
        goto done;
    }
    for (int64_t s = 0; s < n; s += chunk) {
        int64_t m = n - s < chunk ? n - s : chunk;
        if (ds_batch_build(d, idx + s, m, &aug, 0, x, &de) != DRSCH_OK) {
            st = fail(err, DRSCH_ERR_DATA, "%s", de.msg);
            goto done;
        }
        part.n = (size_t)m;
        if (nn_encode(enc, x, (size_t)m, NULL, &part, &ne) != DRSCH_OK) {
            st = fail(err, DRSCH_ERR_NET, "%s", ne.msg);
            goto done;
        }
        memcpy(out->data + (size_t)s * out->words, part.data,
               (size_t)m * part.words * sizeof(uint64_t));
    }
done:
    nn_encoder_free(enc);
    free(x);
    part.n = (size_t)chunk;
    hm_codes_free(&part);
    if (st != DRSCH_OK)
        hm_codes_free(out);
    return st;
}
