/* drsch reproduce: one command regenerates the paper's table on a dataset. The experiments
 * (xp_retrieval.c, xp_reid.c) and the reports (report_write.c) are library code (reproduce.h); the
 * command parses the flags, locks the output folder (runs/<dataset>[-quick] by default, never the
 * committed results/), prints progress on stderr and the table on stdout, and ends with the line
 * saying whether the run reproduced its baseline report (results/<dataset>[-quick]/report.json of
 * the source tree, or --baseline).
 *
 * Under mpirun, the experiment's units of work (retrieval: models and baselines; re-id: splits)
 * are dealt out to the ranks (xp_parallel, reproduce.h): every rank loads the data and trains its
 * units into the output folder; rank 0 holds the folder's lock, gathers the results and writes
 * the report, the same as a serial run's. The other ranks' progress lines name their rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_progress.h"
#include "commands.h"
#include "dist.h"
#include "experiment.h"
#include "flags.h"
#include "fileio.h"
#include "inputs.h"
#include "report.h"
#include "report_read.h"
#include "reproduce.h"

#define MAX_LENGTHS XP_REPRO_MAX_LENGTHS

/* The flags (--out: the output folder, its default once the dataset is known). */
typedef struct {
    const char *spec, *out, *paper, *baseline, *bits, *recipes;
    int64_t long_bits, iters, splits, seed, threads, weight_power, replicas;
    int quick, gallery, no_classifier;
    ds_load_opts lo;
} flags;

/* A run: its flags, then what it prepares on the loaded dataset. */
typedef struct {
    flags f;
    int reid, threads_used, gallery_given, recipes_given;
    ds_spec dspec;
    char cmdline[2048];
    const ds_dataset *d;
    double t0;
    ds_split sp;         /* retrieval: the protocol's split */
    char protocol[1024]; /* its description */
    char dirbuf[256], committed[4200];
    xp_repro_config cfg;  /* --bits is parsed into cfg.lengths */
    cmd_progress_ctx who; /* the progress lines' command and rank */
} run;

/* Draws DIR/plots.gp with gnuplot; a missing or failing gnuplot is reported, not fatal (the data
 * and the script stay in DIR). */
static void run_gnuplot(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s/plots.gp'", dir);
    if (fio_system(cmd) != 0)
        fprintf(stderr,
                "drsch reproduce: gnuplot failed or is missing (Debian package gnuplot-nox); the "
                "curves are in %s/*.dat and %s/plots.gp\n",
                dir, dir);
}

/* The table of reproduce's flags (CLI_END last), into f (which holds the defaults). */
#define REPRODUCE_FLAGS 18
static void make_flags(flags *f, cli_flag out[REPRODUCE_FLAGS])
{
    const cli_flag t[REPRODUCE_FLAGS] = {
        CLI_STRING("dataset", &f->spec, "SPEC", "dataset, a spec as drsch data --help lists"),
        CLI_SWITCH("quick", &f->quick, 1,
                   "short schedule for CI (about 45 s on a 2-core Zen 5): 1000 iterations per "
                   "model; CUHK03: 150 iterations and 2 splits, about 45 s too (default: the full "
                   "schedule)"),
        CLI_STRING("out", &f->out, "DIR",
                   "output folder (default runs/<dataset>, runs/<dataset>-quick with --quick); an "
                   "explicit --out results/<dataset>[-quick] updates the committed results"),
        CLI_STRING("baseline", &f->baseline, "FILE",
                   "report to compare the run's accuracy with at the end, as drsch compare does "
                   "(default: results/<dataset>[-quick]-<oneDNN ISA>/report.json of the source "
                   "tree drsch was built from, else results/<dataset>[-quick]/report.json, when "
                   "there is one: trained weights depend on oneDNN's kernels)"),
        CLI_STRING("bits", &f->bits, "LIST", "code lengths, increasing"),
        CLI_INT("long-bits", &f->long_bits, 1, HM_MAX_BITS, "B",
                "the longer model truncated to each length"),
        CLI_STRING("recipes", &f->recipes, "LIST",
                   "retrieval: the training recipes of the longer model, one model each (drsch "
                   "train --recipe): drsch, authors (the paper's prototxt) or both; the models "
                   "trained at each length use drsch's (default drsch,authors; with --quick "
                   "drsch, to keep its time)"),
        CLI_SWITCH("no-classifier", &f->no_classifier, 1,
                   "retrieval: leave out the classifier baseline (the same network trained with "
                   "softmax cross-entropy, its code the one-hot of the predicted class; "
                   "single-label datasets; default: trained and shown)"),
        CLI_INT("iters", &f->iters, 1, (double)((int64_t)1 << 40), "N",
                "iterations per model (default 12000; CUHK03: 3000 per split, about 4.6 minutes "
                "each on a 2-core Zen 5); the learning rate steps down every third"),
        CLI_INT("splits", &f->splits, 1, 1000, "N",
                "CUHK03: run the first N classic splits (default all: 20 in the CUHK03 release; "
                "--quick: 2)"),
        CLI_CHOICE("reid-gallery", &f->gallery, EV_REID_GALLERY_CHOICES, "G",
                   "CUHK03: cross-camera (the test identities' first-camera images against their "
                   "second-camera images) or all (every test image a query against all the "
                   "others, as torchreid's classic split)"),
        CLI_CUSTOM("size", &f->lo, in_flag_load_size, "HxW",
                   "resize NUS-WIDE / CUHK03 images on loading (default 32x32 / 160x60)"),
        CLI_INT("seed", &f->seed, 0, INT64_MAX, "S",
                "seed of protocol, training, baselines and CMC sampling"),
        CLI_INT("threads", &f->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_INT("replicas", &f->replicas, 1, NN_TEAM_MAX, "R",
                "training replicas of every model (drsch train --replicas): R copies of the "
                "network share each batch, one per thread, and the models have the same bits at "
                "any --threads; 1 = one network on all threads (the committed baselines')"),
        CLI_INT("weight-power", &f->weight_power, 1, 2, "P",
                "the row \"DRSCH-B truncated, weighted ranking\" (saved order, drsch's recipe) "
                "ranks by the sum of |w|^P over differing bits: 2 by the distance the loss learned "
                "(sum of w^2), 1 by the sum of |w|; the other weighted rows name their power"),
        CLI_STRING("paper", &f->paper, "FILE",
                   "published figures (default: results/paper/drsch_map.csv of the source tree "
                   "drsch was built from)"),
        CLI_END,
    };
    memcpy(out, t, sizeof t);
}

static void usage(const cli_flag *table)
{
    printf("usage: drsch reproduce [--dataset SPEC] [--quick] [--out DIR] [options]\n\n"
           "Retrieval datasets: trains and evaluates DRSCH at 12, 24, 32 and 48 bits plus one\n"
           "longer model per recipe (--recipes), truncated to each length in its saved bit order\n"
           "and in the authors' (top |w|), ranked by Hamming distance and weighted (|w|, w^2),\n"
           "the classifier baseline (softmax; one-hot of the predicted class), LSH and ITQ under\n"
           "the same protocol, and writes the paper's table (mAP vs code length) with the\n"
           "published figures beside it.\n"
           "CUHK03 (cuhk03:FILE.mat[:labeled|detected]): the classic protocol, one split per\n"
           "testset: one model of --long-bits bits per split, truncated to each length, with LSH\n"
           "and ITQ; CMC rank 1/5/10/20, mAP and mINP per split and averaged, and the CMC curves.\n"
           "The last line says whether the run reproduced the committed figures (see\n"
           "--baseline).\n\n");
    cli_flags_help(stdout, table);
}

/* --bits LIST into r->cfg.lengths: 0, or EXIT_USAGE after printing why. */
static int parse_lengths(const flags *f, run *r)
{
    uint32_t *lengths = r->cfg.lengths;
    int nl = 0;
    for (const char *p = f->bits; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > f->long_bits || nl == MAX_LENGTHS ||
            (nl && (uint32_t)v <= lengths[nl - 1]) || (*end && *end != ',')) {
            fprintf(stderr,
                    "drsch reproduce: --bits: '%s' must be up to %d increasing lengths, each <= "
                    "--long-bits %lld\n",
                    f->bits, MAX_LENGTHS, (long long)f->long_bits);
            return EXIT_USAGE;
        }
        lengths[nl++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    if (nl == 0 || (uint32_t)f->long_bits <= lengths[nl - 1]) {
        fprintf(stderr, "drsch reproduce: --long-bits %lld must exceed the longest of --bits\n",
                (long long)f->long_bits);
        return EXIT_USAGE;
    }
    r->cfg.n_lengths = nl;
    return 0;
}

/* The flags and the code lengths of --bits: -1 to go on, else the exit status. */
static int parse(int argc, char **argv, run *r)
{
    flags *f = &r->f;
    *f = (flags){.spec = "fashion-mnist",
                 .paper = DRSCH_SOURCE_DIR "/results/paper/drsch_map.csv",
                 .bits = "12,24,32,48",
                 .long_bits = 64,
                 .iters = -1,
                 .splits = -1,
                 .seed = 1,
                 .weight_power = XP_WEIGHT_POWER_DEFAULT,
                 .replicas = 1,
                 .gallery = EV_REID_CROSS_CAMERA};
    ds_load_opts_default(&f->lo);
    rp_command_line("drsch", argc, argv, r->cmdline, sizeof r->cmdline); /* before parsing */
    cli_flag table[REPRODUCE_FLAGS];
    make_flags(f, table);
    int rc = cli_flags_parse("reproduce", table, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        usage(table);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (parse_lengths(f, r))
        return EXIT_USAGE;
    r->cfg.reid_gallery = (ev_reid_gallery)f->gallery;
    r->cfg.weight_power = (int)f->weight_power;
    r->cfg.no_classifier = f->no_classifier;
    r->gallery_given = cli_flag_given(table, "reid-gallery");
    r->recipes_given = cli_flag_given(table, "recipes");
    if (!f->recipes) /* the authors' model and its 27 evaluations would add half to --quick */
        f->recipes = f->quick ? "drsch" : "drsch,authors";
    drsch_error re;
    if (xp_repro_parse_recipes(f->recipes, &r->cfg, &re) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: --recipes: %s\n", re.msg);
        return EXIT_USAGE;
    }
    return -1;
}

/* The checks made before loading anything: the dataset spec and the flags that depend on it,
 * --out, and that --baseline is readable now, not only after the training. -1 to go on. */
static int check(run *r)
{
    drsch_error de;
    if (ds_spec_parse(r->f.spec, &r->dspec, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", de.msg);
        return EXIT_USAGE;
    }
    if (r->f.splits > 0 && r->dspec.kind != DS_KIND_CUHK03) {
        fprintf(stderr,
                "drsch reproduce: --splits counts CUHK03 classic splits; %s has a single protocol "
                "split\n",
                r->dspec.name);
        return EXIT_USAGE;
    }
    if (r->gallery_given && r->dspec.kind != DS_KIND_CUHK03) {
        fprintf(stderr,
                "drsch reproduce: --reid-gallery chooses CUHK03's queries and gallery; %s is not "
                "a re-id dataset\n",
                r->dspec.name);
        return EXIT_USAGE;
    }
    if (r->recipes_given && r->dspec.kind == DS_KIND_CUHK03) {
        fprintf(stderr,
                "drsch reproduce: --recipes chooses the retrieval experiment's long models; %s "
                "trains one model per split with drsch's recipe\n",
                r->dspec.name);
        return EXIT_USAGE;
    }
    if (r->f.lo.out_h && in_size_check("reproduce", r->f.spec))
        return EXIT_USAGE;
    if (r->f.out && cli_check_output_dir("reproduce", "--out", r->f.out))
        return EXIT_USAGE;
    if (r->f.baseline && dist_rank() == 0) { /* only rank 0 reads it */
        rp_read_report b;
        drsch_error be;
        if (rp_read_file(r->f.baseline, &b, &be) != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: --baseline: %s\n", be.msg);
            return EXIT_USAGE;
        }
        rp_read_free(&b);
    }
    return -1;
}

/* The protocol's split (retrieval) or splits (re-id), the output folder, the baseline's path and
 * the experiment's settings: -1 to go on, else the exit status. */
static int prepare(run *r)
{
    const ds_dataset *d = r->d;
    xp_repro_config *c = &r->cfg;
    c->long_bits = (uint32_t)r->f.long_bits;
    c->seed = (uint64_t)r->f.seed;
    c->paper_csv = r->f.paper;
    r->who = (cmd_progress_ctx){"reproduce", dist_rank()};
    c->progress = cmd_progress;
    c->progress_ctx = &r->who;
    if (r->reid) {
        drsch_error xe;
        drsch_status xs = xp_reid_splits(d, r->f.splits, r->f.quick, &c->splits, &xe);
        if (xs != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: %s\n", xe.msg);
            return xs == DRSCH_ERR_ARG ? EXIT_USAGE : 1;
        }
        xp_reid_protocol(d, c->splits, c->seed, c->reid_gallery, r->protocol, sizeof r->protocol);
    } else {
        drsch_error de;
        if (xp_make_split(d, XP_PROTO_AUTO, c->seed, 0, NULL, &r->sp, &de) != DRSCH_OK) {
            fprintf(stderr, "drsch reproduce: %s: %s\n", r->f.spec, de.msg);
            return 1;
        }
        snprintf(r->protocol, sizeof r->protocol, "%s", r->sp.name);
    }
    /* The folder name of the committed results of this run (results/NAME) and the default
     * output folder (runs/NAME), checked now that the dataset's name is known, before training. */
    char folder[128];
    snprintf(folder, sizeof folder, "%s%s", d->name, r->f.quick ? "-quick" : "");
    if (!r->f.out) {
        snprintf(r->dirbuf, sizeof r->dirbuf, "runs/%s", folder);
        r->f.out = r->dirbuf;
        if (cli_check_output_dir("reproduce", "--out", r->f.out))
            return EXIT_USAGE;
    }
    c->dir = r->f.out;
    if (r->f.baseline)
        snprintf(r->committed, sizeof r->committed, "%s", r->f.baseline);
    else { /* trained weights depend on oneDNN's kernels: the baseline made with this ISA's */
        snprintf(r->committed, sizeof r->committed, "%s/results/%s-%s/report.json",
                 DRSCH_SOURCE_DIR, folder, nn_onednn_isa());
        if (access(r->committed, R_OK) != 0)
            snprintf(r->committed, sizeof r->committed, "%s/results/%s/report.json",
                     DRSCH_SOURCE_DIR, folder);
    }
    xp_repro_train_config(d, r->reid, r->f.quick, r->f.iters, c->seed, &c->train);
    c->train.replicas = (int32_t)r->f.replicas;
    return -1;
}

/* The curves, their plots, report.json and table.md of the results; the table on stdout, then
 * the line saying whether the run reproduced its baseline. */
static int report(run *r, rp_report *rep, const xp_retrieval_result *ret,
                  const xp_reid_result *reid)
{
    char *md = NULL, report_path[4200], line[9000];
    drsch_error re;
    if (rp_repro_curves(r->f.out, r->d, &r->cfg, ret, reid, &re) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", re.msg);
        return 1;
    }
    run_gnuplot(r->f.out);
    double total = cli_now() - r->t0;
    rp_repro_info info = {r->cmdline, r->f.spec, r->protocol, r->threads_used, total};
    if (rp_repro_report(rep, &info, r->d, &r->cfg, ret, reid, &md, &re) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", re.msg);
        return 1;
    }
    snprintf(report_path, sizeof report_path, "%s/report.json", r->f.out);
    /* The baseline is read before the report is written: --out may be its folder. */
    rp_read_report ref = {0};
    int have_ref = rp_repro_read_baseline(r->committed, report_path, &ref, line, sizeof line);
    int status = rp_repro_write(rep, md, r->f.out, &re) != DRSCH_OK;
    if (status) {
        fprintf(stderr, "drsch reproduce: %s\n", re.msg);
    } else {
        fputs(md, stdout);
        fprintf(stderr, "drsch reproduce: wrote %s/report.json and %s/table.md in %.0f s\n",
                r->f.out, r->f.out, total);
        if (have_ref)
            rp_repro_line(rep, report_path, &ref, r->committed, line, sizeof line);
        printf("%s\n", line);
    }
    rp_read_free(&ref);
    free(md);
    return status;
}

/* Runs the experiment of the dataset into its folder, under the folder's lock (rank 0's, under
 * mpirun: every rank takes part in the experiment, rank 0 alone writes the report). */
static int run_all(run *r)
{
    const int rank0 = dist_rank() == 0, ranks = dist_size() > 1;
    if (ranks)
        dist_hold();
    int status = prepare(r);
    if (ranks && (status = dist_release("reproduce", status >= 0 ? status : 0)) == 0)
        status = -1;
    if (status >= 0)
        return status;
    /* One run per folder: a second reproduce into it is refused while this one runs. */
    fio_lock lock = {.fd = -1};
    drsch_error le;
    if (ranks)
        dist_hold();
    int locked = !rank0 || fio_lock_take(&lock, r->f.out, &le) == DRSCH_OK;
    if (!locked)
        fprintf(stderr, "drsch reproduce: %s\n", le.msg);
    status = ranks ? dist_release("reproduce", !locked) : !locked;
    if (status)
        return status;
    xp_parallel par = {.rank = dist_rank(),
                       .size = dist_size(),
                       .broadcast = dist_cb_broadcast_root,
                       .max = dist_cb_max};
    if (ranks)
        r->cfg.par = &par;
    rp_report *rep = rp_create();
    if (dist_agree_alloc("reproduce", ranks, !rep)) {
        rp_free(rep);
        fio_lock_release(&lock);
        return 1;
    }
    xp_retrieval_result ret = {0};
    xp_reid_result reid = {0};
    drsch_error xe;
    drsch_status xs = r->reid ? xp_reid_run(&r->cfg, r->d, &reid, &xe)
                              : xp_retrieval_run(&r->cfg, r->d, &r->sp, &ret, &xe);
    if (ranks) /* the failing rank's message, once */
        dist_hold();
    if (xs != DRSCH_OK && xs != DRSCH_ERR_PEER)
        fprintf(stderr, "drsch reproduce: %s\n", xe.msg);
    status = xs != DRSCH_OK && xs != DRSCH_ERR_PEER;
    if (ranks)
        status = dist_release("reproduce", status);
    if (status == 0 && rank0)
        status = report(r, rep, r->reid ? NULL : &ret, r->reid ? &reid : NULL);
    xp_retrieval_result_free(&ret);
    xp_reid_result_free(&reid);
    rp_free(rep);
    fio_lock_release(&lock);
    return status;
}

static int reproduce(int argc, char **argv)
{
    run r;
    memset(&r, 0, sizeof r); /* r.sp stays empty on the re-id path, which frees it too */
    const int ranks = dist_size() > 1;
    if (ranks)
        dist_hold();
    int status = parse(argc, argv, &r);
    if (status < 0)
        status = check(&r);
    if (ranks) { /* the same flags on every rank: rank 0 reports their errors */
        int rc = dist_release("reproduce", status >= 0 ? status : 0);
        status = status >= 0 ? status : rc ? rc : -1;
    }
    if (status >= 0)
        return status;
    r.reid = r.dspec.kind == DS_KIND_CUHK03;
    r.t0 = cli_now();
    r.threads_used = cli_set_threads((int)r.f.threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch reproduce: %s\n", he.msg);
        return 1;
    }
    if (dist_rank() == 0)
        fprintf(stderr, "drsch reproduce: loading %s%s\n", r.f.spec,
                ranks ? " (on every rank)" : "");
    ds_dataset *d = NULL;
    drsch_error de;
    if (ranks)
        dist_hold();
    int loaded = ds_load_spec(&r.dspec, &r.f.lo, &d, &de) == DRSCH_OK;
    if (!loaded)
        fprintf(stderr, "drsch reproduce: %s\n", de.msg);
    if ((ranks ? dist_release("reproduce", !loaded) : !loaded) != 0) {
        ds_dataset_free(d);
        return 1;
    }
    r.d = d;
    status = run_all(&r);
    ds_split_free(&r.sp);
    ds_dataset_free(d);
    return status;
}

int cmd_reproduce(int argc, char **argv) { return dist_main("reproduce", reproduce, argc, argv); }
