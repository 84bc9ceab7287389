/* drsch encode: encodes a dataset's images (one protocol split, or all) with a trained model and
 * writes PREFIX.codes.npy (uint8, N x ceil(B/8), bits in significance order: the model file's,
 * or by |w| with --bit-order weight), PREFIX.labels.npy
 * (int32 (N,), or uint8 (N, L) multi-hot), PREFIX.weights.npy (float32 (B,), |w| of the learned
 * bit weights in significance order, w^2 with --weight-power 2: what weighted ranking sums over
 * the differing bits), PREFIX.index.npy (int64 (N,), the dataset index of each row) and, for
 * re-id datasets, PREFIX.cams.npy (int32 (N,)); they are one output set (PREFIX.manifest,
 * fileio.h): published together, each checked by its readers. The forward pass runs in f32
 * unless --precision bf16 asks for bf16 (an error where the CPU cannot run it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "experiment.h"
#include "flags.h"
#include "inputs.h"
#include "npy.h"
#include "train.h"

typedef struct {
    const char *model, *spec, *split, *out, *size;
    xp_protocol proto;
    nn_precision precision;
    int64_t testset, seed, bits, threads, weight_power;
    int bit_order; /* xp_bit_order */
} encode_opts;

/* --size HxW: checked now, kept as text for in_load_dataset. */
static int parse_size(const char *cmd, const char *flag, const char *value, void *dest)
{
    int h, w;
    (void)flag;
    if (in_parse_size(cmd, value, &h, &w))
        return -1;
    *(const char **)dest = value;
    return 0;
}

/* Parses and checks the flags, the outputs and the model before any work; returns -1 to go on,
 * else the exit status (0 after the help). */
static int parse(int argc, char **argv, encode_opts *o)
{
    *o = (encode_opts){
        .spec = "fashion-mnist", .split = "all", .testset = 1, .seed = 1, .weight_power = 1};
    cli_flag flags[] = {
        CLI_STRING("model", &o->model, "FILE", "model written by drsch train (required)"),
        CLI_STRING("dataset", &o->spec, "SPEC", "dataset spec (see drsch data --help)"),
        CLI_STRING("split", &o->split, "S",
                   "the images encoded: the protocol's query, db (database) or train images, or "
                   "all of the dataset's: query | db | train | all"),
        CLI_CUSTOM("protocol", &o->proto, in_flag_protocol, "P",
                   XP_PROTOCOL_NAMES " (default auto)"),
        CLI_INT("testset", &o->testset, 1, 20, "K", "CUHK03 classic split 1..20"),
        CLI_CUSTOM("size", &o->size, parse_size, "HxW",
                   "resize NUS-WIDE / CUHK03 images on loading, as the model was trained "
                   "(default 32x32 / 160x60)"),
        CLI_INT("seed", &o->seed, 0, INT64_MAX, "S", "protocol seed (default 1, as drsch train)"),
        CLI_INT("bits", &o->bits, 1, HM_MAX_BITS, "B",
                "keep the first B bits (default: all of the model's)"),
        CLI_INT("threads", &o->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_CUSTOM("precision", &o->precision, in_flag_precision, "P",
                   "f32 | bf16 arithmetic of the forward pass (default f32)"),
        CLI_INT("weight-power", &o->weight_power, 1, 2, "P",
                "PREFIX.weights.npy holds |w|^P of the learned bit weights w: 2 ranks by the "
                "distance the loss learned (sum of w^2 over differing bits), 1 by sum of |w|"),
        CLI_CHOICE("bit-order", &o->bit_order, XP_BIT_ORDER_CHOICES, "O",
                   "the order of the bits in PREFIX.codes.npy and PREFIX.weights.npy, which --bits "
                   "truncates: saved = the model file's (drsch's: |w| discounted for bits that "
                   "repeat the bits before them), weight = by |w|, the paper's: the first b bits "
                   "are the b "
                   "of largest learned weight"),
        CLI_STRING("out", &o->out, "PREFIX",
                   "output prefix (required): a prefix inside a directory, e.g. DIR/codes, not "
                   "DIR itself"),
        CLI_END,
    };
    int rc = cli_flags_parse("encode", flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch encode --model MODEL [--dataset SPEC] [--split S] --out PREFIX "
               "[options]\n\n"
               "Writes PREFIX.codes.npy, PREFIX.labels.npy, PREFIX.weights.npy, PREFIX.index.npy\n"
               "(and PREFIX.cams.npy for re-id datasets), published together with\n"
               "PREFIX.manifest: readers refuse a file the manifest does not list as it is. A\n"
               "second run writing the same PREFIX is refused while the first runs (PREFIX.lock).\n"
               "\n");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (o->size && in_size_check("encode", o->spec))
        return EXIT_USAGE;
    const char *missing[2];
    int nmissing = 0;
    if (!o->model)
        missing[nmissing++] = "--model FILE";
    if (!o->out)
        missing[nmissing++] = "--out PREFIX";
    if (nmissing) {
        in_report_missing("encode", missing, nmissing, NULL);
        return EXIT_USAGE;
    }
    if (strcmp(o->split, "query") && strcmp(o->split, "db") && strcmp(o->split, "train") &&
        strcmp(o->split, "all")) {
        fprintf(stderr, "drsch encode: --split: '%s' is not query, db, train or all\n", o->split);
        return EXIT_USAGE;
    }
    /* Before any work: the outputs can be written, the model is a file. */
    if (cli_check_output_prefix("encode", "--out", o->out))
        return EXIT_USAGE;
    if (in_check_input("encode", "--model", o->model))
        return 1;
    return -1;
}

/* One member NAME.npy of the output set: written now, published with the others at the end. */
static int save(fio_set *set, const char *name, npy_dtype t, int nd, const size_t *shape,
                const void *data)
{
    drsch_error err;
    fio_out *o = fio_set_add(set, name, &err);
    if (!o || npy_write(o, t, nd, shape, data, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The dataset indices of the images to encode: all of them, or one split of the protocol. */
static int select_images(const encode_opts *o, const ds_dataset *d, ds_split *sp, int64_t **all,
                         const int64_t **idx, int64_t *n)
{
    if (!strcmp(o->split, "all")) {
        *all = malloc(sizeof **all * (size_t)(d->n ? d->n : 1));
        if (!*all) {
            fprintf(stderr, "drsch encode: out of memory for the index of %lld images\n",
                    (long long)d->n);
            return -1;
        }
        for (int64_t i = 0; i < d->n; i++)
            (*all)[i] = i;
        *idx = *all;
        *n = d->n;
        return 0;
    }
    drsch_error de;
    if (xp_make_split(d, o->proto, (uint64_t)o->seed, (int)o->testset - 1, NULL, sp, &de) !=
        DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s: %s\n", o->spec, de.msg);
        return -1;
    }
    const char *split = o->split;
    *idx = !strcmp(split, "query") ? sp->query : !strcmp(split, "db") ? sp->db : sp->train;
    *n = !strcmp(split, "query") ? sp->n_query : !strcmp(split, "db") ? sp->n_db : sp->n_train;
    return 0;
}

/* PREFIX.labels.npy (and PREFIX.cams.npy) of images idx[0..n). */
static int save_labels(fio_set *set, const ds_dataset *d, const int64_t *idx, int64_t n)
{
    size_t s1[1] = {(size_t)n};
    if (d->label_kind == DS_LABELS_MULTI) {
        uint8_t *m = malloc((size_t)n * (size_t)d->n_classes + 1);
        if (!m) {
            fprintf(stderr, "drsch encode: out of memory for the labels of %lld images\n",
                    (long long)n);
            return -1;
        }
        for (int64_t i = 0; i < n; i++)
            memcpy(m + i * d->n_classes, d->multi + idx[i] * d->n_classes, (size_t)d->n_classes);
        size_t s2[2] = {(size_t)n, (size_t)d->n_classes};
        int bad = save(set, "labels.npy", NPY_U8, 2, s2, m);
        free(m);
        return bad;
    }
    int32_t *lab = malloc(sizeof *lab * (size_t)(n ? n : 1));
    if (!lab) {
        fprintf(stderr, "drsch encode: out of memory for the labels of %lld images\n",
                (long long)n);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        lab[i] = d->labels[idx[i]];
    int bad = save(set, "labels.npy", NPY_I32, 1, s1, lab);
    if (!bad && d->cams) {
        for (int64_t i = 0; i < n; i++)
            lab[i] = d->cams[idx[i]];
        bad = save(set, "cams.npy", NPY_I32, 1, s1, lab);
    }
    free(lab);
    return bad;
}

/* Writes the members of the output set and publishes it (PREFIX.manifest). */
static int save_all(fio_set *set, const ds_dataset *d, const int64_t *idx, int64_t n,
                    const hm_codes *cut, const float *weights, uint32_t keep)
{
    drsch_error he;
    fio_out *codes_out = fio_set_add(set, "codes.npy", &he);
    if (!codes_out || npy_write_codes(codes_out, cut, &he) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        return -1;
    }
    size_t s1[1] = {(size_t)n};
    if (save(set, "index.npy", NPY_I64, 1, s1, idx) || save_labels(set, d, idx, n))
        return -1;
    size_t sw[1] = {keep}; /* the weights of the bits kept */
    if (save(set, "weights.npy", NPY_F32, 1, sw, weights))
        return -1;
    if (fio_set_commit(set, &he) != 0) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        return -1;
    }
    return 0;
}

/* Loads the model and the dataset, encodes the images and writes the set begun in `set`. */
static int run(const encode_opts *o, fio_set *set)
{
    int rc = 1;
    nn_net *net = NULL;
    ds_dataset *d = NULL;
    ds_split sp = {0};
    int64_t *all = NULL;
    xp_codes codes = {0};
    hm_codes cut = {0};
    drsch_error ne;
    drsch_error xe;
    double t0 = cli_now();
    if (nn_model_load(&net, o->model, 100, 0, &ne) != DRSCH_OK ||
        xp_apply_bit_order(net, (xp_bit_order)o->bit_order, &ne) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", ne.msg);
        goto done;
    }
    const int32_t B = nn_net_config(net)->bits;
    if (o->bits > B) {
        fprintf(stderr, "drsch encode: --bits %lld exceeds the %d bits of %s\n", (long long)o->bits,
                B, o->model);
        goto done;
    }
    int xc;
    if (in_load_dataset("encode", o->spec, o->size, &d, &xc)) {
        rc = xc;
        goto done;
    }
    const int64_t *idx;
    int64_t n;
    if (select_images(o, d, &sp, &all, &idx, &n))
        goto done;
    cli_note_precision("encode", o->precision);
    if (xp_net_codes(net, d, idx, n, NULL, 0, o->precision, (int)o->weight_power, &codes, &xe) !=
        DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s: %s\n", o->model, xe.msg);
        goto done;
    }
    uint32_t keep = o->bits ? (uint32_t)o->bits : (uint32_t)B;
    if (xp_codes_prefix(&codes.query, keep, &cut)) {
        fprintf(stderr, "drsch encode: out of memory\n");
        goto done;
    }
    if (save_all(set, d, idx, n, &cut, codes.weights, keep))
        goto done;
    fprintf(stderr,
            "drsch encode: %lld images of %s (%s) -> %s.codes.npy (%u bits, %s, %s bit order) in "
            "%.2f s; %s.weights.npy: %s (weighted ranking by the %s)\n",
            (long long)n, d->name, strcmp(o->split, "all") ? sp.name : "all images", o->out, keep,
            nn_precision_name(o->precision), xp_bit_order_name((xp_bit_order)o->bit_order),
            cli_now() - t0, o->out, o->weight_power == 2 ? "w^2" : "|w|",
            xp_weight_power_text((int)o->weight_power));
    rc = 0;
done:
    nn_net_free(net);
    ds_split_free(&sp);
    ds_dataset_free(d);
    free(all);
    xp_codes_free(&codes);
    hm_codes_free(&cut);
    return rc;
}

int cmd_encode(int argc, char **argv)
{
    encode_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    /* The files are one set: written together under a lock on PREFIX (a second run is refused),
     * published with PREFIX.manifest, which readers check each member against. */
    fio_set set;
    drsch_error le;
    if (fio_set_begin(&set, o.out, &le) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", le.msg);
        return 1;
    }
    cli_set_threads((int)o.threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        fio_set_abort(&set);
        return 1;
    }
    rc = run(&o, &set);
    fio_set_abort(&set); /* after a commit: nothing left to remove */
    return rc;
}
