# datasets/ suite: readers (fixtures written by the tests in the exact on-disk formats, plus the
# real Fashion-MNIST files), protocols, augmentation, sampler, bad input.
drsch_criterion_test(test_datasets SOURCES test_datasets.c LIBS drsch_datasets)
