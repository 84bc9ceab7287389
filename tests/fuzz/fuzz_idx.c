/* libFuzzer target: the IDX reader (ds_load_idx_pair). Input: images file FUZZ_SEP labels file,
 * each raw or gzip (the reader detects gzip itself). Checks only memory safety, leaks and
 * hangs; the status returned is not judged. */
#include "datasets.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off[2], n[2];
    fuzz_split(data, size, 2, off, n);
    char images[512], labels[512];
    fuzz_write("images-idx3-ubyte", data + off[0], n[0], images);
    fuzz_write("labels-idx1-ubyte", data + off[1], n[1], labels);
    ds_dataset *d = NULL;
    drsch_error err;
    if (ds_load_idx_pair(images, labels, &d, &err) == DRSCH_OK)
        (void)ds_checksum(d);
    ds_dataset_free(d);
    return 0;
}
