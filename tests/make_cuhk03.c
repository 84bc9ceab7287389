/* make_cuhk03 FILE [SCALE]: writes a synthetic cuhk-03.mat of the CUHK03 release's shape, for
 * timing and trying the re-id path without the real data (the release cannot be downloaded
 * here): 5 camera pairs of 843, 440, 77, 58 and 49 persons (each divided by SCALE, at least 1;
 * default 1), 10 slots a person of which every third person leaves slots 4 and 9 empty (8 to
 * 10 images each, 13,696 in all at SCALE 1: the release's labeled set has 14,097), 160 x 60
 * crops in three bands coloured by identity (fixture_cuhk03.c, the test suites' writer), both
 * 'labeled' and 'detected', and 20 testsets of 100 persons (100 / SCALE, at least 1) drawn
 * without repetition from the first three pairs, as the release's are. Reading it back is
 * tested (tests/check_make_cuhk03.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture_cuhk03.h"

#define PAIRS 5
#define TESTSETS 20

static int has_no_image(int p, int q, int s, void *ctx)
{
    (void)p;
    (void)ctx;
    return q % 3 == 0 && (s == 4 || s == 9);
}

static void pixels(int p, int q, int s, uint8_t *px, int h, int w, void *ctx)
{
    (void)ctx;
    const uint64_t id = (uint64_t)(p * 4096 + q) * 0x9E3779B97F4A7C15ull;
    const int shift = (s % 5) * 3 + (s >= 5 ? 12 : 0);
    for (int ch = 0; ch < 3; ch++)
        for (int x = 0; x < w; x++)
            for (int y = 0; y < h; y++) {
                const int band = y * 3 / h, base = (int)((id >> (8 * (band * 3 + ch) % 56)) & 0xBF),
                          v = base + shift + ((x * 7 + y * 5 + s) & 7);
                px[((size_t)ch * w + (size_t)x) * h + (size_t)y] = (uint8_t)(v > 255 ? 255 : v);
            }
}

int main(int argc, char **argv)
{
    const int release[PAIRS] = {843, 440, 77, 58, 49};
    char *end = NULL;
    const long scale = argc == 3 ? strtol(argv[2], &end, 10) : 1;
    if (argc < 2 || argc > 3 || (end && (end == argv[2] || *end)) || scale < 1 || scale > 1000) {
        fprintf(stderr, "usage: make_cuhk03 FILE [SCALE]  (SCALE 1 to 1000: persons divided by it; "
                        "default 1, the release's 1467)\n");
        return 2;
    }
    int persons[PAIRS], pool = 0;
    for (int p = 0; p < PAIRS; p++) {
        persons[p] = release[p] / (int)scale > 0 ? release[p] / (int)scale : 1;
        pool += p < 3 ? persons[p] : 0;
    }
    const int rows = 100 / (int)scale > 0 ? 100 / (int)scale : 1;
    int *ts = malloc((size_t)TESTSETS * rows * 2 * sizeof *ts);
    char *used = malloc((size_t)pool);
    if (!ts || !used) {
        fprintf(stderr, "make_cuhk03: out of memory\n");
        return 1;
    }
    uint64_t r = 12345;
    for (int t = 0; t < TESTSETS; t++) {
        for (int k = 0; k < pool; k++)
            used[k] = 0;
        for (int i = 0; i < rows; i++) {
            int k;
            do {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                k = (int)((r >> 33) % (uint64_t)pool);
            } while (used[k]);
            used[k] = 1;
            int p = 0;
            while (k >= persons[p])
                k -= persons[p++];
            ts[(t * rows + i) * 2] = p + 1;
            ts[(t * rows + i) * 2 + 1] = k + 1;
        }
    }
    const fx_cuhk03 x = {.pairs = PAIRS,
                         .persons = persons,
                         .h = 160,
                         .w = 60,
                         .with_labeled = 1,
                         .n_testsets = TESTSETS,
                         .testset_rows = rows,
                         .testsets = ts,
                         .empty = has_no_image,
                         .pixels = pixels};
    char msg[256];
    const int rc = fx_cuhk03_write(argv[1], &x, msg, sizeof msg);
    if (rc)
        fprintf(stderr, "make_cuhk03: %s\n", msg);
    free(ts);
    free(used);
    return rc ? 1 : 0;
}
