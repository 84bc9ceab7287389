/* Exact merge of top-k lists computed on parts of a database (hm_knn_merge, hm_knn_merge_weighted
 * in hamming.h): per query, a k-way merge of the parts' lists, each ordered by (distance,
 * database index), through a binary heap of the lists' heads. OpenMP threads over queries.
 *
 * Does not search (knn.c does) and does not know where the lists came from.
 */
#include <stdlib.h>
#include <string.h>

#if defined(DRSCH_HAVE_OPENMP)
#include <omp.h>
#endif

#include "simd_internal.h"

typedef struct {
    size_t nlists, k;
    const size_t *lens;
    const int64_t *const *idx;
    const void *const *dist;
    int weighted;
} merge_job;

/* Whether entry a of list la comes before entry b of list lb: (distance, index) order. */
static int before(const merge_job *m, size_t qi, size_t la, size_t a, size_t lb, size_t b)
{
    size_t oa = qi * m->lens[la] + a, ob = qi * m->lens[lb] + b;
    if (m->weighted) {
        float x = ((const float *)m->dist[la])[oa], y = ((const float *)m->dist[lb])[ob];
        if (x != y)
            return x < y;
    } else {
        int32_t x = ((const int32_t *)m->dist[la])[oa], y = ((const int32_t *)m->dist[lb])[ob];
        if (x != y)
            return x < y;
    }
    return m->idx[la][oa] < m->idx[lb][ob];
}

/* Restores the heap (lists ordered by their heads pos[]) below slot i of n. */
static void sift_down(const merge_job *m, size_t qi, size_t *heap, size_t n, const size_t *pos,
                      size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(m, qi, heap[c + 1], pos[heap[c + 1]], heap[c], pos[heap[c]]))
            c++;
        if (!before(m, qi, heap[c], pos[heap[c]], heap[i], pos[heap[i]]))
            return;
        size_t t = heap[c];
        heap[c] = heap[i];
        heap[i] = t;
        i = c;
    }
}

/* Merges query qi into out_idx / out_dist (its row of k). heap, pos: nlists entries each.
 * Returns the list found out of order + 1, or 0. */
static size_t merge_one(const merge_job *m, size_t qi, size_t *heap, size_t *pos, int64_t *out_idx,
                        void *out_dist)
{
    size_t n = 0;
    for (size_t l = 0; l < m->nlists; l++) {
        pos[l] = 0;
        if (m->lens[l])
            heap[n++] = l;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift_down(m, qi, heap, n, pos, i);
    for (size_t j = 0; j < m->k; j++) { /* sum of lens >= k: the heap is never empty here */
        size_t l = heap[0], o = qi * m->lens[l] + pos[l];
        out_idx[j] = m->idx[l][o];
        if (m->weighted)
            ((float *)out_dist)[j] = ((const float *)m->dist[l])[o];
        else
            ((int32_t *)out_dist)[j] = ((const int32_t *)m->dist[l])[o];
        if (++pos[l] == m->lens[l])
            heap[0] = heap[--n];
        else if (!before(m, qi, l, pos[l] - 1, l, pos[l]))
            return l + 1; /* the next entry sorts before the one taken: not ordered */
        sift_down(m, qi, heap, n, pos, 0);
    }
    return 0;
}

static drsch_status merge_run(const merge_job *m, size_t nq, int64_t *out_idx, void *out_dist,
                              drsch_error *err)
{
    size_t total = 0;
    if (m->k == 0 || (m->nlists && (!m->lens || !m->idx || !m->dist)) || !out_idx || !out_dist)
        return drsch_fail(err, DRSCH_ERR_ARG, "top-k merge: k = 0 or a list or output missing");
    for (size_t l = 0; l < m->nlists; l++) {
        if (m->lens[l] && (!m->idx[l] || !m->dist[l]))
            return drsch_fail(err, DRSCH_ERR_ARG, "top-k merge: list %zu missing", l);
        total += m->lens[l];
    }
    if (total < m->k)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "top-k merge: k = %zu but the lists hold %zu entries per query", m->k,
                          total);
    size_t bad_q = SIZE_MAX, bad_l = 0;
    int nomem = 0;
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp parallel if (nq * m->k > 65536)
#endif
    {
        size_t *heap = malloc(2 * (m->nlists ? m->nlists : 1) * sizeof *heap);
        if (!heap) {
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp atomic write
#endif
            nomem = 1;
        }
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp for schedule(static)
#endif
        for (size_t qi = 0; qi < nq; qi++) {
            if (!heap)
                continue;
            size_t l = merge_one(m, qi, heap, heap + m->nlists, out_idx + qi * m->k,
                                 (char *)out_dist + qi * m->k * 4);
            if (l) {
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp critical(hm_knn_merge_bad)
#endif
                if (qi < bad_q) {
                    bad_q = qi;
                    bad_l = l - 1;
                }
            }
        }
        free(heap);
    }
    if (nomem)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "top-k merge: out of memory for %zu lists",
                          m->nlists);
    if (bad_q != SIZE_MAX)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "top-k merge: list %zu of query %zu is not ordered by (distance, index)",
                          bad_l, bad_q);
    return DRSCH_OK;
}

drsch_status hm_knn_merge(size_t nq, size_t k, size_t nlists, const size_t *lens,
                          const int64_t *const *indices, const int32_t *const *distances,
                          int64_t *out_idx, int32_t *out_dist, drsch_error *err)
{
    merge_job m = {nlists, k, lens, indices, (const void *const *)distances, 0};
    return merge_run(&m, nq, out_idx, out_dist, err);
}

drsch_status hm_knn_merge_weighted(size_t nq, size_t k, size_t nlists, const size_t *lens,
                                   const int64_t *const *indices, const float *const *distances,
                                   int64_t *out_idx, float *out_dist, drsch_error *err)
{
    merge_job m = {nlists, k, lens, indices, (const void *const *)distances, 1};
    return merge_run(&m, nq, out_idx, out_dist, err);
}
