/* AVX2 kernels (compiled with -mavx2 -mpopcnt, selected only when CPUID and XCR0 report AVX2
 * with the YMM state enabled).
 *
 * Plain Hamming: rows of 2 to AVX2_POPCNT_MAX_WORDS words by the scalar POPCNT instruction
 * (for short rows it beats the vector count: no horizontal sum, no masked loads); longer rows
 * and one-word rows (four per vector) by the vpshufb nibble lookup of W. Muła, N. Kurz,
 * D. Lemire, "Faster Population Counts Using AVX2 Instructions" (Computer Journal 2018), summed
 * per 64-bit lane with vpsadbw, with masked loads of 4 words. Threshold scans of 1 to 4 words per
 * code and 4 or more queries count bit-sliced (see bs_scan); the others compute distances of a
 * small block of rows into a stack buffer and compare them 8 at a time.
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

/* ---- bit-sliced scans of 1 to 4 words per code ------------------------------------------ */

/* A query block of BS_MIN_QUERIES or more scans codes of 1 to 4 words bit-sliced: each block of
 * 256 rows is first copied as 64 x words "planes", vectors whose lane l holds, at bit v, one bit of
 * row 64 l + v (plane 64 w + b: bit b of word w), and the whole query block shares that copy.
 * A query XORs each plane with its own bit (a vector of all ones or all zeros) and counts the
 * differing bits of all 256 rows at once in a vertical counter (the carry-save adder tree of
 * Harley and Seal: about five logic operations per plane), then compares the 256 counts with
 * its threshold, also bit-sliced: one test per 256 rows when none is below it. The distance of
 * a hit is counted again from its row with POPCNT. Per row and query, about 1.6 vector
 * operations per code word, against 2.5-3 for the nibble lookup and 4 or more for POPCNT; the
 * copy costs about six per row and word, shared by the block's queries. */
#define BS_ROWS 256
#define BS_MIN_QUERIES 4
/* bytes of planes copied at a time (a 4096-row tile of 64-bit codes) */
#define BS_CHUNK_BYTES 32768u

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

/* A vertical counter: ones + 2 twos + 4 fours + 8 eights + 16 h, h in NH bit-sliced bits. */
typedef struct {
    __m256i ones, twos, fours, eights, h[5];
} bs_count;

AI void bs_count_zero(bs_count *c)
{
    c->ones = c->twos = c->fours = c->eights = _mm256_setzero_si256();
    for (int i = 0; i < 5; i++)
        c->h[i] = _mm256_setzero_si256();
}

/* Adds the 16 planes p XOR-ed with the query's masks m to c. */
AI void bs_count_16(bs_count *c, const __m256i *p, const __m256i *m, const int NH)
{
#define BS_D(i) _mm256_xor_si256(_mm256_load_si256(p + (i)), _mm256_load_si256(m + (i)))
    __m256i twosA, twosB, foursA, foursB, eightsA, eightsB, sixteens;
    bs_csa(&twosA, &c->ones, c->ones, BS_D(0), BS_D(1));
    bs_csa(&twosB, &c->ones, c->ones, BS_D(2), BS_D(3));
    bs_csa(&foursA, &c->twos, c->twos, twosA, twosB);
    bs_csa(&twosA, &c->ones, c->ones, BS_D(4), BS_D(5));
    bs_csa(&twosB, &c->ones, c->ones, BS_D(6), BS_D(7));
    bs_csa(&foursB, &c->twos, c->twos, twosA, twosB);
    bs_csa(&eightsA, &c->fours, c->fours, foursA, foursB);
    bs_csa(&twosA, &c->ones, c->ones, BS_D(8), BS_D(9));
    bs_csa(&twosB, &c->ones, c->ones, BS_D(10), BS_D(11));
    bs_csa(&foursA, &c->twos, c->twos, twosA, twosB);
    bs_csa(&twosA, &c->ones, c->ones, BS_D(12), BS_D(13));
    bs_csa(&twosB, &c->ones, c->ones, BS_D(14), BS_D(15));
    bs_csa(&foursB, &c->twos, c->twos, twosA, twosB);
    bs_csa(&eightsB, &c->fours, c->fours, foursA, foursB);
    bs_csa(&sixteens, &c->eights, c->eights, eightsA, eightsB);
#undef BS_D
    __m256i carry = sixteens; /* h += sixteens */
    for (int i = 0; i < NH; i++) {
        const __m256i t = _mm256_and_si256(c->h[i], carry);
        c->h[i] = _mm256_xor_si256(c->h[i], carry);
        carry = t;
    }
}

/* The rows whose count in c is below T, as a 256-bit set laid out as the planes. */
AI __m256i bs_count_below(const bs_count *c, const int NH, uint32_t T)
{
    if (T >> (4 + NH))
        return _mm256_set1_epi32(-1); /* above every count */
    const __m256i bit[9] = {c->ones, c->twos, c->fours, c->eights, c->h[0],
                            c->h[1], c->h[2], c->h[3],  c->h[4]};
    __m256i lt = _mm256_setzero_si256(), eq = _mm256_set1_epi32(-1); /* <, == T so far */
    for (int b = 3 + NH; b >= 0; b--) {
        if (T >> b & 1) {
            lt = _mm256_or_si256(lt, _mm256_andnot_si256(bit[b], eq));
            eq = _mm256_and_si256(eq, bit[b]);
        } else
            eq = _mm256_andnot_si256(bit[b], eq);
    }
    return lt;
}

/* bits of 4 W, the most sixteens a count of W-word codes holds */
#define BS_NH(W) ((W) == 1 ? 3 : (W) <= 3 ? 4 : 5)

/* The rows of a block (planes p) below T0 for query masks m0 and below T1 for m1, counted side by
 * side (two independent chains of dependent operations, the planes loaded once). */
AI void bs_below2(const __m256i *p, const __m256i *m0, const __m256i *m1, const int W, uint32_t T0,
                  uint32_t T1, __m256i *lt0, __m256i *lt1)
{
    bs_count c0, c1;
    bs_count_zero(&c0);
    bs_count_zero(&c1);
    for (int g = 0; g < 4 * W; g++) {
        bs_count_16(&c0, p + 16 * g, m0 + 16 * g, BS_NH(W));
        bs_count_16(&c1, p + 16 * g, m1 + 16 * g, BS_NH(W));
    }
    *lt0 = bs_count_below(&c0, BS_NH(W), T0);
    *lt1 = bs_count_below(&c1, BS_NH(W), T1);
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

/* masks[64 w + b]: all ones where bit b of word w of the query is set, else zeros */
AI void bs_masks(const uint64_t *q, const int W, __m256i *masks)
{
    for (int w = 0; w < W; w++) {
        const __m256i qw = _mm256_set1_epi64x((long long)q[w]);
        for (int b = 0; b < 64; b++) /* bit b moved to the sign, compared below zero */
            masks[64 * w + b] = _mm256_cmpgt_epi64(
                _mm256_setzero_si256(), _mm256_sllv_epi64(qw, _mm256_set1_epi64x(63 - b)));
    }
}

AI void bs_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, const int W,
                int64_t base, hm_cand_list *lists)
{
    _Alignas(32) __m256i planes[BS_CHUNK_BYTES / sizeof(__m256i)];
    _Alignas(32) __m256i masks[2 * 64 * 4];
    const size_t per_block = 64 * (size_t)W, blocks = sizeof planes / sizeof planes[0] / per_block;
    const size_t chunk = blocks * BS_ROWS;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t m = n - i0 < chunk ? n - i0 : chunk, nb = (m + BS_ROWS - 1) / BS_ROWS;
        const uint64_t *rows = db + i0 * (size_t)W;
        for (size_t k = 0; k < nb; k++) {
            size_t r = m - k * BS_ROWS < BS_ROWS ? m - k * BS_ROWS : BS_ROWS;
            bs_copy_block(rows + k * BS_ROWS * (size_t)W, r, W, planes + k * per_block);
        }
        for (size_t j = 0; j < nq; j += 2) {
            /* two queries at a time; an odd block's last query pairs with itself */
            const size_t j1 = j + 1 < nq ? j + 1 : j;
            const uint64_t *q0 = q + j * (size_t)W, *q1 = q + j1 * (size_t)W;
            bs_masks(q0, W, masks);
            bs_masks(q1, W, masks + 64 * W);
            const uint32_t T0 = lists[j].thr, T1 = j1 != j ? lists[j1].thr : 0;
            for (size_t k = 0; k < nb; k++) {
                __m256i lt0, lt1;
                bs_below2(planes + k * per_block, masks, masks + 64 * W, W, T0, T1, &lt0, &lt1);
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
    if (nq >= BS_MIN_QUERIES)
        switch (words) {
        case 1: bs_scan(q, nq, db, n, 1, base, lists); return;
        case 2: bs_scan(q, nq, db, n, 2, base, lists); return;
        case 3: bs_scan(q, nq, db, n, 3, base, lists); return;
        case 4: bs_scan(q, nq, db, n, 4, base, lists); return;
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
