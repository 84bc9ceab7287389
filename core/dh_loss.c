/* The DRSCH objective and its gradient (see dh.h). Both terms are sums over pairs of
 * |y_i - y_j|^2, so the gradient is assembled from one symmetric n x n pair-coefficient matrix W:
 * d L / d y_i = 2 sum_j W_ij (y_i - y_j). Costs O(n^2 d + n * P * N) for P similar and N
 * dissimilar items per anchor; a batch of 100 is well under a millisecond. Sums in double. */
#include "dh.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The loss's loops in AVX-512 and AVX2 copies besides the portable one, chosen at load time
 * (GCC's function multiversioning). Each sum keeps its order and C11 forbids contracting a * b + c
 * into an FMA, so every copy gives the same bits; only the vector width changes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define DH_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define DH_CLONES
#endif

void dh_config_default(dh_config *c)
{
    c->beta = 0.001f;
    c->margin0 = -5.0f;
    c->margin_step = -0.1f;
    c->margin_every = 10000;
    c->margin_min = 0;
    c->graph = DH_GRAPH_LABEL;
    c->graph_other = 0.001f;
    c->knn_k = 5;
    c->norm = DH_NORM_ALL;
    c->triplets = DH_TRIPLETS_ALL;
}

float dh_margin_at(const dh_config *c, int64_t iter)
{
    int64_t steps = c->margin_every > 0 ? iter / c->margin_every : 0;
    float m = c->margin0 + c->margin_step * (float)steps;
    return c->margin_min < 0 && m < c->margin_min ? c->margin_min : m;
}

void dh_similarity(const int32_t *labels, const uint64_t *multi, size_t words, int32_t n,
                   uint8_t *sim)
{
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            int s = 0;
            if (labels) {
                s = labels[i] == labels[j];
            } else {
                for (size_t w = 0; w < words && !s; w++)
                    s = (multi[(size_t)i * words + w] & multi[(size_t)j * words + w]) != 0;
            }
            sim[(size_t)i * n + j] = (uint8_t)s;
        }
}

static double sqdist(const float *a, const float *b, int32_t d)
{
    double s = 0;
    for (int32_t k = 0; k < d; k++) {
        double t = (double)a[k] - (double)b[k];
        s += t * t;
    }
    return s;
}

/* Heat-kernel k-NN graph: A_ij = exp(-|f_i - f_j|^2 / t) when j is among i's k nearest or i
 * among j's, t = the mean squared distance to the k nearest neighbours (self-tuning scale). */
static int knn_graph(const float *feat, int32_t n, int32_t fdim, int32_t k, double *A)
{
    double *d2 = malloc(sizeof(double) * (size_t)n * n);
    double *row = malloc(sizeof(double) * (size_t)n);
    if (!d2 || !row) {
        free(d2);
        free(row);
        return -1;
    }
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = i; j < n; j++)
            d2[(size_t)i * n + j] = d2[(size_t)j * n + i] =
                i == j ? 0 : sqdist(feat + (size_t)i * fdim, feat + (size_t)j * fdim, fdim);
    if (k > n - 1)
        k = n - 1;
    memset(A, 0, sizeof(double) * (size_t)n * n);
    double t = 0;
    int64_t cnt = 0;
    /* Threshold per row: the k-th smallest distance to another item. */
    double *kth = malloc(sizeof(double) * (size_t)n);
    if (!kth) {
        free(d2);
        free(row);
        return -1;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t m = 0;
        for (int32_t j = 0; j < n; j++)
            if (j != i)
                row[m++] = d2[(size_t)i * n + j];
        /* partial selection sort: k passes are fine for batch-sized n */
        for (int32_t a = 0; a < k; a++) {
            int32_t best = a;
            for (int32_t b = a + 1; b < m; b++)
                if (row[b] < row[best])
                    best = b;
            double tmp = row[a];
            row[a] = row[best];
            row[best] = tmp;
            t += row[a];
            cnt++;
        }
        kth[i] = k > 0 ? row[k - 1] : -1;
    }
    t = cnt ? t / (double)cnt : 1.0;
    if (t <= 0)
        t = 1.0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            double dij = d2[(size_t)i * n + j];
            if (i != j && (dij <= kth[i] || dij <= kth[j]))
                A[(size_t)i * n + j] = exp(-dij / t);
        }
    free(kth);
    free(d2);
    free(row);
    return 0;
}

/* Eight doubles (GCC's and Clang's vector extension: one AVX-512 register, or pieces of it in the
 * other clones). Aligned as doubles: a copy on the stack must not need 64-byte alignment, which
 * AddressSanitizer's stack frames for use-after-return checks do not give (an aligned store there
 * faulted in ci/sanitize). */
typedef double dh_v8d __attribute__((vector_size(64), aligned(8)));
/* the same, as a view of doubles in memory */
typedef double dh_v8d_m __attribute__((vector_size(64), aligned(8), may_alias));
#define LOADD8(p) ((dh_v8d) * (const dh_v8d_m *)(p))

/* Columns j0 .. j0 + 8 V - 1 of distance row i (distance_row): V vectors of 8 sums over k in
 * order, in registers for the whole pass over k (V a constant where it is inlined). */
static inline __attribute__((always_inline)) void distance_cols(const double *yt, int32_t n,
                                                                int32_t d, int32_t i, int32_t j0,
                                                                double *row, const int V)
{
    /* named vectors, not arrays (see dh_v8d) */
#define DCOLS_EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define DCOLS_INIT(q) dh_v8d s##q = {0};
    DCOLS_EACH(DCOLS_INIT)
    for (int32_t k = 0; k < d; k++) {
        const double *col = yt + (size_t)k * (size_t)n;
        const double a = col[i];
        const dh_v8d av = {a, a, a, a, a, a, a, a};
#define DCOLS_ADD(q)                                                                               \
    if (V > q) {                                                                                   \
        const dh_v8d t##q = av - LOADD8(col + j0 + 8 * q);                                         \
        s##q += t##q * t##q;                                                                       \
    }
        DCOLS_EACH(DCOLS_ADD)
    }
#define DCOLS_STORE(q)                                                                             \
    if (V > q)                                                                                     \
        *(dh_v8d_m *)(row + j0 + 8 * q) = s##q;
    DCOLS_EACH(DCOLS_STORE)
#undef DCOLS_STORE
#undef DCOLS_ADD
#undef DCOLS_INIT
#undef DCOLS_EACH
}

/* Row i of the squared distances from the transposed outputs yt (d x n): every pair (i, j) is
 * summed over k in order, as sqdist does, the row's n pairs side by side; (a - b)^2 and (b - a)^2
 * are the same double, so rows i and j agree on the pair. Up to 64 columns at a time in
 * registers (distance_cols), the columns left over one at a time. Summed in memory, a row's sums
 * were loaded and stored at every k: the distances took 26 us of the loss's 120 in a training
 * step of drsch-mnist (100 x 48, 2 threads, 2-core Zen 5), and the loss 0.121 ms against 0.109
 * with this (medians of eight alternate runs of `drsch bench train --passes`). */
DH_CLONES static void distance_row(const double *yt, int32_t n, int32_t d, int32_t i, double *row)
{
    int32_t j0 = 0;
    while (j0 + 8 <= n) {
        const int32_t vecs = (n - j0) / 8;
        if (vecs >= 8) {
            distance_cols(yt, n, d, i, j0, row, 8);
            j0 += 64;
        } else if (vecs >= 4) {
            distance_cols(yt, n, d, i, j0, row, 4);
            j0 += 32;
        } else if (vecs >= 2) {
            distance_cols(yt, n, d, i, j0, row, 2);
            j0 += 16;
        } else {
            distance_cols(yt, n, d, i, j0, row, 1);
            j0 += 8;
        }
    }
    for (int32_t j = j0; j < n; j++) {
        double acc = 0.0;
        for (int32_t k = 0; k < d; k++) {
            const double t = yt[(size_t)k * n + i] - yt[(size_t)k * n + j];
            acc += t * t;
        }
        row[j] = acc;
    }
}

/* The triplet term as it is summed: the margin C, the loss of the active triplets, the number of
 * triplets and of active ones. */
typedef struct {
    double C, tl;
    int64_t triplets, active;
} triplet_sums;

/* Anchor a's one triplet: its farthest similar and nearest dissimilar item (the lowest index on
 * ties, so the choice is deterministic); W[a][p] += 1, W[a][n] -= 1 when it is active. */
static void hardest_triplet(int32_t n, int32_t a, const uint8_t *sa, const double *dist, double *W,
                            triplet_sums *t)
{
    int32_t hp = -1, hn = -1;
    for (int32_t j = 0; j < n; j++) {
        if (j == a)
            continue;
        double dj = dist[(size_t)a * n + j];
        if (sa[j] && (hp < 0 || dj > dist[(size_t)a * n + hp]))
            hp = j;
        if (!sa[j] && (hn < 0 || dj < dist[(size_t)a * n + hn]))
            hn = j;
    }
    t->triplets++;
    double l = dist[(size_t)a * n + hp] - dist[(size_t)a * n + hn];
    if (l >= t->C) {
        t->active++;
        t->tl += l - t->C;
        W[(size_t)a * n + hp] += 1.0;
        W[(size_t)a * n + hn] -= 1.0;
    }
}

/* Scratch of all_triplets, n entries each. */
typedef struct {
    int32_t *neg, *cnt;
    double *dneg, *part;
} triplet_scratch;

/* Every triplet of anchor a (np similar x nneg dissimilar items): W[a][p] += 1, W[a][n] -= 1 for
 * every active one. Those are whole numbers, so they are counted and added once (the same
 * values as one by one). The dissimilar items' distances are gathered once, so the loop over
 * them runs in vector lanes: each keeps its count and its sum of l - C over the similar items in
 * order (+0 for inactive triplets: the same sum), and the anchor's loss sums the lanes in order.
 * The gradient does not depend on that order, only the loss's last bits; it is the same at any
 * thread count. */
DH_CLONES static void all_triplets(int32_t n, int32_t a, const uint8_t *sa, int64_t np,
                                   int64_t nneg, const double *dist, double *W, triplet_sums *t,
                                   const triplet_scratch *s)
{
    t->triplets += np * nneg;
    const double *da = dist + (size_t)a * n, C = t->C;
    double *Wa = W + (size_t)a * n;
    int32_t *neg = s->neg, *cnt = s->cnt;
    double *dneg = s->dneg, *part = s->part;
    int32_t m = 0;
    for (int32_t q = 0; q < n; q++)
        if (q != a && !sa[q]) {
            neg[m] = q;
            dneg[m] = da[q];
            cnt[m] = 0;
            part[m] = 0.0;
            m++;
        }
    int64_t active = 0;
    for (int32_t p = 0; p < n; p++) {
        if (p == a || !sa[p])
            continue;
        const double dap = da[p];
        int32_t on = 0;
        for (int32_t i = 0; i < m; i++) {
            const double l = dap - dneg[i];
            const int32_t act = l >= C;
            on += act;
            cnt[i] += act;
            part[i] += act ? l - C : 0.0;
        }
        Wa[p] += (double)on;
        active += on;
    }
    double tl = 0.0;
    for (int32_t i = 0; i < m; i++) {
        Wa[neg[i]] -= (double)cnt[i];
        tl += part[i];
    }
    t->tl += tl;
    t->active += active;
}

/* The triplets of anchor a into row a of W and into *ta (sums of its own). */
static void anchor_triplets(const dh_config *c, int32_t n, int32_t a, const uint8_t *sim,
                            const double *dist, double *W, triplet_sums *ta,
                            const triplet_scratch *s)
{
    const uint8_t *sa = sim + (size_t)a * n;
    int64_t np = 0, nneg = 0;
    for (int32_t j = 0; j < n; j++) {
        if (j == a)
            continue;
        np += sa[j] != 0;
        nneg += sa[j] == 0;
    }
    if (c->triplets == DH_TRIPLETS_HARD) {
        if (np > 0 && nneg > 0)
            hardest_triplet(n, a, sa, dist, W, ta);
        return;
    }
    all_triplets(n, a, sa, np, nneg, dist, W, ta, s);
}

/* Row i of W, which holds the triplet term's counts: scaled by inv_t, the triplet term's
 * normalisation, plus the Laplacian's share. The Laplacian is (beta/n) * 1/2 sum_ij A_ij
 * |y_i - y_j|^2, gradient 2 (beta/n) sum_j A_ij (y_i - y_j); each ordered pair (i, j) carries half
 * of it in W. A: the k-NN graph, or NULL for the label graph. Returns row i's sum of
 * 1/2 A_ij |y_i - y_j|^2. */
static double finish_row(const dh_config *c, int32_t n, int32_t i, const uint8_t *sim,
                         const double *A, const double *dist, double inv_t, double *W)
{
    double ll = 0.0;
    double *Wi = W + (size_t)i * n;
    for (int32_t j = 0; j < n; j++)
        Wi[j] *= inv_t;
    if (c->beta == 0)
        return 0.0;
    for (int32_t j = 0; j < n; j++) {
        if (i == j)
            continue;
        double a =
            A ? A[(size_t)i * n + j] : (sim[(size_t)i * n + j] ? 1.0 : (double)c->graph_other);
        ll += 0.5 * a * dist[(size_t)i * n + j];
        Wi[j] += 0.5 * (double)c->beta / n * a;
    }
    return ll;
}

/* dh_v8d stored as floats */
typedef float dh_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
#define STORE8(p, v) (*(dh_v8f_u *)(p) = __builtin_convertvector((v), dh_v8f_u))

/* Columns k0 .. k0 + 8 V - 1 of gradient row x (gradient_row): V vectors of 8 sums, each over
 * the terms in order; V a constant where it is inlined, so the sums stay in registers and the
 * V chains of additions overlap (one vector pair at a time, 16 columns, had waited on the
 * latency of its additions: the gradient took 0.060 ms of the loss's 0.131 in a training step of
 * drsch-mnist, 2 threads). The outputs are read as doubles converted once (yd; converted from
 * the floats at every term, as they were, the loss took 0.109 ms against 0.088 with this, the
 * same values: a float converts to a double exactly). */
static inline __attribute__((always_inline)) void
gradient_cols(const double *yd, int32_t d, int32_t m, const double *coef, const int32_t *idx,
              const double *yx, int32_t k0, float *dyx, const int V)
{
    /* named vectors, not arrays: an array of them on the stack gets 64-byte aligned moves, which
     * fault in AddressSanitizer's stack frames (see dh_v8d) */
#define COLS_EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define COLS_INIT(q)                                                                               \
    const dh_v8d x##q = V > q ? LOADD8(yx + k0 + 8 * q) : (dh_v8d){0};                             \
    dh_v8d a##q = {0};
    COLS_EACH(COLS_INIT)
    for (int32_t t = 0; t < m; t++) {
        const double *yj = yd + (size_t)idx[t] * d + k0;
        const dh_v8d c = {coef[t], coef[t], coef[t], coef[t], coef[t], coef[t], coef[t], coef[t]};
#define COLS_ADD(q)                                                                                \
    if (V > q)                                                                                     \
        a##q += c * (x##q - LOADD8(yj + 8 * q));
        COLS_EACH(COLS_ADD)
    }
#define COLS_STORE(q)                                                                              \
    if (V > q)                                                                                     \
        STORE8(dyx + k0 + 8 * q, a##q);
    COLS_EACH(COLS_STORE)
#undef COLS_STORE
#undef COLS_ADD
#undef COLS_INIT
#undef COLS_EACH
}

/* Row x of the gradient (see loss_region). Its terms, in the order the sum over the ordered pairs
 * (i, j) meets them: (i, x) for i < x, then (x, j) for every j, then (i, x) for i > x, each 2 W
 * (y_x - y_other) (the pair (i, x) subtracts 2 W (y_i - y_x): the same double negated). coef and
 * idx: room for 2n terms. The sums then run over the terms in that order for up to 64 k at a
 * time, in up to eight vectors of 8 doubles that stay in registers (gradient_cols; one pass over
 * the terms per pair had loaded and stored d sums per term), and for the columns left over one
 * at a time. */
DH_CLONES static void gradient_row(const double *yd, int32_t n, int32_t d, const double *W,
                                   int32_t x, double *coef, int32_t *idx, float *dy)
{
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (i == x) { /* W's diagonal is zero: (x, x) adds nothing */
            for (int32_t j = 0; j < n; j++) {
                double w = W[(size_t)x * n + j];
                if (w != 0.0 && j != x) {
                    coef[m] = 2.0 * w;
                    idx[m++] = j;
                }
            }
            continue;
        }
        double w = W[(size_t)i * n + x];
        if (w != 0.0) {
            coef[m] = 2.0 * w;
            idx[m++] = i;
        }
    }
    const double *yx = yd + (size_t)x * d;
    int32_t k0 = 0;
    while (k0 + 16 <= d) {
        const int32_t chunks = (d - k0) / 16 < 4 ? (d - k0) / 16 : 4;
        switch (chunks) {
        case 4: gradient_cols(yd, d, m, coef, idx, yx, k0, dy + (size_t)x * d, 8); break;
        case 3: gradient_cols(yd, d, m, coef, idx, yx, k0, dy + (size_t)x * d, 6); break;
        case 2: gradient_cols(yd, d, m, coef, idx, yx, k0, dy + (size_t)x * d, 4); break;
        default: gradient_cols(yd, d, m, coef, idx, yx, k0, dy + (size_t)x * d, 2); break;
        }
        k0 += 16 * chunks;
    }
    for (; k0 < d; k0++) { /* the columns left over, one at a time */
        const double xv = yx[k0];
        double acc = 0.0;
        for (int32_t t = 0; t < m; t++)
            acc += coef[t] * (xv - yd[(size_t)idx[t] * d + k0]);
        dy[(size_t)x * d + k0] = (float)acc;
    }
}

/* Scratch of one thread: the triplets' (4n entries) or the gradient's (4n). */
#define DH_SCRATCH(n) ((sizeof(int32_t) + sizeof(double)) * 2 * (size_t)(n))

/* One parallel region, its steps apart by barriers: transposed outputs, pair distances, the
 * triplets of each anchor, their sums, the rows of W (and the Laplacian), the gradient's rows.
 * Every step runs over rows or anchors whose results are combined in their order, so dy and the
 * loss have the same bits at any thread count. One region, not one per step: in a training step
 * of drsch-mnist (100 x 48, 2 threads, Zen 5) the loss took 0.30 ms with the triangle's distances
 * and the serial triplets, 0.19 ms with these loops in one region per step and 0.16-0.18 ms in
 * one region (0.13 ms alone, called back to back). The pair terms: d/dy_i of W_ij |y_i - y_j|^2 is
 * 2 W_ij (y_i - y_j), and of y_j the opposite; the sum over the ordered pairs (i, j), in order,
 * adds g_ij to row i and subtracts it from row j, and gradient_row forms row x's own sum in that
 * same order. Returns -1 when out of memory. */
static int loss_region(const dh_config *c, int32_t n, int32_t d, const float *y, const uint8_t *sim,
                       const double *A, double *yt, double *yd, double *dist, double *W,
                       triplet_sums *t, triplet_sums *sums, double *rows, float *dy)
{
    int failed = 0;
    double inv_t = 0.0;
#pragma omp parallel if (n >= 32) reduction(| : failed)
    {
        void *mem = malloc(DH_SCRATCH(n));
        failed = !mem;
        triplet_scratch s = {0};
        if (mem) {
            s.dneg = mem;
            s.part = s.dneg + n;
            s.neg = (int32_t *)(s.part + n);
            s.cnt = s.neg + n;
        }
#pragma omp for schedule(static)
        for (int32_t i = 0; i < n; i++)
            for (int32_t k = 0; k < d; k++)
                yt[(size_t)k * n + i] = yd[(size_t)i * d + k] = (double)y[(size_t)i * d + k];
#pragma omp for schedule(static)
        for (int32_t i = 0; i < n; i++)
            distance_row(yt, n, d, i, dist + (size_t)i * n);
#pragma omp for schedule(static)
        for (int32_t a = 0; a < n; a++) {
            sums[a] = (triplet_sums){t->C, 0, 0, 0};
            if (mem)
                anchor_triplets(c, n, a, sim, dist, W, &sums[a], &s);
        }
#pragma omp single
        {
            for (int32_t a = 0; a < n; a++) {
                t->tl += sums[a].tl;
                t->triplets += sums[a].triplets;
                t->active += sums[a].active;
            }
            int64_t denom = c->norm == DH_NORM_ACTIVE ? t->active : t->triplets;
            inv_t = denom ? 1.0 / (double)denom : 0.0;
            t->tl *= inv_t;
        }
#pragma omp for schedule(static)
        for (int32_t i = 0; i < n; i++)
            rows[i] = finish_row(c, n, i, sim, A, dist, inv_t, W);
        if (dy) {
#pragma omp for schedule(static)
            for (int32_t x = 0; x < n; x++)
                if (mem)
                    gradient_row(yd, n, d, W, x, (double *)mem,
                                 (int32_t *)((double *)mem + 2 * (size_t)n), dy);
        }
        free(mem);
    }
    return failed ? -1 : 0;
}

drsch_status dh_loss(const dh_config *c, int64_t iter, const float *y, int32_t n, int32_t d,
                     const uint8_t *sim, const float *feat, int32_t fdim, float *dy,
                     dh_stats *stats)
{
    const size_t nn = (size_t)n * (size_t)n, n1 = (size_t)(n > 0 ? n : 1);
    const bool knn = c->beta != 0 && c->graph == DH_GRAPH_KNN;
    double *dist = malloc(sizeof(double) * (nn ? nn : 1)), *W = calloc(nn ? nn : 1, sizeof(double));
    double *A = knn ? malloc(sizeof(double) * (nn ? nn : 1)) : NULL;
    /* the outputs as doubles, transposed (yt, d x n) and as they are (yd, n x d) */
    double *yt = malloc(sizeof(double) * 2 * n1 * (size_t)(d > 0 ? d : 1));
    double *rows = malloc(sizeof(double) * n1);
    triplet_sums *sums = malloc(sizeof(triplet_sums) * n1);
    int rc = !dist || !W || !yt || !rows || !sums || (knn && !A) ? -1 : 0;
    if (rc == 0 && knn)
        rc = knn_graph(feat, n, fdim, c->knn_k, A);
    triplet_sums t = {dh_margin_at(c, iter), 0, 0, 0};
    if (rc == 0)
        rc = loss_region(c, n, d, y, sim, A, yt, yt + n1 * (size_t)(d > 0 ? d : 1), dist, W, &t,
                         sums, rows, dy);
    if (rc == 0 && stats) {
        double ll = 0.0;
        for (int32_t i = 0; i < n; i++)
            ll += rows[i];
        if (c->beta != 0)
            ll *= (double)c->beta / n;
        stats->triplet_loss = t.tl;
        stats->laplacian_loss = ll;
        stats->loss = t.tl + ll;
        stats->triplets = t.triplets;
        stats->active = t.active;
    }
    free(dist);
    free(W);
    free(A);
    free(yt);
    free(rows);
    free(sums);
    return rc == 0 ? DRSCH_OK : DRSCH_ERR_NOMEM;
}
