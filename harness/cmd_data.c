/* drsch data info SPEC: what a dataset spec resolves to (path, counts, shapes, classes or
 * identities, checksum, protocol split sizes); drsch bench data: images/s of building augmented
 * class-balanced training batches (sampler + crop / mirror + float NCHW), which must stay far
 * above the network's training throughput. Thin layers over datasets/datasets.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "experiment.h"
#include "commands.h"
#include "datasets.h"
#include "report.h"

static void data_usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch data info SPEC [options]\n\n"
        "Loads a dataset and prints where it was read from, image count and shape, classes\n"
        "(or concepts / identities) with their image counts, the official train/test subsets,\n"
        "skipped images, the CRC-32 checksum that reports record, and the protocol split.\n\n"
        "SPEC: fashion-mnist | mnist[:DIR] | cifar10[:DIR] | nuswide[:LIST:IMGROOT] |\n"
        "      cuhk03[:FILE.mat][:labeled|detected]\n"
        "  Bare names resolve under $DRSCH_DATA (fashion-mnist/, mnist/, cifar10/,\n"
        "  nuswide/list.txt + nuswide/images/, cuhk03/cuhk-03.mat); fashion-mnist falls back\n"
        "  to " DS_FASHION_MNIST_SYSTEM_DIR " (Debian package dataset-fashion-mnist).\n\n"
        "options:\n"
        "  --protocol P    split to describe: auto, paper, paper-db-train, full, classic (CUHK03\n"
        "                  20 testsets), new (CUHK03 767/700), none (default auto: paper for\n"
        "                  labelled sets, classic for CUHK03)\n"
        "  --config FILE   cuhk03_new_protocol_config_{labeled,detected}.mat for --protocol new\n"
        "                  (default: none)\n"
        "  --seed S        seed of the protocol's random split (default 1)\n"
        "  --testset K     CUHK03 classic: which test split, 1 to the file's count (20)\n"
        "                  (default 1)\n"
        "  --size HxW      resize target for NUS-WIDE / CUHK03 images (default: 32x32 / 160x60)\n"
        "  --skip-bad      NUS-WIDE: skip missing or undecodable images and count them\n"
        "                  (default: fail on the first one)\n"
        "  -h, --help      this text\n");
}

static const char *label_kind_name(ds_label_kind k)
{
    return k == DS_LABELS_MULTI      ? "multi-label (multi-hot)"
           : k == DS_LABELS_IDENTITY ? "identity (re-id)"
                                     : "single label";
}

static int data_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"protocol", required_argument, 0, 'p'}, {"seed", required_argument, 0, 's'},
        {"testset", required_argument, 0, 't'},  {"size", required_argument, 0, 'z'},
        {"skip-bad", no_argument, 0, 'k'},       {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    ds_load_opts lo;
    ds_load_opts_default(&lo);
    xp_protocol proto = XP_PROTO_AUTO;
    int64_t seed = 1, testset = 1;
    const char *config = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'p': bad = xp_protocol_parse("data info", optarg, &proto); break;
        case 's': bad = cli_parse_i64("data info", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case 't': bad = cli_parse_i64("data info", "--testset", optarg, 1, 1000, &testset); break;
        case 'z': bad = xp_parse_size("data info", optarg, &lo.out_h, &lo.out_w); break;
        case 'k': lo.skip_bad_images = 1; break;
        case 'c': config = optarg; break;
        case 'h': data_usage(stdout); return 0;
        default: return cli_usage_error("data info");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "drsch data info: expected exactly one dataset SPEC; see drsch data --help\n");
        return EXIT_USAGE;
    }
    const char *spec = argv[optind];
    drsch_error err;
    ds_dataset *d = NULL;
    double t0 = cli_now();
    if (ds_load(spec, &lo, &d, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch data info: %s\n", err.msg);
        return err.status == DRSCH_ERR_ARG ? EXIT_USAGE : 1;
    }
    fprintf(stderr, "drsch data info: loaded %s in %.2f s\n", d->name, cli_now() - t0);
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
    int64_t *counts = calloc((size_t)d->n_classes + 1, sizeof *counts);
    if (!counts) {
        ds_dataset_free(d);
        fprintf(stderr, "drsch data info: out of memory\n");
        return 1;
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
    int rc = 0;
    if (proto != XP_PROTO_NONE) {
        ds_split sp;
        if (xp_make_split(d, proto, (uint64_t)seed, (int)testset - 1, config, &sp, &err) !=
            DRSCH_OK) {
            printf("protocol:  not applicable: %s\n", err.msg);
            rc = proto == XP_PROTO_AUTO ? 0 : 1;
        } else {
            printf("protocol:  %s\n", sp.name);
            printf("split:     %lld query, %lld train, %lld database\n", (long long)sp.n_query,
                   (long long)sp.n_train, (long long)sp.n_db);
            ds_split_free(&sp);
        }
    }
    ds_dataset_free(d);
    return rc;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2) {
        data_usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        data_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "info"))
        return data_info(argc - 1, argv + 1);
    fprintf(stderr, "drsch data: unknown subcommand '%s'; see 'drsch data --help'\n", argv[1]);
    return EXIT_USAGE;
}

/* ---------------------------------------------------------------- bench data ------------- */

static void bench_usage(FILE *f)
{
    fprintf(
        f,
        "usage: drsch bench data [options] [--json FILE]\n\n"
        "Measures images/s of building augmented training batches as training does: the\n"
        "class-balanced sampler draws C classes x K images from the protocol's training\n"
        "images, then each image is cropped / mirrored, normalised and written as float32\n"
        "NCHW (OpenMP over images). Runs once on 1 thread and once on --threads.\n\n"
        "  --dataset SPEC    dataset (default fashion-mnist; see drsch data --help)\n"
        "  --classes C       classes per batch (default 10, the paper's sampling)\n"
        "  --per-class K     images per class (default 10)\n"
        "  --crop HxW        crop size (default: image size minus 2, e.g. 26x26 for 28x28)\n"
        "  --pad P           zero pixels added on each side before the crop (default 0)\n"
        "  --no-mirror       no random horizontal flips (default: flip half the images)\n"
        "  --iters N         batches per repetition, 1 to 1000000000 (default 2000)\n"
        "  --repetitions R   timed repetitions after one untimed one, 1 to 1000; the mean is\n"
        "                    reported (default 3)\n"
        "  --threads T       OpenMP threads of the second run, 0 to 1024; 0 = OMP_NUM_THREADS\n"
        "                    or all cores (default 0)\n"
        "  --seed S          seed of the protocol, the sampler and the augmentation (default 1)\n"
        "  --json FILE       also write a Google Benchmark-compatible report (default: none)\n"
        "  -h, --help        this text\n");
}

int cmd_bench_data(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dataset", required_argument, 0, 'd'},
        {"classes", required_argument, 0, 'c'},
        {"per-class", required_argument, 0, 'k'},
        {"crop", required_argument, 0, 'x'},
        {"pad", required_argument, 0, 'p'},
        {"no-mirror", no_argument, 0, 'm'},
        {"iters", required_argument, 0, 'n'},
        {"repetitions", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},
        {"json", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *spec = "fashion-mnist", *json = NULL;
    int64_t classes = 10, per_class = 10, pad = 0, iters = 2000, reps = 3, threads = 0, seed = 1;
    int crop_h = 0, crop_w = 0, mirror = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': spec = optarg; break;
        case 'c':
            bad = cli_parse_i64("bench data", "--classes", optarg, 1, 100000, &classes);
            break;
        case 'k':
            bad = cli_parse_i64("bench data", "--per-class", optarg, 1, 100000, &per_class);
            break;
        case 'x': bad = xp_parse_size("bench data", optarg, &crop_h, &crop_w); break;
        case 'p': bad = cli_parse_i64("bench data", "--pad", optarg, 0, 1024, &pad); break;
        case 'm': mirror = 0; break;
        case 'n':
            bad = cli_parse_i64("bench data", "--iters", optarg, 1, 1000000000, &iters);
            break;
        case 'r': bad = cli_parse_i64("bench data", "--repetitions", optarg, 1, 1000, &reps); break;
        case 't': bad = cli_parse_i64("bench data", "--threads", optarg, 0, 1024, &threads); break;
        case 's': bad = cli_parse_i64("bench data", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case 'j': json = optarg; break;
        case 'h': bench_usage(stdout); return 0;
        default: return cli_usage_error("bench data");
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "drsch bench data: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (json && cli_check_output_file("bench data", "--json", json))
        return EXIT_USAGE;
    drsch_error err;
    ds_dataset *d = NULL;
    double t0 = cli_now();
    if (ds_load(spec, NULL, &d, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        return err.status == DRSCH_ERR_ARG ? EXIT_USAGE : 1;
    }
    double load_s = cli_now() - t0;
    fprintf(stderr, "drsch bench data: loaded %s (%lld images) in %.2f s\n", d->name,
            (long long)d->n, load_s);
    ds_split sp;
    if (xp_make_split(d, XP_PROTO_AUTO, (uint64_t)seed, 0, NULL, &sp, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        ds_dataset_free(d);
        return 1;
    }
    ds_augment aug;
    ds_augment_default(&aug);
    aug.out_h = crop_h ? crop_h : (d->h > 2 ? d->h - 2 : d->h);
    aug.out_w = crop_w ? crop_w : (d->w > 2 ? d->w - 2 : d->w);
    aug.pad = (int)pad;
    aug.random_crop = 1;
    aug.mirror = mirror;
    int rc = 1;
    ds_sampler *smp = NULL;
    int64_t *idx = NULL;
    float *batch = NULL;
    rp_report *rep = NULL;
    if (ds_sampler_create(d, sp.train, sp.n_train, (int)classes, (int)per_class, (uint64_t)seed,
                          &smp, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench data: %s\n", err.msg);
        goto done;
    }
    int64_t bs = ds_sampler_batch_size(smp);
    size_t per = (size_t)d->c * (size_t)aug.out_h * (size_t)aug.out_w;
    idx = malloc((size_t)bs * sizeof *idx);
    batch = malloc((size_t)bs * per * sizeof *batch);
    rep = rp_create();
    if (!idx || !batch || !rep) {
        fprintf(stderr, "drsch bench data: out of memory\n");
        goto done;
    }
    char buf[64];
    rp_context_set(rep, "dataset", spec);
    rp_context_set(rep, "dataset_name", d->name);
    rp_context_set(rep, "dataset_path", d->source);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_checksum", buf);
    rp_context_set(rep, "protocol", sp.name);
    rp_context_set_num(rep, "seed", (double)seed);

    char name[256];
    snprintf(name, sizeof name, "BM_DataLoad/%s", d->name);
    rp_entry *le = rp_add(rep, name, 1, load_s * 1e3, load_s * 1e3, "ms", 1);
    rp_counter(le, "items_per_second", (double)d->n / load_s);

    int max_threads = cli_set_threads((int)threads);
    int runs[2] = {1, max_threads};
    int n_runs = max_threads > 1 ? 2 : 1;
    printf("%-8s %14s %14s %12s\n", "threads", "time/batch", "images/s", "batches/s");
    for (int r = 0; r < n_runs; r++) {
        int nt = cli_set_threads(runs[r]);
        double wall = 0, cpu = 0;
        uint64_t it_seed = (uint64_t)seed;
        for (int64_t rep_i = -1; rep_i < reps; rep_i++) { /* rep -1 warms caches and threads up */
            double w0 = cli_now(), c0 = cli_cpu_seconds();
            for (int64_t it = 0; it < iters; it++) {
                ds_sampler_next(smp, idx, NULL);
                if (ds_batch_build(d, idx, bs, &aug, it_seed++, batch, &err) != DRSCH_OK) {
                    fprintf(stderr, "drsch bench data: %s\n", err.msg);
                    goto done;
                }
            }
            if (rep_i >= 0) {
                wall += cli_now() - w0;
                cpu += cli_cpu_seconds() - c0;
            }
        }
        double mean = wall / (double)reps, mean_cpu = cpu / (double)reps;
        double ips = (double)(iters * bs) / mean;
        snprintf(name, sizeof name,
                 "BM_DataBatch/%s/batch:%lldx%lld/crop:%dx%d/pad:%lld/mirror:%d/threads:%d",
                 d->name, (long long)classes, (long long)per_class, aug.out_h, aug.out_w,
                 (long long)pad, mirror, nt);
        rp_entry *e = rp_add(rep, name, iters, mean / (double)iters * 1e6,
                             mean_cpu / (double)iters * 1e6, "us", nt);
        rp_counter(e, "items_per_second", ips);
        rp_counter(e, "images_per_second", ips);
        rp_counter(e, "batch_size", (double)bs);
        printf("%-8d %11.2f us %14.0f %12.0f\n", nt, mean / (double)iters * 1e6, ips,
               (double)iters / mean);
    }
    fprintf(stderr,
            "drsch bench data: %s, %s; training runs at a few thousand images/s on 2 cores\n",
            d->name, sp.name);
    if (json) {
        drsch_error re;
        if (rp_write(rep, json, &re) != DRSCH_OK) {
            fprintf(stderr, "drsch bench data: %s\n", re.msg);
            goto done;
        }
        fprintf(stderr, "drsch bench data: wrote %s\n", json);
    }
    rc = 0;
done:
    rp_free(rep);
    free(idx);
    free(batch);
    ds_sampler_free(smp);
    ds_split_free(&sp);
    ds_dataset_free(d);
    return rc;
}
