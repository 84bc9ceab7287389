/* AVX-512 weighted Hamming kernels (F + BW + VBMI + VPOPCNTDQ; see hamming_avx512.c for how
 * they are selected).
 *
 * Weighted Hamming: 16 codes per vector (one 32-bit lane each), the nibble p of every lane
 * selects its float from the 16-entry table of nibble p with vpermps (a register lookup table,
 * as in product-quantisation fast scans), summed in the canonical nibble order so the result is
 * bit-identical to the scalar reference.
 *
 * Weighted threshold scans first bound every row from below with integer tables over a copy of
 * the tile cut into 6-bit groups (PQ fast scan with vpermb lookups, 64 rows and 6 bits per
 * lookup): an 8-bit saturating bound whose unit follows the threshold, or a 16-bit bound with a
 * fixed unit for long codes. Only rows whose bound admits d < threshold (after float rounding)
 * are candidates; their canonical distances are computed 16 at a time with gathers, so results
 * stay exact. The bounds treat the tables as sums of per-bit weights (as hm_weights_create
 * builds them) and cover float rounding with margins.
 *
 * Deliberately no allocation, no threads, no prefetching heuristics: knn.c tiles and threads.
 */
#include <immintrin.h>

#include <math.h>
#include <stdbool.h>
#include <string.h>

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
    const __m512i vlist = _mm512_set1_epi32((int)sizeof *lists);
    const void *wthr0 = &lists[0].wthr;
    for (size_t i = 0; i < cs->count; i += 16) {
        size_t m = cs->count - i < 16 ? cs->count - i : 16;
        __mmask16 valid = (__mmask16)(m == 16 ? 0xffffu : (1u << m) - 1u);
        /* missing lanes read row 0 and query 0, which exist; their sums are discarded */
        __m512i rows = _mm512_maskz_loadu_epi32(valid, cs->row + i);
        __m512i qrys = _mm512_maskz_loadu_epi32(valid, cs->qry + i);
        __m512i roff = _mm512_mullo_epi32(rows, vw), qoff = _mm512_mullo_epi32(qrys, vw);
        __m512i lthr = _mm512_mullo_epi32(qrys, vlist);
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
        /* each lane's list threshold (lists do not change it here), so only hits are visited,
         * without a branch per candidate on its distance (a third of the candidates fail it, at
         * random: that branch had taken most of this function's time) */
        __m512 thr = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, lthr, wthr0, 1);
        float dd[16];
        _mm512_storeu_ps(dd, acc);
        for (unsigned hit = _mm512_mask_cmp_ps_mask(valid, acc, thr, _CMP_LT_OQ); hit;
             hit &= hit - 1) {
            size_t r = (size_t)__builtin_ctz(hit);
            hm_cand_push_w(&lists[cs->qry[i + r]], base + (int64_t)cs->row[i + r], dd[r]);
        }
    }
    cs->count = 0;
}

/* ---- lower-bound filters over 6-bit groups ------------------------------------------------ */

/* Every 64-bit word of a code is cut into WG groups of bits: group g < 10 is bits 6g..6g+5,
 * group 10 is bits 60..63. A tile is copied group-major: per 64-row chunk, word and group, 64
 * bytes, byte r holding the group's bits of row r in its low 6 bits (group 10: low 4). vpermb
 * reads only those 6 bits, so one vpermb looks up 64 rows in a group's 64-entry table: 11
 * lookups per word and 64 rows, where 4-bit (nibble) tables need 16. The tables of group 10
 * ignore index bits 4 and 5, which hold other bits of the row. */
#define WG 11

/* vpmultishiftqb controls: byte j of every qword takes the 8 bits from offset 6j (groups 0..7),
 * and from offsets 48, 54, 60 (groups 8..10; bits past 63 wrap around to bit 0). */
#define GROUPS_0_7 0x2a241e18120c0600ll
#define GROUPS_8_10 0x3c3630ll

/* Word w of rows r0 + 8k .. r0 + 8k + 7 of rows of `words` words, gathered (rows >= n read as
 * zero). */
AI __m512i load8_word(const uint64_t *db, size_t n, size_t r0, size_t words, size_t w, size_t k)
{
    size_t row = r0 + 8 * k;
    size_t rem = row < n ? n - row : 0;
    __mmask8 m = rem >= 8 ? 0xff : (__mmask8)((1u << rem) - 1u);
    const long long st = (long long)(8 * words);
    const __m512i off = _mm512_setr_epi64(0, st, 2 * st, 3 * st, 4 * st, 5 * st, 6 * st, 7 * st);
    return _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), m, off,
                                       (const void *)(db + (m ? row * words + w : 0)), 1);
}

/* Index vectors of the byte transposes below. vpermt2b (_mm512_permutex2var_epi8) makes byte o
 * of its result byte idx & 63 of its first source, or of its second when idx & 64. Groups 0..7:
 * R[k] byte 8r + g is group g of row 8k + r (vpmultishiftqb's output); three rounds pair the
 * vectors up, halving the groups and doubling the rows a vector holds:
 *   S1[h]: from R[2i], R[2i+1], byte 16g + 8k + r = group 4h + g of row 8k + r (16 rows);
 *   S2[m]: from two of those, byte 32g + 16i + x = group 2m + g of the 32 rows;
 *   S3[g]: from two of those, byte 32j + y = group g of row 32j + y (64 rows).
 * Groups 8..10 (3 useful bytes a row): B1 puts 3 groups of 16 rows in one vector, byte 16g + 8k
 * + r; S2[0] and B2 (the third group) make 32 rows; S3 makes 64. Per word: 35 vpermt2b, where
 * byte transposes within 8 rows (vpshufb + vpermw) and 8x8 qword transposes (vpermt2q) took about
 * 75. */
#define TG_S1(h, o) ((((o) >> 3) & 1) * 64 + ((o)&7) * 8 + 4 * (h) + ((o) >> 4))
#define TG_S2(m, o) ((((o) >> 4) & 1) * 64 + 16 * (2 * (m) + ((o) >> 5)) + ((o)&15))
#define TG_S3(g, o) (((o) >> 5) * 64 + 32 * (g) + ((o)&31))
#define TG_B1(u, o) ((o) < 48 ? (((o) >> 3) & 1) * 64 + ((o)&7) * 8 + ((o) >> 4) : 0)
#define TG_B2(u, o) ((o) < 32 ? (((o) >> 4) & 1) * 64 + 32 + ((o)&15) : 0)
#define TG_8(F, a, o)                                                                              \
    F(a, o), F(a, o + 1), F(a, o + 2), F(a, o + 3), F(a, o + 4), F(a, o + 5), F(a, o + 6),         \
        F(a, o + 7)
#define TG_64(F, a)                                                                                \
    {                                                                                              \
        TG_8(F, a, 0), TG_8(F, a, 8), TG_8(F, a, 16), TG_8(F, a, 24), TG_8(F, a, 32),              \
            TG_8(F, a, 40), TG_8(F, a, 48), TG_8(F, a, 56)                                         \
    }
static const uint8_t tg_index[8][64] = {TG_64(TG_S1, 0), TG_64(TG_S1, 1), TG_64(TG_S2, 0),
                                        TG_64(TG_S2, 1), TG_64(TG_S3, 0), TG_64(TG_S3, 1),
                                        TG_64(TG_B1, 0), TG_64(TG_B2, 0)};

AI __m512i tg_perm(__m512i a, int which, __m512i b)
{
    return _mm512_permutex2var_epi8(a, _mm512_loadu_si512((const void *)tg_index[which]), b);
}

/* Groups 0..10 of word vectors x[k] (word w of rows 8k..8k+7), one vector of 64 rows per group,
 * stored at out (11 x 64 bytes). */
AI void store_groups(const __m512i *x, uint8_t *out)
{
    const __m512i ca = _mm512_set1_epi64(GROUPS_0_7), cb = _mm512_set1_epi64(GROUPS_8_10);
    __m512i R[8], B[8], S[2][4], U[2][2][2], V[4], W[2][2];
    for (int k = 0; k < 8; k++) {
        R[k] = _mm512_multishift_epi64_epi8(ca, x[k]);
        B[k] = _mm512_multishift_epi64_epi8(cb, x[k]);
    }
    for (int i = 0; i < 4; i++) {
        for (int h = 0; h < 2; h++)
            S[h][i] = tg_perm(R[2 * i], h, R[2 * i + 1]);
        V[i] = tg_perm(B[2 * i], 6, B[2 * i + 1]);
    }
    for (int j = 0; j < 2; j++) {
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 2; m++)
                U[h][m][j] = tg_perm(S[h][2 * j], 2 + m, S[h][2 * j + 1]);
        W[0][j] = tg_perm(V[2 * j], 2, V[2 * j + 1]); /* groups 8, 9 of 32 rows */
        W[1][j] = tg_perm(V[2 * j], 7, V[2 * j + 1]); /* group 10 */
    }
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 2; m++)
            for (int g = 0; g < 2; g++)
                _mm512_store_si512((void *)(out + 64 * (4 * h + 2 * m + g)),
                                   tg_perm(U[h][m][0], 4 + g, U[h][m][1]));
    for (int g = 0; g < 3; g++)
        _mm512_store_si512((void *)(out + 64 * (8 + g)),
                           tg_perm(W[g / 2][0], 4 + g % 2, W[g / 2][1]));
}

/* Copies the 64 rows starting at row r0 group-major into out (WG * words vectors of 64 bytes):
 * per word, vpmultishiftqb cuts each row's qword into its groups, one byte each, and
 * store_groups transposes them into vectors of one group of 64 rows. For 1, 2 and 4 words (W),
 * 8 rows are loaded contiguously and transposed in registers as in the plain scan; other lengths
 * (W = 0) gather. */
AI void transpose_groups64(const uint64_t *db, size_t n, size_t r0, size_t words, uint8_t *out,
                           const int W)
{
    if (W) {
        __m512i x[4][8]; /* x[w][k]: word w of rows 8k..8k+7 */
        for (int k = 0; k < 8; k++) {
            size_t row = r0 + 8 * (size_t)k;
            __m512i v[4];
            load_transposed(db + row * (size_t)W, row < n ? n - row : 0, W, v);
            for (int w = 0; w < W; w++)
                x[w][k] = v[w];
        }
        for (int w = 0; w < W; w++)
            store_groups(x[w], out + (size_t)w * WG * 64);
        return;
    }
    for (size_t w = 0; w < words; w++) {
        __m512i x[8];
        for (size_t k = 0; k < 8; k++)
            x[k] = load8_word(db, n, r0, words, w, k);
        store_groups(x, out + w * WG * 64);
    }
}

/* The group-major copy of rows [0, n) (chunks of 64 rows, tb bytes each). */
static void copy_groups(const uint64_t *db, size_t n, size_t words, uint8_t *tr, size_t tb)
{
    for (size_t c = 0; c * 64 < n; c++) {
        uint8_t *o = tr + c * tb;
        switch (words) {
        case 1: transpose_groups64(db, n, c * 64, 1, o, 1); break;
        case 2: transpose_groups64(db, n, c * 64, 2, o, 2); break;
        case 4: transpose_groups64(db, n, c * 64, 4, o, 4); break;
        default: transpose_groups64(db, n, c * 64, words, o, 0); break;
        }
    }
}

/* Row numbers (c * 64 + bit) of the set bits of m, appended to cand in ascending order. The
 * first two are stored whether or not they exist (so a pass over n rows may store one entry past
 * the n it can keep) and only more than two take a branch (most nonzero masks have one or two
 * rows). */
AI size_t push_rows(uint64_t m, size_t c, uint32_t *cand, size_t nc)
{
    const uint64_t top = 1ull << 63; /* keeps ctz defined; a row it yields is not counted */
    uint32_t r0 = (uint32_t)(c * 64);
    uint64_t m1 = m & (m - 1);
    cand[nc] = r0 + (uint32_t)__builtin_ctzll(m | top);
    cand[nc + 1] = r0 + (uint32_t)__builtin_ctzll(m1 | top);
    size_t cnt = (size_t)__builtin_popcountll(m);
    if (__builtin_expect(cnt <= 2, 1))
        return nc + cnt;
    nc += 2;
    for (m1 &= m1 - 1; m1; m1 &= m1 - 1)
        cand[nc++] = r0 + (uint32_t)__builtin_ctzll(m1);
    return nc;
}

AI uint64_t chunk_valid(size_t n, size_t c)
{
    size_t rem = n - c * 64;
    return rem < 64 ? (1ull << rem) - 1u : ~0ull;
}

/* Bits 0..31 of x at the even bit positions 0, 2, .., 62. */
AI uint64_t spread_even(uint64_t x)
{
    x &= 0xffffffffull;
    x = (x | x << 16) & 0x0000ffff0000ffffull;
    x = (x | x << 8) & 0x00ff00ff00ff00ffull;
    x = (x | x << 4) & 0x0f0f0f0f0f0f0f0full;
    x = (x | x << 2) & 0x3333333333333333ull;
    return (x | x << 1) & 0x5555555555555555ull;
}

/* The candidate rows of a pass from its chunks' masks, eight chunks at a time, visiting only
 * nonzero masks. mk[c] holds chunk c's rows at most at the level: bit r for row r (W16 = 0), or
 * the even rows in bits 0..31 and the odd rows in bits 32..63 (W16 = 1, the 16-bit filter's
 * lanes). Filters store the masks and take the rows afterwards, so their loops have no branch
 * on the data: at 64 bits, 1 thread, the filter loop of two queries measured 5.3 ns per 64 rows
 * against 7.4 ns when it took each chunk's rows at once (Zen 5, a loop over one L1-resident
 * tile, about one candidate per 1,500 rows). */
AI size_t mask_rows(const uint64_t *mk, size_t nch, size_t n, uint32_t *cand, size_t nc,
                    const int W16)
{
    for (size_t c0 = 0; c0 < nch; c0 += 8) {
        __mmask8 in = (__mmask8)(nch - c0 >= 8 ? 0xffu : (1u << (nch - c0)) - 1u);
        __m512i v = _mm512_maskz_loadu_epi64(in, mk + c0);
        for (unsigned nz = _mm512_test_epi64_mask(v, v); nz; nz &= nz - 1) {
            size_t c = c0 + (size_t)__builtin_ctz(nz);
            uint64_t m = mk[c];
            if (W16)
                m = spread_even(m) | spread_even(m >> 32) << 1;
            nc = push_rows(m & chunk_valid(n, c), c, cand, nc);
        }
    }
    return nc;
}

/* The 11 tables of word w of a query into registers: L[g][v] = tab[g][v ^ group g of q's word]
 * (the query's groups broadcast with vpmultishiftqb: bits past the group's are garbage that
 * vpermb ignores, and group 10's tables ignore index bits 4 and 5). Built in registers at the
 * start of every pass, where a copy per query written to memory had to be stored and loaded. */
AI void word_tables(const uint8_t *tab, const uint64_t *q, size_t w, __m512i *L)
{
    const __m512i iota = _mm512_set_epi8(
        63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41,
        40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i qb = _mm512_set1_epi64((long long)q[w]);
    for (int g = 0; g < WG; g++) {
        __m512i qg = _mm512_multishift_epi64_epi8(_mm512_set1_epi8((char)(6 * g)), qb);
        __m512i tv = _mm512_load_si512((const void *)(tab + (w * WG + (size_t)g) * 64));
        L[g] = _mm512_permutexvar_epi8(_mm512_xor_si512(iota, qg), tv);
    }
}

/* One query's pass of a filter over a tile: its code q, the query-independent tables it looks up
 * (tab: an 8-bit slot or the 16-bit tables), pass level, and the candidate rows it appends
 * (cand, nc). A filter runs for one query or two (NF): two share every load of the
 * tile's copy, which measured 28% faster per query on Zen 5 in a loop of only the 8-bit filter
 * over an L1-resident tile (11 vector loads per 64 rows and query cost about as much as the 11
 * vpermb, and the two do not overlap). Two queries' tables fill 22 of the 32 registers, and
 * GCC then loaded each group vector once per query instead of once per pass: PIN keeps the
 * loaded vector in a register for both (64 bits, 1 thread: the weighted search about 4% faster).
 */
#define PIN(v) __asm__("" : "+v"(v))
typedef struct {
    const uint64_t *q;
    const uint8_t *tab;
    unsigned level;
    uint32_t *cand;
    size_t nc;
    uint64_t *mk; /* the pass's row masks, one per 64-row chunk (see mask_rows) */
} wfq;

/* The tables of word w of a pass's queries (the second only when NF is 2). */
AI void pass_tables(const wfq *f, size_t w, __m512i *L0, __m512i *L1, const int NF)
{
    word_tables(f[0].tab, f[0].q, w, L0);
    if (NF == 2)
        word_tables(f[1].tab, f[1].q, w, L1);
}

/* 8-bit lower-bound filter (the fast scan of product quantisation: André, Kermarrec, Le
 * Scouarnec, "Cache locality is not enough: high-performance nearest neighbor search with product
 * quantization fast scan", VLDB 2015): per group, one vpermb lookup of 64 rows; entries are at
 * most WQ8_MAX, so two lookups add with vpaddb (more ports than the saturating add: 1.4x the
 * speed of a chain of saturating adds, measured on Zen 5) and the pairs add with saturation.
 * One word of every chunk, its 11 tables per query in registers: acc[2c + i] carries query i's
 * sum of chunk c from word to word (FIRST: start it; LAST: store the chunk's mask of rows whose
 * bound is <= the level, and take the candidates from the masks after the loop). */
#define WQ8_MAX 127
AI void filter8_word(size_t n, size_t words, size_t w, const uint8_t *tr, wfq *f, __m512i *acc,
                     const int FIRST, const int LAST, const int NF)
{
    __m512i L0[WG], L1[WG];
    pass_tables(f, w, L0, L1, NF);
    const __m512i tv0 = _mm512_set1_epi8((char)f[0].level);
    const __m512i tv1 = _mm512_set1_epi8((char)f[NF - 1].level);
    const size_t nch = (n + 63) / 64;
    for (size_t c = 0; c < nch; c++) {
        const uint8_t *t = tr + (c * words + w) * WG * 64;
        __m512i x = _mm512_load_si512((const void *)(t + 64 * (WG - 1)));
        if (NF == 2)
            PIN(x);
        __m512i a0 = _mm512_permutexvar_epi8(x, L0[WG - 1]), a1 = a0;
        if (NF == 2)
            a1 = _mm512_permutexvar_epi8(x, L1[WG - 1]);
        if (!FIRST) {
            a0 = _mm512_adds_epu8(acc[2 * c], a0);
            if (NF == 2)
                a1 = _mm512_adds_epu8(acc[2 * c + 1], a1);
        }
        for (int g = 0; g + 1 < WG; g += 2) {
            __m512i x0 = _mm512_load_si512((const void *)(t + 64 * g));
            __m512i x1 = _mm512_load_si512((const void *)(t + 64 * (g + 1)));
            if (NF == 2) {
                PIN(x0);
                PIN(x1);
            }
            a0 = _mm512_adds_epu8(a0, _mm512_add_epi8(_mm512_permutexvar_epi8(x0, L0[g]),
                                                      _mm512_permutexvar_epi8(x1, L0[g + 1])));
            if (NF == 2)
                a1 = _mm512_adds_epu8(a1, _mm512_add_epi8(_mm512_permutexvar_epi8(x0, L1[g]),
                                                          _mm512_permutexvar_epi8(x1, L1[g + 1])));
        }
        if (LAST) {
            _store_mask64((__mmask64 *)(f[0].mk + c), _mm512_cmple_epu8_mask(a0, tv0));
            if (NF == 2)
                _store_mask64((__mmask64 *)(f[1].mk + c), _mm512_cmple_epu8_mask(a1, tv1));
        } else {
            acc[2 * c] = a0;
            if (NF == 2)
                acc[2 * c + 1] = a1;
        }
    }
    if (LAST)
        for (int i = 0; i < NF; i++)
            f[i].nc = mask_rows(f[i].mk, nch, n, f[i].cand, f[i].nc, 0);
}

/* The row mask of a chunk from its 16-bit accumulators (see filter16_word), stored at mk: even
 * rows in bits 0..31, odd rows in bits 32..63. */
AI void chunk16_mask(__m512i acc0, __m512i acc1, __m512i lv, uint64_t *mk)
{
    __m512i even = _mm512_sub_epi16(acc0, _mm512_slli_epi16(acc1, 8));
    __mmask32 me = _mm512_cmple_epu16_mask(even, lv), mo = _mm512_cmple_epu16_mask(acc1, lv);
    _store_mask64((__mmask64 *)mk, _mm512_kunpackd(mo, me));
}

/* 16-bit lower-bound filter: the same lookups with entries of at most WQ16_MAX, so four of them
 * add in 8 bits without overflow; those sums are accumulated in 16 bits: even rows (low byte of
 * each 16-bit lane) as acc0 - 256 * acc1, odd rows (high byte) as acc1 (the uint16 accumulation
 * of Blalock & Guttag's Bolt / FAISS fast-scan). Its unit is fixed, so it stays tight at any code
 * length. Sums past 65535 wrap, which only lets rows through. One word of every chunk, its 11
 * tables per query in registers: acc[4c + 2i], acc[4c + 2i + 1] carry query i's sums of chunk c
 * from word to word (FIRST: start them; LAST: store the chunk's row mask, and take the candidates
 * from the masks after the loop). */
#define WQ16_MAX 63
AI void filter16_word(size_t n, size_t words, size_t w, const uint8_t *tr, wfq *f, __m512i *acc,
                      const int FIRST, const int LAST, const int NF)
{
    __m512i L0[WG], L1[WG];
    pass_tables(f, w, L0, L1, NF);
    const __m512i lv0 = _mm512_set1_epi16((short)f[0].level);
    const __m512i lv1 = _mm512_set1_epi16((short)f[NF - 1].level);
    const size_t nch = (n + 63) / 64;
    for (size_t c = 0; c < nch; c++) {
        const uint8_t *t = tr + (c * words + w) * WG * 64;
        __m512i p0 = FIRST ? _mm512_setzero_si512() : acc[4 * c];
        __m512i p1 = FIRST ? _mm512_setzero_si512() : acc[4 * c + 1];
        __m512i r0 = p0, r1 = p1;
        if (NF == 2 && !FIRST) {
            r0 = acc[4 * c + 2];
            r1 = acc[4 * c + 3];
        }
#pragma GCC unroll 3
        for (size_t g0 = 0; g0 < WG; g0 += 4) {
            __m512i x = _mm512_load_si512((const void *)(t + 64 * g0));
            if (NF == 2)
                PIN(x);
            __m512i s0 = _mm512_permutexvar_epi8(x, L0[g0]), s1 = s0;
            if (NF == 2)
                s1 = _mm512_permutexvar_epi8(x, L1[g0]);
#pragma GCC unroll 3
            for (size_t h = 1; h < 4; h++)
                if (g0 + h < WG) {
                    x = _mm512_load_si512((const void *)(t + 64 * (g0 + h)));
                    if (NF == 2)
                        PIN(x);
                    s0 = _mm512_add_epi8(s0, _mm512_permutexvar_epi8(x, L0[g0 + h]));
                    if (NF == 2)
                        s1 = _mm512_add_epi8(s1, _mm512_permutexvar_epi8(x, L1[g0 + h]));
                }
            p0 = _mm512_add_epi16(p0, s0);
            p1 = _mm512_add_epi16(p1, _mm512_srli_epi16(s0, 8));
            if (NF == 2) {
                r0 = _mm512_add_epi16(r0, s1);
                r1 = _mm512_add_epi16(r1, _mm512_srli_epi16(s1, 8));
            }
        }
        if (LAST) {
            chunk16_mask(p0, p1, lv0, f[0].mk + c);
            if (NF == 2)
                chunk16_mask(r0, r1, lv1, f[1].mk + c);
        } else {
            acc[4 * c] = p0;
            acc[4 * c + 1] = p1;
            if (NF == 2) {
                acc[4 * c + 2] = r0;
                acc[4 * c + 3] = r1;
            }
        }
    }
    if (LAST)
        for (int i = 0; i < NF; i++)
            f[i].nc = mask_rows(f[i].mk, nch, n, f[i].cand, f[i].nc, 1);
}

/* Either filter (W16: the 16-bit one) for NF queries over every chunk, word by word, so a word's
 * tables stay in registers while the tile streams past (with the tables in memory, loads limit
 * the loop). */
AI void filter_words(size_t n, size_t words, const uint8_t *tr, wfq *f, __m512i *acc, const int W16,
                     const int NF)
{
#define FILTER_WORD(FIRST, LAST)                                                                   \
    (W16 ? filter16_word(n, words, w, tr, f, acc, FIRST, LAST, NF)                                 \
         : filter8_word(n, words, w, tr, f, acc, FIRST, LAST, NF))
    for (size_t w = 0; w < words; w++) {
        if (words == 1)
            FILTER_WORD(1, 1);
        else if (w == 0)
            FILTER_WORD(1, 0);
        else if (w + 1 < words)
            FILTER_WORD(0, 0);
        else
            FILTER_WORD(0, 1);
    }
#undef FILTER_WORD
}

/* The filter of one or two queries (nf), each instance compiled apart. */
static void run_filters(size_t n, size_t words, const uint8_t *tr, wfq *f, __m512i *acc, int w16,
                        int nf)
{
    if (w16)
        nf == 2 ? filter_words(n, words, tr, f, acc, 1, 2)
                : filter_words(n, words, tr, f, acc, 1, 1);
    else
        nf == 2 ? filter_words(n, words, tr, f, acc, 0, 2)
                : filter_words(n, words, tr, f, acc, 0, 1);
}

/* Per-table constants of the filters (one weight table: every query when tstride is 0). */
typedef struct {
    double M;   /* sum of the negative weights: no real distance is below it */
    double err; /* bound on |canonical float sum - real sum of the weights| */
    double u16; /* 16-bit filter unit (0: no filter) */
    double i16; /* 1 / u16 */
    double U;   /* 8-bit filters' base: a power of two > every group's range (0: no filter) */
    double iU;  /* 1 / U */
} wg_consts;

/* The 8-bit units are U 2^(-s/4), s >= 0 (quarter octaves: a pass level of 213..254); the
 * largest s keeps the tables' float products finite. */
#define WG_MAX_STEP 400

/* Relative margin of the float table products, about 8 times their rounding (a sum of up to 6
 * positive float terms, the rounded reciprocal of the unit, two products: below 5e-7), so
 * entry * unit <= real (e - m) holds. */
#define WG_SHRINK (1.0f - 4e-6f)

/* From the nibble tables t (the weights are their single-bit entries), per group g and group
 * value v: D[g * 64 + v] = e - m, where e is the sum of the weights of v's set bits and m the
 * group's minimum, the sum of its negative weights (computed as a sum of |w| terms, so it
 * has no cancellation); and the 16-bit tables t16 = min(63, floor(D / u16)). */
static void wg_prepare(const float *t, size_t words, float *D, uint8_t *t16, wg_consts *c)
{
    size_t nib = 16 * words;
    double M = 0.0, S = 0.0, maxrange = 0.0;
    for (size_t p = 0; p < nib; p++)
        S += _mm512_reduce_max_ps(_mm512_abs_ps(_mm512_loadu_ps(t + 16 * p)));
    /* lanes of vector h (v = 16 h + lane) whose v has bit i set */
    static const uint16_t lane_bits[4] = {0xaaaa, 0xcccc, 0xf0f0, 0xff00};
    for (size_t w = 0; w < words; w++)
        for (int g = 0; g < WG; g++) {
            int len = g < 10 ? 6 : 4; /* group 10: bits 4, 5 of v are not its bits */
            __m512 d[4];
            for (int h = 0; h < 4; h++)
                d[h] = _mm512_setzero_ps();
            double range = 0.0;
            for (int i = 0; i < len; i++) {
                int b = 6 * g + i;
                float wb = t[w * 256 + (size_t)(b / 4) * 16 + (1u << (b % 4))];
                M += wb < 0.0f ? (double)wb : 0.0;
                range += fabs((double)wb);
                __m512 a = _mm512_set1_ps(fabsf(wb));
                for (int h = 0; h < 4; h++) {
                    unsigned set = i < 4 ? lane_bits[i] : ((h >> (i - 4)) & 1) ? 0xffffu : 0u;
                    /* |w| counts where the bit differs from the weight's cheaper value */
                    __mmask16 m = (__mmask16)(wb < 0.0f ? ~set : set);
                    d[h] = _mm512_mask_add_ps(d[h], m, d[h], a);
                }
            }
            float *o = D + (w * WG + (size_t)g) * 64;
            for (int h = 0; h < 4; h++)
                _mm512_store_ps(o + 16 * h, d[h]);
            maxrange = range > maxrange ? range : maxrange;
        }
    c->M = M;
    /* Sequential float summation of nib terms: |error| <= (nib - 1) 2^-24 S (Higham, Accuracy
     * and Stability of Numerical Algorithms, 2nd ed., eq. 4.4), and a table entry is off the real
     * sum of its bits' weights by at most 3 2^-24 S_p; doubled for safety. */
    c->err = 2.0 * (double)nib * 5.97e-8 * S;
    c->u16 = c->U = c->i16 = c->iU = 0.0;
    if (!(maxrange > 0.0) || !(maxrange < 1e30))
        return;
    int ex;
    frexp(maxrange, &ex);
    c->U = ldexp(1.0, ex); /* > maxrange */
    c->iU = ldexp(1.0, -ex);
    c->u16 = maxrange / (double)(WQ16_MAX + 1);
    c->i16 = 1.0 / c->u16;
    const __m512 inv = _mm512_set1_ps((float)(1.0 / c->u16) * WG_SHRINK);
    const __m512 top = _mm512_set1_ps((float)WQ16_MAX);
    for (size_t i = 0; i < WG * 64 * words; i += 16) {
        __m512 x = _mm512_min_ps(_mm512_mul_ps(_mm512_load_ps(D + i), inv), top);
        _mm_store_si128((__m128i *)(t16 + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(x)));
    }
}

/* The 8-bit tables at a unit: min(WQ8_MAX, floor(D / unit)). A clamped entry is still a lower
 * bound. */
static void wg_tables8(const float *D, size_t count, double unit, uint8_t *out)
{
    const __m512 scale = _mm512_set1_ps((float)(1.0 / unit) * WG_SHRINK);
    const __m512 top = _mm512_set1_ps((float)WQ8_MAX);
    for (size_t i = 0; i < count; i += 16) {
        __m512 x = _mm512_min_ps(_mm512_mul_ps(_mm512_load_ps(D + i), scale), top);
        _mm_store_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(x)));
    }
}

/* floor(log2(x)) of a positive double x (below -1022 for subnormals: any negative value). */
AI int exponent2(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return (int)((b >> 52) & 0x7ff) - 1023;
}

/* 2^e for 0 <= e <= 1023. */
AI double pow2_pos(int e)
{
    uint64_t b = (uint64_t)(1023 + e) << 52;
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* 2^-e for 0 <= e <= 1022. */
AI double pow2_neg(int e)
{
    uint64_t b = (uint64_t)(1023 - e) << 52;
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* The largest s with 2^(s/4) <= x (x > 0; negative below 1), the unit U 2^(-s/4) and about its
 * reciprocal (within a few units of rounding). Rounding of the quarter-octave constants may make
 * s one too large; the caller's pass-level check catches that. */
AI int quarter_steps(double x, double U, double iU, double *unit, double *inv)
{
    static const double up[4] = {1.0, 1.189207115002721, 1.414213562373095, 1.681792830507429};
    static const double down[4] = {1.0, 0.8408964152537145, 0.7071067811865476, 0.5946035575013605};
    int e = exponent2(x);
    if (e < 0)
        return -1;
    e = e > WG_MAX_STEP / 4 ? WG_MAX_STEP / 4 : e;
    double m = x * pow2_neg(e);
    int q = (m >= up[1]) + (m >= up[2]) + (m >= up[3]);
    *unit = U * pow2_neg(e) * down[q];
    *inv = up[q] * iU * pow2_pos(e); /* iU = 1 / U and 2^e: powers of two, exact */
    return 4 * e + q;
}

/* floor(a * b) + 1 for a product within a few roundings of a quotient a / u: rounded up by a
 * relative 2^-40 first, so it is never below floor(a / u) + 1 (a pass level may only be too
 * high, which lets rows through). Per query and tile, where two divisions had taken about a
 * fifth of the per-query work. */
AI double level_above(double a, double b) { return floor(a * b * (1.0 + 0x1p-40)) + 1.0; }

/* A query's filter for a threshold (hm_wplan.kind): none can pass, the exact scan, the 8-bit
 * filter (step: its unit's quarter octave, unit, level) or the 16-bit one (level). */
enum { PLAN_SKIP = 1, PLAN_EXACT, PLAN_8, PLAN_16 };

AI bool plan_fresh(const hm_wplan *p, float thr, const wg_consts *c)
{
    uint32_t key;
    memcpy(&key, &thr, sizeof key);
    const double k[4] = {c->M, c->err, c->u16, c->U};
    return p->key == key + 1 && memcmp(p->consts, k, sizeof k) == 0;
}

/* The plan for a finite threshold thr under the constants c (ng groups per code). */
static void plan_query(hm_wplan *p, float thr, const wg_consts *c, size_t ng)
{
    uint32_t key;
    memcpy(&key, &thr, sizeof key);
    *p = (hm_wplan){.key = key + 1, .kind = PLAN_SKIP, .consts = {c->M, c->err, c->u16, c->U}};
    /* a canonical sum is >= M - err: nothing can be below such a threshold */
    if ((double)thr <= c->M - c->err)
        return;
    /* A row with d < thr has a real distance D < thr + err, and its bound in units u is at most
     * (D - M) / u: rows whose bound exceeds floor((thr + err - M) / u) + 1 cannot pass. */
    double range = (double)thr + c->err - c->M;
    double lmax = c->u16 > 0.0 ? level_above(range, c->i16) : INFINITY;
    int use16 = lmax < 65535.0 && lmax < (double)(WQ16_MAX * ng);
    /* The 8-bit filter's unit follows the threshold: the smallest U 2^(-s/4) >= range / 253. It
     * is cheaper per row; the 16-bit filter is chosen when its fixed unit is finer by more than
     * 2x (long codes). */
    if (c->U > 0.0 && isfinite(range)) {
        double unit, inv;
        int s = quarter_steps(253.0 * c->U / range, c->U, c->iU, &unit, &inv);
        if (s >= 0) {
            double lv = level_above(range, inv);
            if (lv <= 254.0 && !(use16 && unit > 2.0 * c->u16)) {
                p->kind = PLAN_8;
                p->step = s;
                p->unit = unit;
                p->level = (uint32_t)lv;
                return;
            }
        }
    }
    p->kind = use16 ? PLAN_16 : PLAN_EXACT;
    p->level = use16 ? (uint32_t)lmax : 0;
}

/* The 8-bit tables of a few units are kept per call (queries of one block have thresholds of
 * similar size, so they share them). */
#define WG_SLOTS 4

/* Candidate buffer rows of a scan of n rows: a filter of two queries writes the second's rows
 * after room for n + 1 of the first's (push_rows stores one past those it keeps). */
#define WC_ROWS(n) (3 * (n) + 4)

/* Runs the pending filters (one query or two) into the candidate buffer, verifying it first when
 * it could overflow. */
static void flush_filters(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                          const float *tables, int64_t base, hm_cand_list *lists, wcands *cs,
                          const uint8_t *tr, __m512i *acc, uint64_t *mk, wfq *f, const uint32_t *fq,
                          int nf, int w16)
{
    if (cs->count + 2 * n + 2 > cs->cap)
        wscan_verify(q, db, words, tables, base, lists, cs);
    f[0].cand = cs->row + cs->count;
    f[1].cand = f[0].cand + n + 1;
    f[0].mk = mk;
    f[1].mk = mk + (n + 63) / 64;
    f[0].nc = f[1].nc = 0;
    run_filters(n, words, tr, f, acc, w16, nf);
    for (int i = 0; i < nf; i++) {
        if (i && f[i].nc)
            memmove(cs->row + cs->count, f[i].cand, f[i].nc * sizeof *cs->row);
        for (size_t r = 0; r < f[i].nc; r++)
            cs->qry[cs->count + r] = fq[i];
        cs->count += f[i].nc;
    }
}

void hm_avx512_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                             size_t words, const float *tables, size_t tstride, int64_t base,
                             hm_cand_list *lists, void *scratch, const uint64_t *next,
                             size_t next_n)
{
    size_t ng = WG * words, tb = ng * 64; /* groups and table bytes per code */
    uint8_t *tr = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    size_t nch = (n + 63) / 64;
    __m512i *acc = (__m512i *)(tr + nch * tb);  /* 4 per chunk */
    uint64_t *mk = (uint64_t *)(acc + nch * 4); /* 2 per chunk, rounded up to 64 bytes */
    float *D = (float *)(mk + (nch * 2 + 7) / 8 * 8);
    uint8_t *t16 = (uint8_t *)(D + tb);
    uint8_t *slot = t16 + tb; /* WG_SLOTS x tb */
    wcands cs = {.row = (uint32_t *)(slot + WG_SLOTS * tb), .count = 0, .cap = WC_ROWS(n)};
    cs.qry = cs.row + WC_ROWS(n);
    int slot_s[WG_SLOTS], next_slot = 0;
    int transposed = 0;
    wg_consts c = {0};
    /* A query whose filter is chosen waits (pending) for a second one of the same kind, so the two
     * run together; with tables per query (tstride) each runs alone. */
    wfq f[2];
    uint32_t fq[2];
    int pending = 0, pend_w16 = 0, pend_slot = -1;
#define FLUSH(NF, W16)                                                                             \
    flush_filters(q, db, n, words, tables, base, lists, &cs, tr, acc, mk, f, fq, NF, W16)
    /* The rows the caller scans next (the k-NN driver's next tile): a few of their cache lines
     * are prefetched into L2 per query while the filters run, so that the next call's copy_groups
     * does not wait on memory (most of its samples had been on its loads). At 64 bits, 1 thread,
     * the weighted search measured 3-6% faster. */
    size_t lines = next ? (next_n * words * 8 + 63) / 64 : 0, per = (lines + nq - 1) / nq, pf = 0;
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        for (size_t e = lines - pf < per ? lines : pf + per; pf < e; pf++)
            __builtin_prefetch((const char *)next + 64 * pf, 0, 2);
        if (j == 0 || tstride) {
            wg_prepare(tj, words, D, t16, &c);
            for (int i = 0; i < WG_SLOTS; i++)
                slot_s[i] = -1;
        }
        double thr = (double)l->wthr;
        if (!isfinite(thr)) {
            wscan_exact(qj, db, n, words, tj, base, l);
            continue;
        }
        hm_wplan *p = &l->wplan;
        if (!plan_fresh(p, l->wthr, &c))
            plan_query(p, l->wthr, &c, ng);
        if (p->kind == PLAN_SKIP)
            continue;
        if (p->kind == PLAN_EXACT) {
            wscan_exact(qj, db, n, words, tj, base, l);
            continue;
        }
        if (!transposed) {
            copy_groups(db, n, words, tr, tb);
            transposed = 1;
        }
        int w16 = p->kind == PLAN_16, s = p->step;
        if (pending && pend_w16 != w16) { /* a query of the other kind: the pending one alone */
            FLUSH(1, pend_w16);
            pending = 0;
        }
        const uint8_t *tab = t16;
        int si = -1;
        if (!w16) {
            si = 0;
            while (si < WG_SLOTS && slot_s[si] != s)
                si++;
            if (si == WG_SLOTS) { /* replace a slot, not the pending query's */
                if (pending && next_slot == pend_slot)
                    next_slot = (next_slot + 1) % WG_SLOTS;
                si = next_slot;
                next_slot = (next_slot + 1) % WG_SLOTS;
                wg_tables8(D, tb, p->unit, slot + (size_t)si * tb);
                slot_s[si] = s;
            }
            tab = slot + (size_t)si * tb;
        }
        f[pending] = (wfq){.q = qj, .tab = tab, .level = p->level};
        fq[pending] = (uint32_t)j;
        if (tstride) { /* the next query has other tables */
            FLUSH(1, w16);
            wscan_verify(q, db, words, tj, base, lists, &cs);
        } else if (pending) {
            FLUSH(2, w16);
            pending = 0;
        } else {
            pending = 1;
            pend_w16 = w16;
            pend_slot = si;
        }
    }
    if (pending)
        FLUSH(1, pend_w16);
#undef FLUSH
    wscan_verify(q, db, words, tables, base, lists, &cs);
}
