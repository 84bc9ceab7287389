/* The first convolution of a network on drsch's AVX-512 loops, with the average pooling after it
 * computed in the same passes (nn_stem_fits: one input channel, no padding, stride 1 or 2, 3x3 or
 * 5x5 taps, 32k output channels, the pooling one of nn_pool.c's, AVX-512 on the CPU and in oneDNN,
 * no input gradient asked for). In f32 in bf16 (inference) nets too: weights and sums stay f32 and
 * the pooled output is f32, converted to bf16 by the next layer's reorder (nn_layers.c).
 * nn_stem_fits also takes a first convolution of three channels with a 2x2 max pooling after it
 * (drsch-reid's), which nn_stem_rgb.c computes: the passes below hand that case over to it.
 *
 * Why: in a training step of drsch-mnist (batch 100, 2 threads, 2-core Zen 5) oneDNN 2.6's conv1
 * took 0.12 ms forward and 0.09 ms for its weight gradient, and the pooling after it 0.12 and
 * 0.09 ms, most of it moving the convolution's 1.8 MB output (12 x 12 x 32 floats an image) and
 * its gradient through memory between the passes. Here the forward pass pools each image's
 * convolution output while it is in the cache (on the stack) and keeps only the ReLU's mask, a
 * bit per value; the backward pass turns each image's pooling gradient, masked, into the weight
 * gradient without writing it out.
 *
 * Layouts: source the net's input (nchw of one channel), weights hwio ([KH][KW][OC], the
 * parameter block's layout); the convolution's output nhwc but never written (the layer's dst
 * has no memory, its descriptor tells the pooling the layout); the pooling's output goes to the
 * pooling layer's dst as nn_pool.c lays it out, summed as nn_pool.c sums it, past the caches
 * when it is larger than the threads' L2s (nn_write_past_caches, nn_pool_image_forward), or for
 * one image to the caller's buffer through the caches
 * (nn_stem_forward_image: inference nets' image-by-image chain, nn_forward.c). Every value is
 * summed in an order that does not depend on the number of threads: the forward pass gives each
 * image to one thread; the backward pass sums each image's weight and bias gradients in registers,
 * adds them up by groups of NN_STEM_GROUP images (one thread a group, images in order), then the
 * groups in order. Images and groups are handed out as the threads free up. */
#include <stdint.h>
#include <string.h>

#include "nn_internal.h"

/* the largest convolution output of one image the passes keep on the stack (floats) */
#define STEM_PLANE_MAX 8192

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

/* output pixels a forward block holds in registers (x 2 vectors each) */
#define MAX_PB 12

typedef struct {
    int n, ih, iw, oh, ow, oc, k, s;
} stem_shape;

static stem_shape shape_of(const nn_net *net, const nn_layer *L)
{
    return (stem_shape){net->cfg.batch, L->in_h,  L->in_w,        L->out_h,
                        L->out_w,       L->out_c, L->spec.kernel, L->spec.stride};
}

/* Output pixels ox0 .. ox0 + PB - 1 of row oy of one image, 32 channels from ocb: the K x K taps
 * summed from zero in row order, then the bias, then the ReLU. PB and the stride S are constants
 * where it is inlined, so the 2 x PB sums stay in registers and the PB source values a tap reads
 * are at fixed offsets. */
static inline __attribute__((always_inline)) void
fwd_block(const stem_shape *s, const float *x, const float *w, const float *b, float *c,
          uint16_t *mask, int oy, int ox0, int ocb, const int PB, const int S, int relu)
{
    __m512 a0[MAX_PB], a1[MAX_PB];
#pragma GCC unroll 12
    for (int p = 0; p < PB; p++) {
        a0[p] = _mm512_setzero_ps();
        a1[p] = _mm512_setzero_ps();
    }
    for (int ky = 0; ky < s->k; ky++) {
        const float *xr = x + (size_t)(oy * S + ky) * s->iw + (size_t)ox0 * S;
        for (int kx = 0; kx < s->k; kx++) {
            const float *wr = w + (size_t)(ky * s->k + kx) * s->oc + ocb, *xk = xr + kx;
            /* xk made opaque: else GCC keeps one tap's broadcasts for a later tap that reads the
             * same values (at stride 2 tap kx + 2 of pixel p reads tap kx's of pixel p + 1), runs
             * out of registers and spills them (measured 20% slower) */
            __asm__("" : "+r"(xk));
            const __m512 w0 = _mm512_loadu_ps(wr), w1 = _mm512_loadu_ps(wr + 16);
#pragma GCC unroll 12
            for (int p = 0; p < PB; p++) {
                const __m512 v = _mm512_set1_ps(xk[p * S]);
                a0[p] = _mm512_fmadd_ps(v, w0, a0[p]);
                a1[p] = _mm512_fmadd_ps(v, w1, a1[p]);
            }
        }
    }
    const __m512 b0 = _mm512_loadu_ps(b + ocb), b1 = _mm512_loadu_ps(b + ocb + 16),
                 z = _mm512_setzero_ps();
    const size_t at = (size_t)oy * s->ow + ox0;
    float *cr = c + at * s->oc + ocb;
#pragma GCC unroll 12
    for (int p = 0; p < PB; p++) {
        const __m512 v0 = _mm512_add_ps(a0[p], b0), v1 = _mm512_add_ps(a1[p], b1);
        _mm512_storeu_ps(cr + (size_t)p * s->oc, relu ? _mm512_max_ps(v0, z) : v0);
        _mm512_storeu_ps(cr + (size_t)p * s->oc + 16, relu ? _mm512_max_ps(v1, z) : v1);
        if (mask) {
            uint16_t *m = mask + (at + (size_t)p) * (size_t)(s->oc / 16) + ocb / 16;
            m[0] = _mm512_cmp_ps_mask(v0, z, _CMP_GT_OQ);
            m[1] = _mm512_cmp_ps_mask(v1, z, _CMP_GT_OQ);
        }
    }
}

/* fwd_block with PB = 1 .. 12 at stride 1 and 2, one function each */
typedef void (*fwd_fn)(const stem_shape *s, const float *x, const float *w, const float *b,
                       float *c, uint16_t *mask, int oy, int ox0, int ocb, int relu);
#define FWD_FN(P)                                                                                  \
    static void fwd1_##P(const stem_shape *s, const float *x, const float *w, const float *b,      \
                         float *c, uint16_t *mask, int oy, int ox0, int ocb, int relu)             \
    {                                                                                              \
        fwd_block(s, x, w, b, c, mask, oy, ox0, ocb, P, 1, relu);                                  \
    }                                                                                              \
    static void fwd2_##P(const stem_shape *s, const float *x, const float *w, const float *b,      \
                         float *c, uint16_t *mask, int oy, int ox0, int ocb, int relu)             \
    {                                                                                              \
        fwd_block(s, x, w, b, c, mask, oy, ox0, ocb, P, 2, relu);                                  \
    }
NN_EACH_1_TO_12(FWD_FN)
#undef FWD_FN
#define FWD1_NAME(P) fwd1_##P,
#define FWD2_NAME(P) fwd2_##P,
static const fwd_fn FWD[2][MAX_PB] = {{NN_EACH_1_TO_12(FWD1_NAME)}, {NN_EACH_1_TO_12(FWD2_NAME)}};
#undef FWD1_NAME
#undef FWD2_NAME

/* Image n's convolution output into c (its mask into mask's image n when mask is given); the
 * `ahead` 64-byte lines at `next` (the lines the pooling will write next; 0 for none) prefetched
 * for writing, an equal share before each row. */
__attribute__((target("prfchw"))) static void conv_image(const nn_net *net, const nn_layer *L,
                                                         int n, uint16_t *mask, float *c,
                                                         const float *next, size_t ahead)
{
    const stem_shape s = shape_of(net, L);
    const float *w = nn_mem_ptr(L->w), *b = nn_mem_ptr(L->b);
    const float *xi = (const float *)nn_mem_ptr(L->src) + (size_t)n * s.ih * s.iw;
    const size_t pixels = (size_t)s.oh * s.ow;
    uint16_t *mi = mask ? mask + (size_t)n * pixels * (size_t)(s.oc / 16) : NULL;
    /* rows in blocks of at most MAX_PB pixels, as even as they split */
    const int nb = (s.ow + MAX_PB - 1) / MAX_PB, pb = (s.ow + nb - 1) / nb;
    for (int oy = 0; oy < s.oh; oy++) {
        for (size_t l = (size_t)oy * ahead / s.oh; l < (size_t)(oy + 1) * ahead / s.oh; l++)
            _mm_prefetch((const char *)next + l * 64, _MM_HINT_ET0);
        for (int ocb = 0; ocb < s.oc; ocb += 32)
            for (int ox0 = 0; ox0 < s.ow; ox0 += pb) {
                const int len = s.ow - ox0 < pb ? s.ow - ox0 : pb;
                FWD[s.s - 1][len - 1](&s, xi, w, b, c, mi, oy, ox0, ocb, L->spec.relu);
            }
    }
}

void nn_stem_forward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    if (P->spec.kind == NN_LAYER_POOL_MAX) {
        nn_stem_rgb_forward(net, L, P);
        return;
    }
    float *y = nn_mem_ptr(P->dst);
    uint16_t *mask = net->cfg.training ? (uint16_t *)(void *)nn_mem_ptr(L->relu_mask) : NULL;
    const size_t pooled = (size_t)P->out_h * P->out_w * P->out_c;
    const bool past = nn_write_past_caches((size_t)net->cfg.batch * pooled * sizeof(float));
#pragma omp parallel
    {
        _Alignas(64) float c[STEM_PLANE_MAX];
#pragma omp for schedule(dynamic, 2)
        for (int n = 0; n < net->cfg.batch; n++) {
            float *yn = y + (size_t)n * pooled;
            /* the pooled image's lines, when its stores go through the caches, fetched while the
             * convolution runs: the pooling's stores had waited on them (the batch's pooled
             * output was last touched a step before). drsch-mnist, batch 100, 2 threads, 2-core
             * Zen 5: the pooling took 1.9 of an image's 3.9 us, 0.7 with this */
            conv_image(net, L, n, mask, c, yn, past ? 0 : pooled * sizeof *y / 64);
            nn_pool_image_forward(net, P, c, yn, past);
        }
    }
}

void nn_stem_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n, float *y)
{
    if (P->spec.kind == NN_LAYER_POOL_MAX) {
        nn_stem_rgb_forward_image(net, L, P, n, y);
        return;
    }
    _Alignas(64) float c[STEM_PLANE_MAX];
    conv_image(net, L, n, NULL, c, NULL, 0);
    nn_pool_image_forward(net, P, c, y, false);
}

/* One image's weight gradients of taps T0 .. T1 - 1 (tap t: row t / K, column t % K) and, when
 * BIAS, its bias gradient, for 32 output channels, added to dw (tap t at dw[t * OC]) and db: dc
 * holds the image's gradient at the convolution's output for those channels (pixel p's at
 * dc[p * OC], the ReLU's mask applied). Each sum runs over the output pixels in row order, from
 * zero, in a register; K, T0, T1 and BIAS are constants where it is inlined, so the up to 2 x 13
 * sums stay in registers. */
static inline __attribute__((always_inline)) void wgrad_taps(const stem_shape *s, const float *x,
                                                             const float *dc, float *dw, float *db,
                                                             const char *ahead, size_t lines,
                                                             const int K, const int T0,
                                                             const int T1, const bool BIAS)
{
    __m512 a0[13], a1[13], b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
#pragma GCC unroll 13
    for (int t = T0; t < T1; t++)
        a0[t - T0] = a1[t - T0] = _mm512_setzero_ps();
    for (int oy = 0; oy < s->oh; oy++) {
        for (size_t l = (size_t)oy * lines / s->oh; l < (size_t)(oy + 1) * lines / s->oh; l++)
            _mm_prefetch(ahead + l * 64, _MM_HINT_T0);
        for (int ox = 0; ox < s->ow; ox++) {
            const float *gp = dc + ((size_t)oy * s->ow + ox) * s->oc;
            const __m512 g0 = _mm512_loadu_ps(gp), g1 = _mm512_loadu_ps(gp + 16);
            const float *xr = x + (size_t)oy * s->s * s->iw + (size_t)ox * s->s;
            if (BIAS) {
                b0 = _mm512_add_ps(b0, g0);
                b1 = _mm512_add_ps(b1, g1);
            }
#pragma GCC unroll 13
            for (int t = T0; t < T1; t++) {
                const __m512 v = _mm512_set1_ps(xr[(size_t)(t / K) * s->iw + t % K]);
                a0[t - T0] = _mm512_fmadd_ps(v, g0, a0[t - T0]);
                a1[t - T0] = _mm512_fmadd_ps(v, g1, a1[t - T0]);
            }
        }
    }
#pragma GCC unroll 13
    for (int t = T0; t < T1; t++) {
        float *q = dw + (size_t)t * s->oc;
        _mm512_storeu_ps(q, _mm512_add_ps(_mm512_loadu_ps(q), a0[t - T0]));
        _mm512_storeu_ps(q + 16, _mm512_add_ps(_mm512_loadu_ps(q + 16), a1[t - T0]));
    }
    if (BIAS) {
        _mm512_storeu_ps(db, _mm512_add_ps(_mm512_loadu_ps(db), b0));
        _mm512_storeu_ps(db + 16, _mm512_add_ps(_mm512_loadu_ps(db + 16), b1));
    }
}

/* One image's weight and bias gradients for 32 output channels (wgrad_taps): 3x3 taps in one
 * pass, 5x5 in two. */
static void wgrad_3(const stem_shape *s, const float *x, const float *dc, float *dw, float *db,
                    const char *ahead, size_t lines)
{
    wgrad_taps(s, x, dc, dw, db, ahead, lines, 3, 0, 9, true);
}
static void wgrad_5(const stem_shape *s, const float *x, const float *dc, float *dw, float *db,
                    const char *ahead, size_t lines)
{
    wgrad_taps(s, x, dc, dw, db, ahead, lines / 2, 5, 0, 13, false);
    wgrad_taps(s, x, dc, dw, db, ahead + lines / 2 * 64, lines - lines / 2, 5, 13, 25, true);
}

void nn_stem_sum_groups(const float *part, int groups, size_t per, size_t nw, float *dw, float *db)
{
    /* the groups' sums added in group order, 16 values at a time */
#pragma omp for schedule(static)
    for (size_t j = 0; j < per; j += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (int g = 0; g < groups; g++)
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(part + (size_t)g * per + j));
        _mm512_storeu_ps(j < nw ? dw + j : db + (j - nw), acc);
    }
}

void nn_stem_backward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    if (P->spec.kind == NN_LAYER_POOL_MAX) {
        nn_stem_rgb_backward(net, L, P);
        return;
    }
    const stem_shape s = shape_of(net, L);
    const float *x = nn_mem_ptr(L->src), *dy = nn_mem_ptr(P->diff_dst);
    const uint16_t *mask = L->spec.relu ? (const uint16_t *)(void *)nn_mem_ptr(L->relu_mask) : NULL;
    float *dw = nn_mem_ptr(L->dw), *db = nn_mem_ptr(L->db), *part = nn_mem_ptr(L->stem_part);
    const size_t pixels = (size_t)s.oh * s.ow, pooled = (size_t)P->out_h * P->out_w * P->out_c;
    const int taps = s.k * s.k, groups = (s.n + NN_STEM_GROUP - 1) / NN_STEM_GROUP;
    const size_t per = (size_t)(taps + 1) * s.oc; /* a group's sums: dw's layout, then db's */
    void (*const wgrad)(const stem_shape *, const float *, const float *, float *, float *,
                        const char *, size_t) = s.k == 3 ? wgrad_3 : wgrad_5;
#pragma omp parallel
    {
        _Alignas(64) float dc[STEM_PLANE_MAX];
#pragma omp for schedule(dynamic, 1)
        for (int g = 0; g < groups; g++) {
            float *pg = part + (size_t)g * per;
            memset(pg, 0, per * sizeof *pg);
            const int n1 = (g + 1) * NN_STEM_GROUP < s.n ? (g + 1) * NN_STEM_GROUP : s.n;
            for (int n = g * NN_STEM_GROUP; n < n1; n++) {
                nn_pool_image_backward(
                    net, P, dy + (size_t)n * pooled,
                    mask ? mask + (size_t)n * pixels * (size_t)(s.oc / 16) : NULL, dc);
                /* the group's next image's pooling gradient prefetched, a share of its lines
                 * with each block of channels */
                const char *next = (const char *)(dy + (size_t)(n + 1) * pooled);
                const size_t lines = n + 1 < n1 ? pooled * sizeof *dy / 64 : 0;
                const int blocks = s.oc / 32;
                for (int oc = 0; oc < s.oc; oc += 32) {
                    const size_t l0 = lines * (size_t)(oc / 32) / (size_t)blocks,
                                 l1 = lines * (size_t)(oc / 32 + 1) / (size_t)blocks;
                    wgrad(&s, x + (size_t)n * s.ih * s.iw, dc + oc, pg + oc,
                          pg + (size_t)taps * s.oc + oc, next + l0 * 64, l1 - l0);
                }
            }
        }
        nn_stem_sum_groups(part, groups, per, (size_t)taps * s.oc, dw, db);
    }
}

bool nn_stem_fits(const nn_net *net, int i)
{
    if (nn_stem_rgb_fits(net, i))
        return true;
    const nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    return i == 0 && i + 1 < net->n_layers && sp->kind == NN_LAYER_CONV &&
           !nn_need_data_grad(net, i) && L->in_c == 1 && sp->pad == 0 &&
           (sp->stride == 1 || sp->stride == 2) && (sp->kernel == 3 || sp->kernel == 5) &&
           L->out_c % 32 == 0 && (size_t)L->out_h * L->out_w * L->out_c <= STEM_PLANE_MAX &&
           nn_pool_shape_fits(net, i + 1) && __builtin_cpu_supports("avx512f") &&
           nn_onednn_avx512();
}

#else
/* No AVX-512 build of this file (not x86-64): nn_stem_fits is false, oneDNN computes the first
 * convolution, and the passes are never called. */

bool nn_stem_fits(const nn_net *net, int i)
{
    (void)net;
    (void)i;
    return false;
}
void nn_stem_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n, float *y)
{
    (void)net;
    (void)L;
    (void)P;
    (void)n;
    (void)y;
}
void nn_stem_forward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
void nn_stem_backward(const nn_net *net, const nn_layer *L, const nn_layer *P)
{
    (void)net;
    (void)L;
    (void)P;
}
#endif
