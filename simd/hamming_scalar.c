/* Scalar reference kernels: Hamming distance by portable popcount (SWAR, "Hacker's Delight"
 * 5-1, or the compiler builtin), weighted Hamming by the canonical per-nibble table sum, and the
 * threshold scans used by top-k. Always compiled; compiled without ISA flags.
 *
 * Written to be obviously correct, not fast: every optimised kernel is checked against these.
 * Deliberately no blocking, no unrolling, no dispatch.
 */
#include "simd_internal.h"

static inline uint32_t popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return (uint32_t)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
#endif
}

static inline uint32_t row_distance(const uint64_t *q, const uint64_t *x, size_t words)
{
    uint32_t d = 0;
    for (size_t w = 0; w < words; w++)
        d += popcount64(q[w] ^ x[w]);
    return d;
}

static void scalar_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                             uint32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = row_distance(q, db + i * words, words);
}

static void scalar_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                      const float *tables, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = hm_weighted_row_canonical(q, db + i * words, words, tables);
}

static void scalar_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                        int64_t base, hm_cand_list *lists)
{
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        for (size_t i = 0; i < n; i++) {
            uint32_t d = row_distance(qj, db + i * words, words);
            if (d < l->thr) {
                hm_cand_push(l, base + (int64_t)i, d);
            }
        }
    }
}

static void scalar_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                                 size_t words, const float *tables, size_t tstride, int64_t base,
                                 hm_cand_list *lists, void *scratch, const uint64_t *next,
                                 size_t next_n)
{
    (void)scratch, (void)next, (void)next_n;
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        for (size_t i = 0; i < n; i++) {
            float d = hm_weighted_row_canonical(qj, db + i * words, words, tj);
            if (d < l->wthr) {
                hm_cand_push_w(l, base + (int64_t)i, d);
            }
        }
    }
}

const hm_kernels hm_kernels_scalar = {
    .isa = HM_ISA_SCALAR,
    .distances = scalar_distances,
    .weighted_distances = scalar_weighted_distances,
    .scan = scalar_scan,
    .scan_weighted = scalar_scan_weighted,
    .wscan_copy_word_bytes = 16,
};
