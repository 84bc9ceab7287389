/* Exact retrieval and re-id metrics (rules in metrics.h). For integer Hamming distances one
 * query costs two passes over the database: a histogram of (distance, relevance) gives every
 * tie group's offset, and a second pass in index order gives each relevant item its rank
 * (ties by database index) without sorting; a pass over the relevant items sums their
 * precisions. */
#include "metrics.h"
#include "keysort.h"
#include "rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int relevant(const ev_labels *ql, size_t i, const ev_labels *dbl, size_t j)
{
    if (ql->labels)
        return ql->labels[i] == dbl->labels[j];
    const uint64_t *a = ql->multi + i * ql->words, *b = dbl->multi + j * dbl->words;
    for (size_t w = 0; w < ql->words; w++)
        if (a[w] & b[w])
            return 1;
    return 0;
}

double ev_average_precision(const uint8_t *rel, size_t n, size_t n_relevant_total)
{
    if (!n_relevant_total)
        return 0;
    double sum = 0;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
        if (rel[i])
            sum += (double)++hits / (double)(i + 1);
    return sum / (double)n_relevant_total;
}

/* Expected precision sum of a tie group of n items holding r relevant ones, after N items
 * holding Rb relevant ones, when the group's order is uniformly random. With harmonic numbers
 * H: sum_{i=1..n} (Rb + 1 + (i-1)(r-1)/(n-1)) / (N + i), times r/n. */
static double tie_group_expected(size_t N, size_t Rb, size_t n, size_t r, const double *H)
{
    double c = n > 1 ? (double)(r - 1) / (double)(n - 1) : 0.0;
    double a = (double)Rb + 1.0;
    double s = c * (double)n + (a - c * (double)(N + 1)) * (H[N + n] - H[N]);
    return s * (double)r / (double)n;
}

typedef struct {
    double ap, ap_tie, apk, pk, pr;
    int has_rel;
} query_metrics;

/* Integer distances: histogram + index-order pass. cnt/rcnt/seen/seenr: bits + 2 entries. */
static query_metrics eval_int(const uint32_t *dist, size_t n, uint32_t bits, const ev_labels *ql,
                              size_t qi, const ev_labels *dbl, const ev_options *opt,
                              const double *H, size_t *cnt, size_t *rcnt, size_t *nb, size_t *rb,
                              uint32_t *rel_rank, uint32_t *rel_dist, double *pr_p, double *pr_r,
                              int *pr_has)
{
    query_metrics m = {0, 0, 0, 0, 0, 0};
    size_t G = (size_t)bits + 1;
    memset(cnt, 0, G * sizeof *cnt);
    memset(rcnt, 0, G * sizeof *rcnt);
    for (size_t j = 0; j < n; j++) {
        cnt[dist[j]]++;
        rcnt[dist[j]] += (size_t)relevant(ql, qi, dbl, j);
    }
    size_t N = 0, R = 0;
    for (size_t d = 0; d < G; d++) {
        nb[d] = N;
        rb[d] = R;
        N += cnt[d];
        R += rcnt[d];
    }
    /* Radius metrics and the PR curve come straight from the histogram. */
    size_t ret = 0, relret = 0;
    for (size_t d = 0; d < G; d++) {
        ret += cnt[d];
        relret += rcnt[d];
        if (d == opt->radius)
            m.pr = ret ? (double)relret / (double)ret : 0.0;
        if (pr_p) {
            pr_has[d] = ret > 0;
            pr_p[d] = ret ? (double)relret / (double)ret : 0.0;
            pr_r[d] = R ? (double)relret / (double)R : 0.0;
        }
    }
    if (opt->radius >= G)
        m.pr = N ? (double)R / (double)N : 0.0;
    m.has_rel = R > 0;
    if (!R)
        return m;
    for (size_t d = 0; d < G; d++)
        if (rcnt[d])
            m.ap_tie += tie_group_expected(nb[d], rb[d], cnt[d], rcnt[d], H);
    m.ap_tie /= (double)R;
    /* Second pass: nb becomes each group's running rank; the relevant items' ranks and
     * distances are kept (the slot is written for every item and kept for relevant ones, so
     * there is no branch on relevance to mispredict), and summed after in index order. Against
     * a branch per item: 1,000 queries over 69,000 codes of 10 classes 0.17-0.21 s against
     * 0.23-0.27 s (1 thread, five alternate runs, 2-core Xeon of family 6 model 207). */
    size_t K = opt->topk, relk = 0, m_rel = 0;
    for (size_t j = 0; j < n; j++) {
        const uint32_t d = dist[j];
        rel_rank[m_rel] = (uint32_t)++nb[d];
        rel_dist[m_rel] = d;
        m_rel += (size_t)relevant(ql, qi, dbl, j);
    }
    double sum = 0, sumk = 0;
    for (size_t k = 0; k < m_rel; k++) {
        const size_t rank = rel_rank[k];
        double prec = (double)++rb[rel_dist[k]] / (double)rank;
        sum += prec;
        if (rank <= K) {
            sumk += prec;
            relk++;
        }
    }
    m.ap = sum / (double)R;
    m.apk = relk ? sumk / (double)relk : 0.0;
    m.pk = K ? (double)relk / (double)(K < n ? K : n) : 0.0;
    return m;
}

/* Float (weighted) distances: sort by (distance, index), then walk the ranking. */
static query_metrics eval_float(const float *dist, size_t n, const ev_labels *ql, size_t qi,
                                const ev_labels *dbl, const ev_options *opt, const double *H,
                                hm_keyed *order, hm_keyed *tmp)
{
    query_metrics m = {0, 0, 0, 0, -1, 0};
    for (size_t j = 0; j < n; j++) {
        order[j].d = dist[j];
        order[j].idx = (uint32_t)j;
    }
    hm_sort_keyed(order, tmp, n);
    size_t R = 0;
    for (size_t j = 0; j < n; j++)
        R += (size_t)relevant(ql, qi, dbl, j);
    m.has_rel = R > 0;
    if (!R)
        return m;
    /* The relevant items' positions in the ranking, kept without a branch on relevance (see
     * eval_int), in tmp, free after the sort; then their precisions, and the tie groups that hold
     * them, found from their ends. The same sums in the same order as a walk over the ranking,
     * which, branching on every item, took 0.85-1.00 s of 1,000 weighted queries over 69,000
     * codes against 0.65-0.71 s (1 thread, four alternate runs, 2-core Xeon of model 207). */
    uint32_t *pos = (uint32_t *)tmp;
    size_t found = 0;
    for (size_t g = 0; g < n; g++) {
        pos[found] = (uint32_t)g;
        found += (size_t)relevant(ql, qi, dbl, order[g].idx);
    }
    size_t K = opt->topk, relk = 0;
    double sum = 0, sumk = 0;
    for (size_t k = 0; k < R; k++) {
        const double prec = (double)(k + 1) / (double)((size_t)pos[k] + 1);
        sum += prec;
        if (pos[k] < K) {
            sumk += prec;
            relk++;
        }
    }
    for (size_t k = 0; k < R;) { /* pos[k]: the first relevant item of its group */
        const float d = order[pos[k]].d;
        size_t first = pos[k], end = (size_t)pos[k] + 1, next = k + 1;
        while (first > 0 && order[first - 1].d == d)
            first--;
        while (end < n && order[end].d == d)
            end++;
        while (next < R && pos[next] < end)
            next++;
        m.ap_tie += tie_group_expected(first, k, end - first, next - k, H);
        k = next;
    }
    m.ap = sum / (double)R;
    m.ap_tie /= (double)R;
    m.apk = relk ? sumk / (double)relk : 0.0;
    m.pk = K ? (double)relk / (double)(K < n ? K : n) : 0.0;
    return m;
}

static drsch_status check_labels(const ev_labels *l, size_t n, const char *what, drsch_error *err)
{
    if (l->n != n)
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: %zu labels for %zu codes", what, l->n, n);
    if (!!l->labels == !!l->multi)
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: give either single labels or multi-hot labels",
                          what);
    return DRSCH_OK;
}

void ev_retrieval_free(ev_retrieval *r)
{
    free(r->pr_precision);
    free(r->pr_recall);
    r->pr_precision = r->pr_recall = NULL;
}

drsch_status ev_retrieval_eval(const hm_codes *q, const ev_labels *ql, const hm_codes *db,
                               const ev_labels *dbl, const hm_weights *w, const ev_options *opt,
                               ev_retrieval *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    drsch_status st;
    if ((st = check_labels(ql, q->n, "queries", err)) ||
        (st = check_labels(dbl, db->n, "database", err)))
        return st;
    if (q->bits != db->bits)
        return drsch_fail(err, DRSCH_ERR_ARG, "query codes have %u bits, database codes %u",
                          q->bits, db->bits);
    if (!!ql->labels != !!dbl->labels || ql->words != dbl->words)
        return drsch_fail(err, DRSCH_ERR_ARG, "query and database labels are of different kinds");
    if (db->n > UINT32_MAX || db->n == 0 || q->n == 0)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "need 1..2^32-1 database codes and at least one query");
    size_t n = db->n, G = (size_t)db->bits + 1;
    int want_pr = opt->pr_curve && !w;
    double *H = malloc((n + 1) * sizeof *H);
    double *pr_p = want_pr ? calloc(G, sizeof *pr_p) : NULL,
           *pr_r = want_pr ? calloc(G, sizeof *pr_r) : NULL;
    size_t *pr_np = want_pr ? calloc(G, sizeof *pr_np) : NULL;
    if (!H || (want_pr && (!pr_p || !pr_r || !pr_np))) {
        free(H);
        free(pr_p);
        free(pr_r);
        free(pr_np);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %zu database items", n);
    }
    H[0] = 0;
    for (size_t i = 1; i <= n; i++)
        H[i] = H[i - 1] + 1.0 / (double)i;

    /* Per-query results, summed in query order afterwards: the totals do not depend on the
     * thread count or on OpenMP's schedule. */
    query_metrics *qm = malloc(q->n * sizeof *qm);
    double *qpr = want_pr ? malloc(q->n * 2 * G * sizeof *qpr) : NULL;
    uint8_t *qprhas = want_pr ? malloc(q->n * G) : NULL;
    int oom = !qm || (want_pr && (!qpr || !qprhas));
#pragma omp parallel reduction(| : oom)
    {
        /* Per-thread scratch: distances, histograms, a sort buffer, a PR row. */
        void *dist = malloc(n * 4);
        size_t *scratch = malloc(4 * G * sizeof *scratch);
        uint32_t *rel =
            w ? NULL : malloc(2 * n * sizeof *rel); /* relevant items' ranks, distances */
        hm_keyed *order = w ? malloc(2 * n * sizeof *order) : NULL; /* and the radix sort's copy */
        int *qhas = want_pr ? malloc(G * sizeof *qhas) : NULL;
        if (!dist || !scratch || (w && !order) || (!w && !rel) || (want_pr && !qhas))
            oom = 1;
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < q->n; i++) {
            if (oom)
                continue;
            if (w) {
                hm_weighted_distances(hm_code_row(q, i), db, w, dist);
                qm[i] = eval_float(dist, n, ql, i, dbl, opt, H, order, order + n);
            } else {
                double *row = want_pr ? qpr + i * 2 * G : NULL;
                hm_distances(hm_code_row(q, i), db, dist);
                qm[i] = eval_int(dist, n, db->bits, ql, i, dbl, opt, H, scratch, scratch + G,
                                 scratch + 2 * G, scratch + 3 * G, rel, rel + n, row,
                                 row ? row + G : NULL, qhas);
                for (size_t d = 0; want_pr && d < G; d++)
                    qprhas[i * G + d] = (uint8_t)qhas[d];
            }
        }
        free(dist);
        free(scratch);
        free(rel);
        free(order);
        free(qhas);
    }
    double s_ap = 0, s_tie = 0, s_apk = 0, s_pk = 0, s_pr = 0;
    size_t no_rel = 0, rel_queries = 0;
    for (size_t i = 0; i < q->n && !oom; i++) {
        const query_metrics *m = &qm[i];
        s_ap += m->ap;
        s_tie += m->ap_tie;
        s_apk += m->apk;
        s_pk += m->pk;
        s_pr += m->pr;
        no_rel += !m->has_rel;
        rel_queries += (size_t)m->has_rel;
        for (size_t d = 0; want_pr && d < G; d++) {
            if (qprhas[i * G + d]) {
                pr_p[d] += qpr[i * 2 * G + d];
                pr_np[d]++;
            }
            if (m->has_rel)
                pr_r[d] += qpr[i * 2 * G + G + d];
        }
    }
    free(qm);
    free(qpr);
    free(qprhas);
    free(H);
    if (oom) {
        free(pr_p);
        free(pr_r);
        free(pr_np);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for per-thread buffers (%zu items)",
                          n);
    }
    double nq = (double)q->n;
    out->queries = q->n;
    out->queries_without_relevant = no_rel;
    out->map_all = s_ap / nq;
    out->map_tie_aware = s_tie / nq;
    out->map_at_k = opt->topk ? s_apk / nq : 0;
    out->precision_at_k = opt->topk ? s_pk / nq : 0;
    out->precision_radius = w ? -1.0 : s_pr / nq;
    if (want_pr) {
        for (size_t d = 0; d < G; d++) {
            pr_p[d] = pr_np[d] ? pr_p[d] / (double)pr_np[d] : 0.0;
            pr_r[d] = rel_queries ? pr_r[d] / (double)rel_queries : 0.0;
        }
        out->pr_points = G;
        out->pr_precision = pr_p;
        out->pr_recall = pr_r;
    }
    free(pr_np);
    return DRSCH_OK;
}

/* ---- re-identification ------------------------------------------------------------------- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The gallery's identities in order (ids[0..nid)) and each identity's items in index order:
 * members[start[k]..start[k + 1]) for the k-th identity. 0, or -1 when out of memory. */
static int identity_index(const int32_t *gid, size_t n, int32_t **ids_out, size_t *nid_out,
                          uint32_t **start_out, uint32_t **members_out)
{
    int32_t *ids = malloc(n * sizeof *ids);
    uint32_t *dense = malloc(n * sizeof *dense), *start = NULL, *members = NULL, *fill = NULL;
    size_t nid = 0;
    if (!ids || !dense)
        goto fail;
    memcpy(ids, gid, n * sizeof *ids);
    qsort(ids, n, sizeof *ids, cmp_i32);
    for (size_t i = 0; i < n; i++)
        if (!nid || ids[nid - 1] != ids[i])
            ids[nid++] = ids[i];
    start = calloc(nid + 1, sizeof *start);
    members = malloc(n * sizeof *members);
    fill = malloc((nid + 1) * sizeof *fill);
    if (!start || !members || !fill)
        goto fail;
    for (size_t j = 0; j < n; j++) {
        const int32_t *p = bsearch(&gid[j], ids, nid, sizeof *ids, cmp_i32);
        dense[j] = (uint32_t)(p - ids);
        start[dense[j] + 1]++;
    }
    for (size_t i = 0; i < nid; i++)
        start[i + 1] += start[i];
    memcpy(fill, start, (nid + 1) * sizeof *fill);
    for (size_t j = 0; j < n; j++)
        members[fill[dense[j]]++] = (uint32_t)j;
    free(dense);
    free(fill);
    *ids_out = ids;
    *nid_out = nid;
    *start_out = start;
    *members_out = members;
    return 0;
fail:
    free(ids);
    free(dense);
    free(start);
    free(members);
    free(fill);
    return -1;
}

/* Single-gallery-shot CMC of query i, added to lcmc: R times one random valid image per identity;
 * the rank of the true match is the number of sampled images ahead of it in (distance, index)
 * order. cands: scratch of one entry per identity. */
static void single_shot_cmc(size_t i, int32_t qid, int32_t qcam, const int32_t *gid,
                            const int32_t *gcam, const float *fd, size_t nid, const uint32_t *start,
                            const uint32_t *members, int R, uint64_t seed, uint32_t *cands,
                            double *lcmc)
{
    for (int rep = 0; rep < R; rep++) {
        uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)) ^ ((uint64_t)rep << 48);
        size_t nc = 0, match = SIZE_MAX;
        for (size_t id = 0; id < nid; id++) {
            uint32_t b = start[id], e = start[id + 1];
            size_t nvalid = 0;
            for (uint32_t t = b; t < e; t++)
                nvalid += !(gid[members[t]] == qid && gcam[members[t]] == qcam);
            if (!nvalid)
                continue;
            size_t pick = (size_t)(rng_splitmix64(&s) % nvalid);
            for (uint32_t t = b; t < e; t++) {
                uint32_t j = members[t];
                if (gid[j] == qid && gcam[j] == qcam)
                    continue;
                if (pick-- == 0) {
                    if (gid[j] == qid)
                        match = nc;
                    cands[nc++] = j;
                    break;
                }
            }
        }
        uint32_t mj = cands[match];
        size_t ahead = 0;
        for (size_t c = 0; c < nc; c++) {
            uint32_t j = cands[c];
            ahead += fd[j] < fd[mj] || (fd[j] == fd[mj] && j < mj);
        }
        for (size_t r = ahead; r < EV_CMC_RANKS; r++)
            lcmc[r] += 1.0 / R;
    }
}

drsch_status ev_reid_eval(const hm_codes *q, const int32_t *qid, const int32_t *qcam,
                          const hm_codes *g, const int32_t *gid, const int32_t *gcam,
                          const hm_weights *w, int single_shot_repeats, uint64_t seed, ev_reid *out,
                          drsch_error *err)
{
    memset(out, 0, sizeof *out);
    if (q->bits != g->bits)
        return drsch_fail(err, DRSCH_ERR_ARG, "query codes have %u bits, gallery codes %u", q->bits,
                          g->bits);
    if (g->n == 0 || q->n == 0 || g->n > UINT32_MAX)
        return drsch_fail(err, DRSCH_ERR_ARG, "need at least one query and one gallery code");
    if (single_shot_repeats < 0)
        return drsch_fail(err, DRSCH_ERR_ARG, "single-shot repeats must be >= 0");
    size_t n = g->n, nid = 0;
    int32_t *ids = NULL;
    uint32_t *start = NULL, *members = NULL;
    if (identity_index(gid, n, &ids, &nid, &start, &members))
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");

    double cmc[EV_CMC_RANKS] = {0}, s_ap = 0, s_inp = 0;
    size_t valid = 0, skipped = 0;
    int R = single_shot_repeats;
    /* Per-query AP (-1: no true match), INP and CMC rows, summed in query order afterwards. */
    double *qap = malloc(q->n * sizeof *qap), *qinp = malloc(q->n * sizeof *qinp),
           *qcmc = calloc(q->n * EV_CMC_RANKS, sizeof *qcmc);
    int oom = !qap || !qinp || !qcmc;
#pragma omp parallel reduction(| : oom)
    {
        void *dist = malloc(n * 4);
        float *fd = malloc(n * sizeof *fd);
        hm_keyed *order = malloc(2 * n * sizeof *order), *tmp = order ? order + n : NULL;
        uint32_t *cands = malloc(n * sizeof *cands);
        if (!dist || !fd || !order || !cands)
            oom = 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < q->n; i++) {
            if (oom)
                continue;
            if (w) {
                hm_weighted_distances(hm_code_row(q, i), g, w, dist);
                memcpy(fd, dist, n * sizeof *fd);
            } else {
                hm_distances(hm_code_row(q, i), g, dist);
                for (size_t j = 0; j < n; j++)
                    fd[j] = (float)((uint32_t *)dist)[j];
            }
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (!(gid[j] == qid[i] && gcam[j] == qcam[i])) {
                    order[m].d = fd[j];
                    order[m].idx = (uint32_t)j;
                    m++;
                }
            hm_sort_keyed(order, tmp, m);
            size_t first = SIZE_MAX, last = 0, hits = 0, matches = 0;
            double ap = 0;
            for (size_t r = 0; r < m; r++)
                if (gid[order[r].idx] == qid[i]) {
                    if (first == SIZE_MAX)
                        first = r;
                    last = r;
                    ap += (double)++hits / (double)(r + 1);
                    matches++;
                }
            if (!matches) {
                qap[i] = -1;
                continue;
            }
            qap[i] = ap / (double)matches;
            /* INP: the matches over the rank of the hardest (last) one, ties by gallery index. */
            qinp[i] = (double)matches / (double)(last + 1);
            double *lcmc = qcmc + i * EV_CMC_RANKS;
            if (!R) {
                for (size_t r = first; r < EV_CMC_RANKS; r++)
                    lcmc[r] += 1.0;
                continue;
            }
            single_shot_cmc(i, qid[i], qcam[i], gid, gcam, fd, nid, start, members, R, seed, cands,
                            lcmc);
        }
        free(dist);
        free(fd);
        free(order);
        free(cands);
    }
    for (size_t i = 0; i < q->n && !oom; i++) {
        if (qap[i] < 0) {
            skipped++;
            continue;
        }
        valid++;
        s_ap += qap[i];
        s_inp += qinp[i];
        for (int r = 0; r < EV_CMC_RANKS; r++)
            cmc[r] += qcmc[i * EV_CMC_RANKS + r];
    }
    free(qap);
    free(qinp);
    free(qcmc);
    free(ids);
    free(start);
    free(members);
    if (oom)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for per-thread buffers");
    out->queries = valid;
    out->queries_skipped = skipped;
    out->single_shot_repeats = R;
    out->map = valid ? s_ap / (double)valid : 0;
    out->minp = valid ? s_inp / (double)valid : 0;
    for (int r = 0; r < EV_CMC_RANKS; r++)
        out->cmc[r] = valid ? cmc[r] / (double)valid : 0;
    return DRSCH_OK;
}

const char *ev_reid_gallery_name(ev_reid_gallery gallery)
{
    return gallery == EV_REID_CROSS_CAMERA ? "cross-camera" : gallery == EV_REID_ALL ? "all" : "?";
}

/* EV_REID_ALL: the pool of Q's rows then G's (codes, identities, cameras), every row a query. */
drsch_status ev_reid_eval_gallery(ev_reid_gallery gallery, const hm_codes *q, const int32_t *qid,
                                  const int32_t *qcam, const hm_codes *g, const int32_t *gid,
                                  const int32_t *gcam, const hm_weights *w, int single_shot_repeats,
                                  uint64_t seed, ev_reid *out, drsch_error *err)
{
    if (gallery == EV_REID_CROSS_CAMERA)
        return ev_reid_eval(q, qid, qcam, g, gid, gcam, w, single_shot_repeats, seed, out, err);
    memset(out, 0, sizeof *out);
    if (gallery != EV_REID_ALL)
        return drsch_fail(err, DRSCH_ERR_ARG, "unknown re-id gallery composition %d", (int)gallery);
    if (q->bits != g->bits)
        return drsch_fail(err, DRSCH_ERR_ARG, "query codes have %u bits, gallery codes %u", q->bits,
                          g->bits);
    size_t n = q->n + g->n;
    hm_codes p = {0};
    drsch_status st = hm_codes_alloc(&p, n, q->bits, err);
    if (st != DRSCH_OK)
        return st;
    int32_t *pid = malloc((n + 1) * sizeof *pid), *pcam = malloc((n + 1) * sizeof *pcam);
    if (!pid || !pcam) {
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %zu pooled images", n);
    } else {
        memcpy(p.data, q->data, q->n * q->words * sizeof *p.data);
        memcpy(p.data + q->n * p.words, g->data, g->n * g->words * sizeof *p.data);
        memcpy(pid, qid, q->n * sizeof *pid);
        memcpy(pid + q->n, gid, g->n * sizeof *pid);
        memcpy(pcam, qcam, q->n * sizeof *pcam);
        memcpy(pcam + q->n, gcam, g->n * sizeof *pcam);
        st = ev_reid_eval(&p, pid, pcam, &p, pid, pcam, w, single_shot_repeats, seed, out, err);
    }
    free(pid);
    free(pcam);
    hm_codes_free(&p);
    return st;
}
