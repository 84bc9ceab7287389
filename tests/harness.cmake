# The harness suite: .npy I/O, JSON reports and the drsch command line end to end. test_util.c
# (temp dir, running a command, file helpers) is shared with the reproduce and train suites.
drsch_criterion_test(test_harness SOURCES test_harness.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_harness drsch)
drsch_criterion_test(test_metrics SOURCES test_metrics.c LIBS drsch_harness DNNL::dnnl)
# drsch reproduce on CUHK03 end to end (a synthetic cuhk-03.mat written by fixture_cuhk03.c;
# the shared test helpers of test_util.c).
drsch_criterion_test(test_reproduce SOURCES test_reproduce.c fixture_cuhk03.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_reproduce drsch)
# Library messages a user sees: file errors of readers and writers (a directory, a missing file or
# folder) name the path and the cause; messages carry no internal function names.
drsch_criterion_test(test_messages SOURCES test_messages.c test_util.c LIBS drsch_harness DNNL::dnnl)
