/* Plain-C checks of simd/: every ISA this machine supports against independent references
 * (bit-by-bit popcount, double-precision weighted sum, brute-force ranking), at every code
 * length 1..1024, every word and byte alignment, on all-zero, all-one and seeded random codes.
 * Integer results must match exactly; weighted ones exactly the double reference over the
 * quantised weights (hm_weights_values), within bits * step / 2 of it over the raw weights, and
 * bit-identical across ISAs. See simd_checks.h for how they are run.
 *
 * Not timed: speed is the benchmark's job (drsch bench hamming).
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, madvise, MADV_HUGEPAGE */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(DRSCH_HAVE_OPENMP)
#include <omp.h>
#endif

#include "hamming.h"
#include "keysort.h"
#include "simd_checks.h"
#include "simd_internal.h"

static void fail(simd_check_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(simd_check_report *r, const char *fmt, ...)
{
    if (r->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msg, sizeof r->msg, fmt, ap);
        va_end(ap);
    }
}

/* splitmix64 (Steele, Lea, Flood 2014): seeded, portable. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t tail_mask(uint32_t bits, size_t w) /* valid bits of word w of a code */
{
    size_t lo = w * 64;
    if (bits >= lo + 64)
        return ~0ull;
    return bits <= lo ? 0 : (1ull << (bits - lo)) - 1;
}

/* Row kind: 0 random, 1 all zero, 2 all one, 3 sparse random. */
static void fill_row(uint64_t *row, uint32_t bits, int kind, uint64_t *s)
{
    size_t words = hm_words_for_bits(bits);
    for (size_t w = 0; w < words; w++) {
        uint64_t v = kind == 0   ? rng_next(s)
                     : kind == 1 ? 0
                     : kind == 2 ? ~0ull
                                 : rng_next(s) & rng_next(s) & rng_next(s);
        row[w] = v & tail_mask(bits, w);
    }
}

static uint32_t ref_distance(const uint64_t *a, const uint64_t *b, uint32_t bits)
{
    uint32_t d = 0;
    for (uint32_t i = 0; i < bits; i++)
        d += (uint32_t)(((a[i / 64] ^ b[i / 64]) >> (i % 64)) & 1u);
    return d;
}

/* A quantised weighted distance against the double reference over the raw weights w: each
 * quantised weight is within step / 2 of its raw weight (plus the reference's own rounding). */
static bool quant_close(double got, const uint64_t *a, const uint64_t *b, const float *w,
                        const hm_weights *hw, uint32_t bits)
{
    double abs_sum = 0.0;
    for (uint32_t i = 0; i < bits; i++)
        abs_sum += fabs((double)w[i]);
    double tol = bits * hm_weights_step(hw) / 2 + 1e-12 * abs_sum;
    return fabs(got - hm_weighted_distance_ref(a, b, w, bits)) <= tol;
}

/* ISAs to test: all compiled in and supported here. */
static size_t test_isas(hm_isa *out)
{
    size_t n = 0;
    for (int i = 0; i < HM_ISA_COUNT; i++)
        if (hm_isa_supported((hm_isa)i))
            out[n++] = (hm_isa)i;
    return n;
}

static void random_weights(float *w, uint32_t bits, uint64_t *s, int kind)
{
    for (uint32_t i = 0; i < bits; i++) {
        double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
        w[i] = kind == 0   ? (float)(0.05 + 2.0 * u) /* positive, spread */
               : kind == 1 ? (float)(int)(1 + 3 * u) /* small integers: ties */
                           : (float)(u * u * 10.0);  /* skewed, some near zero */
    }
}

/* ---- ISA selection ----------------------------------------------------------------------- */

long simd_check_isa(simd_check_report *r)
{
    drsch_error err;
    hm_isa isa;
    for (int i = 0; i < HM_ISA_COUNT; i++) {
        if (hm_isa_parse(hm_isa_name((hm_isa)i), &isa, &err) != DRSCH_OK || isa != (hm_isa)i)
            fail(r, "hm_isa_parse(\"%s\") does not round-trip", hm_isa_name((hm_isa)i));
        if (hm_isa_supported((hm_isa)i) && !hm_isa_compiled((hm_isa)i))
            fail(r, "%s supported but not compiled", hm_isa_name((hm_isa)i));
    }
    err.msg[0] = 0;
    if (hm_isa_parse("sse9", &isa, &err) != DRSCH_ERR_ISA || !strstr(err.msg, "sse9"))
        fail(r, "unknown ISA name accepted or not named in the message: '%s'", err.msg);
    if (!hm_isa_supported(HM_ISA_SCALAR) || !hm_isa_supported(hm_isa_best()))
        fail(r, "scalar or best ISA not supported");
#if defined(__x86_64__) || defined(__i386__)
    hm_isa foreign = HM_ISA_NEON;
#else
    hm_isa foreign = HM_ISA_AVX512;
#endif
    hm_isa before = hm_isa_active();
    err.msg[0] = 0;
    if (hm_isa_set(foreign, &err) != DRSCH_ERR_ISA || !strstr(err.msg, hm_isa_name(foreign)))
        fail(r, "forcing %s on this machine was not refused with a message ('%s')",
             hm_isa_name(foreign), err.msg);
    if (hm_isa_active() != before)
        fail(r, "a refused hm_isa_set changed the active ISA");
    hm_isa ok[HM_ISA_COUNT];
    size_t nok = test_isas(ok);
    for (size_t i = 0; i < nok; i++) {
        if (hm_isa_set(ok[i], &err) != DRSCH_OK || hm_isa_active() != ok[i])
            fail(r, "hm_isa_set(%s) failed: %s", hm_isa_name(ok[i]), err.msg);
    }
    /* DRSCH_FORCE_ISA: an unsupported or unknown value is reported by hm_isa_init. */
    const char *old = getenv("DRSCH_FORCE_ISA");
    char *saved = old ? strdup(old) : NULL;
    setenv("DRSCH_FORCE_ISA", hm_isa_name(foreign), 1);
    err.msg[0] = 0;
    if (hm_isa_init(&err) != DRSCH_ERR_ISA || !strstr(err.msg, "DRSCH_FORCE_ISA"))
        fail(r, "DRSCH_FORCE_ISA=%s not refused by hm_isa_init ('%s')", hm_isa_name(foreign),
             err.msg);
    setenv("DRSCH_FORCE_ISA", "bogus", 1);
    if (hm_isa_init(&err) != DRSCH_ERR_ISA || !strstr(err.msg, "bogus"))
        fail(r, "DRSCH_FORCE_ISA=bogus not refused by hm_isa_init ('%s')", err.msg);
    setenv("DRSCH_FORCE_ISA", "scalar", 1);
    if (hm_isa_init(&err) != DRSCH_OK)
        fail(r, "DRSCH_FORCE_ISA=scalar refused: %s", err.msg);
    if (saved) {
        setenv("DRSCH_FORCE_ISA", saved, 1);
        free(saved);
    } else {
        unsetenv("DRSCH_FORCE_ISA");
    }
    hm_isa_set(before, &err);
    return r->failures;
}

/* ---- distance kernels -------------------------------------------------------------------- */

#define DB_ROWS 37 /* odd: exercises every kernel's row tail */

typedef struct {
    uint64_t *q, *db;   /* 8 words of slack in front for alignment offsets */
    uint64_t *qa, *dba; /* the offset copies */
    uint32_t *dist;
    float *wd, *wd_scalar;
} dist_bufs;

static bool bufs_alloc(dist_bufs *b, size_t max_words)
{
    b->q = calloc(max_words + 8, 8);
    b->qa = calloc(max_words + 16, 8);
    b->db = calloc(DB_ROWS * max_words + 8, 8);
    b->dba = calloc(DB_ROWS * max_words + 16, 8);
    b->dist = calloc(DB_ROWS, sizeof *b->dist);
    b->wd = calloc(DB_ROWS, sizeof *b->wd);
    b->wd_scalar = calloc(DB_ROWS, sizeof *b->wd_scalar);
    return b->q && b->qa && b->db && b->dba && b->dist && b->wd && b->wd_scalar;
}

static void bufs_free(dist_bufs *b)
{
    free(b->q);
    free(b->qa);
    free(b->db);
    free(b->dba);
    free(b->dist);
    free(b->wd);
    free(b->wd_scalar);
}

/* Codes of `bits`: query of kind qkind; rows cycle through all kinds. */
static void make_codes(dist_bufs *b, uint32_t bits, int qkind, uint64_t *s)
{
    size_t words = hm_words_for_bits(bits);
    fill_row(b->q, bits, qkind, s);
    for (size_t i = 0; i < DB_ROWS; i++)
        fill_row(b->db + i * words, bits, (int)(i % 4 == 3 ? 0 : i % 4), s);
}

long simd_check_distances(simd_check_report *r)
{
    hm_isa isas[HM_ISA_COUNT];
    size_t nisa = test_isas(isas);
    dist_bufs b;
    if (!bufs_alloc(&b, 16)) {
        fail(r, "out of memory");
        bufs_free(&b);
        return r->failures;
    }
    uint64_t seed = 1;
    for (uint32_t bits = 1; bits <= 1024; bits++) {
        size_t words = hm_words_for_bits(bits);
        for (int qkind = 0; qkind < 3; qkind++) {
            make_codes(&b, bits, qkind, &seed);
            uint32_t want[DB_ROWS];
            for (size_t i = 0; i < DB_ROWS; i++)
                want[i] = ref_distance(b.q, b.db + i * words, bits);
            for (size_t off = 0; off < 8; off++) {
                /* every word offset of query and database (vector loads may not assume more) */
                uint64_t *q = b.qa + off, *db = b.dba + (7 - off);
                memcpy(q, b.q, words * 8);
                memcpy(db, b.db, DB_ROWS * words * 8);
                for (size_t ii = 0; ii < nisa; ii++) {
                    const hm_kernels *k = hm_kernels_for(isas[ii]);
                    memset(b.dist, 0xff, DB_ROWS * sizeof *b.dist);
                    k->distances(q, db, DB_ROWS, words, b.dist);
                    for (size_t i = 0; i < DB_ROWS; i++)
                        if (b.dist[i] != want[i])
                            fail(r, "%s distances: bits %u offset %zu row %zu: got %u want %u",
                                 hm_isa_name(isas[ii]), bits, off, i, b.dist[i], want[i]);
                    /* fewer rows than a vector step, from a shifted row */
                    size_t n = 1 + (bits + off) % 19;
                    k->distances(q, db + words, n, words, b.dist);
                    for (size_t i = 0; i < n; i++)
                        if (b.dist[i] != want[i + 1])
                            fail(r, "%s distances: bits %u, %zu rows from row 1: row %zu wrong",
                                 hm_isa_name(isas[ii]), bits, n, i);
                }
            }
        }
    }
    bufs_free(&b);
    return r->failures;
}

long simd_check_weighted(simd_check_report *r)
{
    hm_isa isas[HM_ISA_COUNT];
    size_t nisa = test_isas(isas);
    dist_bufs b;
    float *w = malloc(1024 * sizeof *w);
    if (!bufs_alloc(&b, 16) || !w) {
        fail(r, "out of memory");
        bufs_free(&b);
        free(w);
        return r->failures;
    }
    uint64_t seed = 2;
    drsch_error err;
    for (uint32_t bits = 1; bits <= 1024; bits++) {
        size_t words = hm_words_for_bits(bits);
        random_weights(w, bits, &seed, (int)(bits % 3));
        hm_weights *hw;
        if (hm_weights_create(&hw, w, bits, &err) != DRSCH_OK) {
            fail(r, "hm_weights_create(%u bits): %s", bits, err.msg);
            continue;
        }
        for (int qkind = 0; qkind < 3; qkind++) {
            make_codes(&b, bits, qkind, &seed);
            hm_kernels_scalar.weighted_distances(b.q, b.db, DB_ROWS, words, hw->tables,
                                                 b.wd_scalar);
            for (size_t i = 0; i < DB_ROWS; i++) {
                const uint64_t *x = b.db + i * words;
                double want = hm_weighted_distance_ref(b.q, x, hm_weights_values(hw), bits);
                if ((double)b.wd_scalar[i] != want)
                    fail(r, "scalar weighted: bits %u row %zu: got %.9g want %.9g", bits, i,
                         (double)b.wd_scalar[i], want);
                if (!quant_close(b.wd_scalar[i], b.q, x, w, hw, bits))
                    fail(r,
                         "scalar weighted: bits %u row %zu: %.9g not within bits * step / 2 "
                         "of the raw reference %.9g",
                         bits, i, (double)b.wd_scalar[i],
                         hm_weighted_distance_ref(b.q, x, w, bits));
            }
            size_t offs = bits % 4 == 0 ? 8 : 2; /* all word offsets on a quarter of lengths */
            for (size_t off = 0; off < offs; off++) {
                uint64_t *q = b.qa + off, *db = b.dba + (7 - off);
                memcpy(q, b.q, words * 8);
                memcpy(db, b.db, DB_ROWS * words * 8);
                for (size_t ii = 0; ii < nisa; ii++) {
                    const hm_kernels *k = hm_kernels_for(isas[ii]);
                    k->weighted_distances(q, db, DB_ROWS, words, hw->tables, b.wd);
                    for (size_t i = 0; i < DB_ROWS; i++)
                        if (memcmp(&b.wd[i], &b.wd_scalar[i], sizeof(float)) != 0 &&
                            b.wd[i] != b.wd_scalar[i])
                            fail(r,
                                 "%s weighted: bits %u offset %zu row %zu: %.9g differs "
                                 "from scalar %.9g (must be identical)",
                                 hm_isa_name(isas[ii]), bits, off, i, (double)b.wd[i],
                                 (double)b.wd_scalar[i]);
                }
            }
        }
        hm_weights_free(hw);
    }
    /* the public entry point uses the active ISA and the same tables */
    {
        uint32_t bits = 200;
        size_t words = hm_words_for_bits(bits);
        random_weights(w, bits, &seed, 0);
        hm_weights *hw;
        hm_codes db;
        if (hm_weights_create(&hw, w, bits, &err) == DRSCH_OK &&
            hm_codes_alloc(&db, DB_ROWS, bits, &err) == DRSCH_OK) {
            make_codes(&b, bits, 0, &seed);
            memcpy(db.data, b.db, DB_ROWS * words * 8);
            hm_weighted_distances(b.q, &db, hw, b.wd);
            for (size_t i = 0; i < DB_ROWS; i++)
                if ((double)b.wd[i] !=
                    hm_weighted_distance_ref(b.q, b.db + i * words, hm_weights_values(hw), bits))
                    fail(r, "hm_weighted_distances row %zu wrong", i);
            hm_codes_free(&db);
            hm_weights_free(hw);
        } else {
            fail(r, "setup for hm_weighted_distances: %s", err.msg);
        }
    }
    bufs_free(&b);
    free(w);
    return r->failures;
}

/* Threshold scans: exactly the rows below each query's threshold, in index order. */
long simd_check_scans(simd_check_report *r)
{
    enum { NQ = 11, N = 300 };
    hm_isa isas[HM_ISA_COUNT];
    size_t nisa = test_isas(isas);
    uint64_t seed = 3;
    static const uint32_t lengths[] = {1,   3,   17,  63,  64,  65,  100, 127, 128,  129, 192,
                                       255, 256, 257, 320, 511, 512, 513, 700, 1024, 4096};
    size_t maxw = 64;
    uint64_t *q = malloc(NQ * maxw * 8), *db = malloc(N * maxw * 8);
    int64_t *idx = malloc(NQ * N * sizeof *idx);
    uint32_t *dist = malloc(NQ * N * sizeof *dist);
    float *wdist = malloc(NQ * N * sizeof *wdist), *w = malloc(4096 * sizeof *w);
    uint32_t *want = malloc(N * sizeof *want);
    void *wscratch = malloc(hm_wscan_scratch_bytes(N, maxw));
    float *wwant = malloc(N * sizeof *wwant);
    if (!q || !db || !idx || !dist || !wdist || !w || !want || !wwant || !wscratch) {
        fail(r, "out of memory");
        goto done;
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        size_t words = hm_words_for_bits(bits);
        for (size_t j = 0; j < NQ; j++)
            fill_row(q + j * words, bits, (int)(j % 4), &seed);
        for (size_t i = 0; i < N; i++)
            fill_row(db + i * words, bits, i % 29 == 0 ? 1 : i % 31 == 0 ? 2 : 0, &seed);
        random_weights(w, bits, &seed, 1);
        hm_weights *hw;
        drsch_error err;
        if (hm_weights_create(&hw, w, bits, &err) != DRSCH_OK) {
            fail(r, "weights: %s", err.msg);
            continue;
        }
        for (size_t ii = 0; ii < nisa; ii++) {
            const hm_kernels *k = hm_kernels_for(isas[ii]);
            hm_cand_list lists[NQ];
            for (size_t j = 0; j < NQ; j++) {
                lists[j] = (hm_cand_list){
                    .idx = idx + j * N, .dist = dist + j * N, .wdist = wdist + j * N, .count = 0};
                lists[j].thr = (uint32_t)(j == 0   ? 0
                                          : j == 1 ? bits + 1
                                                   : rng_next(&seed) % (bits + 2));
                lists[j].wthr = j == 1 ? INFINITY : (float)(rng_next(&seed) % (bits + 2));
            }
            /* base offset and n not a multiple of any vector step; 9 or 10 chunks of 32 rows
             * (AVX2's weighted filter takes chunks two at a time, an odd last one alone) */
            size_t n = N - (size_t)(bits % 37);
            k->scan(q, NQ, db, n, words, 1000, lists);
            for (size_t j = 0; j < NQ; j++) {
                size_t c = 0;
                for (size_t i = 0; i < n; i++) {
                    uint32_t d = ref_distance(q + j * words, db + i * words, bits);
                    if (d < lists[j].thr)
                        want[c++] = (uint32_t)i;
                }
                bool ok = c == lists[j].count;
                for (size_t t = 0; ok && t < c; t++)
                    ok =
                        lists[j].idx[t] == 1000 + (int64_t)want[t] &&
                        lists[j].dist[t] == ref_distance(q + j * words, db + want[t] * words, bits);
                if (!ok)
                    fail(r, "%s scan: bits %u query %zu thr %u: %zu candidates, want %zu",
                         hm_isa_name(isas[ii]), bits, j, lists[j].thr, lists[j].count, c);
            }
            for (size_t j = 0; j < NQ; j++)
                lists[j].count = 0;
            k->scan_weighted(q, NQ, db, n, words, hw->tables, 0, 7, lists, wscratch, db,
                             n); /* hint */
            for (size_t j = 0; j < NQ; j++) {
                size_t c = 0;
                for (size_t i = 0; i < n; i++) {
                    float d =
                        hm_weighted_row_canonical(q + j * words, db + i * words, words, hw->tables);
                    if (d < lists[j].wthr) {
                        want[c] = (uint32_t)i;
                        wwant[c++] = d;
                    }
                }
                bool ok = c == lists[j].count;
                for (size_t t = 0; ok && t < c; t++)
                    ok = lists[j].idx[t] == 7 + (int64_t)want[t] && lists[j].wdist[t] == wwant[t];
                if (!ok)
                    fail(r, "%s weighted scan: bits %u query %zu thr %g: %zu candidates, want %zu",
                         hm_isa_name(isas[ii]), bits, j, (double)lists[j].wthr, lists[j].count, c);
            }
        }
        hm_weights_free(hw);
    }
done:
    free(q);
    free(db);
    free(idx);
    free(dist);
    free(wdist);
    free(w);
    free(want);
    free(wwant);
    free(wscratch);
    return r->failures;
}

/* Plain threshold scans over many rows against the scalar kernel, for query blocks on both sides
 * of the sizes where the AVX2 kernels switch from the per-row scan to the bit-sliced one (8
 * queries, 16 for 64-bit codes; codes of up to 512 bits; 256-row blocks copied 3584 rows of 64-bit
 * codes, 256 of 512-bit, at a time), odd
 * and even (queries summed in pairs), ending in a partial block; thresholds a little below the
 * distances' median, so most blocks have hits, and 0 and bits + 1 (every row), with rows and
 * queries of all zeros and all ones among the random ones (distance 0 or bits). */
long simd_check_scans_long(simd_check_report *r)
{
    enum { NQ = 17, N = 9000 };
    static const size_t blocks[] = {1, 2, 3, 7, 8, 9, 15, 16, 17};
    hm_isa isas[HM_ISA_COUNT];
    size_t nisa = test_isas(isas);
    uint64_t seed = 17;
    static const uint32_t lengths[] = {1, 33, 64, 100, 128, 150, 192, 200, 256, 320, 448, 500, 512};
    uint64_t *q = malloc(NQ * 8 * 8), *db = malloc((size_t)N * 8 * 8);
    int64_t *idx = malloc(2 * NQ * (size_t)N * sizeof *idx);
    uint32_t *dist = malloc(2 * NQ * (size_t)N * sizeof *dist);
    if (!q || !db || !idx || !dist) {
        fail(r, "out of memory");
        goto done;
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        size_t words = hm_words_for_bits(bits);
        for (size_t j = 0; j < NQ; j++)
            fill_row(q + j * words, bits, j == 3 ? 1 : j == 5 ? 2 : 0, &seed);
        /* query 1 (threshold bits + 1: every row) has every other bit set, so a query sums half
         * of a whole code's planes, all of them ones in the all-ones rows: the largest sum */
        for (size_t w = 0; w < words; w++)
            q[words + w] = 0x5555555555555555ull & tail_mask(bits, w);
        for (size_t i = 0; i < N; i++)
            fill_row(db + i * words, bits, i % 97 == 0 ? 1 : i % 89 == 0 ? 2 : 0, &seed);
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            size_t nq = blocks[bi];
            /* n: two 4096-row copies and a partial block; base: not a multiple of anything */
            size_t n = N - (nq * 37 + bits) % 300;
            hm_cand_list want[NQ], got[NQ];
            uint32_t thr[NQ];
            for (size_t j = 0; j < nq; j++)
                thr[j] = j == 0 && nq > 1 ? 0
                         : j == 1         ? bits + 1
                                          : bits / 2 - bits / 8 + (uint32_t)(rng_next(&seed) % 3);
            for (size_t ii = 0; ii < nisa; ii++) {
                if (isas[ii] == HM_ISA_SCALAR)
                    continue;
                for (size_t j = 0; j < nq; j++) {
                    want[j] =
                        (hm_cand_list){.idx = idx + j * N, .dist = dist + j * N, .thr = thr[j]};
                    got[j] = (hm_cand_list){
                        .idx = idx + (NQ + j) * N, .dist = dist + (NQ + j) * N, .thr = thr[j]};
                }
                hm_kernels_scalar.scan(q, nq, db, n, words, 123457, want);
                hm_kernels_for(isas[ii])->scan(q, nq, db, n, words, 123457, got);
                for (size_t j = 0; j < nq; j++) {
                    bool ok = want[j].count == got[j].count;
                    for (size_t t = 0; ok && t < want[j].count; t++)
                        ok = want[j].idx[t] == got[j].idx[t] && want[j].dist[t] == got[j].dist[t];
                    if (!ok)
                        fail(r,
                             "%s scan of %zu rows: bits %u, %zu queries, query %zu thr %u: %zu "
                             "candidates, want %zu (or other rows)",
                             hm_isa_name(isas[ii]), n, bits, nq, j, thr[j], got[j].count,
                             want[j].count);
                }
            }
        }
    }
done:
    free(q);
    free(db);
    free(idx);
    free(dist);
    return r->failures;
}

/* Weights built to defeat lower-bound filters: kind 0 one huge weight among tiny ones, 1 all
 * equal, 2 all zero, 3 mixed signs, 4 mostly zero with a few large ones and one negative,
 * 5 magnitudes spread over 12 decades, 6 all negative, 7 one heavy 6-bit group (bits 0..5) of
 * total just under 64 among weights of 1: the AVX-512 16-bit filter's unit (a 64th of the
 * heaviest group) then fits each weight of 1 almost exactly, so its bounds lose almost nothing
 * and a bound a few units too tight fails at long codes. */
#define ADVERSARIAL_KINDS 8
static void adversarial_weights(float *w, uint32_t bits, int kind, uint64_t *s)
{
    uint32_t big = (uint32_t)(rng_next(s) % bits);
    for (uint32_t i = 0; i < bits; i++) {
        double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
        w[i] = kind == 0   ? (i == big ? 1e6f : (float)(1e-4 * u))
               : kind == 1 ? 0.75f
               : kind == 2 ? 0.0f
               : kind == 3 ? (float)(4.0 * u - 2.0)
               : kind == 4 ? (i % 7 == 3 ? (float)(50.0 + 10.0 * u)
                              : i == big ? -30.0f
                                         : 0.0f)
               : kind == 5 ? (float)pow(10.0, -12.0 * u)
               : kind == 6 ? (float)(-0.5 - u)
                           : (i < 6 ? 10.665f : 1.0f);
    }
}

static int float_cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Weighted threshold scans (the AVX-512 and AVX2 lower-bound filters) with adversarial weights and
 * thresholds placed exactly on, and one float step either side of, distances that occur; and
 * with a different table per query (tstride > 0) against the scalar scan. */
long simd_check_weighted_bounds(simd_check_report *r)
{
    enum { NQ = 6, N = 701 };
    hm_isa isas[HM_ISA_COUNT];
    size_t nisa = test_isas(isas);
    uint64_t seed = 7;
    static const uint32_t lengths[] = {64, 100, 128, 256, 512, 1000, 1024};
    size_t maxw = 16;
    uint64_t *q = malloc(NQ * maxw * 8), *db = malloc(N * maxw * 8);
    int64_t *idx = malloc(NQ * N * sizeof *idx);
    float *wdist = malloc(NQ * N * sizeof *wdist), *w = malloc(1024 * sizeof *w);
    float *ref = malloc(NQ * N * sizeof *ref), *sorted = malloc(N * sizeof *sorted);
    void *wscratch = malloc(hm_wscan_scratch_bytes(N, maxw));
    if (!q || !db || !idx || !wdist || !w || !ref || !sorted || !wscratch) {
        fail(r, "out of memory");
        goto done;
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        size_t words = hm_words_for_bits(bits);
        for (size_t j = 0; j < NQ; j++)
            fill_row(q + j * words, bits, j == NQ - 1 ? 3 : 0, &seed);
        /* random rows, copies of query 0 with 0..40 bits flipped (distances near zero) and its
         * complements with 0..40 bits flipped (near the most negative distance when the weights
         * are negative, where the filters' bounds of such rows are tight) */
        for (size_t i = 0; i < N; i++) {
            uint64_t *row = db + i * words;
            if (i % 3 == 0 || i % 5 == 1) {
                memcpy(row, q, words * 8);
                if (i % 3 != 0) {
                    for (size_t w = 0; w < words; w++)
                        row[w] = ~row[w];
                    if (bits % 64)
                        row[words - 1] &= (1ull << (bits % 64)) - 1u;
                }
                for (size_t f = 0; f < i % 41; f++) {
                    uint32_t b = (uint32_t)(rng_next(&seed) % bits);
                    row[b / 64] ^= 1ull << (b % 64);
                }
            } else {
                fill_row(row, bits, i % 50 == 1 ? 1 : i % 50 == 2 ? 2 : 0, &seed);
            }
        }
        for (int kind = 0; kind < ADVERSARIAL_KINDS; kind++) {
            adversarial_weights(w, bits, kind, &seed);
            hm_weights *hw;
            drsch_error err;
            if (hm_weights_create(&hw, w, bits, &err) != DRSCH_OK) {
                fail(r, "weights (%u bits, kind %d): %s", bits, kind, err.msg);
                continue;
            }
            for (size_t j = 0; j < NQ; j++)
                hm_kernels_scalar.weighted_distances(q + j * words, db, N, words, hw->tables,
                                                     ref + j * N);
            /* ranks to place thresholds at, each exactly, one step below and one above */
            static const size_t ranks[] = {0, 1, 5, 30, 100, 350, 700};
            for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
                for (int step = -1; step <= 1; step++) {
                    float thr[NQ];
                    for (size_t j = 0; j < NQ; j++) {
                        memcpy(sorted, ref + j * N, N * sizeof *sorted);
                        qsort(sorted, N, sizeof *sorted, float_cmp);
                        float t = sorted[ranks[ri]];
                        thr[j] = step < 0   ? nextafterf(t, -INFINITY)
                                 : step > 0 ? nextafterf(t, INFINITY)
                                            : t;
                    }
                    /* each ISA: all queries in one call (the fast-scan filters) without and
                     * with the Hamming bound of the weights (hcut), then one query per call
                     * (the direct scans) with the bound */
                    for (size_t ii = 0; ii < 3 * nisa; ii++) {
                        const hm_kernels *k = hm_kernels_for(isas[ii / 3]);
                        int mode = (int)(ii % 3);
                        hm_cand_list lists[NQ];
                        for (size_t j = 0; j < NQ; j++)
                            lists[j] =
                                (hm_cand_list){.idx = idx + j * N,
                                               .wdist = wdist + j * N,
                                               .count = 0,
                                               .wthr = thr[j],
                                               .hcut = mode ? hm_weights_hcut(hw, thr[j]) : 0};
                        if (mode < 2)
                            k->scan_weighted(q, NQ, db, N, words, hw->tables, 0, 0, lists, wscratch,
                                             NULL, 0);
                        else
                            for (size_t j = 0; j < NQ; j++)
                                k->scan_weighted(q + j * words, 1, db, N, words, hw->tables, 0, 0,
                                                 &lists[j], wscratch, NULL, 0);
                        for (size_t j = 0; j < NQ; j++) {
                            size_t c = 0;
                            bool ok = true;
                            for (size_t i = 0; i < N && ok; i++) {
                                if (!(ref[j * N + i] < thr[j]))
                                    continue;
                                ok =
                                    c < lists[j].count && lists[j].idx[c] == (int64_t)i &&
                                    memcmp(&lists[j].wdist[c], &ref[j * N + i], sizeof(float)) == 0;
                                c++;
                            }
                            if (!ok || c != lists[j].count)
                                fail(r,
                                     "%s weighted scan%s, adversarial weights kind %d: bits %u "
                                     "query %zu thr %.9g (rank %zu, step %d): %zu candidates, "
                                     "want %zu",
                                     hm_isa_name(isas[ii / 3]),
                                     mode == 0   ? ""
                                     : mode == 1 ? " with the Hamming bound"
                                                 : " one query per call, with the Hamming bound",
                                     kind, bits, j, (double)thr[j], ranks[ri], step, lists[j].count,
                                     c);
                        }
                    }
                }
            }
            hm_weights_free(hw);
        }
        /* one table per query (tstride > 0): odd queries get other weights than even ones */
        hm_weights *ha = NULL, *hb = NULL;
        drsch_error err;
        float *tabs = malloc(NQ * 256 * words * sizeof *tabs);
        adversarial_weights(w, bits, 3, &seed);
        bool made = tabs && hm_weights_create(&ha, w, bits, &err) == DRSCH_OK;
        adversarial_weights(w, bits, 0, &seed);
        made = made && hm_weights_create(&hb, w, bits, &err) == DRSCH_OK;
        if (!made) {
            fail(r, "per-query tables (%u bits): setup failed", bits);
        } else {
            float thr[NQ];
            for (size_t j = 0; j < NQ; j++) {
                float *tj = tabs + j * 256 * words;
                memcpy(tj, (j % 2 ? hb : ha)->tables, 256 * words * sizeof *tabs);
                hm_kernels_scalar.weighted_distances(q + j * words, db, N, words, tj, sorted);
                qsort(sorted, N, sizeof *sorted, float_cmp);
                thr[j] = sorted[30 + j];
            }
            int64_t *ridx = malloc(NQ * N * sizeof *ridx);
            hm_cand_list want[NQ], got[NQ];
            for (size_t j = 0; ridx && j < NQ; j++)
                want[j] = (hm_cand_list){.idx = ridx + j * N, .wdist = ref + j * N, .wthr = thr[j]};
            if (ridx)
                hm_kernels_scalar.scan_weighted(q, NQ, db, N, words, tabs, 256 * words, 5, want,
                                                wscratch, NULL, 0);
            for (size_t ii = 0; ridx && ii < nisa; ii++) {
                for (size_t j = 0; j < NQ; j++)
                    got[j] =
                        (hm_cand_list){.idx = idx + j * N, .wdist = wdist + j * N, .wthr = thr[j]};
                hm_kernels_for(isas[ii])->scan_weighted(q, NQ, db, N, words, tabs, 256 * words, 5,
                                                        got, wscratch, NULL, 0);
                for (size_t j = 0; j < NQ; j++)
                    if (got[j].count != want[j].count ||
                        memcmp(got[j].idx, want[j].idx, want[j].count * sizeof *idx) ||
                        memcmp(got[j].wdist, want[j].wdist, want[j].count * sizeof *wdist))
                        fail(r,
                             "%s weighted scan with per-query tables: bits %u query %zu: %zu "
                             "candidates, want %zu",
                             hm_isa_name(isas[ii]), bits, j, got[j].count, want[j].count);
            }
            free(ridx);
        }
        hm_weights_free(ha);
        hm_weights_free(hb);
        free(tabs);
    }
done:
    free(q);
    free(db);
    free(idx);
    free(wdist);
    free(w);
    free(ref);
    free(sorted);
    free(wscratch);
    return r->failures;
}

/* ---- codes ------------------------------------------------------------------------------- */

long simd_check_codes_from_bytes(simd_check_report *r)
{
    enum { N = 5, MAXROW = 40 };
    uint8_t *buf = malloc(64 + N * MAXROW), *back = malloc(N * MAXROW);
    uint64_t seed = 4;
    drsch_error err;
    if (!buf || !back) {
        fail(r, "out of memory");
        goto done;
    }
    for (size_t row_bytes = 1; row_bytes <= MAXROW; row_bytes += (row_bytes < 10 ? 1 : 13)) {
        for (size_t off = 0; off < 64; off++) {
            uint8_t *src = buf + off;
            for (size_t i = 0; i < N * row_bytes; i++)
                src[i] = (uint8_t)(off & 1 ? rng_next(&seed) : 0xff);
            /* full rows, and prefix truncations down to 1 bit */
            uint32_t cases[] = {(uint32_t)(8 * row_bytes), (uint32_t)(8 * row_bytes - 1),
                                (uint32_t)(1 + off % (8 * row_bytes)), 1};
            for (size_t ci = 0; ci < 4; ci++) {
                uint32_t bits = cases[ci];
                hm_codes c;
                if (hm_codes_from_bytes(&c, src, N, row_bytes, bits, &err) != DRSCH_OK) {
                    fail(r, "hm_codes_from_bytes(row %zu bytes, %u bits): %s", row_bytes, bits,
                         err.msg);
                    continue;
                }
                if (((uintptr_t)c.data & 63) != 0 || c.words != hm_words_for_bits(bits))
                    fail(r, "codes not 64-byte aligned or wrong word count");
                for (size_t i = 0; i < N; i++) {
                    for (uint32_t bit = 0; bit < c.words * 64; bit++) {
                        int want = bit < bits ? (src[i * row_bytes + bit / 8] >> (bit % 8)) & 1 : 0;
                        if (hm_code_bit(&c, i, bit) != want) {
                            fail(r,
                                 "from_bytes offset %zu row_bytes %zu bits %u: row %zu bit %u "
                                 "is %d, want %d%s",
                                 off, row_bytes, bits, i, bit, hm_code_bit(&c, i, bit), want,
                                 bit >= bits ? " (tail must be zero)" : "");
                            break;
                        }
                    }
                }
                size_t nb = hm_bytes_for_bits(bits);
                hm_codes_to_bytes(&c, back);
                for (size_t i = 0; i < N; i++)
                    for (size_t bb = 0; bb < nb; bb++) {
                        uint8_t m =
                            bb + 1 == nb && bits % 8 ? (uint8_t)((1u << (bits % 8)) - 1) : 0xff;
                        if (back[i * nb + bb] != (src[i * row_bytes + bb] & m))
                            fail(r, "to_bytes(%u bits) row %zu byte %zu wrong", bits, i, bb);
                    }
                hm_codes_free(&c);
            }
        }
    }
done:
    free(buf);
    free(back);
    return r->failures;
}

/* ---- top-k ------------------------------------------------------------------------------- */

typedef struct {
    double d;
    int64_t i;
} ref_pair;

static int ref_pair_cmp(const void *a, const void *b)
{
    const ref_pair *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Reorders a[0..n) so that a[0..k) are its k smallest pairs by (distance, index), sorted
 * (1 <= k <= n). A quickselect around the middle pair of each range, then a sort of the k:
 * every query of a check ranks its whole database, and sorting all n rows took most of the
 * weighted checks' time. The keys are distinct (indices are), so each pivot lands at its place
 * in the full order. */
static void smallest_sorted(ref_pair *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the pairs at ranks k - 1 and k lie in [lo, hi) */
    while (k < n && hi - lo > 1) {
        ref_pair pivot = a[lo + (hi - lo) / 2], t;
        a[lo + (hi - lo) / 2] = a[hi - 1];
        a[hi - 1] = pivot;
        size_t p = lo;
        for (size_t i = lo; i + 1 < hi; i++)
            if (ref_pair_cmp(&a[i], &pivot) < 0) {
                t = a[i];
                a[i] = a[p];
                a[p++] = t;
            }
        a[hi - 1] = a[p];
        a[p] = pivot; /* [lo, p) below the pivot, (p, hi) above */
        if (p == k || p + 1 == k)
            break;
        if (p > k)
            hi = p;
        else
            lo = p + 1;
    }
    qsort(a, k, sizeof *a, ref_pair_cmp);
}

/* Random codes where `distinct` > 0 limits the database to that many distinct codes. */
static drsch_status random_codes(hm_codes *c, size_t n, uint32_t bits, size_t distinct, uint64_t *s,
                                 drsch_error *err)
{
    drsch_status st = hm_codes_alloc(c, n, bits, err);
    if (st != DRSCH_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (distinct && i >= distinct)
            memcpy(c->data + i * c->words, c->data + (rng_next(s) % distinct) * c->words,
                   c->words * 8);
        else
            fill_row(c->data + i * c->words, bits, i % 97 == 5 ? 1 : i % 89 == 7 ? 2 : 0, s);
    }
    return DRSCH_OK;
}

/* hm_knn (or hm_knn_weighted when w, hw) of db and qs under every ISA against a brute-force
 * ranking (smallest_sorted). The ranking, which does not depend on the ISA, runs once per query (it
 * is most of the check's time: under ASan and under qemu, that is minutes when repeated for every
 * ISA). */
static void knn_check(simd_check_report *r, const hm_codes *db, const hm_codes *qs, size_t k,
                      size_t distinct, const float *w, const hm_weights *hw)
{
    drsch_error err;
    uint32_t bits = db->bits;
    size_t n = db->n, nq = qs->n;
    ref_pair *all = malloc(n * sizeof *all);
    ref_pair *want = malloc(nq * k * sizeof *want);
    int64_t *idx = malloc(nq * k * sizeof *idx);
    int32_t *dist = malloc(nq * k * sizeof *dist);
    float *wdist = malloc(nq * k * sizeof *wdist);
    float *row = malloc(n * sizeof *row);
    if (!all || !want || !idx || !dist || !wdist || !row) {
        fail(r, "out of memory");
        goto done;
    }
    /* The reference ranking: every row's distance (weighted: the scalar kernel's, over the
     * quantised weights), sorted by (distance, index); its first k of each query in want. The
     * scalar kernel's sums are checked against the double reference on each query's first 16
     * ranks (simd_check_weighted checks every kernel's against it at every length; checking all
     * k ranks here took a third of this check's time). */
    for (size_t j = 0; j < nq; j++) {
        const uint64_t *q = hm_code_row(qs, j);
        if (w)
            hm_kernels_scalar.weighted_distances(q, db->data, n, db->words, hw->tables, row);
        for (size_t i = 0; i < n; i++) {
            all[i].i = (int64_t)i;
            all[i].d = w ? (double)row[i] : (double)ref_distance(q, hm_code_row(db, i), bits);
        }
        smallest_sorted(all, n, k);
        memcpy(want + j * k, all, k * sizeof *want);
        for (size_t t = 0; w && t < k && t < 16; t++) {
            const uint64_t *x = hm_code_row(db, (size_t)all[t].i);
            if (all[t].d != hm_weighted_distance_ref(q, x, hm_weights_values(hw), bits) ||
                !quant_close(all[t].d, q, x, w, hw, bits)) {
                fail(r,
                     "weighted distance %.9g (query %zu, row %lld) is not the double reference "
                     "over the quantised weights, or not within bits * step / 2 of the raw one",
                     all[t].d, j, (long long)all[t].i);
                break;
            }
        }
    }
    hm_isa isas[HM_ISA_COUNT], before = hm_isa_active();
    size_t nisa = test_isas(isas);
    for (size_t ii = 0; ii < nisa; ii++) {
        hm_isa_set(isas[ii], &err);
        drsch_status st = w ? hm_knn_weighted(db, qs, k, hw, idx, wdist, &err)
                            : hm_knn(db, qs, k, idx, dist, &err);
        if (st != DRSCH_OK) {
            fail(r, "%s knn(bits %u n %zu nq %zu k %zu): %s", hm_isa_name(isas[ii]), bits, n, nq, k,
                 err.msg);
            continue;
        }
        for (size_t j = 0; j < nq; j++)
            for (size_t t = 0; t < k; t++) {
                double got = w ? (double)wdist[j * k + t] : (double)dist[j * k + t];
                const ref_pair *e = &want[j * k + t];
                if (idx[j * k + t] != e->i || got != e->d) {
                    fail(r,
                         "%s %sknn(bits %u n %zu nq %zu k %zu distinct %zu) query %zu rank %zu: "
                         "got (%g, %lld) want (%g, %lld)",
                         hm_isa_name(isas[ii]), w ? "weighted " : "", bits, n, nq, k, distinct, j,
                         t, got, (long long)idx[j * k + t], e->d, (long long)e->i);
                    break;
                }
            }
    }
    hm_isa_set(before, &err);
done:
    free(all);
    free(want);
    free(idx);
    free(dist);
    free(wdist);
    free(row);
}

/* knn_check of random codes: n rows (distinct > 0: that many different ones), nq queries, every
 * third a copy of a row. sampled (top-k on one thread: one shard): the rows the threshold guess
 * samples are copies of query 0, so the guess is below its k-th distance. */
static void knn_case_with(simd_check_report *r, uint32_t bits, size_t n, size_t nq, size_t k,
                          size_t distinct, const float *w, uint64_t seed, bool sampled)
{
    drsch_error err;
    hm_codes db = {0}, qs = {0};
    hm_weights *hw = NULL;
    if (random_codes(&db, n, bits, distinct, &seed, &err) != DRSCH_OK ||
        random_codes(&qs, nq, bits, 0, &seed, &err) != DRSCH_OK ||
        (w && hm_weights_create(&hw, w, bits, &err) != DRSCH_OK)) {
        fail(r, "setup: %s", err.msg);
        goto done;
    }
    /* some queries copied from the database: distance 0 and many ties */
    for (size_t j = 0; j < nq; j += 3)
        memcpy(qs.data + j * qs.words, db.data + ((j * 7919) % n) * db.words, db.words * 8);
    if (sampled) {
        size_t ns = hm_knn_guess_rows(n, k);
        if (!ns) {
            fail(r, "no threshold guess for n %zu, k %zu", n, k);
            goto done;
        }
        for (size_t i = 0; i < ns; i++)
            memcpy(db.data + hm_knn_guess_row(n, ns, i) * db.words, qs.data, db.words * 8);
    }
    knn_check(r, &db, &qs, k, distinct, w, hw);
done:
    hm_codes_free(&db);
    hm_codes_free(&qs);
    hm_weights_free(hw);
}

static void knn_case(simd_check_report *r, uint32_t bits, size_t n, size_t nq, size_t k,
                     size_t distinct, const float *w, uint64_t seed)
{
    knn_case_with(r, bits, n, nq, k, distinct, w, seed, false);
}

long simd_check_knn(simd_check_report *r)
{
    static const uint32_t lengths[] = {1, 7, 64, 100, 128, 200, 256, 512, 777};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        knn_case(r, bits, 1, 1, 1, 0, NULL, 10 + bits);
        knn_case(r, bits, 500, 7, 1, 0, NULL, 11 + bits);
        knn_case(r, bits, 500, 7, 500, 0, NULL, 12 + bits);  /* k = n: a full ranking */
        knn_case(r, bits, 5000, 70, 10, 0, NULL, 13 + bits); /* many queries, many tiles */
        knn_case(r, bits, 3001, 3, 100, 0, NULL, 14 + bits); /* few queries */
    }
    return r->failures;
}

long simd_check_knn_ties(simd_check_report *r)
{
    knn_case(r, 4, 3000, 20, 1, 0, NULL, 20); /* 4-bit codes: every distance in 0..4 */
    knn_case(r, 4, 3000, 20, 100, 0, NULL, 21);
    knn_case(r, 4, 3000, 5, 3000, 0, NULL, 22);
    knn_case(r, 64, 20000, 9, 50, 3, NULL, 23); /* 3 distinct codes, many duplicates */
    knn_case(r, 256, 9000, 9, 1000, 10, NULL, 24);
    knn_case(r, 2, 10000, 4, 9999, 0, NULL, 25);
    return r->failures;
}

/* Few queries on several threads: the database is split into shards merged afterwards. */
long simd_check_knn_shards(simd_check_report *r)
{
#if defined(DRSCH_HAVE_OPENMP)
    int old = omp_get_max_threads();
    omp_set_num_threads(4);
#endif
    knn_case(r, 64, 100000, 1, 100, 0, NULL, 30);
    knn_case(r, 4, 100000, 2, 1000, 0, NULL, 31);
    knn_case(r, 13, 70001, 1, 70001, 0, NULL, 32); /* k = n through the shard merge */
    knn_case(r, 256, 40000, 3, 7, 0, NULL, 33);
    knn_case(r, 64, 100000, 1, 1, 5, NULL, 34);
#if defined(DRSCH_HAVE_OPENMP)
    omp_set_num_threads(old);
#endif
    return r->failures;
}

/* Searches of three shapes from CONC_THREADS threads at once, CONC_CALLS each, the shapes taken
 * in turn: every result equals that shape's result computed alone. hm_knn may be called from
 * several threads of a program (each with its own OpenMP team): it shares no state between
 * calls but its read-only inputs. */
#define CONC_THREADS 4
#define CONC_CALLS 12
#define CONC_SHAPES 3

typedef struct {
    hm_codes db, qs;
    size_t k;
    int64_t *idx;
    int32_t *dist;
} conc_shape;

typedef struct {
    const conc_shape *shapes;
    int first;
    long bad; /* calls that failed or differed */
    char msg[256];
} conc_thread;

static void *conc_run(void *arg)
{
    conc_thread *t = arg;
    for (int c = 0; c < CONC_CALLS; c++) {
        const conc_shape *sh = &t->shapes[(t->first + c) % CONC_SHAPES];
        size_t m = sh->qs.n * sh->k;
        int64_t *idx = malloc(m * sizeof *idx);
        int32_t *dist = malloc(m * sizeof *dist);
        drsch_error err;
        if (!idx || !dist) {
            snprintf(t->msg, sizeof t->msg, "out of memory");
            t->bad++;
        } else if (hm_knn(&sh->db, &sh->qs, sh->k, idx, dist, &err) != DRSCH_OK) {
            snprintf(t->msg, sizeof t->msg, "hm_knn: %.200s", err.msg);
            t->bad++;
        } else if (memcmp(idx, sh->idx, m * sizeof *idx) ||
                   memcmp(dist, sh->dist, m * sizeof *dist)) {
            snprintf(t->msg, sizeof t->msg, "call %d of shape %d differs from the search alone", c,
                     (t->first + c) % CONC_SHAPES);
            t->bad++;
        }
        free(idx);
        free(dist);
    }
    return NULL;
}

long simd_check_knn_concurrent(simd_check_report *r)
{
    static const struct {
        uint32_t bits;
        size_t n, nq, k;
    } dims[CONC_SHAPES] = {{64, 20000, 40, 30}, {256, 10000, 20, 100}, {8, 30000, 64, 5}};
    conc_shape shapes[CONC_SHAPES] = {0};
    conc_thread threads[CONC_THREADS] = {0};
    pthread_t tid[CONC_THREADS];
    uint64_t seed = 60;
    drsch_error err;
    int started = 0;
    for (int i = 0; i < CONC_SHAPES; i++) {
        conc_shape *sh = &shapes[i];
        sh->k = dims[i].k;
        if (random_codes(&sh->db, dims[i].n, dims[i].bits, 0, &seed, &err) != DRSCH_OK ||
            random_codes(&sh->qs, dims[i].nq, dims[i].bits, 0, &seed, &err) != DRSCH_OK) {
            fail(r, "setup: %s", err.msg);
            goto done;
        }
        sh->idx = malloc(dims[i].nq * sh->k * sizeof *sh->idx);
        sh->dist = malloc(dims[i].nq * sh->k * sizeof *sh->dist);
        if (!sh->idx || !sh->dist) {
            fail(r, "out of memory");
            goto done;
        }
        if (hm_knn(&sh->db, &sh->qs, sh->k, sh->idx, sh->dist, &err) != DRSCH_OK) {
            fail(r, "hm_knn alone: %s", err.msg);
            goto done;
        }
    }
    for (; started < CONC_THREADS; started++) {
        threads[started] = (conc_thread){.shapes = shapes, .first = started % CONC_SHAPES};
        if (pthread_create(&tid[started], NULL, conc_run, &threads[started])) {
            fail(r, "pthread_create failed");
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        if (threads[i].bad)
            fail(r, "thread %d: %ld of %d calls wrong; %s", i, threads[i].bad, CONC_CALLS,
                 threads[i].msg);
    }
done:
    for (int i = 0; i < CONC_SHAPES; i++) {
        hm_codes_free(&shapes[i].db);
        hm_codes_free(&shapes[i].qs);
        free(shapes[i].idx);
        free(shapes[i].dist);
    }
    return r->failures;
}

long simd_check_knn_weighted(simd_check_report *r)
{
    static const uint32_t lengths[] = {1, 4, 33, 64, 100, 128, 256, 300, 512, 1000};
    float *w = malloc(1024 * sizeof *w);
    uint64_t seed = 40;
    if (!w) {
        fail(r, "out of memory");
        return r->failures;
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        for (int kind = 0; kind < 3; kind++) {
            random_weights(w, bits, &seed, kind);
            knn_case(r, bits, 1, 1, 1, 0, w, seed);
            knn_case(r, bits, 2000, 9, 1, 0, w, seed + 1);
            knn_case(r, bits, 2000, 9, 2000, 0, w, seed + 2);
            knn_case(r, bits, 5000, 40, 25, kind == 1 ? 30 : 0, w, seed + 3);
        }
    }
    /* many queries: weighted blocks hold up to 128 per code word */
    random_weights(w, 64, &seed, 0);
    knn_case(r, 64, 3000, 300, 30, 0, w, seed);
    random_weights(w, 256, &seed, 2);
    knn_case(r, 256, 3000, 700, 40, 0, w, seed);
#if defined(DRSCH_HAVE_OPENMP)
    int old = omp_get_max_threads();
    omp_set_num_threads(4);
#endif
    random_weights(w, 64, &seed, 1);
    knn_case(r, 64, 100000, 1, 100, 0, w, 41);
    random_weights(w, 128, &seed, 1);
    knn_case(r, 128, 20000, 333, 100, 0, w, 45);
    /* three blocks per thread: each thread's last one is split in two (the last half partial) */
    random_weights(w, 64, &seed, 0);
    knn_case(r, 64, 20000, 1100, 50, 0, w, 46);
    random_weights(w, 8, &seed, 1);
    knn_case(r, 8, 70000, 2, 5000, 0, w, 42);
    /* A threshold guess below the k-th distance: the query is scanned again (one thread: one
     * shard, whose sample the case plants). */
#if defined(DRSCH_HAVE_OPENMP)
    omp_set_num_threads(1);
#endif
    knn_case_with(r, 64, 4000, 16, 100, 0, NULL, 43, true);
    knn_case_with(r, 256, 20000, 16, 300, 0, NULL, 44, true);
    for (int kind = 0; kind < 3; kind++) {
        random_weights(w, 64, &seed, kind);
        knn_case_with(r, 64, 4000, 16, 100, 0, w, seed, true);
        random_weights(w, 256, &seed, kind);
        knn_case_with(r, 256, 20000, 16, 300, 0, w, seed, true);
    }
#if defined(DRSCH_HAVE_OPENMP)
    omp_set_num_threads(old);
#endif
    free(w);
    return r->failures;
}

/* Weighted top-k with the adversarial weights of simd_check_weighted_bounds, at the code
 * lengths where the filters use many nibbles. */
long simd_check_knn_weighted_adversarial(simd_check_report *r)
{
    static const uint32_t lengths[] = {64, 256, 512, 1024};
    float *w = malloc(1024 * sizeof *w);
    uint64_t seed = 60;
    if (!w) {
        fail(r, "out of memory");
        return r->failures;
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        for (int kind = 0; kind < ADVERSARIAL_KINDS; kind++) {
            adversarial_weights(w, bits, kind, &seed);
            knn_case(r, bits, 6000, 5, 20, 0, w, seed);
            knn_case(r, bits, 3000, 3, 100, kind == 1 ? 40 : 0, w, seed + 1);
        }
    }
    free(w);
    return r->failures;
}

/* ---- exact weighted sums ------------------------------------------------------------------ */

/* All weights equal to v: at every ISA, hm_knn_weighted gives exactly hm_knn's indices (ties by
 * database index) and distances equal to the plain distance times the quantised weight. */
static void knn_equal_case(simd_check_report *r, uint32_t bits, size_t n, size_t nq, size_t k,
                           size_t distinct, float v, uint64_t seed)
{
    drsch_error err;
    hm_codes db = {0}, qs = {0};
    hm_weights *hw = NULL;
    float *w = malloc(bits * sizeof *w), *wdist = malloc(nq * k * sizeof *wdist);
    int64_t *pidx = malloc(nq * k * sizeof *pidx), *widx = malloc(nq * k * sizeof *widx);
    int32_t *pdist = malloc(nq * k * sizeof *pdist);
    if (!w || !wdist || !pidx || !widx || !pdist) {
        fail(r, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < bits; i++)
        w[i] = v;
    if (random_codes(&db, n, bits, distinct, &seed, &err) != DRSCH_OK ||
        random_codes(&qs, nq, bits, 0, &seed, &err) != DRSCH_OK ||
        hm_weights_create(&hw, w, bits, &err) != DRSCH_OK) {
        fail(r, "setup (bits %u, weights %g): %s", bits, (double)v, err.msg);
        goto done;
    }
    for (size_t j = 0; j < nq; j += 2) /* queries from the database: distance 0, more ties */
        memcpy(qs.data + j * qs.words, db.data + ((j * 7919) % n) * db.words, db.words * 8);
    const float wq = hm_weights_values(hw)[0];
    for (uint32_t i = 0; i < bits; i++)
        if (hm_weights_values(hw)[i] != wq)
            fail(r, "equal weights %g quantised to different values", (double)v);
    hm_isa isas[HM_ISA_COUNT], before = hm_isa_active();
    size_t nisa = test_isas(isas);
    for (size_t ii = 0; ii < nisa; ii++) {
        hm_isa_set(isas[ii], &err);
        if (hm_knn(&db, &qs, k, pidx, pdist, &err) != DRSCH_OK ||
            hm_knn_weighted(&db, &qs, k, hw, widx, wdist, &err) != DRSCH_OK) {
            fail(r, "%s knn (bits %u): %s", hm_isa_name(isas[ii]), bits, err.msg);
            continue;
        }
        for (size_t t = 0; t < nq * k; t++) {
            float want = (float)((double)pdist[t] * (double)wq); /* exact: below 2^24 steps */
            if (widx[t] != pidx[t] || wdist[t] != want) {
                fail(r,
                     "%s weighted knn with equal weights %g (quantised %.9g), bits %u n %zu k "
                     "%zu distinct %zu: query %zu rank %zu is (%.9g, %lld), plain gives "
                     "(%d, %lld), so want (%.9g, %lld)",
                     hm_isa_name(isas[ii]), (double)v, (double)wq, bits, n, k, distinct, t / k,
                     t % k, (double)wdist[t], (long long)widx[t], pdist[t], (long long)pidx[t],
                     (double)want, (long long)pidx[t]);
                break;
            }
        }
    }
    hm_isa_set(before, &err);
done:
    hm_codes_free(&db);
    hm_codes_free(&qs);
    hm_weights_free(hw);
    free(w);
    free(wdist);
    free(pidx);
    free(widx);
    free(pdist);
}

long simd_check_knn_weighted_equal(simd_check_report *r)
{
    static const float values[] = {0.1f, 1e36f, 1e-30f, 3.0f};
    static const uint32_t lengths[] = {7, 64, 100, 256, 512};
    for (size_t vi = 0; vi < sizeof values / sizeof values[0]; vi++) {
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            uint32_t bits = lengths[li];
            uint64_t seed = 70 + 10 * vi + li;
            if ((double)values[vi] * bits >
                (double)FLT_MAX / 2) { /* refused: see weights_quantised */
                continue;
            }
            knn_equal_case(r, bits, 3000, 8, 1, 0, values[vi], seed);
            knn_equal_case(r, bits, 3000, 8, 50, 0, values[vi], seed + 1);
            knn_equal_case(r, bits, 2000, 4, 2000, 0, values[vi], seed + 2); /* full ranking */
            knn_equal_case(r, bits, 5000, 20, 10, 40, values[vi], seed + 3); /* duplicates */
        }
    }
#if defined(DRSCH_HAVE_OPENMP)
    int old = omp_get_max_threads();
    omp_set_num_threads(4);
#endif
    knn_equal_case(r, 64, 60000, 1, 100, 0, 0.1f, 90); /* database shards, merged */
    knn_equal_case(r, 256, 40000, 2, 1000, 0, 1e-30f, 91);
#if defined(DRSCH_HAVE_OPENMP)
    omp_set_num_threads(old);
#endif
    return r->failures;
}

/* One weight vector: the step is a power of two >= 2^-149, the smallest with
 * sum |w| / step <= 2^24 - bits; every quantised value is an integer multiple of it within
 * step / 2 of its weight; sum |values| / step <= 2^24; tables hold exact sums of the values. */
static void check_quantised(simd_check_report *r, const float *w, uint32_t bits, const char *what)
{
    hm_weights *hw = NULL;
    drsch_error err;
    if (hm_weights_create(&hw, w, bits, &err) != DRSCH_OK) {
        fail(r, "%s (%u bits): %s", what, bits, err.msg);
        return;
    }
    double step = hm_weights_step(hw), abs_sum = 0.0, qsum = 0.0;
    const float *v = hm_weights_values(hw);
    int e;
    if (!(frexp(step, &e) == 0.5) || step < ldexp(1.0, -149))
        fail(r, "%s (%u bits): step %g is not a power of two >= 2^-149", what, bits, step);
    for (uint32_t i = 0; i < bits; i++) {
        double q = (double)v[i] / step;
        if (q != floor(q) || fabs((double)v[i] - (double)w[i]) > step / 2)
            fail(r, "%s (%u bits): weight %u %.9g quantised to %.9g, step %g", what, bits, i,
                 (double)w[i], (double)v[i], step);
        abs_sum += fabs((double)w[i]);
        qsum += fabs(q);
    }
    if (qsum > 16777216.0)
        fail(r, "%s (%u bits): sum |values| / step = %.17g > 2^24", what, bits, qsum);
    bool all_zero = !(abs_sum > 0.0);
    if (all_zero ? step != 1.0
                 : abs_sum / step > 16777216.0 - bits ||
                       (step > ldexp(1.0, -149) && abs_sum / (step / 2) <= 16777216.0 - bits))
        fail(r,
             "%s (%u bits): step %g is not the smallest power of two with sum |w| / step "
             "<= 2^24 - bits (sum |w| = %.17g)",
             what, bits, step, abs_sum);
    for (size_t p = 0; p < 16 * hw->words; p++)
        for (unsigned nv = 0; nv < 16; nv++) {
            double want = 0.0;
            for (unsigned b = 0; b < 4; b++)
                if ((nv >> b) & 1u && 4 * p + b < bits)
                    want += (double)v[4 * p + b];
            if ((double)hw->tables[p * 16 + nv] != want)
                fail(r, "%s (%u bits): table %zu entry %u is %.9g, want %.17g", what, bits, p, nv,
                     (double)hw->tables[p * 16 + nv], want);
        }
    hm_weights_free(hw);
}

long simd_check_weights_quantised(simd_check_report *r)
{
    static const uint32_t lengths[] = {1, 7, 64, 100, 256, 512, 1000, 4096};
    static const float equal[] = {0.1f, 1e36f, 1e-30f, 3.0f, 1e-44f /* subnormal */, 0.0f};
    float *w = malloc(HM_MAX_BITS * sizeof *w);
    uint64_t seed = 80;
    if (!w) {
        fail(r, "out of memory");
        return r->failures;
    }
    char what[64];
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        uint32_t bits = lengths[li];
        for (int kind = 0; kind < 3; kind++) {
            random_weights(w, bits, &seed, kind);
            snprintf(what, sizeof what, "random weights kind %d", kind);
            check_quantised(r, w, bits, what);
        }
        for (int kind = 0; kind < ADVERSARIAL_KINDS; kind++) {
            adversarial_weights(w, bits, kind, &seed);
            snprintf(what, sizeof what, "adversarial weights kind %d", kind);
            check_quantised(r, w, bits, what);
        }
        for (size_t ei = 0; ei < sizeof equal / sizeof equal[0]; ei++) {
            for (uint32_t i = 0; i < bits; i++)
                w[i] = equal[ei];
            snprintf(what, sizeof what, "equal weights %g", (double)equal[ei]);
            hm_weights *hw = NULL;
            drsch_error err;
            if ((double)equal[ei] * bits > (double)FLT_MAX / 2) { /* 1e36 from 256 bits */
                if (hm_weights_create(&hw, w, bits, &err) != DRSCH_ERR_ARG || hw)
                    fail(r, "%s (%u bits): sum beyond FLT_MAX / 2 not refused", what, bits);
                hm_weights_free(hw);
                continue;
            }
            check_quantised(r, w, bits, what);
        }
    }
    free(w);
    return r->failures;
}

/* ---- errors ------------------------------------------------------------------------------ */

#define EXPECT_ERR(call, status, what)                                                             \
    do {                                                                                           \
        err.msg[0] = 0;                                                                            \
        drsch_status st_ = (call);                                                                 \
        if (st_ != (status) || !err.msg[0])                                                        \
            fail(r, "%s: got status %d ('%s'), want %d with a message", what, (int)st_, err.msg,   \
                 (int)(status));                                                                   \
    } while (0)

long simd_check_bad_args(simd_check_report *r)
{
    drsch_error err;
    hm_codes db = {0}, q = {0}, q2 = {0}, tmp;
    hm_weights *hw = NULL;
    uint64_t seed = 50;
    int64_t idx[8];
    int32_t dist[8];
    float wd[8], w[64];
    uint8_t bytes[16] = {0};
    if (random_codes(&db, 5, 64, 0, &seed, &err) || random_codes(&q, 1, 64, 0, &seed, &err) ||
        random_codes(&q2, 1, 63, 0, &seed, &err)) {
        fail(r, "setup: %s", err.msg);
        goto done;
    }
    random_weights(w, 64, &seed, 0);
    if (hm_weights_create(&hw, w, 64, &err) != DRSCH_OK) {
        fail(r, "setup: %s", err.msg);
        goto done;
    }
    EXPECT_ERR(hm_knn(&db, &q, 0, idx, dist, &err), DRSCH_ERR_ARG, "k = 0");
    EXPECT_ERR(hm_knn(&db, &q, 6, idx, dist, &err), DRSCH_ERR_ARG, "k > n");
    EXPECT_ERR(hm_knn(&db, &q2, 1, idx, dist, &err), DRSCH_ERR_ARG, "mismatched bits");
    EXPECT_ERR(hm_knn_weighted(&db, &q, 0, hw, idx, wd, &err), DRSCH_ERR_ARG, "weighted k = 0");
    EXPECT_ERR(hm_knn_weighted(&db, &q, 6, hw, idx, wd, &err), DRSCH_ERR_ARG, "weighted k > n");
    EXPECT_ERR(hm_knn_weighted(&db, &q2, 1, hw, idx, wd, &err), DRSCH_ERR_ARG,
               "weighted mismatched bits");
    EXPECT_ERR(hm_knn_weighted(&db, &q, 1, NULL, idx, wd, &err), DRSCH_ERR_ARG, "no weights");
    hm_weights *hw63 = NULL;
    if (hm_weights_create(&hw63, w, 63, &err) == DRSCH_OK) {
        EXPECT_ERR(hm_knn_weighted(&db, &q, 1, hw63, idx, wd, &err), DRSCH_ERR_ARG,
                   "weights of the wrong length");
        hm_weights_free(hw63);
    }
    float bad[64];
    memcpy(bad, w, sizeof bad);
    bad[17] = NAN;
    hm_weights *hb = NULL;
    EXPECT_ERR(hm_weights_create(&hb, bad, 64, &err), DRSCH_ERR_ARG, "NaN weight");
    bad[17] = INFINITY;
    EXPECT_ERR(hm_weights_create(&hb, bad, 64, &err), DRSCH_ERR_ARG, "infinite weight");
    bad[17] = -INFINITY;
    EXPECT_ERR(hm_weights_create(&hb, bad, 64, &err), DRSCH_ERR_ARG, "-infinite weight");
    if (hb)
        fail(r, "refused weights returned a handle");
    EXPECT_ERR(hm_weights_create(&hb, w, 0, &err), DRSCH_ERR_ARG, "weights for 0 bits");
    EXPECT_ERR(hm_codes_alloc(&tmp, 3, 0, &err), DRSCH_ERR_ARG, "0-bit codes");
    EXPECT_ERR(hm_codes_alloc(&tmp, 3, HM_MAX_BITS + 1, &err), DRSCH_ERR_ARG, "4097-bit codes");
    EXPECT_ERR(hm_codes_from_bytes(&tmp, bytes, 2, 8, 65, &err), DRSCH_ERR_ARG,
               "more bits than the rows hold");
    hm_isa isa;
    EXPECT_ERR(hm_isa_parse("AVX-1024", &isa, &err), DRSCH_ERR_ISA, "unknown ISA name");
    EXPECT_ERR(hm_isa_set((hm_isa)99, &err), DRSCH_ERR_ISA, "out-of-range ISA");
done:
    hm_codes_free(&db);
    hm_codes_free(&q);
    hm_codes_free(&q2);
    hm_weights_free(hw);
    return r->failures;
}

long simd_check_detects_mismatch(simd_check_report *r)
{
    /* The checks compare with references through fail(); a wrong expectation must register. */
    simd_check_report inner = {0};
    uint64_t a = 0xff, b = 0;
    if (ref_distance(&a, &b, 64) != 7)
        fail(&inner, "distance %u is not 7", ref_distance(&a, &b, 64));
    if (inner.failures != 1 || !strstr(inner.msg, "is not 7"))
        fail(r, "a deliberate mismatch was not reported");
    return r->failures;
}

/* The top-k checks' reference ranking, smallest_sorted, against a full qsort of the same pairs:
 * distances with many ties (0..3), all equal, ascending and descending, every k at small n and
 * the edges of k at larger n. */
long simd_check_reference_ranking(simd_check_report *r)
{
    static const size_t sizes[] = {1, 2, 3, 5, 17, 1000, 4099};
    uint64_t seed = 90;
    ref_pair *a = malloc(4099 * sizeof *a), *b = malloc(4099 * sizeof *b),
             *c = malloc(4099 * sizeof *c);
    if (!a || !b || !c) {
        fail(r, "out of memory");
        goto done;
    }
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (int kind = 0; kind < 4; kind++) {
            for (size_t i = 0; i < n; i++) {
                a[i].i = (int64_t)((i * 7) % n); /* 7 is prime to every size: a permutation */
                a[i].d = kind == 0   ? (double)(rng_next(&seed) % 4)
                         : kind == 1 ? 1.5
                         : kind == 2 ? (double)i
                                     : -(double)i;
            }
            memcpy(b, a, n * sizeof *b);
            qsort(b, n, sizeof *b, ref_pair_cmp);
            for (size_t k = 1; k <= n; k = k < 20 || k + 20 > n ? k + 1 : n - 19) {
                memcpy(c, a, n * sizeof *c);
                smallest_sorted(c, n, k);
                for (size_t t = 0; t < k; t++)
                    if (c[t].i != b[t].i || c[t].d != b[t].d) {
                        fail(r,
                             "smallest_sorted(n %zu, k %zu, kind %d): rank %zu is (%g, %lld), "
                             "want (%g, %lld)",
                             n, k, kind, t, c[t].d, (long long)c[t].i, b[t].d, (long long)b[t].i);
                        break;
                    }
            }
        }
    }
done:
    free(a);
    free(b);
    free(c);
    return r->failures;
}

/* hm_sort_keyed against qsort by (distance, index) over the same list: distances of one kind
 * (see below), n from 0 to 70,000, entries given in index order so the stable sort must end in
 * (d, idx) order. -0 and +0 compare equal (their order then by index). */
static float keysort_value(int kind, size_t j, uint64_t *s)
{
    const uint64_t x = rng_next(s);
    switch (kind) {
    case 0: return (float)(x % 7);                                       /* few values, long ties */
    case 1: return (float)(x >> 40) * 0x1p-20f * (x & 1 ? -1.0f : 1.0f); /* both signs */
    case 2: return x & 1 ? 0.0f : -0.0f;               /* every key equal: every pass skipped */
    case 3: return 1.0f + (float)(x % 256) * 0x1p-23f; /* only the lowest byte differs */
    case 4: return (float)(j % 3) * 0x1p100f - (float)(x % 5); /* bytes differing at the top */
    default: {                                                 /* any finite float */
        uint32_t u = (uint32_t)x;
        if ((u >> 23 & 0xff) == 0xff)
            u &= ~(1u << 30);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    }
}

long simd_check_keysort(simd_check_report *r)
{
    static const size_t sizes[] = {0, 1, 2, 3, 255, 256, 257, 1000, 70000};
    const size_t max = 70000;
    hm_keyed *a = malloc(2 * max * sizeof *a);
    ref_pair *ref = malloc(max * sizeof *ref);
    if (!a || !ref) {
        free(a);
        free(ref);
        fail(r, "out of memory");
        return r->failures;
    }
    uint64_t seed = 42;
    for (int kind = 0; kind < 6; kind++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const size_t n = sizes[si];
            for (size_t j = 0; j < n; j++) {
                a[j].d = keysort_value(kind, j, &seed);
                a[j].idx = (uint32_t)j;
                ref[j].d = a[j].d; /* -0.0 == +0.0 in ref_pair_cmp too */
                ref[j].i = (int64_t)j;
            }
            hm_sort_keyed(a, a + n, n);
            qsort(ref, n, sizeof *ref, ref_pair_cmp);
            for (size_t j = 0; j < n; j++)
                if (a[j].idx != (uint32_t)ref[j].i || (double)a[j].d != ref[j].d) {
                    fail(r, "kind %d, n %zu: position %zu holds (%g, %u), the reference (%g, %lld)",
                         kind, n, j, (double)a[j].d, a[j].idx, ref[j].d, (long long)ref[j].i);
                    break;
                }
        }
    free(a);
    free(ref);
    return r->failures;
}

/* The VMA of /proc/self/smaps holding address a: its THPeligible flag (0 or 1), or -1 when the
 * file or the flag cannot be read (an older kernel, no /proc). */
static int thp_eligible(const void *a)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int in = 0, flag = -1;
    unsigned long lo, hi, x = (unsigned long)(uintptr_t)a;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = x >= lo && x < hi;
        else if (in && sscanf(line, "THPeligible: %d", &flag) == 1)
            break;
    }
    fclose(f);
    return flag;
}

/* Whether smaps reports a region advised MADV_HUGEPAGE as eligible for huge pages: a 4 MiB
 * mapping of the check's own as the control (false without huge pages, and under qemu-user,
 * whose smaps reports none). */
static bool thp_reported(void)
{
    size_t len = (size_t)4 << 20;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool yes = madvise(m, len, MADV_HUGEPAGE) == 0 && thp_eligible((char *)m + len / 2) == 1;
    munmap(m, len);
    return yes;
}

long simd_check_buffers(simd_check_report *r)
{
    const size_t sizes[] = {
        0, 1, 100, (256 << 10) - 65, (256 << 10) - 64, 256 << 10, (3 << 20) + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = hm_buffer_alloc(n);
        if (!p) {
            fail(r, "hm_buffer_alloc(%zu) returned NULL", n);
            continue;
        }
        if ((uintptr_t)p % 64)
            fail(r, "hm_buffer_alloc(%zu) = %p is not 64-byte aligned", n, (void *)p);
        memset(p, 0xa5, n);
        for (size_t j = 0; j < n; j += 4093)
            if (p[j] != 0xa5)
                fail(r, "hm_buffer_alloc(%zu): byte %zu did not keep its value", n, j);
        if (n >= (256 << 10) && thp_reported() && thp_eligible(p) != 1)
            fail(r, "hm_buffer_alloc(%zu): the mapping is not eligible for huge pages", n);
        hm_buffer_free(p);
    }
    hm_buffer_free(NULL);
    if (hm_buffer_alloc(SIZE_MAX) || hm_buffer_alloc(SIZE_MAX - 100))
        fail(r, "hm_buffer_alloc of SIZE_MAX bytes did not return NULL");
    return r->failures;
}

const simd_check simd_checks[] = {
    {"isa", simd_check_isa},
    {"distances", simd_check_distances},
    {"weighted", simd_check_weighted},
    {"scans", simd_check_scans},
    {"scans_long", simd_check_scans_long},
    {"codes_from_bytes", simd_check_codes_from_bytes},
    {"knn", simd_check_knn},
    {"knn_ties", simd_check_knn_ties},
    {"knn_shards", simd_check_knn_shards},
    {"knn_concurrent", simd_check_knn_concurrent},
    {"knn_weighted", simd_check_knn_weighted},
    {"weighted_bounds", simd_check_weighted_bounds},
    {"knn_weighted_adv", simd_check_knn_weighted_adversarial},
    {"knn_weighted_equal", simd_check_knn_weighted_equal},
    {"keysort", simd_check_keysort},
    {"weights_quantised", simd_check_weights_quantised},
    {"bad_args", simd_check_bad_args},
    {"buffers", simd_check_buffers},
    {"detects_mismatch", simd_check_detects_mismatch},
    {"reference_ranking", simd_check_reference_ranking},
};
const size_t simd_checks_count = sizeof simd_checks / sizeof simd_checks[0];
