/* drsch search: exact k-nearest-neighbour search in Hamming (or weighted Hamming) space over
 * packed codes read from .npy files; writes PREFIX.indices.npy (int64, Q x K) and
 * PREFIX.distances.npy (int32, or float32 with --weights), one output set (PREFIX.manifest).
 * Ties are ordered by database index. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "experiment.h"
#include "hamming.h"
#include "inputs.h"
#include "npy.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch search --db DB.npy --queries Q.npy --out PREFIX [options]\n\n"
        "Exact top-k Hamming search. Codes are uint8 .npy arrays (N, ceil(bits/8)), bit i in\n"
        "byte i/8 at bit i%%8. Results are ordered by (distance, database index).\n\n"
        "  --db FILE        database codes (required)\n"
        "  --queries FILE   query codes (required)\n"
        "  --out PREFIX     writes PREFIX.indices.npy (int64, Q x K) and\n"
        "                   PREFIX.distances.npy (int32; float32 with --weights) (required),\n"
        "                   published together with PREFIX.manifest (a second run writing\n"
        "                   PREFIX at the same time is refused);\n"
        "                   a prefix inside a directory, e.g. DIR/results, not DIR itself\n"
        "  --k K            neighbours per query, 1..N (default 100, or N if N < 100)\n"
        "  --bits B         use the first B bits of each code (prefix truncation)\n"
        "                   (default: all bits of the files, or the length of --weights,\n"
        "                   with a note when that is shorter)\n"
        "  --weights FILE   float32 or float64 (B,) per-bit weights, all finite, B between\n"
        "                   --bits (or 1) and the bits stored per code: rank by weighted\n"
        "                   Hamming distance, the sum of w_i over differing bits (default: off)\n"
        "  --threads T      OpenMP threads, 0 = OMP_NUM_THREADS or all cores (default 0)\n"
        "  --isa I          scalar|avx2|avx512|neon (default: DRSCH_FORCE_ISA or the best\n"
        "                   the CPU supports)\n"
        "  -h, --help       this text\n");
}

int cmd_search(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},      {"queries", required_argument, 0, 'q'},
        {"out", required_argument, 0, 'o'},     {"k", required_argument, 0, 'k'},
        {"bits", required_argument, 0, 'b'},    {"weights", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'}, {"isa", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *db_path = NULL, *q_path = NULL, *out = NULL, *w_path = NULL, *isa_name = NULL;
    int64_t k = 0, bits = 0, threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'q': q_path = optarg; break;
        case 'o': out = optarg; break;
        case 'w': w_path = optarg; break;
        case 'i': isa_name = optarg; break;
        case 'k':
            if (cli_parse_i64("search", "--k", optarg, 1, INT64_MAX, &k))
                return EXIT_USAGE;
            break;
        case 'b':
            if (cli_parse_i64("search", "--bits", optarg, 1, HM_MAX_BITS, &bits))
                return EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_i64("search", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("search");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "drsch search: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    const char *missing[3];
    int nmissing = 0;
    if (!db_path)
        missing[nmissing++] = "--db FILE";
    if (!q_path)
        missing[nmissing++] = "--queries FILE";
    if (!out)
        missing[nmissing++] = "--out PREFIX";
    if (nmissing) {
        in_report_missing("search", missing, nmissing, NULL);
        return EXIT_USAGE;
    }

    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }
    if (isa_name) {
        hm_isa isa;
        if (hm_isa_parse(isa_name, &isa, &err) != DRSCH_OK || hm_isa_set(isa, &err) != DRSCH_OK) {
            fprintf(stderr, "drsch search: --isa: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    int nthreads = cli_set_threads((int)threads);
    /* Before any work: the outputs can be written, the inputs are files. */
    if (cli_check_output_prefix("search", "--out", out))
        return EXIT_USAGE;
    if (in_check_input("search", "--db", db_path) ||
        in_check_input("search", "--queries", q_path) ||
        (w_path && in_check_input("search", "--weights", w_path)))
        return 1;
    /* indices and distances are one output set (PREFIX.manifest), under a lock on PREFIX */
    fio_set set;
    if (fio_set_begin(&set, out, err.msg, sizeof err.msg) != 0) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        return 1;
    }

    double t0 = cli_now();
    int rc = 1;
    hm_codes db = {0}, q = {0};
    hm_weights *hw = NULL;
    float *w = NULL;
    int64_t *idx = NULL;
    void *dist = NULL;

    /* Refuse before reading codes that cannot fit: a file is read whole, then repacked into
     * 8-byte words (at most 8x for 1-byte codes, padded rows). */
    {
        struct stat sd, sq;
        if (stat(db_path, &sd) == 0 && stat(q_path, &sq) == 0 &&
            cli_check_memory("search", "loading these codes",
                             9.0 * ((double)sd.st_size + (double)sq.st_size)))
            goto done;
    }
    /* Load once at full length to learn the file's code length, then truncate in memory. */
    if (npy_load_codes(db_path, 0, &db, &err) != DRSCH_OK ||
        npy_load_codes(q_path, 0, &q, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        goto done;
    }
    if (db.bits != q.bits) {
        fprintf(stderr,
                "drsch search: code lengths differ: %s has %u-bit codes (%zu bytes), %s has %u-bit "
                "codes (%zu bytes)\n",
                db_path, db.bits, hm_bytes_for_bits(db.bits), q_path, q.bits,
                hm_bytes_for_bits(q.bits));
        goto done;
    }
    uint32_t file_bits = db.bits;
    if (bits > (int64_t)file_bits) {
        fprintf(stderr, "drsch search: --bits %lld exceeds the %u bits stored per code in %s\n",
                (long long)bits, file_bits, db_path);
        goto done;
    }
    if (w_path) {
        size_t wlen;
        if (in_load_weights("search", w_path, bits ? (size_t)bits : 1, file_bits, &w, &wlen))
            goto done;
        if (!bits) {
            bits = (int64_t)wlen;
            if (wlen < file_bits) /* said, never silent: the weights may be another run's */
                fprintf(stderr,
                        "drsch search: %s has %zu weights: searching the first %zu of the %u bits "
                        "of each "
                        "code (--bits %zu says so and silences this note)\n",
                        w_path, wlen, wlen, file_bits, wlen);
        }
    }
    if (bits && (uint32_t)bits != file_bits) {
        hm_codes t1 = {0}, t2 = {0};
        int bad =
            xp_codes_prefix(&db, (uint32_t)bits, &t1) || xp_codes_prefix(&q, (uint32_t)bits, &t2);
        hm_codes_free(&db);
        hm_codes_free(&q);
        db = t1;
        q = t2;
        if (bad) {
            fprintf(stderr, "drsch search: out of memory\n");
            goto done;
        }
    }
    if (db.n == 0 || q.n == 0) {
        fprintf(stderr, "drsch search: %s is empty\n", db.n == 0 ? db_path : q_path);
        goto done;
    }
    if (!k)
        k = db.n < 100 ? (int64_t)db.n : 100;
    if ((uint64_t)k > db.n) {
        fprintf(stderr, "drsch search: --k %lld is larger than the database (%zu codes in %s)\n",
                (long long)k, db.n, db_path);
        goto done;
    }
    if (w && hm_weights_create(&hw, w, db.bits, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch search: %s: %s\n", w_path, err.msg);
        goto done;
    }
    size_t nres = q.n * (size_t)k;
    if (cli_check_memory("search", "the results (12 bytes per query and neighbour)",
                         (double)nres * 12.0))
        goto done;
    idx = malloc(nres * sizeof *idx);
    dist = malloc(nres * 4);
    if (!idx || !dist) {
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
    size_t shape[2] = {q.n, (size_t)k};
    fio_out *o = fio_set_add(&set, "indices.npy", err.msg, sizeof err.msg);
    st = o ? npy_write(o, NPY_I64, 2, shape, idx, &err) : DRSCH_ERR_ARG;
    if (st == DRSCH_OK) {
        o = fio_set_add(&set, "distances.npy", err.msg, sizeof err.msg);
        st = o ? npy_write(o, hw ? NPY_F32 : NPY_I32, 2, shape, dist, &err) : DRSCH_ERR_ARG;
    }
    if (st != DRSCH_OK || fio_set_commit(&set, err.msg, sizeof err.msg) != 0) {
        fprintf(stderr, "drsch search: %s\n", err.msg);
        goto done;
    }
    double t3 = cli_now();
    double cmp = (double)db.n * (double)q.n;
    fprintf(stderr,
            "drsch search: %zu queries x %zu codes, %u bits, k=%lld, %s, isa=%s, threads=%d: "
            "load %.3f s, search %.3f s (%.3f G comparisons/s), write %.3f s, total %.3f s, peak "
            "memory %.0f MiB\n",
            q.n, db.n, db.bits, (long long)k, hw ? "weighted" : "hamming",
            hm_isa_name(hm_isa_active()), nthreads, t1 - t0, t2 - t1, cmp / (t2 - t1) * 1e-9,
            t3 - t2, t3 - t0, cli_max_rss() / (1 << 20));
    rc = 0;
done:
    fio_set_abort(&set); /* after a commit: nothing left to remove */
    free(idx);
    free(dist);
    free(w);
    hm_weights_free(hw);
    hm_codes_free(&db);
    hm_codes_free(&q);
    return rc;
}
