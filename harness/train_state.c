/* The training state, MODEL.state beside each checkpoint: the settings list a resume must match
 * (flag=value lines) and the version 1 settings fingerprint, writing the file atomically, and
 * reading it back with the resume checks (magic, size, checksum, settings, iteration). */
#include "train_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fileio.h"

/* The fingerprint of version 1 states (see tr_read_state): a crc32 of the settings, --iters
 * included.
 */
uint32_t tr_config_fingerprint(const tr_config *c, const ds_split *split)
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
    if (c->recipe != NN_RECIPE_DRSCH) /* so is the recipe: no version 1 state has another */
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|recipe %d", (int)c->recipe);
    if (c->objective != TR_OBJECTIVE_DRSCH) /* and the classifier */
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|loss %d", (int)c->objective);
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

int tr_config_settings(const tr_config *c, const ds_split *split, char *buf, size_t n)
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
    /* Named only when not drsch's, so states written before the recipe existed (and the
     * default's, byte for byte) stay as they were; a missing line reads as drsch
     * (LATER_SETTINGS). */
    if (c->recipe != NN_RECIPE_DRSCH)
        add_setting(&o, "recipe", "%s", nn_recipe_name(c->recipe));
    if (c->objective == TR_OBJECTIVE_SOFTMAX) /* the same for the classifier baseline */
        add_setting(&o, "loss", "softmax");
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

/* Settings listed only when not at their default (tr_config_settings), a missing line meaning
 * the default: compared in both directions by settings_diff. */
static const struct {
    const char *key, *dflt;
} LATER_SETTINGS[] = {{"recipe", "drsch"}, {"loss", "drsch"}};
#define N_LATER (sizeof LATER_SETTINGS / sizeof LATER_SETTINGS[0])

static int is_later_setting(const char *key, size_t klen)
{
    for (size_t i = 0; i < N_LATER; i++)
        if (strlen(LATER_SETTINGS[i].key) == klen && !memcmp(key, LATER_SETTINGS[i].key, klen))
            return 1;
    return 0;
}

/* Appends "--KEY STORED (this run: HAVE)" to out (used of n bytes taken) and counts it. */
static void add_diff(char *out, size_t n, size_t *used, int *count, const char *key, size_t klen,
                     const char *sv, size_t slen, const char *hv, size_t hlen)
{
    int w = snprintf(out + *used, n - *used, "%s--%.*s %.*s (this run: %.*s)", *count ? ", " : "",
                     (int)klen, key, (int)(slen > 40 ? 40 : slen), sv, (int)hlen, hv);
    if (w > 0 && *used + (size_t)w < n)
        *used += (size_t)w;
    (*count)++;
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
        if (!(klen == 5 && !memcmp(p, "iters", 5)) && !is_later_setting(p, klen) &&
            (!sv || slen != vlen || memcmp(sv, eq + 1, vlen) != 0))
            add_diff(out, n, &used, &count, p, klen, sv ? sv : "none", sv ? slen : 4, eq + 1, vlen);
        p = nl + 1;
    }
    for (size_t i = 0; i < N_LATER; i++) {
        const char *key = LATER_SETTINGS[i].key, *dflt = LATER_SETTINGS[i].dflt;
        size_t klen = strlen(key), slen = strlen(dflt), hlen = slen;
        const char *sv = setting_value(stored, stored_len, key, klen, &slen);
        const char *hv = setting_value(have, strlen(have), key, klen, &hlen);
        if (!sv)
            sv = dflt, slen = strlen(dflt);
        if (!hv)
            hv = dflt, hlen = strlen(dflt);
        if (slen != hlen || memcmp(sv, hv, slen) != 0)
            add_diff(out, n, &used, &count, key, klen, sv, slen, hv, hlen);
    }
    return count;
}

/* State files. Version 3, "DRSCHTR3": u64 iteration, u32 length and the settings list above,
 * u64 count, f32 values[count] (parameters, then momentum history, both in the plain layout of
 * nn_params_export), u32 crc32 of every byte before it. Version 2, "DRSCHTR2", is the same with
 * the momentum in the internal layout of the oneDNN kernels of the build that wrote it (which
 * another build or CPU may not share). Version 1, "DRSCHTR1", also held a crc32 of the settings
 * instead of the list: a mismatch cannot say which setting differs. Both still read. */
static const char STATE_MAGIC[8] = {'D', 'R', 'S', 'C', 'H', 'T', 'R', '3'};
static const char STATE_MAGIC_V2[8] = {'D', 'R', 'S', 'C', 'H', 'T', 'R', '2'};
static const char STATE_MAGIC_V1[8] = {'D', 'R', 'S', 'C', 'H', 'T', 'R', '1'};

drsch_status tr_write_state(const char *model_path, int64_t iter, const char *settings,
                            const float *hist, size_t nh, drsch_error *err)
{
    size_t plen = strlen(model_path);
    char *path = malloc(plen + 8);
    if (!path)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
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
    drsch_error fe;
    fio_out o;
    drsch_status st = fio_out_begin(&o, path, &fe);
    if (st != DRSCH_OK) {
        drsch_fail(err, st, "cannot write the training state: %s", fe.msg);
    } else {
        fio_out_write(&o, STATE_MAGIC, 8);
        fio_out_write(&o, &it, 8);
        fio_out_write(&o, &slen, 4);
        fio_out_write(&o, settings, slen);
        fio_out_write(&o, &count, 8);
        fio_out_write(&o, hist, nh * sizeof(float));
        fio_out_write(&o, &crc, 4);
        if ((st = fio_out_commit(&o, 1, &fe)) != DRSCH_OK)
            drsch_fail(err, st, "cannot write the training state: %s", fe.msg);
    }
    free(path);
    return st;
}

/* Reads MODEL.state into hist and *iter: nh values from a version 3 state, nh_old from an older
 * one (*old says which), for a run of settings `have` (and, for a version 1 state, fingerprint
 * fp_v1) and c->iters iterations. */
drsch_status tr_read_state(const char *model_path, const tr_config *c, const char *have,
                           uint32_t fp_v1, int64_t *iter, float *hist, size_t nh, size_t nh_old,
                           int *old, drsch_error *err)
{
    size_t plen = strlen(model_path);
    char *path = malloc(plen + 8), *stored = malloc(TR_STATE_SETTINGS_MAX + 1);
    if (!path || !stored) {
        free(path);
        free(stored);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    }
    snprintf(path, plen + 8, "%s.state", model_path);
    drsch_error fe;
    /* a FIFO or a device is refused before the first read */
    FILE *f = fio_open_read(path, "drsch training state", &fe);
    drsch_status st = DRSCH_OK;
    char magic[8];
    uint64_t it = 0, count = 0;
    uint32_t sfp = 0, slen = 0, crc = 0;
    int v1 = 0;
    if (!f) {
        st = drsch_fail(err, DRSCH_ERR_IO, "the training state of the model to resume: %s", fe.msg);
        goto out;
    }
    if (fread(magic, 1, 8, f) != 8 ||
        (memcmp(magic, STATE_MAGIC, 8) && memcmp(magic, STATE_MAGIC_V2, 8) &&
         memcmp(magic, STATE_MAGIC_V1, 8))) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: not a drsch training state (bad magic)", path);
        goto out;
    }
    v1 = memcmp(magic, STATE_MAGIC_V1, 8) == 0;
    *old = memcmp(magic, STATE_MAGIC, 8) != 0;
    if (*old)
        nh = nh_old;
    if (fread(&it, 8, 1, f) != 1 || (v1 && fread(&sfp, 4, 1, f) != 1) ||
        (!v1 && fread(&slen, 4, 1, f) != 1)) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
        goto out;
    }
    if (slen > TR_STATE_SETTINGS_MAX) {
        st = drsch_fail(err, DRSCH_ERR_IO,
                        "%s: a settings list of %u bytes (at most %d): corrupt training state",
                        path, slen, TR_STATE_SETTINGS_MAX);
        goto out;
    }
    if ((slen && fread(stored, 1, slen, f) != slen) || fread(&count, 8, 1, f) != 1) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
        goto out;
    }
    stored[slen] = '\0';
    char diff[400];
    int ndiff = v1 ? 0 : settings_diff(stored, slen, have, diff, sizeof diff);
    if (count != nh) {
        if (ndiff)
            st = drsch_fail(
                err, DRSCH_ERR_ARG,
                "%s: the model was trained with other settings: %s; resume needs the same "
                "flags",
                path, diff);
        else
            st =
                drsch_fail(err, DRSCH_ERR_ARG, "%s: a state of %llu values, this network needs %zu",
                           path, (unsigned long long)count, nh);
        goto out;
    }
    if ((nh && fread(hist, sizeof(float), nh, f) != nh) || fread(&crc, 4, 1, f) != 1) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: truncated training state", path);
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
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: checksum mismatch: corrupt training state", path);
        goto out;
    }
    if (v1 && sfp != fp_v1) {
        st = drsch_fail(
            err, DRSCH_ERR_ARG,
            "%s: the model was trained with other settings (dataset split, schedule, "
            "architecture or --iters; this state was written by an older drsch that does not "
            "record which); "
            "resume needs the same flags",
            path);
        goto out;
    }
    if (ndiff) {
        st = drsch_fail(
            err, DRSCH_ERR_ARG,
            "%s: the model was trained with other settings: %s; resume needs the same flags", path,
            diff);
        goto out;
    }
    if (it > (uint64_t)c->iters) {
        size_t tl = 0;
        const char *tv = setting_value(stored, slen, "iters", 5, &tl);
        st = drsch_fail(
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
