/* libFuzzer target: the .npy parser (npy_parse, which npy_load uses for files). Also reads a
 * uint8 2-D array back as packed codes through npy_load_codes when it parses, since that path
 * adds its own shape checks. Checks memory safety, leaks and hangs only. */
#include "fuzz_util.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a;
    drsch_error err;
    if (npy_parse(data, size, "fuzz.npy", &a, &err) == DRSCH_OK) {
        int codes = a.dtype == NPY_U8 && a.ndim == 2;
        npy_free(&a);
        if (codes) {
            char path[512];
            fuzz_write("codes.npy", data, size, path);
            hm_codes c;
            if (npy_load_codes(path, 0, &c, &err) == DRSCH_OK)
                hm_codes_free(&c);
        }
    }
    return 0;
}
