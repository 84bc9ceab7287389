/* The parameter block and the network's accessors: tensors to and from their plain layout,
 * export / import / copy of all parameters, the SGD-facing views (nn_param_at, nn_sgd_history),
 * hash scale, input normalisation, bit weights, shapes, FLOPs and oneDNN's implementation name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

/* One reorder of a tensor between two layouts (src in src_md, dst in dst_md), run to the end. */
static dnnl_status_t reorder_once(const nn_net *net, const dnnl_memory_desc_t *src_md,
                                  const void *src, const dnnl_memory_desc_t *dst_md, void *dst)
{
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_memory_create(&from, src_md, net->engine, (void *)(uintptr_t)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&to, dst_md, net->engine, dst);
    if (st == dnnl_success)
        st =
            dnnl_reorder_primitive_desc_create(&pd, src_md, net->engine, dst_md, net->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, pd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        st = dnnl_primitive_execute(r, net->stream, 2, a);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(net->stream);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    nn_destroy_prim(r);
    nn_destroy_mem(from);
    nn_destroy_mem(to);
    return st;
}

/* Tensor t of region r of the block (0 parameters, 2 momentum history) from / to plain. */
static drsch_status region_from_plain(nn_net *net, int r, int32_t t, const float *plain,
                                      drsch_error *err)
{
    nn_tensor *T = &net->tensors[t];
    float *dst = net->block + (size_t)r * net->block_floats + T->offset;
    if (dnnl_memory_desc_equal(&T->md, &T->plain_md)) {
        memcpy(dst, plain, T->plain_count * sizeof(float));
        return DRSCH_OK;
    }
    DN(reorder_once(net, &T->plain_md, plain, &T->md, dst), "parameter import reorder");
    return DRSCH_OK;
}

static drsch_status region_to_plain(const nn_net *net, int r, int32_t t, float *plain,
                                    drsch_error *err)
{
    const nn_tensor *T = &net->tensors[t];
    const float *src = net->block + (size_t)r * net->block_floats + T->offset;
    if (dnnl_memory_desc_equal(&T->md, &T->plain_md)) {
        memcpy(plain, src, T->plain_count * sizeof(float));
        return DRSCH_OK;
    }
    DN(reorder_once(net, &T->md, src, &T->plain_md, plain), "parameter export reorder");
    return DRSCH_OK;
}

drsch_status nn_tensor_from_plain(nn_net *net, int32_t t, const float *plain, drsch_error *err)
{
    net->weights_dirty = true;
    return region_from_plain(net, 0, t, plain, err);
}

/* Every tensor of region r (0 parameters, 2 momentum history) to / from n plain floats, in table
 * order; `what` names the operation in errors ("parameter export"). */
static drsch_status region_export(const nn_net *net, int r, float *plain, size_t n,
                                  const char *what, drsch_error *err)
{
    if (n != nn_params_plain_size(net))
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: %zu floats given, %zu needed", what, n,
                          nn_params_plain_size(net));
    for (int t = 0; t < net->n_tensors; t++) {
        TRY(region_to_plain(net, r, t, plain, err));
        plain += net->tensors[t].plain_count;
    }
    return DRSCH_OK;
}

static drsch_status region_import(nn_net *net, int r, const float *plain, size_t n,
                                  const char *what, drsch_error *err)
{
    if (n != nn_params_plain_size(net))
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: %zu floats given, %zu needed", what, n,
                          nn_params_plain_size(net));
    for (int t = 0; t < net->n_tensors; t++) {
        TRY(region_from_plain(net, r, t, plain, err));
        plain += net->tensors[t].plain_count;
    }
    return DRSCH_OK;
}

drsch_status nn_sgd_history_export(const nn_net *net, float *plain, size_t n, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG, "momentum export: an inference network has none");
    return region_export(net, 2, plain, n, "momentum export", err);
}

drsch_status nn_sgd_history_import(nn_net *net, const float *plain, size_t n, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG, "momentum import: an inference network has none");
    return region_import(net, 2, plain, n, "momentum import", err);
}

const nn_config *nn_net_config(const nn_net *net) { return &net->cfg; }

int32_t nn_output_dim(const nn_net *net)
{
    const nn_layer *L = &net->layers[net->n_layers - 1];
    return L->out_c * L->out_h * L->out_w;
}

size_t nn_input_size(const nn_net *net)
{
    return (size_t)net->cfg.in_c * net->cfg.in_h * net->cfg.in_w;
}

void nn_set_hash_scale(nn_net *net, float s) { net->hash_scale = s; }

float *nn_sgd_history(nn_net *net, size_t *count)
{
    *count = net->cfg.training ? net->block_floats : 0;
    return net->cfg.training ? net->block + 2 * net->block_floats : NULL;
}

void nn_set_input_norm(nn_net *net, const float *mean, const float *scale)
{
    for (int c = 0; c < NN_MAX_IN_C; c++) {
        net->cfg.in_mean[c] = mean[c];
        net->cfg.in_scale[c] = scale[c];
    }
}
float nn_hash_scale(const nn_net *net) { return net->hash_scale; }

float nn_hash_scale_at(float s0, float mult, int64_t every, int64_t iter)
{
    if (every <= 0)
        return s0;
    return s0 * powf(mult, (float)(iter / every));
}

int32_t nn_param_count(const nn_net *net) { return net->n_tensors; }

nn_param nn_param_at(const nn_net *net, int32_t i)
{
    const nn_tensor *T = &net->tensors[i];
    nn_param p = {T->layer,
                  T->is_bias,
                  net->block + T->offset,
                  net->cfg.training ? net->block + net->block_floats + T->offset : NULL,
                  T->count,
                  T->plain_count,
                  T->lr_mult,
                  T->decay_mult};
    return p;
}

size_t nn_params_plain_size(const nn_net *net)
{
    size_t n = 0;
    for (int t = 0; t < net->n_tensors; t++)
        n += net->tensors[t].plain_count;
    return n;
}

drsch_status nn_params_export(const nn_net *net, float *plain, size_t n, drsch_error *err)
{
    return region_export(net, 0, plain, n, "parameter export", err);
}

drsch_status nn_params_import(nn_net *net, const float *plain, size_t n, drsch_error *err)
{
    net->weights_dirty = true;
    return region_import(net, 0, plain, n, "parameter import", err);
}

void nn_params_changed(nn_net *net) { net->weights_dirty = true; }

/* Region r (0 parameters, 2 momentum history) of src into dst through the plain layout, so their
 * layouts may differ. */
static drsch_status copy_region(nn_net *dst, const nn_net *src, int r, const char *what,
                                drsch_error *err)
{
    if (dst->n_tensors != src->n_tensors || dst->cfg.bits != src->cfg.bits ||
        dst->cfg.head != src->cfg.head || nn_params_plain_size(dst) != nn_params_plain_size(src))
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: networks differ ('%s' %d bits vs '%s' %d bits)",
                          what, src->cfg.arch.name, src->cfg.bits, dst->cfg.arch.name,
                          dst->cfg.bits);
    size_t n = nn_params_plain_size(src);
    float *buf = malloc(n * sizeof(float) + 1);
    if (!buf)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    drsch_status s = region_export(src, r, buf, n, what, err);
    if (s == DRSCH_OK)
        s = region_import(dst, r, buf, n, what, err);
    free(buf);
    return s;
}

drsch_status nn_net_copy_history(nn_net *dst, const nn_net *src, drsch_error *err)
{
    if (!src->cfg.training || !dst->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG, "copy momentum: an inference network has none");
    return copy_region(dst, src, 2, "copy momentum", err);
}

drsch_status nn_net_copy_params(nn_net *dst, const nn_net *src, drsch_error *err)
{
    dst->weights_dirty = true;
    drsch_status s = copy_region(dst, src, 0, "copy parameters", err);
    if (s == DRSCH_OK) {
        dst->hash_scale = src->hash_scale;
        memcpy(dst->bit_order, src->bit_order, sizeof(uint32_t) * (size_t)src->cfg.bits);
    }
    return s;
}

const float *nn_bit_weights(const nn_net *net)
{
    return net->bitw_layer >= 0 ? nn_mem_ptr(net->layers[net->bitw_layer].w) : NULL;
}

void nn_flops(const nn_net *net, double *forward, double *backward)
{
    double f = 0, b = 0; /* the layers' own, summed in layer order */
    for (int i = 0; i < net->n_layers; i++)
        f += net->layers[i].flops_fwd, b += net->layers[i].flops_bwd;
    if (forward)
        *forward = f;
    if (backward)
        *backward = b;
}

void nn_net_time_passes(nn_net *net, int32_t on)
{
    if (on) {
        memset(&net->times, 0, sizeof net->times);
        for (int i = 0; i < net->n_layers; i++) {
            net->times.forward_flops[i] = net->layers[i].flops_fwd;
            net->times.backward_flops[i] = net->layers[i].flops_bwd;
        }
    }
    net->timing = on != 0;
}

void nn_net_pass_times(const nn_net *net, nn_pass_times *out) { *out = net->times; }

const char *nn_layer_impl(const nn_net *net, int32_t i)
{
    return i >= 0 && i < net->n_layers ? net->layers[i].impl : "";
}

const char *nn_net_impl(const nn_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *L = &net->layers[i];
        if (L->fwd && L->impl[0] && (L->spec.kind == NN_LAYER_CONV || L->spec.kind == NN_LAYER_FC))
            return L->impl;
    }
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].impl[0])
            return net->layers[i].impl;
    return "";
}
