/* AVX-512 kernels (F + BW + VBMI + VPOPCNTDQ; compiled with those flags only, selected only when
 * CPUID and XCR0 say the CPU and OS support them).
 *
 * Plain Hamming: vpopcntq on XOR-ed words. For 1, 2 and 4 words per code, 8 rows are first
 * transposed in registers into "word w of rows r..r+7" vectors (vpermt2q / vshufi64x2), which
 * a group of queries then shares, so each query costs one XOR + one vpopcntq per word per 8
 * codes. Threshold scans OR together the signs of (d - thr) of the whole query group and branch
 * once per 8 rows; the rare hits are taken from one mask of the group's comparisons
 * (append_hits; the "threshold scan" of exact k-NN).
 * Other word counts scan an 8-row transposed copy of the rows (see scan_chunked), except a
 * single query, which uses a per-row loop with masked loads.

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

/* The hits of a group of QG <= 8 queries on 8 rows (rem of them real; the group's missing queries
 * have threshold 0): one 64-bit mask (query j's rows at bits 8j..8j+7), walked bit by bit, so
 * only the rows that enter a list cost anything and no branch depends on which query hit. */
AI void append_hits(hm_cand_list *lists, const __m512i *d, const __m512i *thr, const int QG,
                    size_t rem, int64_t idx0)
{
    uint64_t dd[8][8], hits = 0;
    unsigned valid = rem >= 8 ? 0xffu : (1u << rem) - 1u;
    for (int j = 0; j < QG; j++) {
        hits |= (uint64_t)(_mm512_cmplt_epu64_mask(d[j], thr[j]) & valid) << (8 * j);
        _mm512_storeu_si512((void *)dd[j], d[j]);
    }
    while (hits) {
        int b = __builtin_ctzll(hits);
        hits &= hits - 1;
        hm_cand_push(&lists[b >> 3], idx0 + (b & 7), (uint32_t)dd[b >> 3][b & 7]);
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
                __m512i d[8];
                for (int j = 0; j < QG; j++)
                    d[j] = dist_fixed(x, qv[j], W);
                append_hits(lists + j0, d, thr, QG, rem, base + (int64_t)i);
            }
        }
    }
}

/* ---- rows of other lengths: scans over a transposed copy --------------------------------- */

/* A scan of rows of 3 or more than 4 words first copies up to TCHUNK_BYTES of them, 8 rows at a
 * time, into "word w of rows r..r+7" vectors (group g, word w at vector g * words + w), then
 * scans that copy with groups of queries: per query, one XOR (query word broadcast) + one
 * vpopcntq + one add per word per 8 rows, with no horizontal sum per row. The copy is made once
 * per call and shared by all nq queries (the k-NN driver passes a query block of up to 64).
 * Measured on Zen 5 (1 thread, k = 100, `drsch bench hamming`) against the per-row loop below:
 * 512 bits, 1M codes, 1000 queries: 471 vs 2534 ms; 500k codes, 256 queries: 320 bits 54 vs
 * 197 ms, 1024 bits 115 vs 333 ms, 2048 bits 213 vs 443 ms. A single query keeps the per-row
 * loop, which streams the codes at memory speed (1M x 512 bits, 1 thread: 2.5 ms p50, 8.2 ms with
 * the copy). */
#define TCHUNK_BYTES 16384u
#define TQG 4
_Static_assert(HM_MAX_BITS / 64 * 64 <= TCHUNK_BYTES, "a chunk holds at least one 8-row group");

/* Transposes the 8 x 8 block of qwords r[i] = words 0..7 of row i into x[w] = word w of rows
 * 0..7 (three rounds of 8 shuffles). */
AI void transpose8x8(const __m512i *r, __m512i *x)
{
    __m512i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_epi64(r[2 * i], r[2 * i + 1]);     /* words 0,2,4,6 */
        t[2 * i + 1] = _mm512_unpackhi_epi64(r[2 * i], r[2 * i + 1]); /* words 1,3,5,7 */
    }
    for (int o = 0; o < 2; o++) { /* o: even or odd words */
        u[o] = _mm512_shuffle_i64x2(t[o], t[2 + o], _MM_SHUFFLE(2, 0, 2, 0));
        u[2 + o] = _mm512_shuffle_i64x2(t[o], t[2 + o], _MM_SHUFFLE(3, 1, 3, 1));
        u[4 + o] = _mm512_shuffle_i64x2(t[4 + o], t[6 + o], _MM_SHUFFLE(2, 0, 2, 0));
        u[6 + o] = _mm512_shuffle_i64x2(t[4 + o], t[6 + o], _MM_SHUFFLE(3, 1, 3, 1));
        x[o] = _mm512_shuffle_i64x2(u[o], u[4 + o], _MM_SHUFFLE(2, 0, 2, 0));
        x[4 + o] = _mm512_shuffle_i64x2(u[o], u[4 + o], _MM_SHUFFLE(3, 1, 3, 1));
        x[2 + o] = _mm512_shuffle_i64x2(u[2 + o], u[6 + o], _MM_SHUFFLE(2, 0, 2, 0));
        x[6 + o] = _mm512_shuffle_i64x2(u[2 + o], u[6 + o], _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Copies rows [0, n) of db (words each) transposed into out, 8-row groups; the rows of the last
 * group past n read as zero. */
static void transpose_rows(const uint64_t *db, size_t n, size_t words, __m512i *out)
{
    for (size_t i = 0, g = 0; i < n; i += 8, g++) {
        size_t rows = n - i < 8 ? n - i : 8;
        for (size_t w = 0; w < words; w += 8) {
            ptrdiff_t avail = (ptrdiff_t)(words - w);
            __m512i r[8], x[8];
            for (size_t j = 0; j < 8; j++)
                r[j] =
                    j < rows ? load_part(db + (i + j) * words + w, avail) : _mm512_setzero_si512();
            transpose8x8(r, x);
            size_t m = words - w < 8 ? words - w : 8;
            for (size_t v = 0; v < m; v++)
                out[g * words + w + v] = x[v];
        }
    }
}

/* Threshold scan of the n rows (groups of 8) of a transposed copy for queries q[0..nq). */
AI void scan_transposed(const uint64_t *q, size_t nq, const __m512i *tx, size_t n, size_t words,
                        int64_t base, hm_cand_list *lists)
{
    for (size_t j0 = 0; j0 < nq; j0 += TQG) {
        size_t g = nq - j0 < TQG ? nq - j0 : TQG;
        const uint64_t *qj[TQG];
        __m512i thr[TQG];
        for (size_t j = 0; j < TQG; j++) {
            /* missing queries of a partial group repeat query j0 with threshold 0: never a hit */
            qj[j] = q + (j0 + (j < g ? j : 0)) * words;
            thr[j] = _mm512_set1_epi64(j < g ? (long long)lists[j0 + j].thr : 0);
        }
        for (size_t i = 0; i < n; i += 8) {
            const __m512i *x = tx + (i / 8) * words;
            __m512i d[TQG];
            for (size_t j = 0; j < TQG; j++)
                d[j] = _mm512_setzero_si512();
            for (size_t w = 0; w < words; w++) {
                __m512i xw = _mm512_load_si512((const void *)(x + w));
                for (size_t j = 0; j < TQG; j++)
                    d[j] = _mm512_add_epi64(d[j], _mm512_popcnt_epi64(_mm512_xor_si512(
                                                      xw, _mm512_set1_epi64((long long)qj[j][w]))));
            }
            __m512i any = _mm512_sub_epi64(d[0], thr[0]);
            for (size_t j = 1; j < TQG; j++)
                any = _mm512_or_si512(any, _mm512_sub_epi64(d[j], thr[j]));
            if (__builtin_expect(_mm512_cmplt_epi64_mask(any, _mm512_setzero_si512()) != 0, 0))
                append_hits(lists + j0, d, thr, TQG, n - i, base + (int64_t)i);
        }
    }
}

static void scan_chunked(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                         int64_t base, hm_cand_list *lists)
{
    __m512i tx[TCHUNK_BYTES / sizeof(__m512i)];
    size_t chunk = TCHUNK_BYTES / (words * 64) * 8; /* rows per copy, a multiple of 8 */
    for (size_t i = 0; i < n; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        transpose_rows(db + i * words, m, words, tx);
        if (words == 8)
            scan_transposed(q, nq, tx, m, 8, base + (int64_t)i, lists);
        else
            scan_transposed(q, nq, tx, m, words, base + (int64_t)i, lists);
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
        if (nq >= 2) {
            scan_chunked(q, nq, db, n, words, base, lists);
            return;
        }
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
    .wscan_copy_word_bytes = 11,
};
