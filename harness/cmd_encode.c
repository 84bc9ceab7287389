/* drsch encode: encodes a dataset's images (one protocol split, or all) with a trained model and
 * writes PREFIX.codes.npy (uint8, N x ceil(B/8), bits in significance order), PREFIX.labels.npy
 * (int32 (N,), or uint8 (N, L) multi-hot), PREFIX.weights.npy (float32 (B,), |w| of the learned
 * bit weights in significance order: what weighted ranking uses), PREFIX.index.npy (int64 (N,),
 * the dataset index of each row) and, for re-id datasets, PREFIX.cams.npy (int32 (N,)); they are
 * one output set (PREFIX.manifest, fileio.h): published together, each checked by its readers.
 * The forward pass runs in f32 unless --precision bf16 asks for bf16 (an error where the CPU
 * cannot run it). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "experiment.h"
#include "inputs.h"
#include "npy.h"
#include "train.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch encode --model MODEL [--dataset SPEC] [--split S] --out PREFIX [options]\n\n"
        "Writes PREFIX.codes.npy, PREFIX.labels.npy, PREFIX.weights.npy, PREFIX.index.npy\n"
        "(and PREFIX.cams.npy for re-id datasets), published together with PREFIX.manifest:\n"
        "readers refuse a file the manifest does not list as it is. A second run writing the\n"
        "same PREFIX is refused while the first runs (PREFIX.lock).\n\n"
        "  --model FILE     model written by drsch train (required)\n"
        "  --dataset SPEC   dataset spec (default fashion-mnist)\n"
        "  --split S        query | db | train | all (default all)\n"
        "  --protocol P     " XP_PROTOCOL_NAMES " (default auto)\n"
        "  --testset K      CUHK03 classic split 1..20 (default 1)\n"
        "  --size HxW       resize NUS-WIDE / CUHK03 images on loading, as the model was\n"
        "                   trained (default 32x32 / 160x60)\n"
        "  --seed S         protocol seed (default 1, as drsch train)\n"
        "  --bits B         keep the first B bits (default: all of the model's)\n"
        "  --threads T      OpenMP threads, 0 = OMP_NUM_THREADS or all cores (default 0)\n"
        "  --precision P    f32 | bf16 arithmetic of the forward pass (default f32)\n"
        "  --out PREFIX     output prefix (required): a prefix inside a directory, e.g.\n"
        "                   DIR/codes, not DIR itself\n"
        "  -h, --help       this text\n");
}

/* One member NAME.npy of the output set: written now, published with the others at the end. */
static int save(fio_set *set, const char *name, npy_dtype t, int nd, const size_t *shape,
                const void *data)
{
    drsch_error err;
    fio_out *o = fio_set_add(set, name, err.msg, sizeof err.msg);
    if (!o || npy_write(o, t, nd, shape, data, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int cmd_encode(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"dataset", required_argument, 0, 'd'},
        {"split", required_argument, 0, 's'},
        {"protocol", required_argument, 0, 'p'},
        {"testset", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 'S'},
        {"bits", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},
        {"precision", required_argument, 0, 'P'},
        {"size", required_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *spec = "fashion-mnist", *split = "all", *out = NULL, *size = NULL;
    xp_protocol proto = XP_PROTO_AUTO;
    nn_precision precision = NN_PRECISION_F32;
    int64_t testset = 1, seed = 1, bits = 0, threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': spec = optarg; break;
        case 's': split = optarg; break;
        case 'o': out = optarg; break;
        case 'p': bad = xp_protocol_parse("encode", optarg, &proto); break;
        case 'k': bad = cli_parse_i64("encode", "--testset", optarg, 1, 20, &testset); break;
        case 'S': bad = cli_parse_i64("encode", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case 'b': bad = cli_parse_i64("encode", "--bits", optarg, 1, HM_MAX_BITS, &bits); break;
        case 't': bad = cli_parse_i64("encode", "--threads", optarg, 0, 1024, &threads); break;
        case 'P': bad = cli_parse_precision("encode", optarg, &precision); break;
        case 'z': {
            int h, w;
            size = optarg;
            bad = xp_parse_size("encode", optarg, &h, &w);
            break;
        }
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("encode");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch encode: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (size && xp_size_check("encode", spec))
        return EXIT_USAGE;
    const char *missing[2];
    int nmissing = 0;
    if (!model)
        missing[nmissing++] = "--model FILE";
    if (!out)
        missing[nmissing++] = "--out PREFIX";
    if (nmissing) {
        in_report_missing("encode", missing, nmissing, NULL);
        return EXIT_USAGE;
    }
    if (strcmp(split, "query") && strcmp(split, "db") && strcmp(split, "train") &&
        strcmp(split, "all")) {
        fprintf(stderr, "drsch encode: --split: '%s' is not query, db, train or all\n", split);
        return EXIT_USAGE;
    }
    /* Before any work: the outputs can be written, the model is a file. */
    if (cli_check_output_prefix("encode", "--out", out))
        return EXIT_USAGE;
    if (in_check_input("encode", "--model", model))
        return 1;
    /* The files are one set: written together under a lock on PREFIX (a second run is refused),
     * published with PREFIX.manifest, which readers check each member against. */
    fio_set set;
    char lmsg[512];
    if (fio_set_begin(&set, out, lmsg, sizeof lmsg) != 0) {
        fprintf(stderr, "drsch encode: %s\n", lmsg);
        return 1;
    }
    cli_set_threads((int)threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        fio_set_abort(&set);
        return 1;
    }
    int rc = 1;
    nn_net *net = NULL;
    ds_dataset *d = NULL;
    ds_split sp = {0};
    int64_t *all = NULL;
    xp_codes codes = {0};
    hm_codes cut = {0};
    int32_t *lab = NULL;
    drsch_error ne;
    drsch_error de;
    drsch_error xe;
    double t0 = cli_now();
    if (nn_model_load(&net, model, 100, 0, &ne) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", ne.msg);
        goto done;
    }
    const int32_t B = nn_net_config(net)->bits;
    if (bits > B) {
        fprintf(stderr, "drsch encode: --bits %lld exceeds the %d bits of %s\n", (long long)bits, B,
                model);
        goto done;
    }
    int xc;
    if (xp_load_dataset("encode", spec, size, &d, &xc)) {
        rc = xc;
        goto done;
    }
    const int64_t *idx;
    int64_t n;
    if (!strcmp(split, "all")) {
        all = malloc(sizeof *all * (size_t)(d->n ? d->n : 1));
        if (!all) {
            fprintf(stderr, "drsch encode: out of memory for the index of %lld images\n",
                    (long long)d->n);
            goto done;
        }
        for (int64_t i = 0; i < d->n; i++)
            all[i] = i;
        idx = all;
        n = d->n;
    } else {
        if (xp_make_split(d, proto, (uint64_t)seed, (int)testset - 1, NULL, &sp, &de) != DRSCH_OK) {
            fprintf(stderr, "drsch encode: %s: %s\n", spec, de.msg);
            goto done;
        }
        idx = !strcmp(split, "query") ? sp.query : !strcmp(split, "db") ? sp.db : sp.train;
        n = !strcmp(split, "query") ? sp.n_query : !strcmp(split, "db") ? sp.n_db : sp.n_train;
    }
    cli_note_precision("encode", precision);
    if (xp_net_codes(net, d, idx, n, NULL, 0, precision, &codes, &xe) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s: %s\n", model, xe.msg);
        goto done;
    }
    uint32_t keep = bits ? (uint32_t)bits : (uint32_t)B;
    if (xp_codes_prefix(&codes.query, keep, &cut)) {
        fprintf(stderr, "drsch encode: out of memory\n");
        goto done;
    }
    fio_out *codes_out = fio_set_add(&set, "codes.npy", he.msg, sizeof he.msg);
    if (!codes_out || npy_write_codes(codes_out, &cut, &he) != DRSCH_OK) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        goto done;
    }
    size_t s1[1] = {(size_t)n};
    if (save(&set, "index.npy", NPY_I64, 1, s1, idx))
        goto done;
    if (d->label_kind == DS_LABELS_MULTI) {
        uint8_t *m = malloc((size_t)n * (size_t)d->n_classes + 1);
        if (!m) {
            fprintf(stderr, "drsch encode: out of memory for the labels of %lld images\n",
                    (long long)n);
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            memcpy(m + i * d->n_classes, d->multi + idx[i] * d->n_classes, (size_t)d->n_classes);
        size_t s2[2] = {(size_t)n, (size_t)d->n_classes};
        int bad = save(&set, "labels.npy", NPY_U8, 2, s2, m);
        free(m);
        if (bad)
            goto done;
    } else {
        lab = malloc(sizeof *lab * (size_t)(n ? n : 1));
        if (!lab) {
            fprintf(stderr, "drsch encode: out of memory for the labels of %lld images\n",
                    (long long)n);
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            lab[i] = d->labels[idx[i]];
        if (save(&set, "labels.npy", NPY_I32, 1, s1, lab))
            goto done;
        if (d->cams) {
            for (int64_t i = 0; i < n; i++)
                lab[i] = d->cams[idx[i]];
            if (save(&set, "cams.npy", NPY_I32, 1, s1, lab))
                goto done;
        }
    }
    size_t sw[1] = {keep}; /* the weights of the bits kept */
    if (save(&set, "weights.npy", NPY_F32, 1, sw, codes.weights))
        goto done;
    if (fio_set_commit(&set, he.msg, sizeof he.msg) != 0) {
        fprintf(stderr, "drsch encode: %s\n", he.msg);
        goto done;
    }
    fprintf(stderr,
            "drsch encode: %lld images of %s (%s) -> %s.codes.npy (%u bits, %s) in %.2f s\n",
            (long long)n, d->name, strcmp(split, "all") ? sp.name : "all images", out, keep,
            nn_precision_name(precision), cli_now() - t0);
    rc = 0;
done:
    fio_set_abort(&set); /* after a commit: nothing left to remove */
    nn_net_free(net);
    ds_split_free(&sp);
    ds_dataset_free(d);
    free(all);
    free(lab);
    xp_codes_free(&codes);
    hm_codes_free(&cut);
    return rc;
}
