/* simd/ internals shared by the kernel files, dispatch, codes and top-k: the per-ISA kernel
 * table, the candidate lists the threshold scans append to, and the weight tables.
 *
 * Not a public header: nothing outside simd/ and its tests includes it. It declares no ISA
 * intrinsics, so every file (including dispatch.c, built without ISA flags) can include it.
 */
#ifndef DRSCH_SIMD_INTERNAL_H
#define DRSCH_SIMD_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "hamming.h"

/* Weighted Hamming tables. The canonical value of a weighted distance is
 *     acc = 0.0f; for p = 0 .. 16*words-1: acc += tables[p*16 + nibble_p(q XOR x)]   (float)
 * where nibble_p is bits 4p..4p+3 of the code. Nibbles past `bits` are zero in every valid code
 * and tables[p*16 + 0] == 0.0f, so they add exactly nothing. The weights are quantised to
 * w_i = q_i * step (step = 2^e, integers q_i with sum |q_i| <= HM_WEIGHT_UNITS = 2^24), so
 * every table entry and every partial sum is an integer multiple of step of magnitude at most
 * 2^24 step: exactly a float. Sums are therefore exact in any order (every ISA agrees bit for
 * bit, and equal real distances are equal floats); the kernels still sum in the one order. */
#define HM_WEIGHT_UNITS 16777216.0
struct hm_weights {
    uint32_t bits;
    size_t words;
    double step;   /* the quantisation step 2^e */
    float *tables; /* (16 * words) x 16 floats, 64-byte aligned: sum of w over the set bits of v */
    float *w;      /* bits floats, the quantised weights q_i * step */
    /* bits + 1 doubles: lb[h] is the sum of the h smallest weights, a lower bound of the weighted
     * distance of any two codes h bits apart (exact: the weights are quantised); NULL when a
     * weight is negative (the sums are then not increasing in h) */
    double *lb;
};

/* The Hamming distance from which no row can have a weighted distance below wthr under w:
 * the smallest h with lb[h] >= wthr (hm_cand_list.hcut); 0 (no bound) when w has no lb, wthr is
 * not finite, or no h qualifies. */
static inline uint32_t hm_weights_hcut(const hm_weights *w, float wthr)
{
    if (!w->lb || !(wthr < INFINITY) || w->lb[w->bits] < (double)wthr)
        return 0;
    uint32_t lo = 0, hi = w->bits; /* lb[hi] >= wthr */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w->lb[mid] >= (double)wthr)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* What a weighted scan kernel derived from a list's wthr, kept from call to call so that it is
 * derived again only when wthr (or the kernel's constants) changed. Kernels' own; all zero: none.
 */
typedef struct {
    uint32_t key;     /* the bits of the wthr it was made for, plus 1; 0: none */
    int32_t kind;     /* kernel-defined */
    int32_t step;     /* kernel-defined */
    uint32_t level;   /* kernel-defined */
    double unit;      /* kernel-defined */
    double consts[4]; /* the kernel's constants it was made with */
} hm_wplan;

/* Candidate list of one query during a threshold scan. Entries are appended in database index
 * order, so among equal distances the earlier entry has the smaller index. A scan appends row
 * (base + i) when its distance is strictly below thr (resp. wthr): once k candidates with
 * distance <= thr are held, an equal distance at a later index can never enter the top k. */
typedef struct {
    int64_t *idx;
    uint32_t *dist; /* plain Hamming scans */
    float *wdist;   /* weighted scans */
    size_t count;
    uint32_t thr; /* plain: append iff d < thr */
    float wthr;   /* weighted: append iff d < wthr */
    /* weighted: rows at Hamming distance >= hcut from the query cannot have d < wthr, and a scan
     * may skip them without computing d (hm_weights_hcut; set by the caller from the weights the
     * query's tables hold); 0: no bound */
    uint32_t hcut;
    hm_wplan wplan; /* weighted: the kernel's plan for wthr (zero it when starting a list) */
} hm_cand_list;

/* Appends a candidate (database index, distance) to a list; the caller checked the threshold
 * and the list's capacity. */
static inline void hm_cand_push(hm_cand_list *l, int64_t idx, uint32_t d)
{
    l->idx[l->count] = idx;
    l->dist[l->count] = d;
    l->count++;
}

static inline void hm_cand_push_w(hm_cand_list *l, int64_t idx, float d)
{
    l->idx[l->count] = idx;
    l->wdist[l->count] = d;
    l->count++;
}

/* One const table per ISA; every function is single-threaded, allocation-free and pure apart
 * from writing its outputs. Shapes:
 *   q:      one code (words uint64) or nq codes (nq x words, contiguous)
 *   db:     n codes, n x words uint64, rows contiguous (no alignment required)
 *   tables: hm_weights.tables layout, (16*words) x 16 floats; for scans nq of them, each
 *           tstride floats apart
 * Scans append to lists[j] for query j; the caller guarantees room for n more entries.
 * scan_weighted may use `scratch`: hm_wscan_scratch_bytes(n, words) bytes, any alignment; next
 * (or NULL) is a hint: the next_n rows the caller scans next, which a kernel may prefetch. */
typedef struct {
    hm_isa isa;
    void (*distances)(const uint64_t *q, const uint64_t *db, size_t n, size_t words, uint32_t *out);
    void (*weighted_distances)(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                               const float *tables, float *out);
    void (*scan)(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                 int64_t base, hm_cand_list *lists);
    void (*scan_weighted)(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                          const float *tables, size_t tstride, int64_t base, hm_cand_list *lists,
                          void *scratch, const uint64_t *next, size_t next_n);
    /* bytes of scan_weighted's copy of a tile per row and code word (the k-NN driver sizes
     * weighted tiles so the copy fills L1): 16 for a nibble-transposed copy, 11 for 6-bit groups */
    size_t wscan_copy_word_bytes;
} hm_kernels;

/* Scratch of a weighted scan of n rows, enough for either filter. AVX2: a nibble-transposed copy
 * of the rows (64-row chunks, 2 x 64 bytes per code byte, two 64-byte accumulators per chunk),
 * one query's quantised tables broadcast to 32 bytes each, the 16-bit filter's base tables and
 * per-nibble minima. AVX-512: a copy of the rows in 6-bit groups (64-row chunks, 11 x 64 bytes
 * per word, four 64-byte accumulators and two 8-byte row masks per chunk), fine 32-bit group
 * tables, the 16-bit and up to four 8-bit group tables (704 bytes each per word). Both: the
 * filters' candidates (3n + 4 rows and as many query numbers, uint32), alignment. */
static inline size_t hm_wscan_scratch_bytes(size_t n, size_t words)
{
    return (n + 63) / 64 * (1024 * words + 128) + 8192 * words + 24 * n + 160;
}

/* Top-k (knn.c) starts each query's threshold from a sample of the database shard it scans:
 * hm_knn_guess_rows is the sample's size for a shard of `rows` rows and top kk (0: no sample), and
 * sample row i is row hm_knn_guess_row(rows, n, i) of the shard; calls with fewer than 16 queries
 * take no sample. */
size_t hm_knn_guess_rows(size_t rows, size_t kk);
size_t hm_knn_guess_row(size_t rows, size_t n, size_t i);

/* The kernel table of an ISA, or NULL when it is not compiled into this binary. It does not
 * check that the CPU supports it (hm_isa_supported does): tests use this to run every ISA. */
const hm_kernels *hm_kernels_for(hm_isa isa);
/* The active ISA's table (hm_isa_init on first use; falls back to the best ISA if the
 * DRSCH_FORCE_ISA value is refused, the error being reported by hm_isa_init). */
const hm_kernels *hm_active_kernels(void);
/* Whether the CPU is Intel's (CPUID vendor "GenuineIntel"; false off x86). Its cores run
 * AVX-512 byte permutes (vpermb) on one port, where AMD's Zen 5 runs two: knn.c sizes weighted
 * tiles by it. */
bool hm_cpu_intel(void);

extern const hm_kernels hm_kernels_scalar;
#if defined(DRSCH_SIMD_HAVE_AVX2)
extern const hm_kernels hm_kernels_avx2;
#endif
#if defined(DRSCH_SIMD_HAVE_AVX512)
extern const hm_kernels hm_kernels_avx512;
#endif
#if defined(DRSCH_SIMD_HAVE_NEON)
extern const hm_kernels hm_kernels_neon;
#endif

/* Scalar canonical weighted distance of one row (shared by the SIMD files for tails and for
 * candidates that pass a filter). */
static inline float hm_weighted_row_canonical(const uint64_t *q, const uint64_t *x, size_t words,
                                              const float *tables)
{
    float acc = 0.0f;
    for (size_t wi = 0; wi < words; wi++) {
        uint64_t d = q[wi] ^ x[wi];
        const float *t = tables + wi * 256;
        for (int p = 0; p < 16; p++)
            acc += t[p * 16 + (int)((d >> (4 * p)) & 15u)];
    }
    return acc;
}

#endif
