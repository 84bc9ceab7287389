/* drsch bench hamming: exact top-k Hamming (or weighted Hamming) search over seeded random
 * codes, one Google Benchmark entry per ISA. items_per_second = code comparisons per second;
 * bytes_per_second = code bytes compared per second. For performance engineers each entry also
 * carries the machine limits measured in the same run and the fraction of them reached:
 *   limit_items_per_second   the search's compute ceiling: the same search (same ISA, same
 *                            weights) on a cache-resident database with k = 1 (no memory
 *                            traffic, almost no candidates),
 *   read_bytes_per_second    streaming read bandwidth of a buffer far larger than the caches,
 *   roofline_fraction        measured speed / min(compute ceiling, bandwidth limit), where the
 *                            bandwidth limit counts one read of the database per query block.
 * Every ISA's results are checked against the first ISA's; a mismatch is an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench_hamming.h"
#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "flags.h"
#include "hamming.h"
#include "inputs.h"
#include "report.h"
#include "rng.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

/* Largest --n: 2^34 codes (128 GiB at 64 bits), so that sizes cannot overflow. */
#define MAX_CODES ((int64_t)1 << 34)

#define STR_(x) #x
#define STR(x) STR_(x) /* a number in a help text */
#define MAX_CODES_TEXT "17179869184"
/* The compute ceiling (measure_compute_ceiling): four blocks of queries per thread, over 2 MiB of
 * codes but at least this many, so that per-query costs amortise as in a large search (up to
 * 16 MiB at 4096 bits: within the last-level cache of the machines measured, 32 MiB). */
#define CEILING_QUERIES 256
#define CEILING_MIN_CODES 32768
_Static_assert(MAX_CODES == 17179869184LL, "MAX_CODES_TEXT says MAX_CODES");

int bh_parse(int argc, char **argv, hamming_opts *o)
{
    *o = (hamming_opts){.n = 1000000,
                        .nq = 1000,
                        .bits = 64,
                        .k = 100,
                        .reps = 3,
                        .seed = 1,
                        .singles = 1000,
                        .plant = 1};
    cli_flag flags[] = {
        CLI_INT("n", &o->n, 1, INT64_MAX, "N", "database codes, 1 to " MAX_CODES_TEXT),
        CLI_INT("queries", &o->nq, 1, 1 << 24, "Q", "queries, 1 to 16777216"),
        CLI_INT("bits", &o->bits, 1, HM_MAX_BITS, "B", "code length, 1 to " STR(HM_MAX_BITS)),
        CLI_INT("k", &o->k, 1, INT64_MAX, "K", "neighbours per query, at most --n"),
        CLI_INT("threads", &o->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_STRING("isa", &o->isa_name, "I",
                   "only this ISA: scalar, avx2, avx512 or neon (default: every ISA the CPU "
                   "supports)"),
        CLI_SWITCH("per-rank", &o->per_rank, 1,
                   "under mpirun: --n codes on every rank (weak scaling; default: --n in all, "
                   "split between the ranks)"),
        CLI_SWITCH("weighted", &o->weighted, 1,
                   "rank by weighted Hamming distance, seeded weights in [0.5, 1.5) (default: "
                   "plain Hamming distance)"),
        CLI_STRING("weights", &o->w_path, "FILE",
                   "rank by weighted Hamming distance with these weights: a float32 or float64 "
                   "(N,) .npy of N >= --bits finite weights, of which the first --bits are used, "
                   "as given (e.g. PREFIX.weights.npy of drsch encode: the learned metric's "
                   "|w|); implies --weighted (default: none)"),
        CLI_INT("repetitions", &o->reps, 1, 1000, "R",
                "timed searches per ISA after one untimed one, 1 to 1000; the mean is reported"),
        CLI_INT("single-queries", &o->singles, 1, 1000000, "M",
                "with --queries 1: latency of M different single queries, each timed alone "
                "(p50 / p99 / max), 1 to 1000000"),
        CLI_INT("seed", &o->seed, 0, INT64_MAX, "S", "seed of the random codes"),
        CLI_FLOAT("plant-slowdown", &o->plant, 1, 10, "F",
                  "for testing the regression gate only: each timed search is followed, inside "
                  "its timing, by a busy wait of F - 1 times its duration, so that the times are "
                  "F times the real ones (recorded in the report's context as planted_slowdown)"),
        CLI_SWITCH(
            "no-limits", &o->no_limits, 1,
            "do not measure the machine's limits (compute ceiling, read bandwidth: about 1 s "
            "of each run); the report has no kernel limit or roofline. For many short runs, "
            "such as the regression gate's (default: measured)"),
        CLI_STRING("json", &o->json, "FILE",
                   "also write a Google Benchmark-compatible report (default: none)"),
        CLI_END,
    };
    int rc = cli_flags_parse("bench hamming", flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch bench hamming [options] [--json FILE]\n\n"
               "Exact top-k search over seeded uniform random codes, once per ISA (instruction\n"
               "set), each checked against the first. Prints the time per search, comparisons/s,\n"
               "GB/s of codes compared, and the share reached of the machine's limits measured\n"
               "in the same run (the same search on a database that stays in cache, memory\n"
               "read bandwidth).\n"
               "With --queries 1: the latency of --single-queries different queries, each\n"
               "timed alone (p50, p99, max), against the time to stream the database's codes\n"
               "from memory once at the measured read bandwidth.\n\n"
               "Under mpirun (mpirun -n P drsch bench hamming ...), each rank searches its slice\n"
               "of the one database (or, with --per-rank, --n codes of its own) with its threads,\n"
               "and rank 0 merges the top-k lists exactly; reported: each rank's and the total\n"
               "comparisons/s, the bytes and time of the merge, and the share of the time the\n"
               "ranks spent searching (the rest: waiting for the slowest rank, merging). The ISA\n"
               "is --isa or the best the CPU supports.\n\n");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (o->n > MAX_CODES) {
        fprintf(stderr, "drsch bench hamming: --n: %lld is out of range: it must be 1 to %lld\n",
                (long long)o->n, (long long)MAX_CODES);
        return EXIT_USAGE;
    }
    if (o->k > o->n) {
        fprintf(stderr, "drsch bench hamming: --k %lld is larger than --n %lld\n", (long long)o->k,
                (long long)o->n);
        return EXIT_USAGE;
    }
    if (o->json && cli_check_output_file("bench hamming", "--json", o->json))
        return EXIT_USAGE;
    if (o->w_path)
        o->weighted = 1;
    return -1;
}

int bh_random_rows(hm_codes *c, size_t lo, size_t hi, uint32_t bits, uint64_t seed)
{
    drsch_error err;
    const size_t rb = hm_bytes_for_bits(bits), b0 = lo * rb, b1 = hi * rb;
    const size_t w0 = b0 / 8, w1 = (b1 + 7) / 8;
    uint8_t *bytes = malloc((w1 - w0) * 8 + 8);
    if (!bytes)
        return -1;
    /* splitmix64 adds a constant to its state per call: word w0 starts from seed + w0 steps */
    uint64_t s = seed + (uint64_t)w0 * 0x9e3779b97f4a7c15ULL;
    for (size_t w = w0; w < w1; w++) {
        uint64_t r = rng_splitmix64(&s);
        memcpy(bytes + (w - w0) * 8, &r, 8);
    }
    int rc =
        hm_codes_from_bytes(c, bytes + (b0 - w0 * 8), hi - lo, rb, bits, &err) == DRSCH_OK ? 0 : -1;
    free(bytes);
    return rc;
}

double bh_results_crc(const int64_t *idx, const void *dist, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    for (size_t at = 0; at < n * 8; at += (size_t)1 << 30) /* zlib's lengths are uInt */
        c = crc32(c, (const Bytef *)idx + at,
                  (uInt)(n * 8 - at < (size_t)1 << 30 ? n * 8 - at : (size_t)1 << 30));
    for (size_t at = 0; at < n * 4; at += (size_t)1 << 30)
        c = crc32(c, (const Bytef *)dist + at,
                  (uInt)(n * 4 - at < (size_t)1 << 30 ? n * 4 - at : (size_t)1 << 30));
    return (double)c;
}

int bh_weights(const hamming_opts *o, float **wv, hm_weights **w)
{
    drsch_error err;
    if (o->w_path) {
        size_t len;
        if (in_load_weights("bench hamming", o->w_path, (size_t)o->bits, HM_MAX_BITS, 1, wv, &len))
            return -1;
    } else {
        *wv = malloc((size_t)o->bits * sizeof **wv);
        uint64_t s = (uint64_t)o->seed * 7 + 3;
        for (int64_t i = 0; *wv && i < o->bits; i++)
            (*wv)[i] = 0.5f + (float)(rng_splitmix64(&s) >> 40) / (float)(1 << 24);
    }
    if (!*wv || hm_weights_create(w, *wv, (uint32_t)o->bits, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", *wv ? err.msg : "out of memory");
        return -1;
    }
    return 0;
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

/* The search's compute ceiling (comparisons/s): the same exact top-k search (hm_knn, or
 * hm_knn_weighted with the same weights) over 2 MiB of codes (at least 32,768), which stay in
 * the last-level cache, with four full query blocks per thread and k = 1, so nothing is read
 * from memory and almost no candidate is kept; about 0.2 s of calls after one warm-up (bench_isa
 * measures it before and after the timed searches and keeps the higher). The search measured
 * does the same work plus reading its database from memory and keeping k candidates, so this
 * bounds its speed, unlike a single query's distance kernel (which query blocking beats: one
 * load of a code serves a whole block of queries) or a smaller database (whose per-query costs
 * do not amortise). Returns 0, after saying why on stderr, when it cannot be measured. */
static double measure_compute_ceiling(uint32_t bits, const hm_weights *w)
{
    const size_t row_bytes = hm_words_for_bits(bits) * sizeof(uint64_t);
    size_t n = ((size_t)2 << 20) / row_bytes;
    n = n < CEILING_MIN_CODES ? CEILING_MIN_CODES : n;
    const size_t nq = (size_t)CEILING_QUERIES * (size_t)cli_max_threads();
    hm_codes db = {0}, q = {0};
    int64_t *idx = malloc(nq * sizeof *idx);
    float *dist = malloc(nq * sizeof *dist); /* int32 (plain) or float (weighted): same size */
    double rate = 0;
    if (!idx || !dist || bh_random_rows(&db, 0, n, bits, 99) ||
        bh_random_rows(&q, 0, nq, bits, 98)) {
        fprintf(stderr, "drsch bench hamming: compute ceiling: out of memory for %zu codes\n",
                n + nq);
    } else {
        drsch_error err;
        double t0 = 0;
        for (size_t calls = 0;; calls++) { /* call 0 warms caches and threads, untimed */
            drsch_status st = w ? hm_knn_weighted(&db, &q, 1, w, idx, dist, &err)
                                : hm_knn(&db, &q, 1, idx, (int32_t *)dist, &err);
            if (st != DRSCH_OK) {
                fprintf(stderr, "drsch bench hamming: compute ceiling: %s\n", err.msg);
                break;
            }
            if (calls == 0) {
                t0 = cli_now();
                continue;
            }
            double dt = cli_now() - t0;
            if (dt >= 0.2 && calls >= 3) {
                rate = (double)n * (double)nq * (double)calls / dt;
                break;
            }
        }
    }
    free(idx);
    free(dist);
    hm_codes_free(&db);
    hm_codes_free(&q);
    return rate;
}

/* The codes searched, the weights, the results of the ISA measured and of the first one. */
typedef struct {
    hm_codes db, q;
    hm_weights *w;
    float *wv;
    int64_t *idx, *idx0;
    int32_t *dist, *dist0;
    size_t nres;
    mc_counters *hw; /* opened before the first parallel region, so its threads are counted */
} hamming_data;

static void data_free(hamming_data *h)
{
    free(h->idx);
    free(h->idx0);
    free(h->dist);
    free(h->dist0);
    free(h->wv);
    hm_weights_free(h->w);
    hm_codes_free(&h->db);
    hm_codes_free(&h->q);
    mc_counters_close(h->hw);
}

/* The random codes, the weights (--weighted) and the result buffers. */
static int data_make(const hamming_opts *o, double need, hamming_data *h)
{
    const size_t nq = o->nq == 1 ? (size_t)o->singles : (size_t)o->nq;
    h->nres = nq * (size_t)o->k;
    h->idx = malloc(h->nres * sizeof *h->idx);
    h->idx0 = malloc(h->nres * sizeof *h->idx0);
    h->dist = malloc(h->nres * 4);
    h->dist0 = malloc(h->nres * 4);
    if (!h->idx || !h->idx0 || !h->dist || !h->dist0 ||
        bh_random_rows(&h->db, 0, (size_t)o->n, (uint32_t)o->bits, (uint64_t)o->seed) ||
        bh_random_rows(&h->q, 0, nq, (uint32_t)o->bits, (uint64_t)o->seed ^ 0xABCDEF)) {
        fprintf(stderr, "drsch bench hamming: out of memory (needs about %.0f MiB)\n",
                need / (1 << 20));
        return -1;
    }
    return o->weighted ? bh_weights(o, &h->wv, &h->w) : 0;
}

/* Keeps the first ISA's results (first), or checks this ISA's against them. */
static int check_results(hamming_data *h, hm_isa isa, int first)
{
    if (first) {
        memcpy(h->idx0, h->idx, h->nres * sizeof *h->idx);
        memcpy(h->dist0, h->dist, h->nres * 4);
    } else if (memcmp(h->idx0, h->idx, h->nres * sizeof *h->idx) ||
               memcmp(h->dist0, h->dist, h->nres * 4)) {
        fprintf(stderr, "drsch bench hamming: %s results differ from the first ISA's: kernel bug\n",
                hm_isa_name(isa));
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n) by the nearest-rank rule (the smallest value with at least
 * q n values at or below it). */
static double quantile(const double *v, size_t n, double q)
{
    size_t r = (size_t)(q * (double)n + 0.999999);
    return v[(r ? r : 1) - 1];
}

/* --queries 1: each of --single-queries queries searched alone and timed; the latency's p50, p99
 * and max against the time to stream the database's codes once at the measured bandwidth. */
static int bench_isa_single(const hamming_opts *o, hamming_data *h, hm_isa isa, int first,
                            double read_bw, int nthreads, rp_report *rep)
{
    drsch_error err;
    hm_isa_set(isa, &err);
    const size_t m = (size_t)o->singles, k = (size_t)o->k;
    double *lat = malloc(m * sizeof *lat);
    hm_codes one = {0};
    if (!lat || hm_codes_alloc(&one, 1, (uint32_t)o->bits, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: out of memory\n");
        free(lat);
        return -1;
    }
    mc_counts counts;
    int rc = 0;
    for (int64_t i = -1; i < (int64_t)m && !rc; i++) { /* i = -1: untimed, warms the threads */
        size_t qi = i < 0 ? 0 : (size_t)i;
        memcpy(one.data, hm_code_row(&h->q, qi), one.words * 8);
        if (i == 0)
            mc_counters_start(h->hw);
        double t0 = cli_now();
        drsch_status st = h->w ? hm_knn_weighted(&h->db, &one, k, h->w, h->idx + qi * k,
                                                 (float *)(void *)(h->dist + qi * k), &err)
                               : hm_knn(&h->db, &one, k, h->idx + qi * k, h->dist + qi * k, &err);
        double dt = cli_now() - t0;
        if (st != DRSCH_OK) {
            fprintf(stderr, "drsch bench hamming: %s: %s\n", hm_isa_name(isa), err.msg);
            rc = -1;
        } else if (i >= 0) {
            lat[i] = dt;
        }
    }
    mc_counters_stop(h->hw, &counts);
    hm_codes_free(&one);
    if (rc || check_results(h, isa, first)) {
        free(lat);
        return -1;
    }
    double mean = 0;
    for (size_t i = 0; i < m; i++)
        mean += lat[i] / (double)m;
    qsort(lat, m, sizeof *lat, cmp_double);
    const double p50 = quantile(lat, m, 0.5), p99 = quantile(lat, m, 0.99), max = lat[m - 1];
    const double stream =
        read_bw > 0 ? (double)o->n * (double)hm_bytes_for_bits((uint32_t)o->bits) / read_bw : 0;
    char name[160];
    snprintf(name, sizeof name, "BM_%s/%s/bits:%lld/n:%lld/queries:1/k:%lld/threads:%d",
             h->w ? "WeightedHammingTopK" : "HammingTopK", hm_isa_name(isa), (long long)o->bits,
             (long long)o->n, (long long)o->k, nthreads);
    rp_entry *e = rp_add(rep, name, (int64_t)m, mean * 1e3, mean * 1e3 * nthreads, "ms", nthreads);
    rp_counter(e, "items_per_second", (double)o->n / mean);
    rp_counter(e, "p50_ms", p50 * 1e3);
    rp_counter(e, "p99_ms", p99 * 1e3);
    rp_counter(e, "max_ms", max * 1e3);
    rp_counter(e, "min_ms", lat[0] * 1e3);
    if (read_bw > 0) {
        rp_counter(e, "stream_limit_ms", stream * 1e3);
        rp_counter(e, "stream_fraction", stream / p50);
        rp_counter(e, "read_bytes_per_second", read_bw);
    }
    rp_counter(e, "max_rss_bytes", cli_max_rss());
    cli_report_counters(rep, e, h->hw, &counts, (double)m);
    rp_label(e, hm_isa_name(isa));
    if (read_bw > 0)
        printf("%-8s %9.3f ms %9.3f ms %9.3f ms %9.3f ms %14.3f ms %9.0f%%\n", hm_isa_name(isa),
               mean * 1e3, p50 * 1e3, p99 * 1e3, max * 1e3, stream * 1e3, 100 * stream / p50);
    else
        printf("%-8s %9.3f ms %9.3f ms %9.3f ms %9.3f ms %17s %10s\n", hm_isa_name(isa), mean * 1e3,
               p50 * 1e3, p99 * 1e3, max * 1e3, "-", "-");
    fflush(stdout);
    free(lat);
    return 0;
}

/* Times the searches of one ISA, checks its results against the first ISA's (first: keeps them)
 * and adds its entry to rep and its line to the table. */
static int bench_isa(const hamming_opts *o, hamming_data *h, hm_isa isa, int first, double read_bw,
                     int nthreads, rp_report *rep)
{
    drsch_error err;
    hm_isa_set(isa, &err);
    double limit = o->no_limits ? 0 : measure_compute_ceiling((uint32_t)o->bits, h->w);
    if (!o->no_limits && !(limit > 0))
        return -1; /* measure_compute_ceiling said why */
    double total = 0, best = 1e300;
    double *times = malloc((size_t)o->reps * sizeof *times); /* ms, each repetition */
    if (!times) {
        fprintf(stderr, "drsch bench hamming: out of memory\n");
        return -1;
    }
    /* --weighted: the plain search too, alternately, for the ratio of the two in one run */
    int64_t *pidx = h->w ? malloc(h->nres * sizeof *pidx) : NULL;
    int32_t *pdist = h->w ? malloc(h->nres * sizeof *pdist) : NULL;
    if (h->w && (!pidx || !pdist)) {
        free(pidx), free(pdist), free(times);
        fprintf(stderr, "drsch bench hamming: out of memory\n");
        return -1;
    }
    double plain_total = 0;
    for (int64_t r = -1; r < o->reps; r++) {
        if (h->w) {
            double tp = cli_now();
            if (hm_knn(&h->db, &h->q, (size_t)o->k, pidx, pdist, &err) != DRSCH_OK) {
                fprintf(stderr, "drsch bench hamming: %s: %s\n", hm_isa_name(isa), err.msg);
                free(pidx), free(pdist), free(times);
                return -1;
            }
            plain_total += r >= 0 ? cli_now() - tp : 0;
        }
        if (r == 0)
            mc_counters_start(h->hw);
        double t0 = cli_now();
        drsch_status st = h->w ? hm_knn_weighted(&h->db, &h->q, (size_t)o->k, h->w, h->idx,
                                                 (float *)h->dist, &err)
                               : hm_knn(&h->db, &h->q, (size_t)o->k, h->idx, h->dist, &err);
        if (st != DRSCH_OK) {
            fprintf(stderr, "drsch bench hamming: %s: %s\n", hm_isa_name(isa), err.msg);
            free(pidx), free(pdist), free(times);
            return -1;
        }
        cli_plant_slowdown(o->plant, t0);
        const double dt = cli_now() - t0;
        if (r >= 0) {
            times[r] = dt * 1e3;
            total += dt;
            best = dt < best ? dt : best;
        }
    }
    mc_counts counts;
    mc_counters_stop(h->hw, &counts);
    /* the ceiling again after the timed searches, the higher of the two: a slow phase of a
     * shared machine during one measurement must not make the bound look lower than it is */
    double again = o->no_limits ? 0 : measure_compute_ceiling((uint32_t)o->bits, h->w);
    limit = again > limit ? again : limit;
    free(pidx);
    free(pdist);
    if (check_results(h, isa, first)) {
        free(times);
        return -1;
    }
    size_t code_bytes = hm_bytes_for_bits((uint32_t)o->bits);
    double comparisons = (double)o->n * (double)o->nq;
    double mean = total / (double)o->reps;
    double items = comparisons / mean;
    /* Bandwidth model: hm_knn reads the database once per block of queries. */
    double passes = (double)hm_knn_db_passes(&h->db, (size_t)o->nq, (size_t)o->k, h->w != NULL);
    double roofline = 0;
    if (!o->no_limits) {
        double t_mem = passes * (double)o->n * (double)code_bytes / read_bw;
        double t_cmp = comparisons / limit;
        roofline = (t_mem > t_cmp ? t_mem : t_cmp) / mean;
    }
    char name[160];
    snprintf(name, sizeof name, "BM_%s/%s/bits:%lld/n:%lld/queries:%lld/k:%lld/threads:%d",
             h->w ? "WeightedHammingTopK" : "HammingTopK", hm_isa_name(isa), (long long)o->bits,
             (long long)o->n, (long long)o->nq, (long long)o->k, nthreads);
    rp_entry *e = rp_add(rep, name, o->reps, mean * 1e3, mean * 1e3 * nthreads, "ms", nthreads);
    rp_counter(e, "items_per_second", items);
    rp_counter(e, "bytes_per_second", items * (double)code_bytes);
    rp_counter(e, "best_time_ms", best * 1e3);
    rp_counter(e, "db_passes", passes);
    if (!o->no_limits) {
        rp_counter(e, "limit_items_per_second", limit);
        rp_counter(e, "read_bytes_per_second", read_bw);
        rp_counter(e, "roofline_fraction", roofline);
    }
    rp_counter(e, "max_rss_bytes", cli_max_rss());
    rp_counter(e, "results_crc32", bh_results_crc(h->idx, h->dist, h->nres));
    const double plain_mean = plain_total / (double)o->reps;
    if (h->w) {
        rp_counter(e, "plain_time_ms", plain_mean * 1e3);
        rp_counter(e, "speed_vs_plain", plain_mean / mean);
    }
    cli_report_counters(rep, e, h->hw, &counts, (double)o->reps);
    rp_label(e, hm_isa_name(isa));
    rp_repetitions(rep, e, times, (int)o->reps);
    free(times);
    if (o->no_limits)
        printf("%-8s %9.2f ms %14.3f %12.2f %14s %10s\n", hm_isa_name(isa), mean * 1e3,
               items * 1e-9, items * (double)code_bytes * 1e-9, "-", "-");
    else
        printf("%-8s %9.2f ms %14.3f %12.2f %12.3f G %9.0f%%\n", hm_isa_name(isa), mean * 1e3,
               items * 1e-9, items * (double)code_bytes * 1e-9, limit * 1e-9, roofline * 100);
    if (h->w)
        printf("%-8s weighted at %.2fx the speed of plain Hamming (%.2f ms, timed alternately)\n",
               hm_isa_name(isa), plain_mean / mean, plain_mean * 1e3);
    fflush(stdout);
    return 0;
}

/* Where --weighted's weights come from, as the table and the report's context name it. */
static const char *weights_source(const hamming_opts *o)
{
    return o->w_path ? o->w_path : "seeded, uniform in [0.5, 1.5)";
}

/* Measures every ISA supported (or only `only`) and writes the report. */
static int run(const hamming_opts *o, hm_isa only, int nthreads, double need)
{
    int rc = 1;
    hamming_data h = {0};
    h.hw = mc_counters_open();
    rp_report *rep = rp_create();
    if (!rep) {
        fprintf(stderr, "drsch bench hamming: out of memory (needs about %.0f MiB)\n",
                need / (1 << 20));
        goto done;
    }
    if (data_make(o, need, &h))
        goto done;
    double read_bw = o->no_limits ? 0 : measure_read_bandwidth();
    if (h.w)
        printf("weights: %s\n", weights_source(o));
    if (o->nq == 1)
        printf("%-8s %12s %12s %12s %12s %17s %10s\n", "isa", "mean", "p50", "p99", "max",
               "stream codes once", "of p50");
    else
        printf("%-8s %12s %14s %12s %14s %10s\n", "isa", "time/search", "Gcompare/s", "GB/s",
               "kernel limit", "roofline");
    int first = 1;
    for (int isa = 0; isa < HM_ISA_COUNT; isa++) {
        if (!hm_isa_supported((hm_isa)isa) || (only != HM_ISA_COUNT && isa != (int)only))
            continue;
        if ((o->nq == 1 ? bench_isa_single : bench_isa)(o, &h, (hm_isa)isa, first, read_bw,
                                                        nthreads, rep))
            goto done;
        first = 0;
    }
    rp_context_set(rep, "benchmark",
                   o->nq == 1 ? "hamming top-k latency of single queries over uniform random codes"
                              : "hamming top-k over uniform random codes");
    rp_context_set_num(rep, "seed", (double)o->seed);
    rp_context_set(rep, "tie_rule", "(distance, database index)");
    if (o->plant > 1)
        rp_context_set_num(rep, "planted_slowdown", o->plant);
    if (o->no_limits)
        rp_context_set(rep, "limits", "not measured (--no-limits)");
    if (h.w) { /* weighted distances are exact sums of weights quantised to this step */
        rp_context_set_num(rep, "weight_step", hm_weights_step(h.w));
        rp_context_set(rep, "weights", weights_source(o));
    }
    if (o->json) {
        drsch_error rerr;
        if (rp_write(rep, o->json, &rerr) != DRSCH_OK) {
            fprintf(stderr, "drsch bench hamming: %s\n", rerr.msg);
            goto done;
        }
        fprintf(stderr, "drsch bench hamming: wrote %s\n", o->json);
    }
    rc = 0;
done:
    rp_free(rep);
    data_free(&h);
    return rc;
}

/* Under mpirun: every rank parses the same flags (rank 0 alone reports their errors). */
static int bench_mpi(int argc, char **argv)
{
    if (dist_init("bench hamming"))
        return 1;
    hamming_opts o;
    dist_hold();
    int prc = bh_parse(argc, argv, &o);
    int rc = dist_release("bench hamming", prc > 0 ? prc : 0);
    if (prc < 0 && !rc)
        rc = bh_run_ranks(&o, cli_set_threads((int)o.threads));
    else if (prc >= 0)
        rc = prc;
    dist_finalize();
    return rc;
}

int cmd_bench_hamming(int argc, char **argv)
{
    if (dist_launched())
        return bench_mpi(argc, argv);
    hamming_opts o;
    int rc = bh_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    drsch_error err;
    if (hm_isa_init(&err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", err.msg);
        return 1;
    }
    hm_isa only = HM_ISA_COUNT;
    if (o.isa_name) {
        if (hm_isa_parse(o.isa_name, &only, &err) != DRSCH_OK || !hm_isa_supported(only)) {
            if (hm_isa_parse(o.isa_name, &only, &err) == DRSCH_OK)
                fprintf(stderr, "drsch bench hamming: --isa: this CPU does not support %s\n",
                        o.isa_name);
            else
                fprintf(stderr, "drsch bench hamming: --isa: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    int nthreads = cli_set_threads((int)o.threads);
    /* In double: any --n and --k are refused by the memory check, not wrapped around. */
    double need = (double)o.n * (double)hm_words_for_bits((uint32_t)o.bits) * 8 +
                  (double)o.nq * (double)o.k * 24;
    fprintf(
        stderr,
        "drsch bench hamming: generating %lld + %lld random %lld-bit codes (seed %lld, %.0f MiB)\n",
        (long long)o.n, (long long)o.nq, (long long)o.bits, (long long)o.seed, need / (1 << 20));
    if (cli_check_memory("bench hamming", "this benchmark", need * 1.5))
        return 1;
    return run(&o, only, nthreads, need);
}
