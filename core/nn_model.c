/* Model files. Little-endian binary, version NN_MODEL_VERSION:
 *   "DRSCHNN\0"  u32 version  [u32 head (nn_head), version 3 only]
 *   u32 bits  u32 in_c in_h in_w  f32 in_mean[4] in_scale[4]
 *   u32 n_layers  char arch[32]
 *   i32 arch default in_c in_h in_w
 *   n_layers x { i32 kind out kernel stride pad relu; f32 w_std w_lr w_decay b_lr b_decay }
 *   f32 hash_scale  u32 bit_order[bits]  u64 n_params  f32 params[n_params]  u32 crc32
 * Version 2 is the same without the head: hash models (NN_HEAD_HASH) are still written as version
 * 2, byte for byte as before the head existed; classifiers (NN_HEAD_SOFTMAX) as version 3.
 * Parameters are in the plain canonical layout of nn_params_export (bit weights included), so a
 * file does not depend on the layouts oneDNN chose. The crc32 (zlib) covers every byte before
 * it. Files are written through fileio.h (PATH.tmp.PID synced and renamed over PATH), so readers
 * never see half a model; they are read only when regular files (a FIFO or a device is refused
 * before the first read). A loaded model's values are checked: a hash scale that is not a
 * positive finite number, or a parameter that is NaN or infinite, is refused even under a valid
 * CRC (it would give identical codes for every image). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "fileio.h"
#include "nn_internal.h"

static const char MAGIC[8] = {'D', 'R', 'S', 'C', 'H', 'N', 'N', '\0'};
#define LAYER_BYTES (6 * 4 + 5 * 4)

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(wbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_f32(wbuf *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int short_read;
} rbuf;

static uint32_t get_u32(rbuf *b)
{
    if (b->pos + 4 > b->len) {
        b->short_read = 1;
        b->pos = b->len;
        return 0;
    }
    const uint8_t *x = b->p + b->pos;
    b->pos += 4;
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}
static float get_f32(rbuf *b)
{
    uint32_t v = get_u32(b);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* What a model file may describe however it was written (nn.h): inputs beyond what drsch
 * supports, and activations beyond NN_MODEL_MAX_ACT_FLOATS per image, so a header cannot make
 * the loader allocate more than the file justifies. Checked on the config before planning. */
static drsch_status check_input(const char *path, const nn_config *cfg, drsch_error *err)
{
    int32_t c = cfg->in_c > 0 ? cfg->in_c : cfg->arch.in_c,
            h = cfg->in_h > 0 ? cfg->in_h : cfg->arch.in_h,
            w = cfg->in_w > 0 ? cfg->in_w : cfg->arch.in_w;
    if (c < 1 || c > NN_MAX_IN_C)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: header says %d input channels (drsch models take 1..%d)", path, c,
                          NN_MAX_IN_C);
    if (h < 1 || w < 1 || h > NN_MODEL_MAX_SIDE || w > NN_MODEL_MAX_SIDE)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: header says input images of %d x %d pixels (drsch models take "
                          "sides of 1..%d)",
                          path, h, w, NN_MODEL_MAX_SIDE);
    return DRSCH_OK;
}

/* The plan of cfg as an inference net (so a model's limits do not depend on the mode it is
 * saved or loaded in), then its activations against the limit; errors name path. */
static drsch_status check_plan(const char *path, const nn_config *cfg, nn_net_plan_info *plan,
                               drsch_error *err)
{
    nn_config c = *cfg;
    c.training = 0;
    c.input_grad = 0;
    c.batch = 1;
    drsch_status s = nn_net_plan(&c, plan, err);
    if (s != DRSCH_OK) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        return drsch_fail(err, s == DRSCH_ERR_ARG ? DRSCH_ERR_FORMAT : s, "%s: %.450s", path, msg);
    }
    return DRSCH_OK;
}

static drsch_status check_act(const char *path, const nn_config *cfg, const nn_net_plan_info *plan,
                              drsch_error *err)
{
    if (plan->act_floats > NN_MODEL_MAX_ACT_FLOATS) {
        char need[32], most[32];
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: architecture '%s' needs about %s of activations per image "
                          "(drsch models: at most %s)",
                          path, cfg->arch.name, nn_bytes_str(4.0 * plan->act_floats, need),
                          nn_bytes_str(4.0 * NN_MODEL_MAX_ACT_FLOATS, most));
    }
    return DRSCH_OK;
}

drsch_status nn_model_save(const nn_net *net, const char *path, drsch_error *err)
{
    const nn_config *c = &net->cfg;
    nn_net_plan_info plan;
    drsch_status ps = check_input(path, c, err);
    if (ps == DRSCH_OK)
        ps = check_plan(path, c, &plan, err);
    if (ps == DRSCH_OK)
        ps = check_act(path, c, &plan, err);
    if (ps != DRSCH_OK)
        return ps;
    const size_t np = nn_params_plain_size(net);
    const int with_head = c->head != NN_HEAD_HASH;
    const size_t size = 8 + 4 * 7 + 4 * (size_t)with_head + 8 * NN_MAX_IN_C + NN_ARCH_NAME_MAX +
                        12 + (size_t)c->arch.n_layers * LAYER_BYTES + 4 + 4 * (size_t)c->bits + 8 +
                        4 * np + 4;
    wbuf b = {malloc(size), 0, size};
    float *params = malloc(np * sizeof(float) + 1);
    if (!b.p || !params) {
        free(b.p);
        free(params);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    }
    drsch_status s = nn_params_export(net, params, np, err);
    if (s != DRSCH_OK) {
        free(b.p);
        free(params);
        return s;
    }
    put(&b, MAGIC, 8);
    put_u32(&b, with_head ? NN_MODEL_VERSION : 2);
    if (with_head)
        put_u32(&b, (uint32_t)c->head);
    put_u32(&b, (uint32_t)c->bits);
    put_u32(&b, (uint32_t)c->in_c);
    put_u32(&b, (uint32_t)c->in_h);
    put_u32(&b, (uint32_t)c->in_w);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++)
        put_f32(&b, c->in_mean[ch]);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++)
        put_f32(&b, c->in_scale[ch]);
    put_u32(&b, (uint32_t)c->arch.n_layers);
    char name[NN_ARCH_NAME_MAX] = {0};
    size_t name_len = strnlen(c->arch.name, NN_ARCH_NAME_MAX - 1);
    memcpy(name, c->arch.name, name_len);
    put(&b, name, NN_ARCH_NAME_MAX);
    put_u32(&b, (uint32_t)c->arch.in_c);
    put_u32(&b, (uint32_t)c->arch.in_h);
    put_u32(&b, (uint32_t)c->arch.in_w);
    for (int i = 0; i < c->arch.n_layers; i++) {
        const nn_layer_spec *l = &c->arch.layers[i];
        put_u32(&b, (uint32_t)l->kind);
        put_u32(&b, (uint32_t)l->out);
        put_u32(&b, (uint32_t)l->kernel);
        put_u32(&b, (uint32_t)l->stride);
        put_u32(&b, (uint32_t)l->pad);
        put_u32(&b, (uint32_t)l->relu);
        put_f32(&b, l->w_std);
        put_f32(&b, l->w_lr_mult);
        put_f32(&b, l->w_decay_mult);
        put_f32(&b, l->b_lr_mult);
        put_f32(&b, l->b_decay_mult);
    }
    put_f32(&b, net->hash_scale);
    for (int j = 0; j < c->bits; j++)
        put_u32(&b, net->bit_order[j]);
    put_u32(&b, (uint32_t)np);
    put_u32(&b, (uint32_t)((uint64_t)np >> 32));
    for (size_t k = 0; k < np; k++)
        put_f32(&b, params[k]);
    free(params);
    put_u32(&b, (uint32_t)crc32(0L, b.p, (uInt)b.len));

    /* Through fileio: PATH.tmp.PID (removed on SIGINT / SIGTERM), synced and renamed over PATH
     * (a link's target), so a failure leaves the old model in place; the message gives the cause
     * ("PATH: cannot write: No space left on device"). */
    drsch_status rc = fio_write_file(path, b.p, b.len, 1, err);
    free(b.p);
    return rc;
}

/* "conv2", "fc1", "hash": layer i of arch named by its kind and rank among layers of that kind. */
static void layer_name(const nn_arch *a, int32_t i, char *out, size_t n)
{
    static const char *const kinds[] = {"conv", "pool", "pool", "fc", "hash", "bitw"};
    const nn_layer_kind k = a->layers[i].kind;
    const char *base = (unsigned)k < sizeof kinds / sizeof kinds[0] ? kinds[k] : "layer";
    int rank = 0, total = 0;
    for (int32_t j = 0; j < a->n_layers; j++) {
        const nn_layer_kind kj = a->layers[j].kind;
        int same = (unsigned)kj < sizeof kinds / sizeof kinds[0] && !strcmp(kinds[kj], base);
        total += same;
        rank += same && j <= i;
    }
    if (total == 1 && (k == NN_LAYER_HASH || k == NN_LAYER_BITW))
        snprintf(out, n, "%s", base);
    else
        snprintf(out, n, "%s%d", base, rank);
}

/* The values a valid CRC does not vouch for: the hash scale must be a positive finite number and
 * every parameter finite, else every image gets the same code (or NaN outputs). params: the
 * file's plain parameters in tensor order. */
static drsch_status check_values(const char *path, const nn_net *net, float hash_scale,
                                 const float *params, drsch_error *err)
{
    if (!isfinite(hash_scale) || !(hash_scale > 0.0f))
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: the hash scale is %g (a positive finite number is needed): "
                          "corrupt model file",
                          path, hash_scale);
    size_t at = 0;
    for (int t = 0; t < net->n_tensors; t++) {
        const nn_tensor *T = &net->tensors[t];
        for (size_t k = 0; k < T->plain_count; k++)
            if (!isfinite(params[at + k])) {
                char name[32];
                layer_name(&net->cfg.arch, T->layer, name, sizeof name);
                return drsch_fail(err, DRSCH_ERR_FORMAT,
                                  "%s: parameter %zu of layer %s (%s %zu of layer %d) is %s: "
                                  "corrupt model file",
                                  path, at + k, name, T->is_bias ? "bias" : "weight", k, T->layer,
                                  isnan(params[at + k]) ? "NaN" : "inf");
            }
        at += T->plain_count;
    }
    return DRSCH_OK;
}

/* Where the parts of a model file are, once its header is read. */
typedef struct {
    float hash_scale;
    size_t order_pos;  /* the bit order: bits u32 */
    uint64_t np;       /* the parameter count */
    size_t params_pos; /* the parameters: np f32, then the crc32 */
} model_layout;

/* The header: magic, version, code length, input shape and normalisation, architecture, hash
 * scale; every value checked as it is read. */
static drsch_status read_header(rbuf *b, const char *path, nn_config *cfg, model_layout *lay,
                                drsch_error *err)
{
    const uint8_t *data = b->p;
    const size_t len = b->len;
    if (len < 8 || memcmp(data, MAGIC, 8) != 0)
        return len < 8 && memcmp(data, MAGIC, len) == 0
                   ? drsch_fail(err, DRSCH_ERR_TRUNCATED, "%s: truncated model file (%zu bytes)",
                                path, len)
                   : drsch_fail(err, DRSCH_ERR_FORMAT, "%s: not a drsch model file (bad magic)",
                                path);
    b->pos = 8;
    uint32_t version = get_u32(b);
    if (!b->short_read && (version < NN_MODEL_VERSION_MIN || version > NN_MODEL_VERSION))
        return drsch_fail(err, DRSCH_ERR_VERSION,
                          "%s: model file version %u, this drsch reads versions %d to %d", path,
                          version, NN_MODEL_VERSION_MIN, NN_MODEL_VERSION);
    cfg->head = NN_HEAD_HASH;
    if (version >= 3) {
        uint32_t head = get_u32(b);
        if (!b->short_read && head != NN_HEAD_HASH && head != NN_HEAD_SOFTMAX)
            return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: unknown network head %u", path, head);
        cfg->head = (int32_t)head;
    }
    cfg->bits = (int32_t)get_u32(b);
    cfg->in_c = (int32_t)get_u32(b);
    cfg->in_h = (int32_t)get_u32(b);
    cfg->in_w = (int32_t)get_u32(b);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++)
        cfg->in_mean[ch] = get_f32(b);
    for (int ch = 0; ch < NN_MAX_IN_C; ch++)
        cfg->in_scale[ch] = get_f32(b);
    cfg->arch.n_layers = (int32_t)get_u32(b);
    for (int ch = 0; ch < NN_MAX_IN_C && !b->short_read; ch++)
        if (!isfinite(cfg->in_mean[ch]) || !isfinite(cfg->in_scale[ch]) ||
            cfg->in_scale[ch] == 0.0f)
            return drsch_fail(err, DRSCH_ERR_FORMAT,
                              "%s: corrupt input normalisation (channel %d: mean %g, scale %g)",
                              path, ch, cfg->in_mean[ch], cfg->in_scale[ch]);
    if (b->pos + NN_ARCH_NAME_MAX <= len) {
        memcpy(cfg->arch.name, data + b->pos, NN_ARCH_NAME_MAX);
        cfg->arch.name[NN_ARCH_NAME_MAX - 1] = '\0';
        b->pos += NN_ARCH_NAME_MAX;
    } else {
        b->short_read = 1;
    }
    cfg->arch.in_c = (int32_t)get_u32(b);
    cfg->arch.in_h = (int32_t)get_u32(b);
    cfg->arch.in_w = (int32_t)get_u32(b);
    if (!b->short_read && (cfg->arch.n_layers < 1 || cfg->arch.n_layers > NN_MAX_LAYERS))
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: header says %d layers (drsch models have 1..%d)", path,
                          cfg->arch.n_layers, NN_MAX_LAYERS);
    if (!b->short_read && (cfg->bits < 1 || cfg->bits > HM_MAX_BITS))
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: header says %d-bit codes (drsch codes have 1..%d bits)", path,
                          cfg->bits, HM_MAX_BITS);
    for (int i = 0; i < cfg->arch.n_layers && !b->short_read; i++) {
        nn_layer_spec *l = &cfg->arch.layers[i];
        l->kind = (nn_layer_kind)get_u32(b);
        l->out = (int32_t)get_u32(b);
        l->kernel = (int32_t)get_u32(b);
        l->stride = (int32_t)get_u32(b);
        l->pad = (int32_t)get_u32(b);
        l->relu = (int32_t)get_u32(b);
        l->w_std = get_f32(b);
        l->w_lr_mult = get_f32(b);
        l->w_decay_mult = get_f32(b);
        l->b_lr_mult = get_f32(b);
        l->b_decay_mult = get_f32(b);
    }
    lay->hash_scale = get_f32(b);
    lay->order_pos = b->pos;
    b->pos += 4 * (size_t)(cfg->bits > 0 ? cfg->bits : 0);
    lay->np = 0;
    if (b->pos <= len) {
        lay->np = get_u32(b);
        lay->np |= (uint64_t)get_u32(b) << 32;
    } else {
        b->short_read = 1;
    }
    lay->params_pos = b->pos;
    if (b->short_read)
        return drsch_fail(err, DRSCH_ERR_TRUNCATED,
                          "%s: truncated model file (%zu bytes, header promises more)", path, len);
    return DRSCH_OK;
}

/* The parameter count against the file's size (nothing more, nothing less), then the crc32. */
static drsch_status check_body(rbuf *b, const char *path, const model_layout *lay, drsch_error *err)
{
    const size_t len = b->len, params_pos = lay->params_pos;
    const uint64_t np = lay->np;
    if (np > (len - params_pos) / 4 || params_pos + 4 * np + 4 > len) {
        char need[32], have[32];
        return drsch_fail(err, DRSCH_ERR_TRUNCATED,
                          "%s: header says %llu parameters (%s) but the file holds %s: "
                          "truncated or corrupt model file",
                          path, (unsigned long long)np, nn_bytes_str(4.0 * (double)np, need),
                          nn_bytes_str((double)len, have));
    }
    if (params_pos + 4 * np + 4 != len)
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: %zu unexpected trailing bytes", path,
                          len - (params_pos + 4 * (size_t)np + 4));
    b->pos = params_pos + 4 * np;
    uint32_t stored = get_u32(b);
    uint32_t actual = (uint32_t)crc32(0L, b->p, (uInt)(params_pos + 4 * np));
    if (stored != actual)
        return drsch_fail(err, DRSCH_ERR_CHECKSUM,
                          "%s: checksum mismatch (stored %08x, computed %08x): corrupt file", path,
                          stored, actual);
    return DRSCH_OK;
}

/* The network the header describes, for batches of `batch`: everything it implies (parameters,
 * activation buffers) checked against the file and drsch's limits before it is allocated. */
static drsch_status build_net(const char *path, nn_config *cfg, uint64_t np, nn_net **out,
                              drsch_error *err)
{
    nn_net_plan_info plan;
    drsch_status s;
    if ((s = check_input(path, cfg, err)) != DRSCH_OK ||
        (s = check_plan(path, cfg, &plan, err)) != DRSCH_OK)
        return s;
    if (plan.params != np)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: %llu parameters stored, architecture needs %zu", path,
                          (unsigned long long)np, plan.params);
    if ((s = check_act(path, cfg, &plan, err)) != DRSCH_OK)
        return s;
    s = nn_net_create_expect(out, cfg, (size_t)np, err);
    if (s != DRSCH_OK) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        return drsch_fail(err, s, "%s: %.450s", path, msg);
    }
    if (np != nn_params_plain_size(*out)) {
        s = drsch_fail(err, DRSCH_ERR_FORMAT, "%s: %llu parameters stored, architecture needs %zu",
                       path, (unsigned long long)np, nn_params_plain_size(*out));
        nn_net_free(*out);
        *out = NULL;
    }
    return s;
}

/* The parameters, the bit order and the hash scale into the net, each value checked. */
static drsch_status load_values(rbuf *b, const char *path, const model_layout *lay, nn_net *net,
                                drsch_error *err)
{
    const int32_t bits = nn_net_config(net)->bits;
    float *params = malloc(4 * lay->np + 4);
    uint32_t *order = malloc(4 * (size_t)bits);
    drsch_status s = DRSCH_OK;
    if (!params || !order) {
        s = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    } else {
        b->pos = lay->params_pos;
        for (uint64_t k = 0; k < lay->np; k++)
            params[k] = get_f32(b);
        b->pos = lay->order_pos;
        for (int j = 0; j < bits; j++)
            order[j] = get_u32(b);
        s = check_values(path, net, lay->hash_scale, params, err);
        if (s == DRSCH_OK)
            s = nn_params_import(net, params, lay->np, err);
        if (s == DRSCH_OK)
            s = nn_set_bit_order(net, order, err);
        if (s == DRSCH_OK)
            nn_set_hash_scale(net, lay->hash_scale);
    }
    free(params);
    free(order);
    return s;
}

drsch_status nn_model_load(nn_net **out, const char *path, int32_t batch, int32_t training,
                           drsch_error *err)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    /* whole, from a regular file only (a FIFO would block, /dev/zero never end): the file's
     * size bounds everything read from it */
    drsch_status s = fio_read_file(path, "model file", &data, &len, err);
    if (s != DRSCH_OK)
        return s;
    rbuf b = {data, len, 0, 0};
    nn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    model_layout lay = {0};
    nn_net *net = NULL;
    s = read_header(&b, path, &cfg, &lay, err);
    if (s == DRSCH_OK)
        s = check_body(&b, path, &lay, err);
    if (s == DRSCH_OK) {
        cfg.batch = batch;
        cfg.training = training;
        cfg.seed = 1;
        s = build_net(path, &cfg, lay.np, &net, err);
    }
    if (s == DRSCH_OK) {
        s = load_values(&b, path, &lay, net, err);
        if (s != DRSCH_OK)
            nn_net_free(net);
        else
            *out = net;
    }
    free(data);
    return s;
}
