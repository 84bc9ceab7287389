/* drsch search over slices of the database: under mpirun each process reads its own slice of
 * --db (a positioned read of its rows) or its own --db-shards file, searches it with its OpenMP
 * threads, and process 0 gathers every process's top-k lists and merges them exactly by
 * (distance, global database index) (hm_knn_merge), then writes the same files as the
 * one-process run, byte for byte. Every fallible step ends on every process at once (dist.h):
 * one failure ends the run everywhere, with one message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cmd_search.h"
#include "commands.h"
#include "dist.h"
#include "experiment.h"
#include "inputs.h"
#include "npy.h"

/* ---- several processes (mpirun), or --db-shards: one slice of the database each ------------ */

/* What one process holds of a search over slices of the database. */
typedef struct {
    char shard[4096]; /* this rank's --db-shards file */
    int locked;       /* rank 0 holds the output set (fio_set_begin) */
    const char *file; /* --db, or shard */
    hm_codes db, q;   /* this rank's slice (rows r0.. of the whole), every query */
    float *w;
    hm_weights *hw;
    uint64_t *rows; /* every rank's slice length */
    size_t n, r0, row_bytes, k_local;
    int64_t k, *idx; /* this rank's top k_local of each query, global indices */
    void *dist;
    double t_load, t_search;
} dslice;

/* Checks made before work (as the one-process run makes them), and the lock on PREFIX (rank 0).
 * Returns the exit status of this rank (0: go on). */
static int dslice_setup(search_opts *o, dslice *d, fio_set *set, int *nthreads)
{
    drsch_error err;
    int rank = dist_rank(), size = dist_size();
    if (hm_isa_init(&err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    hm_isa isa;
    if (o->isa_name &&
        (hm_isa_parse(o->isa_name, &isa, &err) != DRSCH_OK || hm_isa_set(isa, &err) != DRSCH_OK)) {
        fprintf(stderr, "drsch search: --isa: %s\n", err.msg);
        return EXIT_USAGE;
    }
    *nthreads = cli_set_threads((int)o->threads);
    if (rank == 0 && cli_check_output_prefix("search", "--out", o->out))
        return EXIT_USAGE;
    d->file = o->db_path;
    if (o->db_shards) {
        if (search_shard_path(o->db_shards, rank, d->shard, sizeof d->shard)) {
            fprintf(stderr, "drsch search: --db-shards %s: the path is too long\n", o->db_shards);
            return 1;
        }
        d->file = d->shard;
        char extra[sizeof d->shard];
        struct stat sb;
        if (!search_shard_path(o->db_shards, size, extra,
                               sizeof extra) && /* every rank: one message */
            stat(extra, &sb) == 0) {
            fprintf(stderr,
                    "drsch search: --db-shards %s: %s exists, but there are %d ranks: one rank "
                    "per shard (mpirun -n <number of shards>)\n",
                    o->db_shards, extra, size);
            return 1;
        }
    }
    if (in_check_input("search", o->db_shards ? "--db-shards" : "--db", d->file) ||
        in_check_input("search", "--queries", o->q_path) ||
        (o->w_path && in_check_input("search", "--weights", o->w_path)))
        return 1;
    if (rank == 0 && fio_set_begin(set, o->out, &err) != 0) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    d->locked = rank == 0;
    return 0;
}

/* This rank's slice of --db: rows [r0, r1) of n, the first n % size ranks one row more. */
static void slice_of(size_t n, size_t *r0, size_t *len)
{
    size_t rank = (size_t)dist_rank(), size = (size_t)dist_size(), base = n / size;
    *r0 = rank * base + (rank < n % size ? rank : n % size);
    *len = base + (rank < n % size);
}

/* The database's shape (the header of --db or of this rank's shard) and the queries. */
static int dslice_headers(search_opts *o, dslice *d)
{
    drsch_error err;
    if (npy_codes_shape(d->file, &d->n, &d->row_bytes, &err) != DRSCH_OK ||
        npy_load_codes(o->q_path, 0, &d->q, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* The shards' code widths agree; with --db, every rank read the same header (a file that
 * differs between machines would mix two databases). shape: every rank's rows, then widths. */
static int dslice_check_files(const search_opts *o, const uint64_t *shape)
{
    int size = dist_size();
    for (int r = 1; r < size; r++) {
        const uint64_t *w = shape + size;
        if (o->db_shards && w[r] != w[0]) {
            char a[4096], b[4096];
            search_shard_path(o->db_shards, 0, a, sizeof a);
            search_shard_path(o->db_shards, r, b, sizeof b);
            fprintf(stderr,
                    "drsch search: --db-shards: the shards' codes differ in width: %s has %llu "
                    "bytes per code, %s has %llu\n",
                    a, (unsigned long long)w[0], b, (unsigned long long)w[r]);
            return 1;
        }
        if (!o->db_shards && (w[r] != w[0] || shape[r] != shape[0])) {
            fprintf(stderr,
                    "drsch search: --db %s differs between ranks: rank 0 read %llu codes of %llu "
                    "bytes, rank %d %llu of %llu; --db needs a file system every machine shares "
                    "(--db-shards reads local files)\n",
                    o->db_path, (unsigned long long)shape[0], (unsigned long long)w[0], r,
                    (unsigned long long)shape[r], (unsigned long long)w[r]);
            return 1;
        }
    }
    return 0;
}

/* What the shapes say (, the code lengths, --bits, --weights, --k), then this
 * rank's slice at the bits searched. */
static int dslice_load(search_opts *o, dslice *d)
{
    drsch_error err;
    const char *name = o->db_shards ? o->db_shards : o->db_path;
    uint32_t file_bits = (uint32_t)(d->row_bytes * 8);
    if (file_bits != d->q.bits) {
        fprintf(stderr,
                "drsch search: code lengths differ: %s has %u-bit codes (%zu bytes), %s has %u-bit "
                "codes (%zu bytes)\n",
                name, file_bits, d->row_bytes, o->q_path, d->q.bits, hm_bytes_for_bits(d->q.bits));
        return 1;
    }
    if (o->bits > (int64_t)file_bits) {
        fprintf(stderr, "drsch search: --bits %lld exceeds the %u bits stored per code in %s\n",
                (long long)o->bits, file_bits, name);
        return 1;
    }
    size_t wlen;
    if (o->w_path && in_load_weights("search", o->w_path, o->bits ? (size_t)o->bits : 1, file_bits,
                                     (int)o->weight_power, &d->w, &wlen))
        return 1;
    if (o->w_path && !o->bits) {
        o->bits = (int64_t)wlen;
        if (wlen < file_bits)
            fprintf(stderr,
                    "drsch search: %s has %zu weights: searching the first %zu of the %u bits of "
                    "each code (--bits %zu says so and silences this note)\n",
                    o->w_path, wlen, wlen, file_bits, wlen);
    }
    if (d->n == 0 || d->q.n == 0) {
        fprintf(stderr, "drsch search: %s is empty\n", d->n == 0 ? name : o->q_path);
        return 1;
    }
    d->k = o->k ? o->k : d->n < 100 ? (int64_t)d->n : 100;
    if ((uint64_t)d->k > d->n) {
        fprintf(stderr, "drsch search: --k %lld is larger than the database (%zu codes in %s)\n",
                (long long)d->k, d->n, name);
        return 1;
    }
    uint32_t bits = o->bits ? (uint32_t)o->bits : file_bits;
    size_t len = d->rows[dist_rank()];
    d->k_local = len < (size_t)d->k ? len : (size_t)d->k;
    if (cli_check_memory("search", "loading these codes",
                         9.0 * (double)(len * d->row_bytes + d->q.n * d->row_bytes)) ||
        cli_check_memory("search", "the results (12 bytes per query and neighbour)",
                         12.0 * (double)(d->q.n * d->k_local)))
        return 1;
    size_t f0 = o->db_shards ? 0 : d->r0; /* the slice's first row in its file */
    drsch_status st = npy_load_codes_rows(d->file, f0, f0 + len, bits, &d->db, &err);
    if (st == DRSCH_OK && bits != file_bits) {
        hm_codes t = {0};
        st = xp_codes_prefix(&d->q, bits, &t);
        hm_codes_free(&d->q);
        d->q = t;
        if (st != DRSCH_OK)
            snprintf(err.msg, sizeof err.msg, "out of memory");
    }
    if (st == DRSCH_OK && d->w && hm_weights_create(&d->hw, d->w, bits, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s: %s\n", o->w_path, err.msg);
        return 1;
    }
    d->idx = malloc(d->q.n * d->k_local * sizeof *d->idx + 1);
    d->dist = malloc(d->q.n * d->k_local * 4 + 1);
    if (st == DRSCH_OK && (!d->idx || !d->dist))
        st =
            drsch_fail(&err, DRSCH_ERR_NOMEM, "out of memory for %zu results", d->q.n * d->k_local);
    if (st != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* This rank's top k_local of each query, with global database indices. */
static int dslice_search(dslice *d)
{
    drsch_error err;
    drsch_status st = DRSCH_OK;
    double t = cli_now();
    if (d->k_local)
        st = d->hw ? hm_knn_weighted(&d->db, &d->q, d->k_local, d->hw, d->idx, d->dist, &err)
                   : hm_knn(&d->db, &d->q, d->k_local, d->idx, d->dist, &err);
    d->t_search = cli_now() - t;
    if (st != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < d->q.n * d->k_local; i++)
        d->idx[i] += (int64_t)d->r0;
    return 0;
}

/* Rank 0 gathers every rank's lists, a block of queries at a time, and merges them exactly by
 * (distance, global index) into out_idx / out_dist (allocated by rank 0 in dslice_alloc).
 * Every rank takes part. Returns rank 0's merge status; *bytes: what rank 0 received. */
static drsch_status dslice_merge(const dslice *d, int64_t *out_idx, void *out_dist, char *rbuf,
                                 size_t chunk, double *bytes, drsch_error *err)
{
    int size = dist_size(), rank0 = dist_rank() == 0;
    size_t *lens = malloc((size_t)size * 3 * sizeof *lens), sum = 0;
    const void **lists = malloc((size_t)size * 2 * sizeof *lists);
    if (!lens || !lists) /* a few words per rank: as MPI's own failures, fatal (dist.h) */
        abort();
    size_t *counts = lens + size, *dcounts = lens + 2 * size;
    for (int r = 0; r < size; r++)
        sum += lens[r] = d->rows[r] < (uint64_t)d->k ? (size_t)d->rows[r] : (size_t)d->k;
    drsch_status st = DRSCH_OK;
    *bytes = 0;
    for (size_t q0 = 0; q0 < d->q.n; q0 += chunk) {
        size_t nc = d->q.n - q0 < chunk ? d->q.n - q0 : chunk, at = 0;
        char *ridx = rbuf, *rdist = rank0 ? rbuf + nc * sum * 8 : NULL;
        for (int r = 0; r < size; r++) {
            counts[r] = nc * lens[r] * 8;
            dcounts[r] = nc * lens[r] * 4;
            lists[r] = rank0 ? ridx + at * 8 : NULL;
            lists[size + r] = rank0 ? rdist + at * 4 : NULL;
            at += nc * lens[r];
        }
        dist_gather(d->idx + q0 * d->k_local, nc * d->k_local * 8, ridx, counts);
        dist_gather((char *)d->dist + q0 * d->k_local * 4, nc * d->k_local * 4, rdist, dcounts);
        *bytes += (double)(nc * sum * 12);
        if (!rank0 || st != DRSCH_OK)
            continue;
        size_t k = (size_t)d->k, ns = (size_t)size;
        st = d->hw ? hm_knn_merge_weighted(nc, k, ns, lens, (const int64_t *const *)lists,
                                           (const float *const *)(lists + size), out_idx + q0 * k,
                                           (float *)out_dist + q0 * k, err)
                   : hm_knn_merge(nc, k, ns, lens, (const int64_t *const *)lists,
                                  (const int32_t *const *)(lists + size), out_idx + q0 * k,
                                  (int32_t *)out_dist + q0 * k, err);
    }
    free(lens);
    free(lists);
    return st;
}

/* Gathers, merges and writes (rank 0); the summary line. Every rank takes part. */
static int dslice_finish(search_opts *o, dslice *d, fio_set *set, int nthreads, double t0)
{
    int rank0 = dist_rank() == 0, size = dist_size();
    size_t sum = 0, lo = SIZE_MAX, hi = 0, nres = d->q.n * (size_t)d->k;
    for (int r = 0; r < size; r++) {
        sum += d->rows[r] < (uint64_t)d->k ? (size_t)d->rows[r] : (size_t)d->k;
        lo = d->rows[r] < lo ? (size_t)d->rows[r] : lo;
        hi = d->rows[r] > hi ? (size_t)d->rows[r] : hi;
    }
    /* queries per gather: at most 64 MiB received at a time (and MPI's int counts) */
    size_t chunk = ((size_t)64 << 20) / (sum * 12);
    chunk = chunk < 1 ? 1 : chunk > d->q.n ? d->q.n : chunk;
    int64_t *idx = NULL;
    void *dist = NULL;
    char *rbuf = NULL;
    dist_hold();
    if (rank0) {
        idx = malloc(nres * sizeof *idx);
        dist = malloc(nres * 4);
        rbuf = malloc(chunk * sum * 12);
        if (!idx || !dist || !rbuf)
            fprintf(stderr, "drsch search: out of memory for %zu results (%zu MiB)\n", nres,
                    nres * 12 >> 20);
    }
    int rc = dist_release("search", rank0 && (!idx || !dist || !rbuf));
    double t_load = dist_max(d->t_load), t_search = dist_max(d->t_search), bytes = 0;
    double t1 = cli_now(), t2 = t1;
    if (!rc) {
        drsch_error err;
        drsch_status st = dslice_merge(d, idx, dist, rbuf, chunk, &bytes, &err);
        t2 = cli_now();
        dist_hold();
        if (rank0 && st != DRSCH_OK)
            fprintf(stderr, "drsch search: %s\n", err.msg);
        int bad =
            rank0 && (st != DRSCH_OK || search_save(set, d->q.n, d->k, idx, dist, d->hw != NULL));
        rc = dist_release("search", bad);
    }
    double t3 = cli_now();
    if (!rc && rank0) {
        char mode[160];
        search_mode_text(o, d->hw, mode, sizeof mode);
        fprintf(stderr,
                "drsch search: %zu queries x %zu codes, %u bits, k=%lld, %s, isa=%s, threads=%d, "
                "ranks=%d (slices of %zu to %zu codes): load %.3f s, search %.3f s (slowest "
                "rank; %.3f G comparisons/s), merge %.3f s (%.3f MiB gathered), write %.3f s, "
                "total %.3f s, peak memory %.0f MiB (rank 0)\n",
                d->q.n, d->n, d->db.bits, (long long)d->k, mode, hm_isa_name(hm_isa_active()),
                nthreads, size, lo, hi, t_load, t_search,
                (double)d->n * (double)d->q.n / t_search * 1e-9, t2 - t1, bytes / (1 << 20),
                t3 - t2, t3 - t0, cli_max_rss() / (1 << 20));
    }
    free(idx);
    free(dist);
    free(rbuf);
    return rc;
}

/* The search over slices, on every rank: each step's failure on any rank ends every rank after
 * one message (dist.h). */
int search_slices(search_opts *o)
{
    double t0 = cli_now();
    dslice d = {0};
    fio_set set;
    int nthreads = 1, size = dist_size(), rank = dist_rank();
    dist_hold();
    int rc = dist_release("search", dslice_setup(o, &d, &set, &nthreads));
    uint64_t *shape = malloc((size_t)size * 2 * sizeof *shape);
    d.rows = malloc((size_t)size * sizeof *d.rows);
    if (!shape || !d.rows) /* a few words per rank */
        abort();
    if (!rc) {
        dist_hold();
        rc = dist_release("search", dslice_headers(o, &d));
    }
    if (!rc) {
        /* every rank's row count and code width; --db: every rank saw the same header */
        dist_allgather_u64(d.n, shape);
        dist_allgather_u64(d.row_bytes, shape + size);
        size_t len = d.n;
        if (o->db_shards) {
            d.n = 0;
            for (int r = 0; r < size; r++)
                d.n += shape[r];
            for (int r = 0; r < rank; r++)
                d.r0 += shape[r];
        } else {
            slice_of(d.n, &d.r0, &len);
        }
        dist_allgather_u64(len, d.rows);
        dist_hold();
        rc = dist_release("search", dslice_check_files(o, shape) || dslice_load(o, &d));
        d.t_load = cli_now() - t0;
    }
    if (!rc) {
        dist_hold();
        rc = dist_release("search", dslice_search(&d));
    }
    if (!rc)
        rc = dslice_finish(o, &d, &set, nthreads, t0);
    if (d.locked)
        fio_set_abort(&set); /* after a commit: nothing left to remove */
    free(shape);
    free(d.rows);
    free(d.w);
    free(d.idx);
    free(d.dist);
    hm_weights_free(d.hw);
    hm_codes_free(&d.db);
    hm_codes_free(&d.q);
    return rc;
}
