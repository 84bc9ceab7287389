/* The first convolution of a network of three input channels on drsch's AVX-512 loops, with the
 * 2x2 max pooling at stride 2 after it computed in the same passes (nn_stem_rgb_fits: 3x3 or 5x5
 * taps, stride 1 or 2, zero padding of fewer rows than the taps, 32k output channels, an output
 * of even rows and columns that the pooling's windows tile, AVX-512 on the CPU and in oneDNN, no
 * input gradient asked for): drsch-reid's conv1 and pool1. nn_stem.c computes the one-channel
 * case with an average pooling (drsch-mnist's) and calls these for this one.
 *
 * Why: in a training step of drsch-reid (batch 100, 2 threads, 2-core Zen 5, a fast phase of
 * the VM) oneDNN 2.6's conv1 (jit:avx512_core) took 3.2 ms forward and 3.6 ms for its weight
 * gradient, and the max pooling after it (nn_pool.c) 0.8 and 1.5 ms: 9.0 ms, where the
 * convolution's output, 30 MB a batch, went to memory and came back three times. Here no value
 * of it is written: 3.25-3.4 ms forward and 3.5-3.7 ms backward, the step 79.8-80.0 -> 76.3-77.7
 * ms (`drsch bench train --arch drsch-reid --passes`, two rounds alternated with the build
 * before).
 *
 * Forward: a block is one row of up to MAX_PQ pooling windows, i.e. two output rows of 2 x MAX_PQ
 * pixels, for 32 output channels (24 sums in registers): the taps summed from zero in (row,
 * column, channel) order, the bias added, the ReLU, then each window's maximum stored in the
 * pooling layer's output (nChw16c; past the caches when the batch's output is
 * larger than the threads' L2s, nn_write_past_caches). In training, each window's way in, a byte
 * per channel (the layer's mask; [window row][window][channel] for each image): 1 + the position
 * in row order of the first of its four values that holds the maximum, or 0 where, with the
 * ReLU, the maximum is not above zero. That is where nn_pool.c's max pooling backward pass sends
 * the window's gradient (the first tap holding the maximum, as oneDNN's), so the byte stands for
 * both the pooling's and the ReLU's gradient. (Bits per output value, as nn_stem.c keeps, took
 * four mask stores per window and channel block: a forward block, timed alone in a loop, took
 * 262 ns without a mask, 308 ns with the bits, 279 ns with the bytes.)
 *
 * Backward: the gradient at the convolution's output is the window's gradient where the value's
 * position is the window's way in, zero elsewhere; read with a load mask (way_bits), never
 * written. Each row of windows adds its two output rows' products to the weight and bias
 * gradients, up to 13 taps x 32 channels in registers at a time, pixels in row order. Images are
 * summed in groups of NN_STEM_GROUP (one thread a group, images in order), then the groups in
 * order: the same bits at any thread count, as nn_stem.c's.
 *
 * Padding: a row of windows reads S + K rows of each input channel; they are copied to a band on
 * the stack, zero where the padding is, BAND_W floats a row, so no tap tests a bound. */
#include <stdint.h>
#include <string.h>

#include "nn_internal.h"

#define RGB_C 3 /* input channels */
/* A band's row: BAND_LEFT floats (zeros: the left padding read) before the image's row, which
 * starts 64-byte aligned, then zeros to BAND_W floats (the right padding read) */
#define BAND_LEFT 16
#define BAND_W 96
#define BAND_ROWS_MAX (2 + 5) /* a band's rows of each channel, S + K at most */
#define MAX_PQ 3              /* pooling windows in a forward block: 2 x 6 pixels x 2 vectors */
#define OW_MAX (BAND_W - BAND_LEFT) /* output columns at most (a column reads one of the band) */

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

typedef struct {
    int n, ih, iw, oh, ow, oc, k, s, pad, ph, pw;
    /* the pooled image's layout (the pooling layer's dst and diff_dst): value (c, y, x) at
     * y * ys + x * xs + (c / 16) * cbs + c % 16 */
    size_t ys, xs, cbs;
} rgb_shape;

/* The pooled image's layout is nChw16c: build_conv_stem gives this stem's output that layout,
 * and the pooling's follows its source's (nn_pool_layout). */
static rgb_shape shape_of(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    const size_t ph = (size_t)P->out_h, pw = (size_t)P->out_w;
    return (rgb_shape){
        net->cfg.batch, L->in_h,     L->in_w,  L->out_h, L->out_w, L->out_c, L->spec.kernel,
        L->spec.stride, L->spec.pad, P->out_h, P->out_w, pw * 16,  16,       ph * pw * 16};
}

/* The input rows window row py reads: S + K rows of each channel from row 2 py S - pad of the
 * image xi (nchw), channel c's row r at band[(c * (S + K) + r) * BAND_W], the image's column j
 * at its column BAND_LEFT + j, zero outside the image. Writes the image's columns (zeros after the
 * last, up to a whole vector) of each row; the rest of the band, zeros, is written once
 * (clear_band). Aligned whole-vector stores only: none crosses a cache line, none is masked. */
static void load_band(const rgb_shape *s, const float *xi, float *band, int py)
{
    const int R = s->s + s->k, y0 = 2 * py * s->s - s->pad;
    const __m512 z = _mm512_setzero_ps();
    for (int c = 0; c < RGB_C; c++)
        for (int r = 0; r < R; r++) {
            float *q = band + (size_t)(c * R + r) * BAND_W + BAND_LEFT;
            const int y = y0 + r;
            if (y < 0 || y >= s->ih) {
                for (int j = 0; j < s->iw; j += 16)
                    _mm512_store_ps(q + j, z);
                continue;
            }
            const float *src = xi + ((size_t)c * s->ih + (size_t)y) * s->iw;
            int j = 0;
            for (; j + 16 <= s->iw; j += 16)
                _mm512_store_ps(q + j, _mm512_loadu_ps(src + j));
            if (j < s->iw)
                _mm512_store_ps(
                    q + j, _mm512_maskz_loadu_ps((__mmask16)((1u << (s->iw - j)) - 1), src + j));
        }
}

static void clear_band(float *band)
{
    for (int j = 0; j < RGB_C * BAND_ROWS_MAX * BAND_W; j += 16)
        _mm512_store_ps(band + j, _mm512_setzero_ps());
}

/* Prefetches the input rows window row py reads that window row py - 1 did not (all of them for
 * py = 0), to come in while the row before is computed: each image's rows come from memory (the
 * batch's input, 11.5 MB for drsch-reid, is larger than the caches). drsch-reid, batch 100, 1
 * thread, 2-core Zen 5, three rounds alternated: forward 7.06-7.15 -> 6.60-6.74 ms; backward,
 * with the next row's gradient and masks (prefetch_row), 7.53-7.66 -> 7.05-7.30 ms. Inlined:
 * GCC takes a function that only prefetches for one without effects and drops its calls. */
static inline __attribute__((always_inline)) void prefetch_band(const rgb_shape *s, const float *xi,
                                                                int py)
{
    const int R = s->s + s->k, y1 = 2 * py * s->s - s->pad + R;
    int y0 = py ? y1 - 2 * s->s : y1 - R;
    if (y0 < 0)
        y0 = 0;
    for (int c = 0; c < RGB_C; c++)
        for (int y = y0; y < y1 && y < s->ih; y++) {
            const char *row = (const char *)(xi + ((size_t)c * s->ih + (size_t)y) * s->iw);
            for (size_t b = 0; b < (size_t)s->iw * sizeof(float) + 63; b += 64)
                _mm_prefetch(row + b, _MM_HINT_T0);
        }
}

/* Windows q0 .. q0 + PQ - 1 of window row py, 32 channels from ocb: their 2 x 2 PQ convolution
 * outputs summed in registers, pooled into y (one image, s's layout; streamed when past), and
 * their ways in into ways (one image) when it is given. PQ, K and S are constants where it is
 * inlined, so the sums stay in registers and each tap's source values are at fixed offsets. */
static inline __attribute__((always_inline)) void fwd_block(const rgb_shape *s, const float *band,
                                                            const float *w, const float *b,
                                                            float *y, uint8_t *ways, int py, int q0,
                                                            int ocb, bool past, bool relu,
                                                            const int PQ, const int K, const int S)
{
    const int R = S + K;
    __m512 a0[2][2 * MAX_PQ], a1[2][2 * MAX_PQ];
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++)
#pragma GCC unroll 6
        for (int j = 0; j < 2 * PQ; j++)
            a0[r][j] = a1[r][j] = _mm512_setzero_ps();
    for (int ky = 0; ky < K; ky++)
        for (int kx = 0; kx < K; kx++) {
            const float *wr = w + (size_t)((ky * K + kx) * RGB_C) * s->oc + ocb;
#pragma GCC unroll 3
            for (int c = 0; c < RGB_C; c++) {
                const float *xk = band + (size_t)(c * R + ky) * BAND_W + BAND_LEFT - s->pad +
                                  (size_t)(2 * q0 * S + kx);
                /* opaque, as in nn_stem.c: else GCC keeps one tap's broadcasts for a later tap
                 * that reads the same values and runs out of registers */
                __asm__("" : "+r"(xk));
                const __m512 w0 = _mm512_loadu_ps(wr + (size_t)c * s->oc),
                             w1 = _mm512_loadu_ps(wr + (size_t)c * s->oc + 16);
#pragma GCC unroll 2
                for (int r = 0; r < 2; r++)
#pragma GCC unroll 6
                    for (int j = 0; j < 2 * PQ; j++) {
                        const __m512 v = _mm512_set1_ps(xk[r * S * BAND_W + j * S]);
                        a0[r][j] = _mm512_fmadd_ps(v, w0, a0[r][j]);
                        a1[r][j] = _mm512_fmadd_ps(v, w1, a1[r][j]);
                    }
            }
        }
    const __m512 b0 = _mm512_loadu_ps(b + ocb), b1 = _mm512_loadu_ps(b + ocb + 16),
                 z = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++)
#pragma GCC unroll 6
        for (int j = 0; j < 2 * PQ; j++) {
            a0[r][j] = _mm512_add_ps(a0[r][j], b0);
            a1[r][j] = _mm512_add_ps(a1[r][j], b1);
            if (relu) {
                a0[r][j] = _mm512_max_ps(a0[r][j], z);
                a1[r][j] = _mm512_max_ps(a1[r][j], z);
            }
        }
#pragma GCC unroll 3
    for (int q = 0; q < PQ; q++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512(*a)[2 * MAX_PQ] = h ? a1 : a0;
            const __m512 v00 = a[0][2 * q], v01 = a[0][2 * q + 1], v10 = a[1][2 * q],
                         v11 = a[1][2 * q + 1];
            const __m512 m = _mm512_max_ps(_mm512_max_ps(v00, v01), _mm512_max_ps(v10, v11));
            const size_t cb = (size_t)ocb / 16 + (size_t)h;
            float *yq = y + (size_t)py * s->ys + (size_t)(q0 + q) * s->xs + cb * s->cbs;
            if (past)
                _mm512_stream_ps(yq, m);
            else
                _mm512_storeu_ps(yq, m);
            if (ways) {
                /* the window's way in, per channel: 1 + the position (row-major) of the first
                 * value holding the maximum, 0 for none (the maximum not above zero, with the
                 * ReLU); the later blends win, so the first position does */
                const __mmask16 on = relu ? _mm512_cmp_ps_mask(m, z, _CMP_GT_OQ) : 0xFFFF;
                __m512i way = _mm512_maskz_mov_epi32(on, _mm512_set1_epi32(4));
                way = _mm512_mask_mov_epi32(way, _mm512_mask_cmp_ps_mask(on, v10, m, _CMP_EQ_OQ),
                                            _mm512_set1_epi32(3));
                way = _mm512_mask_mov_epi32(way, _mm512_mask_cmp_ps_mask(on, v01, m, _CMP_EQ_OQ),
                                            _mm512_set1_epi32(2));
                way = _mm512_mask_mov_epi32(way, _mm512_mask_cmp_ps_mask(on, v00, m, _CMP_EQ_OQ),
                                            _mm512_set1_epi32(1));
                _mm_storeu_si128(
                    (__m128i *)(void *)(ways +
                                        ((size_t)py * s->pw + (size_t)(q0 + q)) * (size_t)s->oc +
                                        cb * 16),
                    _mm512_cvtepi32_epi8(way));
            }
        }
}

/* fwd_block for PQ = 1 .. 3 and each K (3, 5) and S (1, 2), one function each */
typedef void (*fwd_fn)(const rgb_shape *s, const float *band, const float *w, const float *b,
                       float *y, uint8_t *ways, int py, int q0, int ocb, bool past, bool relu);
#define FWD_FN(P, K, S)                                                                            \
    static void fwd_##P##_##K##_##S(const rgb_shape *s, const float *band, const float *w,         \
                                    const float *b, float *y, uint8_t *ways, int py, int q0,       \
                                    int ocb, bool past, bool relu)                                 \
    {                                                                                              \
        fwd_block(s, band, w, b, y, ways, py, q0, ocb, past, relu, P, K, S);                       \
    }
#define FWD_KS(K, S) FWD_FN(1, K, S) FWD_FN(2, K, S) FWD_FN(3, K, S)
FWD_KS(3, 1)
FWD_KS(3, 2)
FWD_KS(5, 1)
FWD_KS(5, 2)
#undef FWD_KS
#undef FWD_FN
#define FWD_ROW(K, S)                                                                              \
    {                                                                                              \
        fwd_1_##K##_##S, fwd_2_##K##_##S, fwd_3_##K##_##S                                          \
    }
/* [K == 5][S - 1][PQ - 1] */
static const fwd_fn FWD[2][2][MAX_PQ] = {{FWD_ROW(3, 1), FWD_ROW(3, 2)},
                                         {FWD_ROW(5, 1), FWD_ROW(5, 2)}};
#undef FWD_ROW

/* Image n's pooled output into y (one image) and, when ways is given, its windows' ways in (one
 * image). */
static void forward_image(const nn_layer *L, const rgb_shape *s, int n, float *y, uint8_t *ways,
                          bool past)
{
    _Alignas(64) float band[RGB_C * BAND_ROWS_MAX * BAND_W];
    const float *w = nn_mem_ptr(L->w), *b = nn_mem_ptr(L->b);
    const float *xi = (const float *)nn_mem_ptr(L->src) + (size_t)n * RGB_C * s->ih * s->iw;
    const fwd_fn *fwd = FWD[s->k == 5][s->s - 1];
    /* each row of windows in blocks of at most MAX_PQ, as even as they split */
    const int nb = (s->pw + MAX_PQ - 1) / MAX_PQ, pq = (s->pw + nb - 1) / nb;
    clear_band(band);
    prefetch_band(s, xi, 0);
    for (int py = 0; py < s->ph; py++) {
        load_band(s, xi, band, py);
        if (py + 1 < s->ph)
            prefetch_band(s, xi, py + 1);
        for (int ocb = 0; ocb < s->oc; ocb += 32)
            for (int q0 = 0; q0 < s->pw; q0 += pq) {
                const int len = s->pw - q0 < pq ? s->pw - q0 : pq;
                fwd[len - 1](s, band, w, b, y, ways, py, q0, ocb, past, L->spec.relu);
            }
    }
}

void nn_stem_rgb_forward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    const rgb_shape s = shape_of(net, L, P);
    float *y = nn_mem_ptr(P->dst);
    uint8_t *ways = net->cfg.training ? (uint8_t *)(void *)nn_mem_ptr(L->relu_mask) : NULL;
    const size_t pooled = (size_t)s.ph * s.pw * s.oc;
    const bool past = nn_write_past_caches((size_t)s.n * pooled * sizeof(float));
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 2) nowait
        for (int n = 0; n < s.n; n++)
            forward_image(L, &s, n, y + (size_t)n * pooled, ways ? ways + (size_t)n * pooled : NULL,
                          past);
        if (past)
            _mm_sfence(); /* this thread's streamed windows before the region's end */
    }
}

void nn_stem_rgb_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n,
                               float *y)
{
    const rgb_shape s = shape_of(net, L, P);
    forward_image(L, &s, n, y, NULL, false);
}

/* Window row py's weight gradients of taps T0 .. T1 - 1 (tap t: row t / 3 / K, column t / 3 % K,
 * channel t % 3) and, when BIAS, its bias gradient, for 32 output channels from ocb, added to dw
 * (tap t at dw[t * OC]) and db: band holds the row's input (load_band), dyr the pooling's
 * gradient of the row's windows (s's layout), bits its two output rows' masks (way_bits). Each sum
 * goes on from dw's value in a register, over the two rows' pixels in row order; K, S, T0, T1 and
 * BIAS are constants where it is inlined, so the up to 2 x 13 sums stay in registers. */
static inline __attribute__((always_inline)) void wgrad_taps(const rgb_shape *s, const float *band,
                                                             const float *dyr, const uint16_t *bits,
                                                             float *dw, float *db, int ocb,
                                                             const int K, const int S, const int T0,
                                                             const int T1, const bool BIAS)
{
    const int R = S + K;
    const size_t cb = (size_t)ocb / 16;
    __m512 a0[13], a1[13], b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
#pragma GCC unroll 13
    for (int t = T0; t < T1; t++) {
        a0[t - T0] = _mm512_loadu_ps(dw + (size_t)t * s->oc + ocb);
        a1[t - T0] = _mm512_loadu_ps(dw + (size_t)t * s->oc + ocb + 16);
    }
    if (BIAS) {
        b0 = _mm512_loadu_ps(db + ocb);
        b1 = _mm512_loadu_ps(db + ocb + 16);
    }
    for (int r = 0; r < 2; r++)
        for (int ox = 0; ox < s->ow; ox++) {
            const uint16_t *k = bits + ((size_t)r * s->ow + (size_t)ox) * 2;
            const float *g = dyr + (size_t)(ox / 2) * s->xs + cb * s->cbs;
            const __m512 g0 = _mm512_maskz_loadu_ps(k[0], g),
                         g1 = _mm512_maskz_loadu_ps(k[1], g + s->cbs);
            const float *xr = band + (size_t)(r * S) * BAND_W + BAND_LEFT - s->pad + (size_t)ox * S;
            if (BIAS) {
                b0 = _mm512_add_ps(b0, g0);
                b1 = _mm512_add_ps(b1, g1);
            }
#pragma GCC unroll 13
            for (int t = T0; t < T1; t++) {
                const int c = t % RGB_C, kx = t / RGB_C % K, ky = t / RGB_C / K;
                const __m512 v = _mm512_set1_ps(xr[(size_t)(c * R + ky) * BAND_W + (size_t)kx]);
                a0[t - T0] = _mm512_fmadd_ps(v, g0, a0[t - T0]);
                a1[t - T0] = _mm512_fmadd_ps(v, g1, a1[t - T0]);
            }
        }
#pragma GCC unroll 13
    for (int t = T0; t < T1; t++) {
        _mm512_storeu_ps(dw + (size_t)t * s->oc + ocb, a0[t - T0]);
        _mm512_storeu_ps(dw + (size_t)t * s->oc + ocb + 16, a1[t - T0]);
    }
    if (BIAS) {
        _mm512_storeu_ps(db + ocb, b0);
        _mm512_storeu_ps(db + ocb + 16, b1);
    }
}

/* The two output rows' masks of window row py for 32 channels from ocb, from the windows' ways
 * in (wr: the row's): bits[(r * OW + x) * 2 + h] has bit c set where channel ocb + 16 h + c of
 * output pixel (r, x) is its window's way in, so its gradient is the window's. Once for the
 * row's six passes of taps: comparing in each of them, drsch-reid's backward pass took 4.44-4.47
 * ms (2 threads, batch 100), where bits stored by the forward pass had taken 4.17-4.26 ms. */
static void way_bits(const rgb_shape *s, const uint8_t *wr, int ocb, uint16_t *bits)
{
    for (int q = 0; q < s->pw; q++)
        for (int h = 0; h < 2; h++) {
            const __m512i way = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                (const __m128i *)(const void *)(wr + (size_t)q * s->oc + ocb + 16 * h)));
            for (int p = 0; p < 4; p++)
                bits[((size_t)(p / 2) * s->ow + 2 * (size_t)q + p % 2) * 2 + h] =
                    _mm512_cmpeq_epi32_mask(way, _mm512_set1_epi32(1 + p));
        }
}

/* Prefetches a window row's pooling gradient (dyr, s's layout) and its windows' ways in (wr) */
static inline __attribute__((always_inline)) void prefetch_row(const rgb_shape *s, const float *dyr,
                                                               const uint8_t *wr)
{
    for (int cb = 0; cb < s->oc / 16; cb++)
        for (int x = 0; x < s->pw; x++)
            _mm_prefetch((const char *)(dyr + (size_t)x * s->xs + (size_t)cb * s->cbs),
                         _MM_HINT_T0);
    const size_t bytes = (size_t)s->pw * (size_t)s->oc;
    for (size_t b = 0; b < bytes + 63; b += 64)
        _mm_prefetch((const char *)wr + b, _MM_HINT_T0);
}

/* A window row's weight and bias gradients for 32 output channels (wgrad_taps): 27 taps in three
 * passes of 9 (3x3), 75 in six of 13 or 12 (5x5). */
typedef void (*wgrad_fn)(const rgb_shape *s, const float *band, const float *dyr,
                         const uint16_t *bits, float *dw, float *db, int ocb);
#define WG(K, S, T0, T1, BIAS) wgrad_taps(s, band, dyr, bits, dw, db, ocb, K, S, T0, T1, BIAS)
#define WGRAD_FNS(S)                                                                               \
    static void wgrad_3_##S(const rgb_shape *s, const float *band, const float *dyr,               \
                            const uint16_t *bits, float *dw, float *db, int ocb)                   \
    {                                                                                              \
        WG(3, S, 0, 9, true);                                                                      \
        WG(3, S, 9, 18, false);                                                                    \
        WG(3, S, 18, 27, false);                                                                   \
    }                                                                                              \
    static void wgrad_5_##S(const rgb_shape *s, const float *band, const float *dyr,               \
                            const uint16_t *bits, float *dw, float *db, int ocb)                   \
    {                                                                                              \
        WG(5, S, 0, 13, true);                                                                     \
        WG(5, S, 13, 26, false);                                                                   \
        WG(5, S, 26, 39, false);                                                                   \
        WG(5, S, 39, 51, false);                                                                   \
        WG(5, S, 51, 63, false);                                                                   \
        WG(5, S, 63, 75, false);                                                                   \
    }
WGRAD_FNS(1)
WGRAD_FNS(2)
#undef WGRAD_FNS
#undef WG
/* [K == 5][S - 1] */
static const wgrad_fn WGRAD[2][2] = {{wgrad_3_1, wgrad_3_2}, {wgrad_5_1, wgrad_5_2}};

void nn_stem_rgb_backward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    const rgb_shape s = shape_of(net, L, P);
    const float *x = nn_mem_ptr(L->src), *dy = nn_mem_ptr(P->diff_dst);
    const uint8_t *ways = (const uint8_t *)(void *)nn_mem_ptr(L->relu_mask);
    float *dw = nn_mem_ptr(L->dw), *db = nn_mem_ptr(L->db), *part = nn_mem_ptr(L->stem_part);
    const size_t pooled = (size_t)s.ph * s.pw * s.oc, image = (size_t)RGB_C * s.ih * s.iw;
    const int taps = RGB_C * s.k * s.k, groups = (s.n + NN_STEM_GROUP - 1) / NN_STEM_GROUP;
    const size_t per = (size_t)(taps + 1) * s.oc; /* a group's sums: dw's layout, then db's */
    const wgrad_fn wgrad = WGRAD[s.k == 5][s.s - 1];
#pragma omp parallel
    {
        _Alignas(64) float band[RGB_C * BAND_ROWS_MAX * BAND_W];
        uint16_t bits[2 * OW_MAX * 2];
        clear_band(band);
#pragma omp for schedule(dynamic, 1)
        for (int g = 0; g < groups; g++) {
            float *pg = part + (size_t)g * per;
            memset(pg, 0, per * sizeof *pg);
            const int n1 = (g + 1) * NN_STEM_GROUP < s.n ? (g + 1) * NN_STEM_GROUP : s.n;
            for (int n = g * NN_STEM_GROUP; n < n1; n++)
                for (int py = 0; py < s.ph; py++) {
                    load_band(&s, x + (size_t)n * image, band, py);
                    const float *dyr = dy + (size_t)n * pooled + (size_t)py * s.ys;
                    const uint8_t *wr = ways + (size_t)n * pooled + (size_t)py * s.pw * s.oc;
                    if (py + 1 < s.ph) {
                        prefetch_band(&s, x + (size_t)n * image, py + 1);
                        prefetch_row(&s, dyr + s.ys, wr + (size_t)s.pw * s.oc);
                    }
                    for (int ocb = 0; ocb < s.oc; ocb += 32) {
                        way_bits(&s, wr, ocb, bits);
                        wgrad(&s, band, dyr, bits, pg, pg + (size_t)taps * s.oc, ocb);
                    }
                }
        }
        nn_stem_sum_groups(part, groups, per, (size_t)taps * s.oc, dw, db);
    }
}

bool nn_stem_rgb_fits(const nn_net *net, int i)
{
    if (i != 0 || i + 1 >= net->n_layers)
        return false;
    const nn_layer *L = &net->layers[i], *P = &net->layers[i + 1];
    const nn_layer_spec *sp = &L->spec, *pp = &P->spec;
    return sp->kind == NN_LAYER_CONV && !nn_need_data_grad(net, i) && L->in_c == RGB_C &&
           (sp->kernel == 3 || sp->kernel == 5) && (sp->stride == 1 || sp->stride == 2) &&
           sp->pad >= 0 && sp->pad < sp->kernel && L->out_c % 32 == 0 && L->out_h % 2 == 0 &&
           L->out_w % 2 == 0 && sp->pad <= BAND_LEFT &&
           BAND_LEFT + (L->in_w + 15) / 16 * 16 <= BAND_W &&
           BAND_LEFT - sp->pad + (L->out_w - 1) * sp->stride + sp->kernel <= BAND_W &&
           pp->kind == NN_LAYER_POOL_MAX && pp->kernel == 2 && pp->stride == 2 && pp->pad == 0 &&
           P->out_h == L->out_h / 2 && P->out_w == L->out_w / 2 &&
           __builtin_cpu_supports("avx512f") && nn_onednn_avx512();
}

#else
/* No AVX-512 build of this file (not x86-64): nn_stem_rgb_fits is false, oneDNN computes the
 * first convolution, and the passes are never called. */

bool nn_stem_rgb_fits(const nn_net *net, int i)
{
    (void)net;
    (void)i;
    return false;
}
void nn_stem_rgb_forward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
void nn_stem_rgb_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n,
                               float *y)
{
    (void)net;
    (void)L;
    (void)P;
    (void)n;
    (void)y;
}
void nn_stem_rgb_backward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
#endif
