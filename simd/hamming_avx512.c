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
 * Weighted Hamming: 16 codes per vector (one 32-bit lane each), the nibble p of every lane
 * selects its float from the 16-entry table of nibble p with vpermps (a register lookup table,
 * as in product-quantisation fast scans), summed in the canonical nibble order so the result is
 * bit-identical to the scalar reference.
 *
 * Deliberately no allocation, no threads, no prefetching heuristics: knn.c tiles and threads.
 */
#include <immintrin.h>

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

AI void distances_fixed(const uint64_t *q, const uint64_t *db, size_t n, const int W,
                        uint32_t *out)
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
        l->idx[l->count] = idx0 + b;
        l->dist[l->count] = (uint32_t)dd[b];
        l->count++;
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
                    l->idx[l->count] = base + (int64_t)i;
                    l->dist[l->count] = d;
                    l->count++;
                }
            }
        }
    }
}

/* ---- weighted ---------------------------------------------------------------------------- */

/* Word wi (XOR-ed with the query word) of 16 rows as two dword vectors: lo = bits 0..31,
 * hi = bits 32..63, lane r = row r. Rows >= rem read as zero (their sums are discarded). */
AI void load16_word(const uint64_t *db, size_t rem, size_t words, size_t wi, uint64_t qw,
                    __m512i *lo, __m512i *hi)
{
    __m512i a, b;
    const __m512i qb = _mm512_set1_epi64((long long)qw);
    if (words == 1) {
        ptrdiff_t avail = (ptrdiff_t)(rem < 16 ? rem : 16);
        a = load_part(db, avail);
        b = load_part(db + 8, avail - 8);
    } else {
        const long long s = (long long)(8 * words); /* byte stride between rows */
        const __m512i off = _mm512_setr_epi64(0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s);
        __mmask8 ma = rem >= 8 ? 0xff : (__mmask8)((1u << rem) - 1u);
        __mmask8 mb = rem >= 16 ? 0xff : rem <= 8 ? 0 : (__mmask8)((1u << (rem - 8)) - 1u);
        const uint64_t *p = db + wi;
        a = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), ma, off, (const void *)p, 1);
        b = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), mb, off,
                                        (const void *)(p + 8 * words), 1);
    }
    a = _mm512_xor_si512(a, qb);
    b = _mm512_xor_si512(b, qb);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *lo = _mm512_permutex2var_epi32(a, ie, b);
    *hi = _mm512_permutex2var_epi32(a, io, b);
}

/* acc += table[p][nibble p of v] for the 8 nibbles of the dword lanes v, in nibble order. */
AI __m512 add_nibbles8(__m512 acc, __m512i v, const float *t)
{
    for (int p = 0; p < 8; p++) {
        __m512i idx = p ? _mm512_srli_epi32(v, (unsigned)(4 * p)) : v; /* vpermps reads 4 bits */
        acc = _mm512_add_ps(acc, _mm512_permutexvar_ps(idx, _mm512_loadu_ps(t + 16 * p)));
    }
    return acc;
}

/* Canonical weighted distances of 16 rows (rows >= rem are garbage). */
AI __m512 weighted16(const uint64_t *q, const uint64_t *db, size_t rem, size_t words,
                     const float *tables)
{
    __m512 acc = _mm512_setzero_ps();
    for (size_t wi = 0; wi < words; wi++) {
        __m512i lo, hi;
        load16_word(db, rem, words, wi, q[wi], &lo, &hi);
        acc = add_nibbles8(acc, lo, tables + wi * 256);
        acc = add_nibbles8(acc, hi, tables + wi * 256 + 128);
    }
    return acc;
}

static void avx512_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n,
                                      size_t words, const float *tables, float *out)
{
    for (size_t i = 0; i < n; i += 16) {
        size_t rem = n - i;
        __m512 d = weighted16(q, db + i * words, rem, words, tables);
        if (rem >= 16)
            _mm512_storeu_ps(out + i, d);
        else
            _mm512_mask_storeu_ps(out + i, (__mmask16)((1u << rem) - 1u), d);
    }
}

static void avx512_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                                 size_t words, const float *tables, size_t tstride, int64_t base,
                                 hm_cand_list *lists)
{
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        for (size_t i = 0; i < n; i += 16) {
            size_t rem = n - i;
            __m512 d = weighted16(qj, db + i * words, rem, words, tj);
            unsigned m = _mm512_cmp_ps_mask(d, _mm512_set1_ps(l->wthr), _CMP_LT_OQ);
            if (rem < 16)
                m &= (1u << rem) - 1u;
            if (m) {
                float dd[16];
                _mm512_storeu_ps(dd, d);
                while (m) {
                    int b = __builtin_ctz(m);
                    m &= m - 1;
                    l->idx[l->count] = base + (int64_t)i + b;
                    l->wdist[l->count] = dd[b];
                    l->count++;
                }
            }
        }
    }
}

const hm_kernels hm_kernels_avx512 = {
    .isa = HM_ISA_AVX512,
    .distances = avx512_distances,
    .weighted_distances = avx512_weighted_distances,
    .scan = avx512_scan,
    .scan_weighted = avx512_scan_weighted,
};
