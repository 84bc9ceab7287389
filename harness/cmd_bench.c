/* drsch bench <what>: benchmarks that measure and report (Google Benchmark-compatible JSON);
 * they are not timed tests. This file only dispatches: hamming is in cmd_bench_hamming.c, train
 * and encode in cmd_bench_train.c, data in cmd_data.c (beside drsch data info); commands.h
 * declares them. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} bench;

static const bench BENCHES[] = {
    {"hamming", cmd_bench_hamming, "Hamming / weighted-Hamming top-k search, one entry per ISA"},
    {"train", cmd_bench_train,
     "images/s of a training step (forward, triplet loss, backward, SGD)"},
    {"encode", cmd_bench_encode, "images/s of encoding images to packed codes"},
    {"data", cmd_bench_data, "images/s of building augmented class-balanced training batches"},
};
#define N_BENCHES (sizeof BENCHES / sizeof BENCHES[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: drsch bench <benchmark> [options] [--json FILE]\n\nbenchmarks:\n");
    for (size_t i = 0; i < N_BENCHES; i++)
        fprintf(f, "  %-10s %s\n", BENCHES[i].name, BENCHES[i].summary);
    fprintf(f, "\n'drsch bench <benchmark> --help' describes its flags.\n");
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_BENCHES; i++)
        if (!strcmp(argv[1], BENCHES[i].name))
            return BENCHES[i].run(argc - 1, argv + 1);
    fprintf(stderr, "drsch bench: unknown benchmark '%s'; see 'drsch bench --help'\n", argv[1]);
    return EXIT_USAGE;
}
