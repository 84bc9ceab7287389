/* The named protocols of other code bases (cifar10, cifar10-1, cifar10-2, nuswide-21) and the
 * transfer protocol of Sablayrolles et al. (ICASSP 2017), on datasets built in memory: sizes,
 * which lists are disjoint and which overlap as each protocol says, class balance, seeds that
 * reproduce a split and seeds that change it, transfer's disjoint training and held-out classes,
 * the refusals and their messages, the names reports carry; then --protocol NAME parsed
 * (in_parse_protocol) and drsch data info on Fashion-MNIST end to end. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets.h"
#include "experiment.h"
#include "inputs.h"
#include "test_util.h"

/* n single-label images (1 x 1 x 1) of K classes, image i of class i % K. */
static ds_dataset *single_dataset(int64_t n, int K)
{
    ds_dataset *d = calloc(1, sizeof *d);
    d->n = n;
    d->c = d->h = d->w = 1;
    d->n_classes = K;
    d->label_kind = DS_LABELS_SINGLE;
    d->images = calloc((size_t)n, 1);
    d->labels = malloc((size_t)n * sizeof *d->labels);
    snprintf(d->name, sizeof d->name, "mem");
    for (int64_t i = 0; i < n; i++)
        d->labels[i] = (int32_t)(i % K);
    return d;
}

/* n multi-label images of L concepts: image i has concept i % L, every fifth one also another
 * one, (i % L + 1 + (i / L) % (L - 1)) % L, and the last `unlabelled` images none. */
static ds_dataset *multi_dataset(int64_t n, int L, int64_t unlabelled)
{
    ds_dataset *d = calloc(1, sizeof *d);
    d->n = n;
    d->c = d->h = d->w = 1;
    d->n_classes = L;
    d->label_kind = DS_LABELS_MULTI;
    d->images = calloc((size_t)n, 1);
    d->multi = calloc((size_t)n * (size_t)L, 1);
    snprintf(d->name, sizeof d->name, "mem-multi");
    for (int64_t i = 0; i < n - unlabelled; i++) {
        d->multi[i * L + i % L] = 1;
        if (i % 5 == 0)
            d->multi[i * L + (i % L + 1 + (i / L) % (L - 1)) % L] = 1;
    }
    return d;
}

static void assert_sorted_unique(const int64_t *v, int64_t n, int64_t max)
{
    for (int64_t i = 0; i < n; i++) {
        cr_assert(v[i] >= 0 && v[i] < max, "index %lld out of range", (long long)v[i]);
        if (i)
            cr_assert_lt(v[i - 1], v[i], "list not sorted / unique at %lld", (long long)i);
    }
}

/* role[i] |= 1 query, 2 train, 4 database, after checking every list. */
static uint8_t *roles(const ds_dataset *d, const ds_split *s)
{
    assert_sorted_unique(s->query, s->n_query, d->n);
    assert_sorted_unique(s->train, s->n_train, d->n);
    assert_sorted_unique(s->db, s->n_db, d->n);
    uint8_t *r = calloc((size_t)d->n, 1);
    for (int64_t i = 0; i < s->n_query; i++)
        r[s->query[i]] |= 1;
    for (int64_t i = 0; i < s->n_train; i++)
        r[s->train[i]] |= 2;
    for (int64_t i = 0; i < s->n_db; i++)
        r[s->db[i]] |= 4;
    return r;
}

static int same_list(const int64_t *a, int64_t na, const int64_t *b, int64_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static int same_split(const ds_split *a, const ds_split *b)
{
    return same_list(a->query, a->n_query, b->query, b->n_query) &&
           same_list(a->train, a->n_train, b->train, b->n_train) &&
           same_list(a->db, a->n_db, b->db, b->n_db);
}

static ds_split make(const ds_dataset *d, xp_protocol p, uint64_t seed)
{
    ds_split s;
    drsch_error err;
    drsch_status st = xp_make_split(d, p, seed, 0, NULL, &s, &err);
    cr_assert_eq(st, DRSCH_OK, "protocol %d: %s", (int)p, err.msg);
    return s;
}

/* The status of protocol p on d, its message in e->msg. */
static drsch_status refused(const ds_dataset *d, xp_protocol p, drsch_error *e)
{
    ds_split s;
    drsch_status st = xp_make_split(d, p, 1, 0, NULL, &s, e);
    if (st == DRSCH_OK)
        ds_split_free(&s);
    else
        cr_assert_eq(s.n_query + s.n_train + s.n_db, 0, "a refused split is empty");
    return st;
}

/* ---- cifar10, cifar10-1, cifar10-2 ---------------------------------------------------------- */

TestSuite(cifar10);

Test(cifar10, sizes_disjoint_balanced_and_the_split_of_paper)
{
    ds_dataset *d = single_dataset(7000, 10); /* 700 per class */
    ds_split a = make(d, XP_PROTO_CIFAR10, 3);
    cr_assert_eq(a.n_query, 1000);
    cr_assert_eq(a.n_train, 5000);
    cr_assert_eq(a.n_db, 1000);
    uint8_t *r = roles(d, &a);
    int q[10] = {0}, t[10] = {0};
    for (int64_t i = 0; i < d->n; i++) {
        cr_assert(r[i] == 1 || r[i] == 2 || r[i] == 4, "image %lld: role %d", (long long)i, r[i]);
        q[d->labels[i]] += r[i] == 1;
        t[d->labels[i]] += r[i] == 2;
    }
    for (int k = 0; k < 10; k++) {
        cr_assert_eq(q[k], 100, "class %d: %d queries", k, q[k]);
        cr_assert_eq(t[k], 500, "class %d: %d training images", k, t[k]);
    }
    cr_assert_not_null(strstr(a.name, "cifar10: 1000 queries (100 per class) / 5000 training (500 "
                                      "per class) / 1000 database (the other images)"),
                       "%s", a.name);
    cr_assert_not_null(strstr(a.name, "seed 3"), "%s", a.name);
    ds_split p = make(d, XP_PROTO_PAPER, 3), b = make(d, XP_PROTO_CIFAR10, 3);
    ds_split c = make(d, XP_PROTO_CIFAR10, 4);
    cr_assert(same_split(&a, &p), "cifar10 is paper's split, named as the code bases name it");
    cr_assert(same_split(&a, &b), "the same seed gives the same split");
    cr_assert_not(same_list(a.query, a.n_query, c.query, c.n_query), "another seed, other queries");
    cr_assert_eq(c.n_query, 1000);
    free(r);
    ds_split_free(&a);
    ds_split_free(&b);
    ds_split_free(&c);
    ds_split_free(&p);
    ds_dataset_free(d);
}

Test(cifar10, cifar10_1_database_is_every_non_query_image)
{
    ds_dataset *d = single_dataset(7000, 10);
    ds_split a = make(d, XP_PROTO_CIFAR10_1, 5), base = make(d, XP_PROTO_CIFAR10, 5);
    ds_split p = make(d, XP_PROTO_PAPER_DB_TRAIN, 5);
    cr_assert_eq(a.n_query, 1000);
    cr_assert_eq(a.n_train, 5000);
    cr_assert_eq(a.n_db, 6000);
    uint8_t *r = roles(d, &a);
    for (int64_t i = 0; i < d->n; i++)
        cr_assert(r[i] == 1 || r[i] == 4 || r[i] == (2 | 4), "image %lld: role %d", (long long)i,
                  r[i]);
    cr_assert(same_list(a.query, a.n_query, base.query, base.n_query), "cifar10's queries");
    cr_assert(same_list(a.train, a.n_train, base.train, base.n_train), "cifar10's training set");
    cr_assert(same_split(&a, &p), "cifar10-1 is paper-db-train's split");
    cr_assert_not_null(strstr(a.name, "cifar10-1: 1000 queries (100 per class) / 5000 training "
                                      "(500 per class) / 6000 database (every non-query image, "
                                      "training images included)"),
                       "%s", a.name);
    free(r);
    ds_split_free(&a);
    ds_split_free(&base);
    ds_split_free(&p);
    ds_dataset_free(d);
}

Test(cifar10, cifar10_2_is_the_official_split)
{
    ds_dataset *d = single_dataset(7000, 10);
    drsch_error e;
    cr_assert_eq(refused(d, XP_PROTO_CIFAR10_2, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "no official train/test split"), "%s", e.msg);
    d->subset = calloc(7000, sizeof *d->subset);
    for (int i = 6000; i < 7000; i++)
        d->subset[i] = 1;
    ds_split a = make(d, XP_PROTO_CIFAR10_2, 1), f = make(d, XP_PROTO_FULL, 1);
    cr_assert_eq(a.n_query, 1000);
    cr_assert_eq(a.n_train, 6000);
    cr_assert_eq(a.n_db, 6000);
    cr_assert_eq(a.query[0], 6000);
    cr_assert(same_list(a.train, a.n_train, a.db, a.n_db), "training set = database");
    cr_assert(same_split(&a, &f), "cifar10-2 is full's split");
    cr_assert_not_null(strstr(a.name, "cifar10-2: 1000 queries (the official test set) / 6000 "
                                      "training = database (the official training set)"),
                       "%s", a.name);
    ds_split_free(&a);
    ds_split_free(&f);
    ds_dataset_free(d);
}

Test(cifar10, refusals_say_why)
{
    ds_dataset *d = single_dataset(7000, 10);
    d->labels[3] = 4; /* class 3: 699 images, still enough */
    drsch_error e;
    cr_assert_eq(refused(d, XP_PROTO_CIFAR10, &e), DRSCH_OK, "%s", e.msg);
    for (int i = 13; i < 1000; i += 10) /* class 3: 600 images, still enough */
        d->labels[i] = 4;
    cr_assert_eq(refused(d, XP_PROTO_CIFAR10_1, &e), DRSCH_OK, "%s", e.msg);
    d->labels[1003] = 4; /* class 3: 599 images */
    cr_assert_eq(refused(d, XP_PROTO_CIFAR10_1, &e), DRSCH_ERR_RANGE, "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "class 3 has 599 images, fewer than 100 queries + 500"), "%s",
                       e.msg);
    ds_dataset_free(d);
    ds_dataset *m = multi_dataset(2100, 21, 0);
    for (xp_protocol p = XP_PROTO_CIFAR10; p <= XP_PROTO_CIFAR10_2; p++) {
        cr_assert_eq(refused(m, p, &e), DRSCH_ERR_ARG);
        cr_assert_not_null(strstr(e.msg, "mem-multi is multi-label (use nuswide-21"), "%s", e.msg);
    }
    m->label_kind = DS_LABELS_IDENTITY; /* as CUHK03 */
    cr_assert_eq(refused(m, XP_PROTO_CIFAR10, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "re-id dataset (use classic or new)"), "%s", e.msg);
    m->label_kind = DS_LABELS_MULTI;
    ds_dataset_free(m);
}

/* ---- nuswide-21 ------------------------------------------------------------------------------ */

TestSuite(nuswide21);

Test(nuswide21, sizes_overlaps_balance_and_seeds)
{
    /* 21 x 800 labelled images (at least 800 per concept), then 50 without any concept */
    ds_dataset *d = multi_dataset(21 * 800 + 50, 21, 50);
    ds_split a = make(d, XP_PROTO_NUSWIDE_21, 2);
    cr_assert_eq(a.n_query, 2100);
    cr_assert_eq(a.n_train, 10500);
    cr_assert_eq(a.n_db, 21 * 800 - 2100, "every labelled non-query image");
    uint8_t *r = roles(d, &a);
    int64_t q[21] = {0}, t[21] = {0};
    for (int64_t i = 0; i < d->n; i++) {
        if (i >= 21 * 800) {
            cr_assert_eq(r[i], 0, "an image without a concept is in no list");
            continue;
        }
        cr_assert(r[i] == 1 || r[i] == 4 || r[i] == (2 | 4), "image %lld: role %d", (long long)i,
                  r[i]);
        for (int l = 0; l < 21; l++) {
            q[l] += r[i] == 1 && d->multi[i * 21 + l];
            t[l] += (r[i] & 2) && d->multi[i * 21 + l];
        }
    }
    for (int l = 0; l < 21; l++) {
        cr_assert_geq(q[l], 100, "concept %d: %lld queries have it", l, (long long)q[l]);
        cr_assert_geq(t[l], 500, "concept %d: %lld training images have it", l, (long long)t[l]);
    }
    cr_assert_not_null(strstr(a.name, "nuswide-21: 2100 queries (100 per concept) / 10500 "
                                      "training (500 per concept) / 14700 database (every "
                                      "labelled non-query image, training images included)"),
                       "%s", a.name);
    cr_assert_not_null(strstr(a.name, "seed 2"), "%s", a.name);
    ds_split au = make(d, XP_PROTO_AUTO, 2), b = make(d, XP_PROTO_NUSWIDE_21, 2);
    ds_split c = make(d, XP_PROTO_NUSWIDE_21, 3);
    cr_assert(same_list(a.query, a.n_query, au.query, au.n_query), "auto's queries");
    cr_assert(same_list(a.train, a.n_train, au.train, au.n_train), "auto's training set");
    cr_assert_eq(au.n_db, a.n_db - a.n_train, "auto's database leaves the training images out");
    cr_assert(same_split(&a, &b), "the same seed gives the same split");
    cr_assert_not(same_list(a.query, a.n_query, c.query, c.n_query), "another seed, other queries");
    free(r);
    ds_split_free(&a);
    ds_split_free(&au);
    ds_split_free(&b);
    ds_split_free(&c);
    ds_dataset_free(d);
}

Test(nuswide21, refusals_say_why)
{
    drsch_error e;
    ds_dataset *d = multi_dataset(20 * 700, 20, 0);
    cr_assert_eq(refused(d, XP_PROTO_NUSWIDE_21, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "21 most frequent concepts; mem-multi has 20 concepts"), "%s",
                       e.msg);
    ds_dataset_free(d);
    d = multi_dataset(21 * 400, 21, 0); /* about 480 images per concept: < 100 + 500 */
    cr_assert_eq(refused(d, XP_PROTO_NUSWIDE_21, &e), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(e.msg, "fewer than 100 queries + 500 training images"), "%s", e.msg);
    ds_dataset_free(d);
    d = single_dataset(7000, 10);
    cr_assert_eq(refused(d, XP_PROTO_NUSWIDE_21, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg,
                              "needs a multi-label dataset (NUS-WIDE); mem has single labels "
                              "(use cifar10, cifar10-1, cifar10-2 or transfer)"),
                       "%s", e.msg);
    d->label_kind = DS_LABELS_IDENTITY;
    cr_assert_eq(refused(d, XP_PROTO_NUSWIDE_21, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "mem has identities (use classic or new)"), "%s", e.msg);
    ds_dataset_free(d);
}

/* ---- transfer -------------------------------------------------------------------------------- */

TestSuite(transfer);

/* Which classes the training set, the queries and the database hold. */
static void class_sets(const ds_dataset *d, const ds_split *s, uint8_t *tr, uint8_t *q, uint8_t *db)
{
    memset(tr, 0, (size_t)d->n_classes);
    memset(q, 0, (size_t)d->n_classes);
    memset(db, 0, (size_t)d->n_classes);
    for (int64_t i = 0; i < s->n_train; i++)
        tr[d->labels[s->train[i]]] = 1;
    for (int64_t i = 0; i < s->n_query; i++)
        q[d->labels[s->query[i]]] = 1;
    for (int64_t i = 0; i < s->n_db; i++)
        db[d->labels[s->db[i]]] = 1;
}

Test(transfer, held_out_classes_sizes_balance_and_seeds)
{
    ds_dataset *d = single_dataset(1500, 10); /* 150 per class */
    ds_split a = make(d, XP_PROTO_TRANSFER, 1);
    cr_assert_eq(a.n_query, 300, "floor(0.75 x 10) = 7 training classes, 3 x 100 queries");
    cr_assert_eq(a.n_train, 7 * 150, "every image of the training classes");
    cr_assert_eq(a.n_db, 3 * 50);
    uint8_t *r = roles(d, &a);
    for (int64_t i = 0; i < d->n; i++)
        cr_assert(r[i] == 1 || r[i] == 2 || r[i] == 4, "image %lld: role %d", (long long)i, r[i]);
    uint8_t tr[10], q[10], db[10];
    class_sets(d, &a, tr, q, db);
    int ntr = 0, nq = 0;
    char held[64] = "";
    for (int k = 0; k < 10; k++) {
        cr_assert(!(tr[k] && q[k]), "class %d both trains and is queried", k);
        cr_assert(!(tr[k] && db[k]), "class %d both trains and is in the database", k);
        cr_assert_eq(q[k], db[k], "class %d: queries and database from the same classes", k);
        ntr += tr[k];
        nq += q[k];
        if (q[k])
            snprintf(held + strlen(held), sizeof held - strlen(held), "%s%d", nq > 1 ? " " : "", k);
    }
    cr_assert_eq(ntr, 7);
    cr_assert_eq(nq, 3);
    int per[10] = {0};
    for (int64_t i = 0; i < a.n_query; i++)
        per[d->labels[a.query[i]]]++;
    for (int k = 0; k < 10; k++)
        cr_assert_eq(per[k], q[k] ? 100 : 0, "class %d: %d queries", k, per[k]);
    char want[256];
    snprintf(want, sizeof want,
             "transfer: 300 queries (100 per held-out class) / 1050 training (all images of 7 of "
             "10 classes, floor(0.75 x 10)) / 150 database (the other held-out images); held-out "
             "classes %s; seed 1",
             held);
    cr_assert_str_eq(a.name, want);
    ds_split b = make(d, XP_PROTO_TRANSFER, 1), lib;
    drsch_error err;
    cr_assert_eq(ds_split_transfer(d, NULL, 1, &lib, &err), DRSCH_OK, "%s", err.msg);
    cr_assert(same_split(&a, &b), "the same seed gives the same split");
    cr_assert(same_split(&a, &lib), "--protocol transfer is ds_split_transfer's defaults");
    /* other seeds: other queries, and over a few seeds other held-out classes */
    int other_classes = 0;
    for (uint64_t seed = 2; seed < 12; seed++) {
        ds_split c = make(d, XP_PROTO_TRANSFER, seed);
        uint8_t tr2[10], q2[10], db2[10];
        class_sets(d, &c, tr2, q2, db2);
        other_classes += memcmp(q, q2, sizeof q) != 0;
        if (seed == 2)
            cr_assert_not(same_list(a.query, a.n_query, c.query, c.n_query), "other queries");
        ds_split_free(&c);
    }
    cr_assert_gt(other_classes, 0, "the seed chooses the held-out classes");
    free(r);
    ds_split_free(&a);
    ds_split_free(&b);
    ds_split_free(&lib);
    ds_dataset_free(d);
}

Test(transfer, class_counts_and_options)
{
    drsch_error err;
    ds_split s;
    ds_dataset *d = single_dataset(4 * 30, 4);
    ds_transfer_opts o;
    ds_transfer_opts_default(&o);
    cr_assert_float_eq(o.train_fraction, 0.75, 1e-12);
    cr_assert_eq(o.query_per_class, 100);
    o.query_per_class = 10;
    cr_assert_eq(ds_split_transfer(d, &o, 9, &s, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(s.n_train, 90, "4 classes: 3 train (floor(3.0))");
    cr_assert_eq(s.n_query, 10);
    cr_assert_eq(s.n_db, 20);
    ds_split_free(&s);
    ds_dataset_free(d);
    d = single_dataset(2 * 30, 2);
    cr_assert_eq(ds_split_transfer(d, &o, 9, &s, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(s.n_train, 30, "2 classes: 1 trains (floor(1.5)), 1 held out");
    cr_assert_eq(s.n_query + s.n_db, 30);
    ds_split_free(&s);
    ds_dataset_free(d);
}

Test(transfer, refusals_say_why)
{
    drsch_error e;
    ds_dataset *d = single_dataset(1000, 10); /* 100 per class: no database image left */
    cr_assert_eq(refused(d, XP_PROTO_TRANSFER, &e), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(e.msg,
                              "class 0 has 100 images; transfer needs more than 100 in every "
                              "class"),
                       "%s", e.msg);
    ds_dataset_free(d);
    d = single_dataset(500, 1);
    cr_assert_eq(refused(d, XP_PROTO_TRANSFER, &e), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(e.msg, "1 classes give 0 training classes (floor(0.75 x 1))"), "%s",
                       e.msg);
    d->label_kind = DS_LABELS_IDENTITY;
    cr_assert_eq(refused(d, XP_PROTO_TRANSFER, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "mem is a re-id dataset"), "%s", e.msg);
    d->label_kind = DS_LABELS_SINGLE;
    ds_dataset_free(d);
    d = multi_dataset(21 * 700, 21, 0);
    cr_assert_eq(refused(d, XP_PROTO_TRANSFER, &e), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(e.msg, "needs single-label classes; mem-multi is multi-label"), "%s",
                       e.msg);
    ds_dataset_free(d);
    d = single_dataset(1500, 10);
    ds_transfer_opts o = {.train_fraction = 1.0, .query_per_class = 100};
    ds_split s;
    drsch_error err;
    cr_assert_eq(ds_split_transfer(d, &o, 1, &s, &err), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "training fraction 1 outside (0, 1)"), "%s", err.msg);
    ds_dataset_free(d);
}

/* ---- --protocol NAME ------------------------------------------------------------------------- */

TestSuite(protocol_names, .timeout = 120);

Test(protocol_names, every_name_parses_and_names_its_protocol)
{
    static const struct {
        const char *name;
        xp_protocol p;
    } want[] = {
        {"cifar10", XP_PROTO_CIFAR10},     {"cifar10-1", XP_PROTO_CIFAR10_1},
        {"cifar10-2", XP_PROTO_CIFAR10_2}, {"nuswide-21", XP_PROTO_NUSWIDE_21},
        {"transfer", XP_PROTO_TRANSFER},   {"paper", XP_PROTO_PAPER},
        {"none", XP_PROTO_NONE},           {"auto", XP_PROTO_AUTO},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        xp_protocol p = XP_PROTO_AUTO;
        cr_assert_eq(in_parse_protocol("test", want[i].name, &p), 0, "%s", want[i].name);
        cr_assert_eq(p, want[i].p, "%s", want[i].name);
        cr_assert_not_null(strstr(XP_PROTOCOL_NAMES, want[i].name), "%s", want[i].name);
    }
    xp_protocol p = XP_PROTO_PAPER;
    cr_assert_eq(in_parse_protocol("test", "cifar-10", &p), -1);
    cr_assert_eq(p, XP_PROTO_PAPER, "left as it was");
}

/* drsch data info fashion-mnist --protocol NAME: the protocol's name, sizes and split line. */
Test(protocol_names, data_info_shows_each_protocol_and_its_sizes)
{
    static const struct {
        const char *name, *line, *split;
    } want[] = {
        {"cifar10", "protocol:  cifar10: 1000 queries (100 per class) / 5000 training",
         "split:     1000 query, 5000 train, 64000 database"},
        {"cifar10-1", "protocol:  cifar10-1: 1000 queries (100 per class) / 5000 training",
         "split:     1000 query, 5000 train, 69000 database"},
        {"cifar10-2", "protocol:  cifar10-2: 10000 queries (the official test set) / 60000",
         "split:     10000 query, 60000 train, 60000 database"},
        {"transfer", "protocol:  transfer: 300 queries (100 per held-out class) / 49000 training",
         "split:     300 query, 49000 train, 20700 database"},
    };
    char out[8192];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int rc = tu_run(out, sizeof out, "%s data info fashion-mnist --protocol %s", tu_exe(),
                        want[i].name);
        cr_assert_eq(rc, 0, "%s: %s", want[i].name, out);
        cr_assert_not_null(strstr(out, want[i].line), "%s", out);
        cr_assert_not_null(strstr(out, want[i].split), "%s", out);
    }
    int rc = tu_run(out, sizeof out, "%s data info fashion-mnist --protocol nuswide-21", tu_exe());
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_not_null(strstr(out, "protocol:  not applicable: protocol nuswide-21 needs a "
                                   "multi-label dataset (NUS-WIDE); fashion-mnist has single "
                                   "labels"),
                       "%s", out);
    rc = tu_run(out, sizeof out, "%s data info fashion-mnist --protocol cifar-10", tu_exe());
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "'cifar-10' is not one of auto, paper, paper-db-train, full, "
                                   "classic, new, cifar10, cifar10-1, cifar10-2, nuswide-21, "
                                   "transfer, none"),
                       "%s", out);
}

/* The transfer split trains 7 of Fashion-MNIST's 10 classes: drsch train's default batch (10
 * classes) becomes 7 classes, with a note; --classes given is kept, and refused if too many. */
static void train_tmpdir(void) { tu_tmpdir_make("protocols"); }
TestSuite(protocol_train, .init = train_tmpdir, .fini = tu_tmpdir_remove, .timeout = 120);

Test(protocol_train, transfer_batches_the_classes_it_has)
{
    char out[16384];
    int rc = tu_run(out, sizeof out,
                    "%s train --protocol transfer --iters 2 --bits 8 --threads 1 --log-every 1 "
                    "--out %s",
                    tu_exe(), tu_path("transfer.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_not_null(strstr(out, "the split trains 7 classes: batches of 7 x 10"), "%s", out);
    cr_expect_not_null(strstr(out, "batch 7 x 10"), "%s", out);
    rc = tu_run(out, sizeof out,
                "%s train --protocol transfer --classes 10 --iters 2 --bits 8 --threads 1 "
                "--out %s",
                tu_exe(), tu_path("transfer10.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_expect_not_null(strstr(out, "only 7 classes have at least 2 images"), "%s", out);
}
