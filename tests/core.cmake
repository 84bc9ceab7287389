# core/ suite: layer gradients vs finite differences, forward vs naive references, learning on a
# Fashion-MNIST subset, model file round trips and corruption, bf16 inference vs f32 and its
# error on an ISA without bf16.
# DNNL::dnnl: the suite caps oneDNN's ISA itself (dnnl_set_max_cpu_isa), in the libdnnl the library
# then loads (dlopen finds the one already loaded).
drsch_criterion_test(test_core SOURCES test_core.c test_util.c LIBS drsch_core DNNL::dnnl ZLIB::ZLIB)
# The same suite as on a CPU without AVX-512: oneDNN held to AVX2, drsch's kernels to avx2. Its
# checks of bit-identical results hold on drsch's AVX-512 loops alone and must say so (four did
# not, and failed on runners with AVX2 alone while every runner here had AVX-512). Release build
# only: the sanitizers check nothing there that the first run does not.
if(NOT DRSCH_SANITIZE)
  add_test(NAME test_core_avx2 COMMAND test_core --jobs 2)
  get_test_property(test_core ENVIRONMENT env)
  set_tests_properties(test_core_avx2 PROPERTIES ENVIRONMENT
                                                 "${env};DNNL_MAX_CPU_ISA=AVX2;DRSCH_FORCE_ISA=avx2")
endif()
