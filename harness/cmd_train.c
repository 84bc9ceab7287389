/* drsch train: trains a DRSCH model on a dataset's protocol training split, with a progress line
 * on stderr, atomic checkpoints, Ctrl-C / SIGTERM / SIGHUP saving a checkpoint, a lock on the
 * output (a second run writing the same model is refused), --resume continuing exactly, and
 * optionally an evaluation of the finished model on the protocol's queries and database.
 *
 * Under mpirun, data parallel (tr_train_parallel): every rank loads the data and shares each
 * batch; rank 0 checks and writes --out, reads --resume, prints the progress and evaluates. A
 * failure on any rank ends every rank, with one message naming the rank (dist.h). */
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "experiment.h"
#include "fileio.h"
#include "flags.h"
#include "inputs.h"
#include "metrics.h"
#include "train.h"

/* SIGINT, SIGTERM (timeout, systemd, container stops) and SIGHUP ask the training to stop at the
 * end of its iteration, write the model and its state, and exit 128 + the signal's number; a
 * second signal ends the process at once, removing the temporary files and the lock. The signals
 * are taken by fileio's signal thread (fio_stop_on_signals), never by a handler in a thread that
 * computes: see fio_cleanup_on_signals. */
static volatile sig_atomic_t stop_requested, stop_signal;

/* The lock on --out (MODEL.lock): a second run writing the same model is refused while this one
 * runs, so that the model and its state always come from one run. */
static fio_lock out_lock = {.fd = -1};

#define STR_(x) #x
#define STR(x) STR_(x)
#define N_FLAGS 50 /* room in train_args.flags for the table's rows */
#define GO_ON -1   /* a step's result when the command goes on (else its exit status) */

/* The command line of drsch train. The solver's settings are parsed into `set`, the defaults
 * without a dataset; after loading, the dataset's defaults are taken and the flags given copied
 * over them (cli_flags_copy_given). */
typedef struct {
    const char *spec, *out, *resume, *arch, *size;
    xp_protocol proto;
    int64_t testset, threads;
    int do_eval, crop[2];
    tr_config set;
    cli_flag flags[N_FLAGS];
    int nthreads; /* the threads the run has */
    double t0;    /* when the data began loading */
} train_args;

static void make_flags(train_args *a)
{
    tr_config *s = &a->set;
    const cli_flag t[] = {
        CLI_SECTION("data:"),
        CLI_STRING("dataset", &a->spec, "SPEC",
                   "fashion-mnist | mnist:DIR | cifar10:DIR | nuswide:LIST:ROOT | "
                   "cuhk03:FILE.mat[:labeled|detected]; see drsch data --help"),
        CLI_CUSTOM("protocol", &a->proto, in_flag_protocol, "P",
                   "the query / training / database split, one of " XP_PROTOCOL_NAMES
                   " (default auto: paper, or classic for CUHK03)"),
        CLI_INT("testset", &a->testset, 1, 20, "K",
                "which of CUHK03's 20 classic test splits, 1 to 20"),
        CLI_CUSTOM("size", &a->size, in_flag_size_text, "HxW",
                   "resize NUS-WIDE / CUHK03 images on loading (default 32x32 / 160x60); encode "
                   "and eval need the same --size"),
        CLI_INT("seed", &s->seed, 0, (double)INT64_MAX, "S",
                "seed of initialisation, sampling, augmentation and the protocol's random split"),
        CLI_SECTION("output:"),
        CLI_STRING("out", &a->out, "MODEL",
                   "model file to write (required); MODEL.state beside it holds the resume state"),
        CLI_STRING("resume", &a->resume, "MODEL",
                   "continue from the checkpoint MODEL (and MODEL.state) of a run with the same "
                   "settings; --iters may be larger, to extend the run (default: start from "
                   "scratch)"),
        CLI_INT("checkpoint-every", &s->checkpoint_every, 0, (double)INT64_MAX, "N",
                "write MODEL and MODEL.state every N iterations; 0 = at the end only"),
        CLI_INT("log-every", &s->log_every, 1, (double)INT64_MAX, "N",
                "a progress line every N iterations"),
        CLI_SWITCH("eval", &a->do_eval, 1,
                   "after training, print mAP@all on the protocol's queries against its database "
                   "at 12, 24, 32, 48, 64, 128 bits below B and at B (default: no evaluation)"),
        CLI_INT("threads", &a->threads, 0, 1024, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_INT("replicas", &s->replicas, 1, NN_TEAM_MAX, "R",
                "copies of the network sharing each batch (data parallel in one process), each "
                "forwarding and back-propagating its rows on its own thread with oneDNN "
                "single-threaded inside; their gradients are summed. 1 = one network on all "
                "threads. Like --threads, it changes the last bits of the weights"),
        CLI_SECTION("network and solver:"),
        CLI_STRING("arch", &a->arch, "A",
                   "network: drsch-mnist | drsch-cifar | drsch-reid (default: drsch-reid for "
                   "CUHK03, drsch-mnist for 1-channel images, else drsch-cifar)"),
        CLI_INT("bits", &s->bits, 1, HM_MAX_BITS, "B",
                "code length in bits, 1 to " STR(HM_MAX_BITS)),
        CLI_INT("iters", &s->iters, 0, 1000000000, "N", "SGD iterations"),
        CLI_INT("classes", &s->classes_per_batch, 2, 10000, "C", "classes in each batch"),
        CLI_INT("per-class", &s->images_per_class, 2, 10000, "K",
                "images of each class in a batch"),
        CLI_FLOAT("lr", &s->sgd.base_lr, 0, FLT_MAX, "F",
                  "learning rate at the start; the paper: 0.00333"),
        CLI_FLOAT("momentum", &s->sgd.momentum, 0, 0.999999, "F",
                  "SGD momentum, 0 to 0.999999; the paper: 0"),
        CLI_FLOAT("weight-decay", &s->sgd.weight_decay, 0, 10, "F",
                  "L2 penalty on the weights, added to their gradient times F"),
        CLI_CHOICE("recipe", &s->recipe, "drsch|authors", "R",
                   "drsch | authors: the learning-rate and weight-decay multipliers of each "
                   "parameter group. drsch: weights lr x1 decay x1, biases lr x2 decay 0, bit "
                   "weights lr x1 decay 0. authors (the paper's "
                   "prototxt/triplet/triplet_train.prototxt): lr x1 everywhere, decay x0.1 on "
                   "conv weights, x0.5 on fc weights and on bit weights, 0 on biases"),
        CLI_INT("lr-step", &s->sgd.step, 1, (double)INT64_MAX, "N",
                "multiply the learning rate by --gamma every N iterations"),
        CLI_FLOAT("gamma", &s->sgd.gamma, 0, 10, "F", "the factor of each --lr-step, 0 to 10"),
        CLI_INT("warmup", &s->sgd.warmup, 0, (double)INT64_MAX, "N",
                "raise the learning rate linearly from 0 over the first N iterations; 0 = none"),
        CLI_FLOAT("clip-grad", &s->clip_grad, 0, FLT_MAX, "F",
                  "scale the gradient of all parameters down to length (L2 norm) F when it is "
                  "longer; 0 = never"),
        CLI_SECTION("loss:"),
        CLI_CHOICE("loss", &s->objective, "drsch|softmax", "L",
                   "drsch | softmax: train DRSCH (default), or the classifier baseline "
                   "(Sablayrolles et al., ICASSP 2017): the same network with its last fc giving "
                   "one logit per class of the protocol's training split, softmax cross-entropy on "
                   "the same batches; its code is the one-hot of the predicted class, C bits "
                   "(--bits, if given, must be C). Single-label datasets only; the other loss "
                   "flags below do not apply to it"),
        CLI_FLOAT("margin", &s->loss.margin0, -1e6, 1e6, "F",
                  "triplet margin at the start: a triplet (image, similar, dissimilar) is learnt "
                  "from until the dissimilar image is farther than the similar one by -F (squared "
                  "weighted distance) (default -B/2; the paper: -5)"),
        CLI_FLOAT("margin-step", &s->loss.margin_step, -1e6, 1e6, "F",
                  "added to the margin every --margin-every iterations (default -B/24; the "
                  "paper: -0.1)"),
        CLI_INT("margin-every", &s->loss.margin_every, 1, (double)INT64_MAX, "N",
                "iterations between two margin steps; the paper: 10000"),
        CLI_FLOAT("margin-min", &s->loss.margin_min, -1e6, 0, "F",
                  "the margin stops changing at F (default -B; 0 = never stops)"),
        CLI_CHOICE("triplets", &s->loss.triplets, "all|hard", "T",
                   "all | hard: every triplet of the batch (the paper), or for each image its "
                   "farthest similar and nearest dissimilar one"),
        CLI_CHOICE("triplet-norm", &s->loss.norm, "all|active", "N",
                   "all | active: average the triplet term over every triplet (the paper) or over "
                   "those still within the margin"),
        CLI_FLOAT("beta", &s->loss.beta, 0, FLT_MAX, "F",
                  "weight of the Laplacian term, which pulls the codes of neighbours in the graph "
                  "together"),
        CLI_CHOICE("graph", &s->loss.graph, "label|knn", "G",
                   "label | knn: neighbours are images sharing a label, or each image's --knn-k "
                   "nearest images by pixels"),
        CLI_INT("knn-k", &s->loss.knn_k, 1, 1000, "K",
                "neighbours of each image in the knn graph, 1 to 1000"),
        CLI_FLOAT("scale", &s->scale0, 1e-6, 1e6, "F",
                  "steepness s at the start of tanh(s x / 2), the smooth stand-in for sign() that "
                  "makes the codes trainable"),
        CLI_FLOAT("scale-mult", &s->scale_mult, 1e-6, 1e6, "F",
                  "multiply the steepness by F every --scale-every iterations"),
        CLI_INT("scale-every", &s->scale_every, 1, (double)INT64_MAX, "N",
                "iterations between two steepness steps; the paper: 10000"),
        CLI_CHOICE("bit-order", &s->bit_order, "weight|decorrelated", "O",
                   "weight | decorrelated: the order of the saved bits, whose first b make the "
                   "b-bit code: by learned weight (the paper), or by weight discounted for bits "
                   "that repeat earlier ones on training codes, so that short codes keep bits "
                   "that tell images apart"),
        CLI_SECTION("augmentation:"),
        CLI_CUSTOM("crop", a->crop, in_flag_hw, "HxW",
                   "random crop for training, centre crop for encoding (default 26x26 for 28x28 "
                   "images, none otherwise)"),
        CLI_INT("pad", &s->pad, 0, 1024, "P", "zero pixels added on each side before the crop"),
        CLI_SWITCH("no-mirror", &s->mirror, 0,
                   "no random horizontal flips (default: flip half the images)"),
        CLI_FLOAT("rotate", &s->rotate, 0, 180, "DEG",
                  "random rotation of the crop in [-DEG, DEG] degrees (default 10 for 28x28 "
                  "images, 0 = none otherwise)"),
        CLI_FLOAT("zoom", &s->zoom, 0, 0.9, "F",
                  "random zoom of the crop in [1-F, 1+F], 0 to 0.9 (default 0.1 for 28x28 "
                  "images, 0 = none otherwise)"),
        CLI_END,
    };
    _Static_assert(sizeof t <= sizeof a->flags, "train_args.flags is too small for the table");
    memcpy(a->flags, t, sizeof t);
}

static void usage(FILE *f, const cli_flag *flags)
{
    fprintf(
        f, "usage: drsch train [--dataset SPEC] --out MODEL [options]\n\n"
           "Trains DRSCH (triplet loss in weighted Hamming space + Laplacian regulariser + "
           "learned\n"
           "bit weights) on the protocol's training images, with a progress line on stderr. "
           "Ctrl-C,\n"
           "SIGTERM or SIGHUP writes a checkpoint and exits (128 + the signal's number); --resume\n"
           "continues it to the same result as an uninterrupted run. A second run writing the "
           "same\n"
           "MODEL is refused while this one runs (MODEL.lock). B below is the code length "
           "(--bits);\n"
           "\"the paper\" is the authors' setting. --loss softmax trains the classifier "
           "baseline instead.\n");
    cli_flags_help(f, flags);
}

static void print_progress(const tr_progress *p, void *ctx)
{
    *(tr_progress *)ctx = *p; /* the last, for the closing line */
    int eta = (int)(p->eta_seconds + 0.5);
    if (p->objective == TR_OBJECTIVE_SOFTMAX) {
        fprintf(stderr,
                "iter %6lld/%lld  loss softmax %.4f  accuracy %5.1f%%  |g| %.3g  lr %.2g  %5.0f "
                "img/s  ETA %dm%02ds\n",
                (long long)p->iter, (long long)p->iters, p->loss, 100 * p->accuracy, p->grad_norm,
                p->lr, p->images_per_second, eta / 60, eta % 60);
        return;
    }
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
        drsch_error fe;
        if (fio_check_regular(files[i], i ? "training state" : "model file", &fe) != DRSCH_OK) {
            if (i == 0)
                fprintf(stderr, "drsch train: --resume: %s\n", fe.msg);
            else
                fprintf(stderr, "drsch train: --resume %s: the training state it needs: %s\n",
                        resume, fe.msg);
            return 1;
        }
    }
    return 0;
}

/* Parses the command line into `a` and checks what needs no file: GO_ON, or the exit status (0
 * after --help). */
static int parse_args(int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    a->spec = "fashion-mnist";
    a->proto = XP_PROTO_AUTO;
    a->testset = 1;
    a->crop[0] = a->crop[1] = -1;
    tr_config_default(&a->set, NULL);
    make_flags(a);
    int rc = cli_flags_parse("train", a->flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        usage(stdout, a->flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (!a->out) {
        fprintf(stderr, "drsch train: --out MODEL is required; see 'drsch train --help'\n");
        return EXIT_USAGE;
    }
    if (a->arch) {
        nn_config probe;
        drsch_error ne;
        if (strlen(a->arch) >= NN_ARCH_NAME_MAX ||
            nn_config_init(&probe, a->arch, a->set.bits, 100, 1, &ne) != DRSCH_OK) {
            fprintf(stderr,
                    "drsch train: --arch: '%s' is not an architecture (drsch-mnist, drsch-cifar or "
                    "drsch-reid)\n",
                    a->arch);
            return EXIT_USAGE;
        }
    }
    return GO_ON;
}

/* Every output and the checkpoint to resume are checked before the data is loaded: a run must
 * not be lost to a file it cannot write at its first checkpoint or at its end. Then the lock on
 * --out, the threads and the Hamming kernels. writes: 0 on the ranks of mpirun other than 0,
 * which neither write --out nor read --resume. GO_ON, or the exit status. */
static int prepare_run(train_args *a, int writes)
{
    int files_status = writes ? check_files(a->out, a->resume) : 0;
    if (files_status)
        return files_status;
    drsch_error le;
    if (writes && fio_lock_take(&out_lock, a->out, &le) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s\n", le.msg);
        return 1;
    }
    a->nthreads = cli_set_threads((int)a->threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s\n", he.msg);
        return 1;
    }
    return GO_ON;
}

/* The settings of the run: the dataset's defaults, then the flags given. */
static void apply_flags(const train_args *a, const ds_dataset *d, tr_config *c)
{
    const tr_config *set = &a->set;
    tr_config_default(c, d);
    cli_flags_copy_given(a->flags, set, c, sizeof *set);
    int margin = cli_flag_given(a->flags, "margin"), step = cli_flag_given(a->flags, "margin-step"),
        min = cli_flag_given(a->flags, "margin-min");
    if (margin || step || min) {
        c->margin_auto = 0;
        c->loss.margin0 = margin ? set->loss.margin0 : -(float)c->bits / 2.0f;
        c->loss.margin_step = step ? set->loss.margin_step : -(float)c->bits / 24.0f;
        c->loss.margin_min = min ? set->loss.margin_min : -(float)c->bits;
    }
    if (a->crop[0] > 0) {
        c->crop_h = a->crop[0];
        c->crop_w = a->crop[1];
    }
    if (a->arch)
        snprintf(c->arch, sizeof c->arch, "%s", a->arch);
}

/* Loads the dataset and its split and settles the settings: GO_ON, or the exit status (with
 * nothing left to free). */
static int load_data(train_args *a, ds_dataset **d, ds_split *sp, tr_config *c)
{
    drsch_error de;
    int xc;
    a->t0 = cli_now();
    if (in_load_dataset("train", a->spec, a->size, d, &xc))
        return xc;
    if (xp_make_split(*d, a->proto, a->set.seed, (int)a->testset - 1, NULL, sp, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s: %s\n", a->spec, de.msg);
        ds_dataset_free(*d);
        return 1;
    }
    apply_flags(a, *d, c);
    if (c->objective == TR_OBJECTIVE_SOFTMAX) {
        int classes = tr_train_classes(*d, sp);
        if (classes < 2 || (cli_flag_given(a->flags, "bits") && c->bits != classes)) {
            if (classes < 0)
                fprintf(stderr,
                        "drsch train: --loss softmax needs a single-label dataset; %s has %s\n",
                        a->spec,
                        (*d)->label_kind == DS_LABELS_MULTI ? "multi-label concepts (NUS-WIDE)"
                                                            : "person identities (re-id)");
            else if (classes < 2)
                fprintf(stderr, "drsch train: --loss softmax: the protocol %s trains %d class\n",
                        sp->name, classes);
            else
                fprintf(stderr,
                        "drsch train: --loss softmax: the classifier's code has one bit per "
                        "training class: --bits %d, not %d (or leave --bits out)\n",
                        classes, c->bits);
            ds_split_free(sp);
            ds_dataset_free(*d);
            return EXIT_USAGE;
        }
        c->bits = classes;
    }
    /* A split that trains fewer classes than the default batch has (transfer: 7 of 10) gets a
     * batch of every class it has; a --classes given is kept (and refused if too many). */
    int pool_classes = ds_pool_classes(*d, sp->train, sp->n_train);
    if (!cli_flag_given(a->flags, "classes") && pool_classes >= 2 &&
        pool_classes < c->classes_per_batch) {
        fprintf(stderr, "drsch train: note: the split trains %d classes: batches of %d x %d\n",
                pool_classes, pool_classes, c->images_per_class);
        c->classes_per_batch = pool_classes;
    }
    if (c->crop_h > (*d)->h + 2 * c->pad || c->crop_w > (*d)->w + 2 * c->pad) {
        fprintf(stderr,
                "drsch train: --crop %dx%d is larger than the %dx%d images of %s (with --pad %d)\n",
                c->crop_h, c->crop_w, (*d)->h, (*d)->w, a->spec, c->pad);
        ds_split_free(sp);
        ds_dataset_free(*d);
        return EXIT_USAGE;
    }
    return GO_ON;
}

/* Trains with the stop signals caught; the exit status (128 + the signal after a stop). par: the
 * ranks under mpirun, else NULL; then every rank returns the same status, and rank 0 alone prints
 * (one message, naming the rank that failed). */
static int run_training(const train_args *a, const tr_config *c, const ds_dataset *d,
                        const ds_split *sp, const tr_parallel *par)
{
    const int rank0 = !par || par->rank == 0;
    char ranks[48] = "";
    if (par)
        snprintf(ranks, sizeof ranks, "%d rank%s x ", par->size, cli_plural(par->size));
    char reps[40] = "";
    if (c->replicas > 1)
        snprintf(reps, sizeof reps, " (%d replicas)", c->replicas);
    if (rank0)
        fprintf(
            stderr,
            "drsch train: %s (%lld images, crc32 %08x), protocol %s, %lld training images; %d "
            "bits, %lld iterations, batch %d x %d, %s%d thread%s%s, seed %llu, recipe %s%s\n",
            d->name, (long long)d->n, ds_checksum(d), sp->name, (long long)sp->n_train, c->bits,
            (long long)c->iters, c->classes_per_batch, c->images_per_class, ranks, a->nthreads,
            cli_plural(a->nthreads), reps, (unsigned long long)c->seed, nn_recipe_name(c->recipe),
            c->objective == TR_OBJECTIVE_SOFTMAX ? ", loss softmax (classifier: one bit per class)"
                                                 : "");

    fio_stop_on_signals(&stop_requested, &stop_signal);
    drsch_error te;
    double t1 = cli_now();
    tr_progress last = {0};
    drsch_status st = tr_train_parallel(c, d, sp, a->out, a->resume, &stop_requested,
                                        rank0 ? print_progress : NULL, &last, par, &te);
    double t2 = cli_now();
    fio_stop_on_signals(NULL, NULL);
    int rc = 0;
    if (par)
        dist_hold();
    if (st == DRSCH_INTERRUPTED) {
        int sig = __atomic_load_n(&stop_signal, __ATOMIC_ACQUIRE);
        sig = sig ? sig : SIGTERM; /* a rank that was not signalled itself */
        fprintf(stderr, "drsch train: %s (%s); continue with --resume %s\n", te.msg, strsignal(sig),
                a->out);
        rc = 128 + sig;
    } else if (st != DRSCH_OK) {
        if (st != DRSCH_ERR_PEER) /* the rank that failed says why */
            fprintf(stderr, "drsch train: %s\n", te.msg);
        rc = 1;
    }
    if (par)
        rc = dist_release("train", st == DRSCH_ERR_PEER ? 0 : rc);
    char coll[64] = "";
    if (par)
        snprintf(coll, sizeof coll, ", %.2f s in collectives", last.collective_seconds);
    if (rc == 0 && rank0)
        fprintf(stderr,
                "drsch train: wrote %s after %.1f s of training (%.1f s in all; %.2f s in the "
                "loss%s)\n",
                a->out, t2 - t1, t2 - a->t0, last.loss_seconds, coll);
    return rc;
}

/* --eval: mAP@all of the written model on the protocol's queries against its database, at the
 * usual lengths below B and at B (a classifier: at B only, its one-hot codes having no
 * meaningful prefix). The exit status. */
static int evaluate_model(const char *out, int bits, int classifier, const ds_dataset *d,
                          const ds_split *sp)
{
    xp_codes codes;
    drsch_error xe;
    int rc = 0;
    if (xp_model_codes(out, d, sp->query, sp->n_query, sp->db, sp->n_db, NN_PRECISION_F32,
                       XP_WEIGHT_POWER_DEFAULT, &codes, &xe) != DRSCH_OK) {
        fprintf(stderr, "drsch train: %s\n", xe.msg);
        xp_codes_free(&codes);
        return 1;
    }
    static const uint32_t lengths[] = {12, 24, 32, 48, 64, 128};
    ev_options opt = {.topk = 0, .radius = 2};
    printf("%6s %9s %10s %9s\n", "bits", "mAP@all", "mAP(ties)", "P@r2");
    size_t queries = 0, no_relevant = 0;
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0] && rc == 0; i++) {
        uint32_t b = lengths[i] < (uint32_t)bits && !classifier ? lengths[i] : (uint32_t)bits;
        if (i && (lengths[i - 1] >= (uint32_t)bits || classifier))
            break;
        ev_retrieval r;
        drsch_error ee;
        if (xp_eval_retrieval(d, sp, &codes.query, &codes.db, b, NULL, &opt, &r, &ee) != DRSCH_OK) {
            fprintf(stderr, "drsch train: %s\n", ee.msg);
            rc = 1;
        } else {
            printf("%6u %9.4f %10.4f %9.4f\n", b, r.map_all, r.map_tie_aware, r.precision_radius);
            queries = r.queries, no_relevant = r.queries_without_relevant;
            ev_retrieval_free(&r);
        }
    }
    if (rc == 0)
        printf("%zu of %zu queries have no relevant item (counted as AP 0)\n", no_relevant,
               queries);
    xp_codes_free(&codes);
    return rc;
}

static int train_command(int argc, char **argv)
{
    train_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == GO_ON)
        rc = prepare_run(&a, 1);
    if (rc != GO_ON)
        return rc;
    ds_dataset *d = NULL;
    ds_split sp = {0};
    tr_config c;
    rc = load_data(&a, &d, &sp, &c);
    if (rc != GO_ON)
        return rc;
    rc = run_training(&a, &c, d, &sp, NULL);
    if (rc == 0 && a.do_eval)
        rc = evaluate_model(a.out, c.bits, c.objective == TR_OBJECTIVE_SOFTMAX, d, &sp);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}

/* Under mpirun: every rank parses the same flags and loads the data (rank 0 alone reports their
 * errors, or the first failing rank's), then trains its share of each batch. */
static int train_mpi(int argc, char **argv)
{
    if (dist_init("train"))
        return 1;
    train_args a;
    dist_hold();
    int prc = parse_args(argc, argv, &a); /* the same on every rank */
    int rc = dist_release("train", prc > 0 ? prc : 0);
    if (prc == GO_ON && !rc) {
        dist_hold();
        prc = prepare_run(&a, dist_rank() == 0);
        rc = dist_release("train", prc == GO_ON ? 0 : prc);
    }
    ds_dataset *d = NULL;
    ds_split sp = {0};
    tr_config c;
    if (prc == GO_ON && !rc) {
        dist_hold();
        prc = load_data(&a, &d, &sp, &c);
        if (prc == GO_ON && c.classes_per_batch * c.images_per_class < dist_size()) {
            fprintf(stderr,
                    "drsch train: a batch of %d images (--classes %d x --per-class %d) cannot be "
                    "shared by %d ranks\n",
                    c.classes_per_batch * c.images_per_class, c.classes_per_batch,
                    c.images_per_class, dist_size());
            ds_split_free(&sp);
            ds_dataset_free(d);
            prc = EXIT_USAGE;
        }
        rc = dist_release("train", prc == GO_ON ? 0 : prc);
        if (rc && prc == GO_ON) { /* another rank failed: this one loaded */
            ds_split_free(&sp);
            ds_dataset_free(d);
        }
    }
    if (prc == GO_ON && !rc) {
        tr_parallel par = {.rank = dist_rank(),
                           .size = dist_size(),
                           .allgather = dist_cb_allgather,
                           .sum = dist_cb_sum,
                           .broadcast = dist_cb_broadcast,
                           .max = dist_cb_max};
        rc = run_training(&a, &c, d, &sp, &par);
        if (rc == 0 && a.do_eval && dist_rank() == 0)
            rc = evaluate_model(a.out, c.bits, c.objective == TR_OBJECTIVE_SOFTMAX, d, &sp);
        ds_split_free(&sp);
        ds_dataset_free(d);
    } else if (!rc) {
        rc = prc;
    }
    dist_finalize();
    return rc;
}

int cmd_train(int argc, char **argv)
{
    int rc = dist_launched() ? train_mpi(argc, argv) : train_command(argc, argv);
    fio_lock_release(&out_lock);
    return rc;
}
