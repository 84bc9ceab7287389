/* drsch bench hamming's options and data, shared by the one-process benchmark
 * (cmd_bench_hamming.c) and its run under mpirun (cmd_bench_hamming_mpi.c). */
#ifndef DRSCH_BENCH_HAMMING_H
#define DRSCH_BENCH_HAMMING_H

#include <stddef.h>
#include <stdint.h>

#include "hamming.h"

typedef struct {
    int64_t n, nq, bits, k, threads, reps, seed, singles;
    const char *isa_name, *json;
    const char *w_path; /* --weights: per-bit weights from a file (implies weighted) */
    int weighted;
    int per_rank;  /* under mpirun: --n codes on every rank (weak scaling), not in all */
    double plant;  /* --plant-slowdown: each timed search stretched to plant times its duration */
    int no_limits; /* --no-limits: the machine's limits are not measured (repeated gate runs) */
} hamming_opts;

/* Rows [lo, hi) of the seeded random database: the bytes lo * row_bytes .. hi * row_bytes of
 * one splitmix64 stream, so that any split of the rows gives the bytes of the whole. 0, or -1
 * when out of memory. */
int bh_random_rows(hm_codes *c, size_t lo, size_t hi, uint32_t bits, uint64_t seed);
/* The weights of --weighted (w[bits]): the first --bits of --weights FILE, or seeded ones in
 * [0.5, 1.5); and their quantised table. 0, or -1 after printing why. */
int bh_weights(const hamming_opts *o, float **wv, hm_weights **w);
/* CRC-32 of n result indices (int64) then n distances (4 bytes each), as a report counter: equal
 * results, whatever computed them, give equal values. */
double bh_results_crc(const int64_t *idx, const void *dist, size_t n);
/* The flags parsed and checked (every rank parses the same): -1 to go on, else the exit
 * status. */
int bh_parse(int argc, char **argv, hamming_opts *o);
/* The benchmark under mpirun: the ranks search slices of one database, rank 0 merges. */
int bh_run_ranks(const hamming_opts *o, int nthreads);

#endif
