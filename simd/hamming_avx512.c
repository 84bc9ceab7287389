/* AVX-512 kernels (F + BW + VPOPCNTDQ; compiled with those flags only, selected only when CPUID
 * and XCR0 say the CPU and OS support them).
 *
 * Plain Hamming: vpopcntq on XOR-ed words. For 1, 2 and 4 words per code, 8 rows are first
 * transposed in registers into "word w of rows r..r+7" vectors (vpermt2q / vshufi64x2), which
 * a group of queries then shares, so each query costs one XOR + one vpopcntq per word per 8
 * codes. Threshold scans OR together the signs of (d - thr) of the whole query group and branch
 * once per 8 rows; the rare hits are resolved per query (the "threshold scan" of exact k-NN).
 * Other word counts use a generic per-row loop with masked loads.

 *
 * The weighted kernels are in hamming_avx512_weighted.c.
 */
#include <immintrin.h>

#include <math.h>

#include "hamming_avx512_internal.h"
#include "simd_internal.h"

AI __m512i dist_fixed(const __m512i *x, const __m512i *qv, const int W)
{
    __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(x[0], qv[0]));
    for (int w = 1; w < W; w++)
        d = _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(x[w], qv[w])));
    return d;
}

/* Distance of one row of any length: 8 words per step, masked tail. */
AI uint32_t dist_row_generic(const uint64_t *q, const uint64_t *x, size_t words)
{
    __m512i acc = _mm512_setzero_si512();
    size_t w = 0;
    for (; w + 8 <= words; w += 8) {
        __m512i a = _mm512_loadu_si512((const void *)(x + w));
        __m512i b = _mm512_loadu_si512((const void *)(q + w));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
    }
    if (w < words) {
        __mmask8 m = (__mmask8)((1u << (words - w)) - 1u);
        __m512i a = _mm512_maskz_loadu_epi64(m, x + w);
        __m512i b = _mm512_maskz_loadu_epi64(m, q + w);
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
    }
    return (uint32_t)_mm512_reduce_add_epi64(acc);
}

AI void distances_fixed(const uint64_t *q, const uint64_t *db, size_t n, const int W, uint32_t *out)
{
    __m512i qv[4], x[4];
    for (int w = 0; w < W; w++)
        qv[w] = _mm512_set1_epi64((long long)q[w]);
    for (size_t i = 0; i < n; i += 8) {
        size_t rem = n - i;
        load_transposed(db + i * (size_t)W, rem, W, x);
        __m256i d = _mm512_cvtepi64_epi32(dist_fixed(x, qv, W));
        if (rem >= 8)
            _mm256_storeu_si256((__m256i *)(out + i), d);
        else
            _mm512_mask_storeu_epi32(out + i, (__mmask16)((1u << rem) - 1u),
                                     _mm512_castsi256_si512(d));
    }
}

static void avx512_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                             uint32_t *out)
{
    switch (words) {
    case 1: distances_fixed(q, db, n, 1, out); return;
    case 2: distances_fixed(q, db, n, 2, out); return;
    case 4: distances_fixed(q, db, n, 4, out); return;
    default:
        for (size_t i = 0; i < n; i++)
            out[i] = dist_row_generic(q, db + i * words, words);
    }
}

AI void append_mask(hm_cand_list *l, unsigned m, const __m512i d, int64_t idx0)
{
    uint64_t dd[8];
    _mm512_storeu_si512((void *)dd, d);
    while (m) {
        int b = __builtin_ctz(m);
        m &= m - 1;
        hm_cand_push(l, idx0 + b, (uint32_t)dd[b]);
    }
}

/* Threshold scan of QG queries at a time over rows of W words (W = 1, 2 or 4). */
AI void scan_fixed(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, int64_t base,
                   hm_cand_list *lists, const int W, const int QG)
{
    for (size_t j0 = 0; j0 < nq; j0 += (size_t)QG) {
        size_t g = nq - j0 < (size_t)QG ? nq - j0 : (size_t)QG;
        __m512i qv[8][4], thr[8];
        for (int j = 0; j < QG; j++) {
            /* Missing queries of a partial group repeat query j0 with threshold 0: never a hit. */
            size_t jj = (size_t)j < g ? j0 + (size_t)j : j0;
            for (int w = 0; w < W; w++)
                qv[j][w] = _mm512_set1_epi64((long long)q[jj * (size_t)W + (size_t)w]);
            thr[j] = _mm512_set1_epi64((size_t)j < g ? (long long)lists[jj].thr : 0);
        }
        for (size_t i = 0; i < n; i += 8) {
            size_t rem = n - i;
            __m512i x[4];
            load_transposed(db + i * (size_t)W, rem, W, x);
            /* sign of (d - thr) is set iff d < thr; OR them over the group, test once. */
            __m512i any = _mm512_sub_epi64(dist_fixed(x, qv[0], W), thr[0]);
            for (int j = 1; j < QG; j++)
                any = _mm512_or_si512(any, _mm512_sub_epi64(dist_fixed(x, qv[j], W), thr[j]));
            if (__builtin_expect(_mm512_cmplt_epi64_mask(any, _mm512_setzero_si512()) != 0, 0)) {
                unsigned valid = rem >= 8 ? 0xffu : (1u << rem) - 1u;
                for (size_t j = 0; j < g; j++) {
                    __m512i d = dist_fixed(x, qv[j], W);
                    unsigned m = _mm512_cmplt_epu64_mask(d, thr[j]) & valid;
                    if (m)
                        append_mask(&lists[j0 + j], m, d, base + (int64_t)i);
                }
            }
        }
    }
}

static void avx512_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                        int64_t base, hm_cand_list *lists)
{
    switch (words) {
    case 1: scan_fixed(q, nq, db, n, base, lists, 1, 8); return;
    case 2: scan_fixed(q, nq, db, n, base, lists, 2, 8); return;
    case 4: scan_fixed(q, nq, db, n, base, lists, 4, 4); return;
    default:
        for (size_t j = 0; j < nq; j++) {
            hm_cand_list *l = &lists[j];
            const uint64_t *qj = q + j * words;
            for (size_t i = 0; i < n; i++) {
                uint32_t d = dist_row_generic(qj, db + i * words, words);
                if (d < l->thr) {
                    hm_cand_push(l, base + (int64_t)i, d);
                }
            }
        }
    }
}

const hm_kernels hm_kernels_avx512 = {
    .isa = HM_ISA_AVX512,
    .distances = avx512_distances,
    .weighted_distances = hm_avx512_weighted_distances,
    .scan = avx512_scan,
    .scan_weighted = hm_avx512_scan_weighted,
};
