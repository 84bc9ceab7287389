/* libFuzzer target: model files (nn_model_load). The input's last 4 bytes are replaced by the
 * crc32 of the rest before it is written to a scratch file, so mutations reach the parser and
 * the network construction behind the checksum (the checksum itself is tested in
 * tests/test_core.c). Loaded for inference with batch 1. Checks memory safety, leaks and
 * hangs only. Seed: corpus/fuzz_model/tiny, written by fuzz_model_seed. */
#include <zlib.h>

#include "fuzz_util.h"
#include "nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (size >= 12) {
        uint32_t crc = (uint32_t)crc32(0L, copy, (uInt)(size - 4));
        for (int i = 0; i < 4; i++)
            copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    char path[512];
    fuzz_write("model.bin", copy, size, path);
    free(copy);
    nn_net *net = NULL;
    drsch_error err;
    if (nn_model_load(&net, path, 1, 0, &err) == DRSCH_OK)
        nn_net_free(net);
    return 0;
}
