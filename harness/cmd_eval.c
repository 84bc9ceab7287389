/* drsch eval: retrieval metrics (mAP@all, tie-aware mAP, mAP@K, P@K, P@radius) or re-id
 * metrics (CMC, mAP, mINP) of binary codes, at one or more prefix lengths, by the rules of
 * harness/metrics.h. Two sources of codes, one evaluation: a trained model encoding a dataset's
 * protocol queries and database (--model), or .npy files made by drsch or any other tool
 * (--codes ...), so results from different tools are measured identically. With --model the
 * encoding runs in f32 unless --precision bf16 asks for bf16; reports record which. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "experiment.h"
#include "flags.h"
#include "train.h"
#include "commands.h"
#include "hamming.h"
#include "inputs.h"
#include "metrics.h"
#include "npy.h"
#include "report.h"

static int parse_bits_list(const char *s, uint32_t max_bits, uint32_t *out, int cap)
{
    int n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || (uint32_t)v > max_bits || n == cap || (*end && *end != ',')) {
            fprintf(stderr,
                    "drsch eval: --bits: '%s' must be a comma-separated list of lengths 1..%u\n", s,
                    max_bits);
            return -1;
        }
        out[n++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* One evaluated length: the results are printed only once every length is done. */
typedef struct {
    uint32_t bits;
    ev_retrieval r;
    ev_reid reid;
    double weight_step; /* the weights' quantisation step (weighted ranking), else 0 */
} eval_row;

/* The kind of a labels file, for the error when query and database labels differ. */
static void describe_labels(const in_labels *l, char *buf, size_t cap)
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
        printf("%6s %8s %8s %8s %8s %8s %8s %9s\n", "bits", "mAP", "mINP", "rank-1", "rank-5",
               "rank-10", "rank-20", "queries");
        for (int b = 0; b < n; b++) {
            const ev_reid *r = &rows[b].reid;
            printf("%6u %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %9zu\n", rows[b].bits, r->map, r->minp,
                   r->cmc[0], r->cmc[4], r->cmc[9], r->cmc[19], r->queries);
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
               "retrieved) and mAP@K is mAP@all\n",
               (long long)topk, db_n, db_n);
}

/* The line below the table of weighted ranking: each length's quantisation step. */
static void print_weight_steps(const eval_row *rows, int n)
{
    if (n < 1 || !(rows[0].weight_step > 0))
        return;
    printf("weights quantised to multiples of");
    for (int b = 0; b < n; b++)
        printf("%s 2^%d (step %g) at %u bits", b ? "," : "", ilogb(rows[b].weight_step),
               rows[b].weight_step, rows[b].bits);
    printf(", so equal distances tie exactly\n");
}

#define N_FLAGS 30 /* room in eval_args.flags for the table's rows */
#define GO_ON -1   /* a step's result when the command goes on (else its exit status) */
#define MAX_LENGTHS 64

/* The command line of drsch eval. */
typedef struct {
    const char *qc, *dbc, *qlp, *dlp, *qcam, *dcam, *bits_s, *wpath, *json, *model, *spec, *size;
    int64_t topk, radius, single, seed, threads, testset, weight_power;
    xp_protocol proto;
    nn_precision precision;
    int weighted, nthreads; /* nthreads: the threads the run has */
    int gallery;            /* ev_reid_gallery */
    int bit_order;          /* xp_bit_order */
    cli_flag flags[N_FLAGS];
} eval_args;

/* What the evaluation reads and makes. */
typedef struct {
    hm_codes q, db;
    in_labels ql, dl, qcb, dcb; /* labels, camera ids */
    float *wts;                 /* bit weights (wcount), or NULL for Hamming ranking */
    size_t wcount;
    int64_t single; /* --single-shot, settled */
    int reid;
    uint32_t lengths[MAX_LENGTHS];
    int nlengths;
    eval_row rows[MAX_LENGTHS];
    int nrows;
    rp_report *rep;
} eval_state;

static void make_flags(eval_args *a)
{
    const cli_flag t[] = {
        CLI_SECTION("a model's codes (--model):"),
        CLI_STRING("model", &a->model, "FILE",
                   "model written by drsch train: encodes the protocol's queries and database"),
        CLI_STRING("dataset", &a->spec, "SPEC", "the dataset, as drsch train"),
        CLI_CUSTOM("protocol", &a->proto, in_flag_protocol, "P",
                   XP_PROTOCOL_NAMES " (default auto)"),
        CLI_INT("testset", &a->testset, 1, 20, "K", "CUHK03 classic split 1..20"),
        CLI_CUSTOM("size", &a->size, in_flag_size_text, "HxW",
                   "resize NUS-WIDE / CUHK03 images on loading, as the model was trained (default "
                   "32x32 / 160x60)"),
        CLI_SWITCH("weighted", &a->weighted, 1,
                   "rank by the model's bit weights: the sum of |w|^P over differing bits, P of "
                   "--weight-power (default: Hamming distance)"),
        CLI_INT("weight-power", &a->weight_power, 1, 2, "P",
                "weighted ranking (--weighted, --weights): 2 ranks by the distance the loss "
                "learned (sum of w^2 over differing bits), 1 by sum of |w|; with --weights FILE, "
                "2 squares the file's weights"),
        CLI_CUSTOM("precision", &a->precision, in_flag_precision, "P",
                   "f32 | bf16 arithmetic of the encoder (default f32)"),
        CLI_CHOICE("bit-order", &a->bit_order, XP_BIT_ORDER_CHOICES, "O",
                   "the order of the model's bits, which --bits truncates and --weighted sums: "
                   "saved = the model file's (drsch's: |w| discounted for bits that repeat the "
                   "bits before them), weight = by |w|, the paper's: the first b bits are the b of "
                   "largest learned weight"),
        CLI_SECTION(".npy codes (without --model):"),
        CLI_STRING("codes", &a->qc, "FILE",
                   "query codes (--codes, --db, --qlabels and --dblabels are all required)"),
        CLI_STRING("db", &a->dbc, "FILE", "database / gallery codes"),
        CLI_STRING("qlabels", &a->qlp, "FILE", "query labels"),
        CLI_STRING("dblabels", &a->dlp, "FILE", "database labels"),
        CLI_STRING("qcams", &a->qcam, "FILE",
                   "query camera ids, int32 (N,): re-id mode (CMC + mAP)"),
        CLI_STRING("dbcams", &a->dcam, "FILE", "gallery camera ids (with --qcams)"),
        CLI_STRING("weights", &a->wpath, "FILE",
                   "float32 or float64 (B,) bit weights, all finite, 1 <= B <= bits per code: rank "
                   "by weighted Hamming distance over the first B bits"),
        CLI_SECTION("evaluation:"),
        CLI_STRING("bits", &a->bits_s, "LIST",
                   "prefix lengths to evaluate, e.g. 12,24,32,48 (default: full)"),
        CLI_INT("topk", &a->topk, 0, (double)INT64_MAX, "K", "K of mAP@K and P@K; 0 = off"),
        CLI_INT("radius", &a->radius, 0, HM_MAX_BITS, "R",
                "Hamming radius of the precision@radius metric"),
        CLI_INT("single-shot", &a->single, 0, 100000, "N",
                "re-id: CMC from N seeded single-gallery-shot samplings (default 10 for CUHK03 "
                "with --model, else 0 = whole gallery)"),
        CLI_CHOICE("reid-gallery", &a->gallery, EV_REID_GALLERY_CHOICES, "G",
                   "re-id: cross-camera ranks the gallery for each query (CUHK03 classic: first "
                   "camera against second); all pools queries and gallery, every image a query "
                   "against the others (torchreid's classic CUHK03)"),
        CLI_INT("seed", &a->seed, 0, (double)INT64_MAX, "S",
                "protocol and single-shot seed (default 1, as drsch train)"),
        CLI_INT("threads", &a->threads, 0, 1024, "T",
                "OpenMP threads, 0 = OMP_NUM_THREADS or all cores"),
        CLI_STRING("json", &a->json, "FILE",
                   "write a Google Benchmark-compatible report (metrics as counters)"),
        CLI_END,
    };
    _Static_assert(sizeof t <= sizeof a->flags, "eval_args.flags is too small for the table");
    memcpy(a->flags, t, sizeof t);
}

static void usage(FILE *f, const cli_flag *flags)
{
    fprintf(f,
            "usage: drsch eval --model MODEL [--dataset SPEC] [options]\n"
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
            "Re-id: mAP, mINP, CMC rank-1/5/10/20 and the queries with a true match; a line\n"
            "below counts the queries without one (left out).\n");
    cli_flags_help(f, flags);
}

/* Parses the command line into `a`: GO_ON, or the exit status (0 after --help). */
static int parse_args(int argc, char **argv, eval_args *a)
{
    *a = (eval_args){.spec = "fashion-mnist",
                     .topk = 1000,
                     .radius = 2,
                     .single = -1,
                     .seed = 1,
                     .testset = 1,
                     .weight_power = 1,
                     .proto = XP_PROTO_AUTO,
                     .precision = NN_PRECISION_F32};
    make_flags(a);
    int rc = cli_flags_parse("eval", a->flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        usage(stdout, a->flags);
        return 0;
    }
    return rc ? EXIT_USAGE : GO_ON;
}

/* The flags fit together, the report can be written and the inputs are files; then the threads
 * and the Hamming kernels. GO_ON, or the exit status. */
static int check_args(eval_args *a)
{
    if (a->size && in_size_check("eval", a->spec))
        return EXIT_USAGE;
    if (a->model && (a->qc || a->dbc || a->qlp || a->dlp || a->qcam || a->dcam || a->wpath)) {
        fprintf(stderr, "drsch eval: --model evaluates a dataset; --codes, --db, --qlabels, "
                        "--dblabels, --qcams, --dbcams and --weights are for .npy inputs\n");
        return EXIT_USAGE;
    }
    if (!a->model && !a->qc && !a->dbc && !a->qlp && !a->dlp) {
        fprintf(stderr, "drsch eval: give --model FILE, or --codes, --db, --qlabels and --dblabels "
                        "(.npy files)\n");
        return EXIT_USAGE;
    }
    if (!a->model) {
        static const char *const needed[] = {"--codes FILE", "--db FILE", "--qlabels FILE",
                                             "--dblabels FILE"};
        const char *given[] = {a->qc, a->dbc, a->qlp, a->dlp}, *missing[4];
        int nmissing = 0;
        for (int i = 0; i < 4; i++)
            if (!given[i])
                missing[nmissing++] = needed[i];
        if (nmissing) {
            in_report_missing("eval", missing, nmissing, NULL);
            return EXIT_USAGE;
        }
    }
    if (!a->model && cli_flag_given(a->flags, "bit-order")) {
        fprintf(stderr, "drsch eval: --bit-order sets the order --model encodes in; .npy codes "
                        "are already encoded (drsch encode --bit-order)\n");
        return EXIT_USAGE;
    }
    if (!a->model && cli_flag_given(a->flags, "precision")) {
        fprintf(
            stderr,
            "drsch eval: --precision sets how --model encodes; .npy codes are already encoded\n");
        return EXIT_USAGE;
    }
    if (!a->model && a->weighted) {
        fprintf(stderr, "drsch eval: --weighted uses a model's bit weights; with .npy codes give "
                        "--weights FILE\n");
        return EXIT_USAGE;
    }
    if (!a->model && !a->qcam && cli_flag_given(a->flags, "reid-gallery")) {
        fprintf(stderr, "drsch eval: --reid-gallery is for re-id: give --qcams and --dbcams\n");
        return EXIT_USAGE;
    }
    if (cli_flag_given(a->flags, "weight-power") && !a->weighted && !a->wpath) {
        fprintf(stderr, "drsch eval: --weight-power is for weighted ranking: give --weighted "
                        "(--model) or --weights FILE\n");
        return EXIT_USAGE;
    }
    if (!a->qcam != !a->dcam) {
        in_report_missing("eval", (const char *const[]){a->qcam ? "--dbcams FILE" : "--qcams FILE"},
                          1, a->qcam ? " with --qcams" : " with --dbcams");
        return EXIT_USAGE;
    }
    /* Before any work: the report can be written, the inputs are files. */
    if (a->json && cli_check_output_file("eval", "--json", a->json))
        return EXIT_USAGE;
    const char *flags[] = {"--model",    "--codes", "--db",     "--qlabels",
                           "--dblabels", "--qcams", "--dbcams", "--weights"};
    const char *paths[] = {a->model, a->qc, a->dbc, a->qlp, a->dlp, a->qcam, a->dcam, a->wpath};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (paths[i] && in_check_input("eval", flags[i], paths[i]))
            return 1;
    drsch_error herr;
    if (hm_isa_init(&herr) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", herr.msg);
        return 1;
    }
    a->nthreads = cli_set_threads((int)a->threads);
    return GO_ON;
}

/* The labels (and camera ids) of the protocol's queries and database, as the file mode reads
 * them. Returns 0, or -1 when out of memory. */
static int model_labels(const ds_dataset *d, const ds_split *sp, eval_state *s)
{
    const int64_t *sets[2] = {sp->query, sp->db};
    int64_t counts[2] = {sp->n_query, sp->n_db};
    in_labels *labs[2] = {&s->ql, &s->dl}, *cams[2] = {&s->qcb, &s->dcb};
    for (int k = 0; k < 2; k++) {
        int64_t n = counts[k];
        labs[k]->n = (size_t)n;
        if (d->label_kind == DS_LABELS_MULTI) {
            size_t words = xp_multi_hot_words((size_t)d->n_classes);
            labs[k]->words = words;
            labs[k]->cols = (size_t)d->n_classes;
            labs[k]->multi = calloc((size_t)n * words + 1, sizeof(uint64_t));
            if (!labs[k]->multi)
                return -1;
            xp_pack_multi_hot(d->multi, (size_t)d->n_classes, sets[k], (size_t)n, labs[k]->multi);
        } else {
            labs[k]->labels = malloc(sizeof(int32_t) * (size_t)n);
            if (!labs[k]->labels)
                return -1;
            for (int64_t i = 0; i < n; i++)
                labs[k]->labels[i] = d->labels[sets[k][i]];
        }
        if (d->cams) {
            cams[k]->n = (size_t)n;
            cams[k]->labels = malloc(sizeof(int32_t) * (size_t)n);
            if (!cams[k]->labels)
                return -1;
            for (int64_t i = 0; i < n; i++)
                cams[k]->labels[i] = d->cams[sets[k][i]];
        }
    }
    return 0;
}

/* Model mode: encodes the protocol's queries and database with the model and fills the same
 * inputs the file mode reads. Returns 0 or -1 after printing why. */
static int inputs_from_model(const eval_args *a, eval_state *s)
{
    nn_net *net = NULL;
    ds_dataset *d = NULL;
    ds_split sp = {0};
    xp_codes codes = {0};
    drsch_error ne;
    drsch_error de;
    drsch_error xe;
    int rc = -1;
    if (nn_model_load(&net, a->model, 100, 0, &ne) != DRSCH_OK ||
        xp_apply_bit_order(net, (xp_bit_order)a->bit_order, &ne) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", ne.msg);
        goto done;
    }
    int xc;
    if (in_load_dataset("eval", a->spec, a->size, &d, &xc))
        goto done;
    if (xp_make_split(d, a->proto, (uint64_t)a->seed, (int)a->testset - 1, NULL, &sp, &de) !=
        DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s: %s\n", a->spec, de.msg);
        goto done;
    }
    if (sp.n_query == 0 || sp.n_db == 0) {
        fprintf(stderr,
                "drsch eval: %s: the protocol '%s' gives %lld queries and %lld database images\n",
                a->spec, sp.name, (long long)sp.n_query, (long long)sp.n_db);
        goto done;
    }
    cli_note_precision("eval", a->precision);
    if (xp_net_codes(net, d, sp.query, sp.n_query, sp.db, sp.n_db, a->precision,
                     (int)a->weight_power, &codes, &xe) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s: %s\n", a->model, xe.msg);
        goto done;
    }
    s->q = codes.query;
    s->db = codes.db;
    memset(&codes.query, 0, sizeof codes.query);
    memset(&codes.db, 0, sizeof codes.db);
    if (model_labels(d, &sp, s)) {
        fprintf(stderr, "drsch eval: out of memory for the labels of %s\n", d->name);
        goto done;
    }
    if (d->cams && s->single < 0)
        s->single = d->kind == DS_KIND_CUHK03 ? 10 : 0;
    if (a->weighted) { /* |w|^P in significance order */
        s->wts = codes.weights;
        s->wcount = codes.bits;
        codes.weights = NULL;
    }
    char buf[32];
    rp_context_set(s->rep, "model", a->model);
    rp_context_set(s->rep, "dataset", a->spec);
    rp_context_set(s->rep, "dataset_name", d->name);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(s->rep, "dataset_crc32", buf);
    rp_context_set(s->rep, "protocol", sp.name);
    rp_context_set(s->rep, "precision", nn_precision_name(a->precision));
    rp_context_set(s->rep, "onednn_isa", nn_onednn_isa());
    rc = 0;
done:
    xp_codes_free(&codes);
    nn_net_free(net);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}

/* Reads the codes, labels, camera ids and weights (from the model or the files) and settles the
 * lengths to evaluate: 0, or the exit status after printing why. */
static int load_inputs(const eval_args *a, eval_state *s)
{
    drsch_error herr;
    if (a->model) {
        if (inputs_from_model(a, s))
            return 1;
    } else if (npy_load_codes(a->qc, 0, &s->q, &herr) != DRSCH_OK ||
               npy_load_codes(a->dbc, 0, &s->db, &herr) != DRSCH_OK) {
        fprintf(stderr, "drsch eval: %s\n", herr.msg);
        return 1;
    }
    const hm_codes *q = &s->q, *db = &s->db;
    if (q->bits != db->bits) {
        fprintf(stderr, "drsch eval: code lengths differ: %s has %zu bytes per code, %s %zu\n",
                a->qc, hm_bytes_for_bits(q->bits), a->dbc, hm_bytes_for_bits(db->bits));
        return 1;
    }
    if (q->n == 0 || db->n == 0) {
        fprintf(stderr, "drsch eval: %s: no %s codes\n",
                q->n == 0 ? (a->qc ? a->qc : a->model) : (a->dbc ? a->dbc : a->model),
                q->n == 0 ? "query" : "database");
        return 1;
    }
    if (!a->model && (in_load_labels("eval", a->qlp, q->n, &s->ql) ||
                      in_load_labels("eval", a->dlp, db->n, &s->dl)))
        return 1;
    if (!!s->ql.labels != !!s->dl.labels || s->ql.cols != s->dl.cols) {
        char k1[64], k2[64];
        describe_labels(&s->ql, k1, sizeof k1);
        describe_labels(&s->dl, k2, sizeof k2);
        fprintf(
            stderr,
            "drsch eval: query and database labels differ: %s has %s, %s has %s; they must be of "
            "the same kind and width\n",
            a->qlp ? a->qlp : "queries", k1, a->dlp ? a->dlp : "database", k2);
        return 1;
    }
    if (!a->model && a->qcam &&
        (in_load_labels("eval", a->qcam, q->n, &s->qcb) ||
         in_load_labels("eval", a->dcam, db->n, &s->dcb) || !s->qcb.labels || !s->dcb.labels ||
         !s->ql.labels)) {
        if (s->qcb.n && (!s->qcb.labels || !s->dcb.labels || !s->ql.labels))
            fprintf(stderr, "drsch eval: re-id needs int32 identities and int32 camera ids\n");
        return 1;
    }
    s->reid = s->qcb.labels != NULL;
    if (!s->reid && cli_flag_given(a->flags, "reid-gallery")) {
        fprintf(stderr, "drsch eval: --reid-gallery: %s has no camera ids (not a re-id dataset)\n",
                a->spec);
        return EXIT_USAGE;
    }
    if (s->single < 0)
        s->single = 0;
    uint32_t full = q->bits;
    if (a->wpath &&
        in_load_weights("eval", a->wpath, 1, full, (int)a->weight_power, &s->wts, &s->wcount))
        return 1;
    if (s->wts)
        full = (uint32_t)s->wcount;
    s->nlengths = 1;
    s->lengths[0] = full;
    if (a->bits_s && (s->nlengths = parse_bits_list(a->bits_s, full, s->lengths, MAX_LENGTHS)) < 0)
        return EXIT_USAGE; /* a bad --bits is a usage error (status 2) even once the model is known
                            */
    return 0;
}

/* The rules the report's numbers follow, in its context. */
static void report_context(const eval_args *a, const eval_state *s)
{
    if (!a->model) {
        rp_context_set(s->rep, "queries_file", a->qc);
        rp_context_set(s->rep, "database_file", a->dbc);
    }
    rp_context_set(
        s->rep, "tie_rule",
        "(distance, database index); tie-aware mAP = expectation under random tie order");
    rp_context_set(s->rep, "empty_query_rule", "queries without a relevant item count as AP 0");
    rp_context_set(s->rep, "precision_at_k_rule",
                   "relevant items within the top K / min(K, database size)");
    rp_context_set(s->rep, "ranking", s->wts ? "weighted hamming" : "hamming");
    if (s->wts)
        rp_context_set_num(s->rep, "weight_power", (double)a->weight_power);
    if (a->model)
        rp_context_set(s->rep, "bit_order", xp_bit_order_name((xp_bit_order)a->bit_order));
    if (s->reid) {
        rp_context_set(s->rep, "reid_rule",
                       "gallery items with the query's identity and camera removed; "
                       "queries without a true match skipped");
        rp_context_set(s->rep, "reid_gallery", ev_reid_gallery_name(a->gallery));
        rp_context_set_num(s->rep, "single_shot_repeats", (double)s->single);
        rp_context_set_num(s->rep, "seed", (double)a->seed);
    }
}

/* Re-id metrics of the codes tq, tdb into row, and their report entry. */
static drsch_status eval_reid(const eval_args *a, eval_state *s, const hm_codes *tq,
                              const hm_codes *tdb, const hm_weights *hw, eval_row *row,
                              drsch_error *err)
{
    ev_reid *r = &row->reid;
    double t0 = cli_now();
    drsch_status st =
        ev_reid_eval_gallery(a->gallery, tq, s->ql.labels, s->qcb.labels, tdb, s->dl.labels,
                             s->dcb.labels, hw, (int)s->single, (uint64_t)a->seed, r, err);
    double dt = cli_now() - t0;
    if (st != DRSCH_OK)
        return st;
    char name[128];
    snprintf(name, sizeof name, "eval/reid/bits:%u", row->bits);
    rp_entry *e = rp_add(s->rep, name, 1, dt * 1e3, dt * 1e3 * a->nthreads, "ms", a->nthreads);
    rp_counter(e, "mAP", r->map);
    rp_counter(e, "mINP", r->minp);
    for (int k = 0; k < EV_CMC_RANKS; k++) {
        char cn[16];
        snprintf(cn, sizeof cn, "rank-%d", k + 1);
        rp_counter(e, cn, r->cmc[k]);
    }
    rp_counter(e, "queries", (double)r->queries);
    rp_counter(e, "queries_skipped", (double)r->queries_skipped);
    if (hw)
        rp_counter(e, "weight_step", hm_weights_step(hw));
    return st;
}

/* Retrieval metrics of the codes tq, tdb into row, and their report entry. */
static drsch_status eval_retrieval(const eval_args *a, eval_state *s, const hm_codes *tq,
                                   const hm_codes *tdb, const hm_weights *hw, eval_row *row,
                                   drsch_error *err)
{
    ev_options opt = {.topk = (size_t)a->topk, .radius = (uint32_t)a->radius, .pr_curve = 0};
    ev_retrieval *r = &row->r;
    const in_labels *ql = &s->ql, *dl = &s->dl;
    double t0 = cli_now();
    drsch_status st = ev_retrieval_eval(
        tq, &(ev_labels){.n = ql->n, .labels = ql->labels, .multi = ql->multi, .words = ql->words},
        tdb, &(ev_labels){.n = dl->n, .labels = dl->labels, .multi = dl->multi, .words = dl->words},
        hw, &opt, r, err);
    double dt = cli_now() - t0;
    if (st != DRSCH_OK)
        return st;
    char name[128];
    snprintf(name, sizeof name, "eval/retrieval/bits:%u", row->bits);
    rp_entry *e = rp_add(s->rep, name, 1, dt * 1e3, dt * 1e3 * a->nthreads, "ms", a->nthreads);
    rp_counter(e, "mAP", r->map_all);
    rp_counter(e, "mAP_tie_aware", r->map_tie_aware);
    if (a->topk) {
        rp_counter(e, "mAP_at_K", r->map_at_k);
        rp_counter(e, "P_at_K", r->precision_at_k);
        rp_counter(e, "K", (double)a->topk);
    }
    if (r->precision_radius >= 0) {
        rp_counter(e, "P_at_radius", r->precision_radius);
        rp_counter(e, "radius", (double)a->radius);
    }
    rp_counter(e, "queries", (double)r->queries);
    rp_counter(e, "queries_without_relevant", (double)r->queries_without_relevant);
    if (hw)
        rp_counter(e, "weight_step", hm_weights_step(hw));
    return st;
}

/* Evaluates every length into s->rows: 0, or -1 after printing why. */
static int eval_lengths(const eval_args *a, eval_state *s)
{
    hm_weights *hw = NULL;
    int rc = 0;
    for (int b = 0; b < s->nlengths && rc == 0; b++) {
        hm_codes tq = {0}, tdb = {0};
        drsch_error herr;
        drsch_error eerr;
        if (xp_codes_prefix(&s->q, s->lengths[b], &tq) ||
            xp_codes_prefix(&s->db, s->lengths[b], &tdb)) {
            fprintf(stderr, "drsch eval: out of memory\n");
            rc = -1;
        } else if (s->wts && hm_weights_create(&hw, s->wts, s->lengths[b], &herr) != DRSCH_OK) {
            fprintf(stderr, "drsch eval: %s: %s\n", a->wpath ? a->wpath : a->model, herr.msg);
            rc = -1;
        } else {
            eval_row *row = &s->rows[s->nrows];
            memset(row, 0, sizeof *row);
            row->bits = s->lengths[b];
            row->weight_step = hw ? hm_weights_step(hw) : 0.0;
            drsch_status st = s->reid ? eval_reid(a, s, &tq, &tdb, hw, row, &eerr)
                                      : eval_retrieval(a, s, &tq, &tdb, hw, row, &eerr);
            if (st != DRSCH_OK) {
                fprintf(stderr, "drsch eval: %s\n", eerr.msg);
                rc = -1;
            } else {
                s->nrows++;
            }
        }
        hm_codes_free(&tq);
        hm_codes_free(&tdb);
        hm_weights_free(hw);
        hw = NULL;
    }
    return rc;
}

static void free_state(eval_state *s)
{
    for (int b = 0; b < s->nrows; b++)
        ev_retrieval_free(&s->rows[b].r);
    rp_free(s->rep);
    free(s->wts);
    in_labels *bufs[4] = {&s->ql, &s->dl, &s->qcb, &s->dcb};
    for (int i = 0; i < 4; i++) {
        free(bufs[i]->labels);
        free(bufs[i]->multi);
    }
    hm_codes_free(&s->q);
    hm_codes_free(&s->db);
}

/* Loads, evaluates every length, then prints the table and writes the report: the exit status. */
static int run_eval(const eval_args *a)
{
    eval_state s = {.single = a->single};
    int rc = 1;
    s.rep = rp_create();
    if (!s.rep)
        fprintf(stderr, "drsch eval: out of memory\n");
    else if ((rc = load_inputs(a, &s)) == 0) {
        report_context(a, &s);
        rc = eval_lengths(a, &s) ? 1 : 0;
    }
    if (rc == 0) { /* every length evaluated: now the table, then the report */
        print_table(s.rows, s.nrows, s.reid, a->topk, a->radius, s.db.n);
        print_weight_steps(s.rows, s.nrows);
        fflush(stdout);
        drsch_error rerr;
        if (a->json && rp_write(s.rep, a->json, &rerr) != DRSCH_OK) {
            fprintf(stderr, "drsch eval: %s\n", rerr.msg);
            rc = 1;
        }
    }
    free_state(&s);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == GO_ON)
        rc = check_args(&a);
    return rc == GO_ON ? run_eval(&a) : rc;
}
