/* AVX2 weighted Hamming kernels (compiled with -mavx2 -mpopcnt, like hamming_avx2.c, whose
 * kernel table points here).
 *
 * 8 codes per vector, a 16-entry float table looked up per nibble with two vpermps (low and high
 * 8 entries) and a blend on the nibble's top bit, summed in the canonical nibble order, so
 * results are bit-identical to the scalar reference. Weighted top-k scans of several queries
 * first bound every row with small integer tables (fast scan, below).
 *
 * Deliberately no allocation and no threads.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "hamming_avx2_internal.h"
#include "simd_internal.h"

/* acc += table[p][nibble p of v] for the 8 nibbles of each dword lane of v, in nibble order. */
AI __m256 add_nibbles8(__m256 acc, __m256i v, const float *t)
{
    for (int p = 0; p < 8; p++) {
        __m256i idx = p ? _mm256_srli_epi32(v, 4 * p) : v; /* vpermps reads 3 bits */
        __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 16 * p), idx);
        __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 16 * p + 8), idx);
        __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)); /* nibble bit 3 -> sign */
        acc = _mm256_add_ps(acc, _mm256_blendv_ps(lo, hi, sel));
    }
    return acc;
}

/* Canonical weighted distances of the 8 rows at db (all present). */
AI __m256 weighted8(const uint64_t *q, const uint64_t *db, size_t words, const float *tables)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (size_t wi = 0; wi < words; wi++) {
        __m256i a, b;
        const __m256i qb = _mm256_set1_epi64x((long long)q[wi]);
        if (words == 1) {
            a = _mm256_loadu_si256((const __m256i *)db);
            b = _mm256_loadu_si256((const __m256i *)(db + 4));
        } else {
            const uint64_t *p = db + wi;
            a = _mm256_setr_epi64x((long long)p[0], (long long)p[words], (long long)p[2 * words],
                                   (long long)p[3 * words]);
            b = _mm256_setr_epi64x((long long)p[4 * words], (long long)p[5 * words],
                                   (long long)p[6 * words], (long long)p[7 * words]);
        }
        /* [lo0..lo3 | hi0..hi3] of each half, then lo of all 8 rows and hi of all 8 rows */
        a = _mm256_permutevar8x32_epi32(_mm256_xor_si256(a, qb), even);
        b = _mm256_permutevar8x32_epi32(_mm256_xor_si256(b, qb), even);
        __m256i lo = _mm256_permute2x128_si256(a, b, 0x20);
        __m256i hi = _mm256_permute2x128_si256(a, b, 0x31);
        acc = add_nibbles8(acc, lo, tables + wi * 256);
        acc = add_nibbles8(acc, hi, tables + wi * 256 + 128);
    }
    return acc;
}

void hm_avx2_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                const float *tables, float *out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, weighted8(q, db + i * words, words, tables));
    for (; i < n; i++)
        out[i] = hm_weighted_row_canonical(q, db + i * words, words, tables);
}

/* Rows of at most this many words are copied to a contiguous block of 8 for weighted8. */
#define AVX2_BOUND_MAX_WORDS 1

/* Pushes the rows of the block whose weighted distances d are below the list's threshold: row b
 * is rows[b], or first + b when rows is NULL (a block of consecutive rows). */
AI void push_below_at(hm_cand_list *l, __m256 d, const int64_t *rows, int64_t first, int nrows)
{
    unsigned hit =
        (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_set1_ps(l->wthr), _CMP_LT_OQ)) &
        ((1u << nrows) - 1);
    if (!hit)
        return;
    float dd[8];
    _mm256_storeu_ps(dd, d);
    while (hit) {
        int b = __builtin_ctz(hit);
        hit &= hit - 1;
        hm_cand_push_w(l, rows ? rows[b] : first + b, dd[b]);
    }
}

AI void push_below(hm_cand_list *l, __m256 d, const int64_t *rows, int nrows)
{
    push_below_at(l, d, rows, 0, nrows);
}

/* A block of up to 8 rows that passed the Hamming bound, copied in index order for weighted8. */
typedef struct {
    uint64_t rows[8 * AVX2_BOUND_MAX_WORDS];
    int64_t idx[8];
    int held;
} bound_block;

/* Adds row i (of `words` words, a constant where inlined) to the block, computing the block
 * when it is full. */
AI void block_add(bound_block *b, const uint64_t *row, int64_t i, size_t words, const uint64_t *q,
                  const float *tables, hm_cand_list *l)
{
    for (size_t wi = 0; wi < words; wi++)
        b->rows[(size_t)b->held * words + wi] = row[wi];
    b->idx[b->held++] = i;
    if (b->held == 8) {
        push_below(l, weighted8(q, b->rows, words, tables), b->idx, 8);
        b->held = 0;
    }
}

/* The last partial block: padded with copies of its first row, whose results are dropped. */
AI void block_flush(bound_block *b, size_t words, const uint64_t *q, const float *tables,
                    hm_cand_list *l)
{
    if (!b->held)
        return;
    for (int r = b->held; r < 8; r++)
        for (size_t wi = 0; wi < words; wi++)
            b->rows[(size_t)r * words + wi] = b->rows[wi];
    push_below(l, weighted8(q, b->rows, words, tables), b->idx, b->held);
    b->held = 0;
}

/* The scan of one query with a Hamming bound (l->hcut): a row whose Hamming distance reaches
 * hcut cannot enter and is skipped; the others go, in index order, to blocks of 8 whose weighted
 * distances weighted8 computes. words is a constant where inlined. */
AI void scan_bounded(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                     const float *tables, int64_t base, hm_cand_list *l)
{
    bound_block b;
    b.held = 0;
    const uint32_t hcut = l->hcut;
    size_t i = 0;
    if (words == 1) { /* 8 rows per step: vector popcounts, one mask of the rows below hcut */
        const __m256i qv = _mm256_set1_epi64x((long long)q[0]);
        const __m256i cut = _mm256_set1_epi64x((long long)hcut);
        for (; i + 8 <= n; i += 8) {
            __m256i h0 =
                popcnt_epi64(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(db + i)), qv));
            __m256i h1 = popcnt_epi64(
                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(db + i + 4)), qv));
            unsigned m =
                (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(cut, h0))) |
                (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(cut, h1))) << 4;
            while (m) {
                int r = __builtin_ctz(m);
                m &= m - 1;
                block_add(&b, db + i + (size_t)r, base + (int64_t)(i + (size_t)r), 1, q, tables, l);
            }
        }
    }
    for (; i < n; i++) {
        const uint64_t *row = db + i * words;
        uint32_t h = 0;
        for (size_t wi = 0; wi < words; wi++)
            h += (uint32_t)_mm_popcnt_u64(q[wi] ^ row[wi]);
        if (h < hcut)
            block_add(&b, row, base + (int64_t)i, words, q, tables, l);
    }
    block_flush(&b, words, q, tables, l);
}

/* The Hamming bound pays for codes of one word: at 64 bits with weights in [0.5, 1.5) about
 * 1 row in 10 passes it (measured here: weighted top-k 0.13x -> 0.29x of plain at 2 threads).
 * From 128 bits on the threshold sits near the mean popcount, about half the rows pass, and the
 * bounded scan measured 1.1x (128 bits) to 1.3x (512 bits) slower than the plain weighted one. */
static void scan_weighted_bounded(const uint64_t *q, const uint64_t *db, size_t n,
                                  const float *tables, int64_t base, hm_cand_list *l)
{
    scan_bounded(q, db, n, 1, tables, base, l);
}

/* ---- weighted fast scan -------------------------------------------------------------------- */

/* The weighted top-k scan of more than a few queries first bounds every row from below with
 * small integer tables (the quantised fast scan of product quantisation: André, Kermarrec,
 * Le Scouarnec, VLDB 2015; 16-bit accumulation as in Blalock and Guttag's Bolt): the tile is
 * copied once, nibble-transposed, into 32-row chunks; per query, each code byte costs two
 * vpshufb lookups per 32 rows. Only rows whose bound admits d < threshold are candidates, and
 * their canonical distances come from weighted8, so results are those of the exact scan. The
 * bound holds for any finite float tables; with hm_weights' quantised tables (exact sums) its
 * rounding margins are merely conservative. */

/* Table entries are at most FS_QMAX, so the four lookups of two code bytes add in 8 bits. */
#define FS_QMAX 63
/* Queries per call from which the fast scan pays for copying the tile (one query alone is
 * scanned directly). */
#define FS_MIN_QUERIES 4

/* Per-table constants of the filter (one weight table: every query when tstride is 0). */
typedef struct {
    double M;   /* sum of the per-nibble minima: no real table sum is below it */
    double err; /* bound on |canonical float sum - real sum of its terms| */
    double u;   /* filter unit (0: the tables are constant, no filter) */
} fs_consts;

/* The constants and the filter tables q16[p * 16 + v] = floor((T_p[v] - m_p) / u) in
 * 0..FS_QMAX, each a lower bound of (T_p[v] - m_p) / u (computed in double with a relative
 * margin far above its rounding). */
static void fs_prepare(const float *t, size_t nib, uint8_t *q16, fs_consts *c)
{
    double M = 0.0, S = 0.0, maxdiff = 0.0;
    for (size_t p = 0; p < nib; p++) {
        double lo = t[16 * p], hi = t[16 * p], amax = 0.0;
        for (int v = 0; v < 16; v++) {
            double x = t[16 * p + (size_t)v];
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
            amax = fabs(x) > amax ? fabs(x) : amax;
        }
        M += lo;
        S += amax;
        maxdiff = hi - lo > maxdiff ? hi - lo : maxdiff;
    }
    c->M = M;
    /* sequential float summation of nib terms: |error| <= (nib - 1) 2^-24 S (Higham, Accuracy
     * and Stability of Numerical Algorithms, 2nd ed., eq. 4.4); doubled for safety */
    c->err = 2.0 * (double)nib * 5.97e-8 * S;
    c->u = 0.0;
    if (!(maxdiff > 0.0) || !isfinite(maxdiff))
        return;
    double inv = (double)(FS_QMAX + 1) / maxdiff * (1.0 - 1e-9); /* the largest entry: 63 */
    for (size_t p = 0; p < nib; p++) {
        double lo = t[16 * p];
        for (int v = 1; v < 16; v++)
            lo = t[16 * p + (size_t)v] < lo ? t[16 * p + (size_t)v] : lo;
        for (int v = 0; v < 16; v++) {
            double x = floor(((double)t[16 * p + (size_t)v] - lo) * inv);
            q16[16 * p + (size_t)v] = (uint8_t)(x < 0 ? 0 : x > FS_QMAX ? FS_QMAX : x);
        }
    }
    c->u = maxdiff / (double)(FS_QMAX + 1);
}

/* Word wi of rows r and r + 1 (rows `words` words apart) as one 128-bit lane. */
AI __m128i row_pair(const uint64_t *src, size_t words, size_t wi, size_t r)
{
    if (words == 1)
        return _mm_loadu_si128((const __m128i *)(src + r));
    return _mm_set_epi64x((long long)src[(r + 1) * words + wi], (long long)src[r * words + wi]);
}

/* Rows r0.. of the tile (rows >= n read as zero) into one 32-row chunk: for code byte j,
 * 32 bytes of its low nibbles then 32 of its high nibbles, byte r = row r0 + r. Per word: lane
 * pairs of rows (2k, 2k + 1 | 16 + 2k, 17 + 2k) with their bytes interleaved (vpshufb), then
 * an 8 x 8 transpose of 16-bit elements within each lane (unpacks), so vector b holds byte b
 * of the 32 rows in order. */
static void fs_transpose32(const uint64_t *db, size_t n, size_t r0, size_t words, uint8_t *out)
{
    uint64_t pad[32 * (HM_MAX_BITS / 64)];
    const uint64_t *src = db + r0 * words;
    if (n - r0 < 32) {
        memset(pad, 0, 32 * words * sizeof *pad);
        memcpy(pad, src, (n - r0) * words * sizeof *pad);
        src = pad;
    }
    const __m256i pair = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0,
                                          8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (size_t wi = 0; wi < words; wi++) {
        __m256i v[8], t[8], u[8], r[8];
        for (size_t k = 0; k < 8; k++)
            v[k] = _mm256_shuffle_epi8(_mm256_set_m128i(row_pair(src, words, wi, 16 + 2 * k),
                                                        row_pair(src, words, wi, 2 * k)),
                                       pair);
        for (int k = 0; k < 8; k += 2) { /* bytes 0-3 and 4-7 of vectors k, k + 1 */
            t[k] = _mm256_unpacklo_epi16(v[k], v[k + 1]);
            t[k + 1] = _mm256_unpackhi_epi16(v[k], v[k + 1]);
        }
        for (int k = 0; k < 8; k += 4) { /* bytes (0, 1), (2, 3), (4, 5), (6, 7) of 4 vectors */
            u[k] = _mm256_unpacklo_epi32(t[k], t[k + 2]);
            u[k + 1] = _mm256_unpackhi_epi32(t[k], t[k + 2]);
            u[k + 2] = _mm256_unpacklo_epi32(t[k + 1], t[k + 3]);
            u[k + 3] = _mm256_unpackhi_epi32(t[k + 1], t[k + 3]);
        }
        for (int k = 0; k < 4; k++) { /* byte 2k, 2k + 1 of all 8 vectors */
            r[2 * k] = _mm256_unpacklo_epi64(u[k], u[k + 4]);
            r[2 * k + 1] = _mm256_unpackhi_epi64(u[k], u[k + 4]);
        }
        for (int b = 0; b < 8; b++) {
            __m256i *o = (__m256i *)(out + wi * 512 + 64 * (size_t)b);
            _mm256_store_si256(o, _mm256_and_si256(r[b], low4));
            _mm256_store_si256(o + 1, _mm256_and_si256(_mm256_srli_epi16(r[b], 4), low4));
        }
    }
}

/* lut[p] = the filter table of nibble p for query q, broadcast to both 128-bit lanes:
 * entry v = q16[p * 16 + (v ^ nibble p of q)]. */
static void fs_lut(const uint64_t *q, size_t nib, const uint8_t *q16, __m256i *lut)
{
    const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0,
                                          1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (size_t p = 0; p < nib; p++) {
        char qn = (char)((q[p / 16] >> (4 * (p % 16))) & 15u);
        __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(q16 + 16 * p)));
        lut[p] = _mm256_shuffle_epi8(tab, _mm256_xor_si256(iota, _mm256_set1_epi8(qn)));
    }
}

/* The rows whose bound is <= lmax (in lv), as a 32-bit mask, from a chunk's 16-bit sums: even
 * rows (low bytes) in acc0 - 256 acc1, odd rows (high bytes) in acc1. */
AI uint32_t fs_rows_at_most(__m256i acc0, __m256i acc1, __m256i lv)
{
    __m256i even = _mm256_sub_epi16(acc0, _mm256_slli_epi16(acc1, 8));
    /* x <= lmax (unsigned): max(x, lmax) == lmax */
    __m256i pe = _mm256_cmpeq_epi16(_mm256_max_epu16(even, lv), lv);
    __m256i po = _mm256_cmpeq_epi16(_mm256_max_epu16(acc1, lv), lv);
    __m256i rows = _mm256_blendv_epi8(pe, po, _mm256_set1_epi16((short)0xff00));
    return (uint32_t)_mm256_movemask_epi8(rows);
}

/* The four lookups of two code bytes for a chunk's 32 rows (x: the chunk's low and high nibbles
 * of those bytes), added in 8 bits. */
AI __m256i fs_lookups4(__m256i l0, __m256i l1, __m256i l2, __m256i l3, const __m256i *x)
{
    return _mm256_add_epi8(_mm256_add_epi8(_mm256_shuffle_epi8(l0, _mm256_load_si256(x)),
                                           _mm256_shuffle_epi8(l1, _mm256_load_si256(x + 1))),
                           _mm256_add_epi8(_mm256_shuffle_epi8(l2, _mm256_load_si256(x + 2)),
                                           _mm256_shuffle_epi8(l3, _mm256_load_si256(x + 3))));
}

/* The rows of one chunk t (nb code bytes) whose bound is <= lmax, as a 32-bit mask. Four
 * lookups (two code bytes) add in 8 bits; those sums are accumulated in 16 bits, even rows
 * (low bytes) as acc0 - 256 acc1 and odd rows (high bytes) as acc1. nb is a constant where
 * inlined for 1, 2 and 4 words. */
AI uint32_t fs_chunk(const uint8_t *t, size_t nb, const __m256i *lut, __m256i lv)
{
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    for (size_t j = 0; j < nb; j += 2) {
        __m256i g = fs_lookups4(lut[2 * j], lut[2 * j + 1], lut[2 * j + 2], lut[2 * j + 3],
                                (const __m256i *)(t + 64 * j));
        acc0 = _mm256_add_epi16(acc0, g);
        acc1 = _mm256_add_epi16(acc1, _mm256_srli_epi16(g, 8));
    }
    return fs_rows_at_most(acc0, acc1, lv);
}

/* fs_chunk for the two consecutive chunks at t, each table loaded once for both (the same sums):
 * their masks in m[0] and m[1]. With 16 vector registers the tables of a word's 16 nibbles do
 * not stay in registers, so fs_chunk loads one table for every lookup; here one serves two.
 * 2-core Zen 5 held to AVX2, 1M codes, 1,000 queries, k = 100, learned weights at 256 bits and
 * seeded ones at 512, five rounds run alternately with the build before, 1 / 2 threads (medians
 * of the speed relative to plain ranking, which `drsch bench hamming` times alternately in the
 * same run): 256 bits 0.59x / 0.58x -> 0.63x / 0.61x, 512 bits 0.56x / 0.57x -> 0.62x / 0.61x;
 * at 64 and 128 bits no gain (0.70x / 0.69x -> 0.69x / 0.69x and 0.64x / 0.63x -> 0.63x /
 * 0.62x), so codes of one or two words keep fs_chunk. Four chunks at a time spilled registers
 * and ran slower than one. */
AI void fs_chunk2(const uint8_t *t, size_t nb, const __m256i *lut, __m256i lv, uint32_t *m)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    __m256i b0 = _mm256_setzero_si256(), b1 = _mm256_setzero_si256();
    const __m256i *x = (const __m256i *)t, *y = (const __m256i *)(t + 64 * nb);
    for (size_t j = 0; j < nb; j += 2, x += 4, y += 4) {
        const __m256i l0 = lut[2 * j], l1 = lut[2 * j + 1], l2 = lut[2 * j + 2],
                      l3 = lut[2 * j + 3];
        const __m256i g = fs_lookups4(l0, l1, l2, l3, x), h = fs_lookups4(l0, l1, l2, l3, y);
        a0 = _mm256_add_epi16(a0, g);
        a1 = _mm256_add_epi16(a1, _mm256_srli_epi16(g, 8));
        b0 = _mm256_add_epi16(b0, h);
        b1 = _mm256_add_epi16(b1, _mm256_srli_epi16(h, 8));
    }
    m[0] = fs_rows_at_most(a0, a1, lv);
    m[1] = fs_rows_at_most(b0, b1, lv);
}

/* Candidate rows (ascending) of the transposed tile tr: rows whose bound is <= lmax. nb and
 * PAIRS (chunks two at a time, fs_chunk2: codes of 3 words or more, where they measured faster)
 * are constants where inlined for 1, 2 and 4 words. */
AI size_t fs_filter(const uint8_t *tr, size_t n, size_t nb, const __m256i *lut, uint16_t lmax,
                    uint32_t *cand, const bool PAIRS)
{
    const __m256i lv = _mm256_set1_epi16((short)lmax);
    size_t nc = 0;
    const size_t chunks = (n + 31) / 32, step = PAIRS ? 2 : 1;
    for (size_t c = 0; c < chunks; c += step) {
        uint32_t m[2] = {0, 0};
        if (PAIRS && c + 1 < chunks)
            fs_chunk2(tr + c * 64 * nb, nb, lut, lv, m);
        else
            m[0] = fs_chunk(tr + c * 64 * nb, nb, lut, lv);
        for (size_t h = 0; h < step; h++) {
            const size_t r0 = (c + h) * 32;
            uint32_t mh = m[h];
            if (mh && n - r0 < 32)
                mh &= (1u << (n - r0)) - 1u;
            while (mh) {
                cand[nc++] = (uint32_t)(r0 + (size_t)__builtin_ctz(mh));
                mh &= mh - 1;
            }
        }
    }
    return nc;
}

/* Canonical distances of the candidates, 8 at a time (rows copied next to each other for
 * weighted8), appended to the list in index order when below its threshold. */
static void fs_verify(const uint64_t *q, const uint64_t *db, size_t words, const float *tables,
                      int64_t base, hm_cand_list *l, const uint32_t *cand, size_t nc)
{
    uint64_t rows[8 * HM_MAX_BITS / 64];
    int64_t idx[8];
    for (size_t i = 0; i < nc; i += 8) {
        int m = nc - i < 8 ? (int)(nc - i) : 8;
        for (int r = 0; r < 8; r++) { /* a short block repeats its first row; dropped below */
            uint32_t row = cand[i + (size_t)(r < m ? r : 0)];
            memcpy(rows + (size_t)r * words, db + (size_t)row * words, words * sizeof *db);
            idx[r] = base + (int64_t)row;
        }
        push_below(l, weighted8(q, rows, words, tables), idx, m);
    }
}

void hm_avx2_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                           const float *tables, size_t tstride, int64_t base, hm_cand_list *lists,
                           void *scratch, const uint64_t *next, size_t next_n)
{
    (void)next, (void)next_n; /* a hint this kernel does not use */
    /* scratch (hm_wscan_scratch_bytes): the transposed tile, the query's tables, the filter's
     * base tables, the candidates */
    size_t nib = 16 * words, nb = 8 * words;
    uint8_t *tr = (uint8_t *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);
    __m256i *lut = (__m256i *)(tr + (n + 31) / 32 * 64 * nb);
    uint8_t *q16 = (uint8_t *)(lut + nib);
    uint32_t *cand = (uint32_t *)(q16 + 16 * nib);
    int transposed = 0, prepared = 0;
    fs_consts c = {0};
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        double thr = (double)l->wthr;
        if (nq >= FS_MIN_QUERIES && isfinite(thr)) {
            if (!prepared || tstride) {
                fs_prepare(tj, nib, q16, &c);
                prepared = 1;
            }
            /* a canonical sum is >= M - err: nothing can be below such a threshold */
            if (thr <= c.M - c.err)
                continue;
            /* a row with d < thr has a real sum < thr + err, so its entries add up to at most
             * (thr + err - M) / u */
            double lmax = c.u > 0.0 ? floor((thr + c.err - c.M) / c.u) + 1.0 : INFINITY;
            if (lmax < 65535.0 && lmax < (double)(FS_QMAX * nib)) {
                if (!transposed) {
                    for (size_t ch = 0; ch * 32 < n; ch++)
                        fs_transpose32(db, n, ch * 32, words, tr + ch * 64 * nb);
                    transposed = 1;
                }
                fs_lut(qj, nib, q16, lut);
                size_t nc;
                switch (words) { /* constant lengths unroll */
                case 1: nc = fs_filter(tr, n, 8, lut, (uint16_t)lmax, cand, false); break;
                case 2: nc = fs_filter(tr, n, 16, lut, (uint16_t)lmax, cand, false); break;
                case 4: nc = fs_filter(tr, n, 32, lut, (uint16_t)lmax, cand, true); break;
                default: nc = fs_filter(tr, n, nb, lut, (uint16_t)lmax, cand, true); break;
                }
                fs_verify(qj, db, words, tj, base, l, cand, nc);
                continue;
            }
        }
        size_t i = 0;
        if (l->hcut && words == 1) { /* longer codes: the bound is too loose to pay (below) */
            scan_weighted_bounded(qj, db, n, tj, base, l);
            continue;
        }
        for (; i + 8 <= n; i += 8)
            push_below_at(l, weighted8(qj, db + i * words, words, tj), NULL, base + (int64_t)i, 8);
        for (; i < n; i++) {
            float d = hm_weighted_row_canonical(qj, db + i * words, words, tj);
            if (d < l->wthr) {
                hm_cand_push_w(l, base + (int64_t)i, d);
            }
        }
    }
}
