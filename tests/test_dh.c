/* The DRSCH objective: loss values on hand-computed cases, the gradient (triplet + Laplacian,
 * label and k-NN graphs, single and multi-label similarity) against central finite differences,
 * and the margin schedule. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "dh.h"

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

Test(dh, gradient_label_graph_matches_finite_differences)
{
    dh_config c;
    dh_config_default(&c);
    c.beta = 0.05f;
    c.margin0 = -1.0f;
    enum { N = 12, D = 6 };
    int32_t lab[N];
    for (int i = 0; i < N; i++)
        lab[i] = i % 3;
    uint8_t sim[N * N];
    dh_similarity(lab, NULL, 0, N, sim);
    check_gradient(&c, N, D, sim, NULL, 0, 1);
    c.norm = DH_NORM_ACTIVE;
    check_gradient(&c, N, D, sim, NULL, 0, 3);
    c.norm = DH_NORM_ALL;
    c.triplets = DH_TRIPLETS_HARD;
    c.margin0 = -3.0f;
    check_gradient(&c, N, D, sim, NULL, 0, 4);
    (void)loss_at;
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
