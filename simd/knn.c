/* Exact top-k (k nearest codes by Hamming or weighted Hamming distance), ordered by
 * (distance, database index).
 *
 * Method: queries are taken in blocks; the database is streamed in tiles small enough to stay
 * in L1/L2 while the whole query block is scanned against them (query blocking). Each query
 * keeps a candidate list filled by the active ISA's threshold scan: a row enters only when its
 * distance is strictly below the query's current k-th distance. Rows are scanned in index
 * order, so an equal distance can never displace a held candidate (ties go to the smaller
 * index) and the strict test is exact. When a list grows, it is compacted back to k entries by
 * a counting selection on the small integer distances (plain) or a quickselect (weighted),
 * which also tightens the threshold. The final k are emitted by a stable counting sort
 * (plain) or a stable comparison sort (weighted). Scans start with short tiles that ramp up,
 * so thresholds become tight before many rows are appended.
 *
 * Threads (OpenMP, optional): over query blocks, and when there are fewer blocks than threads,
 * also over database shards whose per-shard top-k lists are merged exactly afterwards.
 * This file allocates all scratch; the kernels never allocate. It does not compute distances
 * itself (the kernels do) and does not rank the full database (that is k = n).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(DRSCH_HAVE_OPENMP)
#include <omp.h>
#endif

#include "keysort.h"
#include "simd_internal.h"

/* Tile of database rows: ~32 KiB (the L1d of the machines we measured: AMD Zen 4, 32 KiB/core),
 * kept a multiple of 16 rows (the widest kernel step). */
#define KNN_TILE_BYTES 32768u
#define KNN_MAX_QBLOCK 64
#define KNN_MAX_WQBLOCK 512 /* weighted (knn_plan) */
/* Weighted tiles: the kernel's copy of the tile (hm_kernels.wscan_copy_word_bytes per row and
 * code word) fills L1: with a nibble-transposed copy (16 bytes per 8 code bytes) 2048 rows at 64
 * bits and 512 at 256 bits (measured on Zen 4: at 64 bits 3.7 G/s vs 2.9 G/s with 8192-row tiles;
 * at 256 bits the filter runs 1.2x faster with 512-row than with 2048-row tiles); with 6-bit
 * groups (11 bytes per word) 2992 and 752 (measured on Zen 5, 1 thread, 1M codes, 1000 queries:
 * 64 bits 2% faster than 2048 rows, 256 bits 4% faster than 512 rows; twice as long, 20% and
 * 32% slower). At least 256 rows, so per-tile table work stays small for long codes. */
#define KNN_WTILE_TRANSPOSED 32768u
#define KNN_WTILE_MIN 256u
/* On Intel CPUs with the 6-bit groups (AVX-512), longer tiles: at least 96 KiB of copy and 2240
 * rows. There vpermb runs on one port, so the tables each query builds per tile and code word
 * (11 vpermb and 11 vpmultishiftqb on the same port) cost relatively more, and the copy streams
 * from the L2 fast enough (2-core Xeon, KVM, 1M codes, 1,000 queries, weighted / plain speed at
 * 1 thread, tile bytes 32 / 64 / 96 / 128 / 192 KiB: 64 bits 0.85x / 0.88x / 0.90x / 0.90x / not
 * measured; 128 bits, random weights, 0.81x / 0.86x / 0.87x / 0.89x / 0.87x; 256 bits 0.74x /
 * 0.78x / 0.82x / 0.82x / 0.82x, and 256 KiB 0.80x-0.81x; 512 bits, random weights, 0.62x /
 * 0.69x / 0.72x-0.75x / 0.75x-0.76x / 0.78x-0.80x, and 256 / 384 KiB 0.78x-0.79x / 0.76x-0.78x:
 * about 2200 rows at least, wherever the bytes give fewer). */
#define KNN_WTILE_INTEL 98304u
#define KNN_WTILE_INTEL_ROWS 2240u
/* Upper bound on candidate-list memory per thread, to shrink query blocks for huge k. */
#define KNN_LIST_BUDGET ((size_t)32 << 20)

typedef struct {
    const hm_kernels *kern;
    const hm_codes *db, *queries;
    const hm_weights *w; /* NULL for plain Hamming */
    size_t k, tile, qblock, nblocks, shards, shard_len, cap;
    size_t qfull; /* blocks 0 .. qfull - 1 hold qblock queries, later ones (qblock + 1) / 2 */
    /* outputs: final (shards == 1) or per-shard results (shards > 1) */
    int64_t *out_idx;
    int32_t *out_dist;
    float *out_wdist;
    int64_t *sh_idx; /* nq x shards x k */
    uint32_t *sh_dist;
    float *sh_wdist;
    size_t *sh_count; /* nq x shards */
    /* every shard's sample (sample_n rows each, contiguous), whose guess_c-th distance from a
     * query starts that query's threshold (NULL: none; plan_guess) */
    uint64_t *sample;
    size_t sample_n, guess_c;
} knn_job;

typedef struct {
    int64_t *idx;
    uint32_t *dist;
    float *wdist;
    uint32_t *hist;  /* bits + 2 counters */
    float *sel;      /* 2 x cap floats: quickselect scratch (weighted) */
    hm_keyed *order; /* 2 x cap: the final sort's entries and its copy (weighted) */
    void *wscan;     /* weighted scan scratch (hm_wscan_scratch_bytes of a tile) */
    hm_cand_list *lists;
} knn_scratch;

static void scratch_free(knn_scratch *s)
{
    free(s->idx);
    free(s->dist);
    free(s->wdist);
    free(s->hist);
    free(s->sel);
    free(s->order);
    free(s->wscan);
    free(s->lists);
    memset(s, 0, sizeof *s);
}

static int scratch_alloc(knn_scratch *s, const knn_job *job)
{
    memset(s, 0, sizeof *s);
    size_t m = job->qblock * job->cap;
    s->idx = malloc(m * sizeof *s->idx);
    s->lists = malloc(job->qblock * sizeof *s->lists);
    if (job->w) {
        s->wdist = malloc(m * sizeof *s->wdist);
        s->sel = malloc(2 * job->cap * sizeof *s->sel);
        s->order = malloc(2 * job->cap * sizeof *s->order);
        s->wscan = malloc(hm_wscan_scratch_bytes(job->tile, job->db->words));
    } else {
        s->dist = malloc(m * sizeof *s->dist);
        s->hist = malloc(((size_t)job->db->bits + 2) * sizeof *s->hist);
    }
    if (!s->idx || !s->lists ||
        (job->w ? !s->wdist || !s->sel || !s->order || !s->wscan : !s->dist || !s->hist)) {
        scratch_free(s);
        return -1;
    }
    return 0;
}

/* ---- plain: counting selection ----------------------------------------------------------- */

/* Keep the k best of an index-ordered list (if it holds more), set thr to the k-th distance. */
static void compact_plain(hm_cand_list *l, size_t k, uint32_t *hist, uint32_t bits)
{
    if (l->count < k)
        return;
    /* every held distance is at most thr (a compaction keeps some equal to its new thr) and at
     * most bits */
    uint32_t range = (l->thr < bits ? l->thr : bits) + 1;
    memset(hist, 0, range * sizeof *hist);
    for (size_t i = 0; i < l->count; i++)
        hist[l->dist[i]]++;
    size_t below = 0;
    uint32_t D = 0;
    while (below + hist[D] < k)
        below += hist[D++];
    /* Without branches on the data: every entry is written at o (o <= i) and o advances only
     * past a kept one (a branch here mispredicted often: it took most of this function's time). */
    size_t take_eq = k - below, o = 0;
    for (size_t i = 0; i < l->count; i++) {
        uint32_t d = l->dist[i];
        int64_t x = l->idx[i];
        size_t eq = d == D, keep = (size_t)(d < D) | (eq & (size_t)(take_eq != 0));
        take_eq -= eq & keep;
        l->idx[o] = x;
        l->dist[o] = d;
        o += keep;
    }
    l->count = o;
    l->thr = D;
}

/* Stable counting sort by distance of an index-ordered list of exactly `count` entries. */
static void emit_plain(const hm_cand_list *l, uint32_t *hist, uint32_t bits, int64_t *idx,
                       int32_t *dist)
{
    memset(hist, 0, ((size_t)bits + 2) * sizeof *hist);
    for (size_t i = 0; i < l->count; i++)
        hist[l->dist[i] + 1]++;
    for (uint32_t d = 1; d <= bits + 1; d++)
        hist[d] += hist[d - 1];
    for (size_t i = 0; i < l->count; i++) {
        uint32_t pos = hist[l->dist[i]]++;
        idx[pos] = l->idx[i];
        dist[pos] = (int32_t)l->dist[i];
    }
}

/* ---- weighted: quickselect --------------------------------------------------------------- */

/* The value of rank r (0-based) of a[0..n): quickselect with a three-way partition (runs of
 * equal distances cost nothing extra) done without branches on the data: every element is
 * written at both ends of the destination and the end it belongs to advances. Partitions
 * ping-pong between the two halves of buf (2 x half floats, half >= n); a is not modified. */
static float select_rank(const float *a, size_t n, size_t r, float *buf, size_t half)
{
    float *dst = buf;
    while (n > 1) {
        float x = a[0], y = a[n / 2], z = a[n - 1];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = 0, gt = 0;
        for (size_t i = 0; i < n; i++) {
            float v = a[i];
            dst[lt] = v;
            dst[n - 1 - gt] = v;
            lt += v < pivot;
            gt += v > pivot;
        }
        if (r < lt) {
            a = dst;
            n = lt;
        } else if (r >= n - gt) {
            a = dst + (n - gt);
            r -= n - gt;
            n = gt;
        } else {
            return pivot;
        }
        dst = dst == buf ? buf + half : buf;
    }
    return a[0];
}

/* Keep the k best of an index-ordered list (if it holds more), set wthr to the k-th distance;
 * sel: 2 x cap floats. */
static void compact_weighted(hm_cand_list *l, size_t k, float *sel, size_t cap)
{
    if (l->count < k)
        return;
    float D = select_rank(l->wdist, l->count, k - 1, sel, cap);
    size_t below = 0;
    for (size_t i = 0; i < l->count; i++)
        below += l->wdist[i] < D;
    size_t take_eq = k - below, o = 0;
    for (size_t i = 0; i < l->count; i++) {
        float d = l->wdist[i];
        size_t eq = (d == D) & (take_eq != 0);
        l->idx[o] = l->idx[i];
        l->wdist[o] = d;
        o += (d < D) | eq;
        take_eq -= eq;
    }
    l->count = o;
    l->wthr = D;
}

/* compact_weighted, then the list's Hamming bound for the new threshold. */
static void compact_w(const knn_job *job, hm_cand_list *l, size_t k, float *sel)
{
    compact_weighted(l, k, sel, job->cap);
    l->hcut = hm_weights_hcut(job->w, l->wthr);
}

/* Sort an index-ordered list by (distance, index) into the outputs; order: 2 x count entries.
 * hm_sort_keyed is stable, and positions in the list are in index order. */
static void emit_weighted(const hm_cand_list *l, hm_keyed *order, int64_t *idx, float *dist)
{
    size_t n = l->count;
    for (size_t i = 0; i < n; i++)
        order[i] = (hm_keyed){.d = l->wdist[i], .idx = (uint32_t)i};
    hm_sort_keyed(order, order + n, n);
    for (size_t i = 0; i < n; i++) {
        idx[i] = l->idx[order[i].idx];
        dist[i] = order[i].d;
    }
}

/* ---- driver ------------------------------------------------------------------------------ */

/* The length of the tile at row t of n: at most job->tile, and the ramp's (see scan_rows) */
static size_t tile_at(const knn_job *job, size_t t, size_t n, size_t head)
{
    size_t m = n - t < job->tile ? n - t : job->tile;
    size_t ramp = t > head ? t : head;
    return ramp < m ? ramp : m;
}

/* Scans rows[0, n) (database indices base + i) for the nq queries at q into lists, which hold
 * the top kk so far: compacted before a tile when they could overflow or hold many more than kk.
 * The first tiles ramp up from 2kk rows, each at most as long as the rows seen so far, so a
 * list's threshold tightens before it meets many rows: about kk rows are appended per tile
 * instead of a whole tile at first (fewer and smaller selections; plain AVX-512 scans of 1M
 * 64-bit codes, 2 threads, on Zen 5: 250 queries 9.2 -> 7.6 ms, 1000 queries 38 -> 31 ms). */
static void scan_rows(const knn_job *job, knn_scratch *s, const uint64_t *q, size_t nq,
                      hm_cand_list *lists, const uint64_t *rows, size_t n, int64_t base, size_t kk)
{
    size_t words = job->db->words;
    size_t head = (2 * kk + 63) & ~(size_t)63;
    for (size_t t = 0, m; t < n; t += m) {
        m = tile_at(job, t, n, head);
        for (size_t j = 0; j < nq; j++) {
            hm_cand_list *l = &lists[j];
            if (l->count >= 2 * kk + 16 || l->count + m > job->cap) {
                if (job->w)
                    compact_w(job, l, kk, s->sel);
                else
                    compact_plain(l, kk, s->hist, job->db->bits);
            }
        }
        if (job->w) {
            size_t next_n = t + m < n ? tile_at(job, t + m, n, head) : 0;
            job->kern->scan_weighted(q, nq, rows + t * words, m, words, job->w->tables, 0,
                                     base + (int64_t)t, lists, s->wscan,
                                     next_n ? rows + (t + m) * words : NULL, next_n);
        } else
            job->kern->scan(q, nq, rows + t * words, m, words, base + (int64_t)t, lists);
    }
}

static void list_start(hm_cand_list *l, const knn_job *job, float wthr)
{
    l->count = 0;
    l->thr = job->db->bits + 1;
    l->wthr = wthr;
    l->hcut = job->w && wthr < INFINITY ? hm_weights_hcut(job->w, wthr) : 0;
    l->wplan = (hm_wplan){0};
}

/* Keep a list's best kk, its threshold the kk-th distance. */
static void compact_list(const knn_job *job, knn_scratch *s, hm_cand_list *l, size_t kk)
{
    if (job->w)
        compact_w(job, l, kk, s->sel);
    else
        compact_plain(l, kk, s->hist, job->db->bits);
}

/* After the scan of the sample: the list starts again, its threshold just above the sample's
 * guess_c-th distance, so rows at that distance pass too (with many equal distances, short codes
 * or duplicate rows, fewer than kk may be strictly below it). */
static void guess_start(const knn_job *job, knn_scratch *s, hm_cand_list *l)
{
    size_t c = job->guess_c;
    bool full = l->count >= c;
    if (job->w) /* not compact_w: list_start derives hcut for the threshold it sets */
        compact_weighted(l, c, s->sel, job->cap);
    else
        compact_plain(l, c, s->hist, job->db->bits);
    float wthr = job->w && full ? nextafterf(l->wthr, INFINITY) : INFINITY;
    uint32_t thr = !job->w && full ? l->thr + 1 : job->db->bits + 1;
    list_start(l, job, wthr);
    l->thr = thr;
}

/* The queries [*q0, *q0 + *nq) of block b. */
static void block_range(const knn_job *job, size_t b, size_t *q0, size_t *nq)
{
    size_t half = (job->qblock + 1) / 2;
    *q0 = b < job->qfull ? b * job->qblock : job->qfull * job->qblock + (b - job->qfull) * half;
    size_t m = b < job->qfull ? job->qblock : half, left = job->queries->n - *q0;
    *nq = left < m ? left : m;
}

/* One work item: query block b against database shard s. Returns 0, or -1 on allocation. */
static int run_item(const knn_job *job, knn_scratch *s, size_t b, size_t sh)
{
    const hm_codes *db = job->db, *qs = job->queries;
    size_t words = db->words, k = job->k;
    size_t q0, nq;
    block_range(job, b, &q0, &nq);
    size_t r0 = sh * job->shard_len;
    size_t r1 = r0 + job->shard_len < db->n ? r0 + job->shard_len : db->n;
    size_t kk = k < r1 - r0 ? k : r1 - r0; /* a shard may hold fewer than k rows */
    const uint64_t *q = qs->data + q0 * words;
    const uint64_t *rows = db->data + r0 * words;

    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &s->lists[j];
        l->idx = s->idx + j * job->cap;
        l->dist = s->dist ? s->dist + j * job->cap : NULL;
        l->wdist = s->wdist ? s->wdist + j * job->cap : NULL;
        list_start(l, job, INFINITY);
    }
    /* Each threshold starts just above the guess_c-th distance of the shard's sample. The lists
     * would otherwise take about kk ln(n / kk) rows on their way down (each row that beats the
     * k-th so far: about 1,200 a query at k = 100 over 1M codes, each appended and compacted, and
     * weighed exactly when weighted), where about 5 kk rows are at most at the guess. No row of
     * the top kk is above it unless fewer than kk rows are at most at it; then that list is
     * scanned again from no threshold, so results stay exact. */
    bool guessed = job->sample != NULL;
    if (guessed) {
        scan_rows(job, s, q, nq, s->lists, job->sample + sh * job->sample_n * words, job->sample_n,
                  0, job->guess_c);
        for (size_t j = 0; j < nq; j++)
            guess_start(job, s, &s->lists[j]);
    }
    scan_rows(job, s, q, nq, s->lists, rows, r1 - r0, (int64_t)r0, kk);
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &s->lists[j];
        compact_list(job, s, l, kk);
        if (guessed && l->count < kk) { /* the guess was below the kk-th distance */
            list_start(l, job, INFINITY);
            scan_rows(job, s, q + j * words, 1, l, rows, r1 - r0, (int64_t)r0, kk);
            compact_list(job, s, l, kk);
        }
        size_t qi = q0 + j;
        if (job->shards == 1) {
            if (job->w) {
                emit_weighted(l, s->order, job->out_idx + qi * k, job->out_wdist + qi * k);
            } else {
                emit_plain(l, s->hist, db->bits, job->out_idx + qi * k, job->out_dist + qi * k);
            }
        } else {
            size_t slot = qi * job->shards + sh;
            memcpy(job->sh_idx + slot * k, l->idx, l->count * sizeof *l->idx);
            if (job->w)
                memcpy(job->sh_wdist + slot * k, l->wdist, l->count * sizeof *l->wdist);
            else
                memcpy(job->sh_dist + slot * k, l->dist, l->count * sizeof *l->dist);
            job->sh_count[slot] = l->count;
        }
    }
    return 0;
}

/* Merge the per-shard lists of query qi (shards are index ranges in order, so concatenating
 * them keeps the list index-ordered) and emit its top k. */
static int merge_query(const knn_job *job, knn_scratch *s, size_t qi)
{
    hm_cand_list *l = &s->lists[0];
    size_t k = job->k;
    l->idx = s->idx;
    l->dist = s->dist;
    l->wdist = s->wdist;
    list_start(l, job, INFINITY);
    for (size_t sh = 0; sh < job->shards; sh++) {
        size_t slot = qi * job->shards + sh, c = job->sh_count[slot];
        memcpy(l->idx + l->count, job->sh_idx + slot * k, c * sizeof *l->idx);
        if (job->w)
            memcpy(l->wdist + l->count, job->sh_wdist + slot * k, c * sizeof *l->wdist);
        else
            memcpy(l->dist + l->count, job->sh_dist + slot * k, c * sizeof *l->dist);
        l->count += c;
    }
    if (job->w) {
        compact_weighted(l, k, s->sel, job->cap);
        emit_weighted(l, s->order, job->out_idx + qi * k, job->out_wdist + qi * k);
        return 0;
    }
    compact_plain(l, k, s->hist, job->db->bits);
    emit_plain(l, s->hist, job->db->bits, job->out_idx + qi * k, job->out_dist + qi * k);
    return 0;
}

static drsch_status check_args(const hm_codes *db, const hm_codes *queries, size_t k,
                               const void *indices, const void *distances, drsch_error *err)
{
    if (!db || !queries || !db->data || !queries->data)
        return drsch_fail(err, DRSCH_ERR_ARG, "top-k: database or queries missing");
    if (!indices || !distances)
        return drsch_fail(err, DRSCH_ERR_ARG, "top-k: output buffers missing");
    if (db->bits != queries->bits)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "top-k: queries have %u bits but the database %u bits", queries->bits,
                          db->bits);
    if (k < 1 || k > db->n)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "top-k: k = %zu must be between 1 and the database size %zu", k, db->n);
    return DRSCH_OK;
}

/* Chooses tile length, query block and database shards for a job (fills tile, cap, qblock,
 * nblocks, shards). Shared by knn_run and hm_knn_db_passes so the model matches the code. */
static void knn_plan(knn_job *job, bool weighted)
{
    const hm_codes *db = job->db, *qs = job->queries;
    size_t k = job->k;
    int threads = 1;
#if defined(DRSCH_HAVE_OPENMP)
    threads = omp_get_max_threads();
#endif
    size_t row_bytes = db->words * 8;
    size_t tile = KNN_TILE_BYTES / row_bytes;
    tile = tile < 64 ? 64 : tile;
    if (weighted) {
        /* weighted scans stream the tile's copy once per query; they also build per-query
         * tables per tile, which longer tiles amortise */
        size_t copy_row = job->kern->wscan_copy_word_bytes * db->words, least = KNN_WTILE_MIN;
        tile = KNN_WTILE_TRANSPOSED / copy_row;
        if (job->kern->isa == HM_ISA_AVX512 && hm_cpu_intel()) {
            tile = KNN_WTILE_INTEL / copy_row;
            least = KNN_WTILE_INTEL_ROWS;
        }
        tile = tile < least ? least : tile;
    }
    tile = (tile + 15) & ~(size_t)15;
    job->tile = tile;
    job->cap = k + 2 * tile;
    size_t per_query = job->cap * (sizeof(int64_t) + sizeof(float));
    size_t qb = KNN_LIST_BUDGET / per_query;
    /* Weighted scans copy each tile once per block, so a block of more queries shares the copy
     * (and the per-call tables) among more; how much that pays grows with the code length (Zen
     * 5, 1 thread, 1M codes, 1,000 queries, learned weights, weighted / plain speed by the
     * largest block: 64 bits 0.62x at 64, 0.66x at 128, 0.60-0.67x at 512; 128 bits (random
     * weights) 0.65x, 0.72x at 256; 256 bits 0.62x, 0.72x at 128, 0.75x at 256, 0.78x at 512;
     * 512 bits 0.45x, 0.63x at 512). */
    size_t qmax = weighted ? 128 * db->words : KNN_MAX_QBLOCK;
    qmax = qmax > KNN_MAX_WQBLOCK ? KNN_MAX_WQBLOCK : qmax;
    qb = qb < 1 ? 1 : qb > qmax ? qmax : qb;
    /* enough blocks for every thread when there are many queries */
    size_t fair = (qs->n + (size_t)threads - 1) / (size_t)threads;
    if (fair < qb)
        qb = fair ? fair : 1;
    size_t nblocks = (qs->n + qb - 1) / qb, full = nblocks;
    if (weighted) { /* blocks of equal size, as many for every thread (big blocks: one more
                     * block for one thread is a large imbalance) */
        size_t per = (qs->n + (size_t)threads * qb - 1) / ((size_t)threads * qb);
        qb = (qs->n + (size_t)threads * per - 1) / ((size_t)threads * per);
        qb = qb ? qb : 1;
        nblocks = full = (qs->n + qb - 1) / qb;
        /* With two or more blocks per thread, the last block of each thread is split in two, so
         * a thread that runs slower (a contended core of a virtual machine) leaves the other at
         * most half a block to wait for. On the 2-core Zen 5 VM, with a planted load on one core
         * (busy 2 ms in every 10), 64 bits, 2 threads, 1,000 queries: 33.5 ms against 34.8 ms
         * (medians of 5, alternately); without the load, no difference beyond the noise. */
        if (threads > 1 && per >= 2 && qb > 1 && nblocks >= 2 * (size_t)threads) {
            full = nblocks - (size_t)threads;
            nblocks = full + (qs->n - full * qb + (qb + 1) / 2 - 1) / ((qb + 1) / 2);
        }
    }
    job->qblock = qb;
    job->qfull = full;
    job->nblocks = nblocks;
    size_t shards = 1;
    if (job->nblocks < (size_t)threads) {
        shards = ((size_t)threads + job->nblocks - 1) / job->nblocks;
        size_t most = db->n / (4 * tile); /* a shard is worth at least a few tiles */
        if (shards > most)
            shards = most ? most : 1;
    }
    job->shards = shards;
    if (shards > 1 && job->cap < shards * k)
        job->cap = shards * k; /* the merge concatenates every shard's k into one list */
}

size_t hm_knn_db_passes(const hm_codes *db, size_t nq, size_t k, bool weighted)
{
    hm_codes q = {.n = nq, .bits = db->bits, .words = db->words};
    knn_job job = {.kern = hm_active_kernels(), .db = db, .queries = &q, .k = k};
    knn_plan(&job, weighted);
    return job.nblocks;
}

/* Threshold guesses (run_item): GUESS_C * rows / (GUESS_ALPHA * kk) rows of every shard, spread
 * evenly over it, so that about GUESS_ALPHA * kk of its rows are at most at a query's GUESS_C-th
 * distance in the sample. Fewer than kk are with probability about P(Poisson(GUESS_C / GUESS_ALPHA)
 * >= GUESS_C), 3e-4 (rows in random order), and those queries are scanned again. No sample when it
 * would be over 1/16 of a shard (k below about 26) or cannot be allocated: the scans then start
 * from no threshold. Measured on Zen 5 (AVX-512, 1M random codes, 1,000 queries, k = 100, the
 * same build with and without): plain 64 bits 63 -> 53 ms at 1 thread, 128 bits 58 -> 52 ms and
 * 256 bits 118 -> 112 ms at 2, 512 bits no change; weighted with the learned weights, 64 bits, 1
 * thread: 0.57x -> 0.70x the speed of plain ranking without it. */
#define GUESS_C 8
#define GUESS_ALPHA 5
/* The sample is copied and searched once per call: with a single query it cost more than it saved
 * (1M 64-bit codes, AVX-512 on Zen 5: p50 0.448 against 0.427 ms). */
#define GUESS_MIN_QUERIES 16

size_t hm_knn_guess_rows(size_t rows, size_t kk)
{
    if (kk == 0)
        return 0;
    size_t n = (GUESS_C * rows + GUESS_ALPHA * kk - 1) / (GUESS_ALPHA * kk);
    return n < GUESS_C || 16 * n > rows ? 0 : n;
}

/* The sample is taken in runs of consecutive rows, at least 64 runs (when it has 64 rows) of at
 * most 64 rows, evenly spaced: one row from every stride was one cache miss a row, and copying
 * the 16,000 rows of a sample of 1M 64-bit codes took about 2% of a plain search. */
static size_t guess_run(size_t n)
{
    size_t run = n / 64;
    return run < 1 ? 1 : run > 64 ? 64 : run;
}

size_t hm_knn_guess_row(size_t rows, size_t n, size_t i)
{
    size_t run = guess_run(n), runs = (n + run - 1) / run;
    return i / run * (rows / runs) + i % run;
}

static void plan_guess(knn_job *job)
{
    const hm_codes *db = job->db;
    size_t shards = job->shards, words = db->words;
    size_t least = db->n - (shards - 1) * job->shard_len; /* the last shard is the shortest */
    size_t n = hm_knn_guess_rows(least, job->k < least ? job->k : least);
    if (!n || job->queries->n < GUESS_MIN_QUERIES)
        return;
    uint64_t *sample = malloc(shards * n * words * sizeof *sample);
    if (!sample)
        return;
    size_t run = guess_run(n);
    for (size_t sh = 0; sh < shards; sh++) {
        size_t r0 = sh * job->shard_len;
        size_t rows = db->n - r0 < job->shard_len ? db->n - r0 : job->shard_len;
        for (size_t i = 0; i < n; i += run)
            memcpy(sample + (sh * n + i) * words,
                   db->data + (r0 + hm_knn_guess_row(rows, n, i)) * words,
                   (n - i < run ? n - i : run) * words * sizeof *sample);
    }
    job->sample = sample;
    job->sample_n = n;
    job->guess_c = GUESS_C;
}

static drsch_status knn_run(knn_job *job, drsch_error *err)
{
    const hm_codes *db = job->db, *qs = job->queries;
    size_t k = job->k;
    knn_plan(job, job->w != NULL);
    size_t shards = job->shards;
    job->shard_len = (db->n + shards - 1) / shards;
    plan_guess(job);
    if (shards > 1) {
        size_t slots = qs->n * shards;
        job->sh_idx = malloc(slots * k * sizeof *job->sh_idx);
        job->sh_count = malloc(slots * sizeof *job->sh_count);
        if (job->w)
            job->sh_wdist = malloc(slots * k * sizeof *job->sh_wdist);
        else
            job->sh_dist = malloc(slots * k * sizeof *job->sh_dist);
        if (!job->sh_idx || !job->sh_count || (job->w ? !job->sh_wdist : !job->sh_dist)) {
            free(job->sh_idx);
            free(job->sh_count);
            free(job->sh_wdist);
            free(job->sh_dist);
            free(job->sample);
            return drsch_fail(err, DRSCH_ERR_NOMEM, "top-k: cannot allocate shard results");
        }
    }
    size_t items = job->nblocks * shards;
    int failed = 0;
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp parallel reduction(| : failed)
#endif
    {
        knn_scratch s;
        if (scratch_alloc(&s, job)) {
            failed = 1;
        } else {
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
            for (size_t it = 0; it < items; it++)
                failed |= run_item(job, &s, it / shards, it % shards) != 0;
            if (shards > 1) {
#if defined(DRSCH_HAVE_OPENMP)
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
#endif
                for (size_t qi = 0; qi < qs->n; qi++)
                    failed |= merge_query(job, &s, qi) != 0;
            }
            scratch_free(&s);
        }
    }
    free(job->sh_idx);
    free(job->sh_count);
    free(job->sh_wdist);
    free(job->sh_dist);
    free(job->sample);
    if (failed)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "top-k: cannot allocate scratch for k = %zu", k);
    return DRSCH_OK;
}

drsch_status hm_knn(const hm_codes *db, const hm_codes *queries, size_t k, int64_t *indices,
                    int32_t *distances, drsch_error *err)
{
    drsch_status st = check_args(db, queries, k, indices, distances, err);
    if (st != DRSCH_OK)
        return st;
    knn_job job = {.kern = hm_active_kernels(),
                   .db = db,
                   .queries = queries,
                   .k = k,
                   .out_idx = indices,
                   .out_dist = distances};
    return knn_run(&job, err);
}

drsch_status hm_knn_weighted(const hm_codes *db, const hm_codes *queries, size_t k,
                             const hm_weights *w, int64_t *indices, float *distances,
                             drsch_error *err)
{
    drsch_status st = check_args(db, queries, k, indices, distances, err);
    if (st != DRSCH_OK)
        return st;
    if (!w)
        return drsch_fail(err, DRSCH_ERR_ARG, "weighted top-k: no weights given");
    if (w->bits != db->bits)
        return drsch_fail(err, DRSCH_ERR_ARG, "weighted top-k: %u weights for codes of %u bits",
                          w->bits, db->bits);
    knn_job job = {.kern = hm_active_kernels(),
                   .db = db,
                   .queries = queries,
                   .k = k,
                   .w = w,
                   .out_idx = indices,
                   .out_wdist = distances};
    return knn_run(&job, err);
}
