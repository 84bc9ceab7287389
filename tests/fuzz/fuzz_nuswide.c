/* libFuzzer target: the NUS-WIDE list reader (ds_load_nuswide) and the NUS-WIDE-21 concept
 * selection. Input: list text FUZZ_SEP image bytes; the image is stored as "a" under the image
 * root, so list lines naming "a" load it (through the JPEG / PNG decoder) and other names are
 * missing files. The first byte of the list chooses skip_bad_images. Images are resized to a
 * small 8 x 8 to keep runs fast. Checks memory safety, leaks and hangs only. */
#include "datasets.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off[2], n[2];
    fuzz_split(data, size, 2, off, n);
    char list[512], image[512];
    fuzz_write("list.txt", data + off[0], n[0], list);
    fuzz_write("a", data + off[1], n[1], image);
    ds_load_opts o;
    ds_load_opts_default(&o);
    o.out_h = o.out_w = 8;
    o.skip_bad_images = n[0] > 0 && (data[off[0]] & 1);
    ds_dataset *d = NULL;
    drsch_error err;
    if (ds_load_nuswide(list, fuzz_dir(), &o, &d, &err) == DRSCH_OK) {
        (void)ds_checksum(d);
        if (d->n_classes > 21)
            (void)ds_select_top_concepts(d, 21, &err);
    }
    ds_dataset_free(d);
    return 0;
}
