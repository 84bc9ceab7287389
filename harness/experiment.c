/* Protocol names and splits shared by data info, bench data, train, encode, eval and
 * reproduce; the codes of a model on a split, packed multi-hot labels, evaluation of codes. */
#include "experiment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

int xp_protocol_parse(const char *cmd, const char *s, xp_protocol *out)
{
    static const char *const names[] = {"auto", "paper", "paper-db-train", "full", "classic",
                                        "new",  "none"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) {
            *out = (xp_protocol)i;
            return 0;
        }
    fprintf(stderr, "drsch %s: --protocol: '%s' is not one of " XP_PROTOCOL_NAMES "\n", cmd, s);
    return -1;
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
            snprintf(err->msg, sizeof err->msg,
                     "the new protocol needs --config cuhk03_new_protocol_config_*.mat");
            err->status = DRSCH_ERR_ARG;
            return DRSCH_ERR_ARG;
        }
        return ds_split_cuhk03_new(d, config, sp, err);
    case XP_PROTO_CLASSIC: {
        /* Every second-camera image of the test identities: eval draws the single-gallery-shot
         * samplings from it (seeded, repeated), as reproduce does. */
        ds_cuhk03_opts co = {.testset = testset, .single_shot = 0};
        return ds_split_cuhk03_classic(d, &co, seed, sp, err);
    }
    case XP_PROTO_NONE:
        memset(sp, 0, sizeof *sp);
        snprintf(err->msg, sizeof err->msg, "no protocol selected");
        err->status = DRSCH_ERR_ARG;
        return DRSCH_ERR_ARG;
    default:
        return d->label_kind == DS_LABELS_MULTI ? ds_split_multilabel(d, &po, seed, sp, err)
                                                : ds_split_paper(d, &po, seed, sp, err);
    }
}

int xp_parse_size(const char *cmd, const char *s, int *h, int *w)
{
    char *end = NULL;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        goto bad;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end != '\0' || a < 1 || b < 1 || a > 4096 || b > 4096)
        goto bad;
    *h = (int)a;
    *w = (int)b;
    return 0;
bad:
    fprintf(stderr, "drsch %s: --size/--crop: '%s' is not HxW with 1 <= H, W <= 4096\n", cmd, s);
    return -1;
}

int xp_size_check(const char *cmd, const char *spec)
{
    ds_spec ds;
    drsch_error de;
    if (ds_spec_parse(spec, &ds, &de) != DRSCH_OK)
        return 0; /* reported when the dataset is loaded */
    if (ds.kind != DS_KIND_CUHK03 && ds.kind != DS_KIND_NUSWIDE) {
        fprintf(
            stderr,
            "drsch %s: --size resizes NUS-WIDE and CUHK03 images on loading; %s images are used at "
            "their own size\n",
            cmd, ds.name);
        return -1;
    }
    return 0;
}

int xp_load_dataset(const char *cmd, const char *spec, const char *size, ds_dataset **out,
                    int *exit_code)
{
    ds_load_opts lo;
    ds_load_opts_default(&lo);
    ds_spec ds;
    drsch_error de;
    *out = NULL;
    *exit_code = 1;
    if (ds_spec_parse(spec, &ds, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, de.msg);
        return -1;
    }
    *exit_code = 2;
    if (size && (xp_parse_size(cmd, size, &lo.out_h, &lo.out_w) || xp_size_check(cmd, spec)))
        return -1;
    *exit_code = 1;
    if (ds_load_spec(&ds, &lo, out, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, de.msg);
        return -1;
    }
    *exit_code = 0;
    return 0;
}

void xp_codes_free(xp_codes *c)
{
    hm_codes_free(&c->query);
    hm_codes_free(&c->db);
    free(c->weights);
    memset(c, 0, sizeof *c);
}

drsch_status xp_net_codes(const nn_net *net, const ds_dataset *d, const int64_t *query,
                          int64_t n_query, const int64_t *db, int64_t n_db, nn_precision precision,
                          xp_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    drsch_error te;
    if (tr_encode_precision(net, d, query, n_query, precision, &out->query, &te) != DRSCH_OK ||
        (db && tr_encode_precision(net, d, db, n_db, precision, &out->db, &te) != DRSCH_OK)) {
        snprintf(err->msg, sizeof err->msg, "%s", te.msg);
        xp_codes_free(out);
        return DRSCH_ERR_ENCODE;
    }
    const uint32_t B = (uint32_t)nn_net_config(net)->bits;
    const float *bw = nn_bit_weights(net);
    const uint32_t *order = nn_bit_order(net);
    out->weights = malloc(sizeof *out->weights * (B ? B : 1));
    if (!out->weights) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        xp_codes_free(out);
        return DRSCH_ERR_NOMEM;
    }
    for (uint32_t j = 0; j < B; j++)
        out->weights[j] = bw ? fabsf(bw[order[j]]) : 1.0f;
    out->bits = B;
    return DRSCH_OK;
}

drsch_status xp_model_codes(const char *path, const ds_dataset *d, const int64_t *query,
                            int64_t n_query, const int64_t *db, int64_t n_db,
                            nn_precision precision, xp_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    nn_net *net = NULL;
    drsch_error ne;
    if (nn_model_load(&net, path, 100, 0, &ne) != DRSCH_OK) {
        snprintf(err->msg, sizeof err->msg, "%s", ne.msg);
        return DRSCH_ERR_MODEL;
    }
    drsch_status st = xp_net_codes(net, d, query, n_query, db, n_db, precision, out, err);
    nn_net_free(net);
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

int xp_codes_prefix(const hm_codes *c, uint32_t bits, hm_codes *out)
{
    drsch_error err;
    memset(out, 0, sizeof *out);
    if (bits > c->bits || hm_codes_alloc(out, c->n, bits, &err) != DRSCH_OK)
        return -1;
    size_t full = bits / 64, rem = bits % 64;
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *src = hm_code_row(c, i);
        uint64_t *dst = out->data + i * out->words;
        memcpy(dst, src, full * sizeof *dst);
        if (rem)
            dst[full] = src[full] & ((1ull << rem) - 1);
    }
    return 0;
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
        snprintf(err->msg, sizeof err->msg,
                 "%zu query and %zu database codes for a split of %lld and %lld", q->n, db->n,
                 (long long)sp->n_query, (long long)sp->n_db);
        return DRSCH_ERR_ARG;
    }
    hm_codes tq = {0}, tdb = {0};
    int32_t *ql = NULL, *dl = NULL;
    uint64_t *qm = NULL, *dm = NULL;
    size_t words = 0;
    hm_weights *w = NULL;
    drsch_error he;
    drsch_status st = DRSCH_ERR_NOMEM;
    snprintf(err->msg, sizeof err->msg, "out of memory");
    if (xp_codes_prefix(q, bits, &tq) || xp_codes_prefix(db, bits, &tdb) ||
        gather_labels(d, sp->query, sp->n_query, &ql, &qm, &words) ||
        gather_labels(d, sp->db, sp->n_db, &dl, &dm, &words))
        goto done;
    if (weights && hm_weights_create(&w, weights, bits, &he) != DRSCH_OK) {
        snprintf(err->msg, sizeof err->msg, "%s", he.msg);
        st = DRSCH_ERR_ARG;
        goto done;
    }
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
                          int single_shot_repeats, uint64_t seed, ev_reid *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    if (!d->cams || !d->labels) {
        snprintf(err->msg, sizeof err->msg,
                 "%s has no identities and cameras: re-id metrics need both", d->name);
        return DRSCH_ERR_ARG;
    }
    if (q->n != (size_t)sp->n_query || g->n != (size_t)sp->n_db) {
        snprintf(err->msg, sizeof err->msg,
                 "%zu query and %zu gallery codes for a split of %lld and %lld", q->n, g->n,
                 (long long)sp->n_query, (long long)sp->n_db);
        return DRSCH_ERR_ARG;
    }
    if (bits < 1 || bits > q->bits || q->bits != g->bits) {
        snprintf(err->msg, sizeof err->msg,
                 "%u-bit prefix of %u-bit query and %u-bit gallery codes", bits, q->bits, g->bits);
        return DRSCH_ERR_ARG;
    }
    hm_codes tq = {0}, tg = {0};
    size_t nq = (size_t)sp->n_query, ng = (size_t)sp->n_db;
    int32_t *qid = malloc(sizeof *qid * (nq + 1)), *qcam = malloc(sizeof *qcam * (nq + 1));
    int32_t *gid = malloc(sizeof *gid * (ng + 1)), *gcam = malloc(sizeof *gcam * (ng + 1));
    hm_weights *w = NULL;
    drsch_error he;
    drsch_status st = DRSCH_ERR_NOMEM;
    snprintf(err->msg, sizeof err->msg, "out of memory");
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
    if (weights && hm_weights_create(&w, weights, bits, &he) != DRSCH_OK) {
        snprintf(err->msg, sizeof err->msg, "%s", he.msg);
        st = DRSCH_ERR_ARG;
        goto done;
    }
    st = ev_reid_eval(&tq, qid, qcam, &tg, gid, gcam, w, single_shot_repeats, seed, out, err);
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
