/* The network's life: nn_net_create plans it (nn_plan.c), checks the plan, opens oneDNN's
 * engine, builds the layers (nn_layers.c) and the output, makes the single parameter /
 * gradient / momentum allocation and initialises the weights from the seed; nn_net_free.
 *
 * The rest of the network: the passes (nn_forward.c, nn_backward.c), the parameter block and the
 * accessors (nn_params.c), oneDNN helpers (nn_dnnl.c). Not done here: the loss (callers inject
 * d loss / d output), optimisation (nn_sgd.c), files (nn_model.c), batching over a data set
 * (nn_encode.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "rng.h"

static drsch_status init_params(nn_net *net, drsch_error *err)
{
    size_t maxn = 0;
    for (int t = 0; t < net->n_tensors; t++)
        if (net->tensors[t].plain_count > maxn)
            maxn = net->tensors[t].plain_count;
    float *buf = malloc(maxn * sizeof(float));
    if (!buf)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory initialising parameters");
    rng_state rng;
    rng_seed(&rng, net->cfg.seed);
    drsch_status s = DRSCH_OK;
    for (int t = 0; t < net->n_tensors && s == DRSCH_OK; t++) {
        const nn_tensor *T = &net->tensors[t];
        const nn_layer_spec *sp = &net->layers[T->layer].spec;
        for (size_t k = 0; k < T->plain_count; k++) {
            if (sp->kind == NN_LAYER_BITW)
                buf[k] = 1.0f;
            else if (T->is_bias)
                buf[k] = 0.0f;
            else
                buf[k] = (float)(sp->w_std * rng_normal(&rng));
        }
        s = nn_tensor_from_plain(net, t, buf, err);
    }
    free(buf);
    return s;
}

/* The plan against what it must be: the parameter count a model file stores, the memory of the
 * machine, the code length of the hash and bit-weight layers. Then the identity bit order. */
static drsch_status validate_plan(nn_net *net, size_t n_params, size_t expect_params,
                                  drsch_error *err)
{
    const nn_config *cfg = &net->cfg;
    if (expect_params != SIZE_MAX && n_params != expect_params)
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%zu parameters stored, architecture needs %zu",
                          expect_params, n_params);
    char what[160];
    snprintf(what, sizeof what, "a %s net for batches of %d images of %dx%dx%d",
             cfg->training ? "training" : "inference", cfg->batch, cfg->in_c, cfg->in_h, cfg->in_w);
    drsch_status s = nn_check_memory(4.0 * ((double)cfg->batch * nn_planned_act_floats(net) +
                                            (cfg->training ? 3.0 : 1.0) * (double)n_params),
                                     what, err);
    if (s != DRSCH_OK)
        return s;
    if ((net->hash_layer >= 0 && net->layers[net->hash_layer].out_c != cfg->bits) ||
        (net->bitw_layer >= 0 && net->layers[net->bitw_layer].out_c != cfg->bits))
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "hash / bit-weight layers must have the code length %d", cfg->bits);
    net->bit_order = malloc(sizeof(uint32_t) * (size_t)cfg->bits);
    if (!net->bit_order)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    for (int j = 0; j < cfg->bits; j++)
        net->bit_order[j] = (uint32_t)j;
    return DRSCH_OK;
}

/* oneDNN's engine, stream and attributes (user scratchpad), and the input memory. */
static drsch_status open_engine(nn_net *net, drsch_error *err)
{
    const nn_config *cfg = &net->cfg;
    dnnl_status_t st = dnnl_engine_create(&net->engine, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&net->stream, net->engine, dnnl_stream_default_flags);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&net->attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(net->attr, dnnl_scratchpad_mode_user);
    if (st != dnnl_success)
        return nn_dnnl_fail(err, st, "engine / stream");
    dnnl_dims_t id = {cfg->batch, cfg->in_c, cfg->in_h, cfg->in_w};
    dnnl_memory_desc_t in_md = nn_md_tag(4, id, dnnl_nchw);
    drsch_status s = nn_new_mem(net, &net->in_mem, &in_md, DNNL_MEMORY_NONE, err);
    if (s == DRSCH_OK && cfg->input_grad)
        s = nn_new_mem(net, &net->diff_in_mem, &in_md, DNNL_MEMORY_ALLOCATE, err);
    return s;
}

/* The network's output and, for training, its gradient input, in plain layouts (reordered from
 * the last layer's when oneDNN chose another). */
static drsch_status build_output(nn_net *net, drsch_error *err)
{
    const nn_config *cfg = &net->cfg;
    nn_layer *last = &net->layers[net->n_layers - 1];
    const dnnl_memory_desc_t *D = nn_mem_md(last->dst);
    dnnl_dims_t od = {cfg->batch, last->out_c, last->out_h, last->out_w};
    dnnl_memory_desc_t out_md =
        last->out_4d ? nn_md_tag(4, od, dnnl_nchw) : nn_md_tag(2, od, dnnl_nc);
    drsch_status s = DRSCH_OK;
    if (dnnl_memory_desc_equal(D, &out_md)) {
        net->out_mem = last->dst;
    } else {
        if ((s = nn_new_mem(net, &net->out_mem, &out_md, DNNL_MEMORY_ALLOCATE, err)) != DRSCH_OK ||
            (s = nn_make_reorder(net, D, &out_md, &net->out_reorder, err)) != DRSCH_OK)
            return s;
    }
    if (cfg->training) {
        if ((s = nn_new_mem(net, &net->dy_mem, &out_md, DNNL_MEMORY_NONE, err)) != DRSCH_OK)
            return s;
        if (!dnnl_memory_desc_equal(D, &out_md))
            s = nn_make_reorder(net, &out_md, D, &net->dy_reorder, err);
    }
    return s;
}

/* One allocation for the parameters (and, for training, their gradients and SGD history), each
 * tensor 64-byte aligned, handed to the layers' memories; then the scratchpad. */
static drsch_status allocate_params(nn_net *net, drsch_error *err)
{
    size_t off = 0;
    for (int t = 0; t < net->n_tensors; t++) {
        net->tensors[t].offset = off;
        off += (net->tensors[t].count + 15) & ~(size_t)15;
    }
    net->block_floats = off;
    size_t regions = net->cfg.training ? 3 : 1;
    size_t bytes = (regions * off * sizeof(float) + 63) & ~(size_t)63;
    net->block = aligned_alloc(64, bytes ? bytes : 64);
    if (!net->block)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %zu parameters", off);
    memset(net->block, 0, bytes);
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->p_w >= 0) {
            float *p = net->block + net->tensors[L->p_w].offset;
            dnnl_memory_set_data_handle(L->w, p);
            if (L->dw)
                dnnl_memory_set_data_handle(L->dw, p + off);
        }
        if (L->p_b >= 0) {
            float *p = net->block + net->tensors[L->p_b].offset;
            dnnl_memory_set_data_handle(L->b, p);
            if (L->db)
                dnnl_memory_set_data_handle(L->db, p + off);
        }
    }
    if (net->scratch_size) {
        dnnl_dims_t sd = {(dnnl_dim_t)net->scratch_size};
        dnnl_memory_desc_t smd;
        dnnl_memory_desc_init_by_tag(&smd, 1, sd, dnnl_u8, dnnl_x);
        dnnl_status_t st =
            dnnl_memory_create(&net->scratch, &smd, net->engine, DNNL_MEMORY_ALLOCATE);
        if (st != dnnl_success)
            return nn_dnnl_fail(err, st, "scratchpad");
    }
    return DRSCH_OK;
}

drsch_status nn_net_create_expect(nn_net **out, const nn_config *cfg0, size_t expect_params,
                                  drsch_error *err)
{
    *out = NULL;
    nn_net *net = NULL;
    drsch_status s = nn_plan_net(&net, cfg0, err);
    if (s != DRSCH_OK)
        return s;
    const size_t n_params = nn_planned_params(net);
    s = validate_plan(net, n_params, expect_params, err);
    if (s == DRSCH_OK)
        s = open_engine(net, err);
    if (s == DRSCH_OK)
        s = nn_build_layers(net, err);
    if (s == DRSCH_OK)
        s = build_output(net, err);
    if (s == DRSCH_OK)
        s = allocate_params(net, err);
    if (s == DRSCH_OK &&
        nn_params_plain_size(net) != n_params) /* planned_params out of step with the builders */
        s = drsch_fail(err, DRSCH_ERR_ARG, "internal: %zu parameters planned, %zu built", n_params,
                       nn_params_plain_size(net));
    if (s == DRSCH_OK)
        s = init_params(net, err);
    if (s != DRSCH_OK) {
        nn_net_free(net);
        return s;
    }
    net->weights_dirty = true;
    net->avx512 = nn_onednn_avx512();
    nn_chain_decide(net);
    *out = net;
    return DRSCH_OK;
}

drsch_status nn_net_create(nn_net **out, const nn_config *cfg0, drsch_error *err)
{
    return nn_net_create_expect(out, cfg0, SIZE_MAX, err);
}

void nn_net_free(nn_net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->src != L->in)
            nn_destroy_mem(L->src);
        if (L->diff_src != L->diff_in)
            nn_destroy_mem(L->diff_src);
        if (L->w_bwd != L->w)
            nn_destroy_mem(L->w_bwd);
        nn_destroy_mem(L->dst);
        nn_destroy_mem(L->ws);
        nn_destroy_mem(L->w);
        nn_destroy_mem(L->b);
        nn_destroy_mem(L->dw);
        nn_destroy_mem(L->db);
        nn_destroy_mem(L->diff_dst);
        nn_destroy_mem(L->dw_tmp);
        nn_destroy_prim(L->src_reorder);
        nn_destroy_prim(L->fwd);
        nn_destroy_prim(L->diff_src_reorder);
        nn_destroy_prim(L->relu_bwd);
        nn_destroy_prim(L->bwd_data);
        nn_destroy_prim(L->bwd_weights);
        nn_destroy_prim(L->w_bwd_reorder);
        nn_destroy_prim(L->dw_reorder);
        nn_destroy_mem(L->w_fwd);
        nn_destroy_prim(L->w_fwd_reorder);
        nn_destroy_mem(L->col);
        nn_destroy_mem(L->diff_col);
        nn_destroy_mem(L->dst2d);
        nn_destroy_mem(L->diff_dst2d);
        nn_destroy_mem(L->relu_mask);
        nn_destroy_mem(L->stem_part);
    }
    if (net->n_layers > 0 && net->out_mem != net->layers[net->n_layers - 1].dst)
        nn_destroy_mem(net->out_mem);
    nn_destroy_prim(net->out_reorder);
    nn_destroy_prim(net->dy_reorder);
    nn_destroy_mem(net->dy_mem);
    nn_destroy_mem(net->in_mem);
    nn_destroy_mem(net->diff_in_mem);
    nn_destroy_mem(net->scratch);
    if (net->attr)
        dnnl_primitive_attr_destroy(net->attr);
    if (net->stream)
        dnnl_stream_destroy(net->stream);
    if (net->engine)
        dnnl_engine_destroy(net->engine);
    free(net->bit_order);
    free(net->block);
    free(net);
}
