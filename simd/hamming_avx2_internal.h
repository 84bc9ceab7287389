/* What the two AVX2 kernel files share. Include only from files compiled with the AVX2 flags
 * (simd/CMakeLists.txt). */
#ifndef DRSCH_HAMMING_AVX2_INTERNAL_H
#define DRSCH_HAMMING_AVX2_INTERNAL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "simd_internal.h"

#define AI static inline __attribute__((always_inline))

/* Per-64-bit-lane popcount of v (Muła et al.). */
AI __m256i popcnt_epi64(__m256i v)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    __m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(cnt, _mm256_setzero_si256());
}

/* The weighted kernels of hamming_avx2_weighted.c, for the kernel table in hamming_avx2.c. */
void hm_avx2_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                const float *tables, float *out);
void hm_avx2_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                           const float *tables, size_t tstride, int64_t base, hm_cand_list *lists,
                           void *scratch, const uint64_t *next, size_t next_n);

#endif
