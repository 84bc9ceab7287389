/* Evaluation protocols as index lists: the paper's per-class query / train / database split
 * (CIFAR-10 protocol, also the Fashion-MNIST default), the official train/test split, the
 * NUS-WIDE-21 per-concept split, the CUHK03 classic protocol, and the transfer protocol of
 * Sablayrolles et al. (training classes and held-out classes disjoint). All randomness comes from a
 * rng_state (simd/rng.h) seeded with the caller's seed; output lists are sorted ascending. */
#include "datasets_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ds_paper_opts_default(ds_paper_opts *o)
{
    o->query_per_class = 100; /* paper Sec. IV-A: 100 query images per class */
    o->train_per_class = 500; /* paper Sec. IV-A: 500 training images per class */
    o->db_includes_train = 0;
}

void ds_split_free(ds_split *s)
{
    if (!s)
        return;
    free(s->query);
    free(s->train);
    free(s->db);
    memset(s, 0, sizeof *s);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void sort_i64(int64_t *v, int64_t n)
{
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_i64);
}

static int split_alloc(ds_split *s, int64_t nq, int64_t nt, int64_t nd)
{
    s->query = malloc((size_t)(nq ? nq : 1) * sizeof(int64_t));
    s->train = malloc((size_t)(nt ? nt : 1) * sizeof(int64_t));
    s->db = malloc((size_t)(nd ? nd : 1) * sizeof(int64_t));
    if (!s->query || !s->train || !s->db) {
        ds_split_free(s);
        return -1;
    }
    return 0;
}

drsch_status ds_split_paper(const ds_dataset *d, const ds_paper_opts *o, uint64_t seed,
                            ds_split *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    ds_paper_opts def;
    if (!o) {
        ds_paper_opts_default(&def);
        o = &def;
    }
    if (d->label_kind == DS_LABELS_MULTI)
        return ds_split_multilabel(d, o, seed, out, err);
    if (o->query_per_class < 0 || o->train_per_class < 0)
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1, "negative per-class counts");
    int K = d->n_classes;
    int64_t *counts = calloc((size_t)K + 1, sizeof *counts);
    int64_t *order = malloc((size_t)(d->n ? d->n : 1) * sizeof *order);
    int64_t *start = calloc((size_t)K + 1, sizeof *start);
    if (!counts || !order || !start) {
        free(counts);
        free(order);
        free(start);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
    }
    ds_class_counts(d, counts);
    drsch_status s = DRSCH_OK;
    int64_t need = (int64_t)o->query_per_class + o->train_per_class;
    for (int k = 0; k < K && !s; k++)
        if (counts[k] < need)
            s = drsch_fail_at(
                err, DRSCH_ERR_RANGE, d->source, -1,
                "class %d has %lld images, fewer than %d queries + %d training images", k,
                (long long)counts[k], o->query_per_class, o->train_per_class);
    if (s)
        goto done;
    /* bucket the images by class, in dataset order, then shuffle each bucket */
    for (int k = 0; k < K; k++)
        start[k + 1] = start[k] + counts[k];
    {
        int64_t *fill = calloc((size_t)K, sizeof *fill);
        if (!fill) {
            s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < d->n; i++) {
            int k = d->labels[i];
            order[start[k] + fill[k]++] = i;
        }
        free(fill);
    }
    rng_state rng;
    rng_seed(&rng, seed);
    int64_t nq = (int64_t)K * o->query_per_class, nt = (int64_t)K * o->train_per_class;
    int64_t nd = d->n - nq - (o->db_includes_train ? 0 : nt);
    if (split_alloc(out, nq, nt, nd)) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
        goto done;
    }
    for (int k = 0; k < K; k++) {
        int64_t *b = order + start[k];
        rng_shuffle_i64(&rng, b, counts[k]);
        for (int64_t j = 0; j < counts[k]; j++) {
            if (j < o->query_per_class) {
                out->query[out->n_query++] = b[j];
            } else if (j < need) {
                out->train[out->n_train++] = b[j];
                if (o->db_includes_train)
                    out->db[out->n_db++] = b[j];
            } else {
                out->db[out->n_db++] = b[j];
            }
        }
    }
    sort_i64(out->query, out->n_query);
    sort_i64(out->train, out->n_train);
    sort_i64(out->db, out->n_db);
    snprintf(out->name, sizeof out->name,
             "paper: per class %d query / %d train / rest database%s; seed %llu",
             o->query_per_class, o->train_per_class,
             o->db_includes_train ? " (database includes train)" : "", (unsigned long long)seed);
done:
    free(counts);
    free(order);
    free(start);
    return s;
}

drsch_status ds_split_full(const ds_dataset *d, ds_split *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    if (!d->subset)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1,
                             "dataset %s has no official train/test split", d->name);
    int64_t nq = 0;
    for (int64_t i = 0; i < d->n; i++)
        nq += d->subset[i] != 0;
    if (split_alloc(out, nq, d->n - nq, d->n - nq))
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
    for (int64_t i = 0; i < d->n; i++) {
        if (d->subset[i]) {
            out->query[out->n_query++] = i;
        } else {
            out->train[out->n_train++] = i;
            out->db[out->n_db++] = i;
        }
    }
    snprintf(out->name, sizeof out->name,
             "full: query = official test set, train = database = official training set");
    return DRSCH_OK;
}

drsch_status ds_split_multilabel(const ds_dataset *d, const ds_paper_opts *o, uint64_t seed,
                                 ds_split *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    ds_paper_opts def;
    if (!o) {
        ds_paper_opts_default(&def);
        o = &def;
    }
    if (d->label_kind != DS_LABELS_MULTI)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1, "dataset %s is not multi-label",
                             d->name);
    int L = d->n_classes;
    /* role: 0 unused (database if labelled), 1 query, 2 train, 3 unlabelled */
    uint8_t *role = calloc((size_t)(d->n ? d->n : 1), 1);
    int64_t *cand = malloc((size_t)(d->n ? d->n : 1) * sizeof *cand);
    if (!role || !cand) {
        free(role);
        free(cand);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
    }
    int64_t n_labelled = 0;
    for (int64_t i = 0; i < d->n; i++) {
        int any = 0;
        for (int l = 0; l < L && !any; l++)
            any = d->multi[(size_t)i * (size_t)L + (size_t)l] != 0;
        role[i] = any ? 0 : 3;
        n_labelled += any;
    }
    rng_state rng;
    rng_seed(&rng, seed);
    drsch_status s = DRSCH_OK;
    int64_t need = (int64_t)o->query_per_class + o->train_per_class;
    int64_t nq = 0, nt = 0;
    for (int l = 0; l < L && !s; l++) {
        int64_t nc = 0;
        for (int64_t i = 0; i < d->n; i++)
            if (role[i] == 0 && d->multi[(size_t)i * (size_t)L + (size_t)l])
                cand[nc++] = i;
        if (nc < need) {
            s = drsch_fail_at(
                err, DRSCH_ERR_RANGE, d->source, -1,
                "concept %d has %lld unused images, fewer than %d queries + %d training images", l,
                (long long)nc, o->query_per_class, o->train_per_class);
            break;
        }
        rng_shuffle_i64(&rng, cand, nc);
        for (int64_t j = 0; j < need; j++)
            role[cand[j]] = j < o->query_per_class ? 1 : 2;
        nq += o->query_per_class;
        nt += o->train_per_class;
    }
    if (!s) {
        int64_t nd = n_labelled - nq - (o->db_includes_train ? 0 : nt);
        if (split_alloc(out, nq, nt, nd)) {
            s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
        } else {
            for (int64_t i = 0; i < d->n; i++) {
                if (role[i] == 1)
                    out->query[out->n_query++] = i;
                else if (role[i] == 2)
                    out->train[out->n_train++] = i;
                if (role[i] == 0 || (role[i] == 2 && o->db_includes_train))
                    out->db[out->n_db++] = i;
            }
            snprintf(out->name, sizeof out->name,
                     "multi-label: per concept %d query / %d train / rest database%s (%d concepts, "
                     "relevance = "
                     "shared label); seed %llu",
                     o->query_per_class, o->train_per_class,
                     o->db_includes_train ? " (database includes train)" : "", L,
                     (unsigned long long)seed);
        }
    }
    free(role);
    free(cand);
    return s;
}

drsch_status ds_split_cuhk03_classic(const ds_dataset *d, const ds_cuhk03_opts *o, uint64_t seed,
                                     ds_split *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    if (d->kind != DS_KIND_CUHK03 || !d->pair || !d->person || !d->slot || !d->pair_persons)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1, "dataset %s is not CUHK03",
                             d->name);
    if (!d->testsets || d->n_testsets == 0)
        return drsch_fail_at(err, DRSCH_ERR_FORMAT, d->source, -1, "no 'testsets' in this file");
    if (o->testset < 0 || o->testset >= d->n_testsets)
        return drsch_fail_at(err, DRSCH_ERR_RANGE, d->source, -1, "testset %d out of range [0, %d)",
                             o->testset, d->n_testsets);
    int N = d->n_classes;
    uint8_t *test = calloc((size_t)N + 1, 1);               /* 1: test identity */
    int64_t *n_gal = calloc((size_t)N + 1, sizeof *n_gal);  /* second-camera images per identity */
    int64_t *seen = calloc((size_t)N + 1, sizeof *seen);    /* running second-camera index */
    int64_t *pick = malloc(((size_t)N + 1) * sizeof *pick); /* chosen single shot, -1 none */
    int32_t *offset = calloc((size_t)d->n_pairs + 1, sizeof *offset);
    drsch_status s = DRSCH_OK;
    if (!test || !n_gal || !seen || !pick || !offset) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
        goto done;
    }
    for (int p = 0; p < d->n_pairs; p++)
        offset[p + 1] = offset[p] + d->pair_persons[p];
    const int32_t *rows = d->testsets + (size_t)o->testset * (size_t)d->testset_rows * 2;
    for (int r = 0; r < d->testset_rows; r++) {
        int pr = rows[2 * r], pe = rows[2 * r + 1];
        if (pr < 1 || pr > d->n_pairs || pe < 1 || pe > d->pair_persons[pr - 1]) {
            s = drsch_fail_at(err, DRSCH_ERR_RANGE, d->source, r,
                              "testsets{%d} row (pair %d, person %d) out of range", o->testset + 1,
                              pr, pe);
            goto done;
        }
        test[offset[pr - 1] + pe - 1] = 1;
    }
    for (int64_t i = 0; i < d->n; i++)
        if (test[d->labels[i]] && d->slot[i] >= 5)
            n_gal[d->labels[i]]++;
    rng_state rng;
    rng_seed(&rng, seed);
    int64_t n_test = 0, dropped = 0;
    for (int id = 0; id < N; id++) {
        pick[id] = -1;
        if (!test[id])
            continue;
        n_test++;
        if (n_gal[id] == 0)
            dropped++;
        else if (o->single_shot)
            pick[id] = (int64_t)rng_below(&rng, (uint64_t)n_gal[id]);
    }
    /* membership of image i: train (not a test identity), query (first camera, identity has a
     * gallery), gallery (second camera; the picked shot when single_shot) */
    int64_t nq = 0, nt = 0, nd = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (split_alloc(out, nq, nt, nd)) {
                s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
                goto done;
            }
            memset(seen, 0, ((size_t)N + 1) * sizeof *seen);
        }
        for (int64_t i = 0; i < d->n; i++) {
            int id = d->labels[i];
            if (!test[id]) {
                if (pass)
                    out->train[out->n_train++] = i;
                else
                    nt++;
            } else if (d->slot[i] < 5) {
                if (n_gal[id] == 0)
                    continue;
                if (pass)
                    out->query[out->n_query++] = i;
                else
                    nq++;
            } else {
                int64_t k = seen[id]++;
                if (o->single_shot && k != pick[id])
                    continue;
                if (pass)
                    out->db[out->n_db++] = i;
                else
                    nd++;
            }
        }
    }
    snprintf(out->name, sizeof out->name,
             "cuhk03 classic: testsets{%d}, %lld test identities (%lld without second-camera "
             "images dropped), "
             "query = first camera, gallery = second camera, %s; seed %llu",
             o->testset + 1, (long long)n_test, (long long)dropped,
             o->single_shot ? "single shot" : "all shots", (unsigned long long)seed);
done:
    free(test);
    free(n_gal);
    free(seen);
    free(pick);
    free(offset);
    return s;
}

void ds_transfer_opts_default(ds_transfer_opts *o)
{
    o->train_fraction = 0.75; /* Sablayrolles et al. (ICASSP 2017): 75% of the classes train */
    o->query_per_class = 100;
}

/* The classes with flag[k] == want as "a b c" in buf, "..." when it does not fit. */
static void class_list(const uint8_t *flag, int K, int want, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < K; k++) {
        if (flag[k] != want)
            continue;
        char item[16];
        int n = snprintf(item, sizeof item, "%s%d", used ? " " : "", k);
        if (used + (size_t)n + 4 >= cap) {
            snprintf(buf + used, cap - used, " ...");
            return;
        }
        memcpy(buf + used, item, (size_t)n + 1);
        used += (size_t)n;
    }
}

/* DRSCH_OK when transfer applies to d with o (the number of training classes in *n_train_cls),
 * else why not: single-label classes only, at least one training and one held-out class, and
 * every class more images than its queries. */
static drsch_status transfer_applies(const ds_dataset *d, const ds_transfer_opts *o,
                                     const int64_t *counts, int *n_train_cls, drsch_error *err)
{
    if (d->label_kind == DS_LABELS_MULTI)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1,
                             "transfer holds out whole classes, so it needs single-label classes; "
                             "%s is multi-label (an image of a held-out concept may share "
                             "another with the training images)",
                             d->name);
    if (d->label_kind == DS_LABELS_IDENTITY)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1,
                             "transfer is for classification datasets; %s is a re-id dataset "
                             "(identities), whose protocols (classic, new) already test on "
                             "identities never trained on",
                             d->name);
    if (!(o->train_fraction > 0 && o->train_fraction < 1) || o->query_per_class < 1)
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1,
                             "transfer: training fraction %g outside (0, 1) or %d queries per "
                             "class (at least 1)",
                             o->train_fraction, o->query_per_class);
    int K = d->n_classes;
    int nt = (int)floor(o->train_fraction * K);
    if (nt < 1 || nt > K - 1)
        return drsch_fail_at(err, DRSCH_ERR_RANGE, d->source, -1,
                             "transfer: %d classes give %d training classes (floor(%g x %d)); it "
                             "needs at least one training and one held-out class",
                             K, nt, o->train_fraction, K);
    for (int k = 0; k < K; k++)
        if (counts[k] <= o->query_per_class)
            return drsch_fail_at(
                err, DRSCH_ERR_RANGE, d->source, -1,
                "class %d has %lld images; transfer needs more than %d in every class (any "
                "class may be held out: %d queries and at least one database image)",
                k, (long long)counts[k], o->query_per_class, o->query_per_class);
    *n_train_cls = nt;
    return DRSCH_OK;
}

drsch_status ds_split_transfer(const ds_dataset *d, const ds_transfer_opts *o, uint64_t seed,
                               ds_split *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    ds_transfer_opts def;
    if (!o) {
        ds_transfer_opts_default(&def);
        o = &def;
    }
    int K = d->n_classes, nt_cls = 0;
    int64_t *counts = calloc((size_t)K + 1, sizeof *counts);
    int32_t *perm = malloc(((size_t)K + 1) * sizeof *perm);
    uint8_t *is_train = calloc((size_t)K + 1, 1);
    int64_t *cand = malloc((size_t)(d->n ? d->n : 1) * sizeof *cand);
    drsch_status s = DRSCH_OK;
    if (!counts || !perm || !is_train || !cand) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
        goto done;
    }
    if (d->label_kind == DS_LABELS_SINGLE || d->label_kind == DS_LABELS_IDENTITY)
        ds_class_counts(d, counts);
    if ((s = transfer_applies(d, o, counts, &nt_cls, err)) != DRSCH_OK)
        goto done;
    /* the training classes: the first nt_cls of a seeded permutation of the classes */
    rng_state rng;
    rng_seed(&rng, seed);
    for (int k = 0; k < K; k++)
        perm[k] = k;
    rng_shuffle_i32(&rng, perm, K);
    for (int j = 0; j < nt_cls; j++)
        is_train[perm[j]] = 1;
    int64_t nq = 0, ntr = 0, nheld = 0;
    for (int k = 0; k < K; k++) {
        if (is_train[k])
            ntr += counts[k];
        else {
            nq += o->query_per_class;
            nheld += counts[k];
        }
    }
    if (split_alloc(out, nq, ntr, nheld - nq)) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < d->n; i++)
        if (is_train[d->labels[i]])
            out->train[out->n_train++] = i;
    /* each held-out class in turn: its images shuffled, the first ones queries, the rest db */
    for (int k = 0; k < K; k++) {
        if (is_train[k])
            continue;
        int64_t nc = 0;
        for (int64_t i = 0; i < d->n; i++)
            if (d->labels[i] == k)
                cand[nc++] = i;
        rng_shuffle_i64(&rng, cand, nc);
        for (int64_t j = 0; j < nc; j++) {
            if (j < o->query_per_class)
                out->query[out->n_query++] = cand[j];
            else
                out->db[out->n_db++] = cand[j];
        }
    }
    sort_i64(out->query, out->n_query);
    sort_i64(out->db, out->n_db);
    char held[96];
    class_list(is_train, K, 0, held, sizeof held);
    snprintf(out->name, sizeof out->name,
             "transfer: %lld queries (%d per held-out class) / %lld training (all images of %d of "
             "%d classes, floor(%g x %d)) / %lld database (the other held-out images); held-out "
             "classes %s; seed %llu",
             (long long)out->n_query, o->query_per_class, (long long)out->n_train, nt_cls, K,
             o->train_fraction, K, (long long)out->n_db, held, (unsigned long long)seed);
done:
    free(counts);
    free(perm);
    free(is_train);
    free(cand);
    return s;
}
