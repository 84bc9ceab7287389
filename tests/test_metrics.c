/* Metrics suite: hand-computed rankings (ties by database index, tie-aware AP, AP@K, P@K, and
 * both with K beyond the database, precision within radius 2, the PR curve, queries without
 * relevant items), the weighted path agreeing with the integer one (equal weights of any value
 * rank exactly as plain Hamming), multi-label relevance, and re-id CMC / mAP / mINP with the
 * same-identity-same-camera filter and single-gallery-shot sampling, over both gallery
 * compositions (cross-camera and all images pooled). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hamming.h"
#include "metrics.h"

static hm_codes codes4(const uint8_t *v, size_t n)
{
    hm_codes c;
    drsch_error err;
    cr_assert_eq(hm_codes_from_bytes(&c, v, n, 1, 4, &err), DRSCH_OK, "%s", err.msg);
    return c;
}

#define EPS 1e-12

/* Query 0b0000 against d = [1, 0, 2, 1, 4], labels [1, 0, 1, 0, 1], query label 1.
 * Ranking (d, idx): idx1 d0 -, idx0 d1 +, idx3 d1 -, idx2 d2 +, idx4 d4 +.
 * AP@all = (1/2 + 2/4 + 3/5) / 3; AP@3 = (1/2) / 1; P@3 = 1/3; P@r2 = 2/4.
 * Tie-aware: the d=1 group puts its relevant item 2nd or 3rd: (1/2 + 1/3)/2 = 5/12, so
 * (5/12 + 1/2 + 3/5) / 3. A second query (label 7) has no relevant item: AP 0, counted. */
static const uint8_t DB[5] = {0x1, 0x0, 0x3, 0x1, 0xF};
static const int32_t DBL[5] = {1, 0, 1, 0, 1};
static const uint8_t Q[2] = {0x0, 0x0};
static const int32_t QL[2] = {1, 7};

Test(metrics, hand_computed_single_label_ranking)
{
    hm_codes db = codes4(DB, 5), q = codes4(Q, 2);
    ev_labels ql = {.n = 2, .labels = QL}, dbl = {.n = 5, .labels = DBL};
    ev_options opt = {.topk = 3, .radius = 2, .pr_curve = 1};
    ev_retrieval r;
    drsch_error err;
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, NULL, &opt, &r, &err), DRSCH_OK, "%s",
                 err.msg);
    double ap = (0.5 + 0.5 + 0.6) / 3, tie = (5.0 / 12 + 0.5 + 0.6) / 3;
    cr_assert_float_eq(r.map_all, ap / 2, EPS);
    cr_assert_float_eq(r.map_tie_aware, tie / 2, EPS);
    cr_assert_float_eq(r.map_at_k, 0.5 / 2, EPS);
    cr_assert_float_eq(r.precision_at_k, (1.0 / 3) / 2, EPS);
    cr_assert_float_eq(r.precision_radius, 0.5 / 2, EPS);
    cr_assert_eq(r.queries_without_relevant, 1);
    cr_assert_eq(r.pr_points, 5);
    /* Radius 1: query 1 retrieves 3 with 1 relevant (P 1/3, R 1/3); query 2 retrieves 3, P 0,
     * and has no recall (no relevant item). */
    cr_assert_float_eq(r.pr_precision[1], (1.0 / 3) / 2, EPS);
    cr_assert_float_eq(r.pr_recall[1], 1.0 / 3, EPS);
    cr_assert_float_eq(r.pr_recall[4], 1.0, EPS);
    cr_assert_float_eq(r.pr_precision[0], 0.0, EPS);
    ev_retrieval_free(&r);

    /* Weights all 1: the float path must give the same figures (no radius metrics). */
    float ones[4] = {1, 1, 1, 1};
    hm_weights *w;
    drsch_error herr;
    cr_assert_eq(hm_weights_create(&w, ones, 4, &herr), DRSCH_OK);
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, w, &opt, &r, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_float_eq(r.map_all, ap / 2, EPS);
    cr_assert_float_eq(r.map_tie_aware, tie / 2, EPS);
    cr_assert_float_eq(r.map_at_k, 0.5 / 2, EPS);
    cr_assert_float_eq(r.precision_at_k, (1.0 / 3) / 2, EPS);
    cr_assert_float_eq(r.precision_radius, -1.0, EPS);
    ev_retrieval_free(&r);

    /* Weighted with distinct weights changes the ranking: w = [1, 10, 100, 1000] gives
     * d = [1, 0, 11, 1, 1111]: same order here, so the same AP; ties vanish except d=1. */
    float wv[4] = {1, 10, 100, 1000};
    hm_weights_free(w);
    cr_assert_eq(hm_weights_create(&w, wv, 4, &herr), DRSCH_OK);
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, w, &opt, &r, &err), DRSCH_OK);
    cr_assert_float_eq(r.map_all, ap / 2, EPS);
    ev_retrieval_free(&r);
    hm_weights_free(w);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

/* K beyond the database: the top K is the whole ranking of N = 5 items, so P@K divides by the
 * 5 retrieved (3/5 for the first query, 0 for the second) and mAP@K equals mAP@all; K = 4 cuts
 * the ranking -, +, -, +: P@4 = 2/4, AP@4 = (1/2 + 2/4) / 2. Integer and weighted paths agree. */
Test(metrics, k_beyond_the_database_divides_by_the_items_retrieved)
{
    hm_codes db = codes4(DB, 5), q = codes4(Q, 2);
    ev_labels ql = {.n = 2, .labels = QL}, dbl = {.n = 5, .labels = DBL};
    float ones[4] = {1, 1, 1, 1};
    hm_weights *w;
    drsch_error herr;
    cr_assert_eq(hm_weights_create(&w, ones, 4, &herr), DRSCH_OK);
    double ap = (0.5 + 0.5 + 0.6) / 3;
    static const struct {
        size_t k;
        double pk, apk;
    } cases[] = {{10, 0.6, 0}, {5, 0.6, 0}, {1000000, 0.6, 0}, {4, 0.5, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int weighted = 0; weighted < 2; weighted++) {
            ev_options opt = {.topk = cases[c].k, .radius = 2};
            ev_retrieval r;
            drsch_error err;
            cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, weighted ? w : NULL, &opt, &r, &err),
                         DRSCH_OK, "%s", err.msg);
            double apk = cases[c].apk ? cases[c].apk : ap;
            cr_assert_float_eq(r.precision_at_k, cases[c].pk / 2, EPS, "K %zu weighted %d: P@K %g",
                               cases[c].k, weighted, r.precision_at_k);
            cr_assert_float_eq(r.map_at_k, apk / 2, EPS, "K %zu weighted %d: mAP@K %g", cases[c].k,
                               weighted, r.map_at_k);
            if (cases[c].k >= 5)
                cr_assert_float_eq(r.map_at_k, r.map_all, EPS);
            cr_assert_eq(r.queries_without_relevant, 1);
            ev_retrieval_free(&r);
        }
    hm_weights_free(w);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

Test(metrics, average_precision_of_a_list)
{
    uint8_t rel[6] = {1, 0, 1, 0, 0, 1};
    cr_assert_float_eq(ev_average_precision(rel, 6, 3), (1.0 + 2.0 / 3 + 3.0 / 6) / 3, EPS);
    cr_assert_float_eq(ev_average_precision(rel, 6, 4), (1.0 + 2.0 / 3 + 3.0 / 6) / 4, EPS);
    cr_assert_float_eq(ev_average_precision(rel, 6, 0), 0.0, EPS);
}

Test(metrics, multi_label_relevance_is_a_shared_label)
{
    /* Labels as bitmasks: query {0,1}; db {2}, {0}, {1,2}, {3}. d: all 0 -> ties by index. */
    uint8_t z[4] = {0};
    hm_codes db = codes4(z, 4), q = codes4(z, 1);
    uint64_t qm[1] = {0x3}, dm[4] = {0x4, 0x1, 0x6, 0x8};
    ev_labels ql = {.n = 1, .multi = qm, .words = 1}, dbl = {.n = 4, .multi = dm, .words = 1};
    ev_options opt = {.topk = 2, .radius = 2};
    ev_retrieval r;
    drsch_error err;
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, NULL, &opt, &r, &err), DRSCH_OK, "%s",
                 err.msg);
    /* Ranking -, +, +, -: AP = (1/2 + 2/3) / 2; AP@2 = (1/2)/1; P@2 = 1/2; P@r2 = 2/4.
     * Tie-aware, one group of 4 with 2 relevant: E = 2/4 * sum_i (1 + (i-1)/3) / i. */
    cr_assert_float_eq(r.map_all, (0.5 + 2.0 / 3) / 2, EPS);
    cr_assert_float_eq(r.map_at_k, 0.5, EPS);
    cr_assert_float_eq(r.precision_at_k, 0.5, EPS);
    cr_assert_float_eq(r.precision_radius, 0.5, EPS);
    double e = 0;
    for (int i = 1; i <= 4; i++)
        e += (1.0 + (i - 1) / 3.0) / i;
    cr_assert_float_eq(r.map_tie_aware, e * 0.5 / 2, EPS);
    ev_retrieval_free(&r);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

Test(metrics, tie_aware_ap_matches_enumeration)
{
    /* Brute force: average AP over every order of a tie group, against the closed form. */
    uint8_t dbv[6] = {0x0, 0x1, 0x1, 0x1, 0x1, 0x3}, qv[1] = {0};
    int32_t dl[6] = {0, 1, 0, 1, 1, 1}, qlab[1] = {1};
    hm_codes db = codes4(dbv, 6), q = codes4(qv, 1);
    ev_labels ql = {.n = 1, .labels = qlab}, dbl = {.n = 6, .labels = dl};
    ev_options opt = {.topk = 0, .radius = 2};
    ev_retrieval r;
    drsch_error err;
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, NULL, &opt, &r, &err), DRSCH_OK);
    /* Group d=1 is items 1..4 with relevance {1,0,1,1}: enumerate its 24 orders. */
    int g[4] = {1, 0, 1, 1}, perm[4] = {0, 1, 2, 3};
    double sum = 0;
    int count = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++) {
                    if (a == b || a == c || a == d || b == c || b == d || c == d)
                        continue;
                    perm[0] = a, perm[1] = b, perm[2] = c, perm[3] = d;
                    uint8_t rel[6] = {0,
                                      (uint8_t)g[perm[0]],
                                      (uint8_t)g[perm[1]],
                                      (uint8_t)g[perm[2]],
                                      (uint8_t)g[perm[3]],
                                      1};
                    sum += ev_average_precision(rel, 6, 4);
                    count++;
                }
    cr_assert_eq(count, 24);
    cr_assert_float_eq(r.map_tie_aware, sum / 24, 1e-12);
    uint8_t idx_order[6] = {0, 1, 0, 1, 1, 1};
    cr_assert_float_eq(r.map_all, ev_average_precision(idx_order, 6, 4), 1e-12);
    ev_retrieval_free(&r);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

Test(metrics, bad_arguments_are_refused)
{
    hm_codes db = codes4(DB, 5), q = codes4(Q, 2);
    ev_labels ql = {.n = 1, .labels = QL}, dbl = {.n = 5, .labels = DBL};
    ev_options opt = {.radius = 2};
    ev_retrieval r;
    drsch_error err;
    cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, NULL, &opt, &r, &err), DRSCH_ERR_ARG);
    cr_assert(strstr(err.msg, "labels") != NULL, "%s", err.msg);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

/* Re-id: query id 1 cam 0 against gallery
 *   idx0 id1 cam0 (removed: same id and camera), idx1 id2 cam1 d0, idx2 id1 cam1 d1,
 *   idx3 id3 cam1 d1, idx4 id1 cam1 d3.
 * Ranking: idx1, idx2, idx3, idx4 -> matches at ranks 2 and 4: AP = (1/2 + 2/4)/2 = 1/2,
 * CMC rank-1 0, rank-2.. 1. Single shot: id1 is idx2 (rank 2) or idx4 (behind idx1, idx3:
 * rank 3) with probability 1/2 each. A second query (id 9) has no match: skipped. */
Test(metrics, reid_cmc_and_map)
{
    uint8_t gv[5] = {0x0, 0x0, 0x1, 0x2, 0x7}, qv[2] = {0x0, 0x0};
    int32_t gid[5] = {1, 2, 1, 3, 1}, gcam[5] = {0, 1, 1, 1, 1}, qid[2] = {1, 9}, qcam[2] = {0, 0};
    hm_codes g = codes4(gv, 5), q = codes4(qv, 2);
    ev_reid r;
    drsch_error err;
    cr_assert_eq(ev_reid_eval(&q, qid, qcam, &g, gid, gcam, NULL, 0, 1, &r, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(r.queries, 1);
    cr_assert_eq(r.queries_skipped, 1);
    cr_assert_float_eq(r.map, 0.5, EPS);
    cr_assert_float_eq(r.minp, 0.5, EPS); /* 2 matches, the last at rank 4 */
    cr_assert_float_eq(r.cmc[0], 0.0, EPS);
    cr_assert_float_eq(r.cmc[1], 1.0, EPS);
    cr_assert_float_eq(r.cmc[19], 1.0, EPS);

    ev_reid s1, s2;
    cr_assert_eq(ev_reid_eval(&q, qid, qcam, &g, gid, gcam, NULL, 2000, 7, &s1, &err), DRSCH_OK);
    cr_assert_eq(ev_reid_eval(&q, qid, qcam, &g, gid, gcam, NULL, 2000, 7, &s2, &err), DRSCH_OK);
    cr_assert_eq(memcmp(s1.cmc, s2.cmc, sizeof s1.cmc), 0, "same seed, same CMC");
    cr_assert_float_eq(s1.cmc[0], 0.0, EPS);
    cr_assert(fabs(s1.cmc[1] - 0.5) < 0.05, "rank-2 CMC %f should be near 1/2", s1.cmc[1]);
    cr_assert_float_eq(s1.cmc[2], 1.0, 1e-9);
    cr_assert_float_eq(s1.map, 0.5, EPS);
    hm_codes_free(&g);
    hm_codes_free(&q);
}

/* Both gallery compositions by hand. Q (camera 0): q0 id1 0x0, q1 id2 0x3, q2 id1 0x2, q3 id9
 * 0x0; G (camera 1): g0 id1 0x1, g1 id2 0x2, g2 id1 0x3, g3 id3 0x7. Ties by gallery index.
 * Cross-camera (Q against G):
 *   q0: g0 d1 +, g1 d1 -, g2 d2 +, g3 d3 -      matches at 1, 3: AP (1 + 2/3)/2 = 5/6, INP 2/3
 *   q1: g2 d0 -, g0 d1 -, g1 d1 +, g3 d1 -      match at 3 (tied with g0, g3 at d1, ordered by
 *       index): AP 1/3, INP 1/3 (1/2 or 1/4 under another tie order)
 *   q2: g1 d0 -, g2 d1 +, g0 d2 +, g3 d2 -      matches at 2, 3: AP (1/2 + 2/3)/2 = 7/12, INP 2/3
 *   q3: no identity 9 in G: skipped.
 *   mAP (5/6 + 1/3 + 7/12)/3 = 7/12, mINP (2/3 + 1/3 + 2/3)/3 = 5/9, CMC 1/3, 2/3, 1, ...
 * All (pool p0..p7 = q0..q3, g0..g3; each query loses the pool's images of its identity and
 * camera, itself included):
 *   p0: p3 d0 -, p4 d1 +, p5 d1 -, p1 d2 -, p6 d2 +, p7 d3 -   (p2 removed) matches 2, 5:
 *       AP (1/2 + 2/5)/2 = 9/20, INP 2/5
 *   p1: p6 d0 -, p2 p4 p5 p7 d1 (p5 +), p0 p3 d2               match at 4: AP 1/4, INP 1/4
 *   p2: p5 d0 -, p1 p3 p6 d1 (p6 +), p4 p7 d2 (p4 +)           (p0 removed) matches 4, 5:
 *       AP (1/4 + 2/5)/2 = 13/40, INP 2/5
 *   p4: p0 p1 p3 d1 (p0 +), p2 p5 p7 d2 (p2 +)                 (p6 removed) matches 1, 4:
 *       AP (1 + 2/4)/2 = 3/4, INP 1/2
 *   p5: p2 d0 -, p0 p1 p3 p6 d1 (p1 +), p4 p7 d2               match at 3: AP 1/3, INP 1/3
 *   p6: p1 d0 -, p2 p5 p7 d1 (p2 +), p0 p3 d2 (p0 +)           (p4 removed) matches 2, 5:
 *       AP 9/20, INP 2/5
 *   p3 (id 9) and p7 (the only id 3) have no match: skipped.
 *   mAP (54 + 30 + 39 + 90 + 40 + 54)/120/6 = 307/720, mINP (24 + 15 + 24 + 30 + 20 + 24)/60/6
 *   = 137/360; first matches at 2, 4, 4, 1, 3, 2: CMC 1/6, 3/6, 4/6, 1, ... */
Test(metrics, reid_gallery_compositions_by_hand)
{
    uint8_t qv[4] = {0x0, 0x3, 0x2, 0x0}, gv[4] = {0x1, 0x2, 0x3, 0x7};
    int32_t qid[4] = {1, 2, 1, 9}, qcam[4] = {0, 0, 0, 0}, gid[4] = {1, 2, 1, 3},
            gcam[4] = {1, 1, 1, 1};
    hm_codes q = codes4(qv, 4), g = codes4(gv, 4);
    ev_reid r, c;
    drsch_error err;
    cr_assert_eq(ev_reid_eval_gallery(EV_REID_CROSS_CAMERA, &q, qid, qcam, &g, gid, gcam, NULL, 0,
                                      1, &r, &err),
                 DRSCH_OK, "%s", err.msg);
    cr_assert_eq(r.queries, 3);
    cr_assert_eq(r.queries_skipped, 1);
    cr_assert_float_eq(r.map, 7.0 / 12, EPS);
    cr_assert_float_eq(r.minp, 5.0 / 9, EPS);
    cr_assert_float_eq(r.cmc[0], 1.0 / 3, EPS);
    cr_assert_float_eq(r.cmc[1], 2.0 / 3, EPS);
    cr_assert_float_eq(r.cmc[2], 1.0, EPS);
    cr_assert_float_eq(r.cmc[19], 1.0, EPS);
    /* cross-camera is ev_reid_eval itself */
    cr_assert_eq(ev_reid_eval(&q, qid, qcam, &g, gid, gcam, NULL, 0, 1, &c, &err), DRSCH_OK);
    cr_assert_eq(memcmp(&r, &c, sizeof r), 0);

    cr_assert_eq(
        ev_reid_eval_gallery(EV_REID_ALL, &q, qid, qcam, &g, gid, gcam, NULL, 0, 1, &r, &err),
        DRSCH_OK, "%s", err.msg);
    cr_assert_eq(r.queries, 6);
    cr_assert_eq(r.queries_skipped, 2);
    cr_assert_float_eq(r.map, 307.0 / 720, EPS);
    cr_assert_float_eq(r.minp, 137.0 / 360, EPS);
    const double cmc[4] = {1.0 / 6, 3.0 / 6, 4.0 / 6, 1.0};
    for (int k = 0; k < 4; k++)
        cr_assert_float_eq(r.cmc[k], cmc[k], EPS, "rank-%d: %.17g", k + 1, r.cmc[k]);
    cr_assert_float_eq(r.cmc[19], 1.0, EPS);
    /* weighted ranking with unit weights ranks the same */
    hm_weights *w = NULL;
    const float ones[4] = {1, 1, 1, 1};
    cr_assert_eq(hm_weights_create(&w, ones, 4, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(ev_reid_eval_gallery(EV_REID_ALL, &q, qid, qcam, &g, gid, gcam, w, 0, 1, &c, &err),
                 DRSCH_OK, "%s", err.msg);
    cr_assert_float_eq(c.map, r.map, EPS);
    cr_assert_float_eq(c.minp, r.minp, EPS);
    hm_weights_free(w);
    /* an unknown composition is refused */
    cr_assert_eq(ev_reid_eval_gallery((ev_reid_gallery)7, &q, qid, qcam, &g, gid, gcam, NULL, 0, 1,
                                      &r, &err),
                 DRSCH_ERR_ARG);
    cr_assert_str_eq(ev_reid_gallery_name(EV_REID_CROSS_CAMERA), "cross-camera");
    cr_assert_str_eq(ev_reid_gallery_name(EV_REID_ALL), "all");
    hm_codes_free(&g);
    hm_codes_free(&q);
}

/* splitmix64, for the random codes below */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n random codes of `bits` bits whose labels (0..classes-1) bias them: many tied distances. */
static hm_codes random_labelled_codes(size_t n, uint32_t bits, int32_t *labels, uint64_t *s)
{
    size_t nb = hm_bytes_for_bits(bits);
    uint8_t *bytes = malloc(n * nb);
    cr_assert(bytes);
    for (size_t i = 0; i < n; i++) {
        labels[i] = (int32_t)(mix64(s) % 7);
        for (size_t b = 0; b < nb; b++) /* the label sets byte 0; the rest is random */
            bytes[i * nb + b] = b == 0 ? (uint8_t)(0x11u * (uint32_t)labels[i]) ^
                                             (uint8_t)(mix64(s) & mix64(s) & 0xffu)
                                       : (uint8_t)mix64(s);
    }
    hm_codes c;
    drsch_error err;
    cr_assert_eq(hm_codes_from_bytes(&c, bytes, n, nb, bits, &err), DRSCH_OK, "%s", err.msg);
    free(bytes);
    return c;
}

/* Equal weights rank exactly as plain Hamming distance (weighted distances are exact sums of
 * the quantised weights, so equal real distances tie exactly and go by database index), whatever
 * the weight (0.1, 1e36, 1e-30 and 3 are not exactly summable in float): every retrieval and
 * re-id figure of the weighted path equals, bit for bit, that of unit weights (the same ranking
 * through the same code), and those equal the plain figures up to the order in which the two
 * paths add the same precisions (database order for integer distances, rank order for float). */
#define EQW_FMT "%u bits, weights %g: %s %.17g, with unit weights %.17g"
#define SAME_AS_PLAIN(a, b) (fabs((a) - (b)) <= 1e-14)
Test(metrics, equal_weights_give_exactly_the_plain_figures)
{
    static const float values[] = {0.1f, 1e36f, 1e-30f, 3.0f};
    static const uint32_t lengths[] = {12, 64, 100};
    uint64_t s = 5;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        enum { NQ = 60, NDB = 1500 };
        int32_t qlab[NQ], dblab[NDB], qcam[NQ], dbcam[NDB];
        hm_codes q = random_labelled_codes(NQ, bits, qlab, &s);
        hm_codes db = random_labelled_codes(NDB, bits, dblab, &s);
        for (size_t i = 0; i < NQ; i++)
            qcam[i] = 0;
        for (size_t i = 0; i < NDB; i++)
            dbcam[i] = (int32_t)(i % 2);
        ev_labels ql = {.n = NQ, .labels = qlab}, dbl = {.n = NDB, .labels = dblab};
        ev_options opt = {.topk = 100, .radius = 2};
        ev_retrieval plain, unit, wr;
        ev_reid rplain, runit, rw;
        drsch_error err;
        float w[100];
        for (uint32_t i = 0; i < bits; i++)
            w[i] = 1.0f;
        hm_weights *hw = NULL;
        cr_assert_eq(hm_weights_create(&hw, w, bits, &err), DRSCH_OK, "%s", err.msg);
        cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, NULL, &opt, &plain, &err), DRSCH_OK,
                     "%s", err.msg);
        cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, hw, &opt, &unit, &err), DRSCH_OK, "%s",
                     err.msg);
        cr_assert_eq(ev_reid_eval(&q, qlab, qcam, &db, dblab, dbcam, NULL, 0, 1, &rplain, &err),
                     DRSCH_OK, "%s", err.msg);
        cr_assert_eq(ev_reid_eval(&q, qlab, qcam, &db, dblab, dbcam, hw, 0, 1, &runit, &err),
                     DRSCH_OK, "%s", err.msg);
        hm_weights_free(hw);
        cr_assert(
            SAME_AS_PLAIN(unit.map_all, plain.map_all) &&
                SAME_AS_PLAIN(unit.map_tie_aware, plain.map_tie_aware) &&
                SAME_AS_PLAIN(unit.map_at_k, plain.map_at_k) &&
                SAME_AS_PLAIN(unit.precision_at_k, plain.precision_at_k) &&
                SAME_AS_PLAIN(runit.map, rplain.map) && SAME_AS_PLAIN(runit.minp, rplain.minp),
            "%u bits: unit weights mAP %.17g, plain %.17g", bits, unit.map_all, plain.map_all);
        for (size_t vi = 0; vi < sizeof values / sizeof values[0]; vi++) {
            for (uint32_t i = 0; i < bits; i++)
                w[i] = values[vi];
            cr_assert_eq(hm_weights_create(&hw, w, bits, &err), DRSCH_OK, "%s", err.msg);
            cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, hw, &opt, &wr, &err), DRSCH_OK, "%s",
                         err.msg);
            cr_assert(wr.map_all == unit.map_all, EQW_FMT, bits, (double)values[vi], "mAP",
                      wr.map_all, unit.map_all);
            cr_assert(wr.map_tie_aware == unit.map_tie_aware, EQW_FMT, bits, (double)values[vi],
                      "tie-aware mAP", wr.map_tie_aware, unit.map_tie_aware);
            cr_assert(wr.map_at_k == unit.map_at_k, EQW_FMT, bits, (double)values[vi], "mAP@K",
                      wr.map_at_k, unit.map_at_k);
            cr_assert(wr.precision_at_k == unit.precision_at_k, EQW_FMT, bits, (double)values[vi],
                      "P@K", wr.precision_at_k, unit.precision_at_k);
            ev_retrieval_free(&wr);
            cr_assert_eq(ev_reid_eval(&q, qlab, qcam, &db, dblab, dbcam, hw, 0, 1, &rw, &err),
                         DRSCH_OK, "%s", err.msg);
            cr_assert(rw.map == runit.map && rw.minp == runit.minp &&
                          memcmp(rw.cmc, runit.cmc, sizeof rw.cmc) == 0,
                      EQW_FMT, bits, (double)values[vi], "re-id mAP", rw.map, runit.map);
            hm_weights_free(hw);
        }
        ev_retrieval_free(&plain);
        ev_retrieval_free(&unit);
        hm_codes_free(&q);
        hm_codes_free(&db);
    }
}

typedef struct {
    double d;
    size_t idx;
} ref_rank;

static int ref_rank_cmp(const void *a, const void *b)
{
    const ref_rank *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Weighted mAP@all against a reference written here: exact double distances over the quantised
 * weights, sorted by (distance, index) with qsort. Weights of both signs, zeros, -0 and repeats
 * make negative distances, -0 against +0 and many ties, which the evaluation's radix sort on
 * the float's bytes must order exactly as the comparison sort does. */
Test(metrics, weighted_ranking_of_signed_weights_matches_a_sorted_reference)
{
    uint64_t s = 11;
    static const uint32_t lengths[] = {9, 20, 64};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        enum { NQ = 30, NDB = 2000 };
        int32_t qlab[NQ], dblab[NDB];
        hm_codes q = random_labelled_codes(NQ, bits, qlab, &s);
        hm_codes db = random_labelled_codes(NDB, bits, dblab, &s);
        float w[64];
        static const float pool[] = {-1.5f, -0.25f, -0.0f, 0.0f, 0.25f, 0.75f, 2.0f, -2.0f};
        for (uint32_t i = 0; i < bits; i++)
            w[i] = pool[mix64(&s) % (sizeof pool / sizeof pool[0])];
        drsch_error err;
        hm_weights *hw = NULL;
        cr_assert_eq(hm_weights_create(&hw, w, bits, &err), DRSCH_OK, "%s", err.msg);
        ev_labels ql = {.n = NQ, .labels = qlab}, dbl = {.n = NDB, .labels = dblab};
        ev_options opt = {.topk = 0, .radius = 2};
        ev_retrieval r;
        cr_assert_eq(ev_retrieval_eval(&q, &ql, &db, &dbl, hw, &opt, &r, &err), DRSCH_OK, "%s",
                     err.msg);
        ref_rank *rank = malloc(NDB * sizeof *rank);
        double map = 0;
        for (size_t i = 0; i < NQ; i++) {
            size_t R = 0, hits = 0;
            for (size_t j = 0; j < NDB; j++) {
                rank[j].d = hm_weighted_distance_ref(hm_code_row(&q, i), hm_code_row(&db, j),
                                                     hm_weights_values(hw), bits);
                rank[j].idx = j;
                R += dblab[j] == qlab[i];
            }
            qsort(rank, NDB, sizeof *rank, ref_rank_cmp);
            double ap = 0;
            for (size_t j = 0; j < NDB; j++)
                if (dblab[rank[j].idx] == qlab[i])
                    ap += (double)++hits / (double)(j + 1);
            map += R ? ap / (double)R / NQ : 0;
        }
        cr_assert(fabs(r.map_all - map) < 1e-12, "%u bits: mAP %.15f, reference %.15f", bits,
                  r.map_all, map);
        free(rank);
        ev_retrieval_free(&r);
        hm_weights_free(hw);
        hm_codes_free(&q);
        hm_codes_free(&db);
    }
}
