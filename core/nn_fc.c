/* Fully connected layers on AVX-512 (nn_fc_fits: f32, oneDNN at AVX-512, a source of one value
 * per channel): the forward pass, the input gradient and the weight and bias gradients as
 * register-blocked FMA loops, in place of oneDNN's inner products.
 *
 * Why: drsch-mnist's fc layers (128 -> 512 -> 48, batch 100) are small products, 54 MFLOP in a
 * training step, for which oneDNN's six inner-product primitives took 0.26 ms (2 threads, 2-core
 * Zen 5, timers added for the measurement; 0.12 ms at the f32 peak) and six calls of its sgemm
 * 0.22-0.23 ms. These loops, the two backward passes each in one parallel region, took
 * 0.21 ms, measured alternately with oneDNN's; training +1.0% (drsch bench train, eight rounds
 * side by side).
 *
 * Layouts: source nc (or n x c x 1 x 1), output nc; weights oi (the parameter block's plain
 * layout) for the gradients, a copy in io (w_fwd, refreshed when the parameters change) for the
 * forward pass. A deep source (nn_fc_deep: more than one pixel, drsch-cifar's and drsch-reid's
 * fc1) is nchw and its weights oihw, read as n x (c h w) and o x (c h w): the gradients as
 * above, the forward pass as dot products over the plain weights (forward_dot). A block is up to 6
 * rows by up to 4 vectors of 16 columns, or up to 8 rows where the product has at most 48 columns
 * (the last vector masked when the columns are not a multiple of 16): each column vector loaded
 * serves 6 or 8 rows (it had been 4: drsch-mnist's fc2 reads its 96 KB of weights from L2). Every
 * value is summed in an order that does not depend on the number of threads: each output, input
 * gradient, weight gradient and bias gradient is one block's, summed from zero over the depth (or
 * the batch's rows) in order; the forward pass adds the bias after the products, then the ReLU. */
#include "nn_internal.h"

bool nn_fc_deep(const nn_layer *L) { return L->in_4d && (L->in_h > 1 || L->in_w > 1); }

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

/* rows of a block: up to FC_ROWS_WIDE of FC_VECS vectors, or up to FC_ROWS of fewer (24 sums
 * in registers either way) */
#define FC_ROWS 8
#define FC_ROWS_WIDE 6
/* vectors of 16 columns of a block */
#define FC_VECS 4

/* The mask of vector v of a block whose columns run from col to col + 16 * FC_VECS - 1, in a
 * matrix of ncol columns. */
static inline __mmask16 col_mask(int col, int v, int ncol)
{
    const int rem = ncol - col - 16 * v;
    return rem >= 16 ? (__mmask16)0xffff : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1u);
}

/* acc[r][v] += a[r * lda + k * ldk] * b[k * ldb + col + 16 v ..] over k < depth, in k order, b's
 * rows read with the masks m (MASKED) or whole. Whole vectors are read without masks: GCC kept
 * the masks in general registers and moved them into mask registers at every k, on the port that
 * also runs half of the FMAs (drsch-mnist's fc1 forward ran at about 68% of the f32 peak). */
static inline __attribute__((always_inline)) void
block_sums(__m512 acc[FC_ROWS][FC_VECS], const float *a, size_t lda, size_t ldk, const float *b,
           size_t ldb, int depth, int col, const __mmask16 *m, const int R, const int V,
           const int MASKED)
{
    for (int k = 0; k < depth; k++) {
        const float *bk = b + (size_t)k * ldb + col;
        __m512 bv[FC_VECS];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            bv[v] =
                MASKED ? _mm512_maskz_loadu_ps(m[v], bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(a[(size_t)r * lda + (size_t)k * ldk]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
        }
    }
}

/* out[r][col + j] = sum over k < depth of a[r * lda + k * ldk] * b[k * ldb + col + j] for the
 * block's R rows and the masked columns (b's rows read with the same masks), summed from zero in k
 * order; then, when bias, + bias[col + j], and, when relu, max(., 0). R and V are constants
 * where it is inlined, so the R x V sums stay in registers. */
static inline __attribute__((always_inline)) void
block(const float *a, size_t lda, size_t ldk, const float *b, size_t ldb, float *out, size_t ldo,
      int depth, int col, int ncol, const float *bias, int relu, const int R, const int V)
{
    __m512 acc[FC_ROWS][FC_VECS];
    __mmask16 m[FC_VECS];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
        m[v] = col_mask(col, v, ncol);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            acc[r][v] = _mm512_setzero_ps();
    if (ncol - col >= 16 * V)
        block_sums(acc, a, lda, ldk, b, ldb, depth, col, m, R, V, 0);
    else
        block_sums(acc, a, lda, ldk, b, ldb, depth, col, m, R, V, 1);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m512 y = acc[r][v];
            if (bias)
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m[v], bias + col + 16 * v));
            if (relu)
                y = _mm512_max_ps(y, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(out + (size_t)r * ldo + (size_t)col + 16 * v, m[v], y);
        }
}

/* block with R = 1 .. 8 rows and V = 1 .. 3 vectors, or R = 1 .. 6 and V = 4, one function each */
typedef void (*block_fn)(const float *a, size_t lda, size_t ldk, const float *b, size_t ldb,
                         float *out, size_t ldo, int depth, int col, int ncol, const float *bias,
                         int relu);
#define BLOCK_FN(R, V)                                                                             \
    static void block_##R##_##V(const float *a, size_t lda, size_t ldk, const float *b,            \
                                size_t ldb, float *out, size_t ldo, int depth, int col, int ncol,  \
                                const float *bias, int relu)                                       \
    {                                                                                              \
        block(a, lda, ldk, b, ldb, out, ldo, depth, col, ncol, bias, relu, R, V);                  \
    }
#define BLOCK_FN_R(R) BLOCK_FN(R, 1) BLOCK_FN(R, 2) BLOCK_FN(R, 3) BLOCK_FN(R, 4)
#define BLOCK_FN_R3(R) BLOCK_FN(R, 1) BLOCK_FN(R, 2) BLOCK_FN(R, 3)
BLOCK_FN_R(1)
BLOCK_FN_R(2)
BLOCK_FN_R(3)
BLOCK_FN_R(4)
BLOCK_FN_R(5)
BLOCK_FN_R(6)
BLOCK_FN_R3(7)
BLOCK_FN_R3(8)
#undef BLOCK_FN_R
#undef BLOCK_FN_R3
#undef BLOCK_FN
static const block_fn BLOCK[FC_ROWS][FC_VECS] = {
    {block_1_1, block_1_2, block_1_3, block_1_4}, {block_2_1, block_2_2, block_2_3, block_2_4},
    {block_3_1, block_3_2, block_3_3, block_3_4}, {block_4_1, block_4_2, block_4_3, block_4_4},
    {block_5_1, block_5_2, block_5_3, block_5_4}, {block_6_1, block_6_2, block_6_3, block_6_4},
    {block_7_1, block_7_2, block_7_3, NULL},      {block_8_1, block_8_2, block_8_3, NULL}};

/* The product out = a (nrow x depth: value (r, k) at a[r * lda + k * ldk]) times b (depth x
 * ncol, row stride ldb), its blocks split among the threads of the enclosing parallel region
 * (nowait: the region's end waits for them), with bias and ReLU as block's. The blocks of one
 * column block are consecutive, so a thread reads b's columns of that block from its cache. */
static void product(const float *a, size_t lda, size_t ldk, const float *b, size_t ldb, float *out,
                    int nrow, int depth, int ncol, const float *bias, int relu)
{
    const int width = 16 * FC_VECS, rows = ncol > 48 ? FC_ROWS_WIDE : FC_ROWS,
              rb = (nrow + rows - 1) / rows, cb = (ncol + width - 1) / width;
#pragma omp for schedule(static) nowait
    for (int t = 0; t < rb * cb; t++) {
        const int r0 = t % rb * rows, c0 = t / rb * width;
        const int R = nrow - r0 < rows ? nrow - r0 : rows;
        const int cols = ncol - c0 < width ? ncol - c0 : width, V = (cols + 15) / 16;
        BLOCK[R - 1][V - 1](a + (size_t)r0 * lda, lda, ldk, b, ldb, out + (size_t)r0 * ncol,
                            (size_t)ncol, depth, c0, ncol, bias, relu);
    }
}

/* ---- the forward pass over a deep source (nn_fc_deep) ----
 *
 * out[n][o] = x[n] . w[o], both rows contiguous over the depth: the plain weights, with no
 * transposed copy (drsch-reid's fc1 has 512 x 5,120 weights, 10 MB: transposing them at every
 * step would cost about as much as the product). A block is DOT_X source rows by DOT_W weight
 * rows, 24 sums of 16 lanes in registers; the depth is cut into chunks of DOT_DEPTH, and a
 * thread's weight blocks run chunk by chunk, each block over all the source rows, so a block's
 * weight rows (24 KB, packed: pack_weights) stay in L1 while the chunk's source rows (100 images:
 * 400 KB) come from L2. drsch-reid's fc1 (100 x 5,120 by 512 x 5,120, 2 threads, 2-core Zen 5,
 * alone in a loop): 1.55-1.67 ms, 310-340 GFLOP/s, about 75% of the f32 peak; chunks of 512 or
 * 2,048 measured 2.1-2.6 ms (more sums to add up, or the source past L2), and packing the
 * source rows as well, or prefetching the next block's weights, no faster. Each output is its
 * lanes' sums over a chunk, in depth order, added together in a fixed tree (sum4), then added to
 * the previous chunks' total; the bias after the last chunk, then the ReLU. The order depends on
 * neither the thread count nor the block a row falls in. */
#define DOT_X 4
#define DOT_W 6
#define DOT_DEPTH 1024

/* the lane sums of a, b, c and d, in that order (the same tree of additions for each) */
static inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    /* per 128-bit quarter: a0+a2, b0+b2, a1+a3, b1+b3 (and the same for c, d) */
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    /* per quarter: a, b, c, d */
    const __m512 s =
        _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xee));
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(s),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* acc[r][c] += x[r * ldx + k ..] * wp[16 c ..] for the block's R source rows and C packed weight
 * rows: 16 values of depth, or the first of them in mask m (MASKED) */
static inline __attribute__((always_inline)) void dot_step(__m512 acc[DOT_X][DOT_W], const float *x,
                                                           size_t ldx, int k, const float *wp,
                                                           __mmask16 m, const int R, const int C,
                                                           const int MASKED)
{
    __m512 xv[DOT_X];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        xv[r] = MASKED ? _mm512_maskz_loadu_ps(m, x + (size_t)r * ldx + k)
                       : _mm512_loadu_ps(x + (size_t)r * ldx + k);
#pragma GCC unroll 6
    for (int c = 0; c < C; c++) {
        const __m512 wv = _mm512_load_ps(wp + 16 * c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
    }
}

/* The R x C block of source rows at x (ldx apart) and weight rows packed in wp (pack_weights)
 * over depth [k0, k1): its sums added to out (rows ldo apart; stored when first), then, when
 * last, the bias and the ReLU. */
static inline __attribute__((always_inline)) void
dot_block(const float *x, size_t ldx, const float *wp, float *out, size_t ldo, int k0, int k1,
          bool first, bool last, const float *bias, int relu, const int R, const int C)
{
    __m512 acc[DOT_X][DOT_W];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    int k = k0;
    for (; k + 16 <= k1; k += 16, wp += 16 * DOT_W)
        dot_step(acc, x, ldx, k, wp, 0, R, C, 0);
    if (k < k1)
        dot_step(acc, x, ldx, k, wp, (__mmask16)((1u << (k1 - k)) - 1u), R, C, 1);
    /* each row's C sums in the first lanes of a vector, then added, biased and stored under a
     * mask of C lanes */
    const __m512 z = _mm512_setzero_ps();
    const __mmask16 m = (__mmask16)((1u << C) - 1u);
    const __m512 b = last && bias ? _mm512_maskz_loadu_ps(m, bias) : z;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m512 v = _mm512_castps128_ps512(
            sum4(acc[r][0], C > 1 ? acc[r][1] : z, C > 2 ? acc[r][2] : z, C > 3 ? acc[r][3] : z));
        if (C > 4)
            v = _mm512_insertf32x4(v, sum4(acc[r][4], C > 5 ? acc[r][5] : z, z, z), 1);
        float *o = out + (size_t)r * ldo;
        if (!first)
            v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), v);
        if (last && bias)
            v = _mm512_add_ps(v, b);
        if (last && relu)
            v = _mm512_max_ps(v, z);
        _mm512_mask_storeu_ps(o, m, v);
    }
}

typedef void (*dot_fn)(const float *x, size_t ldx, const float *wp, float *out, size_t ldo, int k0,
                       int k1, bool first, bool last, const float *bias, int relu);
#define DOT_FN(R, C)                                                                               \
    static void dot_##R##_##C(const float *x, size_t ldx, const float *wp, float *out, size_t ldo, \
                              int k0, int k1, bool first, bool last, const float *bias, int relu)  \
    {                                                                                              \
        dot_block(x, ldx, wp, out, ldo, k0, k1, first, last, bias, relu, R, C);                    \
    }
#define DOT_FN_R(R) DOT_FN(R, 1) DOT_FN(R, 2) DOT_FN(R, 3) DOT_FN(R, 4) DOT_FN(R, 5) DOT_FN(R, 6)
DOT_FN_R(1)
DOT_FN_R(2)
DOT_FN_R(3)
DOT_FN_R(4)
#undef DOT_FN_R
#undef DOT_FN
static const dot_fn DOT[DOT_X][DOT_W] = {{dot_1_1, dot_1_2, dot_1_3, dot_1_4, dot_1_5, dot_1_6},
                                         {dot_2_1, dot_2_2, dot_2_3, dot_2_4, dot_2_5, dot_2_6},
                                         {dot_3_1, dot_3_2, dot_3_3, dot_3_4, dot_3_5, dot_3_6},
                                         {dot_4_1, dot_4_2, dot_4_3, dot_4_4, dot_4_5, dot_4_6}};

/* The c rows of w (ldw apart) over depth [k0, k1), packed into wp as dot_block reads them: for
 * each 16 values of depth, the DOT_W rows' vectors one after another (the last vector zero past
 * k1). Read in place, the block's rows, as far apart as a row of weights (20 KB in drsch-reid's
 * fc1, a multiple of 4 KB), fell in the same sets of the L1 cache with the source rows, which
 * evicted them between source blocks (the forward pass at about 60% of the peak). */
static void pack_weights(const float *w, size_t ldw, int c, int k0, int k1, float *wp)
{
    for (int k = k0; k < k1; k += 16, wp += 16 * DOT_W) {
        const __mmask16 m = k1 - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k1 - k)) - 1u);
        for (int r = 0; r < c; r++)
            _mm512_store_ps(wp + 16 * r, _mm512_maskz_loadu_ps(m, w + (size_t)r * ldw + k));
    }
}

/* y (n x o) = x (n x depth) times w (o x depth) transposed, plus bias, ReLU when relu; the weight
 * blocks shared among the threads of the enclosing parallel region, in thread order. */
static void forward_dot(const float *x, const float *w, const float *bias, float *y, int n,
                        int depth, int o, int relu)
{
    float wp[DOT_DEPTH * DOT_W] __attribute__((aligned(64)));
    int lo, hi;
    nn_thread_share((o + DOT_W - 1) / DOT_W, &lo, &hi);
    for (int k0 = 0; k0 < depth; k0 += DOT_DEPTH) {
        const int k1 = depth - k0 < DOT_DEPTH ? depth : k0 + DOT_DEPTH;
        for (int ob = lo; ob < hi; ob++) {
            const int o0 = ob * DOT_W, C = o - o0 < DOT_W ? o - o0 : DOT_W;
            pack_weights(w + (size_t)o0 * depth, (size_t)depth, C, k0, k1, wp);
            for (int n0 = 0; n0 < n; n0 += DOT_X) {
                const int R = n - n0 < DOT_X ? n - n0 : DOT_X;
                DOT[R - 1][C - 1](x + (size_t)n0 * depth, (size_t)depth, wp,
                                  y + (size_t)n0 * o + o0, (size_t)o, k0, k1, k0 == 0, k1 == depth,
                                  bias ? bias + o0 : NULL, relu);
            }
        }
    }
}

/* Products this small run on one thread (a parallel region's start and end cost more). */
#define FC_PARALLEL_MACS 65536

void nn_fc_forward(const nn_net *net, const nn_layer *L)
{
    const int N = net->cfg.batch, IC = (int)nn_gemm_depth(L), OC = L->out_c;
    const float *x = nn_mem_ptr(L->src), *b = nn_mem_ptr(L->b);
    float *y = nn_mem_ptr(L->dst);
    if (nn_fc_deep(L)) {
        const float *w = nn_mem_ptr(L->w);
#pragma omp parallel if ((long)N * IC * OC >= FC_PARALLEL_MACS)
        forward_dot(x, w, b, y, N, IC, OC, L->spec.relu);
        return;
    }
    const float *wt = nn_mem_ptr(L->w_fwd);
#pragma omp parallel if ((long)N * IC * OC >= FC_PARALLEL_MACS)
    product(x, (size_t)IC, 1, wt, (size_t)OC, y, N, IC, OC, b, L->spec.relu);
}

void nn_fc_backward(const nn_net *net, const nn_layer *L, bool data)
{
    const int N = net->cfg.batch, IC = (int)nn_gemm_depth(L), OC = L->out_c;
    const float *x = nn_mem_ptr(L->src), *w = nn_mem_ptr(L->w), *y = nn_mem_ptr(L->dst);
    float *dy = nn_mem_ptr(L->diff_dst), *dw = nn_mem_ptr(L->dw), *db = nn_mem_ptr(L->db);
    const long n_out = (long)N * OC;
#pragma omp parallel if ((long)N * IC * OC >= FC_PARALLEL_MACS)
    {
        /* the ReLU's gradient, in place: zero where the output is not positive (the barrier at
         * the loop's end before the products read it) */
        if (L->spec.relu) {
#pragma omp for schedule(static)
            for (long i = 0; i < n_out; i++)
                dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        }
        /* weight gradient, OC x IC: dY^T (row o is dY's column o) times X, over the rows */
        product(dy, 1, (size_t)OC, x, (size_t)IC, dw, OC, N, IC, NULL, 0);
        /* input gradient, N x IC: dY times W */
        if (data) {
            product(dy, (size_t)OC, 1, w, (size_t)IC, nn_mem_ptr(L->diff_src), N, OC, IC, NULL, 0);
        }
        /* bias gradient: each channel's sum over the rows in order, 16 channels a vector */
#pragma omp for schedule(static) nowait
        for (int o = 0; o < OC; o += 16) {
            const __mmask16 m = col_mask(o, 0, OC);
            __m512 s = _mm512_setzero_ps();
            for (int n = 0; n < N; n++)
                s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, dy + (size_t)n * OC + o));
            _mm512_mask_storeu_ps(db + o, m, s);
        }
    }
}

bool nn_fc_fits(const nn_net *net, const nn_layer *L)
{
    return net->cfg.precision == NN_PRECISION_F32 && L->spec.kind == NN_LAYER_FC &&
           __builtin_cpu_supports("avx512f") && nn_onednn_avx512();
}

#else
/* No AVX-512 build of this file (not x86-64): nn_fc_fits is false, oneDNN computes the fully
 * connected layers, and the passes are never called. */

bool nn_fc_fits(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
    return false;
}
void nn_fc_forward(const nn_net *net, const nn_layer *L)
{
    (void)net;
    (void)L;
}
void nn_fc_backward(const nn_net *net, const nn_layer *L, bool data)
{
    (void)net;
    (void)L;
    (void)data;
}
#endif
