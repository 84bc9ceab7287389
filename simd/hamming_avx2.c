/* AVX2 kernels (compiled with -mavx2 -mpopcnt, selected only when CPUID and XCR0 report AVX2
 * with the YMM state enabled).
 *
 * Plain Hamming: rows of 2 to AVX2_POPCNT_MAX_WORDS words by the scalar POPCNT instruction
 * (for short rows it beats the vector count: no horizontal sum, no masked loads); longer rows
 * and one-word rows (four per vector) by the vpshufb nibble lookup of W. Muła, N. Kurz,
 * D. Lemire, "Faster Population Counts Using AVX2 Instructions" (Computer Journal 2018), summed
 * per 64-bit lane with vpsadbw, with masked loads of 4 words. Threshold scans compute distances of
 * a small block of rows into a stack buffer and compare them 8 at a time.
 *
 * The weighted kernels are in hamming_avx2_weighted.c.
 *
 * Deliberately no allocation and no threads.
 */
#include <immintrin.h>

#include "hamming_avx2_internal.h"
#include "simd_internal.h"

AI __m256i mask_words(size_t k) /* first k (<= 4) qword lanes all-ones */
{
    const long long m = -1;
    return _mm256_setr_epi64x(k > 0 ? m : 0, k > 1 ? m : 0, k > 2 ? m : 0, k > 3 ? m : 0);
}

AI uint32_t dist_row(const uint64_t *q, const uint64_t *x, size_t words)
{
    __m256i acc = _mm256_setzero_si256();
    size_t w = 0;
    for (; w + 4 <= words; w += 4) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(x + w));
        __m256i b = _mm256_loadu_si256((const __m256i *)(q + w));
        acc = _mm256_add_epi64(acc, popcnt_epi64(_mm256_xor_si256(a, b)));
    }
    if (w < words) {
        __m256i m = mask_words(words - w);
        __m256i a = _mm256_maskload_epi64((const long long *)(x + w), m);
        __m256i b = _mm256_maskload_epi64((const long long *)(q + w), m);
        acc = _mm256_add_epi64(acc, popcnt_epi64(_mm256_xor_si256(a, b)));
    }
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    return (uint32_t)_mm_cvtsi128_si64(s);
}

/* Distance of one row by the scalar POPCNT instruction, a word at a time: for short rows it
 * beats the vector count, whose per-row horizontal sum and masked loads cost more than the
 * counting (see AVX2_POPCNT_MAX_WORDS). words is a constant where inlined. */
AI uint32_t popcnt_row(const uint64_t *q, const uint64_t *x, size_t words)
{
    uint32_t d = 0;
    for (size_t w = 0; w < words; w++)
        d += (uint32_t)__builtin_popcountll(q[w] ^ x[w]);
    return d;
}

/* Rows of 2 to this many words are counted with scalar POPCNT, longer ones (and one-word rows,
 * four per vector) with the vector nibble lookup. Measured on a 2-core Zen 3 (1M codes, 1000
 * queries, k 100, 1 and 2 threads, against the vector count for every length): POPCNT 3.5-4x
 * faster at 2 words, 1.3-2x at 4, 1.1-1.3x at 8, even at 16. */
#ifndef AVX2_POPCNT_MAX_WORDS
#define AVX2_POPCNT_MAX_WORDS 8
#endif

#define POPCNT_ROWS(W)                                                                             \
    for (; i < n; i++)                                                                             \
    out[i] = popcnt_row(q, db + i * (W), (W))

static void avx2_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                           uint32_t *out)
{
    size_t i = 0;
    switch (words) {
    case 1: { /* four rows per vector (faster than POPCNT here) */
        const __m256i qb = _mm256_set1_epi64x((long long)q[0]);
        /* lanes 0, 2, 4, 6 hold the four 64-bit counts as dwords */
        const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
        for (; i + 4 <= n; i += 4) {
            __m256i d =
                popcnt_epi64(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(db + i)), qb));
            d = _mm256_permutevar8x32_epi32(d, pick);
            _mm_storeu_si128((__m128i *)(out + i), _mm256_castsi256_si128(d));
        }
        POPCNT_ROWS(1);
        return;
    }
    case 2: POPCNT_ROWS(2); return;
    case 3: POPCNT_ROWS(3); return;
    case 4: POPCNT_ROWS(4); return;
    case 8: POPCNT_ROWS(8); return;
    default: break;
    }
    if (words <= AVX2_POPCNT_MAX_WORDS) {
        POPCNT_ROWS(words);
        return;
    }
    for (; i < n; i++)
        out[i] = dist_row(q, db + i * words, words);
}

#define AVX2_SCAN_BLOCK 256

static void avx2_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                      int64_t base, hm_cand_list *lists)
{
    uint32_t buf[AVX2_SCAN_BLOCK];
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        /* d < thr  <=>  (int)(d - thr) < 0, distances and thresholds are <= 4097 */
        const __m256i thr = _mm256_set1_epi32((int)l->thr);
        for (size_t i0 = 0; i0 < n; i0 += AVX2_SCAN_BLOCK) {
            size_t m = n - i0 < AVX2_SCAN_BLOCK ? n - i0 : AVX2_SCAN_BLOCK;
            avx2_distances(qj, db + i0 * words, m, words, buf);
            size_t i = 0;
            for (; i + 8 <= m; i += 8) {
                __m256i d = _mm256_loadu_si256((const __m256i *)(buf + i));
                unsigned hit =
                    (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_sub_epi32(d, thr)));
                while (hit) {
                    int b = __builtin_ctz(hit);
                    hit &= hit - 1;
                    hm_cand_push(l, base + (int64_t)(i0 + i) + b, buf[i + (size_t)b]);
                }
            }
            for (; i < m; i++) {
                if (buf[i] < l->thr) {
                    hm_cand_push(l, base + (int64_t)(i0 + i), buf[i]);
                }
            }
        }
    }
}

const hm_kernels hm_kernels_avx2 = {
    .isa = HM_ISA_AVX2,
    .distances = avx2_distances,
    .weighted_distances = hm_avx2_weighted_distances,
    .scan = avx2_scan,
    .scan_weighted = hm_avx2_scan_weighted,
    .wscan_copy_word_bytes = 16,
};
