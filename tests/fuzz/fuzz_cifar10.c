/* libFuzzer target: the CIFAR-10 binary reader (ds_load_cifar10). Input: up to seven files
 * separated by FUZZ_SEP: data_batch_1..5.bin, test_batch.bin, batches.meta.txt (an absent
 * meta part means no meta file). Checks memory safety, leaks and hangs only. */
#include "datasets.h"
#include "fuzz_util.h"

static const char *const FILES[7] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                     "batches.meta.txt"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off[7], n[7];
    int parts = fuzz_split(data, size, 7, off, n);
    char path[512];
    for (int i = 0; i < 7; i++)
        fuzz_write(FILES[i], data + off[i], n[i], path);
    if (parts < 7)
        unlink(path); /* no batches.meta.txt: built-in class names */
    ds_dataset *d = NULL;
    drsch_error err;
    if (ds_load_cifar10(fuzz_dir(), &d, &err) == DRSCH_OK)
        (void)ds_checksum(d);
    ds_dataset_free(d);
    return 0;
}
