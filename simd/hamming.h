/* drsch simd/: packed binary codes, Hamming and weighted-Hamming distance kernels with runtime
 * ISA dispatch (scalar reference, AVX2, AVX-512 VPOPCNTDQ, NEON), and exact top-k ranking.
 *
 * Code layout (INTERNALS.md): bit i of a code lives in byte i/8 at bit position i%8 (LSB first).
 * In memory a code is a row of `words` little-endian uint64 (bit i in word i/64, bit i%64), rows
 * contiguous, unused bits zero, the buffer 64-byte aligned and padded to a multiple of 64 bytes
 * so vector loads never run past it. On disk (.npy) a code is ceil(bits/8) bytes.
 *
 * This module depends on nothing but libc (OpenMP optional) so it cross-compiles for aarch64.
 * It never prints, never exits: every fallible call returns a drsch_status and fills a message.
 */
#ifndef DRSCH_HAMMING_H
#define DRSCH_HAMMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HM_MAX_BITS 4096

typedef enum {
    HM_ISA_SCALAR = 0,
    HM_ISA_AVX2,
    HM_ISA_AVX512, /* AVX-512 F + BW + VBMI + VPOPCNTDQ */
    HM_ISA_NEON,
    HM_ISA_COUNT
} hm_isa;

/* ---- ISA detection and dispatch ---------------------------------------------------------- */
DRSCH_API const char *hm_isa_name(hm_isa isa); /* "scalar", "avx2", "avx512", "neon" */
DRSCH_API drsch_status hm_isa_parse(const char *name, hm_isa *out, drsch_error *err);
DRSCH_API bool hm_isa_compiled(hm_isa isa);  /* kernel built into this binary */
DRSCH_API bool hm_isa_supported(hm_isa isa); /* compiled, and CPU + OS support it */
DRSCH_API hm_isa hm_isa_best(void);          /* best supported ISA */
/* The active ISA: chosen once, on first use, as DRSCH_FORCE_ISA if set (an unsupported or
 * unknown value there is reported by hm_isa_init) else hm_isa_best(). */
DRSCH_API drsch_status hm_isa_init(drsch_error *err);
DRSCH_API hm_isa hm_isa_active(void);
DRSCH_API drsch_status hm_isa_set(hm_isa isa,
                                  drsch_error *err); /* override (--isa); refuses unsupported */

/* ---- packed codes ------------------------------------------------------------------------ */
typedef struct {
    size_t n;       /* number of codes */
    uint32_t bits;  /* code length, 1..HM_MAX_BITS */
    size_t words;   /* uint64 words per row = ceil(bits/64) */
    uint64_t *data; /* n x words, 64-byte aligned, padded; owned */
    /* When data points into a private mapping of a file (npy_load_codes without a copy), the
     * mapping, which hm_codes_free unmaps; NULL when data was allocated. */
    void *mapping;
    size_t mapping_len;
} hm_codes;

static inline size_t hm_words_for_bits(uint32_t bits) { return ((size_t)bits + 63) / 64; }
static inline size_t hm_bytes_for_bits(uint32_t bits) { return ((size_t)bits + 7) / 8; }

DRSCH_API drsch_status hm_codes_alloc(hm_codes *c, size_t n, uint32_t bits,
                                      drsch_error *err); /* zeroed */
DRSCH_API void hm_codes_free(hm_codes *c);

/* Buffers of 256 KiB or more backed by transparent huge pages where the kernel offers them, for
 * memory a process touches once, such as the results of hm_knn (drsch search keeps its results in
 * them). The first touch of each 4 KiB page is a page fault; on the virtual machine measured (a
 * Zen 5 VM) one cost about 9 us, so touching a fresh 1.2 MB buffer took 2.75 ms, and the same
 * buffer on a huge page (one 2 MiB fault) 0.08 ms. Not for memory allocated again call after
 * call: each mapping zeroes fresh huge pages (hm_knn's own candidate lists measured 3.6% slower
 * in repeated searches on them than on malloc's).
 * hm_buffer_alloc(bytes): 64-byte aligned memory, or NULL. From 256 KiB up an anonymous mapping,
 * 2 MiB aligned, rounded up to whole 2 MiB and advised MADV_HUGEPAGE; below, malloc. Not
 * zeroed. Release it with hm_buffer_free (NULL is ignored), never with free. */
DRSCH_API void *hm_buffer_alloc(size_t bytes);
DRSCH_API void hm_buffer_free(void *p);
/* bytes: n x row_bytes, the on-disk layout; keeps the first `bits` bits of each row (prefix
 * truncation), bits <= 8 * row_bytes. */
DRSCH_API drsch_status hm_codes_from_bytes(hm_codes *c, const uint8_t *bytes, size_t n,
                                           size_t row_bytes, uint32_t bits, drsch_error *err);
/* out: n x ceil(bits/8) bytes. */
DRSCH_API void hm_codes_to_bytes(const hm_codes *c, uint8_t *out);
static inline const uint64_t *hm_code_row(const hm_codes *c, size_t i)
{
    return c->data + i * c->words;
}
static inline int hm_code_bit(const hm_codes *c, size_t i, uint32_t b)
{
    return (int)((hm_code_row(c, i)[b / 64] >> (b % 64)) & 1u);
}

/* ---- distances --------------------------------------------------------------------------- */
/* out[j] = popcount(q XOR db_j) for j < db->n; q: one row of db->words words. Active ISA. */
DRSCH_API void hm_distances(const uint64_t *q, const hm_codes *db, uint32_t *out);

/* Weighted Hamming: d(q, x) = sum of w_i over bits i where q and x differ.
 * hm_weights_create quantises the weights once to w_i = q_i * step, with integers q_i and the
 * smallest power-of-two step (>= 2^-149) such that sum_i |w_i| / step <= 2^24 - bits, which
 * leaves sum_i |q_i| <= 2^24. Every distance and every partial sum is then an integer multiple
 * of step below 2^24 steps, exactly a float: distances are exact sums of the quantised weights,
 * in any order, so every ISA gives identical results and distances that are equal in exact
 * arithmetic are equal floats (equal weights rank exactly as plain Hamming; ties by index).
 * Each quantised weight is within step/2 of the original, so a distance is within
 * bits * step / 2 of the raw sum; a weight below step/2 (tiny next to the sum of all weights,
 * about 2^-25 of it) quantises to 0. hm_weighted_distance_ref over hm_weights_values gives
 * exactly the kernels' results. The weights are then compiled into per-nibble tables. */
typedef struct hm_weights hm_weights;
/* The rule above in one sentence, for reports that cannot give each step. */
#define HM_WEIGHTS_QUANTISATION                                                                    \
    "weights are quantised to multiples of a power-of-two step (the smallest with sum |w| / "      \
    "step <= 2^24 - bits), so distances are exact sums and equal distances tie exactly"
/* w: bits floats, finite (NaN/Inf refused), sum |w_i| <= FLT_MAX / 2. */
DRSCH_API drsch_status hm_weights_create(hm_weights **out, const float *w, uint32_t bits,
                                         drsch_error *err);
DRSCH_API void hm_weights_free(hm_weights *w);
/* The quantisation step 2^e (1 when every weight is 0). */
DRSCH_API double hm_weights_step(const hm_weights *w);
/* The quantised weights q_i * step: bits floats, owned by w. */
DRSCH_API const float *hm_weights_values(const hm_weights *w);
DRSCH_API void hm_weighted_distances(const uint64_t *q, const hm_codes *db, const hm_weights *w,
                                     float *out);
/* Bit-by-bit double-precision sum of w over the differing bits (a reference). */
DRSCH_API double hm_weighted_distance_ref(const uint64_t *a, const uint64_t *b, const float *w,
                                          uint32_t bits);

/* ---- exact top-k ------------------------------------------------------------------------- */
/* For each query i: the k database codes nearest to it, ordered by (distance, database index).
 * indices: nq x k int64; distances: nq x k (int32 for plain, float for weighted).
 * Requires 1 <= k <= db->n and equal code lengths. Uses OpenMP threads (omp_get_max_threads)
 * over query blocks, and over database shards when there are few queries. With 16 queries or
 * more (and k above about 25) each query's threshold starts from a search of a copy of a sample
 * of the database (about 8 n / (5 k) rows); a query whose sample misled it is searched again, so
 * results do not depend on it. */
DRSCH_API drsch_status hm_knn(const hm_codes *db, const hm_codes *queries, size_t k,
                              int64_t *indices, int32_t *distances, drsch_error *err);
DRSCH_API drsch_status hm_knn_weighted(const hm_codes *db, const hm_codes *queries, size_t k,
                                       const hm_weights *w, int64_t *indices, float *distances,
                                       drsch_error *err);

/* The exact top-k of a database searched in parts (e.g. one part per process, drsch search under
 * mpirun): for each of nq queries, nlists lists, list l holding lens[l] entries per query ordered
 * by (distance, database index) with global database indices, distinct across lists. List l of
 * query i is indices[l] + i * lens[l] (distances[l] likewise). Writes the first k of their union
 * in (distance, index) order to out_idx / out_dist (nq x k): when each part's list is hm_knn's
 * (or hm_knn_weighted's) top min(k, part size) of that part, its indices offset by the part's
 * first row, this is exactly hm_knn's result on the whole database, ties included. Requires
 * k >= 1 and sum of lens >= k; a list found out of order is refused (DRSCH_ERR_ARG). */
DRSCH_API drsch_status hm_knn_merge(size_t nq, size_t k, size_t nlists, const size_t *lens,
                                    const int64_t *const *indices, const int32_t *const *distances,
                                    int64_t *out_idx, int32_t *out_dist, drsch_error *err);
DRSCH_API drsch_status hm_knn_merge_weighted(size_t nq, size_t k, size_t nlists, const size_t *lens,
                                             const int64_t *const *indices,
                                             const float *const *distances, int64_t *out_idx,
                                             float *out_dist, drsch_error *err);

/* How many times hm_knn / hm_knn_weighted would read the whole database for nq queries with
 * this k at the current thread count (one pass per block of queries that share each database
 * tile from cache); benchmarks use it to model memory traffic. */
DRSCH_API size_t hm_knn_db_passes(const hm_codes *db, size_t nq, size_t k, bool weighted);

#ifdef __cplusplus
}
#endif

#endif
