/* The network: builds oneDNN primitives once per shape from a layer table, runs forward and
 * backward passes, and owns the single parameter / gradient / momentum allocation.
 *
 * Layout policy (what a oneDNN probe of this network measured): every convolution and inner
 * product asks for format_tag_any, so oneDNN picks blocked layouts for training and nhwc
 * (brgconv) for inference; pooling takes its input's layout as is; a reorder is inserted only
 * where a layer's chosen layout differs from its producer's. ReLU is a post-op of the
 * convolution; its backward is an eltwise "use dst" primitive run in place. The backward-data
 * weights layout is queried and, where it differs, a reordered copy is refreshed after every
 * parameter change. The hash and bit-weight layers are plain C on N x B rows.
 *
 * bf16 inference (cfg.precision): convolutions and inner products get bf16 src and weights
 * (format_tag_any still), hidden activations are bf16, the inner product that feeds the hash
 * layer (or ends the net) writes f32, biases stay f32. The parameters stay f32 in the block, in
 * plain layout; each weight tensor has a bf16 copy in the forward primitive's layout, converted
 * by a reorder when the parameters change, never per forward pass.
 *
 * Not done here: the loss (callers inject d loss / d output), optimisation (nn_sgd.c), files
 * (nn_model.c), batching over a data set (nn_encode.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_internal.h"
#include "rng.h"

#define DN(call, what)                                                                             \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success)                                                                   \
            return nn_dnnl_fail(err, st_, what);                                                   \
    } while (0)
#define TRY(call)                                                                                  \
    do {                                                                                           \
        drsch_status s_ = (call);                                                                  \
        if (s_ != DRSCH_OK)                                                                        \
            return s_;                                                                             \
    } while (0)

static float *mem_ptr(const_dnnl_memory_t m)
{
    void *p = NULL;
    if (m)
        dnnl_memory_get_data_handle(m, &p);
    return (float *)p;
}

static const dnnl_memory_desc_t *mem_md(const_dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(m, &md);
    return md;
}

static dnnl_memory_desc_t md_dt(int nd, const dnnl_dim_t *dims, dnnl_data_type_t dt,
                                dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_memory_desc_init_by_tag(&md, nd, dims, dt, tag);
    return md;
}

static dnnl_memory_desc_t md_tag(int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag)
{
    return md_dt(nd, dims, dnnl_f32, tag);
}

/* Data type of the inputs and weights of convolutions and inner products. */
static dnnl_data_type_t compute_dt(const nn_net *net)
{
    return net->cfg.precision == NN_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* Data type of layer i's output: bf16 nets keep activations in bf16 while the next layer is a
 * convolution, pooling or inner product; what reaches the hash layer or the net's output is f32. */
static dnnl_data_type_t dst_dt(const nn_net *net, int i)
{
    if (i + 1 >= net->n_layers)
        return dnnl_f32;
    nn_layer_kind next = net->layers[i + 1].spec.kind;
    return next == NN_LAYER_HASH || next == NN_LAYER_BITW ? dnnl_f32 : compute_dt(net);
}

static drsch_status new_mem(nn_net *net, dnnl_memory_t *m, const dnnl_memory_desc_t *md,
                            void *handle, drsch_error *err)
{
    DN(dnnl_memory_create(m, md, net->engine, handle), "buffer");
    /* Zero owned buffers: padded blocked layouts must hold zeros outside the logical tensor. */
    if (handle == DNNL_MEMORY_ALLOCATE)
        memset(mem_ptr(*m), 0, dnnl_memory_desc_get_size(md));
    return DRSCH_OK;
}

static void note_scratch(nn_net *net, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = md ? dnnl_memory_desc_get_size(md) : 0;
    if (sz > net->scratch_size)
        net->scratch_size = sz;
}

/* A primitive oneDNN cannot create: in a bf16 net "unimplemented" means this CPU (or oneDNN's
 * ISA cap, ONEDNN_MAX_CPU_ISA) has no bf16 kernel for it; say so instead of falling back. */
static drsch_status prim_fail(const nn_net *net, dnnl_status_t st, const char *what,
                              drsch_error *err)
{
    if (st == dnnl_unimplemented && net->cfg.precision == NN_PRECISION_BF16) {
        const dnnl_version_t *v = dnnl_version();
        return drsch_fail(
            err, DRSCH_ERR_UNSUPPORTED,
            "bf16 %s: oneDNN %d.%d.%d has no bf16 implementation on this CPU (oneDNN ISA %s; "
            "bf16 needs avx512_core, natively avx512_core_bf16); use precision f32",
            what, v->major, v->minor, v->patch, nn_onednn_isa());
    }
    return nn_dnnl_fail(err, st, what);
}

const char *nn_onednn_version(void)
{
    static char text[96];
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "%d.%d.%d (%s)", v->major, v->minor, v->patch, v->hash);
    return text;
}

/* Creates pd from an op descriptor, then the primitive; *pd_out (optional) keeps the pd. */
static drsch_status make_prim(nn_net *net, const_dnnl_op_desc_t desc,
                              const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                              dnnl_primitive_t *prim, dnnl_primitive_desc_t *pd_out,
                              const char *what, drsch_error *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t pst =
        dnnl_primitive_desc_create(&pd, desc, attr ? attr : net->attr, net->engine, hint);
    if (pst != dnnl_success)
        return prim_fail(net, pst, what, err);
    note_scratch(net, pd);
    dnnl_status_t st = prim ? dnnl_primitive_create(prim, pd) : dnnl_success;
    if (st != dnnl_success || !pd_out)
        dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return nn_dnnl_fail(err, st, what);
    if (pd_out)
        *pd_out = pd;
    return DRSCH_OK;
}

static drsch_status make_reorder(nn_net *net, const dnnl_memory_desc_t *from,
                                 const dnnl_memory_desc_t *to, dnnl_primitive_t *prim,
                                 drsch_error *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t pst =
        dnnl_reorder_primitive_desc_create(&pd, from, net->engine, to, net->engine, net->attr);
    if (pst != dnnl_success)
        return prim_fail(net, pst, "reorder", err);
    note_scratch(net, pd);
    dnnl_status_t st = dnnl_primitive_create(prim, pd);
    dnnl_primitive_desc_destroy(pd);
    DN(st, "reorder primitive");
    return DRSCH_OK;
}

static drsch_status exec(nn_net *net, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args,
                         drsch_error *err)
{
    args[nargs].arg = DNNL_ARG_SCRATCHPAD;
    args[nargs].memory = net->scratch;
    DN(dnnl_primitive_execute(p, net->stream, nargs + (net->scratch ? 1 : 0), args), "execute");
    return DRSCH_OK;
}

static drsch_status run_reorder(nn_net *net, dnnl_primitive_t p, dnnl_memory_t from,
                                dnnl_memory_t to, drsch_error *err)
{
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return exec(net, p, 2, a, err);
}

static int add_tensor(nn_net *net, int32_t layer, int32_t is_bias, const dnnl_memory_desc_t *md,
                      const dnnl_memory_desc_t *plain_md, size_t plain_count)
{
    const nn_layer_spec *sp = &net->layers[layer].spec;
    nn_tensor *t = &net->tensors[net->n_tensors];
    t->layer = layer;
    t->is_bias = is_bias;
    t->md = *md;
    t->plain_md = *plain_md;
    t->count = dnnl_memory_desc_get_size(md) / sizeof(float);
    t->plain_count = plain_count;
    t->lr_mult = is_bias ? sp->b_lr_mult : sp->w_lr_mult;
    t->decay_mult = is_bias ? sp->b_decay_mult : sp->w_decay_mult;
    return net->n_tensors++;
}

/* Input memory of layer i and the memory its input gradient goes to (NULL when not needed). */
static void link_input(nn_net *net, int i)
{
    nn_layer *L = &net->layers[i];
    if (i == 0) {
        L->in = net->in_mem;
        L->diff_in = net->diff_in_mem;
    } else {
        L->in = net->layers[i - 1].dst;
        L->diff_in = net->layers[i - 1].diff_dst;
    }
}

static bool need_data_grad(const nn_net *net, int i)
{
    return net->cfg.training && (i > 0 || net->cfg.input_grad);
}

/* src: the layout the layer asked for; reorders in -> src (forward) and diff_src -> diff_in
 * (backward) when it differs from the producer's. */
static drsch_status bind_src(nn_net *net, int i, const dnnl_memory_desc_t *S, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const dnnl_memory_desc_t *in_md = mem_md(L->in);
    if (dnnl_memory_desc_equal(in_md, S)) {
        L->src = L->in;
        L->diff_src = L->diff_in;
        return DRSCH_OK;
    }
    TRY(new_mem(net, &L->src, S, DNNL_MEMORY_ALLOCATE, err));
    TRY(make_reorder(net, in_md, S, &L->src_reorder, err));
    if (need_data_grad(net, i)) {
        TRY(new_mem(net, &L->diff_src, S, DNNL_MEMORY_ALLOCATE, err));
        TRY(make_reorder(net, S, in_md, &L->diff_src_reorder, err));
    }
    return DRSCH_OK;
}

static drsch_status relu_attr(nn_net *net, dnnl_primitive_attr_t *attr, drsch_error *err)
{
    dnnl_post_ops_t po = NULL;
    DN(dnnl_primitive_attr_create(attr), "attr");
    DN(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attr");
    DN(dnnl_post_ops_create(&po), "post_ops");
    dnnl_status_t st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_post_ops(*attr, po);
    dnnl_post_ops_destroy(po);
    (void)net;
    DN(st, "relu post-op");
    return DRSCH_OK;
}

static drsch_status build_relu_bwd(nn_net *net, nn_layer *L, const dnnl_memory_desc_t *D,
                                   drsch_error *err)
{
    dnnl_eltwise_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL;
    DN(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd,
                                      D, 0.0f, 0.0f),
       "relu fwd desc");
    TRY(make_prim(net, &fd, NULL, NULL, NULL, &hint, "relu hint", err));
    DN(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, D, D, 0.0f, 0.0f),
       "relu bwd desc");
    drsch_status s = make_prim(net, &bd, NULL, hint, &L->relu_bwd, NULL, "relu backward", err);
    dnnl_primitive_desc_destroy(hint);
    return s;
}

/* After a bwd-weights pd is known: gradients go straight into the grads block when the layout
 * matches the forward weights, else through dw_tmp and a reorder. */
static drsch_status bind_dw(nn_net *net, nn_layer *L, const_dnnl_primitive_desc_t bwd_w_pd,
                            const dnnl_memory_desc_t *W, drsch_error *err)
{
    const dnnl_memory_desc_t *DW =
        dnnl_primitive_desc_query_md(bwd_w_pd, dnnl_query_diff_weights_md, 0);
    TRY(new_mem(net, &L->dw, W, DNNL_MEMORY_NONE, err));
    if (!dnnl_memory_desc_equal(DW, W)) {
        TRY(new_mem(net, &L->dw_tmp, DW, DNNL_MEMORY_ALLOCATE, err));
        TRY(make_reorder(net, DW, W, &L->dw_reorder, err));
    }
    return DRSCH_OK;
}

static drsch_status bind_w_bwd(nn_net *net, nn_layer *L, const_dnnl_primitive_desc_t bwd_d_pd,
                               const dnnl_memory_desc_t *W, drsch_error *err)
{
    const dnnl_memory_desc_t *WB = dnnl_primitive_desc_query_md(bwd_d_pd, dnnl_query_weights_md, 0);
    if (dnnl_memory_desc_equal(WB, W)) {
        L->w_bwd = L->w;
        return DRSCH_OK;
    }
    TRY(new_mem(net, &L->w_bwd, WB, DNNL_MEMORY_ALLOCATE, err));
    TRY(make_reorder(net, W, WB, &L->w_bwd_reorder, err));
    return DRSCH_OK;
}

/* The weights tensor of layer i: f32 nets keep it in the forward primitive's layout W; bf16 nets
 * keep the f32 parameters plain and give the primitive a bf16 copy in W (w_fwd). */
static drsch_status bind_weights(nn_net *net, int i, const dnnl_memory_desc_t *W,
                                 const dnnl_memory_desc_t *w_plain, size_t count, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const bool copy = W->data_type != dnnl_f32;
    L->p_w = add_tensor(net, i, 0, copy ? w_plain : W, w_plain, count);
    TRY(new_mem(net, &L->w, copy ? w_plain : W, DNNL_MEMORY_NONE, err));
    if (copy) {
        TRY(new_mem(net, &L->w_fwd, W, DNNL_MEMORY_ALLOCATE, err));
        TRY(make_reorder(net, w_plain, W, &L->w_fwd_reorder, err));
    }
    return DRSCH_OK;
}

static void note_impl(nn_layer *L, const_dnnl_primitive_desc_t pd)
{
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(L->impl, sizeof L->impl, "%s", name);
}

/* Whether oneDNN would compute this convolution's weight gradient with its reference kernel
 * (impl "ref:...") when it picks the layouts (format_tag_any). oneDNN 2.6 has no AVX2 jit kernel
 * for the weight gradient of a one-channel input in the blocked layouts it picks: drsch-mnist's
 * conv1 then took 354 of the 370 ms of a training step at batch 100 (ONEDNN_VERBOSE=1, 2-core
 * AVX2 Zen 3). With plain nchw source and output the gemm kernels apply instead. A probe only:
 * primitive descriptors, no primitive, nothing allocated for the net. */
static int conv_bwd_weights_is_ref(nn_net *net, const dnnl_convolution_desc_t *fwd_desc,
                                   const dnnl_memory_desc_t *w_any, const dnnl_memory_desc_t *b_x,
                                   const dnnl_dims_t strides, const dnnl_dims_t pad)
{
    dnnl_primitive_desc_t fpd = NULL, wpd = NULL;
    if (dnnl_primitive_desc_create(&fpd, fwd_desc, net->attr, net->engine, NULL) != dnnl_success)
        return 0;
    dnnl_memory_desc_t S = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t D = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    dnnl_convolution_desc_t wdsc;
    int is_ref = 0;
    if (dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &S, w_any, b_x,
                                                    &D, strides, pad, pad) == dnnl_success &&
        dnnl_primitive_desc_create(&wpd, &wdsc, net->attr, net->engine, fpd) == dnnl_success) {
        const char *name = NULL;
        is_ref =
            dnnl_primitive_desc_query(wpd, dnnl_query_impl_info_str, 0, &name) == dnnl_success &&
            name && !strncmp(name, "ref", 3);
        dnnl_primitive_desc_destroy(wpd);
    }
    dnnl_primitive_desc_destroy(fpd);
    return is_ref;
}

static drsch_status build_conv(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch;
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w},
                wd = {sp->out, L->in_c, sp->kernel, sp->kernel};
    dnnl_dims_t bdm = {sp->out}, dd = {N, L->out_c, L->out_h, L->out_w};
    dnnl_dims_t strides = {sp->stride, sp->stride}, pad = {sp->pad, sp->pad};
    const dnnl_data_type_t cdt = compute_dt(net);
    dnnl_memory_desc_t s_any = md_dt(4, sd, cdt, dnnl_format_tag_any),
                       w_any = md_dt(4, wd, cdt, dnnl_format_tag_any);
    dnnl_memory_desc_t b_x = md_tag(1, bdm, dnnl_x),
                       d_any = md_dt(4, dd, dst_dt(net, i), dnnl_format_tag_any);
    dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;

    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &s_any, &w_any, &b_x,
                                          &d_any, strides, pad, pad),
       "conv desc");
    if (net->cfg.training && cdt == dnnl_f32 &&
        conv_bwd_weights_is_ref(net, &cd, &w_any, &b_x, strides, pad)) {
        s_any = md_dt(4, sd, cdt, dnnl_nchw);
        d_any = md_dt(4, dd, dst_dt(net, i), dnnl_nchw);
        DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &s_any, &w_any,
                                              &b_x, &d_any, strides, pad, pad),
           "conv desc");
    }
    dnnl_primitive_attr_t attr = NULL;
    if (sp->relu)
        TRY(relu_attr(net, &attr, err));
    dnnl_primitive_desc_t fpd = NULL;
    drsch_status s = make_prim(net, &cd, attr, NULL, &L->fwd, &fpd, "convolution forward", err);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    TRY(s);
    note_impl(L, fpd);
    dnnl_memory_desc_t S = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t W = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t D = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t w_plain = md_tag(4, wd, dnnl_oihw);
    size_t wn = (size_t)sp->out * L->in_c * sp->kernel * sp->kernel;
    s = DRSCH_OK;
#define CK(x)                                                                                      \
    do {                                                                                           \
        s = (x);                                                                                   \
        if (s != DRSCH_OK)                                                                         \
            goto done;                                                                             \
    } while (0)
    CK(bind_weights(net, i, &W, &w_plain, wn, err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)sp->out);
    CK(new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    CK(new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
        CK(new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
        if (sp->relu)
            CK(build_relu_bwd(net, L, &D, err));
        dnnl_convolution_desc_t wdsc;
        dnnl_status_t st = dnnl_convolution_backward_weights_desc_init(
            &wdsc, dnnl_convolution_direct, &S, &w_any, &b_x, &D, strides, pad, pad);
        if (st != dnnl_success) {
            s = nn_dnnl_fail(err, st, "conv bwd weights desc");
            goto done;
        }
        dnnl_primitive_desc_t wpd = NULL;
        CK(make_prim(net, &wdsc, NULL, fpd, &L->bwd_weights, &wpd, "convolution backward weights",
                     err));
        s = bind_dw(net, L, wpd, &W, err);
        dnnl_primitive_desc_destroy(wpd);
        if (s != DRSCH_OK)
            goto done;
        if (need_data_grad(net, i)) {
            dnnl_convolution_desc_t ddsc;
            st = dnnl_convolution_backward_data_desc_init(&ddsc, dnnl_convolution_direct, &S,
                                                          &w_any, &D, strides, pad, pad);
            if (st != dnnl_success) {
                s = nn_dnnl_fail(err, st, "conv bwd data desc");
                goto done;
            }
            dnnl_primitive_desc_t dpd = NULL;
            CK(make_prim(net, &ddsc, NULL, fpd, &L->bwd_data, &dpd, "convolution backward data",
                         err));
            s = bind_w_bwd(net, L, dpd, &W, err);
            dnnl_primitive_desc_destroy(dpd);
        }
    }
done:
    dnnl_primitive_desc_destroy(fpd);
    return s;
}

static drsch_status build_fc(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch;
    const int nd = L->in_4d ? 4 : 2;
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w}, wd = {L->out_c, L->in_c, L->in_h, L->in_w};
    if (!L->in_4d) {
        sd[1] = L->in_c;
        wd[1] = L->in_c;
    }
    dnnl_dims_t bdm = {L->out_c}, dd = {N, L->out_c};
    const dnnl_data_type_t cdt = compute_dt(net);
    dnnl_memory_desc_t s_any = md_dt(nd, sd, cdt, dnnl_format_tag_any),
                       w_any = md_dt(nd, wd, cdt, dnnl_format_tag_any);
    dnnl_memory_desc_t b_x = md_tag(1, bdm, dnnl_x), d_nc = md_dt(2, dd, dst_dt(net, i), dnnl_nc);
    dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_inner_product_desc_t ipd;
    DN(dnnl_inner_product_forward_desc_init(&ipd, prop, &s_any, &w_any, &b_x, &d_nc), "fc desc");
    dnnl_primitive_attr_t attr = NULL;
    if (sp->relu)
        TRY(relu_attr(net, &attr, err));
    dnnl_primitive_desc_t fpd = NULL;
    drsch_status s = make_prim(net, &ipd, attr, NULL, &L->fwd, &fpd, "inner product forward", err);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    TRY(s);
    note_impl(L, fpd);
    dnnl_memory_desc_t S = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t W = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t w_plain = md_tag(nd, wd, nd == 4 ? dnnl_oihw : dnnl_oi);
    CK(bind_weights(net, i, &W, &w_plain, (size_t)L->out_c * L->in_c * L->in_h * L->in_w, err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)L->out_c);
    CK(new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    CK(new_mem(net, &L->dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(new_mem(net, &L->diff_dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
        CK(new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
        if (sp->relu)
            CK(build_relu_bwd(net, L, &d_nc, err));
        dnnl_inner_product_desc_t wdsc;
        dnnl_status_t st =
            dnnl_inner_product_backward_weights_desc_init(&wdsc, &S, &w_any, &b_x, &d_nc);
        if (st != dnnl_success) {
            s = nn_dnnl_fail(err, st, "fc bwd weights desc");
            goto done;
        }
        dnnl_primitive_desc_t wpd = NULL;
        CK(make_prim(net, &wdsc, NULL, fpd, &L->bwd_weights, &wpd, "inner product backward weights",
                     err));
        s = bind_dw(net, L, wpd, &W, err);
        dnnl_primitive_desc_destroy(wpd);
        if (s != DRSCH_OK)
            goto done;
        if (need_data_grad(net, i)) {
            dnnl_inner_product_desc_t ddsc;
            st = dnnl_inner_product_backward_data_desc_init(&ddsc, &S, &w_any, &d_nc);
            if (st != dnnl_success) {
                s = nn_dnnl_fail(err, st, "fc bwd data desc");
                goto done;
            }
            dnnl_primitive_desc_t dpd = NULL;
            CK(make_prim(net, &ddsc, NULL, fpd, &L->bwd_data, &dpd, "inner product backward data",
                         err));
            s = bind_w_bwd(net, L, dpd, &W, err);
            dnnl_primitive_desc_destroy(dpd);
        }
    }
done:
    dnnl_primitive_desc_destroy(fpd);
    return s;
}

static drsch_status build_pool(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch;
    dnnl_dims_t dd = {N, L->out_c, L->out_h, L->out_w};
    dnnl_dims_t strides = {sp->stride, sp->stride}, kernel = {sp->kernel, sp->kernel};
    dnnl_dims_t pad_l = {sp->pad, sp->pad}, pad_r = {L->pad_r_h, L->pad_r_w};
    dnnl_alg_kind_t alg =
        sp->kind == NN_LAYER_POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
    dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;
    /* Pooling keeps its input's layout and data type (bf16 between bf16 convolutions). */
    dnnl_memory_desc_t S = *mem_md(L->in), d_any = md_dt(4, dd, S.data_type, dnnl_format_tag_any);
    if (S.ndims != 4)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "layer %d: pooling needs a 4-D input (after conv or pool)", i);
    dnnl_pooling_desc_t pd;
    DN(dnnl_pooling_forward_desc_init(&pd, prop, alg, &S, &d_any, strides, kernel, pad_l, pad_r),
       "pool desc");
    dnnl_primitive_desc_t fpd = NULL;
    TRY(make_prim(net, &pd, NULL, NULL, &L->fwd, &fpd, "pooling forward", err));
    dnnl_memory_desc_t D = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    L->p_w = L->p_b = -1;
    drsch_status s = DRSCH_OK;
    CK(new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    if (ws && dnnl_memory_desc_get_size(ws) > 0)
        CK(new_mem(net, &L->ws, ws, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
        if (need_data_grad(net, i)) {
            dnnl_pooling_desc_t bd;
            dnnl_status_t st =
                dnnl_pooling_backward_desc_init(&bd, alg, &S, &D, strides, kernel, pad_l, pad_r);
            if (st != dnnl_success) {
                s = nn_dnnl_fail(err, st, "pool bwd desc");
                goto done;
            }
            CK(make_prim(net, &bd, NULL, fpd, &L->bwd_data, NULL, "pooling backward", err));
        }
    }
done:
    dnnl_primitive_desc_destroy(fpd);
    return s;
}

/* Hash and bit-weight layers: plain C on N x B rows; their input must be plain N x B. */
static drsch_status build_plain(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const dnnl_memory_desc_t *in_md = mem_md(L->in);
    dnnl_dims_t dd = {net->cfg.batch, L->out_c};
    dnnl_memory_desc_t d_nc = md_tag(2, dd, dnnl_nc);
    if (!dnnl_memory_desc_equal(in_md, &d_nc))
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "layer %d: hash / bit-weight layers must follow an fc layer", i);
    L->p_w = L->p_b = -1;
    L->src = L->in;
    L->diff_src = L->diff_in;
    TRY(new_mem(net, &L->dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    if (net->cfg.training)
        TRY(new_mem(net, &L->diff_dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    if (L->spec.kind == NN_LAYER_BITW) {
        dnnl_dims_t bd = {L->out_c};
        dnnl_memory_desc_t x = md_tag(1, bd, dnnl_x);
        L->p_w = add_tensor(net, i, 0, &x, &x, (size_t)L->out_c);
        TRY(new_mem(net, &L->w, &x, DNNL_MEMORY_NONE, err));
        if (net->cfg.training)
            TRY(new_mem(net, &L->dw, &x, DNNL_MEMORY_NONE, err));
    }
    return DRSCH_OK;
}

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
        net->flops_fwd += f;
        if (net->cfg.training)
            net->flops_bwd += f * (need_data_grad(net, i) ? 2.0 : 1.0);
    }
    return DRSCH_OK;
}

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

/* Plain parameter count of planned layers (the sizes build_conv / build_fc / build_plain give
 * add_tensor), known before anything large is allocated. Counts beyond 2^60 (which no file or
 * memory holds) are returned as SIZE_MAX - 1 rather than wrapped. */
static size_t planned_params(const nn_net *net)
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

/* Activation floats one image takes in the net's buffers: the input and every layer's output,
 * channels of 4-D tensors rounded up to 8 (the blocked layouts oneDNN picks pad them to 8 or
 * 16), twice that for training nets (a gradient of each). An estimate, known before anything
 * is allocated; oneDNN's reorders and workspaces come on top. */
static double planned_act_floats(const nn_net *net)
{
    const nn_config *c = &net->cfg;
    double n = (double)c->in_c * c->in_h * c->in_w;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *L = &net->layers[i];
        double ch = L->out_4d ? (double)((L->out_c + 7) / 8 * 8) : (double)L->out_c;
        n += ch * L->out_h * L->out_w;
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
static drsch_status plan_net(nn_net **out, const nn_config *cfg0, drsch_error *err)
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
    drsch_status s = plan_net(&net, cfg, err);
    if (s != DRSCH_OK)
        return s;
    out->params = planned_params(net);
    out->act_floats = planned_act_floats(net);
    out->in_c = net->cfg.in_c, out->in_h = net->cfg.in_h, out->in_w = net->cfg.in_w;
    nn_net_free(net);
    return DRSCH_OK;
}

drsch_status nn_net_create(nn_net **out, const nn_config *cfg0, drsch_error *err)
{
    return nn_net_create_expect(out, cfg0, SIZE_MAX, err);
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
    drsch_status s = nn_check_memory(4.0 * ((double)cfg->batch * planned_act_floats(net) +
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
    dnnl_memory_desc_t in_md = md_tag(4, id, dnnl_nchw);
    drsch_status s = new_mem(net, &net->in_mem, &in_md, DNNL_MEMORY_NONE, err);
    if (s == DRSCH_OK && cfg->input_grad)
        s = new_mem(net, &net->diff_in_mem, &in_md, DNNL_MEMORY_ALLOCATE, err);
    return s;
}

/* Every layer's primitives, each reading the previous layer's output. */
static drsch_status build_layers(nn_net *net, drsch_error *err)
{
    drsch_status s = DRSCH_OK;
    for (int i = 0; i < net->n_layers && s == DRSCH_OK; i++) {
        link_input(net, i);
        switch (net->layers[i].spec.kind) {
        case NN_LAYER_CONV: s = build_conv(net, i, err); break;
        case NN_LAYER_FC: s = build_fc(net, i, err); break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG: s = build_pool(net, i, err); break;
        default: s = build_plain(net, i, err); break;
        }
        if (s != DRSCH_OK) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            drsch_fail(err, s, "architecture '%s', layer %d: %.400s", net->cfg.arch.name, i, msg);
        }
    }
    return s;
}

/* The network's output and, for training, its gradient input, in plain layouts (reordered from
 * the last layer's when oneDNN chose another). */
static drsch_status build_output(nn_net *net, drsch_error *err)
{
    const nn_config *cfg = &net->cfg;
    nn_layer *last = &net->layers[net->n_layers - 1];
    const dnnl_memory_desc_t *D = mem_md(last->dst);
    dnnl_dims_t od = {cfg->batch, last->out_c, last->out_h, last->out_w};
    dnnl_memory_desc_t out_md = last->out_4d ? md_tag(4, od, dnnl_nchw) : md_tag(2, od, dnnl_nc);
    drsch_status s = DRSCH_OK;
    if (dnnl_memory_desc_equal(D, &out_md)) {
        net->out_mem = last->dst;
    } else {
        if ((s = new_mem(net, &net->out_mem, &out_md, DNNL_MEMORY_ALLOCATE, err)) != DRSCH_OK ||
            (s = make_reorder(net, D, &out_md, &net->out_reorder, err)) != DRSCH_OK)
            return s;
    }
    if (cfg->training) {
        if ((s = new_mem(net, &net->dy_mem, &out_md, DNNL_MEMORY_NONE, err)) != DRSCH_OK)
            return s;
        if (!dnnl_memory_desc_equal(D, &out_md))
            s = make_reorder(net, &out_md, D, &net->dy_reorder, err);
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
    drsch_status s = plan_net(&net, cfg0, err);
    if (s != DRSCH_OK)
        return s;
    const size_t n_params = planned_params(net);
    s = validate_plan(net, n_params, expect_params, err);
    if (s == DRSCH_OK)
        s = open_engine(net, err);
    if (s == DRSCH_OK)
        s = build_layers(net, err);
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
    *out = net;
    return DRSCH_OK;
}

static void destroy_mem(dnnl_memory_t m)
{
    if (m)
        dnnl_memory_destroy(m);
}
static void destroy_prim(dnnl_primitive_t p)
{
    if (p)
        dnnl_primitive_destroy(p);
}

void nn_net_free(nn_net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->src != L->in)
            destroy_mem(L->src);
        if (L->diff_src != L->diff_in)
            destroy_mem(L->diff_src);
        if (L->w_bwd != L->w)
            destroy_mem(L->w_bwd);
        destroy_mem(L->dst);
        destroy_mem(L->ws);
        destroy_mem(L->w);
        destroy_mem(L->b);
        destroy_mem(L->dw);
        destroy_mem(L->db);
        destroy_mem(L->diff_dst);
        destroy_mem(L->dw_tmp);
        destroy_prim(L->src_reorder);
        destroy_prim(L->fwd);
        destroy_prim(L->diff_src_reorder);
        destroy_prim(L->relu_bwd);
        destroy_prim(L->bwd_data);
        destroy_prim(L->bwd_weights);
        destroy_prim(L->w_bwd_reorder);
        destroy_prim(L->dw_reorder);
        destroy_mem(L->w_fwd);
        destroy_prim(L->w_fwd_reorder);
    }
    if (net->n_layers > 0 && net->out_mem != net->layers[net->n_layers - 1].dst)
        destroy_mem(net->out_mem);
    destroy_prim(net->out_reorder);
    destroy_prim(net->dy_reorder);
    destroy_mem(net->dy_mem);
    destroy_mem(net->in_mem);
    destroy_mem(net->diff_in_mem);
    destroy_mem(net->scratch);
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

/* ---- forward / backward ------------------------------------------------------------------ */

static void hash_forward(const nn_net *net, const nn_layer *L)
{
    const float *x = mem_ptr(L->src);
    float *y = mem_ptr(L->dst);
    const float half_s = 0.5f * net->hash_scale;
    const size_t n = (size_t)net->cfg.batch * L->out_c;
    for (size_t k = 0; k < n; k++)
        y[k] = tanhf(half_s * x[k]);
}

static void bitw_forward(const nn_net *net, const nn_layer *L)
{
    const float *x = mem_ptr(L->src), *w = mem_ptr(L->w);
    float *y = mem_ptr(L->dst);
    const int32_t B = L->out_c;
    for (int32_t r = 0; r < net->cfg.batch; r++)
        for (int32_t j = 0; j < B; j++)
            y[(size_t)r * B + j] = x[(size_t)r * B + j] * w[j];
}

drsch_status nn_forward(nn_net *net, const float *x, drsch_error *err)
{
    if (!x)
        return drsch_fail(err, DRSCH_ERR_ARG, "forward pass: no input images given");
    if (net->weights_dirty && net->cfg.precision != NN_PRECISION_F32)
        TRY(nn_net_refresh_weights(net, err));
    DN(dnnl_memory_set_data_handle(net->in_mem, (void *)(uintptr_t)x), "input handle");
    dnnl_exec_arg_t a[8];
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->src_reorder)
            TRY(run_reorder(net, L->src_reorder, L->in, L->src, err));
        switch (L->spec.kind) {
        case NN_LAYER_CONV:
        case NN_LAYER_FC:
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->src};
            a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, L->w_fwd ? L->w_fwd : L->w};
            a[2] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, L->b};
            a[3] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst};
            TRY(exec(net, L->fwd, 4, a, err));
            break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG: {
            int na = 2;
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->src};
            a[1] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst};
            if (L->ws)
                a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, L->ws};
            TRY(exec(net, L->fwd, na, a, err));
            break;
        }
        case NN_LAYER_HASH:
            dnnl_stream_wait(net->stream);
            hash_forward(net, L);
            break;
        case NN_LAYER_BITW:
            dnnl_stream_wait(net->stream);
            bitw_forward(net, L);
            break;
        }
    }
    if (net->out_reorder)
        TRY(run_reorder(net, net->out_reorder, net->layers[net->n_layers - 1].dst, net->out_mem,
                        err));
    DN(dnnl_stream_wait(net->stream), "stream wait");
    return DRSCH_OK;
}

const float *nn_output(const nn_net *net) { return mem_ptr(net->out_mem); }

const float *nn_hash_output(const nn_net *net)
{
    return net->hash_layer >= 0 ? mem_ptr(net->layers[net->hash_layer].dst) : NULL;
}

const float *nn_input_grad(const nn_net *net) { return mem_ptr(net->diff_in_mem); }

static void hash_backward(const nn_net *net, const nn_layer *L, const float *du)
{
    const float *y = mem_ptr(L->dst);
    float *dy = mem_ptr(L->diff_dst), *dx = mem_ptr(L->diff_src);
    const float half_s = 0.5f * net->hash_scale;
    const size_t n = (size_t)net->cfg.batch * L->out_c;
    for (size_t k = 0; k < n; k++) {
        float g = dy[k] + (du ? du[k] : 0.0f);
        dx[k] = g * half_s * (1.0f - y[k] * y[k]);
    }
}

static void bitw_backward(const nn_net *net, const nn_layer *L)
{
    const float *x = mem_ptr(L->src), *w = mem_ptr(L->w), *dy = mem_ptr(L->diff_dst);
    float *dw = mem_ptr(L->dw), *dx = mem_ptr(L->diff_src);
    const int32_t B = L->out_c, N = net->cfg.batch;
    for (int32_t j = 0; j < B; j++) {
        double acc = 0;
        for (int32_t r = 0; r < N; r++)
            acc += (double)dy[(size_t)r * B + j] * x[(size_t)r * B + j];
        dw[j] = (float)acc;
    }
    if (dx)
        for (int32_t r = 0; r < N; r++)
            for (int32_t j = 0; j < B; j++)
                dx[(size_t)r * B + j] = dy[(size_t)r * B + j] * w[j];
}

drsch_status nn_net_refresh_weights(nn_net *net, drsch_error *err)
{
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->w_bwd_reorder)
            TRY(run_reorder(net, L->w_bwd_reorder, L->w, L->w_bwd, err));
        if (L->w_fwd_reorder)
            TRY(run_reorder(net, L->w_fwd_reorder, L->w, L->w_fwd, err));
    }
    DN(dnnl_stream_wait(net->stream), "stream wait");
    net->weights_dirty = false;
    return DRSCH_OK;
}

const char *nn_net_impl(const nn_net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].impl[0])
            return net->layers[i].impl;
    return "";
}

drsch_status nn_backward(nn_net *net, const float *dy, const float *du, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "backward pass: the network was created for inference, not training");
    if (!dy)
        return drsch_fail(err, DRSCH_ERR_ARG, "backward pass: no output gradient given");
    if (net->weights_dirty)
        TRY(nn_net_refresh_weights(net, err));
    nn_layer *last = &net->layers[net->n_layers - 1];
    if (net->dy_reorder) {
        DN(dnnl_memory_set_data_handle(net->dy_mem, (void *)(uintptr_t)dy), "dy handle");
        TRY(run_reorder(net, net->dy_reorder, net->dy_mem, last->diff_dst, err));
        DN(dnnl_stream_wait(net->stream), "stream wait");
    } else {
        memcpy(mem_ptr(last->diff_dst), dy, dnnl_memory_desc_get_size(mem_md(last->diff_dst)));
    }
    dnnl_exec_arg_t a[8];
    for (int i = net->n_layers - 1; i >= 0; i--) {
        nn_layer *L = &net->layers[i];
        const bool data = need_data_grad(net, i);
        switch (L->spec.kind) {
        case NN_LAYER_CONV:
        case NN_LAYER_FC:
            if (L->relu_bwd) {
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
                a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->diff_dst};
                TRY(exec(net, L->relu_bwd, 3, a, err));
            }
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->src};
            a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
            a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, L->dw_tmp ? L->dw_tmp : L->dw};
            a[3] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, L->db};
            TRY(exec(net, L->bwd_weights, 4, a, err));
            if (L->dw_reorder)
                TRY(run_reorder(net, L->dw_reorder, L->dw_tmp, L->dw, err));
            if (data) {
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, L->w_bwd};
                a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->diff_src};
                TRY(exec(net, L->bwd_data, 3, a, err));
            }
            break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG:
            if (data) {
                int na = 2;
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->diff_src};
                if (L->ws)
                    a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, L->ws};
                TRY(exec(net, L->bwd_data, na, a, err));
            }
            break;
        case NN_LAYER_HASH:
            dnnl_stream_wait(net->stream);
            if (data)
                hash_backward(net, L, du);
            break;
        case NN_LAYER_BITW:
            dnnl_stream_wait(net->stream);
            bitw_backward(net, L);
            break;
        }
        if (data && L->diff_src_reorder)
            TRY(run_reorder(net, L->diff_src_reorder, L->diff_src, L->diff_in, err));
    }
    DN(dnnl_stream_wait(net->stream), "stream wait");
    return DRSCH_OK;
}

/* ---- parameters ------------------------------------------------------------------------- */

drsch_status nn_tensor_from_plain(nn_net *net, int32_t t, const float *plain, drsch_error *err)
{
    nn_tensor *T = &net->tensors[t];
    float *dst = net->block + T->offset;
    if (dnnl_memory_desc_equal(&T->md, &T->plain_md)) {
        memcpy(dst, plain, T->plain_count * sizeof(float));
        return DRSCH_OK;
    }
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st =
        dnnl_memory_create(&from, &T->plain_md, net->engine, (void *)(uintptr_t)plain);
    if (st == dnnl_success)
        st = dnnl_memory_create(&to, &T->md, net->engine, dst);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, &T->plain_md, net->engine, &T->md, net->engine,
                                                NULL);
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
    destroy_prim(r);
    destroy_mem(from);
    destroy_mem(to);
    net->weights_dirty = true;
    DN(st, "parameter import reorder");
    return DRSCH_OK;
}

drsch_status nn_tensor_to_plain(const nn_net *net, int32_t t, float *plain, drsch_error *err)
{
    const nn_tensor *T = &net->tensors[t];
    float *src = net->block + T->offset;
    if (dnnl_memory_desc_equal(&T->md, &T->plain_md)) {
        memcpy(plain, src, T->plain_count * sizeof(float));
        return DRSCH_OK;
    }
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_memory_create(&from, &T->md, net->engine, src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&to, &T->plain_md, net->engine, plain);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, &T->md, net->engine, &T->plain_md, net->engine,
                                                NULL);
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
    destroy_prim(r);
    destroy_mem(from);
    destroy_mem(to);
    DN(st, "parameter export reorder");
    return DRSCH_OK;
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
    if (n != nn_params_plain_size(net))
        return drsch_fail(err, DRSCH_ERR_ARG, "parameter export: %zu floats given, %zu needed", n,
                          nn_params_plain_size(net));
    for (int t = 0; t < net->n_tensors; t++) {
        TRY(nn_tensor_to_plain(net, t, plain, err));
        plain += net->tensors[t].plain_count;
    }
    return DRSCH_OK;
}

drsch_status nn_params_import(nn_net *net, const float *plain, size_t n, drsch_error *err)
{
    if (n != nn_params_plain_size(net))
        return drsch_fail(err, DRSCH_ERR_ARG, "parameter import: %zu floats given, %zu needed", n,
                          nn_params_plain_size(net));
    for (int t = 0; t < net->n_tensors; t++) {
        TRY(nn_tensor_from_plain(net, t, plain, err));
        plain += net->tensors[t].plain_count;
    }
    net->weights_dirty = true;
    return DRSCH_OK;
}

void nn_params_changed(nn_net *net) { net->weights_dirty = true; }

drsch_status nn_net_copy_params(nn_net *dst, const nn_net *src, drsch_error *err)
{
    if (dst->n_tensors != src->n_tensors || dst->cfg.bits != src->cfg.bits ||
        nn_params_plain_size(dst) != nn_params_plain_size(src))
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "copy parameters: networks differ ('%s' %d bits vs '%s' %d bits)",
                          src->cfg.arch.name, src->cfg.bits, dst->cfg.arch.name, dst->cfg.bits);
    size_t n = nn_params_plain_size(src);
    float *buf = malloc(n * sizeof(float) + 1);
    if (!buf)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    drsch_status s = nn_params_export(src, buf, n, err);
    if (s == DRSCH_OK)
        s = nn_params_import(dst, buf, n, err);
    free(buf);
    if (s == DRSCH_OK) {
        dst->hash_scale = src->hash_scale;
        memcpy(dst->bit_order, src->bit_order, sizeof(uint32_t) * (size_t)src->cfg.bits);
    }
    return s;
}

const float *nn_bit_weights(const nn_net *net)
{
    return net->bitw_layer >= 0 ? mem_ptr(net->layers[net->bitw_layer].w) : NULL;
}

void nn_flops(const nn_net *net, double *forward, double *backward)
{
    if (forward)
        *forward = net->flops_fwd;
    if (backward)
        *backward = net->flops_bwd;
}
