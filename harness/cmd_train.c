/* drsch train: trains a DRSCH model on a dataset's protocol training split, with a progress line
 * on stderr, atomic checkpoints, Ctrl-C / SIGTERM / SIGHUP saving a checkpoint, a lock on the
 * output (a second run writing the same model is refused), --resume continuing exactly, and
 * optionally an evaluation of the finished model on the protocol's queries and database. */
#include <errno.h>
#include <getopt.h>
#include <float.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "experiment.h"
#include "fileio.h"
#include "metrics.h"
#include "train.h"

/* SIGINT, SIGTERM (timeout, systemd, container stops) and SIGHUP ask the training to stop at the
 * end of its iteration, write the model and its state, and exit 128 + the signal's number; a
 * second signal ends the process at once, removing the temporary files and the lock. */
static volatile sig_atomic_t stop_requested, stop_signal;
static void on_stop_signal(int sig)
{
    if (stop_requested) {
        fio_remove_temporaries();
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
    stop_requested = 1;
}

static const int STOP_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGNALS (sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0])

/* The lock on --out (MODEL.lock): a second run writing the same model is refused while this one
 * runs, so that the model and its state always come from one run. */
static fio_lock out_lock = {.fd = -1};

static void usage(FILE *f)
{
    tr_config c;
    tr_config_default(&c, NULL);
    fprintf(
        f,
        "usage: drsch train [--dataset SPEC] --out MODEL [options]\n\n"
        "Trains DRSCH (triplet loss in weighted Hamming space + Laplacian regulariser + learned\n"
        "bit weights) on the protocol's training images, with a progress line on stderr. Ctrl-C,\n"
        "SIGTERM or SIGHUP writes a checkpoint and exits (128 + the signal's number); --resume\n"
        "continues it to the same result as an uninterrupted run. A second run writing the same\n"
        "MODEL is refused while this one runs (MODEL.lock). B below is the code length (--bits);\n"
        "\"the paper\" is the authors' setting.\n\n"
        "data:\n"
        "  --dataset SPEC      fashion-mnist | mnist:DIR | cifar10:DIR | nuswide:LIST:ROOT |\n"
        "                      cuhk03:FILE.mat[:labeled|detected] (default fashion-mnist;\n"
        "                      see drsch data --help)\n"
        "  --protocol P        the query / training / database split, one of\n"
        "                      " XP_PROTOCOL_NAMES "\n"
        "                      (default auto: paper, or classic for CUHK03)\n"
        "  --testset K         which of CUHK03's 20 classic test splits, 1 to 20 (default 1)\n"
        "  --size HxW          resize NUS-WIDE / CUHK03 images on loading (default 32x32 /\n"
        "                      160x60); encode and eval need the same --size\n"
        "  --seed S            seed of initialisation, sampling, augmentation and the protocol's\n"
        "                      random split (default 1)\n\n"
        "output:\n"
        "  --out MODEL         model file to write (required); MODEL.state beside it holds the\n"
        "                      resume state\n"
        "  --resume MODEL      continue from the checkpoint MODEL (and MODEL.state) of a run with\n"
        "                      the same settings; --iters may be larger, to extend the run\n"
        "                      (default: start from scratch)\n"
        "  --checkpoint-every N  write MODEL and MODEL.state every N iterations (default %lld;\n"
        "                      0 = at the end only)\n"
        "  --log-every N       a progress line every N iterations (default %lld)\n"
        "  --eval              after training, print mAP@all on the protocol's queries against "
        "its\n"
        "                      database at 12, 24, 32, 48, 64, 128 bits below B and at B\n"
        "                      (default: no evaluation)\n"
        "  --threads T         OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores\n"
        "                      (default 0)\n\n"
        "network and solver:\n"
        "  --arch A            network: drsch-mnist | drsch-cifar | drsch-reid (default: "
        "drsch-reid\n"
        "                      for CUHK03, drsch-mnist for 1-channel images, else drsch-cifar)\n"
        "  --bits B            code length in bits, 1 to %d (default %d)\n"
        "  --iters N           SGD iterations (default %lld)\n"
        "  --classes C         classes in each batch (default %d)\n"
        "  --per-class K       images of each class in a batch (default %d)\n"
        "  --lr F              learning rate at the start (default %g; the paper 0.00333)\n"
        "  --momentum F        SGD momentum, 0 to 0.999999 (default %g; the paper 0)\n"
        "  --weight-decay F    L2 penalty on the weights, added to their gradient times F\n"
        "                      (default %g)\n"
        "  --lr-step N         multiply the learning rate by --gamma every N iterations\n"
        "                      (default %lld)\n"
        "  --gamma F           the factor of each --lr-step, 0 to 10 (default %g)\n"
        "  --warmup N          raise the learning rate linearly from 0 over the first N "
        "iterations\n"
        "                      (default %lld; 0 = none)\n"
        "  --clip-grad F       scale the gradient of all parameters down to length (L2 norm) F\n"
        "                      when it is longer (default %g; 0 = never)\n\n"
        "loss:\n"
        "  --margin F          triplet margin at the start: a triplet (image, similar, "
        "dissimilar)\n"
        "                      is learnt from until the dissimilar image is farther than the\n"
        "                      similar one by -F (squared weighted distance) (default -B/2;\n"
        "                      the paper -5)\n"
        "  --margin-step F     added to the margin every --margin-every iterations (default "
        "-B/24;\n"
        "                      the paper -0.1)\n"
        "  --margin-every N    iterations between two margin steps (default %lld; the paper "
        "10000)\n"
        "  --margin-min F      the margin stops changing at F (default -B; 0 = never stops)\n"
        "  --triplets T        all | hard: every triplet of the batch (the paper), or for each\n"
        "                      image its farthest similar and nearest dissimilar one (default %s)\n"
        "  --triplet-norm N    all | active: average the triplet term over every triplet (the\n"
        "                      paper) or over those still within the margin (default %s)\n"
        "  --beta F            weight of the Laplacian term, which pulls the codes of neighbours\n"
        "                      in the graph together (default %g)\n"
        "  --graph G           label | knn: neighbours are images sharing a label, or each "
        "image's\n"
        "                      --knn-k nearest images by pixels (default label)\n"
        "  --knn-k K           neighbours of each image in the knn graph, 1 to 1000 (default %d)\n"
        "  --scale F           steepness s at the start of tanh(s x / 2), the smooth stand-in for\n"
        "                      sign() that makes the codes trainable (default %g)\n"
        "  --scale-mult F      multiply the steepness by F every --scale-every iterations\n"
        "                      (default %g)\n"
        "  --scale-every N     iterations between two steepness steps (default %lld; the paper "
        "10000)\n"
        "  --bit-order O       weight | decorrelated: the order of the saved bits, whose first b\n"
        "                      make the b-bit code: by learned weight (the paper), or by weight\n"
        "                      discounted for bits that repeat earlier ones on training codes, so\n"
        "                      that short codes keep bits that tell images apart (default %s)\n\n"
        "augmentation:\n"
        "  --crop HxW          random crop for training, centre crop for encoding\n"
        "                      (default 26x26 for 28x28 images, none otherwise)\n"
        "  --pad P             zero pixels added on each side before the crop (default 0)\n"
        "  --no-mirror         no random horizontal flips (default: flip half the images)\n"
        "  --rotate DEG        random rotation of the crop in [-DEG, DEG] degrees (default 10 for\n"
        "                      28x28 images, 0 = none otherwise)\n"
        "  --zoom F            random zoom of the crop in [1-F, 1+F], 0 to 0.9 (default 0.1 for\n"
        "                      28x28 images, 0 = none otherwise)\n\n"
        "  -h, --help          this text\n",
        (long long)c.checkpoint_every, (long long)c.log_every, HM_MAX_BITS, c.bits,
        (long long)c.iters, c.classes_per_batch, c.images_per_class, c.sgd.base_lr, c.sgd.momentum,
        c.sgd.weight_decay, (long long)c.sgd.step, c.sgd.gamma, (long long)c.sgd.warmup,
        c.clip_grad, (long long)c.loss.margin_every,
        c.loss.triplets == DH_TRIPLETS_HARD ? "hard" : "all",
        c.loss.norm == DH_NORM_ACTIVE ? "active" : "all", c.loss.beta, c.loss.knn_k, c.scale0,
        c.scale_mult, (long long)c.scale_every,
        c.bit_order == TR_BIT_ORDER_WEIGHT ? "weight" : "decorrelated");
}

static void print_progress(const tr_progress *p, void *ctx)
{
    (void)ctx;
    int eta = (int)(p->eta_seconds + 0.5);
    fprintf(stderr,
            "iter %6lld/%lld  loss %.4f (triplet %.4f, laplacian %.4f)  active %4.1f%%  distinct "
            "%3.0f%%  "
            "bit balance %.2f  |w| %.2f-%.2f  |g| %.3g  lr %.2g  s %.2f  C %.1f  %5.0f img/s  ETA "
            "%dm%02ds\n",
            (long long)p->iter, (long long)p->iters, p->loss, p->triplet_loss, p->laplacian_loss,
            100 * p->active_share, 100 * p->distinct_share, p->bit_balance, p->bitw_min,
            p->bitw_max, p->grad_norm, p->lr, p->hash_scale, p->margin, p->images_per_second,
            eta / 60, eta % 60);
}

/* Parses a float flag into a float field. */
static int pf(const char *flag, const char *s, double lo, double hi, float *out)
{
    double v;
    if (cli_parse_f64("train", flag, s, lo, hi, &v))
        return -1;
    *out = (float)v;
    return 0;
}

/* path + suffix into buf; -1 when it does not fit. */
static int with_suffix(char *buf, size_t size, const char *path, const char *suffix)
{
    return snprintf(buf, size, "%s%s", path, suffix) < (int)size ? 0 : -1;
}

/* --out MODEL and MODEL.state can be written, --resume MODEL and MODEL.state can be read; else
 * an error naming the file, and the exit status: EXIT_USAGE for an output that cannot be written
 * (as every command), 1 for a checkpoint that cannot be read (as every input). 0 when all is well.
 */
static int check_files(const char *out, const char *resume)
{
    char state[4096];
    struct stat st;
    if (cli_check_output_file("train", "--out", out))
        return EXIT_USAGE;
    if (with_suffix(state, sizeof state, out, ".state")) {
        fprintf(stderr, "drsch train: --out: the path is too long\n");
        return EXIT_USAGE;
    }
    if (stat(state, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "drsch train: --out %s: %s, where the resume state goes, is a directory\n",
                out, state);
        return EXIT_USAGE;
    }
    if (cli_check_output_file("train", "--out", state))
        return EXIT_USAGE;
    if (!resume)
        return 0;
    const char *files[2] = {resume, state};
    if (with_suffix(state, sizeof state, resume, ".state")) {
        fprintf(stderr, "drsch train: --resume: the path is too long\n");
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        char msg[8400];
        if (fio_check_regular(files[i], i ? "training state" : "model file", msg, sizeof msg) !=
            0) {
            if (i == 0)
                fprintf(stderr, "drsch train: --resume: %s\n", msg);
            else
                fprintf(stderr, "drsch train: --resume %s: the training state it needs: %s\n",
                        resume, msg);
            return 1;
        }
    }
    return 0;
}

static int train_command(int argc, char **argv)
{
    enum {
        O_DATASET = 256,
        O_PROTOCOL,
        O_TESTSET,
        O_OUT,
        O_RESUME,
        O_ARCH,
        O_BITS,
        O_ITERS,
        O_SEED,
        O_THREADS,
        O_CLASSES,
        O_PER_CLASS,
        O_LR,
        O_MOMENTUM,
        O_WD,
        O_LR_STEP,
        O_GAMMA,
        O_BETA,
        O_MARGIN,
        O_MARGIN_STEP,
        O_MARGIN_EVERY,
        O_GRAPH,
        O_KNN_K,
        O_SCALE,
        O_SCALE_MULT,
        O_SCALE_EVERY,
        O_CROP,
        O_PAD,
        O_NO_MIRROR,
        O_ROTATE,
        O_ZOOM,
        O_BIT_ORDER,
        O_LOG_EVERY,
        O_CKPT_EVERY,
        O_EVAL,
        O_CLIP,
        O_MARGIN_MIN,
        O_TRIPLET_NORM,
        O_SIZE,
        O_TRIPLETS,
        O_WARMUP
    };
    static const struct option opts[] = {
        {"dataset", required_argument, 0, O_DATASET},
        {"protocol", required_argument, 0, O_PROTOCOL},
        {"testset", required_argument, 0, O_TESTSET},
        {"out", required_argument, 0, O_OUT},
        {"resume", required_argument, 0, O_RESUME},
        {"arch", required_argument, 0, O_ARCH},
        {"bits", required_argument, 0, O_BITS},
        {"iters", required_argument, 0, O_ITERS},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"classes", required_argument, 0, O_CLASSES},
        {"per-class", required_argument, 0, O_PER_CLASS},
        {"lr", required_argument, 0, O_LR},
        {"momentum", required_argument, 0, O_MOMENTUM},
        {"weight-decay", required_argument, 0, O_WD},
        {"lr-step", required_argument, 0, O_LR_STEP},
        {"gamma", required_argument, 0, O_GAMMA},
        {"beta", required_argument, 0, O_BETA},
        {"margin", required_argument, 0, O_MARGIN},
        {"margin-step", required_argument, 0, O_MARGIN_STEP},
        {"margin-every", required_argument, 0, O_MARGIN_EVERY},
        {"graph", required_argument, 0, O_GRAPH},
        {"knn-k", required_argument, 0, O_KNN_K},
        {"scale", required_argument, 0, O_SCALE},
        {"scale-mult", required_argument, 0, O_SCALE_MULT},
        {"scale-every", required_argument, 0, O_SCALE_EVERY},
        {"crop", required_argument, 0, O_CROP},
        {"pad", required_argument, 0, O_PAD},
        {"no-mirror", no_argument, 0, O_NO_MIRROR},
        {"rotate", required_argument, 0, O_ROTATE},
        {"zoom", required_argument, 0, O_ZOOM},
        {"bit-order", required_argument, 0, O_BIT_ORDER},
        {"log-every", required_argument, 0, O_LOG_EVERY},
        {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"eval", no_argument, 0, O_EVAL},
        {"clip-grad", required_argument, 0, O_CLIP},
        {"margin-min", required_argument, 0, O_MARGIN_MIN},
        {"triplet-norm", required_argument, 0, O_TRIPLET_NORM},
        {"size", required_argument, 0, O_SIZE},
        {"triplets", required_argument, 0, O_TRIPLETS},
        {"warmup", required_argument, 0, O_WARMUP},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    /* Flags are collected first; defaults depend on the dataset, known only after loading. */
    const char *spec = "fashion-mnist", *out = NULL, *resume = NULL, *arch = NULL, *size = NULL;
    xp_protocol proto = XP_PROTO_AUTO;
    int64_t testset = 1, threads = 0, v;
    int do_eval = 0, crop_h = -1, crop_w = -1;
    tr_config set, c;
    tr_config_default(&set, NULL);
    struct {
        int bits, iters, seed, classes, per_class, lr, momentum, wd, lr_step, gamma, beta, margin,
            margin_step, margin_every, graph, knn_k, scale, scale_mult, scale_every, pad, mirror,
            rotate, zoom, bit_order, log_every, ckpt, clip, margin_min, triplet_norm, triplets,
            warmup;
    } given = {0};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case O_DATASET: spec = optarg; break;
        case O_PROTOCOL: bad = xp_protocol_parse("train", optarg, &proto); break;
        case O_TESTSET: bad = cli_parse_i64("train", "--testset", optarg, 1, 20, &testset); break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_ARCH: arch = optarg; break;
        case O_BITS:
            bad = cli_parse_i64("train", "--bits", optarg, 1, HM_MAX_BITS, &v);
            set.bits = (int32_t)v;
            given.bits = 1;
            break;
        case O_ITERS:
            bad = cli_parse_i64("train", "--iters", optarg, 0, 1000000000, &set.iters);
            given.iters = 1;
            break;
        case O_SEED:
            bad = cli_parse_i64("train", "--seed", optarg, 0, INT64_MAX, &v);
            set.seed = (uint64_t)v;
            given.seed = 1;
            break;
        case O_THREADS: bad = cli_parse_i64("train", "--threads", optarg, 0, 1024, &threads); break;
        case O_CLASSES:
            bad = cli_parse_i64("train", "--classes", optarg, 2, 10000, &v);
            set.classes_per_batch = (int32_t)v;
            given.classes = 1;
            break;
        case O_PER_CLASS:
            bad = cli_parse_i64("train", "--per-class", optarg, 2, 10000, &v);
            set.images_per_class = (int32_t)v;
            given.per_class = 1;
            break;
        case O_LR:
            bad = pf("--lr", optarg, 0, FLT_MAX, &set.sgd.base_lr);
            given.lr = 1;
            break;
        case O_MOMENTUM:
            bad = pf("--momentum", optarg, 0, 0.999999, &set.sgd.momentum);
            given.momentum = 1;
            break;
        case O_WD:
            bad = pf("--weight-decay", optarg, 0, 10, &set.sgd.weight_decay);
            given.wd = 1;
            break;
        case O_WARMUP:
            bad = cli_parse_i64("train", "--warmup", optarg, 0, INT64_MAX, &set.sgd.warmup);
            given.warmup = 1;
            break;
        case O_LR_STEP:
            bad = cli_parse_i64("train", "--lr-step", optarg, 1, INT64_MAX, &set.sgd.step);
            given.lr_step = 1;
            break;
        case O_GAMMA:
            bad = pf("--gamma", optarg, 0, 10, &set.sgd.gamma);
            given.gamma = 1;
            break;
        case O_BETA:
            bad = pf("--beta", optarg, 0, FLT_MAX, &set.loss.beta);
            given.beta = 1;
            break;
        case O_MARGIN:
            bad = pf("--margin", optarg, -1e6, 1e6, &set.loss.margin0);
            given.margin = 1;
            break;
        case O_MARGIN_STEP:
            bad = pf("--margin-step", optarg, -1e6, 1e6, &set.loss.margin_step);
            given.margin_step = 1;
            break;
        case O_MARGIN_EVERY:
            bad = cli_parse_i64("train", "--margin-every", optarg, 1, INT64_MAX,
                                &set.loss.margin_every);
            given.margin_every = 1;
            break;
        case O_SIZE: {
            int h, w;
            size = optarg;
            bad = xp_parse_size("train", optarg, &h, &w);
            break;
        }
        case O_TRIPLETS:
            if (!strcmp(optarg, "all")) {
                set.loss.triplets = DH_TRIPLETS_ALL;
            } else if (!strcmp(optarg, "hard")) {
                set.loss.triplets = DH_TRIPLETS_HARD;
            } else {
                fprintf(stderr, "drsch train: --triplets: '%s' is not all or hard\n", optarg);
                return 2;
            }
            given.triplets = 1;
            break;
        case O_TRIPLET_NORM:
            if (!strcmp(optarg, "all")) {
                set.loss.norm = DH_NORM_ALL;
            } else if (!strcmp(optarg, "active")) {
                set.loss.norm = DH_NORM_ACTIVE;
            } else {
                fprintf(stderr, "drsch train: --triplet-norm: '%s' is not all or active\n", optarg);
                return 2;
            }
            given.triplet_norm = 1;
            break;
        case O_GRAPH:
            if (!strcmp(optarg, "label"))
                set.loss.graph = DH_GRAPH_LABEL;
            else if (!strcmp(optarg, "knn"))
                set.loss.graph = DH_GRAPH_KNN;
            else {
                fprintf(stderr, "drsch train: --graph: '%s' is not label or knn\n", optarg);
                bad = 1;
            }
            given.graph = 1;
            break;
        case O_KNN_K:
            bad = cli_parse_i64("train", "--knn-k", optarg, 1, 1000, &v);
            set.loss.knn_k = (int32_t)v;
            given.knn_k = 1;
            break;
        case O_SCALE:
            bad = pf("--scale", optarg, 1e-6, 1e6, &set.scale0);
            given.scale = 1;
            break;
        case O_SCALE_MULT:
            bad = pf("--scale-mult", optarg, 1e-6, 1e6, &set.scale_mult);
            given.scale_mult = 1;
            break;
        case O_SCALE_EVERY:
            bad = cli_parse_i64("train", "--scale-every", optarg, 1, INT64_MAX, &set.scale_every);
            given.scale_every = 1;
            break;
        case O_CROP: bad = xp_parse_size("train", optarg, &crop_h, &crop_w); break;
        case O_PAD:
            bad = cli_parse_i64("train", "--pad", optarg, 0, 1024, &v);
            set.pad = (int32_t)v;
            given.pad = 1;
            break;
        case O_NO_MIRROR:
            set.mirror = 0;
            given.mirror = 1;
            break;
        case O_ROTATE:
            bad = pf("--rotate", optarg, 0, 180, &set.rotate);
            given.rotate = 1;
            break;
        case O_ZOOM:
            bad = pf("--zoom", optarg, 0, 0.9, &set.zoom);
            given.zoom = 1;
            break;
        case O_BIT_ORDER:
            if (!strcmp(optarg, "weight"))
                set.bit_order = TR_BIT_ORDER_WEIGHT;
            else if (!strcmp(optarg, "decorrelated"))
                set.bit_order = TR_BIT_ORDER_DECORRELATED;
            else {
                fprintf(stderr, "drsch train: --bit-order: '%s' is not weight or decorrelated\n",
                        optarg);
                return 2;
            }
            given.bit_order = 1;
            break;
        case O_LOG_EVERY:
            bad = cli_parse_i64("train", "--log-every", optarg, 1, INT64_MAX, &set.log_every);
            given.log_every = 1;
            break;
        case O_CKPT_EVERY:
            bad = cli_parse_i64("train", "--checkpoint-every", optarg, 0, INT64_MAX,
                                &set.checkpoint_every);
            given.ckpt = 1;
            break;
        case O_EVAL: do_eval = 1; break;
        case O_CLIP:
            bad = pf("--clip-grad", optarg, 0, FLT_MAX, &set.clip_grad);
            given.clip = 1;
            break;
        case O_MARGIN_MIN:
            bad = pf("--margin-min", optarg, -1e6, 0, &set.loss.margin_min);
            given.margin_min = 1;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_usage_error("train");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch train: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!out) {
        fprintf(stderr, "drsch train: --out MODEL is required; see 'drsch train --help'\n");
        return EXIT_USAGE;
    }
    if (arch) {
        nn_config probe;
        drsch_error ne;
        if (strlen(arch) >= NN_ARCH_NAME_MAX ||
            nn_config_init(&probe, arch, set.bits, 100, 1, &ne) != DRSCH_OK) {
            fprintf(stderr,
                    "drsch train: --arch: '%s' is not an architecture (drsch-mnist, drsch-cifar or "
                    "drsch-reid)\n",
                    arch);
            return EXIT_USAGE;
        }
    }
    /* Every output and the checkpoint to resume are checked before the data is loaded: a run must
     * not be lost to a file it cannot write at its first checkpoint or at its end. */
    int files_status = check_files(out, resume);
    if (files_status)
        return files_status;
    char lock_msg[8400];
    if (fio_lock_take(&out_lock, out, lock_msg, sizeof lock_msg) != 0) {
        fprintf(stderr, "drsch train: %s\n", lock_msg);
        return 1;
    }
    int nthreads = cli_set_threads((int)threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s\n", he.msg);
        return 1;
    }

    ds_dataset *d = NULL;
    ds_split sp = {0};
    drsch_error de;
    double t0 = cli_now();
    int xc;
    if (xp_load_dataset("train", spec, size, &d, &xc))
        return xc;
    if (xp_make_split(d, proto, set.seed, (int)testset - 1, NULL, &sp, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s: %s\n", spec, de.msg);
        ds_dataset_free(d);
        return 1;
    }
    /* Dataset-dependent defaults, then the flags given. */
    tr_config_default(&c, d);
#define TAKE(flag, field)                                                                          \
    if (given.flag)                                                                                \
    c.field = set.field
    TAKE(bits, bits);
    TAKE(iters, iters);
    TAKE(seed, seed);
    TAKE(classes, classes_per_batch);
    TAKE(per_class, images_per_class);
    TAKE(lr, sgd.base_lr);
    TAKE(momentum, sgd.momentum);
    TAKE(wd, sgd.weight_decay);
    TAKE(lr_step, sgd.step);
    TAKE(warmup, sgd.warmup);
    TAKE(gamma, sgd.gamma);
    TAKE(beta, loss.beta);
    TAKE(margin, loss.margin0);
    TAKE(margin_step, loss.margin_step);
    TAKE(margin_every, loss.margin_every);
    if (given.margin || given.margin_step || given.margin_min) {
        c.margin_auto = 0;
        c.loss.margin0 = given.margin ? set.loss.margin0 : -(float)c.bits / 2.0f;
        c.loss.margin_step = given.margin_step ? set.loss.margin_step : -(float)c.bits / 24.0f;
        c.loss.margin_min = given.margin_min ? set.loss.margin_min : -(float)c.bits;
    }
    TAKE(graph, loss.graph);
    TAKE(triplet_norm, loss.norm);
    TAKE(triplets, loss.triplets);
    TAKE(knn_k, loss.knn_k);
    TAKE(scale, scale0);
    TAKE(scale_mult, scale_mult);
    TAKE(scale_every, scale_every);
    TAKE(pad, pad);
    TAKE(mirror, mirror);
    TAKE(rotate, rotate);
    TAKE(zoom, zoom);
    TAKE(bit_order, bit_order);
    TAKE(log_every, log_every);
    TAKE(ckpt, checkpoint_every);
    TAKE(clip, clip_grad);
#undef TAKE
    if (crop_h > 0) {
        c.crop_h = crop_h;
        c.crop_w = crop_w;
    }
    if (arch)
        snprintf(c.arch, sizeof c.arch, "%s", arch);
    if (c.crop_h > d->h + 2 * c.pad || c.crop_w > d->w + 2 * c.pad) {
        fprintf(stderr,
                "drsch train: --crop %dx%d is larger than the %dx%d images of %s (with --pad %d)\n",
                c.crop_h, c.crop_w, d->h, d->w, spec, c.pad);
        ds_split_free(&sp);
        ds_dataset_free(d);
        return EXIT_USAGE;
    }
    fprintf(
        stderr,
        "drsch train: %s (%lld images, crc32 %08x), protocol %s, %lld training images; %d bits, "
        "%lld iterations, batch %d x %d, %d threads, seed %llu\n",
        d->name, (long long)d->n, ds_checksum(d), sp.name, (long long)sp.n_train, c.bits,
        (long long)c.iters, c.classes_per_batch, c.images_per_class, nthreads,
        (unsigned long long)c.seed);

    struct sigaction sa, old[N_STOP_SIGNALS];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        sigaction(STOP_SIGNALS[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN) /* nohup: SIGHUP stays ignored */
            sigaction(STOP_SIGNALS[i], &sa, NULL);
    }
    drsch_error te;
    double t1 = cli_now();
    drsch_status st = tr_train(&c, d, &sp, out, resume, &stop_requested, print_progress, NULL, &te);
    double t2 = cli_now();
    for (size_t i = 0; i < N_STOP_SIGNALS; i++)
        sigaction(STOP_SIGNALS[i], &old[i], NULL);
    int rc = 0;
    if (st == DRSCH_INTERRUPTED) {
        fprintf(stderr, "drsch train: %s (%s); continue with --resume %s\n", te.msg,
                strsignal(stop_signal), out);
        rc = 128 + stop_signal;
    } else if (st != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s\n", te.msg);
        rc = 1;
    } else {
        fprintf(stderr, "drsch train: wrote %s after %.1f s of training (%.1f s in all)\n", out,
                t2 - t1, t2 - t0);
    }
    if (rc == 0 && do_eval) {
        xp_codes codes;
        drsch_error xe;
        if (xp_model_codes(out, d, sp.query, sp.n_query, sp.db, sp.n_db, NN_PRECISION_F32, &codes,
                           &xe) != DRSCH_OK) {
            fprintf(stderr, "drsch train: %s\n", xe.msg);
            rc = 1;
        } else {
            static const uint32_t lengths[] = {12, 24, 32, 48, 64, 128};
            ev_options opt = {.topk = 0, .radius = 2};
            printf("%6s %9s %10s %9s\n", "bits", "mAP@all", "mAP(ties)", "P@r2");
            size_t queries = 0, no_relevant = 0;
            for (size_t i = 0; i < sizeof lengths / sizeof lengths[0] && rc == 0; i++) {
                uint32_t b = lengths[i] < (uint32_t)c.bits ? lengths[i] : (uint32_t)c.bits;
                if (i && lengths[i - 1] >= (uint32_t)c.bits)
                    break;
                ev_retrieval r;
                drsch_error ee;
                if (xp_eval_retrieval(d, &sp, &codes.query, &codes.db, b, NULL, &opt, &r, &ee) !=
                    DRSCH_OK) {
                    fprintf(stderr, "drsch train: %s\n", ee.msg);
                    rc = 1;
                } else {
                    printf("%6u %9.4f %10.4f %9.4f\n", b, r.map_all, r.map_tie_aware,
                           r.precision_radius);
                    queries = r.queries, no_relevant = r.queries_without_relevant;
                    ev_retrieval_free(&r);
                }
            }
            if (rc == 0)
                printf("%zu of %zu queries have no relevant item (counted as AP 0)\n", no_relevant,
                       queries);
        }
        xp_codes_free(&codes);
    }
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    int rc = train_command(argc, argv);
    fio_lock_release(&out_lock);
    return rc;
}
