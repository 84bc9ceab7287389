/* The DRSCH objective: loss values on hand-computed cases, the gradient (triplet + Laplacian,
 * label and k-NN graphs, single and multi-label similarity) against central finite differences,
 * the margin schedule, and the distance the loss learns against weighted Hamming ranking. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dh.h"
#include "hamming.h"

#ifdef _OPENMP
#include <omp.h>
#endif

Test(dh, margin_grows_on_schedule)
{
    dh_config c;
    dh_config_default(&c);
    cr_assert_float_eq(dh_margin_at(&c, 0), -5.0f, 1e-6);
    cr_assert_float_eq(dh_margin_at(&c, 9999), -5.0f, 1e-6);
    cr_assert_float_eq(dh_margin_at(&c, 10000), -5.1f, 1e-6);
    cr_assert_float_eq(dh_margin_at(&c, 35000), -5.3f, 1e-6);
}

/* Three items in 1-D: y = 0, 1, 3; labels A, A, B. Triplets (anchor, pos, neg):
 * (0,1,2): 1 - 9 = -8; (1,0,2): 1 - 4 = -3. T = 2. With C = -5 only the second is active:
 * triplet loss = (-3 + 5) / 2 = 1. Laplacian with A = [[0,1,.001],[1,0,.001],[.001,.001,0]]:
 * 1/2 sum A_ij d_ij = 1 + .001 * 9 + .001 * 4 = 1.013, times beta / n. */
Test(dh, hand_computed_loss)
{
    dh_config c;
    dh_config_default(&c);
    c.beta = 0.5f;
    float y[3] = {0, 1, 3}, dy[3];
    int32_t lab[3] = {7, 7, 2};
    uint8_t sim[9];
    dh_similarity(lab, NULL, 0, 3, sim);
    dh_stats st;
    cr_assert_eq(dh_loss(&c, 0, y, 3, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_eq(st.triplets, 2);
    cr_assert_eq(st.active, 1);
    cr_assert_float_eq(st.triplet_loss, 1.0, 1e-12);
    cr_assert_float_eq(st.laplacian_loss, 0.5 * 1.013 / 3, 1e-9);
    /* Growing the margin past 10k iterations activates nothing new here: C = -5.1. */
    cr_assert_eq(dh_loss(&c, 10000, y, 3, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_float_eq(st.triplet_loss, (-3 + 5.1) / 2, 1e-6);
}

/* The same three items with the triplet term divided by the active triplets (1) instead of all
 * (2): triplet loss = (-3 + 5) / 1 = 2; gradient of (|y1 - y0|^2 - |y1 - y2|^2) at y1 = 1:
 * 2 (y1 - y0) - 2 (y1 - y2) = 2 + 4 = 6 (plus the Laplacian, off here). */
Test(dh, active_normalisation_hand_computed)
{
    dh_config c;
    dh_config_default(&c);
    c.beta = 0;
    c.norm = DH_NORM_ACTIVE;
    float y[3] = {0, 1, 3}, dy[3];
    int32_t lab[3] = {7, 7, 2};
    uint8_t sim[9];
    dh_similarity(lab, NULL, 0, 3, sim);
    dh_stats st;
    cr_assert_eq(dh_loss(&c, 0, y, 3, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_eq(st.triplets, 2);
    cr_assert_eq(st.active, 1);
    cr_assert_float_eq(st.triplet_loss, 2.0, 1e-12);
    cr_assert_float_eq(dy[1], 6.0f, 1e-5);
    cr_assert_float_eq(dy[0], -2.0f, 1e-5); /* -2 (y1 - y0) */
    cr_assert_float_eq(dy[2], -4.0f, 1e-5); /* +2 (y1 - y2) */
    /* No active triplet (both l < C = 0): no triplet loss and no division by zero. */
    c.margin0 = 0.0f;
    cr_assert_eq(dh_loss(&c, 0, y, 3, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_eq(st.active, 0);
    cr_assert_float_eq(st.triplet_loss, 0.0, 1e-12);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(dy[i], 0.0f, 1e-12);
}

/* Batch-hard triplets on y = 0, 1, 3, 6 with labels A, A, B, B, C = -5: per anchor the
 * farthest similar and nearest dissimilar item: anchor 0: 1 - 9 = -8; anchor 1: 1 - 4 = -3;
 * anchor 2: 9 - 4 = 5 (its nearest dissimilar is item 1, not 0); anchor 3: 9 - 25 = -16.
 * Active: anchors 1 and 2; loss ((-3 + 5) + (5 + 5)) / 4 = 3. Gradient of the two active
 * triplets / 4: dy = (-0.5, 2.5, -3.5, 1.5). */
Test(dh, batch_hard_triplets_hand_computed)
{
    dh_config c;
    dh_config_default(&c);
    c.beta = 0;
    c.triplets = DH_TRIPLETS_HARD;
    float y[4] = {0, 1, 3, 6}, dy[4];
    int32_t lab[4] = {1, 1, 2, 2};
    uint8_t sim[16];
    dh_similarity(lab, NULL, 0, 4, sim);
    dh_stats st;
    cr_assert_eq(dh_loss(&c, 0, y, 4, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_eq(st.triplets, 4);
    cr_assert_eq(st.active, 2);
    cr_assert_float_eq(st.triplet_loss, 3.0, 1e-12);
    const float want[4] = {-0.5f, 2.5f, -3.5f, 1.5f};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(dy[i], want[i], 1e-5, "dy[%d] = %g, want %g", i, dy[i], want[i]);
    /* All triplets on the same batch: 8 of them, so the two modes really differ. */
    c.triplets = DH_TRIPLETS_ALL;
    cr_assert_eq(dh_loss(&c, 0, y, 4, 1, sim, NULL, 0, dy, &st), 0);
    cr_assert_eq(st.triplets, 8);
}

static double loss_at(const dh_config *c, const float *y, int32_t n, int32_t d, const uint8_t *sim,
                      const float *feat, int32_t fdim)
{
    dh_stats st;
    cr_assert_eq(dh_loss(c, 0, y, n, d, sim, feat, fdim, NULL, &st), 0);
    return st.loss;
}

/* Central differences in float inputs: eps 1e-3 on values of order 1; the loss is piecewise
 * quadratic, so away from activation boundaries the difference is exact up to rounding of the
 * float perturbation (relative error ~1e-4 allowed). Points within 1e-2 of a boundary are
 * avoided by checking that the active set is the same at y +- eps. */
static void check_gradient(dh_config *c, int32_t n, int32_t d, const uint8_t *sim,
                           const float *feat, int32_t fdim, unsigned seed)
{
    srand(seed);
    float *y = malloc(sizeof(float) * (size_t)n * d), *dy = malloc(sizeof(float) * (size_t)n * d);
    for (int32_t i = 0; i < n * d; i++)
        y[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
    dh_stats st0;
    cr_assert_eq(dh_loss(c, 0, y, n, d, sim, feat, fdim, dy, &st0), 0);
    cr_assert_gt(st0.active, 0, "test needs active triplets");
    int checked = 0;
    for (int32_t i = 0; i < n * d; i += 3) {
        const float eps = 1e-3f;
        float keep = y[i];
        dh_stats sp, sm;
        y[i] = keep + eps;
        dh_loss(c, 0, y, n, d, sim, feat, fdim, NULL, &sp);
        y[i] = keep - eps;
        dh_loss(c, 0, y, n, d, sim, feat, fdim, NULL, &sm);
        y[i] = keep;
        if (sp.active != st0.active || sm.active != st0.active)
            continue; /* an activation boundary lies within eps */
        double num = (sp.loss - sm.loss) / (double)((keep + eps) - (keep - eps));
        double tol = 1e-4 * fmax(1.0, fabs(num)) + 1e-5;
        cr_assert(fabs(num - dy[i]) <= tol, "element %d: analytic %.8f, numeric %.8f", i, dy[i],
                  num);
        checked++;
    }
    cr_assert_gt(checked, n * d / 6, "too few elements away from boundaries (%d)", checked);
    free(y);
    free(dy);
}

/* The gradient checks' batch: n items of `classes` labels in turn (label graph), the default
 * objective with the Laplacian on (beta 0.05) and margin -1, so that triplets are active. */
static void label_batch(dh_config *c, int32_t n, int classes, uint8_t *sim)
{
    dh_config_default(c);
    c->beta = 0.05f;
    c->margin0 = -1.0f;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    cr_assert_not_null(lab);
    for (int32_t i = 0; i < n; i++)
        lab[i] = i % classes;
    dh_similarity(lab, NULL, 0, n, sim);
    free(lab);
}

Test(dh, gradient_label_graph_matches_finite_differences)
{
    dh_config c;
    enum { N = 12, D = 6 };
    uint8_t sim[N * N];
    label_batch(&c, N, 3, sim);
    check_gradient(&c, N, D, sim, NULL, 0, 1);
    c.norm = DH_NORM_ACTIVE;
    check_gradient(&c, N, D, sim, NULL, 0, 3);
    c.norm = DH_NORM_ALL;
    c.triplets = DH_TRIPLETS_HARD;
    c.margin0 = -3.0f;
    check_gradient(&c, N, D, sim, NULL, 0, 4);
    (void)loss_at;
}

/* From 32 items the pair distances and the gradient's rows run on OpenMP threads: the gradient
 * still matches finite differences, and dy and the loss have the same bits at 1, 2 and 3
 * threads. */
Test(dh, gradient_on_threads_matches_finite_differences_with_the_same_bits)
{
    dh_config c;
    enum { N = 40, D = 5 };
    uint8_t sim[N * N];
    label_batch(&c, N, 4, sim);
    check_gradient(&c, N, D, sim, NULL, 0, 5);
#ifdef _OPENMP
    float y[N * D], dy[3][N * D];
    dh_stats st[3];
    srand(6);
    for (int i = 0; i < N * D; i++)
        y[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
    int keep = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(t + 1);
        cr_assert_eq(dh_loss(&c, 0, y, N, D, sim, NULL, 0, dy[t], &st[t]), 0);
    }
    omp_set_num_threads(keep);
    for (int t = 1; t < 3; t++) {
        cr_assert(memcmp(dy[0], dy[t], sizeof dy[0]) == 0, "dy at %d threads differs from 1",
                  t + 1);
        cr_assert(memcmp(&st[0].loss, &st[t].loss, sizeof st[0].loss) == 0);
    }
#endif
}

/* The objective summed the plain way, in double: distances over k in order, every triplet one
 * by one, W scaled by the triplet count, the Laplacian's half per ordered pair, and dy from one
 * loop over the ordered pairs (i, j) in order, each adding g = 2 W_ij (y_i - y_j) to row i and
 * subtracting it from row j. Label graph, all triplets. */
static void plain_objective(const dh_config *c, const float *y, int32_t n, int32_t d,
                            const uint8_t *sim, float *dy, double *loss)
{
    double *dist = calloc((size_t)n * n, sizeof(double)),
           *W = calloc((size_t)n * n, sizeof(double));
    double *acc = calloc((size_t)n * d, sizeof(double));
    cr_assert(dist && W && acc);
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++)
            for (int32_t k = 0; k < d; k++) {
                double t = (double)y[i * d + k] - (double)y[j * d + k];
                dist[i * n + j] += t * t;
            }
    const double C = c->margin0;
    double tl = 0.0, ll = 0.0;
    int64_t triplets = 0;
    for (int32_t a = 0; a < n; a++)
        for (int32_t p = 0; p < n; p++)
            for (int32_t q = 0; q < n; q++) {
                if (p == a || q == a || !sim[a * n + p] || sim[a * n + q])
                    continue;
                triplets++;
                double l = dist[a * n + p] - dist[a * n + q];
                if (l >= C) {
                    tl += l - C;
                    W[a * n + p] += 1.0;
                    W[a * n + q] -= 1.0;
                }
            }
    for (int32_t i = 0; i < n * n; i++)
        W[i] *= 1.0 / (double)triplets;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            if (i == j)
                continue;
            double a = sim[i * n + j] ? 1.0 : (double)c->graph_other;
            ll += 0.5 * a * dist[i * n + j];
            W[i * n + j] += 0.5 * (double)c->beta / n * a;
        }
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            double w = W[i * n + j];
            if (w == 0.0)
                continue;
            for (int32_t k = 0; k < d; k++) {
                double g = 2.0 * w * ((double)y[i * d + k] - (double)y[j * d + k]);
                acc[i * d + k] += g;
                acc[j * d + k] -= g;
            }
        }
    for (int32_t i = 0; i < n * d; i++)
        dy[i] = (float)acc[i];
    *loss = tl / (double)triplets + ll * (double)c->beta / n;
    free(dist);
    free(W);
    free(acc);
}

/* dh_loss forms each row's gradient on its own (16 columns at a time in vectors, rows on threads,
 * the triplets counted per anchor): dy, rounded to float, has the bits of the plain sum over the
 * ordered pairs, at batch sizes on one thread and on several, with 16-column blocks and the
 * columns left over. A term missing, counted twice or summed in float shows; the order of the
 * double sums does not survive the rounding to float (reversing it passes). The loss, summed in
 * another order, agrees to 1e-12. */
Test(dh, gradient_has_the_bits_of_the_plain_sum_over_pairs)
{
    const int32_t shapes[][3] = {{100, 48, 10}, {37, 13, 4}, {20, 40, 3}, {64, 64, 8}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int32_t n = shapes[s][0], d = shapes[s][1];
        dh_config c;
        uint8_t *sim = malloc((size_t)n * n);
        float *y = malloc(sizeof(float) * (size_t)n * d),
              *dy = malloc(sizeof(float) * (size_t)n * d);
        float *want = malloc(sizeof(float) * (size_t)n * d);
        cr_assert(sim && y && dy && want);
        label_batch(&c, n, shapes[s][2], sim);
        srand(11 + (unsigned)s);
        for (int32_t i = 0; i < n * d; i++)
            y[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
        dh_stats st;
        double loss;
        cr_assert_eq(dh_loss(&c, 0, y, n, d, sim, NULL, 0, dy, &st), 0);
        cr_assert_gt(st.active, 0);
        plain_objective(&c, y, n, d, sim, want, &loss);
        for (int32_t i = 0; i < n * d; i++)
            cr_assert(memcmp(&dy[i], &want[i], sizeof dy[i]) == 0,
                      "%d x %d: dy[%d] = %.9g, the plain sum %.9g", n, d, i, dy[i], want[i]);
        cr_assert(fabs(st.loss - loss) <= 1e-12 * fabs(loss), "%d x %d: loss %.17g, plain %.17g", n,
                  d, st.loss, loss);
        free(sim);
        free(y);
        free(dy);
        free(want);
    }
}

Test(dh, gradient_knn_graph_and_multilabel_match_finite_differences)
{
    dh_config c;
    dh_config_default(&c);
    c.beta = 0.1f;
    c.margin0 = -1.0f;
    c.graph = DH_GRAPH_KNN;
    c.knn_k = 3;
    enum { N = 10, D = 5, F = 4 };
    uint64_t multi[N];
    float feat[N * F];
    for (int i = 0; i < N; i++) {
        multi[i] = (1u << (i % 3)) | (i % 4 == 0 ? 8u : 0u);
        for (int f = 0; f < F; f++)
            feat[i * F + f] = (float)((i * 7 + f * 3) % 11) / 11.0f;
    }
    uint8_t sim[N * N];
    dh_similarity(NULL, multi, 1, N, sim);
    cr_assert_eq(sim[0 * N + 4], 1, "items 0 and 4 share label 3");
    cr_assert_eq(sim[1 * N + 2], 0);
    check_gradient(&c, N, D, sim, feat, F, 2);
}

/* ---- The distance the loss learns ----------------------------------------------------------- */

/* The loss sees the weighted outputs y_k = w_k h_k, so on +-1 codes the squared distance it
 * learns is sum_k (w_k h_ik - w_k h_jk)^2 = 4 x the sum of w_k^2 over the bits where the codes
 * differ: the weighted Hamming distance with power-2 weights (drsch --weight-power 2) is that
 * distance divided by 4, for every kernel. Random codes of B bits (not a multiple of 64) and
 * random weights of both signs; the loss's distance of a pair is its Laplacian term for two
 * similar items with beta = n = 2 (exactly |y_i - y_j|^2), checked against the direct sum. The
 * kernels (every ISA the CPU runs: scalar and the active one at least) and the double reference
 * agree with it within 1e-5 relative (float32 sums of at most B terms, squares rounded to
 * float32), plus 1e-6 absolute for the zero distance of a code to itself. With |w| (power 1)
 * they do not. */
Test(dh, loss_distance_is_four_times_weighted_hamming_with_squared_weights)
{
    enum { B = 100, N = 24 };
    float w[B], w2[B], wabs[B], y[N * B];
    int8_t h[N * B];
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (int k = 0; k < B; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[k] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0); /* [-2, 2) */
        w2[k] = w[k] * w[k];
        wabs[k] = fabsf(w[k]);
    }
    hm_codes c;
    drsch_error err;
    cr_assert_eq(hm_codes_alloc(&c, N, B, &err), DRSCH_OK, "%s", err.msg);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < B; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            h[i * B + k] = (s >> 33) & 1 ? 1 : -1;
            y[i * B + k] = w[k] * (float)h[i * B + k];
            if (h[i * B + k] > 0)
                c.data[(size_t)i * c.words + (size_t)k / 64] |= 1ull << (k % 64);
        }
    /* The loss's squared distance of code 0 to every code, and the direct sum. */
    dh_config cfg;
    dh_config_default(&cfg);
    cfg.beta = 2.0f;
    const int32_t lab[2] = {1, 1};
    uint8_t sim[4];
    dh_similarity(lab, NULL, 0, 2, sim);
    double loss_d[N];
    for (int j = 0; j < N; j++) {
        float pair[2 * B];
        memcpy(pair, y, sizeof(float) * B);
        memcpy(pair + B, y + (size_t)j * B, sizeof(float) * B);
        dh_stats st;
        cr_assert_eq(dh_loss(&cfg, 0, pair, 2, B, sim, NULL, 0, NULL, &st), DRSCH_OK);
        cr_assert_eq(st.triplets, 0, "two similar items: no triplet");
        double direct = 0;
        for (int k = 0; k < B; k++) {
            double t = (double)w[k] * h[k] - (double)w[k] * h[j * B + k];
            direct += t * t;
        }
        cr_assert(fabs(st.laplacian_loss - direct) <= 1e-9 * direct,
                  "code %d: the loss's distance %.9g, directly %.9g", j, st.laplacian_loss, direct);
        loss_d[j] = st.laplacian_loss;
    }
    cr_assert_eq(hm_isa_init(&err), DRSCH_OK, "%s", err.msg);
    const hm_isa active = hm_isa_active();
    int tested_scalar = 0, tested_active = 0, power1_differs = 0;
    for (int isa = 0; isa < HM_ISA_COUNT; isa++) {
        if (!hm_isa_supported((hm_isa)isa))
            continue;
        cr_assert_eq(hm_isa_set((hm_isa)isa, &err), DRSCH_OK, "%s", err.msg);
        hm_weights *hw2 = NULL, *hw1 = NULL;
        cr_assert_eq(hm_weights_create(&hw2, w2, B, &err), DRSCH_OK, "%s", err.msg);
        cr_assert_eq(hm_weights_create(&hw1, wabs, B, &err), DRSCH_OK, "%s", err.msg);
        float d2[N], d1[N];
        hm_weighted_distances(c.data, &c, hw2, d2);
        hm_weighted_distances(c.data, &c, hw1, d1);
        for (int j = 0; j < N; j++) {
            double want = loss_d[j] / 4, tol = 1e-5 * want + 1e-6;
            double ref = hm_weighted_distance_ref(c.data, hm_code_row(&c, (size_t)j), w2, B);
            cr_expect(fabs(d2[j] - want) <= tol, "%s, code %d: %.9g, the loss's distance / 4 %.9g",
                      hm_isa_name((hm_isa)isa), j, d2[j], want);
            cr_expect(fabs(ref - want) <= tol, "reference, code %d: %.9g, expected %.9g", j, ref,
                      want);
            power1_differs += fabs(d1[j] - want) > 1e-3 * want;
        }
        hm_weights_free(hw2);
        hm_weights_free(hw1);
        tested_scalar |= isa == HM_ISA_SCALAR;
        tested_active |= isa == (int)active;
    }
    cr_expect(tested_scalar && tested_active, "the scalar and the active (%s) kernels",
              hm_isa_name(active));
    cr_expect_gt(power1_differs, 0, "|w| weights do not give the loss's distance");
    hm_codes_free(&c);
}

/* ---- softmax cross-entropy (ce_loss, the classifier baseline) ---- */

/* logits [0, ln 3], label 1: softmax = [1/4, 3/4], loss = -ln(3/4) = ln(4/3), gradient
 * [1/4, -1/4]; the argmax is the label. */
Test(ce, hand_computed_loss)
{
    float z[2] = {0.0f, (float)log(3.0)}, dz[2];
    int32_t lab[1] = {1};
    double loss = -1, acc = -1;
    drsch_error err;
    cr_assert_eq(ce_loss(z, lab, 1, 2, dz, &loss, &acc, &err), DRSCH_OK, "%s", err.msg);
    cr_expect_float_eq(loss, log(4.0 / 3.0), 1e-7);
    cr_expect_float_eq(dz[0], 0.25f, 1e-6);
    cr_expect_float_eq(dz[1], -0.25f, 1e-6);
    cr_expect_eq(acc, 1.0);
    /* the mean over the batch: the same row with label 0 adds -ln(1/4) */
    float z2[4] = {0.0f, (float)log(3.0), 0.0f, (float)log(3.0)}, dz2[4];
    int32_t lab2[2] = {1, 0};
    cr_assert_eq(ce_loss(z2, lab2, 2, 2, dz2, &loss, &acc, &err), DRSCH_OK, "%s", err.msg);
    cr_expect_float_eq(loss, (log(4.0 / 3.0) + log(4.0)) / 2, 1e-7);
    cr_expect_float_eq(dz2[2], (0.25f - 1.0f) / 2, 1e-6);
    cr_expect_eq(acc, 0.5);
}

/* Max-subtraction: logits of 1e4 (exp would overflow) give the loss of the shifted logits. */
Test(ce, stable_for_large_logits)
{
    float z[3] = {10000.0f, 10001.0f, 9999.0f}, s[3] = {1.0f, 2.0f, 0.0f}, dz[3], ds[3];
    int32_t lab[1] = {2};
    double a, b;
    drsch_error err;
    cr_assert_eq(ce_loss(z, lab, 1, 3, dz, &a, NULL, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(ce_loss(s, lab, 1, 3, ds, &b, NULL, &err), DRSCH_OK, "%s", err.msg);
    cr_expect(isfinite(a));
    cr_expect_float_eq(a, b, 1e-9);
    for (int k = 0; k < 3; k++)
        cr_expect_float_eq(dz[k], ds[k], 1e-6);
}

/* d loss / d logits against central finite differences of the loss in double. */
Test(ce, gradient_matches_finite_differences)
{
    enum { N = 5, C = 4 };
    float z[N * C], dz[N * C];
    int32_t lab[N] = {0, 3, 1, 1, 2};
    unsigned s = 12345;
    for (int k = 0; k < N * C; k++) {
        s = s * 1103515245u + 12345u;
        z[k] = (float)((s >> 8) % 2000) / 400.0f - 2.5f;
    }
    drsch_error err;
    double loss;
    cr_assert_eq(ce_loss(z, lab, N, C, dz, &loss, NULL, &err), DRSCH_OK, "%s", err.msg);
    for (int k = 0; k < N * C; k++) {
        const float h = 1e-2f, z0 = z[k];
        double lp, lm;
        z[k] = z0 + h;
        ce_loss(z, lab, N, C, NULL, &lp, NULL, &err);
        z[k] = z0 - h;
        ce_loss(z, lab, N, C, NULL, &lm, NULL, &err);
        z[k] = z0;
        double fd = (lp - lm) / (2.0 * h);
        cr_expect(fabs(fd - dz[k]) < 1e-4, "logit %d: analytic %g, finite differences %g", k, dz[k],
                  fd);
    }
}

/* A label outside 0..C-1, a NaN or infinite logit, an empty batch: refused, nothing written. */
Test(ce, rejects_bad_input)
{
    float z[4] = {0.1f, 0.2f, 0.3f, 0.4f}, dz[4] = {7, 7, 7, 7};
    int32_t lab[2] = {0, 2};
    double loss = 42;
    drsch_error err;
    cr_expect_eq(ce_loss(z, lab, 2, 2, dz, &loss, NULL, &err), DRSCH_ERR_RANGE);
    cr_expect_neq(strstr(err.msg, "label 2"), NULL, "%s", err.msg);
    lab[1] = -1;
    cr_expect_eq(ce_loss(z, lab, 2, 2, dz, &loss, NULL, &err), DRSCH_ERR_RANGE);
    lab[1] = 1;
    z[3] = NAN;
    cr_expect_eq(ce_loss(z, lab, 2, 2, dz, &loss, NULL, &err), DRSCH_ERR_NUMERIC);
    cr_expect_neq(strstr(err.msg, "NaN"), NULL, "%s", err.msg);
    z[3] = INFINITY;
    cr_expect_eq(ce_loss(z, lab, 2, 2, dz, &loss, NULL, &err), DRSCH_ERR_NUMERIC);
    cr_expect_eq(ce_loss(z, lab, 0, 2, dz, &loss, NULL, &err), DRSCH_ERR_ARG);
    cr_expect_eq(loss, 42);
    cr_expect_eq(dz[0], 7);
}
