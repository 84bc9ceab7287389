# simd/ Criterion suite: the plain-C checks of simd_checks.c, one Criterion test each.
drsch_criterion_test(test_simd SOURCES test_simd.c LIBS drsch_simd_checks)
# The exact merge of top-k lists of parts of a database (drsch search under mpirun).
drsch_criterion_test(test_knn_merge SOURCES test_knn_merge.c LIBS drsch_simd)
