/* drsch data info SPEC: what a dataset spec resolves to (path, counts, shapes, classes or
 * identities, checksum, protocol split sizes); drsch bench data: images/s of building augmented
 * class-balanced training batches (sampler + crop / mirror + float NCHW), which must stay far
 * above the network's training throughput. Thin layers over datasets/datasets.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "experiment.h"
#include "commands.h"
#include "datasets.h"
#include "flags.h"
#include "inputs.h"
#include "report.h"
#include "train.h"

typedef struct {
    ds_load_opts lo;
    xp_protocol proto;
    int64_t seed, testset;
    const char *config;
} info_opts;

#define INFO_FLAGS 8

/* The defaults of data info in o, its flags in `flags` (INFO_FLAGS rows). */
static void info_flags(info_opts *o, cli_flag *flags)
{
    *o = (info_opts){.proto = XP_PROTO_AUTO, .seed = 1, .testset = 1};
    ds_load_opts_default(&o->lo);
    const cli_flag rows[] = {
        CLI_SECTION("options:"),
        CLI_CUSTOM("protocol", &o->proto, in_flag_protocol, "P",
                   "split to describe: auto, paper, paper-db-train, full, classic (CUHK03 20 "
                   "testsets), new (CUHK03 767/700), cifar10, cifar10-1, cifar10-2, nuswide-21, "
                   "transfer (75% of the classes train, queries and database from the others), "
                   "none (default auto: paper for labelled sets, classic for CUHK03)"),
        CLI_STRING("config", &o->config, "FILE",
                   "cuhk03_new_protocol_config_{labeled,detected}.mat for --protocol new "
                   "(default: none)"),
        CLI_INT("seed", &o->seed, 0, INT64_MAX, "S", "seed of the protocol's random split"),
        CLI_INT("testset", &o->testset, 1, 1000, "K",
                "CUHK03 classic: which test split, 1 to the file's count (20)"),
        CLI_CUSTOM("size", &o->lo, in_flag_load_size, "HxW",
                   "resize target for NUS-WIDE / CUHK03 images (default: 32x32 / 160x60)"),
        CLI_SWITCH("skip-bad", &o->lo.skip_bad_images, 1,
                   "NUS-WIDE: skip missing or undecodable images and count them (default: fail on "
                   "the first one)"),
        CLI_END,
    };
    _Static_assert(sizeof rows == INFO_FLAGS * sizeof(cli_flag), "INFO_FLAGS");
    memcpy(flags, rows, sizeof rows);
}

static void info_usage(FILE *f, const cli_flag *flags)
{
    fprintf(f,
            "usage: drsch data info SPEC [options]\n\n"
            "Loads a dataset and prints where it was read from, image count and shape, classes\n"
            "(or concepts / identities) with their image counts, the official train/test subsets,\n"
            "skipped images, the CRC-32 checksum that reports record, and the protocol split.\n\n"
            "SPEC: fashion-mnist | mnist[:DIR] | cifar10[:DIR] | nuswide[:LIST:IMGROOT] |\n"
            "      cuhk03[:FILE.mat][:labeled|detected]\n"
            "  Bare names resolve under $DRSCH_DATA (fashion-mnist/, mnist/, cifar10/,\n"
            "  nuswide/list.txt + nuswide/images/, cuhk03/cuhk-03.mat); fashion-mnist falls back\n"
            "  to " DS_FASHION_MNIST_SYSTEM_DIR " (Debian package dataset-fashion-mnist).\n");
    cli_flags_help(f, flags);
}

static const char *label_kind_name(ds_label_kind k)
{
    return k == DS_LABELS_MULTI      ? "multi-label (multi-hot)"
           : k == DS_LABELS_IDENTITY ? "identity (re-id)"
                                     : "single label";
}

/* The image counts of each class (concept), or of the identities and cameras (re-id). */
static int print_classes(const ds_dataset *d)
{
    int64_t *counts = calloc((size_t)d->n_classes + 1, sizeof *counts);
    if (!counts) {
        fprintf(stderr, "drsch data info: out of memory\n");
        return -1;
    }
    ds_class_counts(d, counts);
    if (d->label_kind == DS_LABELS_IDENTITY) {
        int64_t mn = INT64_MAX, mx = 0, with = 0;
        for (int k = 0; k < d->n_classes; k++) {
            if (counts[k] == 0)
                continue;
            with++;
            mn = counts[k] < mn ? counts[k] : mn;
            mx = counts[k] > mx ? counts[k] : mx;
        }
        printf("per id:    %lld identities with images, %lld to %lld images each\n",
               (long long)with, (long long)(with ? mn : 0), (long long)mx);
        printf("cameras:   %d pairs x 2 cameras; persons per pair:", d->n_pairs);
        for (int p = 0; p < d->n_pairs; p++)
            printf(" %d", d->pair_persons[p]);
        printf("\ntestsets:  %d of %d identities\n", d->n_testsets, d->testset_rows);
    } else {
        printf("per %s:\n", d->label_kind == DS_LABELS_MULTI ? "concept" : "class");
        for (int k = 0; k < d->n_classes; k++)
            printf("  %3d  %-14s %8lld\n", k,
                   d->class_names && d->class_names[k] ? d->class_names[k] : "",
                   (long long)counts[k]);
    }
    free(counts);
    return 0;
}

/* What the dataset is: source, images, labels, subsets, checksum, classes. */
static int print_dataset(const ds_dataset *d)
{
    printf("dataset:   %s\n", d->name);
    printf("source:    %s\n", d->source);
    printf("images:    %lld (uint8 %d x %d x %d, C x H x W)\n", (long long)d->n, d->c, d->h, d->w);
    printf("labels:    %s, %d %s\n", label_kind_name(d->label_kind), d->n_classes,
           d->label_kind == DS_LABELS_MULTI      ? "concepts"
           : d->label_kind == DS_LABELS_IDENTITY ? "identities"
                                                 : "classes");
    if (d->subset) {
        int64_t test = 0;
        for (int64_t i = 0; i < d->n; i++)
            test += d->subset[i] != 0;
        printf("subsets:   %lld official training images, %lld official test images\n",
               (long long)(d->n - test), (long long)test);
    }
    if (d->n_skipped)
        printf("skipped:   %lld images (missing or undecodable)\n", (long long)d->n_skipped);
    printf("checksum:  crc32 %08x (images, labels%s)\n", ds_checksum(d),
           d->cams ? ", cameras" : "");
    return print_classes(d);
}

/* The split of the protocol asked for; exit status 1 when it does not apply (not for auto). */
static int print_protocol(const ds_dataset *d, const info_opts *o)
{
    if (o->proto == XP_PROTO_NONE)
        return 0;
    ds_split sp;
    drsch_error err;
    if (xp_make_split(d, o->proto, (uint64_t)o->seed, (int)o->testset - 1, o->config, &sp, &err) !=
        DRSCH_OK) {
        printf("protocol:  not applicable: %s\n", err.msg);
        return o->proto == XP_PROTO_AUTO ? 0 : 1;
    }
    printf("protocol:  %s\n", sp.name);
    printf("split:     %lld query, %lld train, %lld database\n", (long long)sp.n_query,
           (long long)sp.n_train, (long long)sp.n_db);
    ds_split_free(&sp);
    return 0;
}

static int data_info(int argc, char **argv)
{
    info_opts o;
    cli_flag flags[INFO_FLAGS];
    info_flags(&o, flags);
    int first = 0;
    int rc = cli_flags_parse("data info", flags, argc, argv, &first);
    if (rc == CLI_FLAGS_HELP) {
        info_usage(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (first != argc - 1) {
        fprintf(stderr,
                "drsch data info: expected exactly one dataset SPEC; see drsch data --help\n");
        return EXIT_USAGE;
    }
    const char *spec = argv[first];
    drsch_error err;
    ds_dataset *d = NULL;
    double t0 = cli_now();
    if (ds_load(spec, &o.lo, &d, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch data info: %s\n", err.msg);
        return err.status == DRSCH_ERR_ARG ? EXIT_USAGE : 1;
    }
    fprintf(stderr, "drsch data info: loaded %s in %.2f s\n", d->name, cli_now() - t0);
    rc = print_dataset(d) ? 1 : print_protocol(d, &o);
    ds_dataset_free(d);
    return rc;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        info_opts o;
        cli_flag flags[INFO_FLAGS];
        info_flags(&o, flags);
        info_usage(argc < 2 ? stderr : stdout, flags);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "info"))
        return data_info(argc - 1, argv + 1);
    fprintf(stderr, "drsch data: unknown subcommand '%s'; see 'drsch data --help'\n", argv[1]);
    return EXIT_USAGE;
}

/* ---------------------------------------------------------------- bench data ------------- */

typedef struct {
    const char *spec, *json;
    int64_t classes, per_class, pad, iters, reps, threads, seed;
    int crop[2]; /* H, W; 0 = the image size minus 2 */
    int mirror;
    float rotate, zoom; /* < 0: training's default for the dataset */
} bench_opts;

/* Parses and checks the flags of bench data; returns -1 to go on, else the exit status. */
static int bench_parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.spec = "fashion-mnist",
                      .classes = 10,
                      .per_class = 10,
                      .iters = 2000,
                      .reps = 3,
                      .seed = 1,
                      .mirror = 1,
                      .rotate = -1.0f,
                      .zoom = -1.0f};
    cli_flag flags[] = {
        CLI_STRING("dataset", &o->spec, "SPEC", "dataset (see drsch data --help)"),
        CLI_INT("classes", &o->classes, 1, 100000, "C",
                "classes per batch (default 10, the paper's sampling)"),
        CLI_INT("per-class", &o->per_class, 1, 100000, "K", "images per class"),
        CLI_CUSTOM("crop", o->crop, in_flag_hw, "HxW",
                   "crop size (default: image size minus 2, e.g. 26x26 for 28x28)"),
        CLI_INT("pad", &o->pad, 0, 1024, "P", "zero pixels added on each side before the crop"),
        CLI_SWITCH("no-mirror", &o->mirror, 0,
                   "no random horizontal flips (default: flip half the images)"),
        CLI_FLOAT("rotate", &o->rotate, 0, 180, "DEG",
                  "random rotation of the crop in [-DEG, DEG] degrees (default: training's, 10 for "
                  "28x28 images, 0 = none otherwise)"),
        CLI_FLOAT("zoom", &o->zoom, 0, 0.9, "F",
                  "random zoom of the crop in [1-F, 1+F], 0 to 0.9 (default: training's, 0.1 for "
                  "28x28 images, 0 = none otherwise)"),
        CLI_INT("iters", &o->iters, 1, 1000000000, "N", "batches per repetition, 1 to 1000000000"),
        CLI_INT("repetitions", &o->reps, 1, 1000, "R",
                "timed repetitions after one untimed one, 1 to 1000; the mean is reported"),
        CLI_INT("threads", &o->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads of the second run, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
        CLI_INT("seed", &o->seed, 0, INT64_MAX, "S",
                "seed of the protocol, the sampler and the augmentation"),
        CLI_STRING("json", &o->json, "FILE",
                   "also write a Google Benchmark-compatible report (default: none)"),
        CLI_END,
    };
    int rc = cli_flags_parse("bench data", flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch bench data [options] [--json FILE]\n\n"
               "Measures images/s of building augmented training batches as training does: the\n"
               "class-balanced sampler draws C classes x K images from the protocol's training\n"
               "images, then each image is cropped / mirrored (and turned and zoomed, as training\n"
               "does for 28x28 images), normalised and written as float32 NCHW (OpenMP over\n"
               "images). Runs once on 1 thread and once on --threads.\n\n");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (o->json && cli_check_output_file("bench data", "--json", o->json))
        return EXIT_USAGE;
    return -1;
}

/* What one run measures: the sampler and augmentation over d, and the batch buffers. */
typedef struct {
    const bench_opts *o;
    const ds_dataset *d;
    const ds_augment *aug;
    ds_sampler *smp;
    int64_t *idx;
    float *batch;
    int64_t bs;
} bench_run;

/* One run on nt threads: the mean wall and CPU seconds of --iters batches. */
static int time_batches(const bench_run *r, double *mean, double *mean_cpu)
{
    const bench_opts *o = r->o;
    drsch_error err;
    double wall = 0, cpu = 0;
    uint64_t it_seed = (uint64_t)o->seed;
    for (int64_t rep_i = -1; rep_i < o->reps; rep_i++) { /* rep -1 warms caches and threads up */
        double w0 = cli_now(), c0 = cli_cpu_seconds();
        for (int64_t it = 0; it < o->iters; it++) {
            ds_sampler_next(r->smp, r->idx, NULL);
            if (ds_batch_build(r->d, r->idx, r->bs, r->aug, it_seed++, r->batch, &err) !=
                DRSCH_OK) {
                fprintf(stderr, "drsch bench data: %s\n", err.msg);
                return -1;
            }
        }
        if (rep_i >= 0) {
            wall += cli_now() - w0;
            cpu += cli_cpu_seconds() - c0;
        }
    }
    *mean = wall / (double)o->reps;
    *mean_cpu = cpu / (double)o->reps;
    return 0;
}

/* The report's context and its data-loading entry. */
static void report_context(rp_report *rep, const bench_opts *o, const ds_dataset *d,
                           const ds_split *sp, double load_s)
{
    char buf[64], name[256];
    rp_context_set(rep, "dataset", o->spec);
    rp_context_set(rep, "dataset_name", d->name);
    rp_context_set(rep, "dataset_path", d->source);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_checksum", buf);
    rp_context_set(rep, "protocol", sp->name);
    rp_context_set_num(rep, "seed", (double)o->seed);
    snprintf(name, sizeof name, "BM_DataLoad/%s", d->name);
    rp_entry *le = rp_add(rep, name, 1, load_s * 1e3, load_s * 1e3, "ms", 1);
    rp_counter(le, "items_per_second", (double)d->n / load_s);
}

/* Times the batches on 1 thread and on --threads, prints the table and writes the report. */
static int bench_batches(const bench_opts *o, const ds_dataset *d, const ds_split *sp,
                         const ds_augment *aug, double load_s)
{
    int rc = 1;
    drsch_error err;
    bench_run r = {.o = o, .d = d, .aug = aug};
    rp_report *rep = NULL;
    if (ds_sampler_create(d, sp->train, sp->n_train, (int)o->classes, (int)o->per_class,
                          (uint64_t)o->seed, &r.smp, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        goto done;
    }
    r.bs = ds_sampler_batch_size(r.smp);
    size_t per = (size_t)d->c * (size_t)aug->out_h * (size_t)aug->out_w;
    r.idx = malloc((size_t)r.bs * sizeof *r.idx);
    r.batch = malloc((size_t)r.bs * per * sizeof *r.batch);
    rep = rp_create();
    if (!r.idx || !r.batch || !rep) {
        fprintf(stderr, "drsch bench data: out of memory\n");
        goto done;
    }
    report_context(rep, o, d, sp, load_s);
    int max_threads = cli_set_threads((int)o->threads);
    int runs[2] = {1, max_threads};
    int n_runs = max_threads > 1 ? 2 : 1;
    printf("%-8s %14s %14s %12s\n", "threads", "time/batch", "images/s", "batches/s");
    for (int i = 0; i < n_runs; i++) {
        int nt = cli_set_threads(runs[i]);
        double mean, mean_cpu;
        if (time_batches(&r, &mean, &mean_cpu))
            goto done;
        double ips = (double)(o->iters * r.bs) / mean;
        char name[256];
        snprintf(name, sizeof name,
                 "BM_DataBatch/%s/batch:%lldx%lld/crop:%dx%d/pad:%lld/mirror:%d/rotate:%g/"
                 "zoom:%g/threads:%d",
                 d->name, (long long)o->classes, (long long)o->per_class, aug->out_h, aug->out_w,
                 (long long)o->pad, o->mirror, (double)aug->rotate, (double)aug->scale_jitter, nt);
        rp_entry *e = rp_add(rep, name, o->iters, mean / (double)o->iters * 1e6,
                             mean_cpu / (double)o->iters * 1e6, "us", nt);
        rp_counter(e, "items_per_second", ips);
        rp_counter(e, "images_per_second", ips);
        rp_counter(e, "batch_size", (double)r.bs);
        printf("%-8d %11.2f us %14.0f %12.0f\n", nt, mean / (double)o->iters * 1e6, ips,
               (double)o->iters / mean);
    }
    fprintf(stderr, "drsch bench data: %s, %s\n", d->name, sp->name);
    if (o->json) {
        drsch_error re;
        if (rp_write(rep, o->json, &re) != DRSCH_OK) {
            fprintf(stderr, "drsch bench data: %s\n", re.msg);
            goto done;
        }
        fprintf(stderr, "drsch bench data: wrote %s\n", o->json);
    }
    rc = 0;
done:
    rp_free(rep);
    free(r.idx);
    free(r.batch);
    ds_sampler_free(r.smp);
    return rc;
}

int cmd_bench_data(int argc, char **argv)
{
    bench_opts o;
    int rc = bench_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    drsch_error err;
    ds_dataset *d = NULL;
    double t0 = cli_now();
    if (ds_load(o.spec, NULL, &d, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        return err.status == DRSCH_ERR_ARG ? EXIT_USAGE : 1;
    }
    double load_s = cli_now() - t0;
    fprintf(stderr, "drsch bench data: loaded %s (%lld images) in %.2f s\n", d->name,
            (long long)d->n, load_s);
    ds_split sp;
    if (xp_make_split(d, XP_PROTO_AUTO, (uint64_t)o.seed, 0, NULL, &sp, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        ds_dataset_free(d);
        return 1;
    }
    ds_augment aug;
    ds_augment_default(&aug);
    aug.out_h = o.crop[0] ? o.crop[0] : (d->h > 2 ? d->h - 2 : d->h);
    aug.out_w = o.crop[1] ? o.crop[1] : (d->w > 2 ? d->w - 2 : d->w);
    aug.pad = (int)o.pad;
    aug.random_crop = 1;
    aug.mirror = o.mirror;
    tr_config tc;
    tr_config_default(&tc, d);
    aug.rotate = o.rotate >= 0.0f ? o.rotate : tc.rotate;
    aug.scale_jitter = o.zoom >= 0.0f ? o.zoom : tc.zoom;
    rc = bench_batches(&o, d, &sp, &aug, load_s);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}
