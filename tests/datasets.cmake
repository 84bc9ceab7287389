# datasets/ suite: readers (fixtures written by the tests in the exact on-disk formats, plus the
# real Fashion-MNIST files), protocols, augmentation, sampler, bad input. The test writes its
# own PNG / JPEG fixtures (libpng, libjpeg) and CUHK03 .mat file (HDF5: the library itself reads
# it through drsch's HDF5 module; the writer, fixture_cuhk03.c, is shared with the reproduce
# suite). Fixtures go to a temp
# directory per test, removed after it (test_util.c, shared with the other suites).
drsch_criterion_test(test_datasets SOURCES test_datasets.c fixture_cuhk03.c test_util.c LIBS drsch_datasets PkgConfig::HDF5 png jpeg)
# The named protocols (cifar10, cifar10-1, cifar10-2, nuswide-21) and the transfer protocol on
# datasets built in memory through xp_make_split, --protocol NAME (in_parse_protocol), and drsch
# data info on Fashion-MNIST for each of them.
drsch_criterion_test(test_protocols SOURCES test_protocols.c test_util.c
                     LIBS drsch_cli drsch_harness DNNL::dnnl)
add_dependencies(test_protocols drsch)
