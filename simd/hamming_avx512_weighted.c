/* AVX-512 weighted Hamming kernels (F + BW + VPOPCNTDQ; see hamming_avx512.c for how they are
 * selected).
 *
 * Weighted Hamming: 16 codes per vector (one 32-bit lane each), the nibble p of every lane
 * selects its float from the 16-entry table of nibble p with vpermps (a register lookup table,
 * as in product-quantisation fast scans), summed in the canonical nibble order so the result is
 * bit-identical to the scalar reference.
 *
 * Weighted threshold scans first bound every row from below with integer tables over a
 * nibble-transposed tile (PQ fast scan: vpshufb lookups, 64 rows per vector): a 16-bit bound
 * with a fixed unit (default), or an 8-bit saturating bound whose unit follows the threshold.
 * Only rows whose bound admits d < threshold (after float rounding) are candidates; their
 * canonical distances are computed 16 at a time with gathers, so results stay exact. The
 * bounds and their rounding margins hold for any finite float tables; with the quantised tables
 * of hm_weights_create (every sum exact) the margins are merely conservative.
 *
 * Deliberately no allocation, no threads, no prefetching heuristics: knn.c tiles and threads.
 */
#include <immintrin.h>

#include <math.h>

#include "hamming_avx512_internal.h"
#include "simd_internal.h"

/* ---- weighted ---------------------------------------------------------------------------- */

/* XOR with the query word, then the 16 rows of qwords a (rows 0..7) and b (rows 8..15) as two
 * dword vectors: lo = bits 0..31, hi = bits 32..63, lane r = row r. */
AI void split16(__m512i a, __m512i b, uint64_t qw, __m512i *lo, __m512i *hi)
{
    const __m512i qb = _mm512_set1_epi64((long long)qw);
    a = _mm512_xor_si512(a, qb);
    b = _mm512_xor_si512(b, qb);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *lo = _mm512_permutex2var_epi32(a, ie, b);
    *hi = _mm512_permutex2var_epi32(a, io, b);
}

/* Word wi (XOR-ed with the query word) of 16 consecutive rows (split16 layout). Rows >= rem
 * read as zero (their sums are discarded). */
AI void load16_word(const uint64_t *db, size_t rem, size_t words, size_t wi, uint64_t qw,
                    __m512i *lo, __m512i *hi)
{
    __m512i a, b;
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
    split16(a, b, qw, lo, hi);
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

void hm_avx512_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                  const float *tables, float *out)
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

/* Exact scan of one query: canonical distances 16 rows at a time. */
static void wscan_exact(const uint64_t *qj, const uint64_t *db, size_t n, size_t words,
                        const float *tables, int64_t base, hm_cand_list *l)
{
    for (size_t i = 0; i < n; i += 16) {
        size_t rem = n - i;
        __m512 d = weighted16(qj, db + i * words, rem, words, tables);
        unsigned m = _mm512_cmp_ps_mask(d, _mm512_set1_ps(l->wthr), _CMP_LT_OQ);
        if (rem < 16)
            m &= (1u << rem) - 1u;
        if (m) {
            float dd[16];
            _mm512_storeu_ps(dd, d);
            while (m) {
                int b = __builtin_ctz(m);
                m &= m - 1;
                hm_cand_push_w(l, base + (int64_t)i + b, dd[b]);
            }
        }
    }
}

/* Candidates of the filters, kept across the queries of one scan so that the exact pass fills
 * its 16 lanes (a tile holds only a few candidates per query). */
typedef struct {
    uint32_t *row; /* row numbers in db, ascending within each query */
    uint32_t *qry; /* query numbers, ascending */
    size_t count, cap;
} wcands;

/* Exact pass over the candidates: canonical distances of 16 (query, row) pairs at a time
 * (gathers; lane r = pair r), so 16 nibble-table sums run side by side instead of one dependent
 * chain per row; each hit is appended to its query's list, in order. Empties the buffer. */
static void wscan_verify(const uint64_t *q, const uint64_t *db, size_t words, const float *tables,
                         int64_t base, hm_cand_list *lists, wcands *cs)
{
    const __m512i vw = _mm512_set1_epi32((int)words);
    for (size_t i = 0; i < cs->count; i += 16) {
        size_t m = cs->count - i < 16 ? cs->count - i : 16;
        __mmask16 valid = (__mmask16)(m == 16 ? 0xffffu : (1u << m) - 1u);
        /* missing lanes read row 0 and query 0, which exist; their sums are discarded */
        __m512i rows = _mm512_maskz_loadu_epi32(valid, cs->row + i);
        __m512i qrys = _mm512_maskz_loadu_epi32(valid, cs->qry + i);
        __m512i roff = _mm512_mullo_epi32(rows, vw), qoff = _mm512_mullo_epi32(qrys, vw);
        __m256i ra = _mm512_castsi512_si256(roff), rb = _mm512_extracti64x4_epi64(roff, 1);
        __m256i qa = _mm512_castsi512_si256(qoff), qb = _mm512_extracti64x4_epi64(qoff, 1);
        __m512 acc = _mm512_setzero_ps();
        for (size_t wi = 0; wi < words; wi++) {
            __m512i a = _mm512_xor_si512(_mm512_i32gather_epi64(ra, (const void *)(db + wi), 8),
                                         _mm512_i32gather_epi64(qa, (const void *)(q + wi), 8));
            __m512i b = _mm512_xor_si512(_mm512_i32gather_epi64(rb, (const void *)(db + wi), 8),
                                         _mm512_i32gather_epi64(qb, (const void *)(q + wi), 8));
            __m512i lo, hi;
            split16(a, b, 0, &lo, &hi);
            acc = add_nibbles8(acc, lo, tables + wi * 256);
            acc = add_nibbles8(acc, hi, tables + wi * 256 + 128);
        }
        float dd[16];
        _mm512_storeu_ps(dd, acc);
        for (size_t r = 0; r < m; r++) {
            hm_cand_list *l = &lists[cs->qry[i + r]];
            if (dd[r] < l->wthr) {
                hm_cand_push_w(l, base + (int64_t)cs->row[i + r], dd[r]);
            }
        }
    }
    cs->count = 0;
}

/* Byte j of 8 rows' qwords v into qword j: vpshufb pairs, vpermw gathers them. */
AI __m512i bytes8x8(__m512i v)
{
    const __m512i pair =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
    /* u16 4j + l of the result = u16 8l + j of the source: pair j of each 128-bit lane */
    const __m512i gather16 = _mm512_setr_epi64(
        0x0018001000080000ll, 0x0019001100090001ll, 0x001a0012000a0002ll, 0x001b0013000b0003ll,
        0x001c0014000c0004ll, 0x001d0015000d0005ll, 0x001e0016000e0006ll, 0x001f0017000f0007ll);
    return _mm512_permutexvar_epi16(gather16, _mm512_shuffle_epi8(v, pair));
}

/* R[k] = bytes8x8 of word w of rows 8k..8k+7 (k < 8): an 8x8 qword transpose (vpermt2q) makes
 * T[j] = byte j of the 64 rows; stores their low then high nibbles (64 bytes each) at out. */
AI void store_nibbles64(const __m512i *R, uint8_t *out)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i P[8], Q[8], T[8];
    const __m512i ie = _mm512_setr_epi64(0, 8, 2, 10, 4, 12, 6, 14);
    const __m512i io = _mm512_setr_epi64(1, 9, 3, 11, 5, 13, 7, 15);
    for (int k = 0; k < 8; k += 2) {
        P[k] = _mm512_permutex2var_epi64(R[k], ie, R[k + 1]);     /* q0 q2 q4 q6 */
        P[k + 1] = _mm512_permutex2var_epi64(R[k], io, R[k + 1]); /* q1 q3 q5 q7 */
    }
    const __m512i ia = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i ib = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for (int k = 0; k < 8; k += 4) {
        Q[k] = _mm512_permutex2var_epi64(P[k], ia, P[k + 2]);         /* q0 | q4 */
        Q[k + 1] = _mm512_permutex2var_epi64(P[k], ib, P[k + 2]);     /* q2 | q6 */
        Q[k + 2] = _mm512_permutex2var_epi64(P[k + 1], ia, P[k + 3]); /* q1 | q5 */
        Q[k + 3] = _mm512_permutex2var_epi64(P[k + 1], ib, P[k + 3]); /* q3 | q7 */
    }
    const __m512i lo4 = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
    const __m512i hi4 = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
    T[0] = _mm512_permutex2var_epi64(Q[0], lo4, Q[4]);
    T[4] = _mm512_permutex2var_epi64(Q[0], hi4, Q[4]);
    T[2] = _mm512_permutex2var_epi64(Q[1], lo4, Q[5]);
    T[6] = _mm512_permutex2var_epi64(Q[1], hi4, Q[5]);
    T[1] = _mm512_permutex2var_epi64(Q[2], lo4, Q[6]);
    T[5] = _mm512_permutex2var_epi64(Q[2], hi4, Q[6]);
    T[3] = _mm512_permutex2var_epi64(Q[3], lo4, Q[7]);
    T[7] = _mm512_permutex2var_epi64(Q[3], hi4, Q[7]);
    for (int j = 0; j < 8; j++) {
        uint8_t *o = out + (size_t)j * 128;
        _mm512_storeu_si512((void *)o, _mm512_and_si512(T[j], low4));
        _mm512_storeu_si512((void *)(o + 64), _mm512_and_si512(_mm512_srli_epi16(T[j], 4), low4));
    }
}

/* Transposes 64 rows starting at row r0 (rows >= n read as zero) into, for every code byte j,
 * 64 bytes of low nibbles then 64 bytes of high nibbles, byte r = row r0 + r.
 * Per word: 8 loads of 8 rows (for 2 and 4 words, contiguous loads transposed in registers as
 * in the plain scan; other lengths gather), an in-register 8x8 byte transpose of each (vpshufb
 * + vpermw), then an 8x8 qword transpose across the 8 registers (vpermt2q). */
static void transpose64(const uint64_t *db, size_t n, size_t r0, size_t words, uint8_t *out)
{
    if (words == 2 || words == 4) {
        __m512i R[4][8];
        for (int k = 0; k < 8; k++) {
            size_t row = r0 + 8 * (size_t)k;
            __m512i x[4];
            load_transposed(db + row * words, row < n ? n - row : 0, (int)words, x);
            for (size_t w = 0; w < words; w++)
                R[w][k] = bytes8x8(x[w]);
        }
        for (size_t w = 0; w < words; w++)
            store_nibbles64(R[w], out + w * 1024);
        return;
    }
    const long long st = (long long)(8 * words);
    const __m512i off = _mm512_setr_epi64(0, st, 2 * st, 3 * st, 4 * st, 5 * st, 6 * st, 7 * st);
    for (size_t w = 0; w < words; w++) {
        __m512i R[8];
        for (int k = 0; k < 8; k++) {
            size_t row = r0 + 8 * (size_t)k;
            size_t rem = row < n ? n - row : 0;
            __mmask8 m = rem >= 8 ? 0xff : (__mmask8)((1u << rem) - 1u);
            __m512i v;
            if (words == 1)
                v = _mm512_maskz_loadu_epi64(m, db + row);
            else
                v = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), m, off,
                                                (const void *)(db + (m ? row * words + w : 0)), 1);
            R[k] = bytes8x8(v); /* qword j of R[k] = byte j of rows row..row+7 */
        }
        store_nibbles64(R, out + w * 1024);
    }
}

/* Row numbers (c * 64 + bit) of the set bits of m, appended to cand in ascending order. */
AI size_t push_rows(uint64_t m, size_t c, uint32_t *cand, size_t nc)
{
    while (m) {
        cand[nc++] = (uint32_t)(c * 64 + (size_t)__builtin_ctzll(m));
        m &= m - 1;
    }
    return nc;
}

/* 8-bit lower-bound filter over the transposed chunks (fast-scan: André, Kermarrec, Le Scouarnec,
 * "Cache locality is not enough: high-performance nearest neighbor search with product
 * quantization fast scan", VLDB 2015): per code byte, two vpshufb lookups in 16-entry uint8
 * tables, saturating adds; rows whose bound is <= tmax become candidates. Returns their count. */
AI size_t wscan_filter8(size_t n, size_t words, const uint8_t *tr, const uint8_t *lut, uint8_t tmax,
                        uint32_t *cand, const int NB)
{
    const size_t nb = NB ? (size_t)NB : 8 * words;
    const __m512i tv = _mm512_set1_epi8((char)tmax);
    __m512i L[16];
    size_t nc = 0;
    if (NB)
        for (int p = 0; p < 2 * NB; p++)
            L[p] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(lut + 16 * p)));
    for (size_t c = 0; c * 64 < n; c++) {
        const uint8_t *t = tr + c * nb * 128;
        __m512i acc = _mm512_setzero_si512();
        for (size_t j = 0; j < nb; j++) {
            __m512i lo = _mm512_loadu_si512((const void *)(t + j * 128));
            __m512i hi = _mm512_loadu_si512((const void *)(t + j * 128 + 64));
            __m512i Llo, Lhi;
            if (NB) {
                Llo = L[2 * j];
                Lhi = L[2 * j + 1];
            } else {
                Llo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(lut + 32 * j)));
                Lhi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(lut + 32 * j + 16)));
            }
            acc = _mm512_adds_epu8(acc, _mm512_shuffle_epi8(Llo, lo));
            acc = _mm512_adds_epu8(acc, _mm512_shuffle_epi8(Lhi, hi));
        }
        uint64_t m = _mm512_cmple_epu8_mask(acc, tv);
        size_t rem = n - c * 64;
        if (rem < 64)
            m &= (1ull << rem) - 1u;
        nc = push_rows(m, c, cand, nc);
    }
    return nc;
}

/* 16-bit lower-bound filter: the same vpshufb lookups, but entries are at most WQ16_MAX so the
 * four lookups of two code bytes add in 8 bits without overflow, and those group sums are
 * accumulated in 16 bits: even rows (low byte of each 16-bit lane) as acc0 - 256 * acc1,
 * odd rows (high byte) as acc1 (the uint16 accumulation of Blalock & Guttag's Bolt / FAISS
 * fast-scan). The finer tables make the bound tight at any code length. Returns the count of
 * candidates (rows whose bound is <= lmax). */
#define WQ16_MAX 63
/* Sum of entries of the four nibbles of code bytes j, j + 1 of one chunk t (8-bit lanes). */
AI __m512i group16(const uint8_t *t, size_t j, const __m512i *Lt)
{
    __m512i s[4];
    for (int h = 0; h < 4; h++)
        s[h] = _mm512_shuffle_epi8(
            Lt[h], _mm512_loadu_si512((const void *)(t + j * 128 + 64 * (size_t)h)));
    return _mm512_add_epi8(_mm512_add_epi8(s[0], s[1]), _mm512_add_epi8(s[2], s[3]));
}

/* Candidate rows of chunk c from its 16-bit accumulators (see wscan_filter16). */
AI size_t chunk16_rows(__m512i acc0, __m512i acc1, __m512i lv, size_t c, size_t n, uint32_t *cand,
                       size_t nc)
{
    __m512i even = _mm512_sub_epi16(acc0, _mm512_slli_epi16(acc1, 8));
    __mmask32 me = _mm512_cmple_epu16_mask(even, lv), mo = _mm512_cmple_epu16_mask(acc1, lv);
    if (__builtin_expect((me | mo) != 0, 0)) {
        __m512i b = _mm512_mask_blend_epi8((__mmask64)0xaaaaaaaaaaaaaaaaull, _mm512_movm_epi16(me),
                                           _mm512_movm_epi16(mo));
        uint64_t m = _mm512_movepi8_mask(b);
        size_t rem = n - c * 64;
        if (rem < 64)
            m &= (1ull << rem) - 1u;
        nc = push_rows(m, c, cand, nc);
    }
    return nc;
}

/* One word (16 nibbles, tables in registers) of every chunk: acc[2c], acc[2c + 1] carry the
 * chunk's sums between words; the last word turns them into candidates. */
AI size_t filter16_word(size_t n, size_t words, size_t wi, const uint8_t *tr, const __m512i *L,
                        __m512i lv, __m512i *acc, uint32_t *cand, size_t nc, const int FIRST,
                        const int LAST)
{
    const size_t nch = (n + 63) / 64;
    for (size_t c = 0; c < nch; c++) {
        const uint8_t *t = tr + (c * words + wi) * 1024;
        __m512i acc0 = FIRST ? _mm512_setzero_si512() : acc[2 * c];
        __m512i acc1 = FIRST ? _mm512_setzero_si512() : acc[2 * c + 1];
        for (size_t j = 0; j < 8; j += 2) {
            __m512i g = group16(t, j, L + 2 * j);
            acc0 = _mm512_add_epi16(acc0, g);
            acc1 = _mm512_add_epi16(acc1, _mm512_srli_epi16(g, 8));
        }
        if (LAST) {
            nc = chunk16_rows(acc0, acc1, lv, c, n, cand, nc);
        } else {
            acc[2 * c] = acc0;
            acc[2 * c + 1] = acc1;
        }
    }
    return nc;
}

/* Word by word, so the 16 tables of a word stay in registers while the tile streams past (with
 * the tables in memory, table loads limited the loop: measured on Zen 4). acc: 2 vectors per
 * 64-row chunk. */
static size_t wscan_filter16(size_t n, size_t words, const uint8_t *tr, const uint8_t *lut,
                             uint16_t lmax, uint32_t *cand, __m512i *acc)
{
    const __m512i lv = _mm512_set1_epi16((short)lmax);
    size_t nc = 0;
    for (size_t wi = 0; wi < words; wi++) {
        __m512i L[16];
        for (int p = 0; p < 16; p++)
            L[p] = _mm512_broadcast_i32x4(
                _mm_loadu_si128((const __m128i *)(lut + 256 * wi + 16 * (size_t)p)));
        if (words == 1)
            nc = filter16_word(n, words, wi, tr, L, lv, acc, cand, nc, 1, 1);
        else if (wi == 0)
            nc = filter16_word(n, words, wi, tr, L, lv, acc, cand, nc, 1, 0);
        else if (wi + 1 < words)
            nc = filter16_word(n, words, wi, tr, L, lv, acc, cand, nc, 0, 0);
        else
            nc = filter16_word(n, words, wi, tr, L, lv, acc, cand, nc, 0, 1);
    }
    return nc;
}

/* Per-table constants of the filters (one weight table: every query when tstride is 0). */
typedef struct {
    double M;   /* sum of the per-nibble minima m_p: no real table sum is below it */
    double S;   /* sum of the per-nibble maxima of |T|: bounds every partial sum */
    double err; /* bound on |canonical float sum - real sum of its terms| */
    double u;   /* 16-bit filter unit (0: no 16-bit filter) */
} wq_consts;

/* mins[p], the constants, and the 16-bit tables q16[p * 16 + v] = floor((T_p[v] - m_p) / u),
 * each a lower bound of (T_p[v] - m_p) / u in 0..WQ16_MAX (computed in double with a relative
 * margin far above double rounding, so u * q16 <= T - m holds for the real numbers). */
static void wq_prepare(const float *t, size_t nib, float *mins, uint8_t *q16, wq_consts *c)
{
    double M = 0.0, S = 0.0, maxdiff = 0.0;
    for (size_t p = 0; p < nib; p++) {
        __m512 v = _mm512_loadu_ps(t + 16 * p);
        mins[p] = _mm512_reduce_min_ps(v);
        M += mins[p];
        S += _mm512_reduce_max_ps(_mm512_abs_ps(v));
        double d = (double)_mm512_reduce_max_ps(v) - (double)mins[p];
        maxdiff = d > maxdiff ? d : maxdiff;
    }
    c->M = M;
    c->S = S;
    /* Sequential float summation of nib terms: |error| <= (nib - 1) 2^-24 S (Higham, Accuracy
     * and Stability of Numerical Algorithms, 2nd ed., eq. 4.4); doubled for safety. */
    c->err = 2.0 * (double)nib * 5.97e-8 * S;
    c->u = 0.0;
    if (!(maxdiff > 0.0) || !isfinite(maxdiff))
        return;
    double inv = (double)(WQ16_MAX + 1) / maxdiff; /* the largest entry is clamped to 63 */
    const __m512d shrink = _mm512_set1_pd(inv * (1.0 - 1e-9));
    for (size_t p = 0; p < nib; p++) {
        const __m512d m = _mm512_set1_pd((double)mins[p]);
        __m512i e[2];
        for (int h = 0; h < 2; h++) {
            __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(t + 16 * p + 8 * (size_t)h));
            x = _mm512_mul_pd(_mm512_sub_pd(x, m), shrink);
            x = _mm512_min_pd(_mm512_max_pd(x, _mm512_setzero_pd()), _mm512_set1_pd(WQ16_MAX));
            e[h] = _mm512_castsi256_si512(_mm512_cvttpd_epi32(x)); /* truncation = floor here */
        }
        __m512i both = _mm512_inserti64x4(e[0], _mm512_castsi512_si256(e[1]), 1);
        _mm_storeu_si128((__m128i *)(q16 + 16 * p), _mm512_cvtepi32_epi8(both));
    }
    c->u = maxdiff / (double)(WQ16_MAX + 1);
}

/* lut[p * 16 + v] = q16[p * 16 + (v ^ nibble p of the query)]: four nibbles per vpshufb. */
static void wq_lut16(const uint64_t *qj, size_t words, const uint8_t *q16, uint8_t *lut)
{
    const __m512i iota =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    /* 128-bit lanes 0, 1 of group g read query byte 2g, lanes 2, 3 byte 2g + 1; odd lanes
     * take its high nibble */
    const __m512i lane_byte =
        _mm512_setr_epi64(0, 0, 0, 0, 0x0101010101010101ll, 0x0101010101010101ll,
                          0x0101010101010101ll, 0x0101010101010101ll);
    const __m512i shift = _mm512_setr_epi64(0, 0, 0x0004000400040004ll, 0x0004000400040004ll, 0, 0,
                                            0x0004000400040004ll, 0x0004000400040004ll);
    for (size_t wi = 0; wi < words; wi++) {
        const __m512i qb = _mm512_set1_epi64((long long)qj[wi]);
        for (int g = 0; g < 4; g++) {
            __m512i ctrl = _mm512_add_epi8(_mm512_set1_epi8((char)(2 * g)), lane_byte);
            __m512i b = _mm512_shuffle_epi8(qb, ctrl);
            __m512i qn = _mm512_and_si512(_mm512_srlv_epi16(b, shift), _mm512_set1_epi8(0x0f));
            size_t p = wi * 16 + 4 * (size_t)g;
            __m512i tab = _mm512_loadu_si512((const void *)(q16 + 16 * p));
            _mm512_storeu_si512((void *)(lut + 16 * p),
                                _mm512_shuffle_epi8(tab, _mm512_xor_si512(iota, qn)));
        }
    }
}

/* 8-bit tables relative to the threshold: one unit = (thr - M) / WQ_UNITS; entries are floors
 * (lower bounds), so the filter is exact as long as its pass level covers float rounding (see
 * below). 240 leaves headroom under 255. Returns the pass level, or -1 when the quantisation
 * is too coarse for this threshold. */
#define WQ_UNITS 240.0
static int wq_lut8(const uint64_t *qj, const float *tj, size_t nib, const float *mins,
                   const wq_consts *c, double range, uint8_t *lut)
{
    double inv = WQ_UNITS / range;
    /* Rounding: each table difference (T - m) is off by <= 2^-24 S_p; the canonical float sum
     * is off by <= err from the real sum of its terms. Entries are lowered by `slack` units,
     * the pass level raised by the sum error, both with a safety factor. */
    double slack = 0.01 + 4.0 * 5.97e-8 * c->S * inv;
    double level = WQ_UNITS + 1.0 + c->err * inv;
    if (slack > 0.5 || level > 254.0)
        return -1;
    const __m512 vinv = _mm512_set1_ps((float)(inv * (1.0 - 1e-6)));
    const __m512 vslack = _mm512_set1_ps((float)slack);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (size_t p = 0; p < nib; p++) {
        unsigned qn = (unsigned)(qj[p / 16] >> (4 * (p % 16))) & 15u;
        /* entry for database nibble v is T[v ^ qn] */
        __m512 t = _mm512_permutexvar_ps(_mm512_xor_si512(iota, _mm512_set1_epi32((int)qn)),
                                         _mm512_loadu_ps(tj + 16 * p));
        __m512 u =
            _mm512_sub_ps(_mm512_mul_ps(_mm512_sub_ps(t, _mm512_set1_ps(mins[p])), vinv), vslack);
        u = _mm512_max_ps(u, _mm512_setzero_ps());
        __m512i e = _mm512_cvttps_epi32(_mm512_min_ps(u, _mm512_set1_ps(255.0f)));
        _mm_storeu_si128((__m128i *)(lut + 16 * p), _mm512_cvtusepi32_epi8(e));
    }
    return (int)level; /* floor */
}

void hm_avx512_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                             size_t words, const float *tables, size_t tstride, int64_t base,
                             hm_cand_list *lists, void *scratch)
{
    size_t nib = 16 * words;
    uint8_t *tr = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    __m512i *acc = (__m512i *)(tr + (n + 63) / 64 * 1024 * words); /* 64-byte aligned */
    uint8_t *lut = (uint8_t *)(acc + (n + 63) / 64 * 2);
    uint8_t *q16 = lut + 256 * words;
    float *mins = (float *)(q16 + 256 * words);
    wcands cs = {.row = (uint32_t *)(mins + 16 * words), .count = 0, .cap = 2 * n};
    cs.qry = cs.row + 2 * n;
    int transposed = 0;
    wq_consts c = {0};
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        if (j == 0 || tstride)
            wq_prepare(tj, nib, mins, q16, &c);
        double thr = (double)l->wthr;
        if (!isfinite(thr)) {
            wscan_exact(qj, db, n, words, tj, base, l);
            continue;
        }
        /* a canonical sum is >= M - err: nothing can be below such a threshold */
        if (thr <= c.M - c.err)
            continue;
        /* 16-bit filter (fixed unit u): a row with d < thr has a real sum < thr + err, so its
         * entries add up to at most (thr + err - M) / u */
        double lmax = c.u > 0.0 ? floor((thr + c.err - c.M) / c.u) + 1.0 : INFINITY;
        int use16 = lmax < 65535.0 && lmax < (double)(WQ16_MAX * nib);
        /* The 8-bit filter's unit (thr - M) / WQ_UNITS follows the threshold: it is the finer
         * one when thr is small next to the largest nibble weight (say one huge weight among
         * tiny ones). Otherwise the 16-bit filter wins: its tables need no float work per tile
         * and it costs about the same per row (measured on Zen 4). */
        int level8 = -1;
        double range = thr - c.M;
        if ((!use16 || c.u > 2.0 * range / WQ_UNITS) && range > 0.0 && isfinite(range))
            level8 = wq_lut8(qj, tj, nib, mins, &c, range, lut);
        if (!use16 && level8 < 0) {
            wscan_exact(qj, db, n, words, tj, base, l);
            continue;
        }
        if (!transposed) {
            for (size_t ch = 0; ch * 64 < n; ch++)
                transpose64(db, n, ch * 64, words, tr + ch * 1024 * words);
            transposed = 1;
        }
        if (cs.count + n > cs.cap)
            wscan_verify(q, db, words, tables, base, lists, &cs);
        uint32_t *cand = cs.row + cs.count;
        size_t nc;
        if (level8 >= 0) {
            uint8_t tmax = (uint8_t)level8;
            nc = words == 1 ? wscan_filter8(n, words, tr, lut, tmax, cand, 8)
                            : wscan_filter8(n, words, tr, lut, tmax, cand, 0);
        } else {
            wq_lut16(qj, words, q16, lut);
            nc = wscan_filter16(n, words, tr, lut, (uint16_t)lmax, cand, acc);
        }
        for (size_t i = 0; i < nc; i++)
            cs.qry[cs.count + i] = (uint32_t)j;
        cs.count += nc;
        if (tstride) /* the next query has other tables */
            wscan_verify(q, db, words, tj, base, lists, &cs);
    }
    wscan_verify(q, db, words, tables, base, lists, &cs);
}
