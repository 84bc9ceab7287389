# drsch train / encode / eval --model end to end on the real Fashion-MNIST (Debian package).
drsch_criterion_test(test_train SOURCES test_train.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_train drsch)
