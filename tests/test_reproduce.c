/* Reproduce suite: `drsch reproduce` on CUHK03 end to end, through the built binary, on a
 * synthetic cuhk-03.mat (MATLAB v7.3 layout, written with the HDF5 C API by fixture_cuhk03.c):
 * 30 identities whose colours depend on the identity, so a model can learn them, and three
 * classic testsets of 6 identities. A tiny schedule (20 iterations, 2 splits, 48 x 16 images)
 * keeps it to seconds. Checked: the files written, the report's context and CMC / mAP counters
 * (per split and averaged; CMC in [0, 1] and non-decreasing in rank), the CMC curve data, that
 * drsch compare gates a CMC drop in that report, and the errors for bad input. Also where a run
 * writes without --out (runs/<dataset>, never results/), the line that ends every run (whether it
 * reproduced a baseline report: identical / within noise / not), the checks of --out and
 * --baseline made before loading anything, and --help. A retrieval run on a synthetic
 * MNIST-style folder checks that the table and the report count the queries without a relevant
 * item. The re-id experiment called through the library (reproduce.h) gives the command's models
 * and figures. There is no real CUHK03 data here; the numbers themselves are not compared with
 * anything but the same runs. The pooled gallery (--reid-gallery all) is run end to end too, and
 * mINP is checked beside mAP (and that a report from before mINP passes drsch compare as a
 * baseline). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

#include "fileio.h"
#include "fixture_cuhk03.h"
#include "reproduce.h"
#include "test_util.h"

static void make_tmpdir(void) { tu_tmpdir_make("reproduce"); }

/* DIR/NAME into buf. */
static const char *path_in(const char *dir, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* ---- the fixture --------------------------------------------------------------------------- */

static void write_fixture(const char *path, int with_testsets)
{
    char msg[512];
    cr_assert_eq(fx_cuhk03_write_small(path, with_testsets, msg, sizeof msg), 0, "%s", msg);
}

/* ---- end to end ----------------------------------------------------------------------------- */

TestSuite(reproduce_reid, .init = make_tmpdir, .fini = tu_tmpdir_remove);

static const char *const METHODS[] = {"DRSCH-64_truncated", "DRSCH-64_truncated-_weighted_ranking",
                                      "LSH_-thumbnails-", "ITQ_-thumbnails-"};
static const unsigned BITS[] = {12, 24, 32, 48, 64};
static const char *const RANKS[] = {"rank-1", "rank-5", "rank-10", "rank-20"};

static cJSON *entry(cJSON *benchmarks, const char *name)
{
    cJSON *e;
    cJSON_ArrayForEach(e, benchmarks)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return e;
    }
    return NULL;
}

static double counter(cJSON *e, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(e, name);
    cr_assert(cJSON_IsNumber(v), "counter %s missing in %s", name,
              cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
    return v->valuedouble;
}

/* CMC counters within [0, 1], non-decreasing in rank; mAP and mINP within (0, 1]. With at most 6
 * gallery identities the true match of a single-shot gallery is always within rank 6. */
static void check_cmc(cJSON *e)
{
    double prev = 0;
    for (int r = 0; r < 4; r++) {
        double v = counter(e, RANKS[r]);
        cr_assert(v >= 0 && v <= 1 + 1e-12, "%s = %g", RANKS[r], v);
        cr_assert(v >= prev - 1e-12, "%s = %g below the previous rank's %g", RANKS[r], v, prev);
        prev = v;
    }
    cr_assert_float_eq(counter(e, "rank-10"), 1.0, 1e-12);
    double map = counter(e, "mAP");
    cr_assert(map > 0 && map <= 1 + 1e-12, "mAP = %g", map);
    double minp = counter(e, "mINP");
    cr_assert(minp > 0 && minp <= 1 + 1e-12, "mINP = %g", minp);
}

Test(reproduce_reid, two_splits_end_to_end, .timeout = 180)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_fixture(mat, 1);
    char *out = malloc(1 << 16), dir[600];
    snprintf(dir, sizeof dir, "%s", tu_path("out"));
    int rc = tu_run(
        out, 1 << 16,
        "%s reproduce --dataset cuhk03:%s:labeled --size %dx%d --iters 20 --splits 2 --threads 2 "
        "--out %s",
        tu_exe(), mat, FX_H, FX_W, dir);
    cr_assert_eq(rc, 0, "%s", out);
    /* progress on stderr, the table on stdout */
    cr_assert(strstr(out, "split 2/2") && strstr(out, "| method | bits | rank-1 |"), "%s", out);

    char path[700];
    const char *files[] = {"report.json",        "table.md", "cmc.dat",
                           "cmc_methods.dat",    "plots.gp", "model-split1-64.bin",
                           "model-split2-64.bin"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        cr_assert_eq(access(path, R_OK), 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/model-split1-64.bin.state", dir);
    cr_assert_neq(access(path, F_OK), 0, "the training state is left behind");
    if (access("/usr/bin/gnuplot", X_OK) == 0)
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, i ? "cmc_methods.svg" : "cmc.svg");
            char *svg = tu_slurp(path, NULL);
            cr_assert(strstr(svg, "<svg") && strstr(svg, "CMC"), "%s is not the CMC plot", path);
            free(svg);
        }

    /* report.json: context and counters */
    snprintf(path, sizeof path, "%s/report.json", dir);
    char *text = tu_slurp(path, NULL);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root, "report.json is not JSON");
    cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
    const char *str_keys[] = {"drsch_version", "git_commit", "dataset_crc32", "protocol",
                              "tie_rule",      "reid_rule",  "command",       "isa"};
    for (size_t i = 0; i < sizeof str_keys / sizeof str_keys[0]; i++)
        cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ctx, str_keys[i])), "context.%s",
                  str_keys[i]);
    cr_assert_not_null(
        strstr(cJSON_GetObjectItemCaseSensitive(ctx, "protocol")->valuestring, "cuhk03 classic"));
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(ctx, "seed")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(ctx, "splits")->valuedouble, 2);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(ctx, "single_shot_repeats")->valuedouble, 10);
    cJSON *bm = cJSON_GetObjectItemCaseSensitive(root, "benchmarks");
    cr_assert_eq(cJSON_GetArraySize(bm), 4 * 5 * 3, "%d entries", cJSON_GetArraySize(bm));
    char name[300];
    for (int m = 0; m < 4; m++)
        for (int b = 0; b < 5; b++) {
            cJSON *sp[2];
            for (int s = 0; s < 2; s++) {
                snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/split:%d/bits:%u",
                         METHODS[m], s + 1, BITS[b]);
                sp[s] = entry(bm, name);
                cr_assert_not_null(sp[s], "no entry %s", name);
                check_cmc(sp[s]);
                /* 6 test identities x 5 first-camera images, less the empty slot 4 of one person 1
                 */
                cr_assert_eq(counter(sp[s], "queries"), 29, "%s", name);
            }
            snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/mean/bits:%u", METHODS[m],
                     BITS[b]);
            cJSON *mean = entry(bm, name);
            cr_assert_not_null(mean, "no entry %s", name);
            check_cmc(mean);
            cr_assert_eq(counter(mean, "splits"), 2);
            for (int r = 0; r < 4; r++)
                cr_assert_float_eq(counter(mean, RANKS[r]),
                                   0.5 * (counter(sp[0], RANKS[r]) + counter(sp[1], RANKS[r])),
                                   1e-9);
            cr_assert_float_eq(counter(mean, "mAP"),
                               0.5 * (counter(sp[0], "mAP") + counter(sp[1], "mAP")), 1e-9);
            cr_assert_float_eq(counter(mean, "mINP"),
                               0.5 * (counter(sp[0], "mINP") + counter(sp[1], "mINP")), 1e-9);
        }

    /* cmc.dat: a header, then ranks 1..20, each curve in [0, 1] and non-decreasing */
    snprintf(path, sizeof path, "%s/cmc.dat", dir);
    char *dat = tu_slurp(path, NULL);
    char *line = strtok(dat, "\n");
    cr_assert(line && !strncmp(line, "rank \"12 bits\"", 14), "%s", line ? line : "(empty)");
    double prev[5] = {0};
    int rows = 0;
    while ((line = strtok(NULL, "\n"))) {
        double v[6];
        cr_assert_eq(
            sscanf(line, "%lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 6,
            "%s", line);
        cr_assert_eq(v[0], ++rows);
        for (int k = 0; k < 5; k++) {
            cr_assert(v[k + 1] >= prev[k] - 1e-12 && v[k + 1] <= 1 + 1e-12, "rank %d: %s", rows,
                      line);
            prev[k] = v[k + 1];
        }
    }
    cr_assert_eq(rows, 20);
    free(dat);

    /* table.md: the command, the machine, the CMC table, the missing published figures */
    snprintf(path, sizeof path, "%s/table.md", dir);
    char *md = tu_slurp(path, NULL);
    cr_assert(strstr(md, "Command: `drsch reproduce --dataset cuhk03:") && strstr(md, "Machine:") &&
                  strstr(md, "| DRSCH-64 truncated | 48 |") &&
                  strstr(md, "| ITQ (thumbnails) | 12 |") &&
                  strstr(md, "Published figures: none") && strstr(md, "truncated to each length"),
              "%s", md);
    cr_assert(strstr(md, "| rank-20 | mAP | mINP |") != NULL, "%s", md);
    free(md);

    /* drsch eval --model on split 1 builds the same gallery (every second-camera image of the
     * test identities) and the same seeded single-shot samplings: identical CMC and mAP. */
    const char *ej = tu_path("eval.json");
    rc = tu_run(out, 1 << 16,
                "%s eval --model %s/model-split1-64.bin --dataset cuhk03:%s:labeled --size %dx%d "
                "--testset 1 "
                "--bits 48 --threads 2 --json %s",
                tu_exe(), dir, mat, FX_H, FX_W, ej);
    cr_assert_eq(rc, 0, "%s", out);
    char *etext = tu_slurp(ej, NULL);
    cJSON *eroot = cJSON_Parse(etext);
    cr_assert_not_null(eroot, "%s is not JSON", ej);
    cJSON *ee = entry(cJSON_GetObjectItemCaseSensitive(eroot, "benchmarks"), "eval/reid/bits:48");
    cr_assert_not_null(ee, "%s", etext);
    snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/split:1/bits:48", METHODS[0]);
    cJSON *re = entry(bm, name);
    for (int r = 0; r < 4; r++)
        cr_assert_float_eq(counter(ee, RANKS[r]), counter(re, RANKS[r]), 1e-12,
                           "%s: eval %g, reproduce %g", RANKS[r], counter(ee, RANKS[r]),
                           counter(re, RANKS[r]));
    cr_assert_float_eq(counter(ee, "mAP"), counter(re, "mAP"), 1e-12);
    cr_assert_float_eq(counter(ee, "mINP"), counter(re, "mINP"), 1e-12);
    cJSON_Delete(eroot);
    free(etext);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ctx, "reid_gallery")->valuestring,
                     "cross-camera");

    /* A report from before mINP (no mINP counter, no reid_gallery context) as the baseline of
     * this one: the entries gaining a counter pass drsch compare. */
    cJSON *old = cJSON_Parse(text), *oe;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(old, "context"),
                                            "reid_gallery");
    cJSON_ArrayForEach(oe, cJSON_GetObjectItemCaseSensitive(old, "benchmarks"))
    {
        cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(oe, "mINP"));
        cJSON_DeleteItemFromObjectCaseSensitive(oe, "mINP");
    }
    char *old_text = cJSON_Print(old);
    const char *old_path = tu_path("before-minp.json");
    tu_write_file(old_path, old_text, strlen(old_text));
    snprintf(path, sizeof path, "%s/report.json", dir);
    cr_assert_eq(tu_run(out, 1 << 16, "%s compare --no-time %s %s", tu_exe(), old_path, path), 0,
                 "%s", out);
    free(old_text);
    cJSON_Delete(old);

    /* drsch compare gates CMC counters: a rank-5 drop of 0.05 in one mean entry fails */
    snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/mean/bits:%u", METHODS[0], 48u);
    cJSON *e = entry(bm, name);
    double r5 = counter(e, "rank-5");
    cJSON_ReplaceItemInObjectCaseSensitive(e, "rank-5", cJSON_CreateNumber(r5 - 0.05));
    char *dropped = cJSON_Print(root);
    const char *worse = tu_path("worse.json");
    FILE *f = fopen(worse, "w");
    cr_assert_not_null(f);
    fputs(dropped, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/report.json", dir);
    cr_assert_eq(tu_run(out, 1 << 16, "%s compare --no-time %s %s", tu_exe(), path, path), 0, "%s",
                 out);
    cr_assert_eq(tu_run(out, 1 << 16, "%s compare --no-time %s %s", tu_exe(), path, worse), 1, "%s",
                 out);
    cr_assert(strstr(out, name) && strstr(out, "rank-5"), "%s", out);
    free(dropped);
    cJSON_Delete(root);
    free(text);
    free(out);
}

Test(reproduce_reid, bad_input_gives_clear_errors, .timeout = 60)
{
    const char *mat = tu_path("cuhk-03.mat"), *nots = tu_path("no-testsets.mat");
    write_fixture(mat, 1);
    write_fixture(nots, 0);
    char out[8192];
    const char *o = tu_path("bad");
    /* more splits than the file's 3 testsets */
    cr_assert_eq(tu_run(out, sizeof out,
                        "%s reproduce --dataset cuhk03:%s --size 48x16 --splits 4 --out %s",
                        tu_exe(), mat, o),
                 2, "%s", out);
    cr_assert(strstr(out, "--splits 4") && strstr(out, "3 testsets"), "%s", out);
    /* no 'testsets' in the file */
    cr_assert_eq(tu_run(out, sizeof out, "%s reproduce --dataset cuhk03:%s --size 48x16 --out %s",
                        tu_exe(), nots, o),
                 1, "%s", out);
    cr_assert(strstr(out, "no-testsets.mat") && strstr(out, "no 'testsets'"), "%s", out);
    /* out-of-range and misplaced flags */
    cr_assert_eq(
        tu_run(out, sizeof out, "%s reproduce --dataset cuhk03:%s --splits 0", tu_exe(), mat), 2,
        "%s", out);
    cr_assert(strstr(out, "--splits") != NULL, "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s reproduce --splits 2", tu_exe()), 2, "%s", out);
    cr_assert(strstr(out, "--splits counts CUHK03") != NULL, "%s", out);
    cr_assert_eq(tu_run(out, sizeof out, "%s reproduce --size 20x20", tu_exe()), 2, "%s", out);
    cr_assert_eq(
        tu_run(out, sizeof out, "%s reproduce --dataset cuhk03:%s --size 0x16", tu_exe(), mat), 2,
        "%s", out);
    /* train / encode / eval take --size only for datasets resized on loading */
    const char *cmds[] = {"train --out /dev/null", "encode --model x.bin --out y",
                          "eval --model x.bin"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tu_run(out, sizeof out, "%s %s --size 20x20", tu_exe(), cmds[i]), 2, "%s",
                     out);
        cr_assert(strstr(out, "--size resizes NUS-WIDE and CUHK03") != NULL, "%s: %s", cmds[i],
                  out);
        cr_assert_eq(
            tu_run(out, sizeof out, "%s %s --dataset cuhk03:%s --size 16", tu_exe(), cmds[i], mat),
            2, "%s", out);
    }
    /* a missing file is named */
    cr_assert_eq(tu_run(out, sizeof out, "%s reproduce --dataset cuhk03:%s --out %s", tu_exe(),
                        tu_path("missing.mat"), o),
                 1, "%s", out);
    cr_assert(strstr(out, "missing.mat") != NULL, "%s", out);
    /* nothing was written for the failed runs */
    cr_assert_neq(access(tu_path("bad/report.json"), F_OK), 0);
    /* --help lists the re-id flags with their defaults */
    cr_assert_eq(tu_run(out, sizeof out, "%s reproduce --help", tu_exe()), 0);
    cr_assert(strstr(out, "--splits N") && strstr(out, "default all") && strstr(out, "--size HxW"),
              "%s", out);
}

/* --reid-gallery all: every test image of a split is a query and in the gallery (torchreid's
 * classic CUHK03), less the query's identity-and-camera images. The report records it (context
 * and protocol), counts the pooled queries (29 first-camera + 29 second-camera images of split 1,
 * each with a true match in the other camera), and drsch eval --model --reid-gallery all on the
 * split's model gives the same CMC, mAP and mINP; the choice is refused for other datasets. */
Test(reproduce_reid, pooled_gallery_end_to_end, .timeout = 240)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_fixture(mat, 1);
    char *out = malloc(1 << 16), dir[600], path[700], name[300];
    snprintf(dir, sizeof dir, "%s", tu_path("pooled"));
    int rc = tu_run(out, 1 << 16,
                    "%s reproduce --dataset cuhk03:%s:labeled --size %dx%d --iters 10 --splits 1 "
                    "--bits 12 --long-bits 16 --threads 2 --reid-gallery all --out %s",
                    tu_exe(), mat, FX_H, FX_W, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "58 queries, 58 gallery (all)"), "%s", out);
    snprintf(path, sizeof path, "%s/report.json", dir);
    char *text = tu_slurp(path, NULL);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ctx, "reid_gallery")->valuestring, "all");
    cr_assert(strstr(cJSON_GetObjectItemCaseSensitive(ctx, "protocol")->valuestring, "torchreid"));
    cJSON *bm = cJSON_GetObjectItemCaseSensitive(root, "benchmarks");
    const char *methods[] = {"DRSCH-16_truncated", "DRSCH-16_truncated-_weighted_ranking",
                             "LSH_-thumbnails-", "ITQ_-thumbnails-"};
    for (int m = 0; m < 4; m++)
        for (int b = 0; b < 2; b++) {
            snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/split:1/bits:%d", methods[m],
                     b ? 16 : 12);
            cJSON *e = entry(bm, name);
            cr_assert_not_null(e, "no entry %s", name);
            check_cmc(e);
            cr_assert_eq(counter(e, "queries"), 58, "%s", name);
        }
    snprintf(path, sizeof path, "%s/table.md", dir);
    char *md = tu_slurp(path, NULL);
    cr_assert(strstr(md, "| 1 | 58 | 58 |") && strstr(md, "torchreid"), "%s", md);
    free(md);

    const char *ej = tu_path("pooled-eval.json");
    for (int pooled = 1; pooled >= 0; pooled--) {
        rc = tu_run(out, 1 << 16,
                    "%s eval --model %s/model-split1-16.bin --dataset cuhk03:%s:labeled --size "
                    "%dx%d --testset 1 --threads 2 %s --json %s",
                    tu_exe(), dir, mat, FX_H, FX_W, pooled ? "--reid-gallery all" : "", ej);
        cr_assert_eq(rc, 0, "%s", out);
        char *etext = tu_slurp(ej, NULL);
        cJSON *eroot = cJSON_Parse(etext);
        cJSON *ee =
            entry(cJSON_GetObjectItemCaseSensitive(eroot, "benchmarks"), "eval/reid/bits:16");
        cr_assert_not_null(ee, "%s", etext);
        cr_assert_eq(counter(ee, "queries"), pooled ? 58 : 29);
        snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/split:1/bits:16", methods[0]);
        cJSON *re = entry(bm, name);
        if (pooled) {
            const char *keys[] = {"rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP"};
            for (int k = 0; k < 6; k++)
                cr_assert_float_eq(counter(ee, keys[k]), counter(re, keys[k]), 1e-12, "%s",
                                   keys[k]);
        }
        cJSON_Delete(eroot);
        free(etext);
    }
    cJSON_Delete(root);
    free(text);

    /* a bad choice; the choice for a dataset without cameras, refused before loading */
    rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s --reid-gallery pooled", tu_exe(),
                mat);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--reid-gallery: 'pooled' is not cross-camera or all"), "%s", out);
    rc = tu_run(out, 1 << 16, "%s reproduce --reid-gallery all --out %s", tu_exe(), tu_path("fm"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--reid-gallery") && strstr(out, "not a re-id dataset") &&
                  !strstr(out, "loading"),
              "%s", out);
    free(out);
}

/* ---- the library entry point ---------------------------------------------------------------- */

typedef struct {
    int notes, steps, done;
} lib_progress;

static void lib_progress_cb(const xp_event *e, void *ctx)
{
    lib_progress *p = ctx;
    if (e->kind == XP_EVENT_TRAIN) {
        cr_assert(e->tag && e->train && e->train->iters == 20);
        p->steps++;
        return;
    }
    cr_assert(e->text && !strchr(e->text, '\n'), "a note is one line: %s", e->text);
    p->notes++;
    p->done += strstr(e->text, "split 2/2 done") != NULL;
}

/* The re-id experiment called through reproduce.h on the same fixture and settings as the
 * command gives the same models and the same CMC and mAP per split (the command's report.json),
 * and reports its progress through the callback; nothing is printed by the library. */
Test(reproduce_reid, library_entry_point_matches_command, .timeout = 300)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_fixture(mat, 1);
    char *out = malloc(1 << 16), dir[600], lib[600], spec[700], path[700], path2[700];
    snprintf(dir, sizeof dir, "%s", tu_path("cmd"));
    snprintf(lib, sizeof lib, "%s", tu_path("lib"));
    cr_assert_eq(mkdir(lib, 0755), 0);
    int rc = tu_run(out, 1 << 16,
                    "%s reproduce --dataset cuhk03:%s:labeled --size %dx%d --iters 20 --splits 2 "
                    "--threads 2 --out %s",
                    tu_exe(), mat, FX_H, FX_W, dir);
    cr_assert_eq(rc, 0, "%s", out);

    /* The same run in process, as the command sets it up. */
#ifdef DRSCH_HAVE_OPENMP
    omp_set_num_threads(2);
#endif
    drsch_error he;
    cr_assert_eq(hm_isa_init(&he), DRSCH_OK, "%s", he.msg);
    snprintf(spec, sizeof spec, "cuhk03:%s:labeled", mat);
    ds_spec ds;
    drsch_error de;
    cr_assert_eq(ds_spec_parse(spec, &ds, &de), DRSCH_OK, "%s", de.msg);
    ds_load_opts lo;
    ds_load_opts_default(&lo);
    lo.out_h = FX_H;
    lo.out_w = FX_W;
    ds_dataset *d = NULL;
    cr_assert_eq(ds_load_spec(&ds, &lo, &d, &de), DRSCH_OK, "%s", de.msg);
    lib_progress prog = {0};
    xp_repro_config c = {.dir = lib,
                         .lengths = {12, 24, 32, 48},
                         .n_lengths = 4,
                         .long_bits = 64,
                         .seed = 1,
                         .progress = lib_progress_cb,
                         .progress_ctx = &prog};
    drsch_error xe;
    cr_assert_eq(xp_reid_splits(d, 2, 0, &c.splits, &xe), DRSCH_OK, "%s", xe.msg);
    cr_assert_eq(c.splits, 2);
    cr_assert_eq(xp_reid_splits(d, 4, 0, &c.splits, &xe), DRSCH_ERR_ARG);
    cr_assert(strstr(xe.msg, "3 testsets"), "%s", xe.msg);
    c.splits = 2;
    xp_repro_train_config(d, 1, 0, 20, 1, &c.train);
    xp_reid_result res;
    cr_assert_eq(xp_reid_run(&c, d, &res, &xe), DRSCH_OK, "%s", xe.msg);
    cr_assert(prog.steps > 0 && prog.notes > 0 && prog.done == 1, "%d steps, %d notes", prog.steps,
              prog.notes);
    for (int s = 1; s <= 2; s++) {
        snprintf(path, sizeof path, "%s/model-split%d-64.bin", dir, s);
        snprintf(path2, sizeof path2, "%s/model-split%d-64.bin", lib, s);
        size_t n1, n2;
        char *a = tu_slurp(path, &n1), *b = tu_slurp(path2, &n2);
        cr_assert(n1 == n2 && !memcmp(a, b, n1), "%s differs from the command's", path2);
        free(a);
        free(b);
    }

    /* Every CMC and mAP counter of the command's report, per split and averaged (cJSON prints 15
     * significant digits when they read back within a rounding error). */
    snprintf(path, sizeof path, "%s/report.json", dir);
    char *text = tu_slurp(path, NULL);
    cJSON *root = cJSON_Parse(text);
    cJSON *bm = cJSON_GetObjectItemCaseSensitive(root, "benchmarks");
    static const int ranks[] = {1, 5, 10, 20};
    char name[300];
    cr_assert_eq(res.n_splits, 2);
    cr_assert_eq(res.n_cols, 5);
    for (int m = 0; m < XP_REID_METHODS; m++)
        for (int i = 0; i < res.n_cols; i++) {
            cr_assert_eq(res.cols[i], BITS[i]);
            for (int s = 0; s <= 2; s++) {
                xp_reid_mean a = xp_reid_average(&res, m, i);
                const double *cmc = s < 2 ? res.rows[m].r[s * res.n_cols + i].cmc : a.cmc;
                double map = s < 2 ? res.rows[m].r[s * res.n_cols + i].map : a.map;
                if (s < 2)
                    snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/split:%d/bits:%u",
                             METHODS[m], s + 1, BITS[i]);
                else
                    snprintf(name, sizeof name, "reproduce/cuhk03-labeled/%s/mean/bits:%u",
                             METHODS[m], BITS[i]);
                cJSON *e = entry(bm, name);
                cr_assert_not_null(e, "no entry %s", name);
                for (int r = 0; r < 4; r++)
                    cr_assert(fabs(counter(e, RANKS[r]) - cmc[ranks[r] - 1]) < 1e-13,
                              "%s %s: %.17g vs %.17g", name, RANKS[r], counter(e, RANKS[r]),
                              cmc[ranks[r] - 1]);
                cr_assert(fabs(counter(e, "mAP") - map) < 1e-13, "%s mAP: %.17g vs %.17g", name,
                          counter(e, "mAP"), map);
                double minp = s < 2 ? res.rows[m].r[s * res.n_cols + i].minp : a.minp;
                cr_assert(fabs(counter(e, "mINP") - minp) < 1e-13, "%s mINP: %.17g vs %.17g", name,
                          counter(e, "mINP"), minp);
            }
        }
    xp_reid_result_free(&res);

    /* The protocol's description: the default's text is the one reports had before the gallery
     * choice existed (the reproduction line compares it); the pooled gallery says so. */
    char proto[1024];
    xp_reid_protocol(d, 2, 1, EV_REID_CROSS_CAMERA, proto, sizeof proto);
    cr_assert_str_eq(
        proto, "cuhk03 classic (Li et al., CVPR 2014): testsets{1..2} of 3, one split each; the "
               "test identities' first-camera images are the queries, their second-camera images "
               "the gallery, all other identities train; CMC from 10 seeded single-gallery-shot "
               "samplings per split, mAP over the whole gallery; seed 1");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(root, "context"), "protocol")
                         ->valuestring,
                     proto);
    xp_reid_protocol(d, 2, 1, EV_REID_ALL, proto, sizeof proto);
    cr_assert(strstr(proto, "every image of the test identities (both cameras) is a query and the "
                            "gallery") &&
                  strstr(proto, "torchreid"),
              "%s", proto);
    cJSON_Delete(root);
    free(text);
    ds_dataset_free(d);
    free(out);
}

/* ---- where it writes, and the reproduction line ---------------------------------------------- */

/* The last line of the output that starts with "Reproduction: " (copied into line). */
static void reproduction_line(const char *out, char *line, size_t cap)
{
    const char *p = NULL;
    for (const char *q = strstr(out, "Reproduction: "); q; q = strstr(q + 1, "Reproduction: "))
        if (q == out || q[-1] == '\n')
            p = q;
    cr_assert_not_null(p, "no reproduction line in\n%s", out);
    size_t n = strcspn(p, "\n");
    cr_assert(n < cap);
    memcpy(line, p, n);
    line[n] = '\0';
}

/* The report at path with counter `name` of entry `entry` changed by delta, written to file. */
static void shifted_report(const char *path, const char *entry_name, const char *name, double delta,
                           const char *file)
{
    char *text = tu_slurp(path, NULL);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    cJSON *e = entry(cJSON_GetObjectItemCaseSensitive(root, "benchmarks"), entry_name);
    cr_assert_not_null(e, "no entry %s", entry_name);
    cJSON_ReplaceItemInObjectCaseSensitive(e, name, cJSON_CreateNumber(counter(e, name) + delta));
    char *j = cJSON_Print(root);
    tu_write_file(file, j, strlen(j));
    free(j);
    cJSON_Delete(root);
    free(text);
}

/* Without --out a run writes runs/<dataset>[-quick] of the working folder, never results/, and
 * ends by comparing its report with the committed one (none for CUHK03: said so) or with
 * --baseline: identical for the same run, within noise for a difference up to 0.01, not
 * reproduced beyond. */
Test(reproduce_reid, default_folder_and_reproduction_line, .timeout = 240)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_fixture(mat, 1);
    char *out = malloc(1 << 16), line[2048], first[600], base[600];
    const char *flags =
        "--size 48x16 --iters 10 --splits 1 --bits 12,24 --long-bits 32 --threads 2";
    /* --quick (its schedule overridden by --iters and --splits): runs/<dataset>-quick */
    int rc = tu_run(out, 1 << 16, "cd %s && %s reproduce --quick --dataset cuhk03:%s:labeled %s",
                    tu_tmpdir, tu_exe(), mat, flags);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(first, sizeof first, "%s", tu_path("runs/cuhk03-labeled-quick/report.json"));
    cr_assert_eq(access(first, R_OK), 0, "%s missing:\n%s", first, out);
    cr_assert_neq(access(tu_path("results"), F_OK), 0, "the run wrote into results/");
    reproduction_line(out, line, sizeof line);
    cr_assert(strstr(line, "not checked: there is no committed report") &&
                  strstr(line, "results/cuhk03-labeled-quick/report.json to compare "
                               "runs/cuhk03-labeled-quick/report.json with"),
              "%s", line);

    /* the same run again, compared with the first */
    const char *again = tu_path("again");
    rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s:labeled %s --out %s --baseline %s",
                tu_exe(), mat, flags, again, first);
    cr_assert_eq(rc, 0, "%s", out);
    reproduction_line(out, line, sizeof line);
    cr_assert(strstr(line, "Reproduction: identical: all 144 metrics of ") &&
                  strstr(line, "again/report.json") && strstr(line, first),
              "%s", line);

    /* a baseline 0.004 higher in one metric: within noise; 0.05 higher in another too: not */
    const char *e = "reproduce/cuhk03-labeled/DRSCH-32_truncated/mean/bits:24";
    snprintf(base, sizeof base, "%s", tu_path("noise.json"));
    shifted_report(first, e, "mAP", 0.004, base);
    rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s:labeled %s --out %s --baseline %s",
                tu_exe(), mat, flags, again, base);
    cr_assert_eq(rc, 0, "%s", out);
    reproduction_line(out, line, sizeof line);
    cr_assert(strstr(line, "Reproduction: within noise: all 144 metrics of ") &&
                  strstr(line, "within 0.01 of") && strstr(line, "143 identical") &&
                  strstr(line, "largest difference 0.0040"),
              "%s", line);
    shifted_report(base, e, "rank-1", 0.05, tu_path("drop.json"));
    rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s:labeled %s --out %s --baseline %s",
                tu_exe(), mat, flags, again, tu_path("drop.json"));
    cr_assert_eq(rc, 0, "%s", out);
    reproduction_line(out, line, sizeof line);
    cr_assert(strstr(line, "Reproduction: NOT reproduced: 1 of 144 metrics of ") &&
                  strstr(line, "more than 0.01") && strstr(line, "largest drop 0.0500") &&
                  strstr(line, e),
              "%s", line);
    free(out);
}

/* A file of the run that cannot be written is named with its cause (it was "cannot write the
 * curves in DIR"), and a folder another run holds is refused before any work. */
Test(reproduce_reid, unwritable_file_named_and_folder_locked, .timeout = 240)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_fixture(mat, 1);
    char *out = malloc(1 << 16), dir[600], blocker[700];
    snprintf(dir, sizeof dir, "%s", tu_path("run"));
    snprintf(blocker, sizeof blocker, "%s/cmc.dat", dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(mkdir(blocker, 0755), 0);
    const char *flags =
        "--size 48x16 --iters 10 --splits 1 --bits 12,24 --long-bits 32 --threads 2";
    int rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s:labeled %s --out %s", tu_exe(),
                    mat, flags, dir);
    cr_assert_eq(rc, 1, "%s", out);
    char want[800];
    snprintf(want, sizeof want, "%s: cannot write: Is a directory", blocker);
    cr_expect(strstr(out, want) != NULL, "'%s' not in: %s", want, out);

    fio_lock held;
    drsch_error fe;
    cr_assert_eq(fio_lock_take(&held, dir, &fe), DRSCH_OK, "%s", fe.msg);
    rc = tu_run(out, 1 << 16, "%s reproduce --dataset cuhk03:%s:labeled %s --out %s", tu_exe(), mat,
                flags, dir);
    fio_lock_release(&held);
    cr_assert_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "another drsch run") != NULL, "%s", out);
    cr_expect(strstr(out, "training") == NULL, "work started before the lock was taken: %s", out);
    free(out);
}

/* --out and --baseline are checked before any training; help on stdout with every flag. */
Test(reproduce_reid, outputs_checked_first_and_help, .timeout = 60)
{
    char out[16384];
    tu_write_file(tu_path("file"), "x", 1);
    int rc = tu_run(out, sizeof out, "%s reproduce --quick --out %s", tu_exe(), tu_path("file"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--out") && strstr(out, "not a folder") && !strstr(out, "loading"), "%s",
              out);
    rc = tu_run(out, sizeof out, "%s reproduce --quick --out %s --baseline %s", tu_exe(),
                tu_path("o"), tu_path("missing.json"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--baseline") && strstr(out, "missing.json") && !strstr(out, "loading"),
              "%s", out);
    const char *src = getenv("DRSCH_SOURCE_DIR");
    for (int i = 0; i < 2; i++) {
        rc = tu_run(out, sizeof out, "%s reproduce %s 2>/dev/null", tu_exe(), i ? "--help" : "-h");
        cr_assert_eq(rc, 0);
        const char *flags[] = {"--dataset",   "--quick", "--out",          "--baseline", "--bits",
                               "--long-bits", "--iters", "--splits",       "--size",     "--seed",
                               "--threads",   "--paper", "--reid-gallery", "--recipes",  "--help"};
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            cr_assert(strstr(out, flags[f]), "%s not in the help:\n%s", flags[f], out);
        cr_assert(strstr(out, "usage: drsch reproduce") && strstr(out, "runs/<dataset>"), "%s",
                  out);
        cr_assert(!src || !strstr(out, src), "the help shows the build machine's path %s:\n%s", src,
                  out);
        cr_assert(!strstr(out, "issue"), "%s", out);
    }
}

/* ---- a retrieval dataset: the paper protocol on a synthetic MNIST-style folder ----------------
 */

TestSuite(reproduce_retrieval, .init = make_tmpdir, .fini = tu_tmpdir_remove);

/* An MNIST-style dataset in tu_path("mnist") large enough for the paper protocol (100 queries and
 * 500 training images per class), its path into data, and the output folder tu_path("out"). */
static void paper_sized_dataset(char *data, size_t dcap, char *out, size_t ocap)
{
    snprintf(data, dcap, "%s", tu_path("mnist"));
    snprintf(out, ocap, "%s", tu_path("out"));
    cr_assert_eq(mkdir(data, 0755), 0);
    tu_write_idx_split(data, "train", 6500, 1, 31);
    tu_write_idx_split(data, "t10k", 100, 1, 31);
}

/* The table and every report entry say how many queries have no relevant item (AP 0). */
Test(reproduce_retrieval, queries_without_relevant_item_reported, .timeout = 240)
{
    char data[1024], out[1024];
    paper_sized_dataset(data, sizeof data, out, sizeof out);
    static char log[1 << 16];
    int rc = tu_run(log, sizeof log,
                    "%s reproduce --dataset mnist:%s --quick --iters 2 --bits 12 --long-bits 16 "
                    "--recipes drsch,authors --threads 2 --out %s",
                    tu_exe(), data, out);
    cr_assert_eq(rc, 0, "%s", log);
    /* Only what the run is for stays: no training state (kept only while a model trains), no
     * temporary file, no lock. */
    DIR *dir = opendir(out);
    cr_assert_not_null(dir);
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        cr_expect(!strstr(ent->d_name, ".state") && !strstr(ent->d_name, ".tmp") &&
                      !strstr(ent->d_name, ".lock"),
                  "%s is left in %s", ent->d_name, out);
    }
    closedir(dir);
    char lock[1100];
    snprintf(lock, sizeof lock, "%s.lock", out);
    cr_expect_neq(access(lock, F_OK), 0, "%s is left behind", lock);
    char path[1100];
    char *md = tu_slurp(path_in(out, "table.md", path, sizeof path), NULL);
    cr_assert_not_null(md);
    cr_expect(
        strstr(md, "0 of 1000 queries have no relevant item in the database (counted as AP 0).") !=
            NULL,
        "%s", md);
    free(md);
    snprintf(path, sizeof path, "%s/report.json", out);
    char *text = tu_slurp(path, NULL);
    cr_assert_not_null(text);
    cJSON *root = cJSON_Parse(text), *e;
    cr_assert_not_null(root);
    int n = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "benchmarks"))
    {
        cr_expect_eq(counter(e, "queries"), 1000.0, "%s",
                     cJSON_GetObjectItem(e, "name")->valuestring);
        cr_expect_eq(counter(e, "queries_without_relevant"), 0.0, "%s",
                     cJSON_GetObjectItem(e, "name")->valuestring);
        n++;
    }
    cr_expect_gt(n, 0);
    /* The long model of each recipe (drsch's, the authors'), in both bit orders, with Hamming,
     * |w| and w^2 ranking: the entries drsch's recipe always had keep their names, the others
     * name recipe, order and power. At the model's own length the two orders hold the same bits:
     * the same figures. */
    cJSON *b = cJSON_GetObjectItem(root, "benchmarks");
    const char *legacy[] = {"DRSCH_-trained_at_each_length-/bits:12", "DRSCH-16_truncated/bits:12",
                            "DRSCH-16_truncated-_weighted_ranking/bits:12", "LSH_-pixels-/bits:12",
                            "ITQ_-pixels-/bits:12"};
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++) {
        char name[256];
        snprintf(name, sizeof name, "reproduce/mnist/%s", legacy[i]);
        cr_expect_not_null(entry(b, name), "%s is missing", name);
    }
    const char *recipes[] = {"DRSCH-16", "DRSCH-16_-authors_recipe-"};
    const char *ranks[] = {"", "-_weighted_ranking_power_1", "-_weighted_ranking_power_2"};
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 3; k++) {
            char saved[256], weight[256];
            /* drsch's saved-order power-1 row is the one always named "weighted ranking" */
            snprintf(saved, sizeof saved, "reproduce/mnist/%s_truncated%s/bits:0", recipes[r],
                     r == 0 && k == 1 ? "-_weighted_ranking" : ranks[k]);
            snprintf(weight, sizeof weight, "reproduce/mnist/%s_truncated_in_weight_order%s/bits:0",
                     recipes[r], ranks[k]);
            cJSON *es = entry(b, saved), *ew = entry(b, weight);
            cr_assert(es && ew, "%s or %s is missing", saved, weight);
            cr_expect_eq(counter(es, "mAP"), counter(ew, "mAP"), "%s", weight);
        }
    cr_expect_eq(access(tu_path("out/model-16-authors.bin"), F_OK), 0);
    /* The classifier baseline: one model, its 10-bit one-hot code shown at 12 and 16 bits. */
    cr_expect_eq(access(tu_path("out/model-classifier.bin"), F_OK), 0);
    cJSON *c12 = entry(b, "reproduce/mnist/Classifier_-softmax;_one-hot_of_the_predicted_class-_"
                          "10_bits-/bits:12"),
          *c16 = entry(b, "reproduce/mnist/Classifier_-softmax;_one-hot_of_the_predicted_class-_"
                          "10_bits-/bits:0");
    cr_assert(c12 && c16, "no classifier entries");
    cr_expect_eq(counter(c12, "mAP"), counter(c16, "mAP"));
    cr_expect(counter(c12, "mAP") > 0.1, "classifier mAP %g", counter(c12, "mAP"));
    cJSON_Delete(root);
    free(text);
    md = tu_slurp(path_in(out, "table.md", path, sizeof path), NULL);
    cr_assert_not_null(md);
    const char *cells[] = {
        "| method | recipe | bit order | ranking | 12 bits | 16 bits |",
        "| DRSCH (trained at each length) | drsch | — | Hamming |",
        "| DRSCH-16 truncated | drsch | saved (drsch's) | Hamming |",
        "| DRSCH-16 truncated, weighted ranking | drsch | saved (drsch's) | weighted \\|w\\| |",
        "| DRSCH-16 (authors recipe) truncated in weight order, weighted ranking power 2 | authors "
        "| "
        "top \\|w\\| (authors') | weighted w^2 |",
        "| LSH (pixels) | — | — | Hamming |",
        "| Classifier (softmax; one-hot of the predicted class, 10 bits) | drsch | — | Hamming |",
        "- recipe drsch, the saved (drsch's) order: 12 bits",
        "- recipe authors, the authors' (top |w|) order: 12 bits"};
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        cr_expect_not_null(strstr(md, cells[i]), "no \"%s\" in\n%s", cells[i], md);
    free(md);
}

/* --quick trains the long model with drsch's recipe only (unless --recipes says otherwise): its
 * drsch rows in both bit orders, no authors' model. */
Test(reproduce_retrieval, quick_trains_drschs_recipe_only, .timeout = 240)
{
    char data[1024], out[1024], path[1100];
    paper_sized_dataset(data, sizeof data, out, sizeof out);
    static char log[1 << 16];
    int rc = tu_run(log, sizeof log,
                    "%s reproduce --dataset mnist:%s --quick --iters 1 --bits 4 --long-bits 8 "
                    "--threads 2 --out %s",
                    tu_exe(), data, out);
    cr_assert_eq(rc, 0, "%s", log);
    cr_expect_neq(access(path_in(out, "model-8-authors.bin", path, sizeof path), F_OK), 0);
    cr_expect_eq(access(path_in(out, "model-8.bin", path, sizeof path), F_OK), 0);
    char *text = tu_slurp(path_in(out, "report.json", path, sizeof path), NULL);
    cr_assert_not_null(text);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "context"), "long_model_recipes");
    cr_expect(cJSON_IsString(r) && !strcmp(r->valuestring, "drsch"), "%s", text);
    cJSON *b = cJSON_GetObjectItem(root, "benchmarks");
    cr_expect_not_null(entry(b, "reproduce/mnist/DRSCH-8_truncated_in_weight_order/bits:4"));
    cr_expect_null(entry(b, "reproduce/mnist/DRSCH-8_-authors_recipe-_truncated/bits:4"));
    /* 10 classes need 10 bits: no column holds the classifier's code, so it is not trained */
    cr_expect_neq(access(path_in(out, "model-classifier.bin", path, sizeof path), F_OK), 0);
    cJSON_Delete(root);
    free(text);
}

/* The report at path records R training replicas in its context. */
static void expect_train_replicas(const char *path, int R)
{
    char *text = tu_slurp(path, NULL);
    cr_assert_not_null(text, "%s", path);
    cJSON *root = cJSON_Parse(text);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "context"), "train_replicas");
    cr_expect(cJSON_IsNumber(r) && r->valuedouble == R, "%s", text);
    cJSON_Delete(root);
    free(text);
}

/* --replicas 2: every model has the same bytes at 1 and 2 threads, and the report records it. */
Test(reproduce_retrieval, replicas_give_the_same_models_at_any_thread_count, .timeout = 240)
{
    char data[1024], out[2][1024], path[2][1100];
    static char log[1 << 16];
    paper_sized_dataset(data, sizeof data, out[0], sizeof out[0]);
    snprintf(out[1], sizeof out[1], "%s", tu_path("out2"));
    for (int t = 0; t < 2; t++) {
        int rc = tu_run(log, sizeof log,
                        "%s reproduce --dataset mnist:%s --quick --iters 4 --bits 4 --long-bits 8 "
                        "--replicas 2 --threads %d --out %s",
                        tu_exe(), data, t + 1, out[t]);
        cr_assert_eq(rc, 0, "%s", log);
    }
    const char *models[] = {"model-4.bin", "model-8.bin"};
    for (int i = 0; i < 2; i++) {
        size_t la, lb;
        char *a = tu_slurp(path_in(out[0], models[i], path[0], sizeof path[0]), &la);
        char *b = tu_slurp(path_in(out[1], models[i], path[1], sizeof path[1]), &lb);
        cr_assert(a && b, "%s missing", models[i]);
        cr_expect(la == lb && memcmp(a, b, la) == 0, "%s differs at 1 and 2 threads", models[i]);
        free(a);
        free(b);
    }
    expect_train_replicas(path_in(out[1], "report.json", path[1], sizeof path[1]), 2);
}

/* drsch sweep --replicas 2: the same models and table at 1 and 2 threads (every figure but the
 * training times), and sweep.json records the replicas. */
Test(reproduce_retrieval, sweep_replicas_give_the_same_table_at_any_thread_count, .timeout = 240)
{
    char data[1024], out[1024], path[1100];
    static char log[1 << 16];
    paper_sized_dataset(data, sizeof data, out, sizeof out);
    for (int t = 1; t <= 2; t++) {
        int rc = tu_run(log, sizeof log,
                        "%s sweep --dataset mnist:%s --bits 8 --seeds 1,2 --iters 4 --replicas 2 "
                        "--threads %d --out %s/t%d",
                        tu_exe(), data, t, out, t);
        cr_assert_eq(rc, 0, "%s", log);
    }
    int rc = tu_run(log, sizeof log,
                    "cd %s && for d in t1 t2; do sed -e 1,6d -e 's/| [0-9]* |$//' $d/sweep.md > "
                    "$d.rows; done && cmp t1.rows t2.rows && cmp t1/model-8-s1.bin "
                    "t2/model-8-s1.bin && cmp t1/model-8-s2.bin t2/model-8-s2.bin",
                    out);
    cr_expect_eq(rc, 0, "the tables or models differ at 1 and 2 threads: %s", log);
    snprintf(path, sizeof path, "%s/t2/sweep.json", out);
    expect_train_replicas(path, 2);
}

/* --recipes: a list of drsch and authors, each once; not for CUHK03 (one model per split). */
Test(reproduce_retrieval, recipes_checked_before_loading, .timeout = 60)
{
    char out[8192];
    const char *bad[] = {"x", "drsch,drsch", "drsch,", "", "authors,x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tu_run(out, sizeof out, "%s reproduce --recipes '%s' --out %s", tu_exe(), bad[i],
                        tu_path("o"));
        cr_expect_eq(rc, 2, "--recipes '%s': %s", bad[i], out);
        cr_expect(strstr(out, "--recipes") && !strstr(out, "loading"), "%s: %s", bad[i], out);
    }
    write_fixture(tu_path("c.mat"), 1);
    int rc = tu_run(out, sizeof out, "%s reproduce --dataset cuhk03:%s --recipes authors --out %s",
                    tu_exe(), tu_path("c.mat"), tu_path("o"));
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "--recipes") && !strstr(out, "loading"), "%s", out);
    xp_repro_config c = {0};
    drsch_error err;
    cr_assert_eq(xp_repro_parse_recipes("authors,drsch", &c, &err), DRSCH_OK, "%s", err.msg);
    cr_expect(c.n_recipes == 2 && c.recipes[0] == NN_RECIPE_AUTHORS &&
              c.recipes[1] == NN_RECIPE_DRSCH);
}

/* The mAP-vs-bits plot: its y range follows the figures (min and max widened by 10% of their span,
 * rounded out to 0.05), and the published figures are points of their own with their legend
 * entry; without them the script has no such series. */
Test(reproduce_retrieval, map_plot_range_and_published_points)
{
    ds_dataset d = {0};
    snprintf(d.name, sizeof d.name, "cifar10");
    xp_repro_config c = {.lengths = {12, 24, 32, 48}, .n_lengths = 4, .long_bits = 64};
    xp_retrieval_result res = {.metric = "mAP@all", .n_rows = 3, .have_paper = 1};
    const double v[3][5] = {
        {0.60, 0.66, 0.68, 0.68, 0}, {0.64, 0.67, 0.68, 0.69, 0.69}, {0.50, 0.62, 0.63, 0.63, 0}};
    for (int k = 0; k < 3; k++) {
        snprintf(res.rows[k].method, sizeof res.rows[k].method, k == 2 ? "published" : "row %d", k);
        for (int i = 0; i < 5; i++) {
            res.rows[k].map[i] = v[k][i];
            res.rows[k].have[i] = k == 1 || i < 4;
        }
    }
    char dir[1100], path[1200];
    for (int paper = 1; paper >= 0; paper--) {
        snprintf(dir, sizeof dir, "%s", tu_path(paper ? "with" : "without"));
        cr_assert_eq(mkdir(dir, 0755), 0);
        res.have_paper = paper;
        res.n_rows = paper ? 3 : 2;
        drsch_error err;
        cr_assert_eq(rp_repro_curves(dir, &d, &c, &res, NULL, &err), DRSCH_OK, "%s", err.msg);
        char *gp = tu_slurp(path_in(dir, "plots.gp", path, sizeof path), NULL);
        cr_assert_not_null(gp);
        /* with: 0.50..0.69, margin 0.019: [0.45:0.75]; without: 0.60..0.69, margin 0.009:
         * [0.55:0.70] */
        const char *range = paper ? "set yrange [0.45:0.75]\n" : "set yrange [0.55:0.70]\n";
        cr_expect_not_null(strstr(gp, range), "no %s in\n%s", range, gp);
        cr_expect_null(strstr(gp, "set yrange [0:1]\nplot for [k=2"), "%s", gp);
        cr_expect_not_null(strstr(gp, "plot for [k=2:3] "), "rows 0 and 1 as lines: %s", gp);
        char series[1400];
        snprintf(series, sizeof series,
                 "'%s/map_vs_bits.dat' using 1:4 with points pointtype 7 pointsize 1.5 linecolor "
                 "rgb 'black' title 'published (quoted, unverified)'",
                 dir);
        if (paper)
            cr_expect_not_null(strstr(gp, series), "no published series in\n%s", gp);
        else
            cr_expect_null(strstr(gp, "published"), "%s", gp);
        free(gp);
    }
}
