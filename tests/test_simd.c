/* Criterion suite of simd/: one test per plain-C check in simd_checks.c (every supported ISA
 * against the references, code conversion, exact top-k, argument errors). */
#include <criterion/criterion.h>

#include "simd_checks.h"

#define SIMD_TEST(name)                                                                            \
    Test(simd, name)                                                                               \
    {                                                                                              \
        simd_check_report r = {0};                                                                 \
        long f = simd_check_##name(&r);                                                            \
        cr_assert_eq(f, 0, "%ld failures; first: %s", f, r.msg);                                   \
    }

SIMD_TEST(isa)
SIMD_TEST(distances)
SIMD_TEST(weighted)
SIMD_TEST(scans)
SIMD_TEST(scans_long)
SIMD_TEST(codes_from_bytes)
SIMD_TEST(knn)
SIMD_TEST(knn_ties)
SIMD_TEST(knn_shards)
SIMD_TEST(knn_concurrent)
SIMD_TEST(knn_weighted)
SIMD_TEST(weighted_bounds)
SIMD_TEST(knn_weighted_adversarial)
SIMD_TEST(knn_weighted_equal)
SIMD_TEST(keysort)
SIMD_TEST(weights_quantised)
SIMD_TEST(bad_args)
SIMD_TEST(buffers)
SIMD_TEST(detects_mismatch)
SIMD_TEST(reference_ranking)
