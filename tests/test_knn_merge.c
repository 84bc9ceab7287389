/* hm_knn_merge / hm_knn_merge_weighted (simd/knn_merge.c), the exact merge of top-k lists of
 * parts of a database that drsch search uses under mpirun: against a sorted reference on lists
 * with many equal distances, against hm_knn on the whole database, and their refusals. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hamming.h"

typedef struct {
    double d;
    int64_t i;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

/* nq queries over n entries with distances drawn from 4 values (ties everywhere), split at
 * random into parts of every size (empty ones too); each part's list is its sorted top
 * min(k, size); the merge must be the sorted top k of all n. */
Test(knn_merge, equals_a_sorted_reference_with_ties)
{
    uint64_t seed = 42;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + lcg(&seed) % 300, nq = 1 + lcg(&seed) % 4, parts = 1 + lcg(&seed) % 6;
        size_t k = 1 + lcg(&seed) % n;
        int weighted = trial % 2;
        entry *all = malloc(nq * n * sizeof *all), *ref = malloc(n * sizeof *ref);
        for (size_t q = 0; q < nq; q++)
            for (size_t i = 0; i < n; i++)
                all[q * n + i] =
                    (entry){weighted ? 0.25 * (double)(lcg(&seed) % 4) : (double)(lcg(&seed) % 4),
                            (int64_t)i};
        size_t bounds[8] = {0};
        for (size_t p = 1; p < parts; p++)
            bounds[p] = lcg(&seed) % (n + 1);
        bounds[parts] = n;
        for (size_t a = 1; a < parts; a++) /* sorted cut points */
            for (size_t b = a; b > 0 && bounds[b] < bounds[b - 1]; b--) {
                size_t t = bounds[b];
                bounds[b] = bounds[b - 1];
                bounds[b - 1] = t;
            }
        size_t lens[8];
        int64_t *idx[8];
        void *dist[8];
        for (size_t p = 0; p < parts; p++) {
            size_t len = bounds[p + 1] - bounds[p];
            lens[p] = len < k ? len : k;
            idx[p] = malloc((nq * lens[p] + 1) * sizeof *idx[p]);
            dist[p] = malloc((nq * lens[p] + 1) * 4);
            for (size_t q = 0; q < nq; q++) {
                memcpy(ref, all + q * n + bounds[p], len * sizeof *ref);
                qsort(ref, len, sizeof *ref, entry_cmp);
                for (size_t j = 0; j < lens[p]; j++) {
                    idx[p][q * lens[p] + j] = ref[j].i;
                    if (weighted)
                        ((float *)dist[p])[q * lens[p] + j] = (float)ref[j].d;
                    else
                        ((int32_t *)dist[p])[q * lens[p] + j] = (int32_t)ref[j].d;
                }
            }
        }
        int64_t *out_idx = malloc(nq * k * sizeof *out_idx);
        void *out_dist = malloc(nq * k * 4);
        drsch_error err;
        drsch_status st =
            weighted ? hm_knn_merge_weighted(nq, k, parts, lens, (const int64_t *const *)idx,
                                             (const float *const *)dist, out_idx, out_dist, &err)
                     : hm_knn_merge(nq, k, parts, lens, (const int64_t *const *)idx,
                                    (const int32_t *const *)dist, out_idx, out_dist, &err);
        cr_assert_eq(st, DRSCH_OK, "%s", err.msg);
        for (size_t q = 0; q < nq; q++) {
            memcpy(ref, all + q * n, n * sizeof *ref);
            qsort(ref, n, sizeof *ref, entry_cmp);
            for (size_t j = 0; j < k; j++) {
                double d = weighted ? (double)((float *)out_dist)[q * k + j]
                                    : (double)((int32_t *)out_dist)[q * k + j];
                cr_assert(out_idx[q * k + j] == ref[j].i && d == ref[j].d,
                          "trial %d query %zu rank %zu: (%g, %lld), want (%g, %lld)", trial, q, j,
                          d, (long long)out_idx[q * k + j], ref[j].d, (long long)ref[j].i);
            }
        }
        for (size_t p = 0; p < parts; p++) {
            free(idx[p]);
            free(dist[p]);
        }
        free(out_idx);
        free(out_dist);
        free(all);
        free(ref);
    }
}

/* hm_knn on parts of a database (codes of 3 distinct values: ties across the cuts), indices
 * offset by each part's first row, merged, is hm_knn on the whole database, plain and weighted. */
Test(knn_merge, parts_searched_by_hm_knn_merge_to_hm_knn_of_the_whole)
{
    drsch_error err;
    cr_assert_eq(hm_isa_init(&err), DRSCH_OK, "%s", err.msg);
    const size_t n = 5000, nq = 7, k = 300, cuts[] = {0, 1234, 1300, 3999, 5000};
    const size_t parts = sizeof cuts / sizeof cuts[0] - 1;
    hm_codes db, q;
    cr_assert_eq(hm_codes_alloc(&db, n, 100, &err), DRSCH_OK);
    cr_assert_eq(hm_codes_alloc(&q, nq, 100, &err), DRSCH_OK);
    uint64_t seed = 7, vals[3][2] = {{1, 2}, {0xff, 0}, {3, 0xf00000000}};
    for (size_t i = 0; i < n; i++)
        memcpy(db.data + i * 2, vals[lcg(&seed) % 3], 16);
    for (size_t i = 0; i < nq * 2; i++)
        q.data[i] = lcg(&seed) << 31 ^ lcg(&seed);
    for (size_t i = 0; i < nq; i++)
        q.data[i * 2 + 1] &= 0xfffffffff; /* 100 bits */
    float w[100];
    for (int b = 0; b < 100; b++)
        w[b] = b % 3 ? 0.5f : 1.25f; /* equal weights: more ties */
    hm_weights *hw;
    cr_assert_eq(hm_weights_create(&hw, w, 100, &err), DRSCH_OK, "%s", err.msg);
    for (int weighted = 0; weighted < 2; weighted++) {
        int64_t whole_idx[nq * k], out_idx[nq * k], *idx[4];
        float whole_dist[nq * k], out_dist[nq * k], *dist[4];
        size_t lens[4];
        cr_assert_eq(weighted ? hm_knn_weighted(&db, &q, k, hw, whole_idx, whole_dist, &err)
                              : hm_knn(&db, &q, k, whole_idx, (int32_t *)whole_dist, &err),
                     DRSCH_OK, "%s", err.msg);
        for (size_t p = 0; p < parts; p++) {
            hm_codes part = db;
            part.n = cuts[p + 1] - cuts[p];
            part.data = db.data + cuts[p] * 2;
            part.mapping = NULL;
            lens[p] = part.n < k ? part.n : k;
            idx[p] = malloc(nq * lens[p] * sizeof *idx[p]);
            dist[p] = malloc(nq * lens[p] * sizeof *dist[p]);
            cr_assert_eq(weighted ? hm_knn_weighted(&part, &q, lens[p], hw, idx[p], dist[p], &err)
                                  : hm_knn(&part, &q, lens[p], idx[p], (int32_t *)dist[p], &err),
                         DRSCH_OK, "%s", err.msg);
            for (size_t i = 0; i < nq * lens[p]; i++)
                idx[p][i] += (int64_t)cuts[p];
        }
        cr_assert_eq(
            weighted
                ? hm_knn_merge_weighted(nq, k, parts, lens, (const int64_t *const *)idx,
                                        (const float *const *)dist, out_idx, out_dist, &err)
                : hm_knn_merge(nq, k, parts, lens, (const int64_t *const *)idx,
                               (const int32_t *const *)dist, out_idx, (int32_t *)out_dist, &err),
            DRSCH_OK, "%s", err.msg);
        cr_assert_eq(memcmp(out_idx, whole_idx, sizeof out_idx), 0, "weighted %d", weighted);
        cr_assert_eq(memcmp(out_dist, whole_dist, sizeof out_dist), 0, "weighted %d", weighted);
        for (size_t p = 0; p < parts; p++) {
            free(idx[p]);
            free(dist[p]);
        }
    }
    hm_weights_free(hw);
    hm_codes_free(&db);
    hm_codes_free(&q);
}

/* Refused: fewer entries than k, k = 0, a list out of (distance, index) order. */
Test(knn_merge, refuses_short_and_unordered_lists)
{
    int64_t a_idx[3] = {0, 1, 2}, b_idx[2] = {4, 3}, out_idx[5];
    int32_t a_d[3] = {1, 1, 2}, b_d[2] = {1, 1}, out_d[5];
    const int64_t *idx[2] = {a_idx, b_idx};
    const int32_t *dist[2] = {a_d, b_d};
    size_t lens[2] = {3, 2};
    drsch_error err;
    cr_assert_eq(hm_knn_merge(1, 6, 2, lens, idx, dist, out_idx, out_d, &err), DRSCH_ERR_ARG);
    cr_assert(strstr(err.msg, "k = 6 but the lists hold 5"), "%s", err.msg);
    cr_assert_eq(hm_knn_merge(1, 0, 2, lens, idx, dist, out_idx, out_d, &err), DRSCH_ERR_ARG);
    cr_assert_eq(hm_knn_merge(1, 5, 2, lens, idx, dist, out_idx, out_d, &err), DRSCH_ERR_ARG);
    cr_assert(strstr(err.msg, "list 1 of query 0 is not ordered"), "%s", err.msg);
    b_idx[0] = 3;
    b_idx[1] = 4;
    cr_assert_eq(hm_knn_merge(1, 5, 2, lens, idx, dist, out_idx, out_d, &err), DRSCH_OK, "%s",
                 err.msg);
    const int64_t want[5] = {0, 1, 3, 4, 2};
    cr_assert_eq(memcmp(out_idx, want, sizeof want), 0);
}
