/* Plain-C checks of simd/ (kernels of every ISA against the scalar reference, code conversion,
 * exact top-k against a brute-force sort, argument errors). Each check returns its number of
 * failures and describes the first one in the report, so the same checks run under Criterion
 * (tests/test_simd.c) and without it (tests/simd_check_main.c, the aarch64 cross build).
 * They never print.
 */
#ifndef DRSCH_SIMD_CHECKS_H
#define DRSCH_SIMD_CHECKS_H

#include <stddef.h>

typedef struct {
    long failures;
    char msg[1024]; /* the first failure */
} simd_check_report;

typedef struct {
    const char *name;
    long (*run)(simd_check_report *r);
} simd_check;

long simd_check_isa(simd_check_report *r);
long simd_check_distances(simd_check_report *r);
long simd_check_weighted(simd_check_report *r);
long simd_check_scans(simd_check_report *r);
long simd_check_scans_long(simd_check_report *r);
long simd_check_codes_from_bytes(simd_check_report *r);
long simd_check_knn(simd_check_report *r);
long simd_check_knn_ties(simd_check_report *r);
long simd_check_knn_shards(simd_check_report *r);
long simd_check_knn_concurrent(simd_check_report *r);
long simd_check_knn_weighted(simd_check_report *r);
/* Weighted scans and top-k with adversarial weights (one huge among tiny, equal, zero,
 * negative, 12 decades) and thresholds on and one float step either side of real distances. */
long simd_check_weighted_bounds(simd_check_report *r);
long simd_check_knn_weighted_adversarial(simd_check_report *r);
/* Equal weights (0.1, 1e36, 1e-30, 3): weighted top-k is exactly plain top-k at every ISA. */
long simd_check_knn_weighted_equal(simd_check_report *r);
/* hm_sort_keyed (the stable radix sort of top-k lists and weighted rankings) against qsort by
 * (distance, index): ties, both signs, -0 and +0, keys differing in one byte only, 0 to 70,000. */
long simd_check_keysort(simd_check_report *r);
/* hm_weights_create's quantisation: power-of-two step, exact multiples, sum within 2^24 steps. */
long simd_check_weights_quantised(simd_check_report *r);
long simd_check_bad_args(simd_check_report *r);
/* hm_buffer_alloc: aligned, writable, freed, NULL past the address space; from 256 KiB up a
 * mapping eligible for huge pages whenever a region advised so is reported eligible. */
long simd_check_buffers(simd_check_report *r);
/* The self-test: a deliberately wrong expectation that must be reported (checks can fail). */
long simd_check_detects_mismatch(simd_check_report *r);
/* The top-k checks' reference ranking (the k smallest by (distance, index)) against a full sort. */
long simd_check_reference_ranking(simd_check_report *r);

extern const simd_check simd_checks[];
extern const size_t simd_checks_count;

#endif
