# core/ suite: layer gradients vs finite differences, forward vs naive references, learning on a
# Fashion-MNIST subset, model file round trips and corruption, bf16 inference vs f32 and its
# error on an ISA without bf16.
# DNNL::dnnl: the suite caps oneDNN's ISA itself (dnnl_set_max_cpu_isa), in the libdnnl the library
# then loads (dlopen finds the one already loaded).
drsch_criterion_test(test_core SOURCES test_core.c test_util.c LIBS drsch_core DNNL::dnnl ZLIB::ZLIB)
