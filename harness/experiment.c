/* Protocol names and splits shared by data info, bench data, train, encode, eval and
 * reproduce; the codes of a model on a split, packed multi-hot labels, evaluation of codes. */
#include "experiment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* DRSCH_OK when the per-class protocol `name` applies to d (single labels), else why not. */
static drsch_status need_single_label(const ds_dataset *d, const char *name, drsch_error *err)
{
    if (d->label_kind == DS_LABELS_MULTI)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "protocol %s draws its images class by class from single-label "
                          "classes; %s is multi-label (use nuswide-21 or auto)",
                          name, d->name);
    if (d->label_kind == DS_LABELS_IDENTITY)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "protocol %s is for classification datasets; %s is a re-id dataset "
                          "(use classic or new)",
                          name, d->name);
    return DRSCH_OK;
}

/* cifar10 (= paper's split), cifar10-1 (= paper-db-train's) and cifar10-2 (= full's), named as
 * the code bases that publish CIFAR-10 tables name them, with their sizes. */
static drsch_status split_cifar10(const ds_dataset *d, xp_protocol p, uint64_t seed, ds_split *sp,
                                  drsch_error *err)
{
    const char *name = p == XP_PROTO_CIFAR10     ? "cifar10"
                       : p == XP_PROTO_CIFAR10_1 ? "cifar10-1"
                                                 : "cifar10-2";
    memset(sp, 0, sizeof *sp);
    drsch_status st = need_single_label(d, name, err);
    if (st != DRSCH_OK)
        return st;
    if (p == XP_PROTO_CIFAR10_2) {
        if ((st = ds_split_full(d, sp, err)) == DRSCH_OK)
            snprintf(sp->name, sizeof sp->name,
                     "cifar10-2: %lld queries (the official test set) / %lld training = database "
                     "(the official training set); the split of full",
                     (long long)sp->n_query, (long long)sp->n_train);
        return st;
    }
    ds_paper_opts po;
    ds_paper_opts_default(&po);
    po.db_includes_train = p == XP_PROTO_CIFAR10_1;
    if ((st = ds_split_paper(d, &po, seed, sp, err)) == DRSCH_OK)
        snprintf(sp->name, sizeof sp->name,
                 "%s: %lld queries (%d per class) / %lld training (%d per class) / %lld database "
                 "(%s); the split of %s; seed %llu",
                 name, (long long)sp->n_query, po.query_per_class, (long long)sp->n_train,
                 po.train_per_class, (long long)sp->n_db,
                 po.db_includes_train ? "every non-query image, training images included"
                                      : "the other images",
                 po.db_includes_train ? "paper-db-train" : "paper", (unsigned long long)seed);
    return st;
}

/* nuswide-21: the multi-label split with the training images also in the database. */
static drsch_status split_nuswide21(const ds_dataset *d, uint64_t seed, ds_split *sp,
                                    drsch_error *err)
{
    memset(sp, 0, sizeof *sp);
    if (d->label_kind != DS_LABELS_MULTI)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "protocol nuswide-21 needs a multi-label dataset (NUS-WIDE); %s has %s "
                          "(use %s)",
                          d->name,
                          d->label_kind == DS_LABELS_IDENTITY ? "identities" : "single labels",
                          d->label_kind == DS_LABELS_IDENTITY ? "classic or new"
                                                              : "cifar10, cifar10-1, cifar10-2 "
                                                                "or transfer");
    if (d->n_classes != 21)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "protocol nuswide-21 needs NUS-WIDE's 21 most frequent concepts; %s has "
                          "%d concepts (the nuswide spec keeps those 21 on loading)",
                          d->name, d->n_classes);
    ds_paper_opts po;
    ds_paper_opts_default(&po);
    po.db_includes_train = 1;
    drsch_status st = ds_split_multilabel(d, &po, seed, sp, err);
    if (st == DRSCH_OK)
        snprintf(sp->name, sizeof sp->name,
                 "nuswide-21: %lld queries (%d per concept) / %lld training (%d per concept) / "
                 "%lld database (every labelled non-query image, training images included); "
                 "relevance = a shared concept; seed %llu",
                 (long long)sp->n_query, po.query_per_class, (long long)sp->n_train,
                 po.train_per_class, (long long)sp->n_db, (unsigned long long)seed);
    return st;
}

drsch_status xp_make_split(const ds_dataset *d, xp_protocol p, uint64_t seed, int testset,
                           const char *config, ds_split *sp, drsch_error *err)
{
    ds_paper_opts po;
    ds_paper_opts_default(&po);
    if (p == XP_PROTO_AUTO) {
        if (d->kind == DS_KIND_CUHK03)
            p = XP_PROTO_CLASSIC;
        else if (d->label_kind == DS_LABELS_MULTI)
            return ds_split_multilabel(d, &po, seed, sp, err);
        else
            p = XP_PROTO_PAPER;
    }
    switch (p) {
    case XP_PROTO_PAPER_DB_TRAIN:
        po.db_includes_train = 1;
        return ds_split_paper(d, &po, seed, sp, err);
    case XP_PROTO_FULL: return ds_split_full(d, sp, err);
    case XP_PROTO_NEW:
        if (!config) {
            memset(sp, 0, sizeof *sp);
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "the new protocol needs --config cuhk03_new_protocol_config_*.mat");
        }
        return ds_split_cuhk03_new(d, config, sp, err);
    case XP_PROTO_CLASSIC: {
        /* Every second-camera image of the test identities: eval draws the single-gallery-shot
         * samplings from it (seeded, repeated), as reproduce does. */
        ds_cuhk03_opts co = {.testset = testset, .single_shot = 0};
        return ds_split_cuhk03_classic(d, &co, seed, sp, err);
    }
    case XP_PROTO_CIFAR10:
    case XP_PROTO_CIFAR10_1:
    case XP_PROTO_CIFAR10_2: return split_cifar10(d, p, seed, sp, err);
    case XP_PROTO_NUSWIDE_21: return split_nuswide21(d, seed, sp, err);
    case XP_PROTO_TRANSFER: return ds_split_transfer(d, NULL, seed, sp, err);
    case XP_PROTO_NONE:
        memset(sp, 0, sizeof *sp);
        return drsch_fail(err, DRSCH_ERR_ARG, "no protocol selected");
    default:
        return d->label_kind == DS_LABELS_MULTI ? ds_split_multilabel(d, &po, seed, sp, err)
                                                : ds_split_paper(d, &po, seed, sp, err);
    }
}

void xp_codes_free(xp_codes *c)
{
    hm_codes_free(&c->query);
    hm_codes_free(&c->db);
    free(c->weights);
    memset(c, 0, sizeof *c);
}

const char *xp_weight_power_text(int power)
{
    return power == 1   ? "sum of |w| over differing bits"
           : power == 2 ? "sum of w^2 over differing bits"
                        : "unknown";
}

drsch_status xp_net_codes(const nn_net *net, const ds_dataset *d, const int64_t *query,
                          int64_t n_query, const int64_t *db, int64_t n_db, nn_precision precision,
                          int weight_power, xp_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    err->file[0] = '\0';
    if (weight_power != 1 && weight_power != 2)
        return drsch_fail(err, DRSCH_ERR_ARG, "weight power %d: it is 1 (|w|) or 2 (w^2)",
                          weight_power);
    drsch_status st = tr_encode_precision(net, d, query, n_query, precision, &out->query, err);
    if (st == DRSCH_OK && db)
        st = tr_encode_precision(net, d, db, n_db, precision, &out->db, err);
    if (st != DRSCH_OK) {
        xp_codes_free(out);
        return st;
    }
    const uint32_t B = (uint32_t)nn_net_config(net)->bits;
    const float *bw = nn_bit_weights(net);
    const uint32_t *order = nn_bit_order(net);
    out->weights = malloc(sizeof *out->weights * (B ? B : 1));
    if (!out->weights) {
        xp_codes_free(out);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %u bit weights", B);
    }
    for (uint32_t j = 0; j < B; j++) {
        float w = bw ? fabsf(bw[order[j]]) : 1.0f;
        out->weights[j] = weight_power == 2 ? w * w : w;
    }
    out->bits = B;
    return DRSCH_OK;
}

/* The codes of the model file at path in bit order `order` (xp_model_codes). */
static drsch_status model_codes(const char *path, const ds_dataset *d, const int64_t *query,
                                int64_t n_query, const int64_t *db, int64_t n_db,
                                nn_precision precision, int weight_power, xp_bit_order order,
                                xp_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    err->file[0] = '\0';
    nn_net *net = NULL;
    drsch_status st = nn_model_load(&net, path, 100, 0, err);
    if (st != DRSCH_OK) {
        snprintf(err->file, sizeof err->file, "%s", path);
        return st;
    }
    st = xp_apply_bit_order(net, order, err);
    if (st == DRSCH_OK)
        st = xp_net_codes(net, d, query, n_query, db, n_db, precision, weight_power, out, err);
    nn_net_free(net);
    return st;
}

drsch_status xp_classifier_codes(const tr_config *base, const ds_dataset *d, const ds_split *sp,
                                 const char *model_path, const char *resume_path,
                                 volatile sig_atomic_t *stop, tr_progress_fn progress, void *ctx,
                                 xp_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    err->file[0] = '\0';
    tr_config c = *base;
    c.objective = TR_OBJECTIVE_SOFTMAX;
    c.bits = tr_train_classes(d, sp);
    if (c.bits < 2)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "the classifier baseline needs a single-label dataset with 2 or more "
                          "training classes ('%s', protocol %s)",
                          d->name, sp->name);
    drsch_status st = tr_train(&c, d, sp, model_path, resume_path, stop, progress, ctx, err);
    if (st != DRSCH_OK)
        return st;
    return xp_model_codes(model_path, d, sp->query, sp->n_query, sp->n_db > 0 ? sp->db : NULL,
                          sp->n_db, NN_PRECISION_F32, XP_WEIGHT_POWER_DEFAULT, out, err);
}

drsch_status xp_model_codes(const char *path, const ds_dataset *d, const int64_t *query,
                            int64_t n_query, const int64_t *db, int64_t n_db,
                            nn_precision precision, int weight_power, xp_codes *out,
                            drsch_error *err)
{
    return model_codes(path, d, query, n_query, db, n_db, precision, weight_power,
                       XP_BIT_ORDER_SAVED, out, err);
}

drsch_status xp_model_codes_with(const char *path, const ds_dataset *d, const int64_t *query,
                                 int64_t n_query, const int64_t *db, int64_t n_db,
                                 const xp_code_options *o, xp_codes *out, drsch_error *err)
{
    const xp_code_options defaults = {0};
    if (!o)
        o = &defaults;
    return model_codes(path, d, query, n_query, db, n_db, o->precision,
                       o->weight_power ? o->weight_power : XP_WEIGHT_POWER_DEFAULT, o->bit_order,
                       out, err);
}

const char *xp_bit_order_name(xp_bit_order o)
{
    return o == XP_BIT_ORDER_SAVED ? "saved" : o == XP_BIT_ORDER_WEIGHT ? "weight" : NULL;
}

drsch_status xp_apply_bit_order(nn_net *net, xp_bit_order o, drsch_error *err)
{
    if (!xp_bit_order_name(o))
        return drsch_fail(err, DRSCH_ERR_ARG, "bit order %d: it is saved or weight", (int)o);
    if (o == XP_BIT_ORDER_WEIGHT)
        nn_bit_order_by_weight(net);
    return DRSCH_OK;
}

/* out = c with bit j of every code (and weight j) taken from position from[j]. */
static drsch_status permute_codes(const hm_codes *c, const uint32_t *from, hm_codes *out,
                                  drsch_error *err)
{
    drsch_status st = hm_codes_alloc(out, c->n, c->bits, err);
    if (st != DRSCH_OK)
        return st;
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *src = hm_code_row(c, i);
        uint64_t *dst = out->data + i * out->words;
        for (uint32_t j = 0; j < c->bits; j++)
            if (src[from[j] / 64] >> (from[j] % 64) & 1)
                dst[j / 64] |= 1ull << (j % 64);
    }
    return DRSCH_OK;
}

drsch_status xp_codes_in_order(nn_net *net, const xp_codes *c, xp_bit_order o, xp_codes *out,
                               drsch_error *err)
{
    memset(out, 0, sizeof *out);
    const uint32_t B = (uint32_t)nn_net_config(net)->bits;
    if (!xp_bit_order_name(o))
        return drsch_fail(err, DRSCH_ERR_ARG, "bit order %d: it is saved or weight", (int)o);
    if (c->bits != B || c->query.bits != B || (c->db.n && c->db.bits != B) || !c->weights)
        return drsch_fail(err, DRSCH_ERR_ARG, "codes of %u bits for a net of %u bits", c->bits, B);
    /* pos[k]: where network bit k is in c; from[j]: where the bit order o puts at j is in c */
    uint32_t *was = malloc(sizeof *was * B), *pos = malloc(sizeof *pos * B);
    uint32_t *from = malloc(sizeof *from * B);
    drsch_status st = DRSCH_OK;
    if (!was || !pos || !from) {
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a bit order of %u bits", B);
        goto done;
    }
    memcpy(was, nn_bit_order(net), sizeof *was * B);
    for (uint32_t j = 0; j < B; j++)
        pos[was[j]] = j;
    if ((st = xp_apply_bit_order(net, o, err)) != DRSCH_OK)
        goto done;
    for (uint32_t j = 0; j < B; j++)
        from[j] = pos[nn_bit_order(net)[j]];
    if ((st = nn_set_bit_order(net, was, err)) != DRSCH_OK)
        goto done;
    out->weights = malloc(sizeof *out->weights * B);
    if (!out->weights) {
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %u bit weights", B);
        goto done;
    }
    for (uint32_t j = 0; j < B; j++)
        out->weights[j] = c->weights[from[j]];
    out->bits = B;
    st = permute_codes(&c->query, from, &out->query, err);
    if (st == DRSCH_OK && c->db.n)
        st = permute_codes(&c->db, from, &out->db, err);
done:
    if (st != DRSCH_OK)
        xp_codes_free(out);
    free(was);
    free(pos);
    free(from);
    return st;
}

size_t xp_multi_hot_words(size_t L) { return (L + 63) / 64; }

void xp_pack_multi_hot(const uint8_t *multi, size_t L, const int64_t *idx, size_t n, uint64_t *out)
{
    const size_t words = xp_multi_hot_words(L);
    memset(out, 0, sizeof *out * n * words);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *row = multi + (idx ? (size_t)idx[i] : i) * L;
        uint64_t *dst = out + i * words;
        for (size_t l = 0; l < L; l++)
            if (row[l])
                dst[l / 64] |= 1ull << (l % 64);
    }
}

drsch_status xp_codes_prefix(const hm_codes *c, uint32_t bits, hm_codes *out)
{
    drsch_error err;
    memset(out, 0, sizeof *out);
    if (bits > c->bits)
        return DRSCH_ERR_ARG;
    drsch_status st = hm_codes_alloc(out, c->n, bits, &err);
    if (st != DRSCH_OK)
        return st;
    size_t full = bits / 64, rem = bits % 64;
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *src = hm_code_row(c, i);
        uint64_t *dst = out->data + i * out->words;
        memcpy(dst, src, full * sizeof *dst);
        if (rem)
            dst[full] = src[full] & ((1ull << rem) - 1);
    }
    return DRSCH_OK;
}

/* Labels of the items idx[0..n) as ev_labels storage (int32, or multi-hot bitmasks). */
static int gather_labels(const ds_dataset *d, const int64_t *idx, int64_t n, int32_t **lab,
                         uint64_t **multi, size_t *words)
{
    *lab = NULL;
    *multi = NULL;
    *words = 0;
    if (d->label_kind == DS_LABELS_MULTI) {
        *words = xp_multi_hot_words((size_t)d->n_classes);
        *multi = calloc((size_t)n * *words + 1, sizeof **multi);
        if (!*multi)
            return -1;
        xp_pack_multi_hot(d->multi, (size_t)d->n_classes, idx, (size_t)n, *multi);
        return 0;
    }
    *lab = malloc(sizeof **lab * (size_t)(n ? n : 1));
    if (!*lab)
        return -1;
    for (int64_t i = 0; i < n; i++)
        (*lab)[i] = d->labels[idx[i]];
    return 0;
}

drsch_status xp_eval_retrieval(const ds_dataset *d, const ds_split *sp, const hm_codes *q,
                               const hm_codes *db, uint32_t bits, const float *weights,
                               const ev_options *opt, ev_retrieval *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    if (q->n != (size_t)sp->n_query || db->n != (size_t)sp->n_db) {
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "%zu query and %zu database codes for a split of %lld and %lld", q->n,
                          db->n, (long long)sp->n_query, (long long)sp->n_db);
    }
    hm_codes tq = {0}, tdb = {0};
    int32_t *ql = NULL, *dl = NULL;
    uint64_t *qm = NULL, *dm = NULL;
    size_t words = 0;
    hm_weights *w = NULL;
    drsch_status st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    if (xp_codes_prefix(q, bits, &tq) || xp_codes_prefix(db, bits, &tdb) ||
        gather_labels(d, sp->query, sp->n_query, &ql, &qm, &words) ||
        gather_labels(d, sp->db, sp->n_db, &dl, &dm, &words))
        goto done;
    if (weights && (st = hm_weights_create(&w, weights, bits, err)) != DRSCH_OK)
        goto done;
    ev_labels lq = {.n = tq.n, .labels = ql, .multi = qm, .words = words};
    ev_labels ldb = {.n = tdb.n, .labels = dl, .multi = dm, .words = words};
    st = ev_retrieval_eval(&tq, &lq, &tdb, &ldb, w, opt, out, err);
done:
    hm_weights_free(w);
    hm_codes_free(&tq);
    hm_codes_free(&tdb);
    free(ql);
    free(dl);
    free(qm);
    free(dm);
    return st;
}

drsch_status xp_eval_reid(const ds_dataset *d, const ds_split *sp, const hm_codes *q,
                          const hm_codes *g, uint32_t bits, const float *weights,
                          ev_reid_gallery gallery, int single_shot_repeats, uint64_t seed,
                          ev_reid *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    if (!d->cams || !d->labels) {
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "%s has no identities and cameras: re-id metrics need both", d->name);
    }
    if (q->n != (size_t)sp->n_query || g->n != (size_t)sp->n_db) {
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "%zu query and %zu gallery codes for a split of %lld and %lld", q->n,
                          g->n, (long long)sp->n_query, (long long)sp->n_db);
    }
    if (bits < 1 || bits > q->bits || q->bits != g->bits) {
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "%u-bit prefix of %u-bit query and %u-bit gallery codes", bits, q->bits,
                          g->bits);
    }
    hm_codes tq = {0}, tg = {0};
    size_t nq = (size_t)sp->n_query, ng = (size_t)sp->n_db;
    int32_t *qid = malloc(sizeof *qid * (nq + 1)), *qcam = malloc(sizeof *qcam * (nq + 1));
    int32_t *gid = malloc(sizeof *gid * (ng + 1)), *gcam = malloc(sizeof *gcam * (ng + 1));
    hm_weights *w = NULL;
    drsch_status st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    if (!qid || !qcam || !gid || !gcam || xp_codes_prefix(q, bits, &tq) ||
        xp_codes_prefix(g, bits, &tg))
        goto done;
    for (size_t i = 0; i < nq; i++) {
        qid[i] = d->labels[sp->query[i]];
        qcam[i] = d->cams[sp->query[i]];
    }
    for (size_t i = 0; i < ng; i++) {
        gid[i] = d->labels[sp->db[i]];
        gcam[i] = d->cams[sp->db[i]];
    }
    if (weights && (st = hm_weights_create(&w, weights, bits, err)) != DRSCH_OK)
        goto done;
    st = ev_reid_eval_gallery(gallery, &tq, qid, qcam, &tg, gid, gcam, w, single_shot_repeats, seed,
                              out, err);
done:
    hm_weights_free(w);
    hm_codes_free(&tq);
    hm_codes_free(&tg);
    free(qid);
    free(qcam);
    free(gid);
    free(gcam);
    return st;
}
