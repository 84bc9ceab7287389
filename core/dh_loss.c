/* The DRSCH objective and its gradient (see dh.h). Both terms are sums over pairs of
 * |y_i - y_j|^2, so the gradient is assembled from one symmetric n x n pair-coefficient matrix W:
 * d L / d y_i = 2 sum_j W_ij (y_i - y_j). Costs O(n^2 d + n * P * N) for P similar and N
 * dissimilar items per anchor; a batch of 100 is well under a millisecond. Sums in double. */
#include "dh.h"

#include <math.h>
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

/* Row i of pair_distances: the pairs (i, j > i), written at (i, j) and (j, i). */
DH_CLONES static void distance_row(const float *y, int32_t n, int32_t d, int32_t i, double *dist)
{
    const float *yi = y + (size_t)i * d;
    dist[(size_t)i * n + i] = 0;
    int32_t j = i + 1;
    for (; j + 4 <= n; j += 4) {
        const float *yj = y + (size_t)j * d;
        double s[4] = {0, 0, 0, 0};
        for (int32_t k = 0; k < d; k++)
            for (int u = 0; u < 4; u++) {
                double t = (double)yi[k] - (double)yj[(size_t)u * d + k];
                s[u] += t * t;
            }
        for (int u = 0; u < 4; u++)
            dist[(size_t)i * n + j + u] = dist[(size_t)(j + u) * n + i] = s[u];
    }
    for (; j < n; j++)
        dist[(size_t)i * n + j] = dist[(size_t)j * n + i] = sqdist(yi, y + (size_t)j * d, d);
}

/* Squared distances between the n outputs (n x n, symmetric, zero diagonal). Each is summed
 * over k in order as sqdist does, four pairs side by side (a single sum is a chain of dependent
 * adds), rows over OpenMP threads: the same bits at any thread count. */
static void pair_distances(const float *y, int32_t n, int32_t d, double *dist)
{
#pragma omp parallel for schedule(dynamic, 4) if (n >= 32)
    for (int32_t i = 0; i < n; i++)
        distance_row(y, n, d, i, dist);
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

/* Every triplet of anchor a (np similar x nneg dissimilar items): W[a][p] += 1, W[a][n] -= 1 for
 * every active one. Those are whole numbers, so they are counted and added once (the same
 * values as one by one; adding to W in the loop made every triplet wait on the last one's store),
 * and the loss adds l - C for each active triplet in order (+0 for the others: the same sum),
 * without a branch on the data. neg: room for n indices, cnt for n counts. */
DH_CLONES static void all_triplets(int32_t n, int32_t a, const uint8_t *sa, int64_t np,
                                   int64_t nneg, const double *dist, double *W, triplet_sums *t,
                                   int32_t *neg, int32_t *cnt)
{
    t->triplets += np * nneg;
    const double *da = dist + (size_t)a * n, C = t->C;
    double *Wa = W + (size_t)a * n;
    int32_t m = 0;
    for (int32_t q = 0; q < n; q++)
        if (q != a && !sa[q]) {
            neg[m++] = q;
            cnt[q] = 0;
        }
    double tl = t->tl;
    int64_t active = 0;
    for (int32_t p = 0; p < n; p++) {
        if (p == a || !sa[p])
            continue;
        const double dap = da[p];
        int32_t on = 0;
        for (int32_t i = 0; i < m; i++) {
            const int32_t q = neg[i];
            const double l = dap - da[q];
            const int32_t act = l >= C;
            on += act;
            cnt[q] += act;
            tl += act ? l - C : 0.0;
        }
        Wa[p] += (double)on;
        active += on;
    }
    for (int32_t i = 0; i < m; i++)
        Wa[neg[i]] -= (double)cnt[neg[i]];
    t->tl = tl;
    t->active += active;
}

/* The triplet term into W (then divided by the triplet count of c->norm, as the loss is). */
static void triplet_term(const dh_config *c, int32_t n, const uint8_t *sim, const double *dist,
                         double *W, triplet_sums *t, int32_t *scratch)
{
    for (int32_t a = 0; a < n; a++) {
        const uint8_t *sa = sim + (size_t)a * n;
        int64_t np = 0, nneg = 0;
        for (int32_t j = 0; j < n; j++) {
            if (j == a)
                continue;
            np += sa[j] != 0;
            nneg += sa[j] == 0;
        }
        if (c->triplets == DH_TRIPLETS_HARD) {
            if (np == 0 || nneg == 0)
                continue;
            hardest_triplet(n, a, sa, dist, W, t);
            continue;
        }
        all_triplets(n, a, sa, np, nneg, dist, W, t, scratch, scratch + n);
    }
    int64_t denom = c->norm == DH_NORM_ACTIVE ? t->active : t->triplets;
    double inv_t = denom ? 1.0 / (double)denom : 0.0;
    t->tl *= inv_t;
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++)
        W[i] *= inv_t;
}

/* Laplacian: (beta/n) * 1/2 sum_ij A_ij |y_i - y_j|^2 into *ll, gradient 2 (beta/n) sum_j A_ij
 * (y_i - y_j); each ordered pair (i, j) carries half of it in W. A: room for the k-NN graph, or
 * NULL for the label graph. Returns -1 when out of memory. */
static int laplacian_term(const dh_config *c, int32_t n, const uint8_t *sim, const float *feat,
                          int32_t fdim, const double *dist, double *A, double *W, double *ll)
{
    if (A && knn_graph(feat, n, fdim, c->knn_k, A))
        return -1;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            if (i == j)
                continue;
            double a =
                A ? A[(size_t)i * n + j] : (sim[(size_t)i * n + j] ? 1.0 : (double)c->graph_other);
            *ll += 0.5 * a * dist[(size_t)i * n + j];
            W[(size_t)i * n + j] += 0.5 * (double)c->beta / n * a;
        }
    *ll *= (double)c->beta / n;
    return 0;
}

/* acc (d doubles) -= or += g = 2 w (a - b), g as pair_gradient's sum forms it. */
static void pair_term(double *acc, double w, const float *a, const float *b, int32_t d, int add)
{
    for (int32_t k = 0; k < d; k++) {
        double g = 2.0 * w * ((double)a[k] - (double)b[k]);
        acc[k] = add ? acc[k] + g : acc[k] - g;
    }
}

/* Row x of pair_gradient, summed in acc (d doubles). */
DH_CLONES static void gradient_row(const float *y, int32_t n, int32_t d, const double *W, int32_t x,
                                   double *acc, float *dy)
{
    memset(acc, 0, sizeof(double) * (size_t)d);
    const float *yx = y + (size_t)x * d;
    for (int32_t i = 0; i < n; i++) {
        if (i == x) { /* row x's own pairs (x, j), then (x, x) takes its g back */
            for (int32_t j = 0; j < n; j++) {
                double w = W[(size_t)x * n + j];
                if (w == 0.0)
                    continue;
                pair_term(acc, w, yx, y + (size_t)j * d, d, 1);
                if (j == x)
                    pair_term(acc, w, yx, yx, d, 0);
            }
            continue;
        }
        double w = W[(size_t)i * n + x]; /* pair (i, x): row x is its j */
        if (w != 0.0)
            pair_term(acc, w, y + (size_t)i * d, yx, d, 0);
    }
    for (int32_t k = 0; k < d; k++)
        dy[(size_t)x * d + k] = (float)acc[k];
}

/* d/dy_i of W_ij |y_i - y_j|^2 is 2 W_ij (y_i - y_j), and of y_j the opposite: dy (n x d), summed
 * in double. The sum over the ordered pairs (i, j), in order, adds g_ij to row i and subtracts it
 * from row j; row x's own sum is formed here in that same order, rows over OpenMP threads, so dy
 * has the same bits at any thread count (and as the one loop over the pairs). Returns -1 when
 * out of memory. */
static int pair_gradient(const float *y, int32_t n, int32_t d, const double *W, float *dy)
{
    int failed = 0;
#pragma omp parallel if (n >= 32) reduction(| : failed)
    {
        double *acc = malloc(sizeof(double) * (size_t)d);
        failed = !acc;
#pragma omp for schedule(static)
        for (int32_t x = 0; x < n; x++)
            if (acc)
                gradient_row(y, n, d, W, x, acc, dy);
        free(acc);
    }
    return failed ? -1 : 0;
}

drsch_status dh_loss(const dh_config *c, int64_t iter, const float *y, int32_t n, int32_t d,
                     const uint8_t *sim, const float *feat, int32_t fdim, float *dy,
                     dh_stats *stats)
{
    size_t nn = (size_t)n * (size_t)n;
    double *dist = malloc(sizeof(double) * nn), *W = calloc(nn, sizeof(double));
    double *A = c->beta != 0 && c->graph == DH_GRAPH_KNN ? malloc(sizeof(double) * nn) : NULL;
    int32_t *scratch = malloc(sizeof(int32_t) * 2 * (size_t)n);
    if (!dist || !W || !scratch || (c->beta != 0 && c->graph == DH_GRAPH_KNN && !A)) {
        free(dist);
        free(W);
        free(A);
        free(scratch);
        return DRSCH_ERR_NOMEM;
    }
    pair_distances(y, n, d, dist);
    triplet_sums t = {dh_margin_at(c, iter), 0, 0, 0};
    triplet_term(c, n, sim, dist, W, &t, scratch);
    double ll = 0;
    int rc = c->beta != 0 ? laplacian_term(c, n, sim, feat, fdim, dist, A, W, &ll) : 0;
    if (rc == 0 && dy)
        rc = pair_gradient(y, n, d, W, dy);
    if (rc == 0 && stats) {
        stats->triplet_loss = t.tl;
        stats->laplacian_loss = ll;
        stats->loss = t.tl + ll;
        stats->triplets = t.triplets;
        stats->active = t.active;
    }
    free(dist);
    free(W);
    free(A);
    free(scratch);
    return rc == 0 ? DRSCH_OK : DRSCH_ERR_NOMEM;
}
