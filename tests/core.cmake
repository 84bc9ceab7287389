# core/ suite: layer gradients vs finite differences, forward vs naive references, learning on a
# Fashion-MNIST subset, model file round trips and corruption, bf16 inference vs f32 and its
# error on an ISA without bf16.
drsch_criterion_test(test_core SOURCES test_core.c test_util.c LIBS drsch_core ZLIB::ZLIB)
