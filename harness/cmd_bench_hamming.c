/* drsch bench hamming: exact top-k Hamming (or weighted Hamming) search over seeded random
 * codes, one Google Benchmark entry per ISA. items_per_second = code comparisons per second;
 * bytes_per_second = code bytes compared per second. For performance engineers each entry also
 * carries the machine limits measured in the same run and the fraction of them reached:
 *   limit_items_per_second   the ISA's distance kernel on an L1-resident tile (popcount-bound),
 *   read_bytes_per_second    streaming read bandwidth of a buffer far larger than the caches,
 *   roofline_fraction        measured speed / min(kernel limit, bandwidth limit), where the
 *                            bandwidth limit counts one read of the database per query block.
 * For --weighted the kernel limit is the exact weighted distance kernel; the AVX-512 top-k
 * skips most exact sums with a lower-bound filter, so its fraction can exceed 100%.
 * Every ISA's results are checked against the first ISA's; a mismatch is an error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "hamming.h"
#include "report.h"
#include "rng.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

/* Largest --n: 2^34 codes (128 GiB at 64 bits), so that sizes cannot overflow. */
#define MAX_CODES ((int64_t)1 << 34)

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch bench hamming [options] [--json FILE]\n\n"
        "Exact top-k search over seeded uniform random codes, once per ISA (instruction set),\n"
        "each checked against the first. Prints the time per search, comparisons/s, GB/s of codes\n"
        "compared, and the share reached of the machine's limits measured in the same run (the\n"
        "distance kernel on cached codes, memory read bandwidth).\n\n"
        "  --n N            database codes, 1 to %lld (default 1000000)\n"
        "  --queries Q      queries, 1 to 16777216 (default 1000)\n"
        "  --bits B         code length, 1 to %d (default 64)\n"
        "  --k K            neighbours per query, at most --n (default 100)\n"
        "  --threads T      OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores (default "
        "0)\n"
        "  --isa I          only this ISA: scalar, avx2, avx512 or neon (default: every ISA the\n"
        "                   CPU supports)\n"
        "  --weighted       rank by weighted Hamming distance, seeded weights in [0.5, 1.5)\n"
        "                   (default: plain Hamming distance)\n"
        "  --repetitions R  timed searches per ISA after one untimed one, 1 to 1000; the mean is\n"
        "                   reported (default 3)\n"
        "  --seed S         seed of the random codes (default 1)\n"
        "  --json FILE      also write a Google Benchmark-compatible report (default: none)\n"
        "  -h, --help       this text\n",
        (long long)MAX_CODES, HM_MAX_BITS);
}

static int random_codes(hm_codes *c, size_t n, uint32_t bits, uint64_t seed)
{
    drsch_error err;
    size_t rb = hm_bytes_for_bits(bits);
    uint8_t *bytes = malloc(n * rb + 8);
    if (!bytes)
        return -1;
    uint64_t s = seed;
    for (size_t i = 0; i < n * rb; i += 8) {
        uint64_t r = rng_splitmix64(&s);
        memcpy(bytes + i, &r, 8);
    }
    int rc = hm_codes_from_bytes(c, bytes, n, rb, bits, &err) == DRSCH_OK ? 0 : -1;
    free(bytes);
    return rc;
}

/* Streaming read bandwidth (bytes/s) over a 512 MiB buffer with all threads. */
static double measure_read_bandwidth(void)
{
    size_t words = (size_t)64 << 20;
    uint64_t *buf = malloc(words * sizeof *buf);
    if (!buf)
        return 0;
    memset(buf, 1, words * sizeof *buf);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t acc = 0;
        double t0 = cli_now();
#pragma omp parallel for reduction(^ : acc) schedule(static)
        for (size_t i = 0; i < words; i++)
            acc ^= buf[i];
        double dt = cli_now() - t0;
        if (acc == 42)
            fprintf(stderr, " ");
        double bw = (double)(words * sizeof *buf) / dt;
        if (bw > best)
            best = bw;
    }
    free(buf);
    return best;
}

/* Distance-kernel throughput (comparisons/s) with a 256-code tile resident in L1, all threads. */
static double measure_kernel_limit(uint32_t bits, const hm_weights *w)
{
    hm_codes tile = {0}, q = {0};
    size_t n = 256;
    if (random_codes(&tile, n, bits, 99) || random_codes(&q, 1, bits, 98))
        return 0;
    size_t reps = (size_t)(2e8 / ((double)n * (double)hm_words_for_bits(bits))) + 1;
    int threads = cli_max_threads();
    double t0 = cli_now();
#pragma omp parallel
    {
        uint32_t d[256];
        float fd[256];
        for (size_t r = 0; r < reps; r++) {
            if (w)
                hm_weighted_distances(hm_code_row(&q, 0), &tile, w, fd);
            else
                hm_distances(hm_code_row(&q, 0), &tile, d);
            __asm__ __volatile__("" : : "r"(d), "r"(fd) : "memory");
        }
    }
    double dt = cli_now() - t0;
    hm_codes_free(&tile);
    hm_codes_free(&q);
    return (double)n * (double)reps * threads / dt;
}

int cmd_bench_hamming(int argc, char **argv)
{
    static const struct option opts[] = {
        {"n", required_argument, 0, 'n'},       {"queries", required_argument, 0, 'q'},
        {"bits", required_argument, 0, 'b'},    {"k", required_argument, 0, 'k'},
        {"threads", required_argument, 0, 't'}, {"isa", required_argument, 0, 'i'},
        {"weighted", no_argument, 0, 'w'},      {"repetitions", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},    {"json", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int64_t n = 1000000, nq = 1000, bits = 64, k = 100, threads = 0, reps = 3, seed = 1;
    const char *isa_name = NULL, *json = NULL;
    int weighted = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'n': bad = cli_parse_i64("bench hamming", "--n", optarg, 1, INT64_MAX, &n); break;
        case 'q':
            bad = cli_parse_i64("bench hamming", "--queries", optarg, 1, (int64_t)1 << 24, &nq);
            break;
        case 'b':
            bad = cli_parse_i64("bench hamming", "--bits", optarg, 1, HM_MAX_BITS, &bits);
            break;
        case 'k': bad = cli_parse_i64("bench hamming", "--k", optarg, 1, INT64_MAX, &k); break;
        case 't':
            bad = cli_parse_i64("bench hamming", "--threads", optarg, 0, 1024, &threads);
            break;
        case 'r':
            bad = cli_parse_i64("bench hamming", "--repetitions", optarg, 1, 1000, &reps);
            break;
        case 's':
            bad = cli_parse_i64("bench hamming", "--seed", optarg, 0, INT64_MAX, &seed);
            break;
        case 'i': isa_name = optarg; break;
        case 'j': json = optarg; break;
        case 'w': weighted = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("bench hamming");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch bench hamming: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (n > MAX_CODES) {
        fprintf(stderr, "drsch bench hamming: --n: %lld is out of range: it must be 1 to %lld\n",
                (long long)n, (long long)MAX_CODES);
        return EXIT_USAGE;
    }
    if (k > n) {
        fprintf(stderr, "drsch bench hamming: --k %lld is larger than --n %lld\n", (long long)k,
                (long long)n);
        return EXIT_USAGE;
    }
    if (json && cli_check_output_file("bench hamming", "--json", json))
        return EXIT_USAGE;
    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", err.msg);
        return 1;
    }
    hm_isa only = HM_ISA_COUNT;
    if (isa_name) {
        if (hm_isa_parse(isa_name, &only, &err) != DRSCH_OK || !hm_isa_supported(only)) {
            if (hm_isa_parse(isa_name, &only, &err) == DRSCH_OK)
                fprintf(stderr, "drsch bench hamming: --isa: this CPU does not support %s\n",
                        isa_name);
            else
                fprintf(stderr, "drsch bench hamming: --isa: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    int nthreads = cli_set_threads((int)threads);
    /* In double: any --n and --k are refused by the memory check, not wrapped around. */
    double need =
        (double)n * (double)hm_words_for_bits((uint32_t)bits) * 8 + (double)nq * (double)k * 24;
    fprintf(
        stderr,
        "drsch bench hamming: generating %lld + %lld random %lld-bit codes (seed %lld, %.0f MiB)\n",
        (long long)n, (long long)nq, (long long)bits, (long long)seed, need / (1 << 20));

    if (cli_check_memory("bench hamming", "this benchmark", need * 1.5))
        return 1;
    size_t nres = (size_t)nq * (size_t)k;
    int rc = 1;
    hm_codes db = {0}, q = {0};
    hm_weights *w = NULL;
    float *wv = NULL;
    int64_t *idx = malloc(nres * sizeof *idx), *idx0 = malloc(nres * sizeof *idx0);
    int32_t *dist = malloc(nres * 4), *dist0 = malloc(nres * 4);
    rp_report *rep = rp_create();
    if (!idx || !idx0 || !dist || !dist0 || !rep ||
        random_codes(&db, (size_t)n, (uint32_t)bits, (uint64_t)seed) ||
        random_codes(&q, (size_t)nq, (uint32_t)bits, (uint64_t)seed ^ 0xABCDEF)) {
        fprintf(stderr, "drsch bench hamming: out of memory (needs about %.0f MiB)\n",
                need / (1 << 20));
        goto done;
    }
    if (weighted) {
        wv = malloc((size_t)bits * sizeof *wv);
        uint64_t s = (uint64_t)seed * 7 + 3;
        for (int64_t i = 0; wv && i < bits; i++)
            wv[i] = 0.5f + (float)(rng_splitmix64(&s) >> 40) / (float)(1 << 24);
        if (!wv || hm_weights_create(&w, wv, (uint32_t)bits, &err) != DRSCH_OK) {
            fprintf(stderr, "drsch bench hamming: %s\n", wv ? err.msg : "out of memory");
            goto done;
        }
    }
    double read_bw = measure_read_bandwidth();
    size_t code_bytes = hm_bytes_for_bits((uint32_t)bits);
    double comparisons = (double)n * (double)nq;
    char name[160];
    printf("%-8s %12s %14s %12s %14s %10s\n", "isa", "time/search", "Gcompare/s", "GB/s",
           "kernel limit", "roofline");
    int first = 1;
    for (int isa = 0; isa < HM_ISA_COUNT; isa++) {
        if (!hm_isa_supported((hm_isa)isa) || (only != HM_ISA_COUNT && isa != (int)only))
            continue;
        hm_isa_set((hm_isa)isa, &err);
        double limit = measure_kernel_limit((uint32_t)bits, w);
        double total = 0, best = 1e300;
        for (int64_t r = -1; r < reps; r++) {
            double t0 = cli_now();
            drsch_status st = w ? hm_knn_weighted(&db, &q, (size_t)k, w, idx, (float *)dist, &err)
                                : hm_knn(&db, &q, (size_t)k, idx, dist, &err);
            double dt = cli_now() - t0;
            if (st != DRSCH_OK) {
                fprintf(stderr, "drsch bench hamming: %s: %s\n", hm_isa_name((hm_isa)isa), err.msg);
                goto done;
            }
            if (r >= 0) {
                total += dt;
                best = dt < best ? dt : best;
            }
        }
        if (first) {
            memcpy(idx0, idx, nres * sizeof *idx);
            memcpy(dist0, dist, nres * 4);
            first = 0;
        } else if (memcmp(idx0, idx, nres * sizeof *idx) || memcmp(dist0, dist, nres * 4)) {
            fprintf(stderr,
                    "drsch bench hamming: %s results differ from the first ISA's: kernel bug\n",
                    hm_isa_name((hm_isa)isa));
            goto done;
        }
        double mean = total / (double)reps;
        double items = comparisons / mean;
        /* Bandwidth model: hm_knn reads the database once per block of queries. */
        double passes = (double)hm_knn_db_passes(&db, (size_t)nq, (size_t)k, w != NULL);
        double t_mem = passes * (double)n * (double)code_bytes / read_bw;
        double t_cmp = comparisons / limit;
        double roofline = (t_mem > t_cmp ? t_mem : t_cmp) / mean;
        snprintf(name, sizeof name, "BM_%s/%s/bits:%lld/n:%lld/queries:%lld/k:%lld/threads:%d",
                 w ? "WeightedHammingTopK" : "HammingTopK", hm_isa_name((hm_isa)isa),
                 (long long)bits, (long long)n, (long long)nq, (long long)k, nthreads);
        rp_entry *e = rp_add(rep, name, reps, mean * 1e3, mean * 1e3 * nthreads, "ms", nthreads);
        rp_counter(e, "items_per_second", items);
        rp_counter(e, "bytes_per_second", items * (double)code_bytes);
        rp_counter(e, "best_time_ms", best * 1e3);
        rp_counter(e, "limit_items_per_second", limit);
        rp_counter(e, "read_bytes_per_second", read_bw);
        rp_counter(e, "db_passes", passes);
        rp_counter(e, "roofline_fraction", roofline);
        rp_counter(e, "max_rss_bytes", cli_max_rss());
        rp_label(e, hm_isa_name((hm_isa)isa));
        printf("%-8s %9.2f ms %14.3f %12.2f %12.3f G %9.0f%%\n", hm_isa_name((hm_isa)isa),
               mean * 1e3, items * 1e-9, items * (double)code_bytes * 1e-9, limit * 1e-9,
               roofline * 100);
        fflush(stdout);
    }
    rp_context_set(rep, "benchmark", "hamming top-k over uniform random codes");
    rp_context_set_num(rep, "seed", (double)seed);
    rp_context_set(rep, "tie_rule", "(distance, database index)");
    if (json) {
        drsch_error rerr;
        if (rp_write(rep, json, &rerr) != DRSCH_OK) {
            fprintf(stderr, "drsch bench hamming: %s\n", rerr.msg);
            goto done;
        }
        fprintf(stderr, "drsch bench hamming: wrote %s\n", json);
    }
    rc = 0;
done:
    rp_free(rep);
    free(idx);
    free(idx0);
    free(dist);
    free(dist0);
    free(wv);
    hm_weights_free(w);
    hm_codes_free(&db);
    hm_codes_free(&q);
    return rc;
}
