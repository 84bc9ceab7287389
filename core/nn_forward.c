/* The forward pass: the input handed to oneDNN, each layer's primitive (the hash and bit-weight
 * layers in plain C), the output reordered to plain; in inference drsch-mnist's first layers
 * image by image (chain_forward); the refresh of the derived weight copies (backward-data
 * layout, bf16, hwio for sgemm) after the parameters change; the outputs a pass leaves. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn_internal.h"

/* Unfolds layer L's nchw source into col: for each output pixel (n, oy, ox) a row of C x KH x KW
 * values (the weights' order), the source values its kernel taps read, zeros where they read
 * padding. T is the compute type's storage (float, or uint16_t for bf16 nets): the rows are
 * short (KW values), so they are copied in a loop rather than by memcpy calls. */
#define IM2COL(T)                                                                                  \
    static void im2col_##T(const nn_net *net, const nn_layer *L)                                   \
    {                                                                                              \
        const nn_layer_spec *sp = &L->spec;                                                        \
        const int32_t K = sp->kernel, S = sp->stride, P = sp->pad, C = L->in_c;                    \
        const int32_t OH = L->out_h, OW = L->out_w, IH = L->in_h, IW = L->in_w;                    \
        const T *src = (const T *)(void *)nn_mem_ptr(L->src);                                      \
        T *col = (T *)(void *)nn_mem_ptr(L->col);                                                  \
        const int64_t M = (int64_t)net->cfg.batch * OH * OW;                                       \
        _Pragma("omp parallel for schedule(static)") for (int64_t m = 0; m < M; m++)               \
        {                                                                                          \
            const int64_t n = m / ((int64_t)OH * OW);                                              \
            const int32_t oy = (int32_t)(m / OW % OH), ox = (int32_t)(m % OW);                     \
            const int32_t ix0 = ox * S - P, iy0 = oy * S - P;                                      \
            /* a receptive field that reads no padding is copied row by row without checks */      \
            const int inside = ix0 >= 0 && ix0 + K <= IW && iy0 >= 0 && iy0 + K <= IH;             \
            T *out = col + (size_t)m * C * K * K;                                                  \
            for (int32_t c = 0; c < C; c++) {                                                      \
                const T *plane = src + ((size_t)n * C + (size_t)c) * IH * IW;                      \
                if (inside) {                                                                      \
                    for (int32_t ky = 0; ky < K; ky++, out += K) {                                 \
                        const T *in = plane + (size_t)(iy0 + ky) * IW + (size_t)ix0;               \
                        for (int32_t kx = 0; kx < K; kx++)                                         \
                            out[kx] = in[kx];                                                      \
                    }                                                                              \
                    continue;                                                                      \
                }                                                                                  \
                for (int32_t ky = 0; ky < K; ky++, out += K) {                                     \
                    const int32_t iy = oy * S - P + ky;                                            \
                    if (iy < 0 || iy >= IH) {                                                      \
                        for (int32_t kx = 0; kx < K; kx++)                                         \
                            out[kx] = (T)0;                                                        \
                        continue;                                                                  \
                    }                                                                              \
                    const T *row = plane + (size_t)iy * IW;                                        \
                    for (int32_t kx = 0; kx < K; kx++) {                                           \
                        const int32_t ix = ix0 + kx;                                               \
                        out[kx] = ix >= 0 && ix < IW ? row[ix] : (T)0;                             \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
IM2COL(float)
IM2COL(uint16_t)
#undef IM2COL

/* Layer L's output computed by sgemm (L->sgemm): the unfolded input's rows times the weights
 * (M x KC times KC x OC, the hwio copy w_fwd), then bias and ReLU, row by row. */
static drsch_status sgemm_forward(const nn_net *net, const nn_layer *L, drsch_error *err)
{
    const dnnl_dim_t OC = L->out_c, M = (dnnl_dim_t)net->cfg.batch * L->out_h * L->out_w,
                     KC = nn_gemm_depth(L);
    const float *col = nn_mem_ptr(L->col), *w = nn_mem_ptr(L->w_fwd), *b = nn_mem_ptr(L->b);
    float *y = nn_mem_ptr(L->dst);
    DN(dnnl_sgemm('N', 'N', M, OC, KC, 1.0f, col, KC, w, OC, 0.0f, y, OC), "sgemm forward");
    const bool relu = L->spec.relu;
#pragma omp parallel for schedule(static) if (M * OC >= 8192)
    for (dnnl_dim_t r = 0; r < M; r++) {
        float *row = y + r * OC;
        for (dnnl_dim_t c = 0; c < OC; c++) {
            const float v = row[c] + b[c];
            row[c] = relu && v < 0.0f ? 0.0f : v;
        }
    }
    return DRSCH_OK;
}

/* Unfolds layer L's nhwc source into col for sgemm (L->sgemm): for each output pixel a row of
 * KH x KW x C values, runs of C (KW x C where a kernel row lies inside the input) copied from
 * the source, zeros where the taps read padding. im2col_row: output pixel (oy, ox)'s row, from
 * one image's source img. */
static void im2col_row(const nn_layer *L, const float *img, int32_t oy, int32_t ox, float *out)
{
    const int32_t K = L->spec.kernel, S = L->spec.stride, P = L->spec.pad, C = L->in_c;
    const int32_t IH = L->in_h, IW = L->in_w;
    const int32_t iy0 = oy * S - P, ix0 = ox * S - P;
    const size_t run = (size_t)C * sizeof(float);
    for (int32_t ky = 0; ky < K; ky++, out += (size_t)K * C) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= IH) {
            memset(out, 0, (size_t)K * run);
            continue;
        }
        const float *row = img + (size_t)iy * IW * C;
        if (ix0 >= 0 && ix0 + K <= IW) {
            memcpy(out, row + (size_t)ix0 * C, (size_t)K * run);
            continue;
        }
        for (int32_t kx = 0; kx < K; kx++) {
            const int32_t ix = ix0 + kx;
            if (ix >= 0 && ix < IW)
                memcpy(out + (size_t)kx * C, row + (size_t)ix * C, run);
            else
                memset(out + (size_t)kx * C, 0, run);
        }
    }
}

static void im2col_nhwc(const nn_net *net, const nn_layer *L)
{
    const int32_t OH = L->out_h, OW = L->out_w;
    const float *src = nn_mem_ptr(L->src);
    float *col = nn_mem_ptr(L->col);
    const int64_t M = (int64_t)net->cfg.batch * OH * OW;
    const size_t per = (size_t)nn_gemm_depth(L), img = (size_t)L->in_h * L->in_w * L->in_c;
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const int64_t n = m / ((int64_t)OH * OW);
        im2col_row(L, src + (size_t)n * img, (int32_t)(m / OW % OH), (int32_t)(m % OW),
                   col + (size_t)m * per);
    }
}

static void hash_forward(const nn_net *net, const nn_layer *L)
{
    const float *x = nn_mem_ptr(L->src);
    float *y = nn_mem_ptr(L->dst);
    const float half_s = 0.5f * net->hash_scale;
    const ptrdiff_t n = (ptrdiff_t)net->cfg.batch * L->out_c;
#pragma omp parallel for schedule(static) if (n >= 2048)
    for (ptrdiff_t k = 0; k < n; k++)
        y[k] = tanhf(half_s * x[k]);
}

static void bitw_forward(const nn_net *net, const nn_layer *L)
{
    const float *x = nn_mem_ptr(L->src), *w = nn_mem_ptr(L->w);
    float *y = nn_mem_ptr(L->dst);
    const int32_t B = L->out_c;
    for (int32_t r = 0; r < net->cfg.batch; r++)
        for (int32_t j = 0; j < B; j++)
            y[(size_t)r * B + j] = x[(size_t)r * B + j] * w[j];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TILE_TARGET __attribute__((target("avx512f")))
/* Two vectors x, y replaced by the low and high halves of their interleave at one granule: 32-bit
 * values (PAIR_PS), 64-bit pairs (PAIR_PD), and 128-bit lanes taken even / odd (PAIR_LANES). */
#define PAIR_PS(x, y)                                                                              \
    do {                                                                                           \
        const __m512 lo_ = _mm512_unpacklo_ps(x, y);                                               \
        y = _mm512_unpackhi_ps(x, y);                                                              \
        x = lo_;                                                                                   \
    } while (0)
#define PAIR_PD(x, y)                                                                              \
    do {                                                                                           \
        const __m512d a_ = _mm512_castps_pd(x), b_ = _mm512_castps_pd(y);                          \
        x = _mm512_castpd_ps(_mm512_unpacklo_pd(a_, b_));                                          \
        y = _mm512_castpd_ps(_mm512_unpackhi_pd(a_, b_));                                          \
    } while (0)
#define PAIR_LANES(x, y)                                                                           \
    do {                                                                                           \
        const __m512 lo_ = _mm512_shuffle_f32x4(x, y, 0x88);                                       \
        y = _mm512_shuffle_f32x4(x, y, 0xdd);                                                      \
        x = lo_;                                                                                   \
    } while (0)

/* A 16 x 16 tile transposed in registers: rows interleaved by 1, 2, 4 and 8 values. The vectors
 * are named, not an array: GCC moves __m512 arrays with aligned stack stores, which fault in
 * AddressSanitizer's use-after-return frames. Each step works in place, so after the 64-bit step
 * the second and third vector of each group of four hold each other's rows: the stores undo it.
 * past: the rows stored past the caches (non-temporal; every row of d 64-byte aligned). */
static TILE_TARGET void tile16(const float *s, size_t ss, float *d, size_t ds, bool past)
{
#define TILE_LOAD(i) __m512 x##i = _mm512_loadu_ps(s + (size_t)(i)*ss)
    TILE_LOAD(0);
    TILE_LOAD(1);
    TILE_LOAD(2);
    TILE_LOAD(3);
    TILE_LOAD(4);
    TILE_LOAD(5);
    TILE_LOAD(6);
    TILE_LOAD(7);
    TILE_LOAD(8);
    TILE_LOAD(9);
    TILE_LOAD(10);
    TILE_LOAD(11);
    TILE_LOAD(12);
    TILE_LOAD(13);
    TILE_LOAD(14);
    TILE_LOAD(15);
#undef TILE_LOAD
    PAIR_PS(x0, x1);
    PAIR_PS(x2, x3);
    PAIR_PS(x4, x5);
    PAIR_PS(x6, x7);
    PAIR_PS(x8, x9);
    PAIR_PS(x10, x11);
    PAIR_PS(x12, x13);
    PAIR_PS(x14, x15);
    PAIR_PD(x0, x2);
    PAIR_PD(x1, x3);
    PAIR_PD(x4, x6);
    PAIR_PD(x5, x7);
    PAIR_PD(x8, x10);
    PAIR_PD(x9, x11);
    PAIR_PD(x12, x14);
    PAIR_PD(x13, x15);
    PAIR_LANES(x0, x4);
    PAIR_LANES(x2, x6);
    PAIR_LANES(x1, x5);
    PAIR_LANES(x3, x7);
    PAIR_LANES(x8, x12);
    PAIR_LANES(x10, x14);
    PAIR_LANES(x9, x13);
    PAIR_LANES(x11, x15);
    PAIR_LANES(x0, x8);
    PAIR_LANES(x2, x10);
    PAIR_LANES(x1, x9);
    PAIR_LANES(x3, x11);
    PAIR_LANES(x4, x12);
    PAIR_LANES(x6, x14);
    PAIR_LANES(x5, x13);
    PAIR_LANES(x7, x15);
#define TILE_STORE(i, x)                                                                           \
    (past ? _mm512_stream_ps(d + (size_t)(i)*ds, x) : _mm512_storeu_ps(d + (size_t)(i)*ds, x))
    TILE_STORE(0, x0);
    TILE_STORE(1, x2);
    TILE_STORE(2, x1);
    TILE_STORE(3, x3);
    TILE_STORE(4, x4);
    TILE_STORE(5, x6);
    TILE_STORE(6, x5);
    TILE_STORE(7, x7);
    TILE_STORE(8, x8);
    TILE_STORE(9, x10);
    TILE_STORE(10, x9);
    TILE_STORE(11, x11);
    TILE_STORE(12, x12);
    TILE_STORE(13, x14);
    TILE_STORE(14, x13);
    TILE_STORE(15, x15);
#undef TILE_STORE
}
#undef PAIR_PS
#undef PAIR_PD
#undef PAIR_LANES
#endif

/* d[c * ds + r] = s[r * ss + c] for r < R, c < C, in tiles of 16 x 16; whole tiles in AVX-512
 * registers when avx512 (the copies that call it exist only where oneDNN runs AVX-512), stored
 * past the caches when past and the tile's rows are 64-byte aligned (the caller then fences). */
static void transpose_block(const float *s, size_t ss, float *d, size_t ds, int32_t R, int32_t C,
                            bool avx512, bool past)
{
    for (int32_t r0 = 0; r0 < R; r0 += 16)
        for (int32_t c0 = 0; c0 < C; c0 += 16) {
            const int32_t r1 = r0 + 16 < R ? r0 + 16 : R, c1 = c0 + 16 < C ? c0 + 16 : C;
#if defined(__x86_64__) && defined(__GNUC__)
            if (avx512 && r1 - r0 == 16 && c1 - c0 == 16) {
                float *t = d + (size_t)c0 * ds + (size_t)r0;
                tile16(s + (size_t)r0 * ss + (size_t)c0, ss, t, ds,
                       past && (uintptr_t)t % 64 == 0 && ds % 16 == 0);
                continue;
            }
#else
            (void)avx512;
            (void)past;
#endif
            for (int32_t c = c0; c < c1; c++)
                for (int32_t r = r0; r < r1; r++)
                    d[(size_t)c * ds + (size_t)r] = s[(size_t)r * ss + (size_t)c];
        }
}

/* The weight copies drsch's own loops read, transposed from w (oneDNN's reorders took 0.07 ms
 * for these two in a training step of drsch-mnist, batch 100, 2 threads, 2-core Zen 5):
 * a direct convolution's w_bwd, [KW][KH][OC][IC] from hwio [KH][KW][IC][OC] (each tap's IC x OC
 * block transposed); an sgemm convolution's w_fwd, hwio (KH x KW x C rows of OC) from ohwi (OC
 * rows of KH x KW x C). w_bwd is stored past the caches: the refresh runs before the forward
 * pass and only the backward pass reads it, long after the caches have let it go, so its lines
 * were fetched for nothing (drsch-mnist, batch 100, 2 threads, 2-core Zen 5: conv2's and conv3's
 * 1 MB; the copies 0.110 -> 0.061 ms, medians of ten alternate runs of `drsch bench train
 * --threads 2 --no-limits --repetitions 3 --passes`). The fc layers' w_fwd stays in the caches:
 * their forward pass reads it soon (stored past them, fc1's forward pass took 0.042 ms against
 * 0.039, eight alternate runs). */
static void refresh_own_copies(const nn_net *net, const nn_layer *L)
{
    const int32_t K = L->spec.kernel, IC = L->in_c, OC = L->out_c;
    const float *w = nn_mem_ptr(L->w);
    const bool avx512 = net->avx512;
    if (L->direct && L->w_bwd) {
        float *wb = nn_mem_ptr(L->w_bwd);
#pragma omp parallel
        {
#pragma omp for schedule(static) nowait
            for (int32_t t = 0; t < K * K; t++) {
                const int32_t ky = t / K, kx = t % K;
                transpose_block(w + (size_t)t * IC * OC, (size_t)OC,
                                wb + ((size_t)kx * K + (size_t)ky) * OC * IC, (size_t)IC, IC, OC,
                                avx512, true);
            }
#if defined(__x86_64__) && defined(__GNUC__)
            if (avx512)
                _mm_sfence(); /* this thread's streamed rows before the region's end */
#endif
        }
    }
    if ((L->sgemm || L->fc_own) && L->w_fwd) {
        const int32_t KC = (int32_t)nn_gemm_depth(L);
        float *wf = nn_mem_ptr(L->w_fwd);
#pragma omp parallel for schedule(static)
        for (int32_t o = 0; o < OC; o += 16)
            transpose_block(w + (size_t)o * KC, (size_t)KC, wf + o, (size_t)OC,
                            OC - o < 16 ? OC - o : 16, KC, avx512, false);
    }
}

drsch_status nn_net_refresh_weights(nn_net *net, drsch_error *err)
{
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->w_bwd_reorder)
            TRY(nn_run_reorder(net, L->w_bwd_reorder, L->w, L->w_bwd, err));
        if (L->w_fwd_reorder)
            TRY(nn_run_reorder(net, L->w_fwd_reorder, L->w, L->w_fwd, err));
        refresh_own_copies(net, L);
    }
    DN(dnnl_stream_wait(net->stream), "stream wait");
    net->weights_dirty = false;
    return DRSCH_OK;
}

/* The largest output of one image the inference chain keeps on the stack (floats) */
#define CHAIN_PLANE_MAX 8192

/* Groups of NN_DIRECT_GROUP_MAX images whose fifth layer (chain_conv) runs back to back: its
 * weights (819 KB for drsch-mnist's conv3) then stream through L2 once per four groups with the
 * third layer's weights (205 KB) in between, rather than once per group. On the 2-core Zen 5
 * (1 MB of L2 a core), against one group at a time, `drsch bench encode --no-limits
 * --repetitions 3` run alternately: +0.7% and +1.3% at 2 threads (medians of two sets of ten
 * runs each, in a slow phase of the VM), +3.0% at 1 thread (eight runs each). */
#define CHAIN_CONV_GROUPS 4

/* Whether an inference net's first four layers are a stem with its pooling (nn_stem.c), a
 * direct convolution (nn_direct.c) and an average pooling on drsch's loops, all nhwc, with no
 * reorder between them: nn_forward then runs them image by image (chain_forward). The fifth
 * layer, an sgemm convolution, goes with them: computed (chain_conv: its forward pass on the
 * direct loops, a few images a block) or unfolded into its product's rows (chain_unfold). */
void nn_chain_decide(nn_net *net)
{
    net->chain = net->chain_unfold = net->chain_conv = false;
    if (net->cfg.training || net->n_layers < 5)
        return;
    const nn_layer *L = net->layers;
    net->chain = L[0].stem && L[1].pool_fused && L[2].direct && !L[2].direct_src16 &&
                 L[3].pool_own && !L[3].pool_blocked && !L[3].pool_fused &&
                 L[3].spec.kind == NN_LAYER_POOL_AVG && !L[1].src_reorder && !L[2].src_reorder &&
                 !L[3].src_reorder &&
                 (size_t)L[1].out_h * L[1].out_w * L[1].out_c <= CHAIN_PLANE_MAX &&
                 (size_t)L[2].out_h * L[2].out_w * L[2].out_c <= CHAIN_PLANE_MAX;
    const bool fifth = net->chain && L[4].sgemm && !L[4].src_reorder;
    net->chain_conv = fifth && L[4].sgemm_grouped;
    net->chain_unfold = fifth && !net->chain_conv && L[4].col;
}

/* The first four layers image by image (the convolution two images at a time, which pairs the
 * last rows of an odd row count): each image's pooled stem output and its convolution's
 * output stay on the stack (in the caches) and only the second pooling's output is written, where
 * layer by layer the batch's 1.55 and 1.25 MB (drsch-mnist, batch 100) went to memory and were
 * read back. When conv (chain_conv), the fifth layer, a convolution with an output of 2 x 2, is
 * computed from that output while it is still in the caches, CHAIN_CONV_GROUPS groups of up to
 * NN_DIRECT_GROUP_MAX images at a time (each thread its own run of images); when unfold
 * (chain_unfold), the fifth layer's unfolded rows are written from it instead. The same sums. */
static void chain_forward(const nn_net *net, bool conv, bool unfold)
{
    const nn_layer *L = net->layers;
    float *y = nn_mem_ptr(L[3].dst), *col = unfold ? nn_mem_ptr(L[4].col) : NULL,
          *y5 = conv ? nn_mem_ptr(L[4].dst) : NULL;
    const size_t plane1 = (size_t)L[1].out_h * L[1].out_w * L[1].out_c,
                 plane2 = (size_t)L[2].out_h * L[2].out_w * L[2].out_c,
                 pooled = (size_t)L[3].out_h * L[3].out_w * L[3].out_c,
                 per = (size_t)nn_gemm_depth(&L[4]),
                 out5 = (size_t)L[4].out_h * L[4].out_w * L[4].out_c;
    const int32_t OH = L[4].out_h, OW = L[4].out_w, N = net->cfg.batch;
    /* the third layer two images at a time where both fit (nn_direct_forward_images) */
    const int step = 2 * plane1 <= CHAIN_PLANE_MAX && 2 * plane2 <= CHAIN_PLANE_MAX ? 2 : 1;
    const int held_max = NN_DIRECT_GROUP_MAX * CHAIN_CONV_GROUPS;
#pragma omp parallel
    {
        _Alignas(64) float p1[CHAIN_PLANE_MAX];
        _Alignas(64) float c2[CHAIN_PLANE_MAX];
        _Alignas(64) float p2[CHAIN_PLANE_MAX]; /* unfold: the image, pooled */
        int lo, hi;
        nn_thread_share(N, &lo, &hi);
        int n5 = lo; /* conv: images n5 .. n are pooled in y, their fifth layer to come */
        for (int n0 = lo; n0 < hi; n0 += step) {
            const int count = hi - n0 < step ? hi - n0 : step;
            for (int i = 0; i < count; i++)
                nn_stem_forward_image(net, &L[0], &L[1], n0 + i, p1 + (size_t)i * plane1);
            nn_direct_forward_images(net, &L[2], p1, c2, count);
            for (int i = 0; i < count; i++) {
                const int n = n0 + i;
                float *pn = unfold ? p2 : y + (size_t)n * pooled;
                nn_pool_image_forward(net, &L[3], c2 + (size_t)i * plane2, pn, false);
                if (unfold)
                    for (int32_t oy = 0; oy < OH; oy++)
                        for (int32_t ox = 0; ox < OW; ox++)
                            im2col_row(&L[4], pn, oy, ox,
                                       col +
                                           (((size_t)n * OH + (size_t)oy) * OW + (size_t)ox) * per);
                if (conv && (n + 1 - n5 == held_max || n + 1 == hi))
                    for (; n5 <= n; n5 += NN_DIRECT_GROUP_MAX) {
                        const int g =
                            n + 1 - n5 < NN_DIRECT_GROUP_MAX ? n + 1 - n5 : NN_DIRECT_GROUP_MAX;
                        nn_direct_forward_group(net, &L[4], y + (size_t)n5 * pooled,
                                                y5 + (size_t)n5 * out5, g);
                    }
            }
        }
    }
}

/* Layers 0 .. end - 1 of the forward pass, and the source reorder of layer end when end is a
 * layer (its input then as the layer reads it). */
static drsch_status forward_to(nn_net *net, const float *x, int end, drsch_error *err)
{
    if (!x)
        return drsch_fail(err, DRSCH_ERR_ARG, "forward pass: no input images given");
    double t = net->timing ? nn_clock() : 0;
    if (net->weights_dirty) {
        TRY(nn_net_refresh_weights(net, err));
        nn_lap(net, &net->times.refresh_s, &t);
    }
    DN(dnnl_memory_set_data_handle(net->in_mem, (void *)(uintptr_t)x), "input handle");
    dnnl_exec_arg_t a[8];
    int first = 0;
    const bool unfolded = net->chain_unfold;
    if (net->chain && end >= (net->chain_conv ? 5 : 4)) {
        if (net->layers[0].src_reorder)
            TRY(nn_run_reorder(net, net->layers[0].src_reorder, net->layers[0].in,
                               net->layers[0].src, err));
        DN(dnnl_stream_wait(net->stream), "stream wait");
        chain_forward(net, net->chain_conv, unfolded);
        first = net->chain_conv ? 5 : 4;
        nn_lap(net, &net->times.forward_s[0], &t);
    }
    for (int i = first; i <= end && i < net->n_layers; i++) {
        nn_layer *L = &net->layers[i];
        if (L->src_reorder)
            TRY(nn_run_reorder(net, L->src_reorder, L->in, L->src, err));
        if (i == end)
            break;
        switch (L->spec.kind) {
        case NN_LAYER_CONV:
        case NN_LAYER_FC:
            if (L->stem) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_stem_forward(net, L, &net->layers[i + 1]);
                break;
            }
            if (L->direct) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                if (i + 1 < net->n_layers && net->layers[i + 1].pool_by_direct)
                    nn_direct_forward_pooled(net, L, &net->layers[i + 1]);
                else
                    nn_direct_forward(net, L);
                break;
            }
            if (L->sgemm_grouped && !net->cfg.training) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_direct_forward_grouped(net, L);
                break;
            }
            if (L->col && !(unfolded && i == 4)) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                if (L->sgemm)
                    im2col_nhwc(net, L);
                else if (nn_mem_md(L->col)->data_type == dnnl_f32)
                    im2col_float(net, L);
                else
                    im2col_uint16_t(net, L);
            }
            if (L->sgemm_grouped) { /* training: col was for the gradients */
                nn_direct_forward_grouped(net, L);
                break;
            }
            if (L->sgemm) {
                TRY(sgemm_forward(net, L, err));
                break;
            }
            if (L->fc_own) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_fc_forward(net, L);
                break;
            }
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->col ? L->col : L->src};
            a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, L->w_fwd ? L->w_fwd : L->w};
            a[2] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, L->b};
            a[3] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst2d ? L->dst2d : L->dst};
            TRY(nn_exec(net, L->fwd, 4, a, err));
            break;
        case NN_LAYER_POOL_MAX:
        case NN_LAYER_POOL_AVG: {
            if (L->pool_fused || L->pool_by_direct) /* computed with the convolution before it */
                break;
            if (L->pool_own) {
                DN(dnnl_stream_wait(net->stream), "stream wait");
                nn_pool_forward(net, L);
                break;
            }
            int na = 2;
            a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, L->src};
            a[1] = (dnnl_exec_arg_t){DNNL_ARG_DST, L->dst};
            if (L->ws)
                a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, L->ws};
            TRY(nn_exec(net, L->fwd, na, a, err));
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
        nn_lap(net, &net->times.forward_s[i], &t);
    }
    if (end == net->n_layers && net->out_reorder)
        TRY(nn_run_reorder(net, net->out_reorder, net->layers[net->n_layers - 1].dst, net->out_mem,
                           err));
    DN(dnnl_stream_wait(net->stream), "stream wait");
    if (net->timing) {
        nn_lap(net, &net->times.forward_s[end < net->n_layers ? end : net->n_layers - 1], &t);
        net->times.forwards++;
    }
    return DRSCH_OK;
}

drsch_status nn_forward(nn_net *net, const float *x, drsch_error *err)
{
    return forward_to(net, x, net->n_layers, err);
}

drsch_status nn_forward_to_hash(nn_net *net, const float *x, drsch_error *err)
{
    if (net->hash_layer < 0)
        return drsch_fail(err, DRSCH_ERR_ARG, "forward pass: the net has no hash layer");
    return forward_to(net, x, net->hash_layer, err);
}

const float *nn_hash_input(const nn_net *net)
{
    return net->hash_layer >= 0 ? nn_mem_ptr(net->layers[net->hash_layer].src) : NULL;
}

const float *nn_output(const nn_net *net) { return nn_mem_ptr(net->out_mem); }

const float *nn_hash_output(const nn_net *net)
{
    return net->hash_layer >= 0 ? nn_mem_ptr(net->layers[net->hash_layer].dst) : NULL;
}
