/* drsch bench hamming under mpirun: sharded exact search measured. Every rank holds rows
 * [r n / P, (r + 1) n / P) of the seeded database (bh_random_rows: the bytes of the whole, however
 * split; with --per-rank, n codes per rank, i.e. a database of n P codes), searches the same
 * queries with its threads, and rank 0 gathers the per-rank top-k lists and merges them exactly
 * (hm_knn_merge), as drsch search under mpirun does. Each repetition (after an untimed one):
 *   search   every rank's own hm_knn, from a common start (a barrier);
 *   merge    from a barrier after the last rank's search: the gather to rank 0 and the merge;
 *   total    from the start to the merged lists on rank 0.
 * Reported: per rank and in all, comparisons/s; the bytes gathered and the merge time; the
 * parallel efficiency, the mean rank's search time over the total (1 when no rank waits for
 * another and the merge costs nothing). Scaling against other rank counts needs runs at each
 * (ci/bench-mpi-search). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_hamming.h"
#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "report.h"

typedef struct {
    size_t P, lo, n_local, total, k_local, nq;
    hm_codes db, q;
    hm_weights *w;
    float *wv;
    int64_t *idx, *out_idx;     /* this rank's lists (global indices); rank 0: the merged */
    void *dist, *out_dist;      /* int32 or float */
    char *recv_idx, *recv_dist; /* rank 0: every rank's lists */
    size_t *counts_idx, *counts_dist;
} ranks_data;

static void data_free(ranks_data *d)
{
    hm_codes_free(&d->db);
    hm_codes_free(&d->q);
    hm_weights_free(d->w);
    free(d->wv);
    free(d->idx);
    free(d->out_idx);
    free(d->dist);
    free(d->out_dist);
    free(d->recv_idx);
    free(d->recv_dist);
    free(d->counts_idx);
    free(d->counts_dist);
}

/* This rank's slice, the queries, the weights and the buffers: 0, or 1 after printing why. */
static int data_make(const hamming_opts *o, ranks_data *d)
{
    d->P = (size_t)dist_size();
    size_t r = (size_t)dist_rank();
    d->total = o->per_rank ? (size_t)o->n * d->P : (size_t)o->n;
    d->lo = r * d->total / d->P;
    d->n_local = (r + 1) * d->total / d->P - d->lo;
    d->nq = (size_t)o->nq;
    if (d->n_local == 0) {
        fprintf(stderr, "drsch bench hamming: --n %lld codes cannot be split over %zu ranks\n",
                (long long)o->n, d->P);
        return 1;
    }
    d->k_local = (size_t)o->k < d->n_local ? (size_t)o->k : d->n_local;
    const size_t res = d->nq * d->k_local, all = d->nq * (size_t)o->k;
    d->idx = malloc(res * sizeof *d->idx);
    d->dist = malloc(res * 4);
    d->counts_idx = malloc(d->P * sizeof *d->counts_idx);
    d->counts_dist = malloc(d->P * sizeof *d->counts_dist);
    if (dist_rank() == 0) {
        d->out_idx = malloc(all * sizeof *d->out_idx);
        d->out_dist = malloc(all * 4);
    }
    if (!d->idx || !d->dist || !d->counts_idx || !d->counts_dist ||
        (dist_rank() == 0 && (!d->out_idx || !d->out_dist)) ||
        bh_random_rows(&d->db, d->lo, d->lo + d->n_local, (uint32_t)o->bits, (uint64_t)o->seed) ||
        bh_random_rows(&d->q, 0, d->nq, (uint32_t)o->bits, (uint64_t)o->seed ^ 0xABCDEF)) {
        fprintf(stderr, "drsch bench hamming: out of memory for %zu codes\n", d->n_local);
        return 1;
    }
    if (o->weighted && bh_weights(o, &d->wv, &d->w))
        return 1;
    size_t sum = 0;
    for (size_t k = 0; k < d->P; k++) {
        size_t lo = k * d->total / d->P, n = (k + 1) * d->total / d->P - lo;
        size_t kk = (size_t)o->k < n ? (size_t)o->k : n;
        d->counts_idx[k] = d->nq * kk * 8;
        d->counts_dist[k] = d->nq * kk * 4;
        sum += d->nq * kk;
    }
    if (dist_rank() == 0 &&
        (!(d->recv_idx = malloc(sum * 8)) || !(d->recv_dist = malloc(sum * 4)))) {
        fprintf(stderr, "drsch bench hamming: out of memory for %zu merged results\n", sum);
        return 1;
    }
    return 0;
}

/* One search of this rank's slice, its indices made global. 0, or 1 after printing why. */
static int search(const hamming_opts *o, ranks_data *d)
{
    drsch_error err;
    drsch_status st =
        d->w ? hm_knn_weighted(&d->db, &d->q, d->k_local, d->w, d->idx, (float *)d->dist, &err)
             : hm_knn(&d->db, &d->q, d->k_local, d->idx, (int32_t *)d->dist, &err);
    if (st != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < d->nq * d->k_local; i++)
        d->idx[i] += (int64_t)d->lo;
    (void)o;
    return 0;
}

/* The gather to rank 0 and (there) the exact merge; the bytes gathered in *bytes. */
static int merge(const hamming_opts *o, ranks_data *d, double *bytes)
{
    dist_gather(d->idx, d->nq * d->k_local * 8, d->recv_idx, d->counts_idx);
    dist_gather(d->dist, d->nq * d->k_local * 4, d->recv_dist, d->counts_dist);
    *bytes = 0;
    for (size_t k = 0; k < d->P; k++)
        *bytes += (double)(d->counts_idx[k] + d->counts_dist[k]);
    if (dist_rank() != 0)
        return 0;
    /* each rank's lists: nq x its k, one list per (rank, query) */
    size_t *lens = malloc(d->P * sizeof *lens);
    const int64_t **li = malloc(d->P * sizeof *li);
    const void **ld = malloc(d->P * sizeof *ld);
    if (!lens || !li || !ld) {
        free(lens), free(li), free(ld);
        fprintf(stderr, "drsch bench hamming: out of memory for the merge\n");
        return 1;
    }
    size_t at = 0;
    for (size_t k = 0; k < d->P; k++) {
        lens[k] = d->counts_idx[k] / 8 / d->nq;
        li[k] = (const int64_t *)(d->recv_idx + at * 8);
        ld[k] = d->recv_dist + at * 4;
        at += lens[k] * d->nq;
    }
    drsch_error err;
    drsch_status st =
        d->w ? hm_knn_merge_weighted(d->nq, (size_t)o->k, d->P, lens, li, (const float *const *)ld,
                                     d->out_idx, (float *)d->out_dist, &err)
             : hm_knn_merge(d->nq, (size_t)o->k, d->P, lens, li, (const int32_t *const *)ld,
                            d->out_idx, (int32_t *)d->out_dist, &err);
    free(lens), free(li), free(ld);
    if (st != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* Rank 0: the table line and the report entry. search[rep * P + rank] are the ranks' times. */
static int report(const hamming_opts *o, const ranks_data *d, int nthreads, const double *search,
                  const double *total, const double *merge_s, double bytes)
{
    const int R = (int)o->reps;
    const size_t P = d->P;
    double rank_min = 1e300, rank_max = 0, mean_search = 0, slowest = 0;
    for (size_t k = 0; k < P; k++) {
        double t = 0;
        for (int r = 0; r < R; r++)
            t += search[(size_t)r * P + k] / R;
        size_t n = (k + 1) * d->total / P - k * d->total / P;
        double ips = (double)n * (double)d->nq / t;
        rank_min = ips < rank_min ? ips : rank_min;
        rank_max = ips > rank_max ? ips : rank_max;
        mean_search += t / (double)P;
        slowest = t > slowest ? t : slowest;
    }
    const double t_total = mean(total, R), t_merge = mean(merge_s, R);
    const double ips = (double)d->total * (double)d->nq / t_total;
    const double eff = mean_search / t_total;
    printf("%-6s %8s %12s %12s %18s %12s %11s\n", "ranks", "threads", "total", "Gcompare/s",
           "per rank Gcmp/s", "merge", "efficiency");
    printf("%-6zu %8d %10.2f ms %12.3f %8.3f - %-7.3f %9.2f ms %10.0f%%\n", P, nthreads,
           t_total * 1e3, ips * 1e-9, rank_min * 1e-9, rank_max * 1e-9, t_merge * 1e3, eff * 100);
    printf("merge: %.2f MiB gathered to rank 0 per search\n", bytes / (1 << 20));
    if (!o->json)
        return 0;
    rp_report *rep = rp_create();
    if (!rep) {
        fprintf(stderr, "drsch bench hamming: out of memory\n");
        return 1;
    }
    char name[96];
    snprintf(name, sizeof name, "hamming/%lld/ranks:%zu/threads:%d%s", (long long)o->bits, P,
             nthreads, o->weighted ? "/weighted" : "");
    rp_entry *e = rp_add(rep, name, R, t_total * 1e3, t_total * 1e3 * nthreads, "ms", nthreads);
    rp_counter(e, "items_per_second", ips);
    rp_counter(e, "rank_items_per_second_min", rank_min);
    rp_counter(e, "rank_items_per_second_max", rank_max);
    rp_counter(e, "slowest_rank_search_ms", slowest * 1e3);
    rp_counter(e, "merge_ms", t_merge * 1e3);
    rp_counter(e, "merge_bytes", bytes);
    rp_counter(e, "parallel_efficiency", eff);
    rp_counter(e, "ranks", (double)P);
    rp_counter(e, "codes_per_rank", (double)d->total / (double)P);
    rp_counter(e, "results_crc32", bh_results_crc(d->out_idx, d->out_dist, d->nq * (size_t)o->k));
    rp_label(e, hm_isa_name(hm_isa_active()));
    double *ms = malloc(sizeof(double) * (size_t)R);
    for (int r = 0; ms && r < R; r++)
        ms[r] = total[r] * 1e3;
    if (ms) /* else the mean alone */
        rp_repetitions(rep, e, ms, R);
    free(ms);
    rp_context_set(rep, "benchmark", "hamming top-k over uniform random codes, sharded over ranks");
    rp_context_set(rep, "scaling",
                   o->per_rank ? "weak (--n codes per rank)" : "strong (--n in all)");
    rp_context_set_num(rep, "seed", (double)o->seed);
    rp_context_set(rep, "tie_rule", "(distance, database index)");
    drsch_error err;
    int rc = 0;
    if (rp_write(rep, o->json, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench hamming: %s\n", err.msg);
        rc = 1;
    } else {
        fprintf(stderr, "drsch bench hamming: wrote %s\n", o->json);
    }
    rp_free(rep);
    return rc;
}

int bh_run_ranks(const hamming_opts *o, int nthreads)
{
    ranks_data d;
    memset(&d, 0, sizeof d);
    drsch_error err;
    hm_isa isa;
    dist_hold();
    int bad = hm_isa_init(&err) != DRSCH_OK;
    if (!bad && o->isa_name &&
        (hm_isa_parse(o->isa_name, &isa, &err) != DRSCH_OK || hm_isa_set(isa, &err) != DRSCH_OK))
        bad = EXIT_USAGE;
    if (bad)
        fprintf(stderr, "drsch bench hamming: %s%s\n", bad == EXIT_USAGE ? "--isa: " : "", err.msg);
    if (!bad && dist_rank() == 0)
        fprintf(stderr,
                "drsch bench hamming: %zu rank%s x %d thread%s, %s: %lld queries over %lld random "
                "%lld-bit codes%s (seed %lld), k=%lld, isa=%s\n",
                (size_t)dist_size(), cli_plural((long long)dist_size()), nthreads,
                cli_plural(nthreads), o->per_rank ? "weak scaling" : "strong scaling",
                (long long)o->nq, (long long)o->n, (long long)o->bits,
                o->per_rank ? " per rank" : " in all", (long long)o->seed, (long long)o->k,
                hm_isa_name(hm_isa_active()));
    if (!bad)
        bad = data_make(o, &d);
    const int R = (int)o->reps;
    double *search_t = malloc(sizeof(double) * (size_t)R * d.P + 1);
    double *total = malloc(sizeof(double) * (size_t)R + 1);
    double *merge_t = malloc(sizeof(double) * (size_t)R + 1), bytes = 0;
    size_t tcounts[1024];
    for (size_t k = 0; k < d.P && k < 1024; k++)
        tcounts[k] = sizeof(double);
    if (!bad && (!search_t || !total || !merge_t)) { /* a few doubles */
        fprintf(stderr, "drsch bench hamming: out of memory\n");
        bad = 1;
    }
    if (!bad && d.P > 1024) {
        fprintf(stderr, "drsch bench hamming: at most 1024 ranks\n");
        bad = EXIT_USAGE;
    }
    int rc = dist_release("bench hamming", bad); /* every rank goes on, or none */
    for (int r = -1; !rc && r < R; r++) {        /* r = -1: untimed */
        dist_hold();
        dist_max_i32(0); /* a barrier: every rank starts together */
        double t0 = cli_now();
        int failed = search(o, &d);
        double ts = cli_now() - t0;
        if ((rc = dist_release("bench hamming", failed)))
            break;
        double tm = cli_now(); /* after the slowest rank's search */
        dist_hold();
        rc = dist_release("bench hamming", merge(o, &d, &bytes));
        double t2 = cli_now();
        if (r >= 0) {
            dist_gather(&ts, sizeof ts, search_t + (size_t)r * d.P, tcounts);
            total[r] = t2 - t0;
            merge_t[r] = t2 - tm;
        }
    }
    if (!rc && dist_rank() == 0)
        rc = report(o, &d, nthreads, search_t, total, merge_t, bytes);
    free(search_t);
    free(total);
    free(merge_t);
    data_free(&d);
    return rc;
}
