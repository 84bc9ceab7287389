/* AVX2 kernels (compiled with -mavx2 -mpopcnt, selected only when CPUID and XCR0 report AVX2
 * with the YMM state enabled).
 *
 * Plain Hamming: rows of 2 to AVX2_POPCNT_MAX_WORDS words by the scalar POPCNT instruction
 * (for short rows it beats the vector count: no horizontal sum, no masked loads); longer rows
 * and one-word rows (four per vector) by the vpshufb nibble lookup of W. Muła, N. Kurz,
 * D. Lemire, "Faster Population Counts Using AVX2 Instructions" (Computer Journal 2018), summed
 * per 64-bit lane with vpsadbw, with masked loads of 4 words. Threshold scans of 1 to 4 words per
 * code for 8 or more queries at a time (16 at one word) count bit-sliced (see bs_scan); the others
 * compute distances of a small block of rows into a stack buffer and compare them 8 at a time.
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

/* ---- bit-sliced scans of 1 to 8 words per code ------------------------------------------ */

/* A query block of BS_MIN_QUERIES(words) or more scans codes of 1 to 8 words bit-sliced. Each
 * block of 256 rows is first copied as 64 x words "planes", vectors whose lane l holds, at bit v,
 * one bit of row 64 l + v (plane 64 w + b: bit b of word w), with the bit count R of each row,
 * itself bit-sliced: the whole query block shares that copy. A query of o one bits sums, in a
 * vertical counter (the carry-save adders of Harley and Seal, about five logic operations per
 * plane, 256 rows at once), the planes S of its one bits, or of its zero bits where those are
 * fewer: the distance is then o + R - 2 S (or o - R + 2 S), so a query sums at most half the
 * planes and XORs none, and compares that with its threshold bit-sliced too: one test per 256
 * rows when no row is below it. Two queries are summed side by side (two independent chains of
 * dependent operations). A hit's distance is counted again from its row with POPCNT.
 *
 * Measured on the 2-core Zen 5 with the kernels held to AVX2 (1M codes, 1,000 queries, k = 100,
 * 1 and 2 threads, `drsch bench hamming --isa avx2`, alternately, medians of 5): against the
 * per-row scan below, 64 bits 1.6x, 128 bits 2.4-2.5x, 192 and 256 bits 2.0x. The copy costs
 * about as much as scanning it for 8 to 16 queries (the per-row scan is cheapest at 64 bits),
 * hence the smallest blocks it takes. */
#define BS_ROWS 256
#define BS_MIN_QUERIES(words) ((words) == 1 ? 16 : 8)
/* bytes of a tile's copy made at a time: room for a whole k-NN tile (32 KiB of codes) of every
 * length with its rows' counts and zero planes (17 blocks of 64-bit codes, 4 of 256-bit, 2 of
 * 512-bit), so a query's plan is made once per tile: with 32 KiB, 1 thread, 512 bits took 1.23x,
 * 256 bits 1.14x as long (medians of 3, alternately) */
#define BS_CHUNK_BYTES 45056u

/* Swaps the bits selected by m in b with those J places above them in a (one step of the
 * recursive 64 x 64 bit-matrix transpose, in each of the four lanes). */
#define BS_SWAP(a, b, J, m)                                                                        \
    do {                                                                                           \
        __m256i t_ = _mm256_and_si256(_mm256_xor_si256(_mm256_srli_epi64(a, J), b), m);            \
        (b) = _mm256_xor_si256(b, t_);                                                             \
        (a) = _mm256_xor_si256(a, _mm256_slli_epi64(t_, J));                                       \
    } while (0)

#define BS_LEVEL(J, MASK)                                                                          \
    do {                                                                                           \
        const __m256i m_ = _mm256_set1_epi64x((long long)(MASK));                                  \
        for (int k_ = 0; k_ < 64; k_++)                                                            \
            if (!(k_ & (J)))                                                                       \
                BS_SWAP(a[k_], a[k_ + (J)], J, m_);                                                \
    } while (0)

/* In each lane: a[v] bit b becomes a[b] bit v. */
AI void bs_transpose64(__m256i *a)
{
    BS_LEVEL(32, 0x00000000ffffffffull);
    BS_LEVEL(16, 0x0000ffff0000ffffull);
    BS_LEVEL(8, 0x00ff00ff00ff00ffull);
    BS_LEVEL(4, 0x0f0f0f0f0f0f0f0full);
    BS_LEVEL(2, 0x3333333333333333ull);
    BS_LEVEL(1, 0x5555555555555555ull);
}

/* The planes of rows [0, n) of db (n <= 256, W words each) into out[64 W]: lane l of plane 64 w + b
 * holds bit b of word w of row 64 l + v at bit v; rows from n on read as zero. */
AI void bs_copy_block(const uint64_t *db, size_t n, const int W, __m256i *out)
{
    for (int w = 0; w < W; w++) {
        __m256i a[64];
        for (int v = 0; v < 64; v++) {
            long long x[4];
            for (int l = 0; l < 4; l++) {
                size_t r = (size_t)(64 * l + v);
                x[l] = r < n ? (long long)db[r * (size_t)W + (size_t)w] : 0;
            }
            a[v] = _mm256_setr_epi64x(x[0], x[1], x[2], x[3]);
        }
        bs_transpose64(a);
        for (int b = 0; b < 64; b++)
            _mm256_store_si256(out + 64 * w + b, a[b]);
    }
}

/* carry-save adder: h, l = the two bits of a + b + c */
AI void bs_csa(__m256i *h, __m256i *l, __m256i a, __m256i b, __m256i c)
{
    const __m256i u = _mm256_xor_si256(a, b);
    *h = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
    *l = _mm256_xor_si256(u, c);
}

/* A vertical counter: ones + 2 twos + 4 fours + 8 h, h in NH bit-sliced bits. */
#define BS_HMAX 7 /* bits of the most eights a count holds, 8 x 8 words */
typedef struct {
    __m256i ones, twos, fours, h[BS_HMAX];
} bs_count;

AI void bs_count_zero(bs_count *c)
{
    c->ones = c->twos = c->fours = _mm256_setzero_si256();
    for (int i = 0; i < BS_HMAX; i++)
        c->h[i] = _mm256_setzero_si256();
}

/* Adds the 8 vectors D(0) .. D(7) to c (Harley-Seal: seven carry-save adders, then the eights
 * into h). */
#define BS_ADD8(c, D, NH)                                                                          \
    do {                                                                                           \
        __m256i twosA_, twosB_, foursA_, foursB_, carry_;                                          \
        bs_csa(&twosA_, &(c)->ones, (c)->ones, D(0), D(1));                                        \
        bs_csa(&twosB_, &(c)->ones, (c)->ones, D(2), D(3));                                        \
        bs_csa(&foursA_, &(c)->twos, (c)->twos, twosA_, twosB_);                                   \
        bs_csa(&twosA_, &(c)->ones, (c)->ones, D(4), D(5));                                        \
        bs_csa(&twosB_, &(c)->ones, (c)->ones, D(6), D(7));                                        \
        bs_csa(&foursB_, &(c)->twos, (c)->twos, twosA_, twosB_);                                   \
        bs_csa(&carry_, &(c)->fours, (c)->fours, foursA_, foursB_);                                \
        for (int i_ = 0; i_ < (NH); i_++) {                                                        \
            const __m256i t_ = _mm256_and_si256((c)->h[i_], carry_);                               \
            (c)->h[i_] = _mm256_xor_si256((c)->h[i_], carry_);                                     \
            carry_ = t_;                                                                           \
        }                                                                                          \
    } while (0)

/* c += the planes at byte offsets off[0] .. off[7] from p */
AI void bs_add8_at(bs_count *c, const __m256i *p, const uint16_t *off, const int NH)
{
#define BS_AT(i) _mm256_load_si256((const __m256i *)(const void *)((const char *)p + off[i]))
    BS_ADD8(c, BS_AT, NH);
#undef BS_AT
}

/* c += planes p[0] .. p[7] */
AI void bs_add8(bs_count *c, const __m256i *p, const int NH)
{
#define BS_AT(i) _mm256_load_si256(p + (i))
    BS_ADD8(c, BS_AT, NH);
#undef BS_AT
}

/* c's bits, least significant first, into out[0 .. 3 + NH) */
AI void bs_count_bits(const bs_count *c, const int NH, __m256i *out)
{
    out[0] = c->ones;
    out[1] = c->twos;
    out[2] = c->fours;
    for (int i = 0; i < NH; i++)
        out[3 + i] = c->h[i];
}

/* bits of x > 0 */
#define BS_BITS(x) (32 - __builtin_clz((unsigned)(x)))
/* bits of 8 W (the eights in a row's count of W-word codes), of 4 W (in half of it), and of the
 * largest value compared, 128 W + 1 */
#define BS_NHR(W) BS_BITS(8 * (W))
#define BS_NHS(W) BS_BITS(4 * (W))
#define BS_NB(W) BS_BITS(128 * (W) + 1)
#define BS_NBMAX 11

/* out[0 .. n) = x[0 .. nx) + c, bit-sliced (n bits hold the sum) */
AI void bs_add_const(const __m256i *x, const int nx, uint32_t c, __m256i *out, const int n)
{
    __m256i carry = _mm256_setzero_si256();
    for (int i = 0; i < n; i++) {
        const __m256i xi = i < nx ? x[i] : _mm256_setzero_si256();
        if (c >> i & 1) {
            out[i] = _mm256_xor_si256(_mm256_xor_si256(xi, carry), _mm256_set1_epi32(-1));
            carry = _mm256_or_si256(xi, carry);
        } else {
            out[i] = _mm256_xor_si256(xi, carry);
            carry = _mm256_and_si256(xi, carry);
        }
    }
}

/* x < y, bit-sliced numbers of n bits */
AI __m256i bs_less(const __m256i *x, const __m256i *y, const int n)
{
    __m256i lt = _mm256_setzero_si256(), eq = _mm256_set1_epi32(-1); /* <, == so far */
    for (int i = n - 1; i >= 0; i--) {
        lt = _mm256_or_si256(lt, _mm256_and_si256(eq, _mm256_andnot_si256(x[i], y[i])));
        eq = _mm256_andnot_si256(_mm256_xor_si256(x[i], y[i]), eq);
    }
    return lt;
}

_Static_assert((64 * 8 + 3 + BS_HMAX + 1) * sizeof(__m256i) <= UINT16_MAX,
               "a block's byte offsets fit bs_plan's");

/* What a query sums and compares (bs_plan_query). */
typedef struct {
    uint16_t off[64 * 8 + 8]; /* the byte offsets of the planes it sums in a block (bs_scan pads
                               * them with the zero plane's to a multiple of 8) */
    size_t len;               /* how many (before the padding) */
    int flip;                 /* 1: the planes of its zero bits */
    uint32_t c_r, c_s;        /* the constants added to R and to 2 S */
} bs_plan;

/* A query of o one bits and threshold T: with R a row's bit count and S the sum of the row's
 * planes where the query's bit is one, the distance is o + R - 2 S; with S the sum where it is
 * zero (flip: fewer of those), o - R + 2 S. So distance < T compares R + c_r with 2 S + c_s
 * (flip: 2 S + c_s with R + c_r), where K = o - T goes to one side or the other as it is positive
 * or negative; no vector adds anything but the constants. */
AI void bs_plan_query(const uint64_t *q, const int W, uint32_t T, bs_plan *pl)
{
    if (T > 64u * (uint32_t)W + 1) /* as far above every distance, and the sums fit BS_NB bits */
        T = 64u * (uint32_t)W + 1;
    uint32_t o = 0;
    for (int w = 0; w < W; w++)
        o += (uint32_t)__builtin_popcountll(q[w]);
    pl->flip = o > 32u * (uint32_t)W;
    size_t len = 0;
    for (int w = 0; w < W; w++) {
        uint64_t bits = pl->flip ? ~q[w] : q[w];
        while (bits) {
            pl->off[len++] = (uint16_t)((64 * w + __builtin_ctzll(bits)) * sizeof(__m256i));
            bits &= bits - 1;
        }
    }
    pl->len = len;
    int64_t k = (int64_t)o - (int64_t)T;
    uint32_t pos = k > 0 ? (uint32_t)k : 0, neg = k < 0 ? (uint32_t)-k : 0;
    pl->c_r = pl->flip ? neg : pos;
    pl->c_s = pl->flip ? pos : neg;
}

/* The rows of the block (row bit counts r, NHR bits of eights) whose distance is below the
 * threshold, from a query's sum c. */
AI __m256i bs_decide(const bs_count *c, const __m256i *r, const bs_plan *pl, const int W)
{
    const int nb = BS_NB(W), ns = 3 + BS_NHS(W);
    __m256i s2[BS_NBMAX], x[BS_NBMAX], y[BS_NBMAX];
    s2[0] = _mm256_setzero_si256(); /* 2 S */
    bs_count_bits(c, BS_NHS(W), s2 + 1);
    bs_add_const(r, 3 + BS_NHR(W), pl->c_r, x, nb);
    bs_add_const(s2, ns + 1, pl->c_s, y, nb);
    return pl->flip ? bs_less(y, x, nb) : bs_less(x, y, nb);
}

/* Appends the rows of set lt (a block's rows [0, n), the block's first at index base) to l in
 * index order, each with its distance. */
AI void bs_append(hm_cand_list *l, __m256i lt, const uint64_t *q, const uint64_t *db, size_t n,
                  const int W, int64_t base)
{
    _Alignas(32) uint64_t hits[4];
    _mm256_store_si256((__m256i *)hits, lt);
    for (size_t lane = 0; lane < 4; lane++) {
        size_t r0 = 64 * lane;
        if (r0 >= n)
            break;
        uint64_t h = hits[lane];
        if (n - r0 < 64)
            h &= (1ull << (n - r0)) - 1;
        while (h) {
            size_t r = r0 + (size_t)__builtin_ctzll(h);
            h &= h - 1;
            hm_cand_push(l, base + (int64_t)r, popcnt_row(q, db + r * (size_t)W, (size_t)W));
        }
    }
}

AI void bs_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, const int W,
                int64_t base, hm_cand_list *lists)
{
    /* a block: its 64 W planes, its rows' bit counts (3 + NHR bits), a zero plane */
    _Alignas(32) __m256i buf[BS_CHUNK_BYTES / sizeof(__m256i)];
    const size_t nr = 3 + BS_NHR(W), per_block = 64 * (size_t)W + nr + 1;
    const size_t blocks = sizeof buf / sizeof buf[0] / per_block, chunk = blocks * BS_ROWS;
    const size_t zero_at = per_block - 1;
    const uint16_t zero = (uint16_t)(zero_at * sizeof(__m256i));
    bs_plan pl[2];
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t m = n - i0 < chunk ? n - i0 : chunk, nb = (m + BS_ROWS - 1) / BS_ROWS;
        const uint64_t *rows = db + i0 * (size_t)W;
        for (size_t k = 0; k < nb; k++) {
            size_t r = m - k * BS_ROWS < BS_ROWS ? m - k * BS_ROWS : BS_ROWS;
            __m256i *p = buf + k * per_block;
            bs_copy_block(rows + k * BS_ROWS * (size_t)W, r, W, p);
            bs_count c;
            bs_count_zero(&c);
            for (int g = 0; g < 8 * W; g++)
                bs_add8(&c, p + 8 * g, BS_NHR(W));
            bs_count_bits(&c, BS_NHR(W), p + 64 * W);
            p[zero_at] = _mm256_setzero_si256();
        }
        for (size_t j = 0; j < nq; j += 2) {
            /* two queries at a time (two independent chains of dependent operations, the planes
             * loaded once); an odd block's last query pairs with itself, threshold 0 */
            const size_t j1 = j + 1 < nq ? j + 1 : j;
            const uint64_t *q0 = q + j * (size_t)W, *q1 = q + j1 * (size_t)W;
            bs_plan_query(q0, W, lists[j].thr, &pl[0]);
            bs_plan_query(q1, W, j1 != j ? lists[j1].thr : 0, &pl[1]);
            /* both sum as many planes: the shorter list padded with the zero plane */
            size_t len = pl[0].len > pl[1].len ? pl[0].len : pl[1].len;
            len = (len + 7) & ~(size_t)7;
            for (int i = 0; i < 2; i++)
                for (size_t t = pl[i].len; t < len; t++)
                    pl[i].off[t] = zero;
            for (size_t k = 0; k < nb; k++) {
                const __m256i *p = buf + k * per_block;
                bs_count c0, c1;
                bs_count_zero(&c0);
                bs_count_zero(&c1);
                for (size_t g = 0; g < len; g += 8) {
                    bs_add8_at(&c0, p, pl[0].off + g, BS_NHS(W));
                    bs_add8_at(&c1, p, pl[1].off + g, BS_NHS(W));
                }
                const __m256i lt0 = bs_decide(&c0, p + 64 * W, &pl[0], W),
                              lt1 = bs_decide(&c1, p + 64 * W, &pl[1], W);
                if (__builtin_expect(
                        !_mm256_testz_si256(_mm256_or_si256(lt0, lt1), _mm256_set1_epi32(-1)), 0)) {
                    size_t r = m - k * BS_ROWS < BS_ROWS ? m - k * BS_ROWS : BS_ROWS;
                    const uint64_t *rk = rows + k * BS_ROWS * (size_t)W;
                    int64_t bk = base + (int64_t)(i0 + k * BS_ROWS);
                    bs_append(&lists[j], lt0, q0, rk, r, W, bk);
                    if (j1 != j)
                        bs_append(&lists[j1], lt1, q1, rk, r, W, bk);
                }
            }
        }
    }
}

static void avx2_scan_any(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                          int64_t base, hm_cand_list *lists)
{
    if (nq >= BS_MIN_QUERIES(words))
        switch (words) {
        case 1: bs_scan(q, nq, db, n, 1, base, lists); return;
        case 2: bs_scan(q, nq, db, n, 2, base, lists); return;
        case 3: bs_scan(q, nq, db, n, 3, base, lists); return;
        case 4: bs_scan(q, nq, db, n, 4, base, lists); return;
        case 5: bs_scan(q, nq, db, n, 5, base, lists); return;
        case 6: bs_scan(q, nq, db, n, 6, base, lists); return;
        case 7: bs_scan(q, nq, db, n, 7, base, lists); return;
        case 8: bs_scan(q, nq, db, n, 8, base, lists); return;
        default: break;
        }
    avx2_scan(q, nq, db, n, words, base, lists);
}

const hm_kernels hm_kernels_avx2 = {
    .isa = HM_ISA_AVX2,
    .distances = avx2_distances,
    .weighted_distances = hm_avx2_weighted_distances,
    .scan = avx2_scan_any,
    .scan_weighted = hm_avx2_scan_weighted,
    .wscan_copy_word_bytes = 16,
};
