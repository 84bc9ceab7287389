/* AVX-512 weighted threshold scan of 64-bit codes with a class bound (F + BW + DQ + VPOPCNTDQ +
 * BITALG; hm_avx512_scan_weighted calls it when hm_wclass_usable()).
 *
 * The bound. Sort the 64 bit positions by weight and cut them into four classes of 16. A row
 * whose XOR with the query has h_c bits in class c is at weighted distance at least
 * sum_c h_c m_c, m_c the lightest weight of class c. Each tile of rows is permuted once
 * (vpshufbitqmb, one instruction per row) so that class c is bits 16c..16c+15; then vpopcntw
 * gives the four counts of 8 rows at once, and one vpmullq by
 *     beta_3 | beta_2 << 16 | beta_1 << 32 | beta_0 << 48,   beta_c = floor(m_c / u) <= 511,
 * u a power of two, leaves sum_c h_c beta_c in the top 16 bits: the products of a count with
 * another class's beta land below bit 48 (at most 3 x 16 x 511 < 2^16 per 16-bit field, so
 * nothing carries into the top field) or above bit 63. A row is a candidate when that sum is
 * below ceil((threshold + err) / u), err bounding the rounding of the canonical float sum; a
 * subtraction of that limit (shifted to the top field) leaves the sign bit set exactly then.
 *
 * Per row and query that is XOR, vpopcntw, vpmullq, subtract, OR: plain ranking's scan has XOR,
 * vpopcntq, subtract, OR. With the learned 64-bit weights of a drsch-mnist model the bound lets
 * through 0.075% of random rows at the threshold of the 100 nearest of 1M (the sum of the h
 * lightest weights, a bound on the Hamming distance alone: 0.19%). Candidates are weighed exactly
 * by hm_avx512_wverify, so the scan appends exactly the rows the scalar scan appends.
 *
 * The bound holds for a table that is a sum of non-negative bit weights (hm_weights_create's:
 * entry v of nibble p at least the sum of the entries of v's single bits, every entry >= 0);
 * any other table is left to the fast-scan filters (the function returns 0).
 */
#include <immintrin.h>

#include <math.h>
#include <string.h>

#include "hamming_avx512_internal.h"
#include "simd_internal.h"

#define WC_BETA_MAX 511
#define WC_MAGIC 0x6472736368776331ull /* "drschwc1" */

/* The bound of one table, kept in the scan's scratch from call to call: a tile's calls share the
 * table, and sorting its weights costs about as much as scanning a short tile. Trusted only when
 * the check over everything after it matches (the scratch may hold anything). */
typedef struct {
    uint64_t magic, check;
    float table[256]; /* the table it was made from */
    uint8_t perm[64]; /* permuted bit p is bit perm[p] of the code (vpshufbitqmb control) */
    uint64_t mul;     /* the betas, class 0's in the top field */
    double unit, err; /* u; bound on |canonical float sum - real sum| */
    int usable;       /* 0: not a sum of non-negative bit weights, or every class weight is 0 */
} wclass;

static uint64_t wclass_check(const wclass *c)
{
    const unsigned char *p = (const unsigned char *)&c->table;
    const unsigned char *end = (const unsigned char *)(c + 1);
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; p < end; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

static void wclass_make(wclass *c, const float *t)
{
    memset(c, 0, sizeof *c);
    memcpy(c->table, t, sizeof c->table);
    float w[64];
    double S = 0.0;
    for (int p = 0; p < 16; p++) {
        const float *tp = t + 16 * p;
        float most = 0.0f;
        for (int v = 0; v < 16; v++) {
            double bits_sum = 0.0; /* exact: at most 4 floats in double */
            for (int b = 0; b < 4; b++)
                if (v >> b & 1)
                    bits_sum += (double)tp[1 << b];
            if (!((double)tp[v] >= bits_sum) || !(tp[v] >= 0.0f))
                goto seal; /* also refuses NaN */
            most = tp[v] > most ? tp[v] : most;
        }
        for (int b = 0; b < 4; b++)
            w[4 * p + b] = tp[1 << b];
        S += (double)most;
    }
    uint8_t o[64];
    for (int i = 0; i < 64; i++) {
        int j = i;
        while (j > 0 && w[o[j - 1]] > w[i]) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = (uint8_t)i;
    }
    double m3 = (double)w[o[48]]; /* the largest class minimum */
    if (!(m3 > 0.0))
        goto seal;
    int e;
    (void)frexp(m3 / WC_BETA_MAX, &e); /* m3 / 511 < 2^e, so beta_3 < 511 */
    c->unit = ldexp(1.0, e);
    for (int k = 0; k < 4; k++) {
        uint64_t beta = (uint64_t)floor((double)w[o[16 * k]] / c->unit); /* exact: u = 2^e */
        c->mul |= beta << (16 * (3 - k));
    }
    memcpy(c->perm, o, sizeof o);
    /* sequential float summation of 16 terms (Higham, eq. 4.4), doubled as the fast scans do */
    c->err = 2.0 * 16.0 * 5.97e-8 * S;
    c->usable = 1;
seal:
    c->magic = WC_MAGIC;
    c->check = wclass_check(c);
}

/* The bound of table t, from the scratch when it already holds it. */
static const wclass *wclass_get(void *scratch, const float *t)
{
    wclass *c = (wclass *)scratch;
    if (c->magic != WC_MAGIC || memcmp(c->table, t, sizeof c->table) != 0 ||
        c->check != wclass_check(c))
        wclass_make(c, t);
    return c;
}

/* The 64-bit code x with its bits in class order. */
static inline __attribute__((always_inline)) uint64_t permute_code(uint64_t x, __m512i ctl)
{
    return _cvtmask64_u64(_mm512_bitshuffle_epi64_mask(_mm512_set1_epi64((long long)x), ctl));
}

/* Rows i..i+7 (rem of them real) against QG = 8 queries: the (row, query) pairs whose bound is
 * below the query's limit become candidates, in row order per query. */
static void wclass_scan_group(const uint64_t *pr, size_t n, const __m512i *qv, const __m512i *lim,
                              __m512i mul, size_t j0, const uint64_t *q, const uint64_t *db,
                              const float *tables, int64_t base, hm_cand_list *lists,
                              hm_wcands *cs)
{
    for (size_t i = 0; i < n; i += 8) {
        size_t rem = n - i;
        __m512i x = load_part(pr + i, (ptrdiff_t)(rem < 8 ? rem : 8));
        __m512i r[8];
        for (int j = 0; j < 8; j++)
            r[j] = _mm512_sub_epi64(
                _mm512_mullo_epi64(_mm512_popcnt_epi16(_mm512_xor_si512(x, qv[j])), mul), lim[j]);
        __m512i any = _mm512_or_si512(_mm512_or_si512(_mm512_or_si512(r[0], r[1]),
                                                      _mm512_or_si512(r[2], r[3])),
                                      _mm512_or_si512(_mm512_or_si512(r[4], r[5]),
                                                      _mm512_or_si512(r[6], r[7])));
        if (__builtin_expect(_mm512_movepi64_mask(any) != 0, 0)) {
            unsigned valid = rem >= 8 ? 0xffu : (1u << rem) - 1u;
            uint64_t hits = 0;
            for (int j = 0; j < 8; j++)
                hits |= (uint64_t)(_mm512_movepi64_mask(r[j]) & valid) << (8 * j);
            while (hits) {
                int b = __builtin_ctzll(hits);
                hits &= hits - 1;
                if (cs->count == cs->cap)
                    hm_avx512_wverify(q, db, 1, tables, base, lists, cs);
                cs->row[cs->count] = (uint32_t)(i + (size_t)(b & 7));
                cs->qry[cs->count] = (uint32_t)(j0 + (size_t)(b >> 3));
                cs->count++;
            }
        }
    }
}

int hm_avx512_wclass_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                          const float *tables, int64_t base, hm_cand_list *lists, void *scratch)
{
    for (size_t j = 0; j < nq; j++)
        if (!isfinite(lists[j].wthr))
            return 0;
    uintptr_t at = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    const wclass *c = wclass_get((void *)at, tables);
    if (!c->usable)
        return 0;
    at = (at + sizeof(wclass) + 63) & ~(uintptr_t)63;
    uint64_t *pr = (uint64_t *)at;
    hm_wcands cs = {.row = (uint32_t *)(pr + ((n + 7) & ~(size_t)7)), .count = 0, .cap = 2 * n};
    cs.qry = cs.row + 2 * n;
    const __m512i ctl = _mm512_loadu_si512((const void *)c->perm);
    for (size_t i = 0; i < n; i++)
        pr[i] = permute_code(db[i], ctl);
    const __m512i mul = _mm512_set1_epi64((long long)c->mul);
    for (size_t j0 = 0; j0 < nq; j0 += 8) {
        __m512i qv[8], lim[8];
        for (size_t j = 0; j < 8; j++) {
            /* a missing query of a partial group has limit 0: no bound is below it */
            long long limit = 0;
            if (j0 + j < nq) {
                double t = ceil(((double)lists[j0 + j].wthr + c->err) / c->unit);
                limit = t < 1.0 ? 0 : t > 32767.0 ? 32767 : (long long)t;
            }
            qv[j] = _mm512_set1_epi64((long long)permute_code(q[j0 + j < nq ? j0 + j : j0], ctl));
            lim[j] = _mm512_set1_epi64(limit << 48);
        }
        wclass_scan_group(pr, n, qv, lim, mul, j0, q, db, tables, base, lists, &cs);
    }
    hm_avx512_wverify(q, db, 1, tables, base, lists, &cs);
    return 1;
}
