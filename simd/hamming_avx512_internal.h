/* What the two AVX-512 kernel files share: loads of rows, whole or transposed. Include only from
 * files compiled with the AVX-512 flags (simd/CMakeLists.txt). */
#ifndef DRSCH_HAMMING_AVX512_INTERNAL_H
#define DRSCH_HAMMING_AVX512_INTERNAL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "simd_internal.h"

#define AI static inline __attribute__((always_inline))

/* Up to 8 qwords from p, of which `avail` (may be <= 0) are readable; the rest read as zero. */
AI __m512i load_part(const uint64_t *p, ptrdiff_t avail)
{
    if (avail >= 8)
        return _mm512_loadu_si512((const void *)p);
    if (avail <= 0)
        return _mm512_setzero_si512();
    return _mm512_maskz_loadu_epi64((__mmask8)((1u << avail) - 1u), p);
}

/* x[w] = word w of rows 0..7 starting at db (rows of W words); rows >= rem read as zero. */
AI void load_transposed(const uint64_t *db, size_t rem, const int W, __m512i *x)
{
    ptrdiff_t avail = (ptrdiff_t)((rem < 8 ? rem : 8) * (size_t)W);
    if (W == 1) {
        x[0] = load_part(db, avail);
    } else if (W == 2) {
        __m512i a = load_part(db, avail), b = load_part(db + 8, avail - 8);
        x[0] = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
        x[1] = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), b);
    } else { /* W == 4 */
        __m512i a = load_part(db, avail), b = load_part(db + 8, avail - 8);
        __m512i c = load_part(db + 16, avail - 16), d = load_part(db + 24, avail - 24);
        const __m512i i01 = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
        const __m512i i23 = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
        __m512i ab01 = _mm512_permutex2var_epi64(a, i01, b); /* r0-3 w0 | r0-3 w1 */
        __m512i ab23 = _mm512_permutex2var_epi64(a, i23, b); /* r0-3 w2 | r0-3 w3 */
        __m512i cd01 = _mm512_permutex2var_epi64(c, i01, d);
        __m512i cd23 = _mm512_permutex2var_epi64(c, i23, d);
        x[0] = _mm512_shuffle_i64x2(ab01, cd01, _MM_SHUFFLE(1, 0, 1, 0));
        x[1] = _mm512_shuffle_i64x2(ab01, cd01, _MM_SHUFFLE(3, 2, 3, 2));
        x[2] = _mm512_shuffle_i64x2(ab23, cd23, _MM_SHUFFLE(1, 0, 1, 0));
        x[3] = _mm512_shuffle_i64x2(ab23, cd23, _MM_SHUFFLE(3, 2, 3, 2));
    }
}

/* The weighted kernels of hamming_avx512_weighted.c, for the kernel table in hamming_avx512.c. */
void hm_avx512_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                  const float *tables, float *out);
void hm_avx512_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                             size_t words, const float *tables, size_t tstride, int64_t base,
                             hm_cand_list *lists, void *scratch, const uint64_t *next,
                             size_t next_n);

#endif
