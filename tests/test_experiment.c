/* What the commands share about an experiment (harness/experiment.h), in process: the codes and
 * bit weights of a model on a split (xp_net_codes / xp_model_codes: the encoder's codes, |w| in
 * the model's bit order, w^2 in the same order with weight power 2, errors as statuses with the
 * cause; reproduce's weight power: refused unless 1 or 2, named in its report), and multi-hot
 * labels packed as ev_labels bitmasks (xp_pack_multi_hot, checked against hand-computed words),
 * and ITQ's covariance (bl_covariance: the bits of the plain loop at every thread count). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

#include "baselines.h"
#include "experiment.h"
#include "machine.h"
#include "reproduce.h"
#include "test_util.h"
#include "train.h"

/* ---- Multi-hot labels ------------------------------------------------------------------- */

TestSuite(multi_hot);

Test(multi_hot, words_per_row)
{
    cr_expect_eq(xp_multi_hot_words(1), 1);
    cr_expect_eq(xp_multi_hot_words(64), 1);
    cr_expect_eq(xp_multi_hot_words(65), 2);
    cr_expect_eq(xp_multi_hot_words(81), 2); /* NUS-WIDE's 81 concepts */
    cr_expect_eq(xp_multi_hot_words(128), 2);
    cr_expect_eq(xp_multi_hot_words(129), 3);
}

/* Four items of L = 70 labels (two words a row): labels 0, 3, 63 | 64, 69 | none | every one. */
static void four_items(uint8_t m[4][70])
{
    memset(m, 0, 4 * 70);
    m[0][0] = m[0][3] = m[0][63] = 1;
    m[1][64] = 1;
    m[1][69] = 7; /* any non-zero byte is a label */
    memset(m[3], 1, 70);
}

Test(multi_hot, rows_in_order_and_through_an_index)
{
    uint8_t m[4][70];
    four_items(m);
    const uint64_t expect[4][2] = {
        {0x8000000000000009ull, 0x0}, /* bits 0, 3, 63 */
        {0x0, 0x21ull},               /* labels 64 and 69: bits 0 and 5 of the second word */
        {0x0, 0x0},
        {0xFFFFFFFFFFFFFFFFull, 0x3Full}, /* 70 labels: 64 + 6 */
    };
    uint64_t out[4][2];
    memset(out, 0xA5, sizeof out); /* cleared by the packing, not left to the caller */
    xp_pack_multi_hot(&m[0][0], 70, NULL, 4, &out[0][0]);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++)
            cr_expect_eq(out[i][k], expect[i][k], "row %d word %d: %#llx, expected %#llx", i, k,
                         (unsigned long long)out[i][k], (unsigned long long)expect[i][k]);

    const int64_t idx[5] = {3, 0, 0, 2, 1};
    uint64_t sel[5][2];
    memset(sel, 0xFF, sizeof sel);
    xp_pack_multi_hot(&m[0][0], 70, idx, 5, &sel[0][0]);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 2; k++)
            cr_expect_eq(sel[i][k], expect[idx[i]][k], "row %d (item %lld) word %d", i,
                         (long long)idx[i], k);
}

Test(multi_hot, one_word_rows)
{
    const uint8_t m[2][5] = {{1, 0, 1, 0, 1}, {0, 1, 0, 0, 0}};
    uint64_t out[2] = {~0ull, ~0ull};
    xp_pack_multi_hot(&m[0][0], 5, NULL, 2, out);
    cr_expect_eq(out[0], 0x15ull);
    cr_expect_eq(out[1], 0x2ull);
}

/* ---- The codes of a model ---------------------------------------------------------------- */

#define BITS 16
#define N_IMAGES 30

static void make_tmpdir(void) { tu_tmpdir_make("experiment"); }

TestSuite(model_codes, .init = make_tmpdir, .fini = tu_tmpdir_remove, .timeout = 120);

/* n random 1 x 28 x 28 images with single labels, as a loader would give them. */
static ds_dataset *random_dataset(int64_t n, int c)
{
    ds_dataset *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    snprintf(d->name, sizeof d->name, "random");
    d->n = n;
    d->c = c;
    d->h = 28;
    d->w = 28;
    d->images = malloc((size_t)n * (size_t)c * 28 * 28);
    d->labels = malloc(sizeof *d->labels * (size_t)n);
    cr_assert(d->images && d->labels);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)n * (size_t)c * 28 * 28; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d->images[i] = (uint8_t)(s >> 56);
    }
    for (int64_t i = 0; i < n; i++)
        d->labels[i] = (int32_t)(i % 3);
    d->n_classes = 3;
    d->label_kind = DS_LABELS_SINGLE;
    return d;
}

/* A drsch-mnist net of BITS bits whose bit weights are w_k = (k odd ? -1 : 1) (k + 1) / 16 and
 * whose bit order is order[j] = 5 j mod 16: bit j of a code is network bit 5 j mod 16, whose
 * weight is (5 j mod 16 + 1) / 16 in magnitude. */
static nn_net *weighted_net(void)
{
    nn_config cfg;
    drsch_error err;
    cr_assert_eq(nn_config_init(&cfg, "drsch-mnist", BITS, 10, 0, &err), DRSCH_OK, "%s", err.msg);
    cfg.seed = 7;
    nn_net *net = NULL;
    cr_assert_eq(nn_net_create(&net, &cfg, &err), DRSCH_OK, "%s", err.msg);
    size_t np = nn_params_plain_size(net);
    float *p = malloc(sizeof *p * np);
    cr_assert_not_null(p);
    cr_assert_eq(nn_params_export(net, p, np, &err), DRSCH_OK, "%s", err.msg);
    for (int k = 0; k < BITS; k++) /* the bit weights are the last B parameters */
        p[np - BITS + (size_t)k] = (k % 2 ? -1.0f : 1.0f) * (float)(k + 1) / 16.0f;
    cr_assert_eq(nn_params_import(net, p, np, &err), DRSCH_OK, "%s", err.msg);
    free(p);
    uint32_t order[BITS];
    for (int j = 0; j < BITS; j++)
        order[j] = (uint32_t)(5 * j % BITS);
    cr_assert_eq(nn_set_bit_order(net, order, &err), DRSCH_OK, "%s", err.msg);
    return net;
}

static void expect_codes_equal(const hm_codes *a, const hm_codes *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu codes, expected %zu", what, a->n, b->n);
    cr_assert_eq(a->bits, b->bits, "%s", what);
    for (size_t i = 0; i < a->n; i++)
        cr_assert_eq(memcmp(hm_code_row(a, i), hm_code_row(b, i), a->words * sizeof(uint64_t)), 0,
                     "%s: code %zu", what, i);
}

Test(model_codes, encoder_codes_and_weights_in_significance_order)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    nn_net *net = weighted_net();
    drsch_error ne;
    cr_assert_eq(nn_model_save(net, tu_path("m.bin"), &ne), DRSCH_OK, "%s", ne.msg);
    int64_t q[10], db[20];
    for (int i = 0; i < 10; i++)
        q[i] = 3 * i; /* every third image */
    for (int i = 0; i < 20; i++)
        db[i] = N_IMAGES - 1 - i; /* the last twenty, backwards */

    /* What the encoder gives on each list. */
    hm_codes eq = {0}, edb = {0};
    drsch_error te;
    cr_assert_eq(tr_encode(net, d, q, 10, &eq, &te), DRSCH_OK, "%s", te.msg);
    cr_assert_eq(tr_encode(net, d, db, 20, &edb, &te), DRSCH_OK, "%s", te.msg);

    xp_codes c;
    drsch_error xe;
    cr_assert_eq(xp_model_codes(tu_path("m.bin"), d, q, 10, db, 20, NN_PRECISION_F32, 1, &c, &xe),
                 DRSCH_OK, "%s", xe.msg);
    cr_assert_eq(c.bits, BITS);
    expect_codes_equal(&c.query, &eq, "model file, queries");
    expect_codes_equal(&c.db, &edb, "model file, database");
    for (int j = 0; j < BITS; j++) {
        float expect = (float)(5 * j % BITS + 1) / 16.0f;
        cr_expect_eq(c.weights[j], expect, "weight of bit %d: %g, expected %g", j, c.weights[j],
                     expect);
    }
    xp_codes_free(&c);
    cr_expect_null(c.weights);
    cr_expect_eq(c.query.n, 0);

    /* The net itself, queries only (drsch encode's one set): the database stays empty. */
    cr_assert_eq(xp_net_codes(net, d, q, 10, NULL, 0, NN_PRECISION_F32, 1, &c, &xe), DRSCH_OK, "%s",
                 xe.msg);
    expect_codes_equal(&c.query, &eq, "net, queries");
    cr_expect_eq(c.db.n, 0);
    cr_expect_null(c.db.data);
    cr_expect_eq(c.weights[0], 1.0f / 16.0f);
    cr_expect_eq(c.weights[1], 6.0f / 16.0f);
    xp_codes_free(&c);
    xp_codes_free(&c); /* freeing an empty one is harmless */

    hm_codes_free(&eq);
    hm_codes_free(&edb);
    nn_net_free(net);
    ds_dataset_free(d);
}

/* Weight power 2: the squares of power 1's weights, bit for bit in the same (significance) order,
 * the codes unchanged; from the model file and from the net. Any other power is refused. */
Test(model_codes, weight_power_two_squares_the_weights_in_the_same_order)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    nn_net *net = weighted_net();
    drsch_error ne;
    cr_assert_eq(nn_model_save(net, tu_path("m.bin"), &ne), DRSCH_OK, "%s", ne.msg);
    int64_t q[5] = {0, 4, 8, 12, 16}, db[6] = {1, 2, 3, 5, 7, 9};
    xp_codes c1, c2, n2;
    drsch_error xe;
    cr_assert_eq(xp_model_codes(tu_path("m.bin"), d, q, 5, db, 6, NN_PRECISION_F32, 1, &c1, &xe),
                 DRSCH_OK, "%s", xe.msg);
    cr_assert_eq(xp_model_codes(tu_path("m.bin"), d, q, 5, db, 6, NN_PRECISION_F32, 2, &c2, &xe),
                 DRSCH_OK, "%s", xe.msg);
    cr_assert_eq(xp_net_codes(net, d, q, 5, NULL, 0, NN_PRECISION_F32, 2, &n2, &xe), DRSCH_OK, "%s",
                 xe.msg);
    cr_assert_eq(c2.bits, c1.bits);
    expect_codes_equal(&c2.query, &c1.query, "power 2, queries");
    expect_codes_equal(&c2.db, &c1.db, "power 2, database");
    expect_codes_equal(&n2.query, &c1.query, "power 2 from the net, queries");
    int unequal = 0;
    for (uint32_t j = 0; j < c1.bits; j++) {
        float w = (float)(5 * j % BITS + 1) / 16.0f; /* |w| of bit j (weighted_net) */
        cr_expect_eq(c1.weights[j], w, "power 1, bit %u: %g, expected %g", j, c1.weights[j], w);
        cr_expect_eq(c2.weights[j], c1.weights[j] * c1.weights[j],
                     "power 2, bit %u: %g, expected %g^2", j, c2.weights[j], c1.weights[j]);
        cr_expect_eq(n2.weights[j], c2.weights[j], "power 2 from the net, bit %u", j);
        unequal += c2.weights[j] != c1.weights[j];
    }
    cr_expect_gt(unequal, 8, "the weights are not all 0 or 1: the test tells the powers apart");
    xp_codes_free(&c1);
    xp_codes_free(&c2);
    xp_codes_free(&n2);

    const int bad[] = {0, 3, -1};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(xp_net_codes(net, d, q, 5, db, 6, NN_PRECISION_F32, bad[i], &c1, &xe),
                     DRSCH_ERR_ARG, "weight power %d", bad[i]);
        cr_expect_not_null(strstr(xe.msg, "weight power"), "%s", xe.msg);
        cr_expect(c1.query.n == 0 && c1.db.n == 0 && !c1.weights);
    }
    cr_assert_eq(xp_model_codes(tu_path("m.bin"), d, q, 5, db, 6, NN_PRECISION_F32, 0, &c1, &xe),
                 DRSCH_ERR_ARG);
    cr_expect(c1.query.n == 0 && c1.db.n == 0 && !c1.weights);
    cr_expect_str_eq(xp_weight_power_text(1), "sum of |w| over differing bits");
    cr_expect_str_eq(xp_weight_power_text(2), "sum of w^2 over differing bits");
    nn_net_free(net);
    ds_dataset_free(d);
}

/* reproduce's weighted rows: 0 in the config is the default power, 1 and 2 are taken as given,
 * and the experiments refuse any other before they train anything. */
Test(model_codes, reproduce_takes_weight_power_one_or_two)
{
    xp_repro_config c = {.weight_power = 0};
    cr_expect_eq(xp_repro_weight_power(&c), XP_WEIGHT_POWER_DEFAULT);
    cr_expect_eq(XP_WEIGHT_POWER_DEFAULT, 1, "today's ranking stays the default");
    c.weight_power = 2;
    cr_expect_eq(xp_repro_weight_power(&c), 2);
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    ds_split sp = {0};
    drsch_error err;
    c.weight_power = 3;
    xp_retrieval_result ret;
    cr_assert_eq(xp_retrieval_run(&c, d, &sp, &ret, &err), DRSCH_ERR_ARG);
    cr_expect_not_null(strstr(err.msg, "weight power 3"), "%s", err.msg);
    cr_expect_eq(ret.n_rows, 0);
    c.weight_power = -1;
    xp_reid_result reid;
    cr_assert_eq(xp_reid_run(&c, d, &reid, &err), DRSCH_ERR_ARG);
    cr_expect_not_null(strstr(err.msg, "weight power -1"), "%s", err.msg);
    cr_expect(reid.n_splits == 0 && !reid.rows[0].r);
    ds_dataset_free(d);
}

/* The report of a retrieval run says which power its weighted rows rank by: the context
 * (weight_power, weighted_ranking) and a sentence of the table; 0 in the config is power 1. The
 * weights' quantisation rule is stated in both (weight_quantisation). */
Test(model_codes, reproduce_report_says_which_weight_power)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    for (int p = 0; p <= 2; p++) {
        const int power = p ? p : 1;
        xp_repro_config c = {.lengths = {4}, .n_lengths = 1, .long_bits = 8, .weight_power = p};
        tr_config_default(&c.train, d);
        xp_retrieval_result ret = {.metric = "mAP@all", .n_rows = 3};
        for (int r = 0; r < 3; r++) {
            snprintf(ret.rows[r].method, sizeof ret.rows[r].method, "row %d", r);
            ret.rows[r].have[0] = ret.rows[r].have[1] = 1;
        }
        rp_report *rep = rp_create();
        cr_assert_not_null(rep);
        rp_repro_info info = {"drsch reproduce", "random", "a protocol", 1, 1.0};
        char *md = NULL;
        drsch_error err;
        cr_assert_eq(rp_repro_report(rep, &info, d, &c, &ret, NULL, &md, &err), DRSCH_OK, "%s",
                     err.msg);
        char sentence[160];
        snprintf(sentence, sizeof sentence, "Weighted ranking: the %s (--weight-power %d).",
                 xp_weight_power_text(power), power);
        cr_expect_not_null(strstr(md, sentence), "power %d: %s", p, md);
        cr_expect_not_null(strstr(md, "Its " HM_WEIGHTS_QUANTISATION "."), "%s", md);
        char *text = rp_print(rep);
        cJSON *root = cJSON_Parse(text);
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
        const cJSON *wp = cJSON_GetObjectItemCaseSensitive(ctx, "weight_power");
        const cJSON *wr = cJSON_GetObjectItemCaseSensitive(ctx, "weighted_ranking");
        cr_expect(cJSON_IsNumber(wp) && wp->valuedouble == power, "power %d: %s", p, text);
        cr_expect(cJSON_IsString(wr) && !strcmp(wr->valuestring, xp_weight_power_text(power)),
                  "power %d: %s", p, text);
        const cJSON *wq = cJSON_GetObjectItemCaseSensitive(ctx, "weight_quantisation");
        cr_expect(cJSON_IsString(wq) && !strcmp(wq->valuestring, HM_WEIGHTS_QUANTISATION), "%s",
                  text);
        cJSON_Delete(root);
        free(text);
        free(md);
        rp_free(rep);
    }
    ds_dataset_free(d);
}

/* ITQ's figures depend on the LAPACK and BLAS the system's alternatives chose (reference or
 * OpenBLAS round differently), so once ITQ has run, the report names both files: the context's
 * itq_lapack and a sentence of the table. Before, neither is there. The table names the machine
 * by its CPU model, cores and measured clock. */
Test(model_codes, reproduce_report_names_itq_lapack)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    xp_repro_config c = {.lengths = {4}, .n_lengths = 1, .long_bits = 8};
    tr_config_default(&c.train, d);
    xp_retrieval_result ret = {.metric = "mAP@all", .n_rows = 1};
    snprintf(ret.rows[0].method, sizeof ret.rows[0].method, "ITQ (pixels)");
    rp_repro_info info = {"drsch reproduce", "random", "a protocol", 1, 1.0};
    drsch_error err;
    for (int itq = 0; itq <= 1; itq++) {
        if (itq) {
            enum { N = 64, DIM = 16 };
            float x[N * DIM];
            for (int i = 0; i < N * DIM; i++)
                x[i] = (float)((i * 7919) % 101) / 101.0f;
            bl_model m;
            cr_assert_eq(bl_itq_train(x, N, DIM, 8, 5, 1, &m, &err), DRSCH_OK, "%s", err.msg);
            bl_model_free(&m);
        }
        const char *libs = bl_lapack_libraries();
        char lapack[512], blas[512];
        if (itq) {
            cr_assert_eq(sscanf(libs, "LAPACK %511[^,], BLAS %511s", lapack, blas), 2, "%s", libs);
            struct stat st;
            cr_expect(stat(lapack, &st) == 0 && S_ISREG(st.st_mode), "%s", lapack);
            cr_expect(stat(blas, &st) == 0 && S_ISREG(st.st_mode), "%s", blas);
        } else {
            cr_expect_str_empty(libs);
        }
        rp_report *rep = rp_create();
        cr_assert_not_null(rep);
        char *md = NULL;
        cr_assert_eq(rp_repro_report(rep, &info, d, &c, &ret, NULL, &md, &err), DRSCH_OK, "%s",
                     err.msg);
        char sentence[1200];
        mc_machine mm;
        mc_describe(&mm);
        snprintf(sentence, sizeof sentence, "Machine: %s, %d cores (%d logical CPUs), ",
                 mm.cpu_model, mm.physical_cores, mm.logical_cpus);
        cr_expect_not_null(strstr(md, sentence), "the machine as a reader needs it: %s", md);
        cr_expect_not_null(strstr(md, "GHz"), "%s", md);
        snprintf(sentence, sizeof sentence, "ITQ's eigen-decomposition and SVDs ran on %s;", libs);
        char *text = rp_print(rep);
        cJSON *root = cJSON_Parse(text);
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ctx, "itq_lapack");
        if (itq) {
            cr_expect_not_null(strstr(md, sentence), "%s", md);
            cr_expect(cJSON_IsString(lp) && !strcmp(lp->valuestring, libs), "%s", text);
        } else {
            cr_expect_null(strstr(md, "ITQ's eigen-decomposition"), "%s", md);
            cr_expect_null(lp, "%s", text);
        }
        cJSON_Delete(root);
        free(text);
        free(md);
        rp_free(rep);
    }
    ds_dataset_free(d);
}

Test(model_codes, failures_say_why_and_leave_nothing)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    nn_net *net = weighted_net();
    int64_t q[3] = {0, 1, 2};
    xp_codes c;
    drsch_error xe;

    /* No model file: the loader's message, naming it. */
    cr_assert_eq(
        xp_model_codes(tu_path("missing.bin"), d, q, 3, q, 3, NN_PRECISION_F32, 1, &c, &xe),
        DRSCH_ERR_IO);
    cr_expect_not_null(strstr(xe.msg, "missing.bin"), "%s", xe.msg);
    cr_expect(c.query.n == 0 && c.db.n == 0 && !c.weights);

    /* An empty list: the encoder's message. */
    cr_assert_eq(xp_net_codes(net, d, q, 0, NULL, 0, NN_PRECISION_F32, 1, &c, &xe), DRSCH_ERR_ARG);
    cr_expect_not_null(strstr(xe.msg, "nothing to encode"), "%s", xe.msg);
    cr_expect(c.query.n == 0 && !c.query.data && !c.weights);
    /* ... also when only the database is empty: the queries' codes are not left behind. */
    cr_assert_eq(xp_net_codes(net, d, q, 3, q, 0, NN_PRECISION_F32, 1, &c, &xe), DRSCH_ERR_ARG);
    cr_expect(c.query.n == 0 && !c.query.data && c.db.n == 0 && !c.weights);

    /* Images the model does not take (3 channels for a 1-channel net). */
    ds_dataset *rgb = random_dataset(4, 3);
    cr_assert_eq(xp_net_codes(net, rgb, q, 3, q, 3, NN_PRECISION_F32, 1, &c, &xe), DRSCH_ERR_ARG);
    cr_expect_not_null(strstr(xe.msg, "random"), "the message names the dataset: %s", xe.msg);
    cr_expect(c.query.n == 0 && c.db.n == 0 && !c.weights);

    ds_dataset_free(rgb);
    nn_net_free(net);
    ds_dataset_free(d);
}

/* ---- The bit order at evaluation ------------------------------------------------------------ */

/* weighted_net's bits weigh |w_k| = (k + 1) / 16, so by |w| the order is 15, 14, ..., 0 (its saved
 * order is 5 j mod 16). Codes in network order come from the net with the identity order. */
static void network_order_codes(nn_net *net, const ds_dataset *d, const int64_t *idx, int64_t n,
                                hm_codes *out)
{
    uint32_t saved[BITS], identity[BITS];
    memcpy(saved, nn_bit_order(net), sizeof saved);
    for (int j = 0; j < BITS; j++)
        identity[j] = (uint32_t)j;
    drsch_error err;
    cr_assert_eq(nn_set_bit_order(net, identity, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(tr_encode(net, d, idx, n, out, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(nn_set_bit_order(net, saved, &err), DRSCH_OK, "%s", err.msg);
}

/* Bit j of code c is network bit perm[j] of code ref, for every code. */
static void expect_permuted(const hm_codes *c, const hm_codes *ref, const uint32_t *perm,
                            const char *what)
{
    cr_assert(c->n == ref->n && c->bits == BITS, "%s", what);
    int moved = 0;
    for (size_t i = 0; i < c->n; i++)
        for (uint32_t j = 0; j < BITS; j++) {
            int got = (int)(hm_code_row(c, i)[0] >> j & 1);
            int want = (int)(hm_code_row(ref, i)[0] >> perm[j] & 1);
            cr_assert_eq(got, want, "%s: code %zu bit %u", what, i, j);
            moved += want != (int)(hm_code_row(ref, i)[0] >> j & 1);
        }
    cr_expect_gt(moved, 0, "%s: the codes tell the orders apart", what);
}

/* xp_model_codes_with: order weight gives bit j = the network bit of j-th largest |w| (15 - j)
 * with weight (16 - j) / 16; order saved gives xp_model_codes's codes (5 j mod 16). The codes of
 * the saved order put in weight order by xp_codes_in_order are the same, and the net keeps its
 * order. */
Test(model_codes, bit_order_weight_puts_the_largest_weights_first)
{
    ds_dataset *d = random_dataset(N_IMAGES, 1);
    nn_net *net = weighted_net();
    drsch_error err;
    cr_assert_eq(nn_model_save(net, tu_path("m.bin"), &err), DRSCH_OK, "%s", err.msg);
    int64_t q[6] = {0, 5, 10, 15, 20, 25}, db[8] = {1, 2, 3, 4, 6, 7, 8, 9};
    hm_codes nq = {0}, ndb = {0};
    network_order_codes(net, d, q, 6, &nq);
    network_order_codes(net, d, db, 8, &ndb);
    uint32_t by_weight[BITS], saved[BITS];
    for (uint32_t j = 0; j < BITS; j++) {
        by_weight[j] = BITS - 1 - j;
        saved[j] = 5 * j % BITS;
    }
    xp_codes cw, cs, plain, moved;
    xp_code_options o = {.bit_order = XP_BIT_ORDER_WEIGHT};
    cr_assert_eq(xp_model_codes_with(tu_path("m.bin"), d, q, 6, db, 8, &o, &cw, &err), DRSCH_OK,
                 "%s", err.msg);
    expect_permuted(&cw.query, &nq, by_weight, "weight order, queries");
    expect_permuted(&cw.db, &ndb, by_weight, "weight order, database");
    for (uint32_t j = 0; j < BITS; j++)
        cr_expect_eq(cw.weights[j], (float)(BITS - j) / 16, "weight order, weight %u", j);
    o.bit_order = XP_BIT_ORDER_SAVED;
    cr_assert_eq(xp_model_codes_with(tu_path("m.bin"), d, q, 6, db, 8, &o, &cs, &err), DRSCH_OK,
                 "%s", err.msg);
    cr_assert_eq(
        xp_model_codes(tu_path("m.bin"), d, q, 6, db, 8, NN_PRECISION_F32, 1, &plain, &err),
        DRSCH_OK, "%s", err.msg);
    expect_permuted(&cs.query, &nq, saved, "saved order, queries");
    expect_codes_equal(&cs.query, &plain.query, "saved order = xp_model_codes, queries");
    expect_codes_equal(&cs.db, &plain.db, "saved order = xp_model_codes, database");
    cr_expect_eq(memcmp(cs.weights, plain.weights, sizeof(float) * BITS), 0);

    cr_assert_eq(xp_codes_in_order(net, &cs, XP_BIT_ORDER_WEIGHT, &moved, &err), DRSCH_OK, "%s",
                 err.msg);
    expect_codes_equal(&moved.query, &cw.query, "saved codes reordered, queries");
    expect_codes_equal(&moved.db, &cw.db, "saved codes reordered, database");
    cr_expect_eq(memcmp(moved.weights, cw.weights, sizeof(float) * BITS), 0);
    for (uint32_t j = 0; j < BITS; j++)
        cr_expect_eq(nn_bit_order(net)[j], saved[j], "the net keeps its order: bit %u", j);
    xp_codes_free(&moved);
    cr_assert_eq(xp_codes_in_order(net, &cs, XP_BIT_ORDER_SAVED, &moved, &err), DRSCH_OK);
    expect_codes_equal(&moved.query, &cs.query, "saved to saved");

    /* what is refused */
    xp_codes_free(&moved);
    cr_expect_eq(xp_codes_in_order(net, &cs, (xp_bit_order)2, &moved, &err), DRSCH_ERR_ARG);
    cr_expect(!moved.weights && !moved.query.n);
    cr_expect_eq(xp_apply_bit_order(net, (xp_bit_order)-1, &err), DRSCH_ERR_ARG);
    cr_expect_str_eq(xp_bit_order_name(XP_BIT_ORDER_SAVED), "saved");
    cr_expect_str_eq(xp_bit_order_name(XP_BIT_ORDER_WEIGHT), "weight");
    cr_expect_null(xp_bit_order_name((xp_bit_order)5));
    o.bit_order = (xp_bit_order)7;
    xp_codes_free(&cs);
    cr_expect_eq(xp_model_codes_with(tu_path("m.bin"), d, q, 6, db, 8, &o, &cs, &err),
                 DRSCH_ERR_ARG);
    cr_expect(!cs.weights && !cs.query.n);
    xp_codes_free(&cw);
    xp_codes_free(&plain);
    hm_codes_free(&nq);
    hm_codes_free(&ndb);
    nn_net_free(net);
    ds_dataset_free(d);
}

/* ---- ITQ's covariance and the baselines' codes --------------------------------------------- */

TestSuite(covariance);
TestSuite(baseline_codes);

/* bl_encode's codes are the signs of the plain loop's sums, sum_j ((double)x[j] - mean[j]) *
 * proj[j][k] added in order of j, for every bit (lengths across a word, 1 and 2 threads); many
 * sums sit near zero (half the features equal to their mean), and every seventh row is the mean
 * (its sums exactly 0: no bit set). */
Test(baseline_codes, signs_of_the_plain_loop)
{
    enum { N = 97, D = 45 };
    static const uint32_t lengths[] = {1, 13, 64, 65, 130};
    static float x[N * D];
    uint64_t seed = 5;
    for (size_t i = 0; i < (size_t)N * D; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = i % 2 ? 0.5f : (float)(seed >> 40) / 16777216.0f;
    }
    for (size_t i = 0; i < N; i += 7) /* rows equal to the mean: every sum exactly 0, bit 0 */
        for (size_t j = 0; j < D; j++)
            x[i * D + j] = j % 2 ? 0.5f : 0.25f;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const uint32_t B = lengths[li];
        bl_model m = {.dim = D, .bits = B};
        m.mean = malloc(D * sizeof *m.mean);
        m.proj = malloc((size_t)D * B * sizeof *m.proj);
        cr_assert(m.mean && m.proj);
        for (int j = 0; j < D; j++)
            m.mean[j] = j % 2 ? 0.5f : 0.25f;
        for (size_t e = 0; e < (size_t)D * B; e++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            m.proj[e] = (float)(seed >> 40) / 8388608.0f - 1.0f;
        }
        for (int threads = 1; threads <= 2; threads++) {
#ifdef DRSCH_HAVE_OPENMP
            omp_set_num_threads(threads);
#endif
            hm_codes c = {0};
            drsch_error err;
            cr_assert_eq(hm_codes_alloc(&c, N + 3, B, &err), DRSCH_OK, "%s", err.msg);
            bl_encode(&m, x, N, &c, 3); /* rows 3..N+2 */
            for (size_t i = 0; i < N; i++)
                for (uint32_t k = 0; k < B; k++) {
                    double t = 0;
                    for (size_t j = 0; j < D; j++)
                        t += ((double)x[i * D + j] - m.mean[j]) * m.proj[j * B + k];
                    const int bit = (int)(hm_code_row(&c, i + 3)[k / 64] >> (k % 64) & 1);
                    cr_assert_eq(bit, t > 0, "%u bits, %d threads: row %zu bit %u (sum %.17g)", B,
                                 threads, i, k, t);
                }
            hm_codes_free(&c);
        }
        bl_model_free(&m);
    }
}

/* bl_covariance holds the bits of the plain loop, each entry's products added in row order, at
 * 1, 2 and 3 threads, for shapes around its blocks (4 x 4 entries, 64 rows): dimensions not a
 * multiple of 4, rows not a multiple of 64, a single dimension, two rows. */
Test(covariance, same_bits_as_the_plain_loop_at_any_thread_count)
{
    static const size_t shapes[][2] = {{2, 1}, {67, 13}, {64, 4}, {130, 64}, {500, 101}, {1000, 7}};
    uint64_t seed = 11;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const size_t n = shapes[c][0], D = shapes[c][1];
        float *x = malloc(n * D * sizeof *x), *mean = malloc(D * sizeof *mean);
        double *want = malloc(D * D * sizeof *want), *got = malloc(D * D * sizeof *got);
        cr_assert(x && mean && want && got);
        for (size_t i = 0; i < n * D; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)(seed >> 40) / 16777216.0f * (float)(1 + i % 5);
        }
        for (size_t j = 0; j < D; j++) {
            double m = 0;
            for (size_t i = 0; i < n; i++)
                m += x[i * D + j];
            mean[j] = (float)(m / (double)n);
        }
        for (size_t a = 0; a < D; a++)
            for (size_t b = a; b < D; b++) {
                double sum = 0;
                for (size_t i = 0; i < n; i++)
                    sum += ((double)x[i * D + a] - mean[a]) * ((double)x[i * D + b] - mean[b]);
                want[a * D + b] = sum / (double)(n - 1);
            }
        for (int threads = 1; threads <= 3; threads++) {
#ifdef DRSCH_HAVE_OPENMP
            omp_set_num_threads(threads);
#endif
            memset(got, 0xff, D * D * sizeof *got);
            drsch_error err;
            cr_assert_eq(bl_covariance(x, n, (int)D, mean, got, &err), DRSCH_OK, "%s", err.msg);
            for (size_t a = 0; a < D; a++)
                for (size_t b = a; b < D; b++)
                    cr_assert(memcmp(&got[a * D + b], &want[a * D + b], sizeof *got) == 0,
                              "n %zu, %zu dimensions, %d threads: entry (%zu, %zu) %.17g, the "
                              "plain loop %.17g",
                              n, D, threads, a, b, got[a * D + b], want[a * D + b]);
        }
        free(x);
        free(mean);
        free(want);
        free(got);
    }
    drsch_error err;
    double one;
    float v = 1.0f;
    cr_expect_eq(bl_covariance(&v, 1, 1, &v, &one, &err), DRSCH_ERR_ARG, "one row");
}
