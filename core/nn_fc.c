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
 * forward pass. A block is up to 6 rows by up to 4 vectors of 16 columns, or up to 8 rows where
 * the product has at most 48 columns (the last vector masked when the columns are not a multiple
 * of 16): each column vector loaded serves 6 or 8 rows (it had been 4: drsch-mnist's fc2 reads
 * its 96 KB of weights from L2). Every value is summed in an order that does not
 * depend on the number of threads: each output, input gradient, weight gradient and bias
 * gradient is one block's, summed from zero over the depth (or the batch's rows) in order; the
 * forward pass adds the bias after the products, then the ReLU. */
#include "nn_internal.h"

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

/* Products this small run on one thread (a parallel region's start and end cost more). */
#define FC_PARALLEL_MACS 65536

void nn_fc_forward(const nn_net *net, const nn_layer *L)
{
    const int N = net->cfg.batch, IC = (int)nn_gemm_depth(L), OC = L->out_c;
    const float *x = nn_mem_ptr(L->src), *wt = nn_mem_ptr(L->w_fwd), *b = nn_mem_ptr(L->b);
    float *y = nn_mem_ptr(L->dst);
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
           (!L->in_4d || (L->in_h == 1 && L->in_w == 1)) && __builtin_cpu_supports("avx512f") &&
           nn_onednn_avx512();
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
