/* The layers' oneDNN primitives and memories, built once per shape from the layer table:
 * convolution, inner product, pooling, and the plain-C hash and bit-weight layers; each layer's
 * parameter tensors are registered here (their storage is allocated by nn_net.c).
 *
 * Layout policy (what a oneDNN probe of this network measured): every convolution and inner
 * product asks for format_tag_any, so oneDNN picks blocked layouts for training and nhwc
 * (brgconv) for inference, except that a training convolution with a small output asks for nhwc
 * where oneDNN has brgemm kernels for it (AVX-512), which ran faster (NHWC_MAX_OUT_PIXELS);
 * pooling takes its input's layout as is; a reorder is inserted only where a layer's chosen
 * layout differs from its producer's. ReLU is a post-op of the convolution; its backward is an
 * eltwise "use dst" primitive run in place. The backward-data weights layout is queried and,
 * where it differs, a reordered copy is refreshed after every parameter change. The hash and
 * bit-weight layers are plain C on N x B rows.
 *
 * bf16 inference (cfg.precision): convolutions and inner products get bf16 src and weights
 * (format_tag_any still), hidden activations are bf16, the inner product that feeds the hash
 * layer (or ends the net) writes f32, biases stay f32. The parameters stay f32 in the block, in
 * plain layout; each weight tensor has a bf16 copy in the forward primitive's layout, converted
 * by a reorder when the parameters change, never per forward pass. Where oneDNN runs AVX-512, the
 * layers on drsch's f32 loops stay there in bf16 nets: the first convolution with its pooling
 * (nn_stem.c, its weights f32) and the poolings nn_pool.c takes, whose producers then write f32
 * for them; the next layer's reorder converts their output to bf16. oneDNN 2.6 ran drsch-mnist's
 * one-channel conv1 on its older jit_bf16 kernel (no AMX) and its bf16 poolings slowly (pool1
 * longer than the convolution before it): on a 2-core Xeon with AMX (model 207) the bf16 encoder
 * ran 1.71-1.96x as fast this way (bench encode, batch 100, 2 threads, three rounds side by side),
 * drsch-cifar and drsch-reid (their conv1 of three channels on oneDNN, their poolings here)
 * within the noise (0.87-1.26x, medians 1.04x / 0.99x over nine rounds). A first convolution of
 * fewer than four input channels (theirs) stays f32 as well, on oneDNN's f32 kernel, its weights
 * kept as an f32 net keeps them (BF16_MIN_FIRST_CHANNELS): their bf16 encoders then ran 1.23-1.87x
 * (drsch-reid) and 1.49-1.87x (drsch-cifar) as fast (four rounds side by side, same machine). */
#include <stdio.h>
#include <string.h>

#include "nn_internal.h"

/* In bf16 nets, a first convolution of fewer input channels than this stays f32: oneDNN 2.6 has
 * no AMX kernel for it and its jit_bf16 kernel ran drsch-reid's conv1 (3 channels) at about 50
 * GFLOP/s (22.5 ms a batch of 100, against 8.7 ms for its f32 kernel; ONEDNN_VERBOSE=1, 2-core
 * Xeon with AMX, model 207), besides the input's conversion to bf16 (2.2 ms). */
#define BF16_MIN_FIRST_CHANNELS 4

/* Data type of the inputs and weights of layer i's convolution or inner product. */
static dnnl_data_type_t compute_dt(const nn_net *net, int i)
{
    if (net->cfg.precision != NN_PRECISION_BF16)
        return dnnl_f32;
    const nn_layer *L = &net->layers[i];
    if (i == 0 && L->spec.kind == NN_LAYER_CONV && L->in_c < BF16_MIN_FIRST_CHANNELS)
        return dnnl_f32;
    return dnnl_bf16;
}

/* Data type of convolution or inner product i's output: bf16 nets keep activations in bf16 while
 * the next layer is a convolution, pooling or inner product, except that a pooling on drsch's
 * loops (nn_pool.c, f32 only) gets f32 and a layer that computes in f32 (compute_dt) writes f32;
 * what reaches the hash layer or the net's output is f32. */
static dnnl_data_type_t dst_dt(const nn_net *net, int i)
{
    if (i + 1 >= net->n_layers)
        return dnnl_f32;
    nn_layer_kind next = net->layers[i + 1].spec.kind;
    if (next == NN_LAYER_HASH || next == NN_LAYER_BITW || nn_pool_own_shape_fits(net, i + 1))
        return dnnl_f32;
    return compute_dt(net, i); /* a layer that stays f32 in a bf16 net writes f32 */
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

bool nn_need_data_grad(const nn_net *net, int i)
{
    return net->cfg.training && (i > 0 || net->cfg.input_grad);
}

/* src: the layout the layer asked for; reorders in -> src (forward) and diff_src -> diff_in
 * (backward) when it differs from the producer's. */
static drsch_status bind_src(nn_net *net, int i, const dnnl_memory_desc_t *S, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const dnnl_memory_desc_t *in_md = nn_mem_md(L->in);
    if (dnnl_memory_desc_equal(in_md, S)) {
        L->src = L->in;
        L->diff_src = L->diff_in;
        return DRSCH_OK;
    }
    TRY(nn_new_mem(net, &L->src, S, DNNL_MEMORY_ALLOCATE, err));
    TRY(nn_make_reorder(net, in_md, S, &L->src_reorder, err));
    if (nn_need_data_grad(net, i)) {
        TRY(nn_new_mem(net, &L->diff_src, S, DNNL_MEMORY_ALLOCATE, err));
        TRY(nn_make_reorder(net, S, in_md, &L->diff_src_reorder, err));
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
    TRY(nn_make_prim(net, &fd, NULL, NULL, NULL, &hint, "relu hint", err));
    DN(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, D, D, 0.0f, 0.0f),
       "relu bwd desc");
    drsch_status s = nn_make_prim(net, &bd, NULL, hint, &L->relu_bwd, NULL, "relu backward", err);
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
    TRY(nn_new_mem(net, &L->dw, W, DNNL_MEMORY_NONE, err));
    if (!dnnl_memory_desc_equal(DW, W)) {
        TRY(nn_new_mem(net, &L->dw_tmp, DW, DNNL_MEMORY_ALLOCATE, err));
        TRY(nn_make_reorder(net, DW, W, &L->dw_reorder, err));
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
    TRY(nn_new_mem(net, &L->w_bwd, WB, DNNL_MEMORY_ALLOCATE, err));
    TRY(nn_make_reorder(net, W, WB, &L->w_bwd_reorder, err));
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
    TRY(nn_new_mem(net, &L->w, copy ? w_plain : W, DNNL_MEMORY_NONE, err));
    if (copy) {
        TRY(nn_new_mem(net, &L->w_fwd, W, DNNL_MEMORY_ALLOCATE, err));
        TRY(nn_make_reorder(net, w_plain, W, &L->w_fwd_reorder, err));
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

/* Training convolutions with small outputs run on oneDNN's brgemm kernels in nhwc. With
 * format_tag_any oneDNN 2.6 picks blocked layouts and its direct jit kernels for training, which
 * block over the output's width and run short rows poorly. Measured per convolution (forward,
 * backward data, backward weights, batch 100, 2-core Zen 5, AVX-512), nhwc against blocked:
 * drsch-mnist's 7x7 and 2x2 outputs took 4.3 against 4.6 ms and 2.4 against 3.2 ms (the 2x2 one
 * now runs as an inner product, build_conv_gemm), drsch-cifar's 8x8 4.4 against 4.8 ms; larger
 * outputs were slower in nhwc (cifar's 16x16 9.7 against 9.5 ms, drsch-reid's 20x8 20.4
 * against 19.8 ms and 40x15 48.7 against 46.9 ms), and so were inputs of 1 or 3 channels (reid's
 * first layer 12.7 against 7.2 ms), which fill no vector of channels. */
#define NHWC_MIN_IN_C 16
#define NHWC_MAX_OUT_PIXELS 64

/* Whether oneDNN computes this convolution with its brgemm kernels (impl "brg...") when source
 * and output are nhwc: it has them for AVX-512, not for AVX2, where nhwc ran no faster. A probe
 * only, like conv_bwd_weights_is_ref. */
static int conv_nhwc_is_brgemm(nn_net *net, const dnnl_convolution_desc_t *nhwc_desc)
{
    dnnl_primitive_desc_t fpd = NULL;
    if (dnnl_primitive_desc_create(&fpd, nhwc_desc, net->attr, net->engine, NULL) != dnnl_success)
        return 0;
    const char *name = NULL;
    int brg = dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &name) == dnnl_success &&
              name && !strncmp(name, "brg", 3);
    dnnl_primitive_desc_destroy(fpd);
    return brg;
}

/* In the layer builders: on a failure, go to their cleanup (done:) with s set. */
#define CK(x)                                                                                      \
    do {                                                                                           \
        s = (x);                                                                                   \
        if (s != DRSCH_OK)                                                                         \
            goto done;                                                                             \
    } while (0)

/* The backward primitives of layer i computed by the inner product fpd over source S and
 * output D (weights W, weight and bias descriptors w_any and b_x): the weight gradient, and the
 * input gradient when the layer needs one; `desc` and `prim` name them in errors ("fc",
 * "inner product"). */
static drsch_status build_ip_backward(nn_net *net, int i, const_dnnl_primitive_desc_t fpd,
                                      const dnnl_memory_desc_t *S, const dnnl_memory_desc_t *w_any,
                                      const dnnl_memory_desc_t *b_x, const dnnl_memory_desc_t *D,
                                      const dnnl_memory_desc_t *W, const char *desc,
                                      const char *prim, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    char what[96];
    dnnl_inner_product_desc_t wdsc;
    snprintf(what, sizeof what, "%s bwd weights desc", desc);
    DN(dnnl_inner_product_backward_weights_desc_init(&wdsc, S, w_any, b_x, D), what);
    dnnl_primitive_desc_t wpd = NULL;
    snprintf(what, sizeof what, "%s backward weights", prim);
    TRY(nn_make_prim(net, &wdsc, NULL, fpd, &L->bwd_weights, &wpd, what, err));
    drsch_status s = bind_dw(net, L, wpd, W, err);
    dnnl_primitive_desc_destroy(wpd);
    if (s != DRSCH_OK || !nn_need_data_grad(net, i))
        return s;
    dnnl_inner_product_desc_t ddsc;
    snprintf(what, sizeof what, "%s bwd data desc", desc);
    DN(dnnl_inner_product_backward_data_desc_init(&ddsc, S, w_any, D), what);
    dnnl_primitive_desc_t dpd = NULL;
    snprintf(what, sizeof what, "%s backward data", prim);
    TRY(nn_make_prim(net, &ddsc, NULL, fpd, &L->bwd_data, &dpd, what, err));
    s = bind_w_bwd(net, L, dpd, W, err);
    dnnl_primitive_desc_destroy(dpd);
    return s;
}

/* A convolution computed as an inner product over its unfolded input (nn_conv_as_gemm): oneDNN's
 * inner product (brgemm) over rows of N x OH x OW receptive fields of C x KH x KW values, its
 * weights the convolution's (OC, C, KH, KW) as (OC, C x KH x KW), so the parameters and model
 * files are the same (2-D: oneDNN 2.6 ran a 4-D source with 5x5 spatial dims on its slower gemm).
 * The forward pass unfolds the source into col (nn_forward.c), the backward pass sums diff_col
 * back into diff_src (nn_backward.c); the output is nhwc, the product's rows. drsch-mnist's
 * conv3 (6x6 input, 5x5 kernel, 2x2 output, 64 to 128 channels) ran its forward pass at 27% of the
 * f32 peak as a convolution in oneDNN's blocked layouts and 58% in nhwc, where oneDNN's inner
 * product over the same numbers ran at 91% (batch 100, 2-core Zen 5). The unfolding costs about
 * 0.2 ms a batch (2.56 MB of rows): with it, drsch-mnist's training step ran 3-5% faster than with
 * conv3 in nhwc, and encoding 0.4-2% (drsch bench train / encode, 2 threads, three rounds side by
 * side). f32 nets where oneDNN runs AVX-512 call its sgemm for the three products instead
 * (forward, input and weight gradients; bias and ReLU in C, nn_forward.c, nn_backward.c), over
 * an nhwc source and weights in ohwi (rows in (KH, KW, C) order, runs of KW x C values): for
 * conv3's 400 x 1600 x 128 at batch 100 it took 0.50, 0.42 and 0.47-0.56 ms where the inner
 * product's primitives took 0.75, 0.79 and 1.25 ms (2 threads; the weight gradient, a sum over only
 * 400 rows, ran at 30% of the f32 peak). Elsewhere, and in bf16 nets, the inner product stays,
 * over an nchw source: it was not measured slower there, and oneDNN's AVX2 sgemm reads 32 bytes
 * past its own packing buffers (valgrind memcheck, ci/valgrind, which caps oneDNN at AVX2). */
static drsch_status build_conv_gemm(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch, K = sp->kernel;
    const dnnl_dim_t M = (dnnl_dim_t)N * L->out_h * L->out_w;
    const dnnl_dim_t KC = (dnnl_dim_t)L->in_c * K * K;
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w}, cdm = {M, KC}, wd = {sp->out, KC},
                bdm = {sp->out}, d2 = {M, L->out_c}, dd = {N, L->out_c, L->out_h, L->out_w};
    const dnnl_data_type_t cdt = compute_dt(net, i), odt = dst_dt(net, i);
    dnnl_memory_desc_t S = nn_md_dt(4, sd, cdt, dnnl_nchw), C = nn_md_dt(2, cdm, cdt, dnnl_nc),
                       w_any = nn_md_dt(2, wd, cdt, dnnl_format_tag_any),
                       b_x = nn_md_tag(1, bdm, dnnl_x), D2 = nn_md_dt(2, d2, odt, dnnl_nc),
                       D = nn_md_dt(4, dd, odt, dnnl_nhwc);
    /* (OC, C x KH x KW) in plain order is the convolution's plain oihw (inner products) */
    dnnl_memory_desc_t w_plain = nn_md_tag(2, wd, dnnl_oi), W = w_plain;
    dnnl_primitive_desc_t fpd = NULL;
    drsch_status s = DRSCH_OK;
    L->sgemm = cdt == dnnl_f32 && nn_onednn_avx512();
    if (L->sgemm) {
        /* the source as its producer leaves it (nhwc), so the rows unfold it in (KH, KW, C)
         * order: contiguous runs of KW x C values, and weights in ohwi to match */
        dnnl_dims_t w4 = {sp->out, L->in_c, K, K};
        S = nn_md_dt(4, sd, cdt, dnnl_nhwc);
        W = nn_md_tag(4, w4, dnnl_ohwi);
        w_plain = nn_md_tag(4, w4, dnnl_oihw);
        L->sgemm_grouped = nn_direct_group_fits(net, L);
        snprintf(L->impl, sizeof L->impl, L->sgemm_grouped ? "direct:avx512+sgemm" : "sgemm");
    } else {
        dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;
        dnnl_inner_product_desc_t ipd;
        DN(dnnl_inner_product_forward_desc_init(&ipd, prop, &C, &w_any, &b_x, &D2),
           "conv gemm desc");
        dnnl_primitive_attr_t attr = NULL;
        if (sp->relu)
            TRY(relu_attr(net, &attr, err));
        s = nn_make_prim(net, &ipd, attr, NULL, &L->fwd, &fpd, "convolution (gemm) forward", err);
        if (attr)
            dnnl_primitive_attr_destroy(attr);
        TRY(s);
        note_impl(L, fpd);
        W = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    }
    CK(bind_weights(net, i, &W, &w_plain, (size_t)sp->out * (size_t)KC, err));
    if (L->sgemm) {
        /* the forward product's right-hand side as it is, (KH x KW x C) x OC: a copy of the
         * weights in hwio, transposed again when they change (nn_net_refresh_weights). Over ohwi,
         * transposed by sgemm, drsch-mnist's conv3 took 0.66 ms in a training step (batch 100, 2
         * threads, 2-core Zen 5), over the copy 0.54 ms. The gradients' products stay over ohwi:
         * over hwio they measured 0.03-0.04 ms slower each. */
        dnnl_dims_t w4 = {sp->out, L->in_c, K, K};
        const dnnl_memory_desc_t WF = nn_md_tag(4, w4, dnnl_hwio);
        CK(nn_new_mem(net, &L->w_fwd, &WF, DNNL_MEMORY_ALLOCATE, err));
    }
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)sp->out);
    CK(nn_new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    CK(nn_new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    CK(nn_new_mem(net, &L->dst2d, &D2, nn_mem_ptr(L->dst), err));
    /* inference on the grouped direct loops reads the source itself: no rows to unfold into */
    if (net->cfg.training || !L->sgemm_grouped)
        CK(nn_new_mem(net, &L->col, &C, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(nn_new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
        CK(nn_new_mem(net, &L->diff_dst2d, &D2, nn_mem_ptr(L->diff_dst), err));
        CK(nn_new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
        if (sp->relu)
            CK(build_relu_bwd(net, L, &D, err));
        if (L->sgemm) {
            CK(nn_new_mem(net, &L->dw, &W, DNNL_MEMORY_NONE, err));
            L->w_bwd = L->w;
        } else {
            CK(build_ip_backward(net, i, fpd, &C, &w_any, &b_x, &D2, &W, "conv gemm",
                                 "convolution (gemm)", err));
        }
        if (nn_need_data_grad(net, i))
            CK(nn_new_mem(net, &L->diff_col, &C, DNNL_MEMORY_ALLOCATE, err));
    }
done:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    return s;
}

/* What a convolution on drsch's own loops (nn_direct.c, nn_stem.c) binds: weights hwio
 * ([KH][KW][IC][OC]) in the parameter block, the bias, the source as S, the output in the layout
 * out_tag (and in training its gradient), with memory when out_memory, else the descriptor alone;
 * in training the weight and bias gradients. */
static drsch_status bind_own_conv(nn_net *net, int i, const dnnl_memory_desc_t *S,
                                  dnnl_format_tag_t out_tag, bool out_memory, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    dnnl_dims_t wd = {sp->out, L->in_c, sp->kernel, sp->kernel}, bdm = {sp->out},
                dd = {net->cfg.batch, L->out_c, L->out_h, L->out_w};
    const dnnl_memory_desc_t W = nn_md_tag(4, wd, dnnl_hwio), w_plain = nn_md_tag(4, wd, dnnl_oihw),
                             b_x = nn_md_tag(1, bdm, dnnl_x), D = nn_md_tag(4, dd, out_tag);
    void *const out = out_memory ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE;
    TRY(bind_weights(net, i, &W, &w_plain, (size_t)sp->out * L->in_c * sp->kernel * sp->kernel,
                     err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)sp->out);
    TRY(nn_new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    TRY(nn_new_mem(net, &L->dst, &D, out, err));
    TRY(bind_src(net, i, S, err));
    if (!net->cfg.training)
        return DRSCH_OK;
    TRY(nn_new_mem(net, &L->diff_dst, &D, out, err));
    TRY(nn_new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
    return nn_new_mem(net, &L->dw, &W, DNNL_MEMORY_NONE, err);
}

/* A convolution computed by drsch's AVX-512 loops (nn_direct.c): nhwc (or nChw16c) source, nhwc
 * output, weights hwio in the parameter block, for the input gradient a copy in [KW][KH][OC][IC]
 * (oneDNN's dcab) refreshed when the parameters change; the ReLU's gradient by oneDNN's eltwise
 * primitive. */
static drsch_status build_conv_direct(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    dnnl_dims_t sd = {net->cfg.batch, L->in_c, L->in_h, L->in_w},
                wd = {sp->out, L->in_c, sp->kernel, sp->kernel},
                dd = {net->cfg.batch, L->out_c, L->out_h, L->out_w};
    dnnl_memory_desc_t S = nn_md_tag(4, sd, dnnl_nhwc);
    /* the source as its producer leaves it when that is nChw16c (oneDNN's blocked training
     * layers), else nhwc */
    const dnnl_memory_desc_t S16 = nn_md_tag(4, sd, dnnl_aBcd16b);
    if (dnnl_memory_desc_equal(nn_mem_md(L->in), &S16)) {
        S = S16;
        L->direct_src16 = true;
    }
    L->direct = true;
    snprintf(L->impl, sizeof L->impl,
             L->direct_grouped ? "direct:avx512+grouped" : "direct:avx512");
    TRY(bind_own_conv(net, i, &S, dnnl_nhwc, true, err));
    if (!net->cfg.training)
        return DRSCH_OK;
    if (sp->relu) {
        const dnnl_memory_desc_t D = nn_md_tag(4, dd, dnnl_nhwc);
        TRY(build_relu_bwd(net, L, &D, err));
    }
    if (nn_need_data_grad(net, i)) {
        /* [KW][KH][OC][IC], transposed from w by nn_net_refresh_weights */
        const dnnl_memory_desc_t WB = nn_md_tag(4, wd, dnnl_dcab);
        TRY(nn_new_mem(net, &L->w_bwd, &WB, DNNL_MEMORY_ALLOCATE, err));
    }
    return DRSCH_OK;
}

/* The first convolution on drsch's loops, with the pooling after it (nn_stem.c, nn_stem_rgb.c):
 * the net's input (nchw) as the source, weights hwio ([KH][KW][IC][OC]), an output with no
 * memory (its descriptor tells the pooling its layout; the passes pool it in registers or on the
 * stack): nhwc before an average pooling; nChw16c before a max pooling (drsch-reid's), so that
 * the pooled output is in the layout oneDNN's blocked convolution after it reads, as oneDNN's
 * conv1 had left it. The pooling layer, built next as an own one, is marked as computed here. In
 * training the mask, a bit per output value (the ReLU's), or before a max pooling a byte per
 * pooled value (where the window's gradient goes, with or without a ReLU), and the weight
 * gradient's sums per group of images. */
static drsch_status build_conv_stem(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const bool max = net->layers[i + 1].spec.kind == NN_LAYER_POOL_MAX;
    dnnl_dims_t sd = {net->cfg.batch, L->in_c, L->in_h, L->in_w};
    const dnnl_memory_desc_t S = nn_md_tag(4, sd, dnnl_nchw);
    L->stem = true;
    net->layers[i + 1].pool_fused = true;
    snprintf(L->impl, sizeof L->impl, "drsch:stem");
    TRY(bind_own_conv(net, i, &S, max ? dnnl_aBcd16b : dnnl_nhwc, false, err));
    if (!net->cfg.training)
        return DRSCH_OK;
    const int32_t groups = (net->cfg.batch + NN_STEM_GROUP - 1) / NN_STEM_GROUP;
    /* the mask: a bit per output value, or before a max pooling a byte per pooled value (the
     * window's way in, nn_stem_rgb.c) */
    dnnl_dims_t pd = {groups, (dnnl_dim_t)(sp->kernel * sp->kernel * L->in_c + 1) * sp->out},
                md = {net->cfg.batch, max ? (dnnl_dim_t)(L->out_h / 2) * (L->out_w / 2) * L->out_c
                                          : (dnnl_dim_t)L->out_h * L->out_w * L->out_c / 8};
    const dnnl_memory_desc_t PD = nn_md_tag(2, pd, dnnl_nc), MD = nn_md_dt(2, md, dnnl_u8, dnnl_nc);
    TRY(nn_new_mem(net, &L->stem_part, &PD, DNNL_MEMORY_ALLOCATE, err));
    if (sp->relu || max)
        TRY(nn_new_mem(net, &L->relu_mask, &MD, DNNL_MEMORY_ALLOCATE, err));
    return DRSCH_OK;
}

static drsch_status build_conv(nn_net *net, int i, drsch_error *err)
{
    if (nn_stem_fits(net, i))
        return build_conv_stem(net, i, err);
    if (nn_conv_as_gemm(&net->layers[i])) {
        /* A training net's convolution of a 2 x 2 output that both the grouped forward loops
         * and the direct gradients take (drsch-mnist's conv3) runs wholly on drsch's loops: no
         * unfolded source, no sgemm, no col2im (nn_direct.c, L->direct_grouped). Inference nets
         * keep the sgemm layer, whose forward pass the chain computes with the same loops. */
        nn_layer *L = &net->layers[i];
        if (net->cfg.training && nn_direct_group_fits(net, L) && nn_direct_fits(net, L)) {
            L->direct_grouped = true;
            TRY(build_conv_direct(net, i, err));
            /* an own pooling before it whose gradient it writes: that pooling's backward pass
             * computed with the input gradient, a group of images at a time (drsch-mnist's
             * pool2) */
            nn_layer *P = i > 0 ? &net->layers[i - 1] : NULL;
            if (P && P->pool_own && !P->pool_fused && nn_need_data_grad(net, i - 1) &&
                L->diff_src == P->diff_dst && !L->diff_src_reorder)
                P->pool_bwd_by_next = true;
            return DRSCH_OK;
        }
        return build_conv_gemm(net, i, err);
    }
    if (nn_direct_fits(net, &net->layers[i]))
        return build_conv_direct(net, i, err);

    nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch;
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w},
                wd = {sp->out, L->in_c, sp->kernel, sp->kernel};
    dnnl_dims_t bdm = {sp->out}, dd = {N, L->out_c, L->out_h, L->out_w};
    dnnl_dims_t strides = {sp->stride, sp->stride}, pad = {sp->pad, sp->pad};
    const dnnl_data_type_t cdt = compute_dt(net, i);
    dnnl_memory_desc_t s_any = nn_md_dt(4, sd, cdt, dnnl_format_tag_any),
                       w_any = nn_md_dt(4, wd, cdt, dnnl_format_tag_any);
    dnnl_memory_desc_t b_x = nn_md_tag(1, bdm, dnnl_x),
                       d_any = nn_md_dt(4, dd, dst_dt(net, i), dnnl_format_tag_any);
    dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;

    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &s_any, &w_any, &b_x,
                                          &d_any, strides, pad, pad),
       "conv desc");
    if (net->cfg.training && cdt == dnnl_f32 &&
        conv_bwd_weights_is_ref(net, &cd, &w_any, &b_x, strides, pad)) {
        s_any = nn_md_dt(4, sd, cdt, dnnl_nchw);
        d_any = nn_md_dt(4, dd, dst_dt(net, i), dnnl_nchw);
        DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &s_any, &w_any,
                                              &b_x, &d_any, strides, pad, pad),
           "conv desc");
    }
    /* Encoding: a source of fewer channels than fill a vector stays nchw. With format_tag_any
     * oneDNN 2.6 picks nhwc and its brgemm kernel for inference, which ran drsch-mnist's conv1 at
     * 0.57-0.62 ms a batch against 0.20 ms for the direct jit kernel over nchw (blocked output,
     * as training picks; its pooling 0.23 -> 0.10 ms, then a 0.08 ms reorder to conv2's nhwc,
     * which conv2 on nn_direct.c no longer needs),
     * and drsch-reid's input took a 9.5 ms reorder to nhwc (1 thread, batch 100, Zen 5). drsch
     * bench encode, side by side: drsch-mnist +5% at 1 thread, +1% at 2, +20% in bf16;
     * drsch-cifar +5% / +8%; drsch-reid +4% / +4%. */
    if (!net->cfg.training && L->in_c < NHWC_MIN_IN_C) {
        s_any = nn_md_dt(4, sd, cdt, dnnl_nchw);
        DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &s_any, &w_any,
                                              &b_x, &d_any, strides, pad, pad),
           "conv desc");
    }
    if (net->cfg.training && cdt == dnnl_f32 && L->in_c >= NHWC_MIN_IN_C &&
        L->out_h * L->out_w <= NHWC_MAX_OUT_PIXELS) {
        dnnl_memory_desc_t s_nhwc = nn_md_dt(4, sd, cdt, dnnl_nhwc),
                           d_nhwc = nn_md_dt(4, dd, dst_dt(net, i), dnnl_nhwc);
        dnnl_convolution_desc_t nd;
        if (dnnl_convolution_forward_desc_init(&nd, prop, dnnl_convolution_direct, &s_nhwc, &w_any,
                                               &b_x, &d_nhwc, strides, pad, pad) == dnnl_success &&
            conv_nhwc_is_brgemm(net, &nd))
            cd = nd;
    }
    dnnl_primitive_attr_t attr = NULL;
    if (sp->relu)
        TRY(relu_attr(net, &attr, err));
    dnnl_primitive_desc_t fpd = NULL;
    drsch_status s = nn_make_prim(net, &cd, attr, NULL, &L->fwd, &fpd, "convolution forward", err);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    TRY(s);
    note_impl(L, fpd);
    dnnl_memory_desc_t S = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t W = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t D = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t w_plain = nn_md_tag(4, wd, dnnl_oihw);
    size_t wn = (size_t)sp->out * L->in_c * sp->kernel * sp->kernel;
    s = DRSCH_OK;
    CK(bind_weights(net, i, &W, &w_plain, wn, err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)sp->out);
    CK(nn_new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    CK(nn_new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(nn_new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
        CK(nn_new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
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
        CK(nn_make_prim(net, &wdsc, NULL, fpd, &L->bwd_weights, &wpd,
                        "convolution backward weights", err));
        s = bind_dw(net, L, wpd, &W, err);
        dnnl_primitive_desc_destroy(wpd);
        if (s != DRSCH_OK)
            goto done;
        if (nn_need_data_grad(net, i)) {
            dnnl_convolution_desc_t ddsc;
            st = dnnl_convolution_backward_data_desc_init(&ddsc, dnnl_convolution_direct, &S,
                                                          &w_any, &D, strides, pad, pad);
            if (st != dnnl_success) {
                s = nn_dnnl_fail(err, st, "conv bwd data desc");
                goto done;
            }
            dnnl_primitive_desc_t dpd = NULL;
            CK(nn_make_prim(net, &ddsc, NULL, fpd, &L->bwd_data, &dpd, "convolution backward data",
                            err));
            s = bind_w_bwd(net, L, dpd, &W, err);
            dnnl_primitive_desc_destroy(dpd);
        }
    }
done:
    dnnl_primitive_desc_destroy(fpd);
    return s;
}

/* A fully connected layer on drsch's AVX-512 loops (nn_fc.c, nn_fc_fits): weights oi (oihw
 * after a 4-D source) in the parameter block (the inner product's plain layout, which model
 * files keep), output nc, the ReLU's gradient applied by nn_fc_backward. A source of one value
 * per channel is nc or n x c x 1 x 1 (nhwc and nchw lay it out alike), and the forward pass
 * reads a copy of the weights in io (w_fwd, refreshed when the parameters change). A deep
 * source (nn_fc_deep) is read in nchw, the order of the weights' rows, so that every pass reads
 * the plain weights: its 2 MB a batch of 100 reordered from the layer before (drsch-reid's fc1)
 * where a copy of the weights would be 10 MB. */
static drsch_status build_fc_own(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    const int32_t N = net->cfg.batch;
    const int nd = L->in_4d ? 4 : 2;
    const bool deep = nn_fc_deep(L);
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w}, wd = {L->out_c, L->in_c, L->in_h, L->in_w},
                wd2 = {L->out_c, L->in_c}, bdm = {L->out_c}, dd = {N, L->out_c};
    /* the weights' plain layout as the inner product's (model files keep it) */
    const dnnl_memory_desc_t S = nn_md_tag(nd, sd,
                                           nd == 2 ? dnnl_nc
                                           : deep  ? dnnl_nchw
                                                   : dnnl_nhwc),
                             W = nn_md_tag(nd, wd, nd == 4 ? dnnl_oihw : dnnl_oi),
                             WF = nn_md_tag(2, wd2, dnnl_io), b_x = nn_md_tag(1, bdm, dnnl_x),
                             D = nn_md_tag(2, dd, dnnl_nc);
    L->fc_own = true;
    snprintf(L->impl, sizeof L->impl, "drsch:fc");
    TRY(bind_weights(net, i, &W, &W, (size_t)L->out_c * (size_t)nn_gemm_depth(L), err));
    if (!deep)
        TRY(nn_new_mem(net, &L->w_fwd, &WF, DNNL_MEMORY_ALLOCATE, err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)L->out_c);
    TRY(nn_new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    TRY(nn_new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    TRY(bind_src(net, i, &S, err));
    if (!net->cfg.training)
        return DRSCH_OK;
    TRY(nn_new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
    TRY(nn_new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
    TRY(nn_new_mem(net, &L->dw, &W, DNNL_MEMORY_NONE, err));
    L->w_bwd = L->w;
    return DRSCH_OK;
}

static drsch_status build_fc(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    if (nn_fc_fits(net, L))
        return build_fc_own(net, i, err);
    const nn_layer_spec *sp = &L->spec;
    const int32_t N = net->cfg.batch;
    const int nd = L->in_4d ? 4 : 2;
    dnnl_dims_t sd = {N, L->in_c, L->in_h, L->in_w}, wd = {L->out_c, L->in_c, L->in_h, L->in_w};
    if (!L->in_4d) {
        sd[1] = L->in_c;
        wd[1] = L->in_c;
    }
    dnnl_dims_t bdm = {L->out_c}, dd = {N, L->out_c};
    const dnnl_data_type_t cdt = compute_dt(net, i);
    dnnl_memory_desc_t s_any = nn_md_dt(nd, sd, cdt, dnnl_format_tag_any),
                       w_any = nn_md_dt(nd, wd, cdt, dnnl_format_tag_any);
    dnnl_memory_desc_t b_x = nn_md_tag(1, bdm, dnnl_x),
                       d_nc = nn_md_dt(2, dd, dst_dt(net, i), dnnl_nc);
    dnnl_prop_kind_t prop = net->cfg.training ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_inner_product_desc_t ipd;
    DN(dnnl_inner_product_forward_desc_init(&ipd, prop, &s_any, &w_any, &b_x, &d_nc), "fc desc");
    dnnl_primitive_attr_t attr = NULL;
    if (sp->relu)
        TRY(relu_attr(net, &attr, err));
    dnnl_primitive_desc_t fpd = NULL;
    drsch_status s =
        nn_make_prim(net, &ipd, attr, NULL, &L->fwd, &fpd, "inner product forward", err);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    TRY(s);
    note_impl(L, fpd);
    dnnl_memory_desc_t S = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t W = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t w_plain = nn_md_tag(nd, wd, nd == 4 ? dnnl_oihw : dnnl_oi);
    CK(bind_weights(net, i, &W, &w_plain, (size_t)L->out_c * L->in_c * L->in_h * L->in_w, err));
    L->p_b = add_tensor(net, i, 1, &b_x, &b_x, (size_t)L->out_c);
    CK(nn_new_mem(net, &L->b, &b_x, DNNL_MEMORY_NONE, err));
    CK(nn_new_mem(net, &L->dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(nn_new_mem(net, &L->diff_dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
        CK(nn_new_mem(net, &L->db, &b_x, DNNL_MEMORY_NONE, err));
        if (sp->relu)
            CK(build_relu_bwd(net, L, &d_nc, err));
        CK(build_ip_backward(net, i, fpd, &S, &w_any, &b_x, &d_nc, &W, "fc", "inner product", err));
    }
done:
    dnnl_primitive_desc_destroy(fpd);
    return s;
}

/* An average pooling or a max pooling on drsch's loops (nn_pool.c): output in its source's
 * layout, and, when the layer before has a ReLU, that ReLU's gradient in the pooling's backward
 * pass. */
static drsch_status build_pool_own(nn_net *net, int i, drsch_error *err)
{
    nn_layer *L = &net->layers[i];
    dnnl_memory_desc_t D;
    nn_pool_layout(net, i, &D, &L->pool_blocked);
    L->p_w = L->p_b = -1;
    L->pool_own = true;
    const bool max = L->spec.kind == NN_LAYER_POOL_MAX;
    snprintf(L->impl, sizeof L->impl, "%s",
             max && L->pool_fused ? "drsch:max+stem"
             : max                ? "drsch:max"
             : L->pool_fused      ? "drsch:avg+stem"
                                  : "drsch:avg");
    TRY(nn_new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    TRY(bind_src(net, i, nn_mem_md(L->in), err));
    if (!net->cfg.training)
        return DRSCH_OK;
    TRY(nn_new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
    nn_layer *C = i > 0 ? &net->layers[i - 1] : NULL;
    if (C && C->relu_bwd && nn_need_data_grad(net, i))
        C->relu_in_next = true;
    /* after a direct convolution (nhwc output): computed with it, two images at a time
     * (nn_direct_forward_pooled), with its ReLU's mask in place of its output */
    if (C && C->direct && !C->direct_grouped && !max && !L->pool_blocked && !L->pool_fused &&
        (C->relu_in_next || !C->spec.relu) &&
        (size_t)C->out_h * C->out_w * C->out_c <= NN_DIRECT_POOL_PLANE &&
        (size_t)C->out_h * C->out_w * C->out_c % 16 == 0) {
        L->pool_by_direct = true;
        snprintf(L->impl, sizeof L->impl, "drsch:avg+direct");
        if (C->spec.relu) {
            dnnl_dims_t md = {net->cfg.batch, (dnnl_dim_t)C->out_h * C->out_w * C->out_c / 8};
            const dnnl_memory_desc_t MD = nn_md_dt(2, md, dnnl_u8, dnnl_nc);
            TRY(nn_new_mem(net, &C->relu_mask, &MD, DNNL_MEMORY_ALLOCATE, err));
        }
    }
    return DRSCH_OK;
}

static drsch_status build_pool(nn_net *net, int i, drsch_error *err)
{
    if (nn_pool_fits(net, i))
        return build_pool_own(net, i, err);
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
    dnnl_memory_desc_t S = *nn_mem_md(L->in),
                       d_any = nn_md_dt(4, dd, S.data_type, dnnl_format_tag_any);
    if (S.ndims != 4)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "layer %d: pooling needs a 4-D input (after conv or pool)", i);
    dnnl_pooling_desc_t pd;
    DN(dnnl_pooling_forward_desc_init(&pd, prop, alg, &S, &d_any, strides, kernel, pad_l, pad_r),
       "pool desc");
    dnnl_primitive_desc_t fpd = NULL;
    TRY(nn_make_prim(net, &pd, NULL, NULL, &L->fwd, &fpd, "pooling forward", err));
    note_impl(L, fpd);
    dnnl_memory_desc_t D = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    L->p_w = L->p_b = -1;
    drsch_status s = DRSCH_OK;
    CK(nn_new_mem(net, &L->dst, &D, DNNL_MEMORY_ALLOCATE, err));
    if (ws && dnnl_memory_desc_get_size(ws) > 0)
        CK(nn_new_mem(net, &L->ws, ws, DNNL_MEMORY_ALLOCATE, err));
    CK(bind_src(net, i, &S, err));
    if (net->cfg.training) {
        CK(nn_new_mem(net, &L->diff_dst, &D, DNNL_MEMORY_ALLOCATE, err));
        if (nn_need_data_grad(net, i)) {
            dnnl_pooling_desc_t bd;
            dnnl_status_t st =
                dnnl_pooling_backward_desc_init(&bd, alg, &S, &D, strides, kernel, pad_l, pad_r);
            if (st != dnnl_success) {
                s = nn_dnnl_fail(err, st, "pool bwd desc");
                goto done;
            }
            CK(nn_make_prim(net, &bd, NULL, fpd, &L->bwd_data, NULL, "pooling backward", err));
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
    const dnnl_memory_desc_t *in_md = nn_mem_md(L->in);
    dnnl_dims_t dd = {net->cfg.batch, L->out_c};
    dnnl_memory_desc_t d_nc = nn_md_tag(2, dd, dnnl_nc);
    if (!dnnl_memory_desc_equal(in_md, &d_nc))
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "layer %d: hash / bit-weight layers must follow an fc layer", i);
    snprintf(L->impl, sizeof L->impl, "drsch");
    L->p_w = L->p_b = -1;
    L->src = L->in;
    L->diff_src = L->diff_in;
    TRY(nn_new_mem(net, &L->dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    if (net->cfg.training)
        TRY(nn_new_mem(net, &L->diff_dst, &d_nc, DNNL_MEMORY_ALLOCATE, err));
    if (L->spec.kind == NN_LAYER_BITW) {
        dnnl_dims_t bd = {L->out_c};
        dnnl_memory_desc_t x = nn_md_tag(1, bd, dnnl_x);
        L->p_w = add_tensor(net, i, 0, &x, &x, (size_t)L->out_c);
        TRY(nn_new_mem(net, &L->w, &x, DNNL_MEMORY_NONE, err));
        if (net->cfg.training)
            TRY(nn_new_mem(net, &L->dw, &x, DNNL_MEMORY_NONE, err));
    }
    return DRSCH_OK;
}

/* Every layer's primitives, each reading the previous layer's output. */
drsch_status nn_build_layers(nn_net *net, drsch_error *err)
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
