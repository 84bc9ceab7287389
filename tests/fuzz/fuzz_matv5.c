/* libFuzzer target: the minimal MATLAB v5 reader (datasets/matv5.c, internal) that reads the
 * CUHK03 767/700 protocol files: the input is written to a scratch file and the variables of
 * cuhk03_new_protocol_config_*.mat are read from it (filelist: a cell of strings; train_idx,
 * query_idx, gallery_idx: numeric), compressed or not. Checks memory safety, leaks and hangs
 * only. Seeds written by hand in the level-5 format (corpus/fuzz_matv5/). */
#include "fuzz_util.h"
#include "matv5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const NAMES[4] = {"filelist", "train_idx", "query_idx", "gallery_idx"};
    char path[512];
    fuzz_write("config.mat", data, size, path);
    for (int k = 0; k < 4; k++) {
        mat_var v;
        drsch_error err;
        if (mat_read_var(path, NAMES[k], &v, &err) == DRSCH_OK)
            mat_var_free(&v);
    }
    return 0;
}
