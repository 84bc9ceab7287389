# simd's io module (.npy files): its own suite, with the shared test helpers of test_util.c.
drsch_criterion_test(test_io SOURCES test_io.c test_util.c LIBS drsch_io)
