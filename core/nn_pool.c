/* Average pooling and max pooling by drsch's loops (nn_pool_fits): forward, and backward with
 * the ReLU gradient of the layer that feeds the pooling folded in.
 *
 * Why: in a training step of drsch-mnist (batch 100, 2 threads, 2-core Zen 5) oneDNN 2.6's
 * pooling backward took 84 us (pool1: 12x12x32 -> 11x11) and 147 us (pool2: 7x7x64 -> 6x6), and
 * the ReLU gradients of conv1 and conv2 that follow them 61 and 42 us, each a pass over the
 * batch's activations in memory. Here both are one pass, the gradient of each input pixel
 * summed from the windows that hold it and masked where the ReLU's output is zero. The same
 * holds for drsch-reid's two max poolings (2x2 at stride 2, after conv1's 80x30x32 and conv2's
 * 40x15x64 outputs) and drsch-cifar's first (3x3 at stride 2 after conv1's 32x32x32), whose ReLU
 * gradients oneDNN ran as passes of their own.
 *
 * Layouts: the source and the output alike, nhwc or oneDNN's nChw16c (as the producer leaves
 * it), channels a multiple of 16. Each value is summed by one thread, the window's taps in row
 * order (forward) and the windows in row order (backward), then divided by the window's area:
 * the same bits at any thread count. The first convolution's loops (nn_stem.c) call the same
 * sums one image at a time (nn_pool_image_forward, nn_pool_image_backward), their ReLU mask
 * given as bits. Outputs that go to memory and are read by another layer later (the whole
 * layer's input gradient; the pooled images the first convolution's loops write) are stored
 * past the caches, with non-temporal stores, where they are 64-byte aligned and larger than the
 * threads' L2s (nn_write_past_caches).
 *
 * Max pooling: windows of K x K at stride S, no padding before them, clipped at the bottom and
 * right edges where Caffe's rounding up leaves the last window partly outside the input
 * (drsch-reid's pool2: 15 columns into 8 windows). The backward pass finds each window's
 * maximum again from the pooling's source (no workspace), and its gradient goes to the first tap
 * in row order that holds it, as oneDNN's (its kernels replace the index only on a greater
 * value), only where that maximum is above zero when the ReLU's gradient is folded in (the ReLU's
 * output at that tap is the maximum); an input value in several windows (S < K) sums their
 * gradients, the windows in row order, and one in none has a gradient of zero. A workspace
 * instead, the forward pass writing each tap's mask of lanes (2 bytes a tap and channel block)
 * for the backward pass to read in place of the source, measured no faster: drsch-reid's pool1
 * (batch 100, 2 threads, 2-core Zen 5) backward 1.55 -> 0.87-1.02 ms, forward 0.70 -> 1.05-1.11
 * ms with the next windows prefetched (1.39-1.54 without). */
#include <stdint.h>

#include "nn_internal.h"

/* Where value (n, c, y, x) of an h x w map of C channels is: offset n*C*h*w + y*ys + x*xs +
 * (c/16)*cbs + c%16. */
typedef struct {
    size_t ys, xs, cbs;
} pool_map;

static pool_map map_of(bool blocked, int32_t c, int32_t h, int32_t w)
{
    if (blocked)
        return (pool_map){(size_t)w * 16, 16, (size_t)h * w * 16};
    return (pool_map){(size_t)w * c, (size_t)c, 16};
}

/* The memory layouts the loops read: f32 nhwc or nChw16c (aBcd16b) of these dimensions. */
static int layout_of(const dnnl_memory_desc_t *md, const dnnl_dims_t dims)
{
    const dnnl_memory_desc_t nhwc = nn_md_tag(4, dims, dnnl_nhwc),
                             b16 = nn_md_tag(4, dims, dnnl_aBcd16b);
    if (dnnl_memory_desc_equal(md, &nhwc))
        return 0;
    if (dnnl_memory_desc_equal(md, &b16))
        return 1;
    return -1;
}

/* The shapes the loops take, in nets of either precision: their source is f32 (layout_of), which
 * in a bf16 net the layer before writes for them (nn_pool_own_shape_fits). */
bool nn_pool_shape_fits(const nn_net *net, int i)
{
    const nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    return sp->kind == NN_LAYER_POOL_AVG && sp->pad == 0 && L->pad_r_h == 0 && L->pad_r_w == 0 &&
           L->in_c % 16 == 0 && nn_onednn_avx512();
}

/* A max pooling the loops take: no padding before the windows (they are clipped after the
 * input's last row and column instead). */
static bool max_shape_fits(const nn_net *net, int i)
{
    const nn_layer *L = &net->layers[i];
    const nn_layer_spec *sp = &L->spec;
    return sp->kind == NN_LAYER_POOL_MAX && sp->pad == 0 && L->in_c % 16 == 0 && nn_onednn_avx512();
}

bool nn_pool_own_shape_fits(const nn_net *net, int i)
{
    return nn_pool_shape_fits(net, i) || max_shape_fits(net, i);
}

bool nn_pool_fits(const nn_net *net, int i)
{
    const nn_layer *L = &net->layers[i];
    if (!nn_pool_own_shape_fits(net, i))
        return false;
    dnnl_dims_t sd = {net->cfg.batch, L->in_c, L->in_h, L->in_w};
    return layout_of(nn_mem_md(L->in), sd) >= 0;
}

void nn_pool_layout(const nn_net *net, int i, dnnl_memory_desc_t *dst, bool *blocked)
{
    const nn_layer *L = &net->layers[i];
    dnnl_dims_t sd = {net->cfg.batch, L->in_c, L->in_h, L->in_w},
                dd = {net->cfg.batch, L->out_c, L->out_h, L->out_w};
    *blocked = layout_of(nn_mem_md(L->in), sd) == 1;
    *dst = nn_md_tag(4, dd, *blocked ? dnnl_aBcd16b : dnnl_nhwc);
}

/* 16 channels of one pixel: a vector of AVX-512 registers, or 16 floats in plain C. Sums are
 * divided by the window's area, or multiplied by its inverse where that is a power of two (the
 * same value, cheaper); the operations are the same IEEE ones in the same order either way. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define POOL_TARGET __attribute__((target("avx512f")))
typedef __m512 vec16;
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, p) _mm512_add_ps((a), _mm512_loadu_ps(p))
#define V_SCALE(a, sc)                                                                             \
    ((sc).mul ? _mm512_mul_ps((a), _mm512_set1_ps((sc).f))                                         \
              : _mm512_div_ps((a), _mm512_set1_ps((sc).f)))
#define V_STORE(q, a, sc) _mm512_storeu_ps((q), V_SCALE(a, sc))
/* V_STORE and V_STORE_MASKED past the caches (q 64-byte aligned), and the fence that orders
 * such stores */
#define V_STREAM(q, a, sc) _mm512_stream_ps((q), V_SCALE(a, sc))
#define V_STREAM_MASKED(q, a, sc, m)                                                               \
    _mm512_stream_ps(                                                                              \
        (q), _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(m), V_ZERO(), _CMP_GT_OQ),     \
                                 V_SCALE(a, sc)))
#define V_STREAM_FENCE() _mm_sfence()
/* the scaled sum where m > 0, else 0 (the ReLU's gradient from its output m) */
#define V_STORE_MASKED(q, a, sc, m)                                                                \
    _mm512_storeu_ps(                                                                              \
        (q), _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(m), V_ZERO(), _CMP_GT_OQ),     \
                                 V_SCALE(a, sc)))
/* the scaled sum in the lanes whose bit is set in k, else 0 */
#define V_STORE_BITS(q, a, sc, k) _mm512_storeu_ps((q), _mm512_maskz_mov_ps((k), V_SCALE(a, sc)))
#define V_STREAM_BITS(q, a, sc, k) _mm512_stream_ps((q), _mm512_maskz_mov_ps((k), V_SCALE(a, sc)))
/* max pooling: a lane mask; the values at p; their maximum with a; the lanes where the values at
 * p equal a, and where a is above zero; a stored as it is, and a in the lanes of k, else 0 */
typedef __mmask16 lanes16;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_MAX(a, p) _mm512_max_ps((a), _mm512_loadu_ps(p))
#define V_EQ(a, p) _mm512_cmp_ps_mask(_mm512_loadu_ps(p), (a), _CMP_EQ_OQ)
#define V_POS(a) _mm512_cmp_ps_mask((a), V_ZERO(), _CMP_GT_OQ)
#define V_PUT(q, a) _mm512_storeu_ps((q), (a))
#define V_STREAM_PUT(q, a) _mm512_stream_ps((q), (a))
#define V_PUT_BITS(q, a, k) _mm512_storeu_ps((q), _mm512_maskz_mov_ps((k), (a)))
#define V_STREAM_PUT_BITS(q, a, k) _mm512_stream_ps((q), _mm512_maskz_mov_ps((k), (a)))
/* a added to the values at q in the lanes of k */
#define V_ADD_BITS(q, a, k)                                                                        \
    _mm512_storeu_ps((q), _mm512_mask_add_ps(_mm512_loadu_ps(q), (k), _mm512_loadu_ps(q), (a)))
#else
#define POOL_TARGET
typedef struct {
    float v[16];
} vec16;
static inline vec16 v_add(vec16 a, const float *p)
{
    for (int c = 0; c < 16; c++)
        a.v[c] += p[c];
    return a;
}
#define V_ZERO() ((vec16){{0}})
#define V_ADD(a, p) v_add((a), (p))
#define V_STORE(q, a, sc) v_store((q), (a), (sc), NULL, 0xffff)
#define V_STREAM(q, a, sc) V_STORE(q, a, sc)
#define V_STREAM_MASKED(q, a, sc, m) V_STORE_MASKED(q, a, sc, m)
#define V_STREAM_FENCE() ((void)0)
#define V_STORE_MASKED(q, a, sc, m) v_store((q), (a), (sc), (m), 0xffff)
#define V_STORE_BITS(q, a, sc, k) v_store((q), (a), (sc), NULL, (k))
#define V_STREAM_BITS(q, a, sc, k) V_STORE_BITS(q, a, sc, k)
typedef uint16_t lanes16;
static inline vec16 v_load(const float *p)
{
    vec16 a;
    for (int c = 0; c < 16; c++)
        a.v[c] = p[c];
    return a;
}
static inline vec16 v_max(vec16 a, const float *p)
{
    for (int c = 0; c < 16; c++)
        a.v[c] = p[c] > a.v[c] ? p[c] : a.v[c];
    return a;
}
static inline lanes16 v_eq(vec16 a, const float *p)
{
    lanes16 k = 0;
    for (int c = 0; c < 16; c++)
        k |= (lanes16)((p[c] == a.v[c]) << c);
    return k;
}
static inline lanes16 v_pos(vec16 a)
{
    lanes16 k = 0;
    for (int c = 0; c < 16; c++)
        k |= (lanes16)((a.v[c] > 0.0f) << c);
    return k;
}
#define V_LOAD(p) v_load(p)
#define V_MAX(a, p) v_max((a), (p))
#define V_EQ(a, p) v_eq((a), (p))
#define V_POS(a) v_pos(a)
#define V_PUT(q, a) v_store((q), (a), (pool_scale){true, 1.0f}, NULL, 0xffff)
#define V_STREAM_PUT(q, a) V_PUT(q, a)
#define V_PUT_BITS(q, a, k) v_store((q), (a), (pool_scale){true, 1.0f}, NULL, (k))
#define V_STREAM_PUT_BITS(q, a, k) V_PUT_BITS(q, a, k)
static inline void v_add_bits(float *q, vec16 a, lanes16 k)
{
    for (int c = 0; c < 16; c++)
        if (k >> c & 1)
            q[c] += a.v[c];
}
#define V_ADD_BITS(q, a, k) v_add_bits((q), (a), (k))
#endif

/* What a window's sum is scaled by: times f (the area's inverse, exact) or divided by f. */
typedef struct {
    bool mul;
    float f;
} pool_scale;

static pool_scale scale_of(int32_t k)
{
    const int32_t area = k * k;
    if ((area & (area - 1)) == 0)
        return (pool_scale){true, 1.0f / (float)area};
    return (pool_scale){false, (float)area};
}

/* A pooling layer's shape, its maps' layouts and its scale. */
typedef struct {
    int32_t N, C, CB, K, S, IH, IW, OH, OW;
    bool max; /* a max pooling, else an average one */
    pool_map in, out;
    pool_scale sc;
} pool_geom;

/* The first and last window (along one axis) that hold input position p: windows o with
 * o*S <= p < o*S + K, 0 <= o < O. */
static inline void windows_of(int32_t p, int32_t K, int32_t S, int32_t O, int32_t *lo, int32_t *hi)
{
    int32_t a = p - K + 1;
    *lo = a <= 0 ? 0 : (a + S - 1) / S;
    int32_t b = p / S;
    *hi = b < O - 1 ? b : O - 1;
}

static pool_geom geom_of(const nn_net *net, const nn_layer *L)
{
    pool_geom g;
    g.N = net->cfg.batch, g.C = L->in_c, g.CB = L->in_c / 16, g.K = L->spec.kernel;
    g.S = L->spec.stride, g.IH = L->in_h, g.IW = L->in_w, g.OH = L->out_h, g.OW = L->out_w;
    g.max = L->spec.kind == NN_LAYER_POOL_MAX;
    g.in = map_of(L->pool_blocked, g.C, g.IH, g.IW);
    g.out = map_of(L->pool_blocked, g.C, g.OH, g.OW);
    g.sc = scale_of(g.K);
    return g;
}

#if !(defined(__x86_64__) && defined(__GNUC__))
static inline void v_store(float *q, vec16 a, pool_scale sc, const float *m, uint16_t k)
{
    for (int c = 0; c < 16; c++) {
        const float v = sc.mul ? a.v[c] * sc.f : a.v[c] / sc.f;
        q[c] = (m && !(m[c] > 0.0f)) || !(k >> c & 1) ? 0.0f : v;
    }
}
#endif

/* One (image, channel block) of the forward pass, the output stored past the caches when stream
 * (yo 64-byte aligned); KC: the window's size when it is a constant (the taps' loops unrolled,
 * so that the sums of neighbouring outputs overlap), else 0. */
static inline __attribute__((always_inline)) POOL_TARGET void
fwd_plane(const float *xi, float *yo, bool stream, const pool_geom *g, const int KC)
{
    /* the shape in locals: the stores could alias *g (its scale is a float), and GCC read the
     * width, the scale and its kind again at every output (encoding, 1 thread: these loops 1.55%
     * of the time, 1.36% with the locals) */
    const int32_t k = KC ? KC : g->K, OH = g->OH, OW = g->OW;
    const pool_map in = g->in, out = g->out;
    const pool_scale sc = g->sc;
    const size_t xstep = (size_t)g->S * in.xs, ystep = (size_t)g->S * in.ys;
    for (int32_t oy = 0; oy < OH; oy++) {
        const float *row = xi + (size_t)oy * ystep;
        float *q = yo + (size_t)oy * out.ys;
        for (int32_t ox = 0; ox < OW; ox++, row += xstep, q += out.xs) {
            vec16 acc = V_ZERO();
            for (int32_t ky = 0; ky < k; ky++)
                for (int32_t kx = 0; kx < k; kx++)
                    acc = V_ADD(acc, row + (size_t)ky * in.ys + (size_t)kx * in.xs);
            if (stream)
                V_STREAM(q, acc, sc);
            else
                V_STORE(q, acc, sc);
        }
    }
}

/* The maximum of a max pooling's window at w0 (laid out as in), its kh x kw taps inside the
 * input. */
static inline __attribute__((always_inline)) POOL_TARGET vec16 window_max(const float *w0,
                                                                          pool_map in, int32_t kh,
                                                                          int32_t kw)
{
    vec16 m = V_LOAD(w0);
    for (int32_t ky = 0; ky < kh; ky++)
        for (int32_t kx = ky ? 0 : 1; kx < kw; kx++)
            m = V_MAX(m, w0 + (size_t)ky * in.ys + (size_t)kx * in.xs);
    return m;
}

/* fwd_plane for a max pooling: each window's maximum, the window clipped to the input (its
 * first tap always inside). KC, SC: the window's size and stride when they are constants, else
 * 0. */
static inline __attribute__((always_inline)) POOL_TARGET void
fwd_max_plane(const float *xi, float *yo, bool stream, const pool_geom *g, const int KC,
              const int SC)
{
    const int32_t K = KC ? KC : g->K, S = SC ? SC : g->S, OH = g->OH, OW = g->OW, IH = g->IH,
                  IW = g->IW;
    const pool_map in = g->in, out = g->out;
    for (int32_t oy = 0; oy < OH; oy++) {
        const int32_t kh = IH - oy * S < K ? IH - oy * S : K;
        const float *row = xi + (size_t)oy * S * in.ys;
        float *q = yo + (size_t)oy * out.ys;
        for (int32_t ox = 0; ox < OW; ox++, q += out.xs) {
            const int32_t kw = IW - ox * S < K ? IW - ox * S : K;
            const vec16 m = window_max(row + (size_t)ox * S * in.xs, in, kh, kw);
            if (stream)
                V_STREAM_PUT(q, m);
            else
                V_PUT(q, m);
        }
    }
}

/* One (image, channel block) of the forward pass, its window's size a constant where it is 2 or
 * 3. A function of its own (not the body of the parallel loop): Clang compiles that body as a
 * function without the AVX-512 target. */
static POOL_TARGET void fwd_item(const float *xi, float *yo, bool stream, const pool_geom *g)
{
    if (g->max && g->K == 2 && g->S == 2)
        fwd_max_plane(xi, yo, stream, g, 2, 2);
    else if (g->max && g->K == 3 && g->S == 2)
        fwd_max_plane(xi, yo, stream, g, 3, 2);
    else if (g->max)
        fwd_max_plane(xi, yo, stream, g, 0, 0);
    else if (g->K == 2)
        fwd_plane(xi, yo, stream, g, 2);
    else if (g->K == 3)
        fwd_plane(xi, yo, stream, g, 3);
    else
        fwd_plane(xi, yo, stream, g, 0);
}

void nn_pool_image_forward(const nn_net *net, const nn_layer *L, const float *x, float *y,
                           bool past_caches)
{
    const pool_geom g = geom_of(net, L);
    const bool stream = past_caches && (uintptr_t)y % 64 == 0;
    for (int32_t cb = 0; cb < g.CB; cb++)
        fwd_item(x + (size_t)cb * g.in.cbs, y + (size_t)cb * g.out.cbs, stream, &g);
    if (stream)
        V_STREAM_FENCE();
}

void nn_pool_forward(const nn_net *net, const nn_layer *L)
{
    const pool_geom g = geom_of(net, L);
    const float *x = nn_mem_ptr(L->src);
    float *y = nn_mem_ptr(L->dst);
#pragma omp parallel for collapse(2) schedule(static)
    for (int32_t n = 0; n < g.N; n++)
        for (int32_t cb = 0; cb < g.CB; cb++) {
            const float *xi = x + (size_t)n * g.C * g.IH * g.IW + (size_t)cb * g.in.cbs;
            float *yo = y + (size_t)n * g.C * g.OH * g.OW + (size_t)cb * g.out.cbs;
            fwd_item(xi, yo, false, &g);
        }
}

/* Input pixel (iy, ix)'s channel block cb of the backward pass: the window sums acc scaled,
 * masked by mi (the ReLU's output, laid out as in) or bits, and stored at dxi (laid out as dxm),
 * past the caches when stream. */
static inline __attribute__((always_inline)) POOL_TARGET void
store_grad(float *dxi, pool_map dxm, const float *mi, pool_map in, const uint16_t *bits,
           size_t bstride, int32_t IW, bool stream, pool_scale sc, vec16 acc, int32_t iy,
           int32_t ix, int32_t cb)
{
    float *q = dxi + (size_t)cb * dxm.cbs + (size_t)iy * dxm.ys + (size_t)ix * dxm.xs;
    const float *m = mi ? mi + (size_t)cb * in.cbs + (size_t)iy * in.ys + (size_t)ix * in.xs : NULL;
    const uint16_t *k = bits ? bits + ((size_t)iy * IW + (size_t)ix) * bstride + (size_t)cb : NULL;
    if (k && stream)
        V_STREAM_BITS(q, acc, sc, *k);
    else if (k)
        V_STORE_BITS(q, acc, sc, *k);
    else if (m && stream)
        V_STREAM_MASKED(q, acc, sc, m);
    else if (m)
        V_STORE_MASKED(q, acc, sc, m);
    else if (stream)
        V_STREAM(q, acc, sc);
    else
        V_STORE(q, acc, sc);
}

/* One image of the backward pass: dx (laid out as dxm says) from dy, masked by relu_dst when
 * given (laid out as the source), or else by bits when given (a 16-bit mask a pixel and channel
 * block, block cb of pixel p's at bits[p * bstride + cb]); the pointers at the image's first
 * value; dx stored past the caches when stream. Pixel by pixel, every channel
 * block of a pixel in turn, so a pixel's windows are found once and, in nhwc, its values are
 * read and written as one run of 64-byte lines (it went channel block by channel block, each a
 * pass over the image: drsch-mnist's two pooling gradients had taken 2.9% of a training step,
 * most of it waiting on the first pass's loads). KC, SC: the window's size and stride when they
 * are constants, else 0. */
static inline __attribute__((always_inline)) POOL_TARGET void
bwd_pixels(const float *dyi, float *dxi, pool_map dxm, const float *mi, const uint16_t *bits,
           size_t bstride, bool stream, const pool_geom *g, const int KC, const int SC)
{
    /* the shape in locals, as in fwd_plane (one by one: a copy of the whole struct was 64-byte
     * aligned, which AddressSanitizer's frames for detect_stack_use_after_return do not keep) */
    const int32_t K = KC ? KC : g->K, S = SC ? SC : g->S, IH = g->IH, IW = g->IW, OH = g->OH,
                  OW = g->OW, CB = g->CB;
    const pool_map in = g->in, out = g->out;
    const pool_scale sc = g->sc;
    for (int32_t iy = 0; iy < IH; iy++) {
        int32_t oy0, oy1;
        windows_of(iy, K, S, OH, &oy0, &oy1);
        for (int32_t ix = 0; ix < IW; ix++) {
            int32_t ox0, ox1;
            windows_of(ix, K, S, OW, &ox0, &ox1);
            for (int32_t cb = 0; cb < CB; cb++) {
                const float *dyo = dyi + (size_t)cb * out.cbs;
                vec16 acc = V_ZERO();
                for (int32_t oy = oy0; oy <= oy1; oy++)
                    for (int32_t ox = ox0; ox <= ox1; ox++)
                        acc = V_ADD(acc, dyo + (size_t)oy * out.ys + (size_t)ox * out.xs);
                store_grad(dxi, dxm, mi, in, bits, bstride, IW, stream, sc, acc, iy, ix, cb);
            }
        }
    }
}

/* One input pixel of bwd_pixels for 2x2 windows at stride 1, every channel block: the pixel is in
 * the windows at (iy - 1, ix - 1), (iy - 1, ix), (iy, ix - 1) and (iy, ix) that exist (UP: the
 * row above has windows, DOWN: this row has; LEFT and RIGHT the same for the columns), summed in
 * bwd_pixels's order. UP, DOWN, LEFT and RIGHT are constants where it is inlined, so the sums are
 * straight-line code. */
static inline __attribute__((always_inline)) POOL_TARGET void
bwd_2x2_pixel(const float *dyi, float *dxi, pool_map dxm, const float *mi, const uint16_t *bits,
              size_t bstride, bool stream, const pool_geom *g, int32_t iy, int32_t ix,
              const bool UP, const bool DOWN, const bool LEFT, const bool RIGHT)
{
    const int32_t IW = g->IW, CB = g->CB;
    const pool_map in = g->in, out = g->out;
    const pool_scale sc = g->sc;
    for (int32_t cb = 0; cb < CB; cb++) {
        const float *dyo = dyi + (size_t)cb * out.cbs;
        vec16 acc = V_ZERO();
        if (UP && LEFT)
            acc = V_ADD(acc, dyo + (size_t)(iy - 1) * out.ys + (size_t)(ix - 1) * out.xs);
        if (UP && RIGHT)
            acc = V_ADD(acc, dyo + (size_t)(iy - 1) * out.ys + (size_t)ix * out.xs);
        if (DOWN && LEFT)
            acc = V_ADD(acc, dyo + (size_t)iy * out.ys + (size_t)(ix - 1) * out.xs);
        if (DOWN && RIGHT)
            acc = V_ADD(acc, dyo + (size_t)iy * out.ys + (size_t)ix * out.xs);
        store_grad(dxi, dxm, mi, in, bits, bstride, IW, stream, sc, acc, iy, ix, cb);
    }
}

/* Input row iy of bwd_pixels for 2x2 windows at stride 1: the first pixel, the inner ones and the
 * last, each with its windows known (bwd_2x2_pixel). */
static inline __attribute__((always_inline)) POOL_TARGET void
bwd_2x2_row(const float *dyi, float *dxi, pool_map dxm, const float *mi, const uint16_t *bits,
            size_t bstride, bool stream, const pool_geom *g, int32_t iy, const bool UP,
            const bool DOWN)
{
    const int32_t IW = g->IW;
    bwd_2x2_pixel(dyi, dxi, dxm, mi, bits, bstride, stream, g, iy, 0, UP, DOWN, false, true);
    for (int32_t ix = 1; ix < IW - 1; ix++)
        bwd_2x2_pixel(dyi, dxi, dxm, mi, bits, bstride, stream, g, iy, ix, UP, DOWN, true, true);
    bwd_2x2_pixel(dyi, dxi, dxm, mi, bits, bstride, stream, g, iy, IW - 1, UP, DOWN, true, false);
}

/* bwd_pixels for 2x2 windows at stride 1 (both poolings of drsch-mnist): the first row, the
 * inner ones and the last. The general loops found each pixel's windows and ran loops of one or
 * two taps (drsch-mnist, batch 100, 2 threads, 2-core Zen 5, six alternate runs of `drsch bench
 * train --passes`: the stem's backward pass, which computes pool1's, 0.139 -> 0.135 ms with
 * these). */
static POOL_TARGET void bwd_2x2(const float *dyi, float *dxi, pool_map dxm, const float *mi,
                                const uint16_t *bits, size_t bstride, bool stream,
                                const pool_geom *g)
{
    const int32_t IH = g->IH;
    bwd_2x2_row(dyi, dxi, dxm, mi, bits, bstride, stream, g, 0, false, true);
    for (int32_t iy = 1; iy < IH - 1; iy++)
        bwd_2x2_row(dyi, dxi, dxm, mi, bits, bstride, stream, g, iy, true, true);
    bwd_2x2_row(dyi, dxi, dxm, mi, bits, bstride, stream, g, IH - 1, true, false);
}

/* bwd_pixels with the window's size and stride constants for 2x2 at stride 1 or 2 and 3x3 at
 * stride 2 (the divisions by the stride then shifts or none); a function of its own, as
 * fwd_item. */
static POOL_TARGET void bwd_image(const float *dyi, float *dxi, pool_map dxm, const float *mi,
                                  const uint16_t *bits, size_t bstride, bool stream,
                                  const pool_geom *g)
{
    if (g->K == 2 && g->S == 1)
        bwd_2x2(dyi, dxi, dxm, mi, bits, bstride, stream, g);
    else if (g->K == 2 && g->S == 2)
        bwd_pixels(dyi, dxi, dxm, mi, bits, bstride, stream, g, 2, 2);
    else if (g->K == 3 && g->S == 2)
        bwd_pixels(dyi, dxi, dxm, mi, bits, bstride, stream, g, 3, 2);
    else
        bwd_pixels(dyi, dxi, dxm, mi, bits, bstride, stream, g, 0, 0);
}

/* One image's backward pass of a max pooling, channel block by channel block: each window's
 * gradient dy (laid out as out) to the first tap in row order that holds the window's maximum of
 * xi, where that maximum is above zero when relu (dx laid out as in, as xi); where windows do not
 * overlap (a stride of their size) stored as it is, and every input value no window gives a
 * gradient to, 0, past the caches when stream; where they overlap (or leave gaps) each row is set
 * to 0 just before the first row of windows that reaches it and each window's gradient added, the
 * windows in row order (through the caches). With the whole plane set to 0 first, drsch-cifar's
 * pool1 took 1.22-1.26 ms against 1.09-1.21 (batch 100, 2 threads, 2-core Zen 5 in a slower
 * phase, three alternate runs of `drsch bench train --passes`). KC, SC as fwd_max_plane. */
static inline __attribute__((always_inline)) POOL_TARGET void
bwd_max_pixels(const float *xi, const float *dyi, float *dxi, bool relu, bool stream,
               const pool_geom *g, const int KC, const int SC)
{
    const int32_t K = KC ? KC : g->K, S = SC ? SC : g->S, OH = g->OH, OW = g->OW, IH = g->IH,
                  IW = g->IW, CB = g->CB;
    const pool_map in = g->in, out = g->out;
    const bool add = S != K;
    /* the rows and columns the windows hold, when S = K (Caffe's rounding can leave none out;
     * floor can) */
    const int32_t RH = OH * K < IH ? OH * K : IH, RW = OW * K < IW ? OW * K : IW;
    const vec16 zero = V_ZERO();
    for (int32_t cb = 0; cb < CB; cb++) {
        const float *x = xi + (size_t)cb * in.cbs, *dy = dyi + (size_t)cb * out.cbs;
        float *dx = dxi + (size_t)cb * in.cbs;
        int32_t zeroed = 0; /* add: rows 0 .. zeroed - 1 set to 0 */
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t kh = IH - oy * S < K ? IH - oy * S : K;
            /* add: the rows this row of windows reaches set to 0 just before (in the cache) */
            for (; add && zeroed < oy * S + kh; zeroed++)
                for (int32_t ix = 0; ix < IW; ix++)
                    V_PUT(dx + (size_t)zeroed * in.ys + (size_t)ix * in.xs, zero);
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t kw = IW - ox * S < K ? IW - ox * S : K;
                const size_t at = (size_t)oy * S * in.ys + (size_t)ox * S * in.xs;
                const vec16 m = window_max(x + at, in, kh, kw);
                const vec16 d = V_LOAD(dy + (size_t)oy * out.ys + (size_t)ox * out.xs);
                lanes16 left = relu ? V_POS(m) : (lanes16)0xffff; /* lanes yet to take d */
                for (int32_t ky = 0; ky < kh; ky++)
                    for (int32_t kx = 0; kx < kw; kx++) {
                        const size_t t = at + (size_t)ky * in.ys + (size_t)kx * in.xs;
                        const lanes16 k = (lanes16)(V_EQ(m, x + t) & left);
                        left = (lanes16)(left & ~k);
                        if (add)
                            V_ADD_BITS(dx + t, d, k);
                        else if (stream)
                            V_STREAM_PUT_BITS(dx + t, d, k);
                        else
                            V_PUT_BITS(dx + t, d, k);
                    }
            }
        }
        for (; add && zeroed < IH; zeroed++)
            for (int32_t ix = 0; ix < IW; ix++)
                V_PUT(dx + (size_t)zeroed * in.ys + (size_t)ix * in.xs, zero);
        if (add)
            continue;
        for (int32_t iy = 0; iy < IH; iy++)
            for (int32_t ix = iy < RH ? RW : 0; ix < IW; ix++) {
                float *q = dx + (size_t)iy * in.ys + (size_t)ix * in.xs;
                if (stream)
                    V_STREAM_PUT(q, zero);
                else
                    V_PUT(q, zero);
            }
    }
}

/* bwd_max_pixels with 2x2 windows at stride 2 (drsch-reid's two max poolings) and 3x3 at stride 2
 * (drsch-cifar's first) constant; a function of its own, as fwd_item. */
static POOL_TARGET void bwd_max_image(const float *xi, const float *dyi, float *dxi, bool relu,
                                      bool stream, const pool_geom *g)
{
    if (g->K == 2 && g->S == 2)
        bwd_max_pixels(xi, dyi, dxi, relu, stream, g, 2, 2);
    else if (g->K == 3 && g->S == 2)
        bwd_max_pixels(xi, dyi, dxi, relu, stream, g, 3, 2);
    else
        bwd_max_pixels(xi, dyi, dxi, relu, stream, g, 0, 0);
}

void nn_pool_relu_of(const nn_net *net, const nn_layer *L, const float **relu_dst,
                     const uint16_t **relu_bits)
{
    const ptrdiff_t i = L - net->layers;
    const nn_layer *C = i > 0 ? &net->layers[i - 1] : NULL;
    const bool relu = C && C->relu_in_next;
    *relu_dst = relu && !L->pool_by_direct ? nn_mem_ptr(C->dst) : NULL;
    *relu_bits = relu && L->pool_by_direct ? (const uint16_t *)nn_mem_ptr(C->relu_mask) : NULL;
}

/* Whether the layer's backward pass stores dx past the caches: where it is 64-byte aligned (then
 * every block of 16 channels is) and either larger than the threads' L2s (nn_write_past_caches),
 * as the pass writes far more than it computes, or the output gradient of a direct convolution,
 * whose weight gradient reads every image's on each thread: stored through the caches, each line
 * would first be taken from the other core (drsch-mnist's pool3 before conv3, batch 100, 2
 * threads, 2-core Zen 5: 0.028 -> 0.014 ms). */
bool nn_pool_backward_past(const nn_net *net, const nn_layer *L)
{
    const ptrdiff_t i = L - net->layers;
    return (uintptr_t)nn_mem_ptr(L->diff_src) % 64 == 0 &&
           ((i > 0 && net->layers[i - 1].direct) ||
            nn_write_past_caches((size_t)net->cfg.batch * L->in_c * L->in_h * L->in_w *
                                 sizeof(float)));
}

void nn_pool_backward_images(const nn_net *net, const nn_layer *L, const float *relu_dst,
                             const uint16_t *relu_bits, int32_t n0, int32_t n1, bool past)
{
    const pool_geom g = geom_of(net, L);
    const float *dy = nn_mem_ptr(L->diff_dst);
    float *dx = nn_mem_ptr(L->diff_src);
    if (g.max) {
        const float *x = nn_mem_ptr(L->src);
        for (int32_t n = n0; n < n1; n++) {
            const size_t io = (size_t)n * g.C * g.IH * g.IW;
            bwd_max_image(x + io, dy + (size_t)n * g.C * g.OH * g.OW, dx + io, relu_dst != NULL,
                          past, &g);
        }
        return;
    }
    for (int32_t n = n0; n < n1; n++) {
        const size_t io = (size_t)n * g.C * g.IH * g.IW;
        bwd_image(dy + (size_t)n * g.C * g.OH * g.OW, dx + io, g.in,
                  relu_dst ? relu_dst + io : NULL, relu_bits ? relu_bits + io / 16 : NULL,
                  (size_t)g.CB, past, &g);
    }
}

void nn_pool_backward(const nn_net *net, const nn_layer *L, const float *relu_dst,
                      const uint16_t *relu_bits)
{
    const bool past = nn_pool_backward_past(net, L);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int32_t n = 0; n < net->cfg.batch; n++)
            nn_pool_backward_images(net, L, relu_dst, relu_bits, n, n + 1, past);
        if (past)
            V_STREAM_FENCE();
    }
}

void nn_pool_image_backward(const nn_net *net, const nn_layer *L, const float *dy,
                            const uint16_t *bits, float *dx)
{
    const pool_geom g = geom_of(net, L);
    bwd_image(dy, dx, g.in, NULL, bits, (size_t)g.CB, false, &g);
}
