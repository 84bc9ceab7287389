drsch_criterion_test(test_dh SOURCES test_dh.c LIBS drsch_core)
