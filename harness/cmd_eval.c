/* drsch eval: retrieval metrics (mAP@all, tie-aware mAP, mAP@K, P@K, P@radius) or re-id
 * metrics (CMC, mAP) of binary codes, at one or more prefix lengths, by the rules of
 * harness/metrics.h. Two sources of codes, one evaluation: a trained model encoding a dataset's
 * protocol queries and database (--model), or .npy files made by drsch or any other tool
 * (--codes ...), so results from different tools are measured identically. With --model the
 * encoding runs in f32 unless --precision bf16 asks for bf16; reports record which. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "experiment.h"
#include "train.h"
#include "commands.h"
#include "hamming.h"
#include "inputs.h"
#include "metrics.h"
#include "npy.h"
#include "report.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: drsch eval --model MODEL [--dataset SPEC] [options]\n"
           "       drsch eval --codes Q.npy --db DB.npy --qlabels QL.npy --dblabels DL.npy "
           "[options]\n\n"
           "Evaluates query codes against database codes: those of a model on the protocol's\n"
           "queries and database, or .npy files (uint8, N x ceil(bits/8)).\n"
           "Labels: int32/int64 (N,) single label or identity, or uint8/bool (N, L) multi-hot\n"
           "(relevant = at least one shared label; both files of the same width L). Ranking ties\n"
           "are ordered by database index; tie-aware mAP is the expectation under random tie\n"
           "order. The table has a row per length: mAP@all, mAP(ties), mAP@K and P@K (K of\n"
           "--topk; P@K divides by min(K, database size)) and P@rR (R of --radius; n/a for\n"
           "weighted ranking); a line below counts the queries with no relevant item (AP 0).\n"
           "Re-id: mAP, CMC rank-1/5/10/20 and the queries with a true match; a line below\n"
           "counts the queries without one (left out).\n\n"
           "  --model FILE      model written by drsch train\n"
           "  --dataset SPEC    with --model (default fashion-mnist)\n"
           "  --protocol P      with --model: " XP_PROTOCOL_NAMES " (default auto)\n"
           "  --testset K       with --model: CUHK03 classic split 1..20 (default 1)\n"
           "  --size HxW        with --model: resize NUS-WIDE / CUHK03 images on loading, as the\n"
           "                    model was trained (default 32x32 / 160x60)\n"
           "  --seed S          protocol and single-shot seed (default 1, as drsch train)\n"
           "  --weighted        with --model: rank by the model's bit weights |w|\n"
           "  --precision P     with --model: f32 | bf16 arithmetic of the encoder (default f32)\n"
           "  --codes FILE      query codes (without --model: --codes, --db, --qlabels and\n"
           "                    --dblabels are all required)\n"
           "  --db FILE         database / gallery codes\n"
           "  --qlabels FILE    query labels\n"
           "  --dblabels FILE   database labels\n"
           "  --qcams FILE      query camera ids, int32 (N,): re-id mode (CMC + mAP)\n"
           "  --dbcams FILE     gallery camera ids (with --qcams)\n"
           "  --bits LIST       prefix lengths to evaluate, e.g. 12,24,32,48 (default: full)\n"
           "  --weights FILE    float32 or float64 (B,) bit weights, all finite, 1 <= B <= bits\n"
           "                    per code: rank by weighted Hamming distance over the first B bits\n"
           "  --topk K          K of mAP@K and P@K (default 1000; 0 = off)\n"
           "  --radius R        Hamming radius of the precision@radius metric (default 2)\n"
           "  --single-shot N   re-id: CMC from N seeded single-gallery-shot samplings\n"
           "                    (default 10 for CUHK03 with --model, else 0 = whole gallery)\n"
           "  --threads T       OpenMP threads, 0 = OMP_NUM_THREADS or all cores (default 0)\n"
           "  --json FILE       write a Google Benchmark-compatible report (metrics as counters)\n"
           "  -h, --help        this text\n");
}

/* Labels file -> int32 labels or uint64 bitmask rows. */
typedef struct {
    int32_t *labels;
    uint64_t *multi;
    size_t n, words, cols; /* cols: labels per row of multi-hot labels */
} labels_buf;

static int load_labels(const char *path, size_t expect_n, labels_buf *out)
{
    memset(out, 0, sizeof *out);
    npy_array a;
    drsch_error err;
    if (npy_load(path, &a, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", err.msg);
        return -1;
    }
    int rc = -1;
    size_t n = a.ndim >= 1 ? a.shape[0] : 0;
    if (n != expect_n) {
        fprintf(stderr, "drsch eval: %s: %zu labels, but there are %zu codes\n", path, n, expect_n);
    } else if (a.ndim == 1 && (a.dtype == NPY_I32 || a.dtype == NPY_I64)) {
        out->labels = malloc((n ? n : 1) * sizeof *out->labels);
        if (out->labels) {
            for (size_t i = 0; i < n; i++)
                out->labels[i] =
                    a.dtype == NPY_I32 ? ((int32_t *)a.data)[i] : (int32_t)((int64_t *)a.data)[i];
            out->n = n;
            rc = 0;
        } else {
            fprintf(stderr, "drsch eval: %s: out of memory for %zu labels\n", path, n);
        }
    } else if (a.ndim == 2 && (a.dtype == NPY_U8 || a.dtype == NPY_BOOL) && a.shape[1] > 0) {
        size_t L = a.shape[1], words = xp_multi_hot_words(L);
        const uint8_t *v = a.data;
        size_t bad = 0;
        while (bad < n * L && v[bad] <= 1)
            bad++;
        if (bad < n * L) {
            fprintf(stderr,
                    "drsch eval: %s: row %zu, label %zu is %u; multi-hot labels must be 0 or 1\n",
                    path, bad / L, bad % L, v[bad]);
        } else if ((out->multi = calloc(n * words + 1, sizeof *out->multi))) {
            xp_pack_multi_hot(v, L, NULL, n, out->multi);
            out->n = n;
            out->words = words;
            out->cols = L;
            rc = 0;
        } else {
            fprintf(stderr, "drsch eval: %s: out of memory for %zu x %zu labels\n", path, n, L);
        }
    } else {
        fprintf(stderr,
                "drsch eval: %s: labels must be int32/int64 (N,) or uint8 (N, L) multi-hot; got %s "
                "with %d dimensions\n",
                path, npy_dtype_name(a.dtype), a.ndim);
    }
    npy_free(&a);
    return rc;
}

static int parse_bits_list(const char *s, uint32_t max_bits, uint32_t *out, int cap)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || (uint32_t)v > max_bits || n == cap) {
            fprintf(stderr,
                    "drsch eval: --bits: '%s' must be a comma-separated list of lengths 1..%u\n", s,
                    max_bits);
            return -1;
        }
        out[n++] = (uint32_t)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p) {
            fprintf(stderr,
                    "drsch eval: --bits: '%s' must be a comma-separated list of lengths 1..%u\n", s,
                    max_bits);
            return -1;
        }
    }
    return n;
}

/* Model mode: encodes the protocol's queries and database with the model and fills the same
 * inputs the file mode reads. Returns 0 or -1 after printing why. */
static int inputs_from_model(const char *model, const char *spec, xp_protocol proto,
                             int64_t testset, uint64_t seed, int weighted, nn_precision precision,
                             hm_codes *q, hm_codes *db, labels_buf *ql, labels_buf *dl,
                             labels_buf *qc, labels_buf *dc, float **wts, size_t *wcount,
                             int64_t *single, const char *size, rp_report *rep)
{
    nn_net *net = NULL;
    ds_dataset *d = NULL;
    ds_split sp = {0};
    xp_codes codes = {0};
    drsch_error ne;
    drsch_error de;
    drsch_error xe;
    int rc = -1;
    if (nn_model_load(&net, model, 100, 0, &ne) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", ne.msg);
        goto done;
    }
    int xc;
    if (xp_load_dataset("eval", spec, size, &d, &xc))
        goto done;
    if (xp_make_split(d, proto, seed, (int)testset - 1, NULL, &sp, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s: %s\n", spec, de.msg);
        goto done;
    }
    if (sp.n_query == 0 || sp.n_db == 0) {
        fprintf(stderr,
                "drsch eval: %s: the protocol '%s' gives %lld queries and %lld database images\n",
                spec, sp.name, (long long)sp.n_query, (long long)sp.n_db);
        goto done;
    }
    cli_note_precision("eval", precision);
    if (xp_net_codes(net, d, sp.query, sp.n_query, sp.db, sp.n_db, precision, &codes, &xe) !=
        DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s: %s\n", model, xe.msg);
        goto done;
    }
    *q = codes.query;
    *db = codes.db;
    memset(&codes.query, 0, sizeof codes.query);
    memset(&codes.db, 0, sizeof codes.db);
    const int64_t *sets[2] = {sp.query, sp.db};
    int64_t counts[2] = {sp.n_query, sp.n_db};
    labels_buf *labs[2] = {ql, dl}, *cams[2] = {qc, dc};
    for (int k = 0; k < 2; k++) {
        int64_t n = counts[k];
        labs[k]->n = (size_t)n;
        if (d->label_kind == DS_LABELS_MULTI) {
            size_t words = xp_multi_hot_words((size_t)d->n_classes);
            labs[k]->words = words;
            labs[k]->cols = (size_t)d->n_classes;
            labs[k]->multi = calloc((size_t)n * words + 1, sizeof(uint64_t));
            if (!labs[k]->multi)
                goto nomem;
            xp_pack_multi_hot(d->multi, (size_t)d->n_classes, sets[k], (size_t)n, labs[k]->multi);
        } else {
            labs[k]->labels = malloc(sizeof(int32_t) * (size_t)n);
            if (!labs[k]->labels)
                goto nomem;
            for (int64_t i = 0; i < n; i++)
                labs[k]->labels[i] = d->labels[sets[k][i]];
        }
        if (d->cams) {
            cams[k]->n = (size_t)n;
            cams[k]->labels = malloc(sizeof(int32_t) * (size_t)n);
            if (!cams[k]->labels)
                goto nomem;
            for (int64_t i = 0; i < n; i++)
                cams[k]->labels[i] = d->cams[sets[k][i]];
        }
    }
    if (d->cams && *single < 0)
        *single = d->kind == DS_KIND_CUHK03 ? 10 : 0;
    if (weighted) { /* |w| in significance order */
        *wts = codes.weights;
        *wcount = codes.bits;
        codes.weights = NULL;
    }
    char buf[32];
    rp_context_set(rep, "model", model);
    rp_context_set(rep, "dataset", spec);
    rp_context_set(rep, "dataset_name", d->name);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_crc32", buf);
    rp_context_set(rep, "protocol", sp.name);
    rp_context_set(rep, "precision", nn_precision_name(precision));
    rp_context_set(rep, "onednn_isa", nn_onednn_isa());
    rc = 0;
    goto done;
nomem:
    fprintf(stderr, "drsch eval: out of memory for the labels of %s\n", d->name);
done:
    xp_codes_free(&codes);
    nn_net_free(net);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}

/* One evaluated length: the results are printed only once every length is done. */
typedef struct {
    uint32_t bits;
    ev_retrieval r;
    ev_reid reid;
} eval_row;

/* The kind of a labels file, for the error when query and database labels differ. */
static void describe_labels(const labels_buf *l, char *buf, size_t cap)
{
    if (l->labels)
        snprintf(buf, cap, "one label per row (N,)");
    else
        snprintf(buf, cap, "%zu labels per row (multi-hot)", l->cols);
}

/* Prints the table (and the lines below it) of the evaluated rows to stdout. */
static void print_table(const eval_row *rows, int n, int reid, int64_t topk, int64_t radius,
                        size_t db_n)
{
    if (reid) {
        printf("%6s %8s %8s %8s %8s %8s %9s\n", "bits", "mAP", "rank-1", "rank-5", "rank-10",
               "rank-20", "queries");
        for (int b = 0; b < n; b++) {
            const ev_reid *r = &rows[b].reid;
            printf("%6u %8.4f %8.4f %8.4f %8.4f %8.4f %9zu\n", rows[b].bits, r->map, r->cmc[0],
                   r->cmc[4], r->cmc[9], r->cmc[19], r->queries);
        }
        const ev_reid *r = &rows[0].reid;
        printf("%zu of %zu queries have no true match in the gallery (left out of mAP and CMC)\n",
               r->queries_skipped, r->queries + r->queries_skipped);
        return;
    }
    char hk[32], hp[32], hr[32];
    snprintf(hk, sizeof hk, "mAP@%lld", (long long)topk);
    snprintf(hp, sizeof hp, "P@%lld", (long long)topk);
    snprintf(hr, sizeof hr, "P@r%lld", (long long)radius);
    int wk = strlen(hk) > 9 ? (int)strlen(hk) : 9, wp = strlen(hp) > 9 ? (int)strlen(hp) : 9;
    printf("%6s %9s %10s", "bits", "mAP@all", "mAP(ties)");
    if (topk)
        printf(" %*s %*s", wk, hk, wp, hp);
    printf(" %9s\n", hr);
    for (int b = 0; b < n; b++) {
        const ev_retrieval *r = &rows[b].r;
        char pr[16] = "n/a";
        if (r->precision_radius >= 0)
            snprintf(pr, sizeof pr, "%.4f", r->precision_radius);
        printf("%6u %9.4f %10.4f", rows[b].bits, r->map_all, r->map_tie_aware);
        if (topk)
            printf(" %*.4f %*.4f", wk, r->map_at_k, wp, r->precision_at_k);
        printf(" %9s\n", pr);
    }
    const ev_retrieval *r = &rows[0].r;
    printf("%zu of %zu queries have no relevant item (counted as AP 0)\n",
           r->queries_without_relevant, r->queries);
    if (topk && (uint64_t)topk > db_n)
        printf("K = %lld is more than the %zu database items: P@K divides by %zu (the items "
               "retrieved) and "
               "mAP@K is mAP@all\n",
               (long long)topk, db_n, db_n);
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"codes", required_argument, 0, 'c'},
        {"db", required_argument, 0, 'd'},
        {"qlabels", required_argument, 0, 'l'},
        {"dblabels", required_argument, 0, 'L'},
        {"qcams", required_argument, 0, 'm'},
        {"dbcams", required_argument, 0, 'M'},
        {"bits", required_argument, 0, 'b'},
        {"weights", required_argument, 0, 'w'},
        {"topk", required_argument, 0, 'k'},
        {"radius", required_argument, 0, 'r'},
        {"single-shot", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 't'},
        {"json", required_argument, 0, 'j'},
        {"model", required_argument, 0, 'O'},
        {"dataset", required_argument, 0, 'D'},
        {"protocol", required_argument, 0, 'P'},
        {"testset", required_argument, 0, 'T'},
        {"weighted", no_argument, 0, 'W'},
        {"precision", required_argument, 0, 'p'},
        {"size", required_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *qc = NULL, *dbc = NULL, *qlp = NULL, *dlp = NULL, *qcam = NULL, *dcam = NULL,
               *bits_s = NULL, *wpath = NULL, *json = NULL, *model = NULL, *spec = "fashion-mnist",
               *size = NULL;
    int64_t topk = 1000, radius = 2, single = -1, seed = 1, threads = 0, testset = 1;
    xp_protocol proto = XP_PROTO_AUTO;
    nn_precision precision = NN_PRECISION_F32;
    const char *precision_s = NULL;
    int c, weighted = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'c': qc = optarg; break;
        case 'd': dbc = optarg; break;
        case 'l': qlp = optarg; break;
        case 'L': dlp = optarg; break;
        case 'm': qcam = optarg; break;
        case 'M': dcam = optarg; break;
        case 'b': bits_s = optarg; break;
        case 'w': wpath = optarg; break;
        case 'j': json = optarg; break;
        case 'k': bad = cli_parse_i64("eval", "--topk", optarg, 0, INT64_MAX, &topk); break;
        case 'r': bad = cli_parse_i64("eval", "--radius", optarg, 0, HM_MAX_BITS, &radius); break;
        case 's': bad = cli_parse_i64("eval", "--single-shot", optarg, 0, 100000, &single); break;
        case 'S': bad = cli_parse_i64("eval", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case 't': bad = cli_parse_i64("eval", "--threads", optarg, 0, 1024, &threads); break;
        case 'O': model = optarg; break;
        case 'D': spec = optarg; break;
        case 'P': bad = xp_protocol_parse("eval", optarg, &proto); break;
        case 'T': bad = cli_parse_i64("eval", "--testset", optarg, 1, 20, &testset); break;
        case 'W': weighted = 1; break;
        case 'z': {
            int h, w;
            size = optarg;
            bad = xp_parse_size("eval", optarg, &h, &w);
            break;
        }
        case 'p':
            precision_s = optarg;
            bad = cli_parse_precision("eval", optarg, &precision);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("eval");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch eval: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (size && xp_size_check("eval", spec))
        return EXIT_USAGE;
    if (model && (qc || dbc || qlp || dlp || qcam || dcam || wpath)) {
        fprintf(stderr, "drsch eval: --model evaluates a dataset; --codes, --db, --qlabels, "
                        "--dblabels, --qcams, "
                        "--dbcams and --weights are for .npy inputs\n");
        return EXIT_USAGE;
    }
    if (!model && !qc && !dbc && !qlp && !dlp) {
        fprintf(stderr, "drsch eval: give --model FILE, or --codes, --db, --qlabels and --dblabels "
                        "(.npy files)\n");
        return EXIT_USAGE;
    }
    if (!model) {
        const char *missing[4];
        int nmissing = 0;
        if (!qc)
            missing[nmissing++] = "--codes FILE";
        if (!dbc)
            missing[nmissing++] = "--db FILE";
        if (!qlp)
            missing[nmissing++] = "--qlabels FILE";
        if (!dlp)
            missing[nmissing++] = "--dblabels FILE";
        if (nmissing) {
            in_report_missing("eval", missing, nmissing, NULL);
            return EXIT_USAGE;
        }
    }
    if (!model && precision_s) {
        fprintf(
            stderr,
            "drsch eval: --precision sets how --model encodes; .npy codes are already encoded\n");
        return EXIT_USAGE;
    }
    if (!model && weighted) {
        fprintf(stderr, "drsch eval: --weighted uses a model's bit weights; with .npy codes give "
                        "--weights FILE\n");
        return EXIT_USAGE;
    }
    if (!qcam != !dcam) {
        in_report_missing("eval", (const char *const[]){qcam ? "--dbcams FILE" : "--qcams FILE"}, 1,
                          qcam ? " with --qcams" : " with --dbcams");
        return EXIT_USAGE;
    }
    /* Before any work: the report can be written, the inputs are files. */
    if (json && cli_check_output_file("eval", "--json", json))
        return EXIT_USAGE;
    {
        const char *flags[] = {"--model",    "--codes", "--db",     "--qlabels",
                               "--dblabels", "--qcams", "--dbcams", "--weights"};
        const char *paths[] = {model, qc, dbc, qlp, dlp, qcam, dcam, wpath};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
            if (paths[i] && in_check_input("eval", flags[i], paths[i]))
                return 1;
    }
    drsch_error herr;
    if (hm_isa_init(&herr) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", herr.msg);
        return 1;
    }
    int nthreads = cli_set_threads((int)threads);

    int rc = 1;
    hm_codes q = {0}, db = {0};
    labels_buf ql = {0}, dl = {0}, qcb = {0}, dcb = {0};
    hm_weights *hw = NULL;
    float *wts = NULL;
    size_t wcount = 0;
    eval_row rows[64];
    int nrows = 0;
    rp_report *rep = rp_create();
    if (!rep) {
        fprintf(stderr, "drsch eval: out of memory\n");
        goto done;
    }
    if (model) {
        if (inputs_from_model(model, spec, proto, testset, (uint64_t)seed, weighted, precision, &q,
                              &db, &ql, &dl, &qcb, &dcb, &wts, &wcount, &single, size, rep))
            goto done;
    } else if (npy_load_codes(qc, 0, &q, &herr) != DRSCH_OK ||
               npy_load_codes(dbc, 0, &db, &herr) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", herr.msg);
        goto done;
    }
    if (q.bits != db.bits) {
        fprintf(stderr, "drsch eval: code lengths differ: %s has %zu bytes per code, %s %zu\n", qc,
                hm_bytes_for_bits(q.bits), dbc, hm_bytes_for_bits(db.bits));
        goto done;
    }
    if (q.n == 0 || db.n == 0) {
        fprintf(stderr, "drsch eval: %s: no %s codes\n",
                q.n == 0 ? (qc ? qc : model) : (dbc ? dbc : model),
                q.n == 0 ? "query" : "database");
        goto done;
    }
    if (!model && (load_labels(qlp, q.n, &ql) || load_labels(dlp, db.n, &dl)))
        goto done;
    if (!!ql.labels != !!dl.labels || ql.cols != dl.cols) {
        char a[64], b[64];
        describe_labels(&ql, a, sizeof a);
        describe_labels(&dl, b, sizeof b);
        fprintf(
            stderr,
            "drsch eval: query and database labels differ: %s has %s, %s has %s; they must be of "
            "the same kind and width\n",
            qlp ? qlp : "queries", a, dlp ? dlp : "database", b);
        goto done;
    }
    if (!model && qcam &&
        (load_labels(qcam, q.n, &qcb) || load_labels(dcam, db.n, &dcb) || !qcb.labels ||
         !dcb.labels || !ql.labels)) {
        if (qcb.n && (!qcb.labels || !dcb.labels || !ql.labels))
            fprintf(stderr, "drsch eval: re-id needs int32 identities and int32 camera ids\n");
        goto done;
    }
    int reid = qcb.labels != NULL;
    if (single < 0)
        single = 0;
    uint32_t full = q.bits;
    if (wpath && in_load_weights("eval", wpath, 1, full, &wts, &wcount))
        goto done;
    if (wts)
        full = (uint32_t)wcount;
    uint32_t bits_list[64];
    int nbits = 1;
    bits_list[0] = full;
    if (bits_s && (nbits = parse_bits_list(bits_s, full, bits_list, 64)) < 0) {
        rc = EXIT_USAGE; /* a bad --bits is a usage error (status 2) even once the model is known */
        goto done;
    }

    if (!model) {
        rp_context_set(rep, "queries_file", qc);
        rp_context_set(rep, "database_file", dbc);
    }
    rp_context_set(
        rep, "tie_rule",
        "(distance, database index); tie-aware mAP = expectation under random tie order");
    rp_context_set(rep, "empty_query_rule", "queries without a relevant item count as AP 0");
    rp_context_set(rep, "precision_at_k_rule",
                   "relevant items within the top K / min(K, database size)");
    rp_context_set(rep, "ranking", wts ? "weighted hamming" : "hamming");
    if (reid) {
        rp_context_set(rep, "reid_rule",
                       "gallery items with the query's identity and camera removed; "
                       "queries without a true match skipped");
        rp_context_set_num(rep, "single_shot_repeats", (double)single);
        rp_context_set_num(rep, "seed", (double)seed);
    }
    for (int b = 0; b < nbits; b++) {
        hm_codes tq = {0}, tdb = {0};
        if (xp_codes_prefix(&q, bits_list[b], &tq) || xp_codes_prefix(&db, bits_list[b], &tdb)) {
            fprintf(stderr, "drsch eval: out of memory\n");
            hm_codes_free(&tq);
            goto done;
        }
        hm_weights_free(hw);
        hw = NULL;
        if (wts && hm_weights_create(&hw, wts, bits_list[b], &herr) != DRSCH_OK) {
            fprintf(stderr, "drsch eval: %s: %s\n", wpath ? wpath : model, herr.msg);
            hm_codes_free(&tq);
            hm_codes_free(&tdb);
            goto done;
        }
        char name[128];
        drsch_error eerr;
        double t0 = cli_now();
        drsch_status st;
        eval_row *row = &rows[nrows];
        memset(row, 0, sizeof *row);
        row->bits = bits_list[b];
        if (reid) {
            ev_reid *r = &row->reid;
            st = ev_reid_eval(&tq, ql.labels, qcb.labels, &tdb, dl.labels, dcb.labels, hw,
                              (int)single, (uint64_t)seed, r, &eerr);
            double dt = cli_now() - t0;
            if (st == DRSCH_OK) {
                snprintf(name, sizeof name, "eval/reid/bits:%u", bits_list[b]);
                rp_entry *e = rp_add(rep, name, 1, dt * 1e3, dt * 1e3 * nthreads, "ms", nthreads);
                rp_counter(e, "mAP", r->map);
                for (int k = 0; k < EV_CMC_RANKS; k++) {
                    char cn[16];
                    snprintf(cn, sizeof cn, "rank-%d", k + 1);
                    rp_counter(e, cn, r->cmc[k]);
                }
                rp_counter(e, "queries", (double)r->queries);
                rp_counter(e, "queries_skipped", (double)r->queries_skipped);
            }
        } else {
            ev_options opt = {.topk = (size_t)topk, .radius = (uint32_t)radius, .pr_curve = 0};
            ev_retrieval *r = &row->r;
            st = ev_retrieval_eval(
                &tq,
                &(ev_labels){.n = ql.n, .labels = ql.labels, .multi = ql.multi, .words = ql.words},
                &tdb,
                &(ev_labels){.n = dl.n, .labels = dl.labels, .multi = dl.multi, .words = dl.words},
                hw, &opt, r, &eerr);
            double dt = cli_now() - t0;
            if (st == DRSCH_OK) {
                snprintf(name, sizeof name, "eval/retrieval/bits:%u", bits_list[b]);
                rp_entry *e = rp_add(rep, name, 1, dt * 1e3, dt * 1e3 * nthreads, "ms", nthreads);
                rp_counter(e, "mAP", r->map_all);
                rp_counter(e, "mAP_tie_aware", r->map_tie_aware);
                if (topk) {
                    rp_counter(e, "mAP_at_K", r->map_at_k);
                    rp_counter(e, "P_at_K", r->precision_at_k);
                    rp_counter(e, "K", (double)topk);
                }
                if (r->precision_radius >= 0) {
                    rp_counter(e, "P_at_radius", r->precision_radius);
                    rp_counter(e, "radius", (double)radius);
                }
                rp_counter(e, "queries", (double)r->queries);
                rp_counter(e, "queries_without_relevant", (double)r->queries_without_relevant);
            }
        }
        hm_codes_free(&tq);
        hm_codes_free(&tdb);
        if (st != DRSCH_OK) {
            fprintf(stderr, "drsch eval: %s\n", eerr.msg);
            goto done;
        }
        nrows++;
    }
    /* Every length evaluated: now the table, then the report. */
    print_table(rows, nrows, reid, topk, radius, db.n);
    fflush(stdout);
    if (json) {
        drsch_error rerr;
        if (rp_write(rep, json, &rerr) != DRSCH_OK) {
            fprintf(stderr, "drsch eval: %s\n", rerr.msg);
            goto done;
        }
    }
    rc = 0;
done:
    for (int b = 0; b < nrows; b++)
        ev_retrieval_free(&rows[b].r);
    rp_free(rep);
    hm_weights_free(hw);
    free(wts);
    free(ql.labels);
    free(ql.multi);
    free(dl.labels);
    free(dl.multi);
    free(qcb.labels);
    free(qcb.multi);
    free(dcb.labels);
    free(dcb.multi);
    hm_codes_free(&q);
    hm_codes_free(&db);
    return rc;
}
