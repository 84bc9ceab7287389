# drsch train / encode / eval --model end to end on the real Fashion-MNIST (Debian package);
# test_util.c holds the temp-dir / run-a-command / file helpers shared with harness and reproduce.
drsch_criterion_test(test_train SOURCES test_train.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_train drsch)
# The longest suite: CTest starts it first when it runs suites side by side (ci/sanitize).
set_tests_properties(test_train PROPERTIES COST 1000)
