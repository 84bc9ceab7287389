# simd/ Criterion suite: the plain-C checks of simd_checks.c, one Criterion test each.
drsch_criterion_test(test_simd SOURCES test_simd.c LIBS drsch_simd_checks)
