/* drsch search's two files: cmd_search.c (flags, the one-process search) and
 * cmd_search_slices.c (the search over slices of the database, one per process under mpirun, or
 * --db-shards). Command-line internals: not installed, not library. */
#ifndef DRSCH_CMD_SEARCH_H
#define DRSCH_CMD_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "hamming.h"

typedef struct {
    const char *db_path, *q_path, *out, *w_path, *isa_name, *db_shards;
    int64_t k, bits, threads, weight_power;
} search_opts;

/* The file of shard r of --db-shards PATTERN in out: the pattern with its one %d (or %Nd, %0Nd)
 * replaced by r and %% by %. Returns 0, -1 when the path does not fit in cap, -2 when the pattern
 * is not one conversion of those (none, two, another). */
int search_shard_path(const char *pat, int r, char *out, size_t cap);
/* Writes PREFIX.indices.npy and PREFIX.distances.npy (float32 when weighted), then the manifest;
 * 0, or -1 after printing why. */
int search_save(fio_set *set, size_t nq, int64_t k, const int64_t *idx, const void *dist,
                int weighted);
/* How distances are measured, for the summary line. */
void search_mode_text(const search_opts *o, const hm_weights *hw, char *mode, size_t cap);

/* The search over slices of the database, on every process (dist.h): returns the exit status. */
int search_slices(search_opts *o);

#endif
