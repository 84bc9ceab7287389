/* Direct convolutions on AVX-512 for small nhwc layers (nn_direct_fits): forward, input
 * gradient and weight gradient written as register-blocked FMA loops, in place of oneDNN's
 * kernels for the layers they fit (drsch-mnist's conv2: 11x11x32 -> 7x7x64, 5x5 taps).
 *
 * Why: oneDNN 2.6 ran drsch-mnist's conv2 at 67-78% of the f32 peak (batch 100, 2-core Zen 5;
 * forward 3.0 ms, input gradient 3.0 ms, weight gradient 2.9 ms at 1 thread), the largest cost of
 * a training step and of encoding. These loops ran it at 2.4, 2.8 and 2.5 ms at 1 thread and
 * 1.27, 1.33 and 1.35 ms at 2 threads (83-95% of the peak).
 *
 * Layouts (dense): source nhwc or oneDNN's nChw16c (as its producer leaves it), output nhwc;
 * weights [KH][KW][IC][OC] (oneDNN's hwio) for the forward pass and the weight gradient,
 * [KW][KH][OC][IC] (oneDNN's dcab, a copy refreshed when the parameters change, w_bwd) for the
 * input gradient. Every output value is summed in an order that does not depend on the number
 * of threads: the forward pass and the input gradient give each value to one thread (tasks
 * handed out as the threads free up, so that a thread on a slower virtual CPU takes fewer); the
 * weight gradient splits the weights among the threads, in proportion to their measured rates,
 * each summing its share over the batch's images in order (two at a time, then added), and the
 * bias gradient splits its channels.
 *
 * Measured standalone on the same data (the "Why" figures); inside a training step they measured
 * 1.27, 1.30 and 1.56 ms at 2 threads (README, speed).
 *
 * In a training net the average pooling after such a convolution (drsch-mnist's pool2) is
 * computed with its forward pass, two images at a time (nn_direct_forward_pooled).
 *
 * A training net's convolution of a 2 x 2 output (drsch-mnist's conv3: 6x6x64 -> 2x2x128, 5x5
 * taps; L->direct_grouped) runs its forward pass and input gradient three whole images a block
 * and its weight gradient on the loops above with 8 images a register block: inside a training
 * step (2 threads, batch 100) its forward pass took 0.47-0.49 ms and its backward pass 1.05-1.10
 * ms against 0.61-0.63 and 1.17-1.23 ms for the unfolded source's products on oneDNN's sgemm. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn_internal.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

/* input pixels a row of the input gradient holds in registers (x 2 vectors each) */
#define MAX_SPAN 12

/* The shape, and where the source (and its gradient) keeps value (n, y, x, c): at
 * n*ih*iw*ic + (y*iw + x)*ps + (c/16)*cbs + c%16; nhwc: ps = ic, cbs = 16; oneDNN's blocked
 * nChw16c (L->direct_src16): ps = 16, cbs = ih*iw*16. */
typedef struct {
    int n, ih, iw, ic, oh, ow, oc, k;
    size_t ps, cbs;
} conv_shape;

static conv_shape shape_of(const nn_net *net, const nn_layer *L)
{
    conv_shape s = {net->cfg.batch, L->in_h,  L->in_w,        L->in_c, L->out_h,
                    L->out_w,       L->out_c, L->spec.kernel, 0,       0};
    s.ps = L->direct_src16 ? 16 : (size_t)s.ic;
    s.cbs = L->direct_src16 ? (size_t)s.ih * s.iw * 16 : 16;
    return s;
}

/* Offset of source pixel (n, y, x), channel 0. */
static inline size_t src_at(const conv_shape *s, int n, int y, int x)
{
    return (size_t)n * s->ih * s->iw * s->ic + ((size_t)y * s->iw + (size_t)x) * s->ps;
}

/* Output pixels ox0 .. ox0 + PB - 1 of R rows, 32 channels from ocb: bias, the K x K x IC taps,
 * ReLU. Row r is row oy + r % RPI of image n + r / RPI: the rows of one image (RPI = R), or of
 * RPI-row images (a small output's whole images, nn_direct_forward_grouped). R, RPI and PB are
 * constants where it is inlined, so the 2 x R x PB sums stay in registers (R x PB at most 14):
 * the rows share each weight vector loaded, which takes the weights' traffic from L2 down (a
 * scratch copy of the loop, 2-core Xeon: 76-77% of the FMA loop's speed with one row of 7 pixels,
 * 82-84% with two). So is PS, the source's pixel stride (0: s->ps), so that each broadcast takes
 * a constant offset rather than an index register (on the same Xeon, encoding +4.8% with
 * drsch-mnist's 32 and 16). */
static inline __attribute__((always_inline)) void fwd_block(const conv_shape *s, const float *x,
                                                            const float *w, const float *b,
                                                            float *y, int n, int oy, int ox0,
                                                            int ocb, const int R, const int RPI,
                                                            const int PB, const int PS, int relu)
{
    const size_t ps = PS ? (size_t)PS : s->ps, rs = (size_t)s->iw * ps, /* pixel, row strides */
        is = (size_t)s->ih * s->iw * s->ic;                             /* image stride */
    __m512 a0[14], a1[14];
    const __m512 b0 = _mm512_loadu_ps(b + ocb), b1 = _mm512_loadu_ps(b + ocb + 16);
#pragma GCC unroll 14
    for (int k = 0; k < R * PB; k++) {
        a0[k] = b0;
        a1[k] = b1;
    }
    for (int ky = 0; ky < s->k; ky++)
        for (int kx = 0; kx < s->k; kx++) {
            for (int cb = 0; cb < s->ic; cb += 16) {
                const float *xr = x + src_at(s, n, oy + ky, ox0 + kx) + (size_t)(cb / 16) * s->cbs;
                const float *wr = w + ((size_t)(ky * s->k + kx) * s->ic + cb) * s->oc + ocb;
#pragma GCC unroll 4
                for (int c = 0; c < 16; c++) {
                    const __m512 w0 = _mm512_loadu_ps(wr + (size_t)c * s->oc),
                                 w1 = _mm512_loadu_ps(wr + (size_t)c * s->oc + 16);
#pragma GCC unroll 14
                    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
                        for (int p = 0; p < PB; p++) {
                            const float *xp = xr + (size_t)(r / RPI) * is + (size_t)(r % RPI) * rs;
                            const __m512 v = _mm512_set1_ps(xp[(size_t)p * ps + c]);
                            a0[r * PB + p] = _mm512_fmadd_ps(v, w0, a0[r * PB + p]);
                            a1[r * PB + p] = _mm512_fmadd_ps(v, w1, a1[r * PB + p]);
                        }
                }
            }
        }
    const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        float *yr =
            y + (((size_t)(n + r / RPI) * s->oh + oy + r % RPI) * s->ow + ox0) * s->oc + ocb;
#pragma GCC unroll 8
        for (int p = 0; p < PB; p++) {
            const int k = r * PB + p;
            _mm512_storeu_ps(yr + (size_t)p * s->oc, relu ? _mm512_max_ps(a0[k], z) : a0[k]);
            _mm512_storeu_ps(yr + (size_t)p * s->oc + 16, relu ? _mm512_max_ps(a1[k], z) : a1[k]);
        }
    }
}

/* fwd_block over R = 1 row, R = 2 rows of one image or the same row of two consecutive images
 * (R = 2, RPI = 1: an odd row count's last rows), PB = 1 .. 7 (pb_of: rows of 8 are two blocks of
 * 4), and a source pixel stride of 16, 32 or s->ps (0), one function each */
typedef void (*fwd_fn)(const conv_shape *s, const float *x, const float *w, const float *b,
                       float *y, int n, int oy, int ox0, int ocb, int relu);
#define FWD_FN(NAME, R, RPI, P, S)                                                                 \
    static void fwd_##NAME##_##P##_##S(const conv_shape *s, const float *x, const float *w,        \
                                       const float *b, float *y, int n, int oy, int ox0, int ocb,  \
                                       int relu)                                                   \
    {                                                                                              \
        fwd_block(s, x, w, b, y, n, oy, ox0, ocb, R, RPI, P, S, relu);                             \
    }
#define FWD_FNS(P) FWD_FN(1, 1, 1, P, 0) FWD_FN(1, 1, 1, P, 16) FWD_FN(1, 1, 1, P, 32)
#define FWD2_FNS(P)                                                                                \
    FWD_FN(2, 2, 2, P, 0)                                                                          \
    FWD_FN(2, 2, 2, P, 16)                                                                         \
    FWD_FN(2, 2, 2, P, 32) FWD_FN(x, 2, 1, P, 0) FWD_FN(x, 2, 1, P, 16) FWD_FN(x, 2, 1, P, 32)
NN_EACH_1_TO_7(FWD_FNS)
NN_EACH_1_TO_7(FWD2_FNS)
#undef FWD_FN
#undef FWD_FNS
#undef FWD2_FNS
#define FWD_NAME(R, S)                                                                             \
    fwd_##R##_1_##S, fwd_##R##_2_##S, fwd_##R##_3_##S, fwd_##R##_4_##S, fwd_##R##_5_##S,           \
        fwd_##R##_6_##S, fwd_##R##_7_##S
/* [FWD_ONE, FWD_PAIR or FWD_CROSS][stride: general, 16, 32][PB - 1] */
enum { FWD_ONE, FWD_PAIR, FWD_CROSS };
static const fwd_fn FWD[3][3][7] = {{{FWD_NAME(1, 0)}, {FWD_NAME(1, 16)}, {FWD_NAME(1, 32)}},
                                    {{FWD_NAME(2, 0)}, {FWD_NAME(2, 16)}, {FWD_NAME(2, 32)}},
                                    {{FWD_NAME(x, 0)}, {FWD_NAME(x, 16)}, {FWD_NAME(x, 32)}}};
#undef FWD_NAME

/* fwd_block over G whole images of 2 x 2 output pixels (R = 2G rows of PB = 2, RPI = 2), G = 1 ..
 * NN_DIRECT_GROUP_MAX, and a source pixel stride of 64 or s->ps (0) */
typedef void (*grp_fn)(const conv_shape *s, const float *x, const float *w, const float *b,
                       float *y, int n, int ocb, int relu);
#define GRP_FN(G, S)                                                                               \
    static void grp_##G##_##S(const conv_shape *s, const float *x, const float *w, const float *b, \
                              float *y, int n, int ocb, int relu)                                  \
    {                                                                                              \
        fwd_block(s, x, w, b, y, n, 0, 0, ocb, 2 * G, 2, 2, S, relu);                              \
    }
#define GRP_FNS(G) GRP_FN(G, 0) GRP_FN(G, 64)
#define EACH_G(M) M(1) M(2) M(3)
EACH_G(GRP_FNS)
#undef GRP_FN
#undef GRP_FNS
#undef EACH_G
/* [stride: general, 64][G - 1] */
static const grp_fn GRP[2][NN_DIRECT_GROUP_MAX] = {{grp_1_0, grp_2_0, grp_3_0},
                                                   {grp_1_64, grp_2_64, grp_3_64}};

/* One block row of output (FWD_ONE: row oy of image n; FWD_PAIR: rows oy and oy + 1 of image n;
 * FWD_CROSS: row oy of images n and n + 1), all channels, pb pixels a block */
static void fwd_rows(const conv_shape *s, const float *x, const float *w, const float *b, float *y,
                     int n, int oy, int kind, int pb, int relu)
{
    const fwd_fn f = FWD[kind][s->ps == 16 ? 1 : s->ps == 32 ? 2 : 0][pb - 1];
    for (int ocb = 0; ocb < s->oc; ocb += 32)
        for (int ox0 = 0; ox0 < s->ow; ox0 += pb)
            f(s, x, w, b, y, n, oy, ox0, ocb, relu);
}

/* Block row j of images n .. n + count - 1 (count 1 or 2), pb pixels a block: for j < 2 x (OH /
 * 2), a pair of rows of one image; an odd row count's last rows, one of each image, are the last
 * block row, a pair too (a lone row cost 16% more per row: each weight vector loaded serves half as
 * many pixels). blocks_of(s) block rows in all. */
static void fwd_task(const conv_shape *s, const float *x, const float *w, const float *b, float *y,
                     int n, int count, int j, int pb, int relu)
{
    const int half = s->oh / 2;
    if (j >= 2 * half)
        fwd_rows(s, x, w, b, y, n, s->oh - 1, count == 2 ? FWD_CROSS : FWD_ONE, pb, relu);
    else if (j / half < count)
        fwd_rows(s, x, w, b, y, n + j / half, j % half * 2, FWD_PAIR, pb, relu);
}

static int blocks_of(const conv_shape *s) { return s->oh / 2 * 2 + s->oh % 2; }

/* rows of up to 7 in one block, rows of 8 in two blocks of 4 */
static int pb_of(const conv_shape *s) { return s->ow > 7 ? s->ow / 2 : s->ow; }

void nn_direct_forward(const nn_net *net, const nn_layer *L)
{
    if (L->direct_grouped) {
        nn_direct_forward_grouped(net, L);
        return;
    }
    const conv_shape s = shape_of(net, L);
    const float *x = nn_mem_ptr(L->src), *w = nn_mem_ptr(L->w), *b = nn_mem_ptr(L->b);
    float *y = nn_mem_ptr(L->dst);
    const int nb = blocks_of(&s), pairs = (s.n + 1) / 2, pb = pb_of(&s);
#pragma omp parallel for schedule(dynamic, nb)
    for (int t = 0; t < pairs * nb; t++) {
        const int n = t / nb * 2;
        fwd_task(&s, x, w, b, y, n, s.n - n < 2 ? 1 : 2, t % nb, pb, L->spec.relu);
    }
}

void nn_direct_forward_images(const nn_net *net, const nn_layer *L, const float *x, float *y,
                              int count)
{
    const conv_shape s = shape_of(net, L);
    const float *w = nn_mem_ptr(L->w), *b = nn_mem_ptr(L->b);
    const int nb = blocks_of(&s), pb = pb_of(&s);
    for (int j = 0; j < nb; j++)
        fwd_task(&s, x, w, b, y, 0, count, j, pb, L->spec.relu);
}

/* The block rows of count (1 or 2) images (nn_direct_forward_images), with the `ahead` 64-byte
 * lines at `next` prefetched for writing, an equal share before each block row. */
__attribute__((target("prfchw"))) static void fwd_images_ahead(const nn_net *net, const nn_layer *L,
                                                               const float *x, float *y, int count,
                                                               const float *next, size_t ahead)
{
    const conv_shape s = shape_of(net, L);
    const float *w = nn_mem_ptr(L->w), *b = nn_mem_ptr(L->b);
    const int nb = blocks_of(&s), pb = pb_of(&s);
    for (int j = 0; j < nb; j++) {
        for (size_t l = (size_t)j * ahead / nb; l < (size_t)(j + 1) * ahead / nb; l++)
            _mm_prefetch((const char *)next + l * 64, _MM_HINT_ET0);
        fwd_task(&s, x, w, b, y, 0, count, j, pb, L->spec.relu);
    }
}

/* Training: the convolution two images at a time into the stack, then for each image its ReLU
 * mask (a bit per value: > 0) and the pooling; the pooled lines are fetched for writing while
 * the convolution runs (they were last touched a step before: the pooling's stores had waited on
 * them, as in nn_stem.c). Where the pooling ran over the whole layer's output, that output (1.25
 * MB for drsch-mnist's conv2 at batch 100) went to memory and was read back by the pooling, and
 * again by the pooling's backward pass for the ReLU's gradient. drsch-mnist, batch 100, 2
 * threads, 2-core Zen 5, `drsch bench train --passes`, medians of ten alternate runs: conv2 and
 * pool2's forward passes 1.227 -> 1.195 ms, the step 5.985 -> 5.928 ms, images/s +0.9% (without
 * the prefetch the two passes took 1.221 ms). Bit-identical trained models. */
void nn_direct_forward_pooled(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    const conv_shape s = shape_of(net, L);
    const float *x = nn_mem_ptr(L->src);
    float *y = nn_mem_ptr(P->dst);
    uint16_t *mask = L->spec.relu ? (uint16_t *)(void *)nn_mem_ptr(L->relu_mask) : NULL;
    const size_t plane = (size_t)s.oh * s.ow * s.oc, xi = (size_t)s.ih * s.iw * s.ic,
                 pooled = (size_t)P->out_h * P->out_w * P->out_c;
    const bool past = nn_write_past_caches((size_t)s.n * pooled * sizeof(float));
    const int pairs = (s.n + 1) / 2;
#pragma omp parallel
    {
        _Alignas(64) float c[2 * NN_DIRECT_POOL_PLANE];
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < pairs; p++) {
            const int n = 2 * p, count = s.n - n < 2 ? 1 : 2;
            float *yn = y + (size_t)n * pooled;
            fwd_images_ahead(net, L, x + (size_t)n * xi, c, count, yn,
                             past ? 0 : (size_t)count * pooled * sizeof *y / 64);
            for (int k = 0; k < count; k++) {
                const float *ck = c + (size_t)k * plane;
                if (mask) {
                    uint16_t *mk = mask + (size_t)(n + k) * (plane / 16);
                    for (size_t v = 0; v < plane / 16; v++)
                        mk[v] = _mm512_cmp_ps_mask(_mm512_load_ps(ck + 16 * v), _mm512_setzero_ps(),
                                                   _CMP_GT_OQ);
                }
                nn_pool_image_forward(net, P, ck, yn + (size_t)k * pooled, past);
            }
        }
    }
}

bool nn_direct_group_fits(const nn_net *net, const nn_layer *L)
{
    const nn_layer_spec *sp = &L->spec;
    return net->cfg.precision == NN_PRECISION_F32 && sp->kind == NN_LAYER_CONV && sp->stride == 1 &&
           sp->pad == 0 && L->out_h == 2 && L->out_w == 2 && L->in_c % 16 == 0 &&
           L->out_c % 32 == 0 && __builtin_cpu_supports("avx512f") && nn_onednn_avx512();
}

void nn_direct_forward_group(const nn_net *net, const nn_layer *L, const float *x, float *y, int g)
{
    const conv_shape s = shape_of(net, L);
    const float *w = nn_mem_ptr(L->w_fwd ? L->w_fwd : L->w), *b = nn_mem_ptr(L->b);
    const grp_fn f = GRP[s.ps == 64][g - 1];
    for (int ocb = 0; ocb < s.oc; ocb += 32)
        f(&s, x, w, b, y, 0, ocb, L->spec.relu);
}

/* The grouped passes' blocks: groups_of(s) blocks of NN_DIRECT_GROUP_MAX images, the last one
 * shorter; block k starts at image *n and holds group_at's return value of them. */
static int groups_of(const conv_shape *s)
{
    return (s->n + NN_DIRECT_GROUP_MAX - 1) / NN_DIRECT_GROUP_MAX;
}
static int group_at(const conv_shape *s, int k, int *n)
{
    *n = k * NN_DIRECT_GROUP_MAX;
    return s->n - *n < NN_DIRECT_GROUP_MAX ? s->n - *n : NN_DIRECT_GROUP_MAX;
}

void nn_direct_forward_grouped(const nn_net *net, const nn_layer *L)
{
    const conv_shape s = shape_of(net, L);
    const float *x = nn_mem_ptr(L->src), *w = nn_mem_ptr(L->w_fwd ? L->w_fwd : L->w),
                *b = nn_mem_ptr(L->b);
    float *y = nn_mem_ptr(L->dst);
    const grp_fn *fs = GRP[s.ps == 64];
    const int groups = groups_of(&s);
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < groups; k++) {
        int n;
        const int g = group_at(&s, k, &n);
        for (int ocb = 0; ocb < s.oc; ocb += 32)
            fs[g - 1](&s, x, w, b, y, n, ocb, L->spec.relu);
    }
}

/* Input gradient of image n, 32 input channels from icb: each input row sums, over the kernel
 * rows that reach it, the output gradient's row through the weights; output pixel j reaches
 * input pixel j + kx. K and OW are constants where it is inlined, so the row's 2 x (OW + K - 1)
 * sums stay in registers; so is OCS, the output gradient's pixel stride (0: s->oc), as PS above. */
static inline __attribute__((always_inline)) void
bwd_data_image(const conv_shape *s, const float *dy, const float *wt, float *dx, int n, int icb,
               const int K, const int OW, const int OCS)
{
    const int span = OW + K - 1;
    const size_t oc = OCS ? (size_t)OCS : (size_t)s->oc;
    for (int iy = 0; iy < s->ih; iy++) {
        __m512 a0[MAX_SPAN], a1[MAX_SPAN];
#pragma GCC unroll 12
        for (int p = 0; p < span; p++) {
            a0[p] = _mm512_setzero_ps();
            a1[p] = _mm512_setzero_ps();
        }
        for (int ky = 0; ky < K; ky++) {
            const int oy = iy - ky;
            if (oy < 0 || oy >= s->oh)
                continue;
            const float *gr = dy + ((size_t)n * s->oh + oy) * OW * s->oc;
#pragma GCC unroll 8
            for (int kx = 0; kx < K; kx++) {
                const float *wr = wt + (size_t)(kx * K + ky) * s->oc * s->ic + icb;
#pragma GCC unroll 2
                for (int o = 0; o < s->oc; o++) {
                    const __m512 w0 = _mm512_loadu_ps(wr + (size_t)o * s->ic),
                                 w1 = _mm512_loadu_ps(wr + (size_t)o * s->ic + 16);
#pragma GCC unroll 8
                    for (int j = 0; j < OW; j++) {
                        const __m512 g = _mm512_set1_ps(gr[(size_t)j * oc + o]);
                        a0[kx + j] = _mm512_fmadd_ps(g, w0, a0[kx + j]);
                        a1[kx + j] = _mm512_fmadd_ps(g, w1, a1[kx + j]);
                    }
                }
            }
        }
        float *xr = dx + src_at(s, n, iy, 0) + (size_t)(icb / 16) * s->cbs;
#pragma GCC unroll 12
        for (int p = 0; p < span; p++) {
            _mm512_storeu_ps(xr + (size_t)p * s->ps, a0[p]);
            _mm512_storeu_ps(xr + (size_t)p * s->ps + s->cbs, a1[p]);
        }
    }
}

/* bwd_data_image with (K, OW) = (3 or 5, 1 .. 8) and an output gradient pixel stride of 64 or
 * s->oc (0), one function each */
typedef void (*bwd_fn)(const conv_shape *s, const float *dy, const float *wt, float *dx, int n,
                       int icb);
#define BWD_FN(K, O, S)                                                                            \
    static void bwd_##K##_##O##_##S(const conv_shape *s, const float *dy, const float *wt,         \
                                    float *dx, int n, int icb)                                     \
    {                                                                                              \
        bwd_data_image(s, dy, wt, dx, n, icb, K, O, S);                                            \
    }
#define BWD3_FN(O) BWD_FN(3, O, 0) BWD_FN(3, O, 64)
#define BWD5_FN(O) BWD_FN(5, O, 0) BWD_FN(5, O, 64)
NN_EACH_1_TO_8(BWD3_FN)
NN_EACH_1_TO_8(BWD5_FN)
#undef BWD_FN
#define BWD3_0(O) bwd_3_##O##_0,
#define BWD3_64(O) bwd_3_##O##_64,
#define BWD5_0(O) bwd_5_##O##_0,
#define BWD5_64(O) bwd_5_##O##_64,
static const bwd_fn BWD3[2][8] = {{NN_EACH_1_TO_8(BWD3_0)}, {NN_EACH_1_TO_8(BWD3_64)}};
static const bwd_fn BWD5[2][8] = {{NN_EACH_1_TO_8(BWD5_0)}, {NN_EACH_1_TO_8(BWD5_64)}};
#undef BWD3_FN
#undef BWD5_FN
#undef BWD3_0
#undef BWD3_64
#undef BWD5_0
#undef BWD5_64

/* Input gradient of G whole images of a 2 x 2 output (a training net's grouped layer,
 * L->direct_grouped), 32 input channels from icb, through kernel tap (ky, kx): each of the 4G
 * output pixels' gradient times the tap's weights, summed over the output channels in order in
 * registers (24 sums for G = 3, so each weight vector loaded serves 12 pixels, as in the forward
 * pass), then added to the input pixel the tap takes it to. OCS, the output gradient's pixel
 * stride, as above (0: s->oc). */
static inline __attribute__((always_inline)) void bwd_group_tap(const conv_shape *s,
                                                                const float *dy, const float *wt,
                                                                float *dx, int n, int icb, int ky,
                                                                int kx, const int G, const int OCS)
{
    const size_t oc = OCS ? (size_t)OCS : (size_t)s->oc;
    __m512 a0[4 * NN_DIRECT_GROUP_MAX], a1[4 * NN_DIRECT_GROUP_MAX];
#pragma GCC unroll 12
    for (int r = 0; r < 4 * G; r++)
        a0[r] = a1[r] = _mm512_setzero_ps();
    const float *wr = wt + (size_t)(kx * s->k + ky) * oc * s->ic + icb;
    const float *g = dy + (size_t)n * 4 * oc;
#pragma GCC unroll 2
    for (size_t o = 0; o < oc; o++) {
        const __m512 w0 = _mm512_loadu_ps(wr + o * s->ic),
                     w1 = _mm512_loadu_ps(wr + o * s->ic + 16);
#pragma GCC unroll 12
        for (int r = 0; r < 4 * G; r++) {
            const __m512 v = _mm512_set1_ps(g[(size_t)r * oc + o]);
            a0[r] = _mm512_fmadd_ps(v, w0, a0[r]);
            a1[r] = _mm512_fmadd_ps(v, w1, a1[r]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < 4 * G; r++) {
        float *d =
            dx + src_at(s, n + r / 4, r % 4 / 2 + ky, r % 2 + kx) + (size_t)(icb / 16) * s->cbs;
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), a0[r]));
        _mm512_storeu_ps(d + s->cbs, _mm512_add_ps(_mm512_loadu_ps(d + s->cbs), a1[r]));
    }
}

/* The input gradient of images n .. n + G - 1 (G = 1 .. NN_DIRECT_GROUP_MAX), tap by tap in
 * order, so that each input value receives the same sums in the same order whatever the
 * grouping; an output gradient pixel stride of 128 or s->oc (0), one function each */
typedef void (*bwd_grp_fn)(const conv_shape *s, const float *dy, const float *wt, float *dx, int n);
#define BWD_GRP_FN(G, S)                                                                           \
    static void bwd_grp_##G##_##S(const conv_shape *s, const float *dy, const float *wt,           \
                                  float *dx, int n)                                                \
    {                                                                                              \
        memset(dx + (size_t)n * s->ih * s->iw * s->ic, 0,                                          \
               (size_t)G * s->ih * s->iw * s->ic * sizeof *dx);                                    \
        for (int ky = 0; ky < s->k; ky++)                                                          \
            for (int kx = 0; kx < s->k; kx++)                                                      \
                for (int icb = 0; icb < s->ic; icb += 32)                                          \
                    bwd_group_tap(s, dy, wt, dx, n, icb, ky, kx, G, S);                            \
    }
#define BWD_GRP_FNS(G) BWD_GRP_FN(G, 0) BWD_GRP_FN(G, 128)
BWD_GRP_FNS(1)
BWD_GRP_FNS(2)
BWD_GRP_FNS(3)
#undef BWD_GRP_FN
#undef BWD_GRP_FNS
/* [output gradient pixel stride: general, 128][G - 1] */
static const bwd_grp_fn BWD_GRP[2][NN_DIRECT_GROUP_MAX] = {
    {bwd_grp_1_0, bwd_grp_2_0, bwd_grp_3_0}, {bwd_grp_1_128, bwd_grp_2_128, bwd_grp_3_128}};

/* The input gradient of a direct_grouped convolution, image group by image group, and with each
 * group the backward pass of the own pooling P before it when P is given (P->pool_bwd_by_next),
 * which reads the group's input gradient while it is in this thread's cache and stores its own
 * output past the caches. Both threads' passes before had read every image's pooling gradient
 * (a direct convolution's weight gradient splits the weights, not the images), so each line a
 * store took had first to be taken from the other core. drsch-mnist's pool2 (batch 100, 2
 * threads, 2-core Zen 5, ten alternate runs of `drsch bench train --threads 2 --no-limits
 * --repetitions 3 --passes`, medians): as a pass of its own 0.098 ms; here, stored through the
 * caches, it added 0.100 ms to conv3's pass, with its lines prefetched for writing 0.050, and
 * stored past the caches 0.030 (conv2's passes, which then read it from memory, 2.484 -> 2.495
 * ms; the step 5.884 -> 5.834 ms). */
static void backward_data_grouped(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    const conv_shape s = shape_of(net, L);
    const float *dy = nn_mem_ptr(L->diff_dst), *wt = nn_mem_ptr(L->w_bwd);
    float *dx = nn_mem_ptr(L->diff_src);
    const bwd_grp_fn *fs = BWD_GRP[s.oc == 128];
    const int groups = groups_of(&s);
    const float *relu_dst = NULL;
    const uint16_t *relu_bits = NULL;
    /* past the caches as the pooling's own pass would store it (L's source comes from a direct
     * convolution, whose weight gradient reads it on both threads) */
    const bool past = P && nn_pool_backward_past(net, P);
    if (P)
        nn_pool_relu_of(net, P, &relu_dst, &relu_bits);
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1) nowait
        for (int k = 0; k < groups; k++) {
            int n;
            const int g = group_at(&s, k, &n);
            fs[g - 1](&s, dy, wt, dx, n);
            if (P)
                nn_pool_backward_images(net, P, relu_dst, relu_bits, n, n + g, past);
        }
        if (past)
            _mm_sfence(); /* this thread's streamed pooling gradients */
    }
}

void nn_direct_backward_data(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    if (L->direct_grouped) {
        backward_data_grouped(net, L, P);
        return;
    }
    const conv_shape s = shape_of(net, L);
    const float *dy = nn_mem_ptr(L->diff_dst), *wt = nn_mem_ptr(L->w_bwd);
    float *dx = nn_mem_ptr(L->diff_src);
    const int c64 = s.oc == 64;
    const bwd_fn f = s.k == 3 ? BWD3[c64][s.ow - 1] : BWD5[c64][s.ow - 1];
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < s.n * (s.ic / 32); t++)
        f(&s, dy, wt, dx, t / (s.ic / 32), t % (s.ic / 32) * 32);
}

#define WG_IC 8     /* input channels of a weight-gradient task (x WG_OC output channels) */
#define WG_OC 32    /* output channels of a weight-gradient block (2 vectors) */
#define WG_IMAGES 2 /* images summed in registers before they are added to the gradient */
/* the same for outputs of under 16 pixels (drsch-mnist's conv3: 4), 32 pixels a block; 8 and 16
 * measured the same */
#define WG_SMALL_IMAGES 8

/* The gradient block of kernel tap (ky, kx), input channels c0 .. c0 + WG_IC - 1 and output
 * channels ob .. ob + WG_OC - 1 over images n0 .. n1 - 1, summed in registers from zero (images,
 * rows and pixels in order), then added to d (the block's first value in dw). OW, PS and OC (the
 * output width, the source's pixel stride and the output channels) are constants where it is
 * inlined (0: s's), so a row's pixels unroll with constant offsets and the row pointers advance
 * by constant steps (GCC had recomputed them from the indices at every row, with general
 * registers spilled: 15% of the pass outside its FMA loop). */
static inline __attribute__((always_inline)) void
wgrad_block(const conv_shape *s, const float *x, const float *dy, float *d, int n0, int n1, int ky,
            int kx, int c0, int ob, const int OW, const int PS, const int OC)
{
    const int ow = OW ? OW : s->ow;
    const size_t ps = PS ? (size_t)PS : s->ps, oc = OC ? (size_t)OC : (size_t)s->oc;
    const size_t xrow = (size_t)s->iw * ps, grow = (size_t)ow * oc;
    __m512 a[WG_IC][2];
#pragma GCC unroll 8
    for (int i = 0; i < WG_IC; i++)
        a[i][0] = a[i][1] = _mm512_setzero_ps();
    for (int n = n0; n < n1; n++) {
        const float *xr = x + src_at(s, n, ky, kx) + (size_t)(c0 / 16) * s->cbs + c0 % 16;
        const float *gr = dy + (size_t)n * s->oh * grow + ob;
        for (int oy = 0; oy < s->oh; oy++, xr += xrow, gr += grow) {
#pragma GCC unroll 8
            for (int ox = 0; ox < ow; ox++) {
                const float *g = gr + (size_t)ox * oc;
                const __m512 g0 = _mm512_loadu_ps(g), g1 = _mm512_loadu_ps(g + 16);
#pragma GCC unroll 8
                for (int i = 0; i < WG_IC; i++) {
                    const __m512 v = _mm512_set1_ps(xr[(size_t)ox * ps + i]);
                    a[i][0] = _mm512_fmadd_ps(v, g0, a[i][0]);
                    a[i][1] = _mm512_fmadd_ps(v, g1, a[i][1]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < WG_IC; i++)
#pragma GCC unroll 2
        for (int q = 0; q < 2; q++) {
            float *p = d + (size_t)i * oc + q * 16;
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a[i][q]));
        }
}

/* wgrad_block for drsch-mnist's conv2 (7 output pixels a row, a source of 32 channels nhwc, 64
 * output channels; 6 a row with drsch train's default 26x26 crops, where the general form had
 * taken 1.085x the forward pass's samples in a profile of `drsch train` and this one takes
 * 1.02x), its conv3 (2 a row, 64 and 128 channels), and for any shape */
typedef void (*wgrad_fn)(const conv_shape *s, const float *x, const float *dy, float *d, int n0,
                         int n1, int ky, int kx, int c0, int ob);
static void wgrad_7_32_64(const conv_shape *s, const float *x, const float *dy, float *d, int n0,
                          int n1, int ky, int kx, int c0, int ob)
{
    wgrad_block(s, x, dy, d, n0, n1, ky, kx, c0, ob, 7, 32, 64);
}
static void wgrad_6_32_64(const conv_shape *s, const float *x, const float *dy, float *d, int n0,
                          int n1, int ky, int kx, int c0, int ob)
{
    wgrad_block(s, x, dy, d, n0, n1, ky, kx, c0, ob, 6, 32, 64);
}
static void wgrad_2_64_128(const conv_shape *s, const float *x, const float *dy, float *d, int n0,
                           int n1, int ky, int kx, int c0, int ob)
{
    wgrad_block(s, x, dy, d, n0, n1, ky, kx, c0, ob, 2, 64, 128);
}
static void wgrad_any(const conv_shape *s, const float *x, const float *dy, float *d, int n0,
                      int n1, int ky, int kx, int c0, int ob)
{
    wgrad_block(s, x, dy, d, n0, n1, ky, kx, c0, ob, 0, 0, 0);
}

/* Weight and bias gradients: task t is kernel tap (ky, kx) and input channels WG_IC
 * (t % (IC / WG_IC)) .. +WG_IC - 1 for all output channels in blocks of WG_OC; the threads split
 * the tasks, each summing its own over every image. So each thread reads every image's source
 * and gradient, half of which the other thread wrote (the passes before split the images): while
 * it works on two images it prefetches the next two into its L2, a share at each task. Without
 * that, the pass ran 1.67x as fast on 2 threads as on 1 (drsch-mnist's conv2, batch 100, 2-core
 * Xeon; 1.87x with it: training +2.5%, 1 thread unchanged; prefetching 2 or 3 images further
 * ahead measured the same). Each task reads every image, so the tasks cannot be handed out
 * dynamically without reading the batch again: each thread's share follows instead its rate
 * (tasks a second) in the passes before, so a thread on a core that runs slower (a virtual CPU
 * sharing its core) gets fewer. Each task's sums are the same whichever thread computes it.
 * With this and the other passes' tasks handed out dynamically, against static shares
 * (drsch-mnist, 2 threads, 2-core Zen 5, `drsch bench train --no-limits --repetitions 3` run
 * alternately, ten each): +10.1% and +10.0% with a quarter of CPU 1 or CPU 0 taken in
 * half-millisecond slices (ci/slow-core), +0.5% and -0.5% (twenty each) on the quiet machine;
 * of that, the rates here against equal shares: +3.1% and +4.1% (twelve each). */
void nn_direct_backward_weights(const nn_net *net, nn_layer *L)
{
    const conv_shape s = shape_of(net, L);
    const float *x = nn_mem_ptr(L->src), *dy = nn_mem_ptr(L->diff_dst);
    float *dw = nn_mem_ptr(L->dw), *db = nn_mem_ptr(L->db);
    const int per_tap = s.ic / WG_IC, ntask = s.k * s.k * per_tap;
    const size_t pixels = (size_t)s.n * s.oh * s.ow;
    const size_t xi = (size_t)s.ih * s.iw * s.ic, gi = (size_t)s.oh * s.ow * s.oc; /* per image */
    const wgrad_fn f = s.ow == 7 && s.ps == 32 && s.oc == 64    ? wgrad_7_32_64
                       : s.ow == 6 && s.ps == 32 && s.oc == 64  ? wgrad_6_32_64
                       : s.ow == 2 && s.ps == 64 && s.oc == 128 ? wgrad_2_64_128
                                                                : wgrad_any;
    const int step = s.oh * s.ow >= 16 ? WG_IMAGES : WG_SMALL_IMAGES;
    double took[NN_RATE_THREADS] = {0};
    int share[NN_RATE_THREADS] = {0}, team = 1;
#pragma omp parallel
    {
#ifdef _OPENMP
        const int th = omp_get_thread_num(), nth = omp_get_num_threads();
#else
        const int th = 0, nth = 1;
#endif
        int lo, hi;
        nn_rate_share(L->wg_rate, ntask, th, nth, &lo, &hi);
        const double t0 = nn_wall();
        for (int t = lo; t < hi; t++)
            memset(dw + (size_t)t * WG_IC * s.oc, 0, (size_t)WG_IC * s.oc * sizeof *dw);
        const size_t mine = (size_t)(hi - lo);
        for (int n0 = 0; n0 < s.n; n0 += step) {
            const int n1 = n0 + step < s.n ? n0 + step : s.n,
                      n2 = n1 + step < s.n ? n1 + step : s.n;
            /* the next images' source and gradient, a share of their lines at each task */
            const char *px = (const char *)(x + (size_t)n1 * xi),
                       *pg = (const char *)(dy + (size_t)n1 * gi);
            const size_t lx = (size_t)(n2 - n1) * xi * sizeof *x / 64,
                         lg = (size_t)(n2 - n1) * gi * sizeof *dy / 64;
            for (int t = lo; t < hi; t++) {
                const size_t k = (size_t)(t - lo);
                for (size_t l = k * lx / mine; l < (k + 1) * lx / mine; l++)
                    _mm_prefetch(px + l * 64, _MM_HINT_T1);
                for (size_t l = k * lg / mine; l < (k + 1) * lg / mine; l++)
                    _mm_prefetch(pg + l * 64, _MM_HINT_T1);
                const int tap = t / per_tap, c0 = t % per_tap * WG_IC;
                const int ky = tap / s.k, kx = tap % s.k;
                for (int ob = 0; ob < s.oc; ob += WG_OC)
                    f(&s, x, dy, dw + ((size_t)tap * s.ic + c0) * s.oc + ob, n0, n1, ky, kx, c0,
                      ob);
            }
        }
        if (th < NN_RATE_THREADS)
            took[th] = nn_wall() - t0, share[th] = hi - lo;
        if (th == 0)
            team = nth;
        /* bias gradient: each thread its blocks of 16 channels, rows in order */
        for (int ob = th * 16; ob < s.oc; ob += nth * 16) {
            __m512 acc = _mm512_setzero_ps();
            for (size_t r = 0; r < pixels; r++)
                acc = _mm512_add_ps(acc, _mm512_loadu_ps(dy + r * s.oc + ob));
            _mm512_storeu_ps(db + ob, acc);
        }
    }
    for (int i = 0; i < team && i < NN_RATE_THREADS; i++)
        nn_rate_note(L->wg_rate, i, share[i], took[i]);
}

bool nn_direct_fits(const nn_net *net, const nn_layer *L)
{
    const nn_layer_spec *sp = &L->spec;
    return net->cfg.precision == NN_PRECISION_F32 && sp->kind == NN_LAYER_CONV && sp->stride == 1 &&
           sp->pad == 0 && (sp->kernel == 3 || sp->kernel == 5) && L->out_w >= 1 && L->out_w <= 8 &&
           L->in_c % 32 == 0 && L->out_c % 64 == 0 && __builtin_cpu_supports("avx512f") &&
           nn_onednn_avx512();
}

#else
/* No AVX-512 build of this file (not x86-64): nn_direct_fits is false, oneDNN computes every
 * convolution, and the three passes are never called. */

bool nn_direct_fits(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
    return false;
}
void nn_direct_forward(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
}
void nn_direct_forward_images(const nn_net *net, const nn_layer *L, const float *x, float *y,
                              int count)
{
    (void)net;
    (void)L;
    (void)x;
    (void)y;
    (void)count;
}
void nn_direct_forward_pooled(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
bool nn_direct_group_fits(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
    return false;
}
void nn_direct_forward_group(const nn_net *net, const nn_layer *L, const float *x, float *y, int g)
{
    (void)net;
    (void)L;
    (void)x;
    (void)y;
    (void)g;
}
void nn_direct_forward_grouped(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
}
void nn_direct_backward_data(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
void nn_direct_backward_weights(const nn_net *net, nn_layer *L)
{
    (void)net;
    (void)L;
}
#endif
