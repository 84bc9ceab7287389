/* The backward pass: d loss / d output (and, for the hash layer, an extra gradient on its
 * outputs) through every layer in reverse, into the parameter gradients of the block and, when
 * asked for, the input gradient. */
#include <string.h>

#include "nn_internal.h"

/* The input gradient of a convolution computed as a product over its unfolded input: each
 * receptive field's gradient (diff_col, laid out as the unfolding's rows) summed back into
 * diff_src, taps on padding dropped. Rows are C x KH x KW over an nchw diff_src (the inner
 * product's unfolding), or KH x KW x C over an nhwc one (sgemm's, L->sgemm: runs of KW x C
 * values). One thread per image, so no two threads add to one value; each value receives the
 * receptive fields in pixel order. */
static void col2im(const nn_net *net, const nn_layer *L)
{
    const int32_t K = L->spec.kernel, S = L->spec.stride, P = L->spec.pad, C = L->in_c;
    const int32_t OH = L->out_h, OW = L->out_w, IH = L->in_h, IW = L->in_w;
    const float *dcol = nn_mem_ptr(L->diff_col);
    float *dsrc = nn_mem_ptr(L->diff_src);
    const int32_t N = net->cfg.batch;
    const bool nhwc = L->sgemm;
#pragma omp parallel for schedule(static)
    for (int32_t n = 0; n < N; n++) {
        float *img = dsrc + (size_t)n * C * IH * IW;
        memset(img, 0, (size_t)C * IH * IW * sizeof(float));
        for (int32_t oy = 0; oy < OH; oy++)
            for (int32_t ox = 0; ox < OW; ox++) {
                const float *g =
                    dcol + (((size_t)n * OH + (size_t)oy) * OW + (size_t)ox) * (size_t)C * K * K;
                const int32_t ix0 = ox * S - P;
                const int32_t lo = ix0 < 0 ? -ix0 : 0, hi = ix0 + K > IW ? IW - ix0 : K;
                for (int32_t ky = 0; ky < K && lo < hi; ky++) {
                    const int32_t iy = oy * S - P + ky;
                    if (iy < 0 || iy >= IH)
                        continue;
                    if (nhwc) {
                        float *dst = img + ((size_t)iy * IW + (size_t)(ix0 + lo)) * C;
                        const float *src = g + ((size_t)ky * K + (size_t)lo) * C;
                        const size_t len = (size_t)(hi - lo) * C;
                        for (size_t k = 0; k < len; k++)
                            dst[k] += src[k];
                        continue;
                    }
                    for (int32_t c = 0; c < C; c++) {
                        float *row = img + ((size_t)c * IH + (size_t)iy) * IW;
                        const float *gc = g + ((size_t)c * K + (size_t)ky) * K;
                        for (int32_t kx = lo; kx < hi; kx++)
                            row[ix0 + kx] += gc[kx];
                    }
                }
            }
    }
}

/* Layer L's gradients by sgemm (L->sgemm), from the gradient at its output after the ReLU's
 * (dY, M x OC): the weights' dY^T x col, the bias's column sums of dY (rows in order), and,
 * when asked for, the unfolded input's dY x W. */
static drsch_status sgemm_backward(const nn_net *net, const nn_layer *L, bool data,
                                   drsch_error *err)
{
    const dnnl_dim_t OC = L->out_c, M = (dnnl_dim_t)net->cfg.batch * L->out_h * L->out_w,
                     KC = nn_gemm_depth(L);
    const float *dy = nn_mem_ptr(L->diff_dst), *col = nn_mem_ptr(L->col), *w = nn_mem_ptr(L->w);
    float *dw = nn_mem_ptr(L->dw), *db = nn_mem_ptr(L->db);
    DN(dnnl_sgemm('T', 'N', OC, KC, M, 1.0f, dy, OC, col, KC, 0.0f, dw, KC),
       "sgemm weight gradient");
    /* each channel's sum over the rows in order, a block of 16 channels per thread at a time */
#pragma omp parallel for schedule(static) if (M * OC >= 8192)
    for (dnnl_dim_t c0 = 0; c0 < OC; c0 += 16) {
        const dnnl_dim_t c1 = c0 + 16 < OC ? c0 + 16 : OC;
        for (dnnl_dim_t c = c0; c < c1; c++)
            db[c] = 0.0f;
        for (dnnl_dim_t r = 0; r < M; r++)
            for (dnnl_dim_t c = c0; c < c1; c++)
                db[c] += dy[r * OC + c];
    }
    if (data)
        DN(dnnl_sgemm('N', 'N', M, KC, OC, 1.0f, dy, OC, w, KC, 0.0f, nn_mem_ptr(L->diff_col), KC),
           "sgemm input gradient");
    return DRSCH_OK;
}

static void hash_backward(const nn_net *net, const nn_layer *L, const float *du)
{
    const float *y = nn_mem_ptr(L->dst);
    float *dy = nn_mem_ptr(L->diff_dst), *dx = nn_mem_ptr(L->diff_src);
    const float half_s = 0.5f * net->hash_scale;
    const size_t n = (size_t)net->cfg.batch * L->out_c;
    for (size_t k = 0; k < n; k++) {
        float g = dy[k] + (du ? du[k] : 0.0f);
        dx[k] = g * half_s * (1.0f - y[k] * y[k]);
    }
}

static void bitw_backward(const nn_net *net, const nn_layer *L)
{
    const float *x = nn_mem_ptr(L->src), *w = nn_mem_ptr(L->w), *dy = nn_mem_ptr(L->diff_dst);
    float *dw = nn_mem_ptr(L->dw), *dx = nn_mem_ptr(L->diff_src);
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

drsch_status nn_backward(nn_net *net, const float *dy, const float *du, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "backward pass: the network was created for inference, not training");
    if (!dy)
        return drsch_fail(err, DRSCH_ERR_ARG, "backward pass: no output gradient given");
    double t = net->timing ? nn_clock() : 0;
    if (net->weights_dirty) {
        TRY(nn_net_refresh_weights(net, err));
        nn_lap(net, &net->times.refresh_s, &t);
    }
    nn_layer *last = &net->layers[net->n_layers - 1];
    if (net->dy_reorder) {
        DN(dnnl_memory_set_data_handle(net->dy_mem, (void *)(uintptr_t)dy), "dy handle");
        TRY(nn_run_reorder(net, net->dy_reorder, net->dy_mem, last->diff_dst, err));
        DN(dnnl_stream_wait(net->stream), "stream wait");
    } else {
        memcpy(nn_mem_ptr(last->diff_dst), dy,
               dnnl_memory_desc_get_size(nn_mem_md(last->diff_dst)));
    }
    dnnl_exec_arg_t a[8];
    for (int i = net->n_layers - 1; i >= 0; i--) {
        nn_layer *L = &net->layers[i];
        const bool data = nn_need_data_grad(net, i);
        switch (L->spec.kind) {
        case NN_LAYER_CONV:
        case NN_LAYER_FC:
            if (L->relu_bwd && !L->relu_in_next) {
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
                a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->diff_dst};
                TRY(nn_exec(net, L->relu_bwd, 3, a, err));
            }
            if (L->stem) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_stem_backward(net, L, &net->layers[i + 1]);
                break;
            }
            if (L->direct) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_direct_backward_weights(net, L);
                if (data)
                    nn_direct_backward_data(
                        net, L,
                        i > 0 && net->layers[i - 1].pool_bwd_by_next ? &net->layers[i - 1] : NULL);
                break;
            }
            if (L->fc_own) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_fc_backward(net, L, data);
                break;
            }
            if (L->sgemm) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                TRY(sgemm_backward(net, L, data, err));
                if (data)
                    col2im(net, L);
                break;
            }
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->col ? L->col : L->src};
            a[1] =
                (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst2d ? L->diff_dst2d : L->diff_dst};
            a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, L->dw_tmp ? L->dw_tmp : L->dw};
            a[3] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, L->db};
            TRY(nn_exec(net, L->bwd_weights, 4, a, err));
            if (L->dw_reorder)
                TRY(nn_run_reorder(net, L->dw_reorder, L->dw_tmp, L->dw, err));
            if (data) {
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST,
                                         L->diff_dst2d ? L->diff_dst2d : L->diff_dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, L->w_bwd};
                a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->col ? L->diff_col : L->diff_src};
                TRY(nn_exec(net, L->bwd_data, 3, a, err));
                if (L->col) {
                    DN(dnnl_stream_wait(net->stream), "stream wait");
                    col2im(net, L);
                }
            }
            break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG:
            if (L->pool_fused) /* with the convolution before it */
                break;
            if (L->pool_bwd_by_next) /* with the input gradient of the convolution after it */
                break;
            if (data && L->pool_own) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                const float *relu_dst;
                const uint16_t *relu_bits;
                nn_pool_relu_of(net, L, &relu_dst, &relu_bits);
                nn_pool_backward(net, L, relu_dst, relu_bits);
            } else if (data) {
                int na = 2;
                a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, L->diff_dst};
                a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, L->diff_src};
                if (L->ws)
                    a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, L->ws};
                TRY(nn_exec(net, L->bwd_data, na, a, err));
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
            TRY(nn_run_reorder(net, L->diff_src_reorder, L->diff_src, L->diff_in, err));
        nn_lap(net, &net->times.backward_s[i], &t);
    }
    DN(dnnl_stream_wait(net->stream), "stream wait");
    net->times.backwards += net->timing;
    return DRSCH_OK;
}

const float *nn_input_grad(const nn_net *net) { return nn_mem_ptr(net->diff_in_mem); }
