/* Planning a network before anything large is allocated: the config checked and its defaults
 * filled in, the layers' shapes (Caffe ceil mode for pooling), FLOPs, the plain parameter count
 * and the activation memory; the check against the machine's physical memory. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_internal.h"

/* Bound on every shape parameter (input side, channels, kernel, stride, pad, outputs): far above
 * any network drsch builds, and low enough that the int32 shape arithmetic below cannot
 * overflow whatever a (corrupt) model file says. */
#define NN_MAX_SHAPE 65536

/* Output sizes; Caffe ceil mode for pooling (a window may start inside the input only). */
static drsch_status plan_shapes(nn_net *net, drsch_error *err)
{
    int32_t c = net->cfg.in_c, h = net->cfg.in_h, w = net->cfg.in_w, is4d = 1;
    if (c > NN_MAX_SHAPE || h > NN_MAX_SHAPE || w > NN_MAX_SHAPE)
        return drsch_fail(err, DRSCH_ERR_ARG, "input %dx%dx%d: larger than %d", c, h, w,
                          NN_MAX_SHAPE);
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        const nn_layer_spec *sp = &L->spec;
        if (sp->out > NN_MAX_SHAPE || sp->kernel > NN_MAX_SHAPE || sp->stride > NN_MAX_SHAPE ||
            sp->pad > NN_MAX_SHAPE)
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "layer %d: out %d, kernel %d, stride %d or pad %d larger than %d", i,
                              sp->out, sp->kernel, sp->stride, sp->pad, NN_MAX_SHAPE);
        L->in_c = c, L->in_h = h, L->in_w = w, L->in_4d = is4d;
        switch (sp->kind) {
        case NN_LAYER_CONV:
            if (!is4d || sp->out < 1 || sp->kernel < 1 || sp->stride < 1 || sp->pad < 0 ||
                h + 2 * sp->pad < sp->kernel || w + 2 * sp->pad < sp->kernel)
                return drsch_fail(err, DRSCH_ERR_ARG,
                                  "layer %d (conv %d@%dx%d): does not fit input %dx%dx%d", i,
                                  sp->out, sp->kernel, sp->kernel, c, h, w);
            c = sp->out;
            h = (h + 2 * sp->pad - sp->kernel) / sp->stride + 1;
            w = (w + 2 * sp->pad - sp->kernel) / sp->stride + 1;
            break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG: {
            if (!is4d || sp->kernel < 1 || sp->stride < 1 || sp->pad < 0 || sp->pad >= sp->kernel)
                return drsch_fail(err, DRSCH_ERR_ARG, "layer %d: bad pooling parameters", i);
            int32_t dims[2] = {h, w}, out[2], padr[2];
            for (int k = 0; k < 2; k++) {
                int32_t span = dims[k] + 2 * sp->pad - sp->kernel;
                int32_t o = span <= 0 ? 1 : (span + sp->stride - 1) / sp->stride + 1;
                if ((o - 1) * sp->stride >= dims[k] + sp->pad)
                    o--;
                out[k] = o;
                padr[k] = (o - 1) * sp->stride + sp->kernel - dims[k] - sp->pad;
                if (padr[k] < 0)
                    padr[k] = 0;
                if (padr[k] >= sp->kernel)
                    return drsch_fail(err, DRSCH_ERR_ARG, "layer %d: pooling window outside input",
                                      i);
            }
            L->pad_r_h = padr[0], L->pad_r_w = padr[1];
            h = out[0], w = out[1];
            break;
        }
        case NN_LAYER_FC:
            c = sp->out > 0 ? sp->out : net->cfg.bits;
            h = w = 1;
            is4d = 0;
            break;
        case NN_LAYER_HASH:
        case NN_LAYER_BITW:
            if (is4d)
                return drsch_fail(err, DRSCH_ERR_ARG,
                                  "layer %d: hash / bit-weight layers must follow an fc layer", i);
            break;
        default:
            return drsch_fail(err, DRSCH_ERR_ARG, "layer %d: unknown layer kind %d", i,
                              (int)sp->kind);
        }
        L->out_c = c, L->out_h = h, L->out_w = w, L->out_4d = is4d;
        double n = net->cfg.batch;
        double f = 0;
        if (sp->kind == NN_LAYER_CONV)
            f = 2.0 * n * c * h * w * L->in_c * sp->kernel * sp->kernel;
        else if (sp->kind == NN_LAYER_FC)
            f = 2.0 * n * c * L->in_c * L->in_h * L->in_w;
        L->flops_fwd = f;
        L->flops_bwd = net->cfg.training ? f * (nn_need_data_grad(net, i) ? 2.0 : 1.0) : 0;
    }
    return DRSCH_OK;
}

/* Plain parameter count of planned layers (the sizes nn_layers.c's build_conv / build_fc /
 * build_plain give add_tensor), known before anything large is allocated. Counts beyond 2^60 (which
 * no file or memory holds) are returned as SIZE_MAX - 1 rather than wrapped. */
size_t nn_planned_params(const nn_net *net)
{
    double n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *L = &net->layers[i];
        switch (L->spec.kind) {
        case NN_LAYER_CONV:
            n += (double)L->out_c * L->in_c * L->spec.kernel * L->spec.kernel + L->out_c;
            break;
        case NN_LAYER_FC: n += (double)L->out_c * L->in_c * L->in_h * L->in_w + L->out_c; break;
        case NN_LAYER_BITW: n += L->out_c; break;
        default: break;
        }
    }
    return n > 0x1p60 ? SIZE_MAX - 1 : (size_t)n;
}

/* The floats of a convolution's unfolded input per image: a C x KH x KW row per output pixel. */
static double unfolded_floats(const nn_layer *L)
{
    return (double)L->spec.kernel * L->spec.kernel * L->in_c * L->out_h * L->out_w;
}

bool nn_conv_as_gemm(const nn_layer *L)
{
    return L->spec.kind == NN_LAYER_CONV && L->in_c >= 16 &&
           unfolded_floats(L) <= 4.0 * L->in_c * L->in_h * L->in_w;
}

/* Activation floats one image takes in the net's buffers: the input and every layer's output,
 * channels of 4-D tensors rounded up to 8 (the blocked layouts oneDNN picks pad them to 8 or
 * 16), and the unfolded inputs of convolutions computed as inner products; twice that for
 * training nets (a gradient of each). An estimate, known before anything is allocated;
 * oneDNN's reorders and workspaces come on top. */
double nn_planned_act_floats(const nn_net *net)
{
    const nn_config *c = &net->cfg;
    double n = (double)c->in_c * c->in_h * c->in_w;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *L = &net->layers[i];
        double ch = L->out_4d ? (double)((L->out_c + 7) / 8 * 8) : (double)L->out_c;
        n += ch * L->out_h * L->out_w;
        if (nn_conv_as_gemm(L))
            n += unfolded_floats(L);
    }
    return c->training ? 2 * n : n;
}

/* Physical memory of this machine in bytes (0 if unknown). */
static double phys_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0;
}

drsch_status nn_check_memory(double bytes, const char *what, drsch_error *err)
{
    double have = phys_memory();
    if (have > 0 && bytes > have) {
        char need_s[32], have_s[32];
        return drsch_fail(err, DRSCH_ERR_NOMEM,
                          "%s needs about %s of memory, more than this machine's %s", what,
                          nn_bytes_str(bytes, need_s), nn_bytes_str(have, have_s));
    }
    return DRSCH_OK;
}

/* Checks cfg0 (defaults filled in) and plans the shapes in a new net that holds no oneDNN
 * object and no buffer yet. */
drsch_status nn_plan_net(nn_net **out, const nn_config *cfg0, drsch_error *err)
{
    *out = NULL;
    nn_config cfg = *cfg0;
    if (cfg.in_c <= 0)
        cfg.in_c = cfg.arch.in_c;
    if (cfg.in_h <= 0)
        cfg.in_h = cfg.arch.in_h;
    if (cfg.in_w <= 0)
        cfg.in_w = cfg.arch.in_w;
    if (cfg.arch.n_layers < 1 || cfg.arch.n_layers > NN_MAX_LAYERS)
        return drsch_fail(err, DRSCH_ERR_ARG, "architecture '%s' has %d layers (1..%d)",
                          cfg.arch.name, cfg.arch.n_layers, NN_MAX_LAYERS);
    if (cfg.bits < 1 || cfg.bits > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_ARG, "code length %d out of range 1..%d", cfg.bits,
                          HM_MAX_BITS);
    if (cfg.batch < 1 || cfg.in_c < 1 || cfg.in_h < 1 || cfg.in_w < 1)
        return drsch_fail(err, DRSCH_ERR_ARG, "bad batch %d or input %dx%dx%d", cfg.batch, cfg.in_c,
                          cfg.in_h, cfg.in_w);
    if (cfg.arch.in_c > 0 && cfg.in_c != cfg.arch.in_c)
        return drsch_fail(err, DRSCH_ERR_ARG, "architecture '%s' takes %d input channels, not %d",
                          cfg.arch.name, cfg.arch.in_c, cfg.in_c);
    if (cfg.head != NN_HEAD_HASH && cfg.head != NN_HEAD_SOFTMAX)
        return drsch_fail(err, DRSCH_ERR_ARG, "unknown network head %d", (int)cfg.head);
    if (cfg.head == NN_HEAD_SOFTMAX) {
        const nn_layer_spec *last = &cfg.arch.layers[cfg.arch.n_layers - 1];
        for (int i = 0; i < cfg.arch.n_layers; i++)
            if (cfg.arch.layers[i].kind == NN_LAYER_HASH ||
                cfg.arch.layers[i].kind == NN_LAYER_BITW)
                return drsch_fail(err, DRSCH_ERR_ARG,
                                  "a classifier (softmax head) has no hash or bit-weight layer");
        if (last->kind != NN_LAYER_FC || last->relu || (last->out > 0 && last->out != cfg.bits))
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "a classifier (softmax head) ends with an fc layer of its %d "
                              "classes, without ReLU",
                              cfg.bits);
    }
    cfg.training = cfg.training ? 1 : 0;
    cfg.input_grad = cfg.training && cfg.input_grad;
    if (cfg.precision != NN_PRECISION_F32 && cfg.precision != NN_PRECISION_BF16)
        return drsch_fail(err, DRSCH_ERR_ARG, "unknown precision %d", (int)cfg.precision);
    if (cfg.precision != NN_PRECISION_F32 && cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "precision %s is for inference; training nets run in f32",
                          nn_precision_name((nn_precision)cfg.precision));

    nn_net *net = calloc(1, sizeof *net);
    if (!net)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    net->cfg = cfg;
    net->n_layers = cfg.arch.n_layers;
    net->hash_layer = net->bitw_layer = -1;
    net->hash_scale = 5.0f;
    for (int i = 0; i < net->n_layers; i++) {
        net->layers[i].spec = cfg.arch.layers[i];
        net->layers[i].p_w = net->layers[i].p_b = -1;
        if (cfg.arch.layers[i].kind == NN_LAYER_HASH)
            net->hash_layer = i;
        if (cfg.arch.layers[i].kind == NN_LAYER_BITW)
            net->bitw_layer = i;
    }
    drsch_status s = plan_shapes(net, err);
    if (s != DRSCH_OK) {
        nn_net_free(net);
        return s;
    }
    *out = net;
    return DRSCH_OK;
}

drsch_status nn_net_plan(const nn_config *cfg, nn_net_plan_info *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    nn_net *net = NULL;
    drsch_status s = nn_plan_net(&net, cfg, err);
    if (s != DRSCH_OK)
        return s;
    out->params = nn_planned_params(net);
    out->act_floats = nn_planned_act_floats(net);
    out->in_c = net->cfg.in_c, out->in_h = net->cfg.in_h, out->in_w = net->cfg.in_w;
    nn_net_free(net);
    return DRSCH_OK;
}
