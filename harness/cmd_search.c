/* drsch search: exact k-nearest-neighbour search in Hamming (or weighted Hamming) space over
 * packed codes read from .npy files; writes PREFIX.indices.npy (int64, Q x K) and
 * PREFIX.distances.npy (int32, or float32 with --weights), one output set (PREFIX.manifest).
 * Ties are ordered by database index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "cmd_search.h"
#include "dist.h"
#include "experiment.h"
#include "flags.h"
#include "hamming.h"
#include "inputs.h"
#include "npy.h"

/* The file of shard r of --db-shards PATTERN in out: the pattern with its one %d (or %Nd, %0Nd)
 * replaced by r and %% by %. Returns 0, -1 when the path does not fit in cap, -2 when the pattern
 * is not one conversion of those (none, two, another). */
int search_shard_path(const char *pat, int r, char *out, size_t cap)
{
    size_t o = 0;
    int convs = 0;
    for (const char *p = pat; *p; p++) {
        char piece[48] = {*p, 0};
        if (*p == '%' && p[1] == '%') {
            p++;
        } else if (*p == '%') {
            const char *d = p + 1;
            int width = 0, zero = *d == '0';
            while (*d >= '0' && *d <= '9' && width < 100)
                width = width * 10 + (*d++ - '0');
            if (*d != 'd' || width > 20)
                return -2;
            snprintf(piece, sizeof piece, zero ? "%0*d" : "%*d", width, r);
            convs++;
            p = d;
        }
        size_t len = strlen(piece);
        if (o + len >= cap)
            return convs > 1 ? -2 : -1;
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = '\0';
    return convs == 1 ? 0 : -2;
}

/* Parses the flags; returns -1 to go on, else the exit status (0 after the help). */
static int parse(int argc, char **argv, search_opts *o)
{
    *o = (search_opts){.k = 0, .weight_power = 1};
    cli_flag flags[] = {
        CLI_STRING("db", &o->db_path, "FILE",
                   "database codes (required, or --db-shards); under mpirun each process reads "
                   "its slice of the rows alone (a file every machine sees)"),
        CLI_STRING("db-shards", &o->db_shards, "PATTERN",
                   "the database pre-split in files, e.g. db.%d.npy: process r (of mpirun -n P) "
                   "reads file r alone, P files for P processes, rows numbered through them in "
                   "order; instead of --db (default: off)"),
        CLI_STRING("queries", &o->q_path, "FILE", "query codes (required)"),
        CLI_STRING("out", &o->out, "PREFIX",
                   "writes PREFIX.indices.npy (int64, Q x K) and PREFIX.distances.npy (int32; "
                   "float32 with --weights) (required), published together with PREFIX.manifest "
                   "(a second run writing PREFIX at the same time is refused); a prefix inside a "
                   "directory, e.g. DIR/results, not DIR itself"),
        CLI_INT("k", &o->k, 1, INT64_MAX, "K",
                "neighbours per query, 1..N (default 100, or N if "
                "N < 100)"),
        CLI_INT("bits", &o->bits, 1, HM_MAX_BITS, "B",
                "use the first B bits of each code (prefix truncation) (default: all bits of the "
                "files, or the length of --weights, with a note when that is shorter)"),
        CLI_STRING("weights", &o->w_path, "FILE",
                   "float32 or float64 (B,) per-bit weights, all finite, B between --bits (or 1) "
                   "and the bits stored per code: rank by weighted Hamming distance, the sum of "
                   "w_i over differing bits (default: off)"),
        CLI_INT("weight-power", &o->weight_power, 1, 2, "P",
                "with --weights: 1 uses the file's weights as given, 2 their squares. Weights of "
                "drsch encode --weight-power 1 are |w|: 2 then ranks by the distance DRSCH's loss "
                "learned (sum of w^2 over differing bits), 1 by sum of |w|"),
        CLI_INT("threads", &o->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_STRING("isa", &o->isa_name, "I",
                   "the instruction set of the search kernels: scalar, avx2, avx512 or neon "
                   "(default: DRSCH_FORCE_ISA or the best the CPU supports)"),
        CLI_END,
    };
    int rc = cli_flags_parse("search", flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch search --db DB.npy --queries Q.npy --out PREFIX [options]\n\n"
               "Exact top-k Hamming search. Codes are uint8 .npy arrays (N, ceil(bits/8)), bit\n"
               "i in byte i/8 at bit i%%8. Results are ordered by (distance, database index).\n\n");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    const char *missing[3];
    int nmissing = 0;
    if (!o->db_path && !o->db_shards)
        missing[nmissing++] = "--db FILE";
    if (!o->q_path)
        missing[nmissing++] = "--queries FILE";
    if (!o->out)
        missing[nmissing++] = "--out PREFIX";
    if (nmissing) {
        in_report_missing("search", missing, nmissing, NULL);
        return EXIT_USAGE;
    }
    char probe[4096];
    if (o->db_path && o->db_shards) {
        fprintf(stderr, "drsch search: --db and --db-shards name the database twice; give one\n");
        return EXIT_USAGE;
    }
    if (o->db_shards && search_shard_path(o->db_shards, 0, probe, sizeof probe) == -2) {
        fprintf(stderr,
                "drsch search: --db-shards %s: the pattern needs one %%d (or %%0Nd) for the "
                "process's rank, e.g. db.%%d.npy (%%%% for a %%)\n",
                o->db_shards);
        return EXIT_USAGE;
    }
    if (cli_flag_given(flags, "weight-power") && !o->w_path) {
        fprintf(stderr, "drsch search: --weight-power sets how --weights FILE is used; give "
                        "--weights FILE\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* Loads the database and query codes (and the weights) and cuts them to the bits searched; sets
 * o->bits to the length of the weights when --bits was not given. */
static int load_inputs(search_opts *o, hm_codes *db, hm_codes *q, float **w)
{
    drsch_error err;
    /* Refuse before reading codes that cannot fit: a file is read whole, then repacked into
     * 8-byte words (at most 8x for 1-byte codes, padded rows). */
    struct stat sd, sq;
    if (stat(o->db_path, &sd) == 0 && stat(o->q_path, &sq) == 0 &&
        cli_check_memory("search", "loading these codes",
                         9.0 * ((double)sd.st_size + (double)sq.st_size)))
        return -1;
    /* Load once at full length to learn the file's code length, then truncate in memory. */
    if (npy_load_codes(o->db_path, 0, db, &err) != DRSCH_OK ||
        npy_load_codes(o->q_path, 0, q, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return -1;
    }
    if (db->bits != q->bits) {
        fprintf(stderr,
                "drsch search: code lengths differ: %s has %u-bit codes (%zu bytes), %s has %u-bit "
                "codes (%zu bytes)\n",
                o->db_path, db->bits, hm_bytes_for_bits(db->bits), o->q_path, q->bits,
                hm_bytes_for_bits(q->bits));
        return -1;
    }
    uint32_t file_bits = db->bits;
    if (o->bits > (int64_t)file_bits) {
        fprintf(stderr, "drsch search: --bits %lld exceeds the %u bits stored per code in %s\n",
                (long long)o->bits, file_bits, o->db_path);
        return -1;
    }
    if (o->w_path) {
        size_t wlen;
        if (in_load_weights("search", o->w_path, o->bits ? (size_t)o->bits : 1, file_bits,
                            (int)o->weight_power, w, &wlen))
            return -1;
        if (!o->bits) {
            o->bits = (int64_t)wlen;
            if (wlen < file_bits) /* said, never silent: the weights may be another run's */
                fprintf(stderr,
                        "drsch search: %s has %zu weights: searching the first %zu of the %u bits "
                        "of each "
                        "code (--bits %zu says so and silences this note)\n",
                        o->w_path, wlen, wlen, file_bits, wlen);
        }
    }
    if (o->bits && (uint32_t)o->bits != file_bits) {
        hm_codes t1 = {0}, t2 = {0};
        int bad = xp_codes_prefix(db, (uint32_t)o->bits, &t1) ||
                  xp_codes_prefix(q, (uint32_t)o->bits, &t2);
        hm_codes_free(db);
        hm_codes_free(q);
        *db = t1;
        *q = t2;
        if (bad) {
            fprintf(stderr, "drsch search: out of memory\n");
            return -1;
        }
    }
    if (db->n == 0 || q->n == 0) {
        fprintf(stderr, "drsch search: %s is empty\n", db->n == 0 ? o->db_path : o->q_path);
        return -1;
    }
    return 0;
}

/* PREFIX.indices.npy and PREFIX.distances.npy (float32 when weighted), then the manifest. Not
 * synced to the disk: a search's results are quicker to compute again than the four fsyncs took
 * (9.5 ms of a search of 1,000 queries in one traced run), and after a crash of the machine a
 * member that did not reach the disk fails the manifest's CRC-32 and is refused, not read. */
int search_save(fio_set *set, size_t nq, int64_t k, const int64_t *idx, const void *dist,
                int weighted)
{
    drsch_error err;
    set->durable = 0;
    size_t shape[2] = {nq, (size_t)k};
    fio_out *o = fio_set_add(set, "indices.npy", &err);
    drsch_status st = o ? npy_write(o, NPY_I64, 2, shape, idx, &err) : DRSCH_ERR_ARG;
    if (st == DRSCH_OK) {
        o = fio_set_add(set, "distances.npy", &err);
        st = o ? npy_write(o, weighted ? NPY_F32 : NPY_I32, 2, shape, dist, &err) : DRSCH_ERR_ARG;
    }
    if (st != DRSCH_OK || fio_set_commit(set, &err) != 0) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* How distances are measured, for the summary line. */
void search_mode_text(const search_opts *o, const hm_weights *hw, char *mode, size_t cap)
{
    snprintf(mode, cap, "hamming");
    if (hw) /* distances are exact sums of the quantised weights */
        snprintf(mode, cap,
                 "weighted%s (weights quantised to multiples of 2^%d, step %g, so equal "
                 "distances tie exactly)",
                 o->weight_power == 2 ? ", squared weights" : "", ilogb(hm_weights_step(hw)),
                 hm_weights_step(hw));
}

/* Loads the codes, searches and writes the set begun in `set`. */
static int run(search_opts *o, fio_set *set, int nthreads)
{
    double t0 = cli_now();
    int rc = 1;
    drsch_error err;
    hm_codes db = {0}, q = {0};
    hm_weights *hw = NULL;
    float *w = NULL;
    int64_t *idx = NULL;
    void *dist = NULL;
    if (load_inputs(o, &db, &q, &w))
        goto done;
    int64_t k = o->k ? o->k : db.n < 100 ? (int64_t)db.n : 100;
    if ((uint64_t)k > db.n) {
        fprintf(stderr, "drsch search: --k %lld is larger than the database (%zu codes in %s)\n",
                (long long)k, db.n, o->db_path);
        goto done;
    }
    if (w && hm_weights_create(&hw, w, db.bits, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s: %s\n", o->w_path, err.msg);
        goto done;
    }
    size_t nres = q.n * (size_t)k;
    if (cli_check_memory("search", "the results (12 bytes per query and neighbour)",
                         (double)nres * 12.0))
        goto done;
    /* Both in one block on huge pages (hm_buffer_alloc): fewer first-touch faults, and at the
     * usual sizes (1.2 MB for 1000 queries x 100) one huge page to clear instead of two. */
    idx = hm_buffer_alloc(nres * (sizeof *idx + 4));
    dist = idx ? (void *)(idx + nres) : NULL;
    if (!idx) {
        fprintf(stderr, "drsch search: out of memory for %zu results (%zu MiB)\n", nres,
                nres * 12 >> 20);
        goto done;
    }
    double t1 = cli_now();
    drsch_status st = hw ? hm_knn_weighted(&db, &q, (size_t)k, hw, idx, dist, &err)
                         : hm_knn(&db, &q, (size_t)k, idx, dist, &err);
    double t2 = cli_now();
    if (st != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        goto done;
    }
    if (search_save(set, q.n, k, idx, dist, hw != NULL))
        goto done;
    double t3 = cli_now();
    double cmp = (double)db.n * (double)q.n;
    char mode[160];
    search_mode_text(o, hw, mode, sizeof mode);
    fprintf(stderr,
            "drsch search: %zu queries x %zu codes, %u bits, k=%lld, %s, isa=%s, threads=%d: "
            "load %.3f s, search %.3f s (%.3f G comparisons/s), write %.3f s, total %.3f s, peak "
            "memory %.0f MiB\n",
            q.n, db.n, db.bits, (long long)k, mode, hm_isa_name(hm_isa_active()), nthreads, t1 - t0,
            t2 - t1, cmp / (t2 - t1) * 1e-9, t3 - t2, t3 - t0, cli_max_rss() / (1 << 20));
    rc = 0;
done:
    hm_buffer_free(idx); /* and dist, in the same block */
    free(w);
    hm_weights_free(hw);
    hm_codes_free(&db);
    hm_codes_free(&q);
    return rc;
}

/* Under mpirun: every process parses the same flags (rank 0 alone reports their errors), then
 * searches its slice. */
static int search_mpi(int argc, char **argv)
{
    if (dist_init("search"))
        return 1;
    search_opts o;
    dist_hold();
    int prc = parse(argc, argv, &o); /* the same on every rank */
    int rc = dist_release("search", prc > 0 ? prc : 0);
    if (prc < 0 && !rc)
        rc = search_slices(&o);
    else if (prc >= 0)
        rc = prc;
    dist_finalize();
    return rc;
}

int cmd_search(int argc, char **argv)
{
    if (dist_launched())
        return search_mpi(argc, argv);
    search_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.db_shards) /* one process: one shard */
        return search_slices(&o);
    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    if (o.isa_name) {
        hm_isa isa;
        if (hm_isa_parse(o.isa_name, &isa, &err) != DRSCH_OK || hm_isa_set(isa, &err) != DRSCH_OK) {
            fprintf(stderr, "drsch search: --isa: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    int nthreads = cli_set_threads((int)o.threads);
    /* Before any work: the outputs can be written, the inputs are files. */
    if (cli_check_output_prefix("search", "--out", o.out))
        return EXIT_USAGE;
    if (in_check_input("search", "--db", o.db_path) ||
        in_check_input("search", "--queries", o.q_path) ||
        (o.w_path && in_check_input("search", "--weights", o.w_path)))
        return 1;
    /* indices and distances are one output set (PREFIX.manifest), under a lock on PREFIX */
    fio_set set;
    if (fio_set_begin(&set, o.out, &err) != 0) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    rc = run(&o, &set, nthreads);
    fio_set_abort(&set); /* after a commit: nothing left to remove */
    return rc;
}
