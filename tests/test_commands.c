/* drsch eval, search and encode at the command line: what they refuse before any work (missing
 * flags named alone, output files and prefixes that cannot be written, input paths that do not
 * exist or are directories, --threads outside 0..1024), the one rule for bit-weight files, the
 * eval table (K, radius, the count of queries without a relevant item; P@K over min(K, N)),
 * that a failing eval prints nothing on stdout, and that the peak memory search prints is its own;
 * --weight-power (eval, encode, search, reproduce): bad values refused, squared weights where it is
 * 2, on .npy inputs and on a small model with unequal bit weights built here (on a synthetic
 * MNIST-style folder). */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hamming.h"
#include "nn.h"
#include "npy.h"
#include "test_util.h"

/* The ranking of tests/test_metrics.c: query 0b0000 (label 1) against 4-bit codes
 * d = [1, 0, 2, 1, 4], labels [1, 0, 1, 0, 1]; a second query (label 7) has no relevant item.
 * AP@all of query 1 = (1/2 + 2/4 + 3/5) / 3; P@r2 = 2/4; P@K for K >= 5 = 3/5. */
static void write_inputs(void)
{
    static const uint8_t db[5] = {0x1, 0x0, 0x3, 0x1, 0xF}, q[2] = {0x0, 0x0};
    static const int32_t dbl[5] = {1, 0, 1, 0, 1}, ql[2] = {1, 7};
    size_t sdb[2] = {5, 1}, sq[2] = {2, 1}, sdbl[1] = {5}, sql[1] = {2};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("db.npy"), NPY_U8, 2, sdb, db, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_save(tu_path("q.npy"), NPY_U8, 2, sq, q, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_save(tu_path("dbl.npy"), NPY_I32, 1, sdbl, dbl, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(npy_save(tu_path("ql.npy"), NPY_I32, 1, sql, ql, &err), DRSCH_OK, "%s", err.msg);
    mkdir(tu_path("dir"), 0755);
}

static void setup(void)
{
    tu_tmpdir_make("cli");
    write_inputs();
}

/* The eval of the files above with extra flags; out gets stdout and stderr. */
#define EVAL_NPY "%s eval --codes %s --db %s --qlabels %s --dblabels %s"
#define EVAL_ARGS                                                                                  \
    tu_exe(), tu_path("q.npy"), tu_path("db.npy"), tu_path("ql.npy"), tu_path("dbl.npy")

/* Number of entries in a directory besides . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void assert_clean(const char *out)
{
    cr_assert(strstr(out, "AddressSanitizer") == NULL && strstr(out, "runtime error") == NULL, "%s",
              out);
    /* Messages are for the user: no library function names. */
    cr_assert(strstr(out, "npy_") == NULL && strstr(out, "nn_") == NULL &&
                  strstr(out, "hm_") == NULL,
              "%s", out);
}

TestSuite(eval, .init = setup, .fini = tu_tmpdir_remove);

Test(eval, multi_hot_labels_of_different_widths_are_refused)
{
    uint8_t ql[2 * 5] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0}, dl[5 * 6] = {0};
    for (int i = 0; i < 5; i++)
        dl[i * 6 + i] = 1;
    size_t sq[2] = {2, 5}, sd[2] = {5, 6};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("ql5.npy"), NPY_U8, 2, sq, ql, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("dl6.npy"), NPY_U8, 2, sd, dl, &err), DRSCH_OK);
    char out[4096];
    int rc =
        tu_run(out, sizeof out, "%s eval --codes %s --db %s --qlabels %s --dblabels %s", tu_exe(),
               tu_path("q.npy"), tu_path("db.npy"), tu_path("ql5.npy"), tu_path("dl6.npy"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "ql5.npy") && strstr(out, "dl6.npy"), "names both files: %s", out);
    cr_assert(strstr(out, " 5 ") && strstr(out, " 6 "), "names both widths: %s", out);
    cr_assert(strstr(out, "mAP") == NULL, "no table: %s", out);
    /* Single labels against multi-hot ones: refused too, naming both files. */
    rc = tu_run(out, sizeof out, "%s eval --codes %s --db %s --qlabels %s --dblabels %s", tu_exe(),
                tu_path("q.npy"), tu_path("db.npy"), tu_path("ql.npy"), tu_path("dl6.npy"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "ql.npy") && strstr(out, "dl6.npy"), "%s", out);
    assert_clean(out);
}

Test(eval, table_says_k_radius_and_the_queries_without_relevant_items)
{
    char out[8192];
    int rc = tu_run(out, sizeof out, EVAL_NPY " --topk 3 --radius 1 --json %s 2>/dev/null",
                    EVAL_ARGS, tu_path("e.json"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, " mAP@3") && strstr(out, " P@3") && strstr(out, " P@r1"),
              "headers name K and r: %s", out);
    cr_assert(strstr(out, "1 of 2 queries have no relevant item (counted as AP 0)"), "%s", out);

    /* K = 10 beyond the 5 database items: P@K over the 5 retrieved, (3/5 + 0) / 2. */
    rc = tu_run(out, sizeof out, EVAL_NPY " --topk 10 --json %s 2>/dev/null", EVAL_ARGS,
                tu_path("e.json"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, " mAP@10") && strstr(out, " P@10") && strstr(out, " P@r2"), "%s", out);
    char *text = tu_slurp(tu_path("e.json"), NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(j);
    cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "benchmarks"), 0);
    double ap = (0.5 + 0.5 + 0.6) / 3 / 2;
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "P_at_K")->valuedouble, 0.3, 1e-12);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "mAP_at_K")->valuedouble, ap, 1e-12);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "mAP")->valuedouble, ap, 1e-12);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "K")->valuedouble, 10, 0);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "radius")->valuedouble, 2, 0);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "queries_without_relevant")->valuedouble,
                       1, 0);
    cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, "queries")->valuedouble, 2, 0);
    cJSON_Delete(j);
    cr_assert(strstr(out, "0.3000"), "P@10 = 0.3: %s", out);

    /* --topk 0: no K columns, the radius and the count still there. */
    rc = tu_run(out, sizeof out, EVAL_NPY " --topk 0 2>/dev/null", EVAL_ARGS);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "P@r2") && !strstr(out, "P@0") && strstr(out, "1 of 2 queries"), "%s",
              out);
}

/* Results are printed once they exist: a failure anywhere leaves stdout empty. */
Test(eval, a_failing_eval_prints_nothing_on_stdout)
{
    /* Finite weights whose sum at 4 bits is fine but at 8 bits too large for float sums. */
    float big[8];
    for (int i = 0; i < 8; i++)
        big[i] = 3e37f;
    size_t s8[1] = {8}, sempty[2] = {0, 1}, lempty[1] = {0};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("wbig.npy"), NPY_F32, 1, s8, big, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("empty.npy"), NPY_U8, 2, sempty, "", &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("emptyl.npy"), NPY_I32, 1, lempty, "", &err), DRSCH_OK);
    /* 8-bit codes for the weights. */
    uint8_t db8[5] = {1, 2, 3, 4, 5};
    size_t sdb[2] = {5, 1};
    cr_assert_eq(npy_save(tu_path("db8.npy"), NPY_U8, 2, sdb, db8, &err), DRSCH_OK);
    char out[4096];
    int rc =
        tu_run(out, sizeof out,
               "{ %s eval --codes %s --db %s --qlabels %s --dblabels %s --weights %s --bits 4,8 "
               "2>%s; }",
               tu_exe(), tu_path("q.npy"), tu_path("db8.npy"), tu_path("ql.npy"),
               tu_path("dbl.npy"), tu_path("wbig.npy"), tu_path("err.txt"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_str_eq(out, "", "stdout of a failing eval: %s", out);
    char *msg = tu_slurp(tu_path("err.txt"), NULL);
    cr_assert(strstr(msg, "wbig.npy") && strstr(msg, "too large"), "%s", msg);
    free(msg);

    rc = tu_run(out, sizeof out, "{ %s eval --codes %s --db %s --qlabels %s --dblabels %s 2>%s; }",
                tu_exe(), tu_path("q.npy"), tu_path("empty.npy"), tu_path("ql.npy"),
                tu_path("emptyl.npy"), tu_path("err.txt"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_str_eq(out, "", "stdout of a failing eval: %s", out);
    msg = tu_slurp(tu_path("err.txt"), NULL);
    cr_assert(strstr(msg, "empty.npy"), "%s", msg);
    free(msg);
}

/* One rule for weight files in eval and search: float32 or float64, 1-D, finite, one per bit. */
Test(eval, weights_follow_the_rule_of_search)
{
    double w64[4] = {1, 1, 1, 1};
    double w64long[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    double w64nan[4] = {1, NAN, 1, 1};
    float w2d[4] = {1, 1, 1, 1};
    size_t s4[1] = {4}, s9[1] = {9}, s22[2] = {2, 2};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("w64.npy"), NPY_F64, 1, s4, w64, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("w64long.npy"), NPY_F64, 1, s9, w64long, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("w64nan.npy"), NPY_F64, 1, s4, w64nan, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("w2d.npy"), NPY_F32, 2, s22, w2d, &err), DRSCH_OK);
    /* 4-bit codes stored as one byte: 8 bits in the file; --bits 4 for search. */
    char out[8192];
    int rc = tu_run(out, sizeof out, EVAL_NPY " --weights %s --topk 3 2>/dev/null", EVAL_ARGS,
                    tu_path("w64.npy"));
    cr_assert_eq(rc, 0, "eval takes float64 weights: %s", out);
    /* Weights all 1: the same mAP@all as Hamming ranking, (1/2 + 2/4 + 3/5) / 3 / 2. */
    cr_assert(strstr(out, "0.2667"), "%s", out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 2 --weights %s --out %s",
                tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("w64.npy"), tu_path("s"));
    cr_assert_eq(rc, 0, "search takes float64 weights: %s", out);
    const char *bad[] = {"w64nan.npy", "w2d.npy"};
    for (int i = 0; i < 2; i++) {
        rc = tu_run(out, sizeof out, EVAL_NPY " --weights %s", EVAL_ARGS, tu_path(bad[i]));
        cr_assert_eq(rc, 1, "%s: %s", bad[i], out);
        cr_assert(strstr(out, bad[i]) && strstr(out, "weight"), "%s", out);
        assert_clean(out);
        rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 2 --weights %s --out %s",
                    tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path(bad[i]), tu_path("s"));
        cr_assert_eq(rc, 1, "%s: %s", bad[i], out);
        cr_assert(strstr(out, bad[i]) && strstr(out, "weight"), "%s", out);
    }
    /* 9 weights for 8-bit codes: both refuse with the same message. */
    rc =
        tu_run(out, sizeof out, "%s search --db %s --queries %s --k 2 --weights %s --out %s",
               tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("w64long.npy"), tu_path("s"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "w64long.npy: 9 weights, but the codes need 1 to 8"), "%s", out);
    rc = tu_run(out, sizeof out, EVAL_NPY " --weights %s", EVAL_ARGS, tu_path("w64long.npy"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "w64long.npy: 9 weights, but the codes need 1 to 8"), "%s", out);
    /* Fewer weights than --bits asks for. */
    rc = tu_run(out, sizeof out,
                "%s search --db %s --queries %s --k 2 --bits 6 --weights %s --out %s", tu_exe(),
                tu_path("db.npy"), tu_path("q.npy"), tu_path("w64.npy"), tu_path("s"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "w64.npy: 4 weights"), "%s", out);
}

/* Weighted ranking states the weights' quantisation step (the table's line, the report's
 * weight_step of each length, search's summary): equal weights 0.1 quantise to one value and
 * rank exactly as Hamming distance, so mAP@all is the plain one; the step is the library's. */
Test(eval, weighted_ranking_states_the_quantisation_step)
{
    float tenth[4] = {0.1f, 0.1f, 0.1f, 0.1f};
    size_t s4[1] = {4};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("w01.npy"), NPY_F32, 1, s4, tenth, &err), DRSCH_OK);
    hm_weights *hw = NULL;
    cr_assert_eq(hm_weights_create(&hw, tenth, 4, &err), DRSCH_OK, "%s", err.msg);
    double step = hm_weights_step(hw);
    hm_weights_free(hw);
    char line[160], out[8192];
    snprintf(line, sizeof line,
             "weights quantised to multiples of 2^%d (step %g) at 4 bits, so equal distances tie "
             "exactly\n",
             ilogb(step), step);
    int rc = tu_run(out, sizeof out, EVAL_NPY " --weights %s --json %s 2>/dev/null", EVAL_ARGS,
                    tu_path("w01.npy"), tu_path("w.json"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, line) && strstr(out, "0.2667"), "want '%s' and mAP 0.2667: %s", line,
              out);
    char *text = tu_slurp(tu_path("w.json"), NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "benchmarks"), 0);
    cJSON *ws = cJSON_GetObjectItemCaseSensitive(e, "weight_step");
    cr_assert(cJSON_IsNumber(ws) && ws->valuedouble == step, "weight_step in the report");
    cJSON_Delete(j);
    /* plain Hamming ranking: no step */
    rc = tu_run(out, sizeof out, EVAL_NPY " 2>/dev/null", EVAL_ARGS);
    cr_assert(rc == 0 && !strstr(out, "quantised"), "%s", out);
    rc = tu_run(out, sizeof out,
                "%s search --db %s --queries %s --k 2 --bits 4 --weights %s --out %s", tu_exe(),
                tu_path("db.npy"), tu_path("q.npy"), tu_path("w01.npy"), tu_path("s"));
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(line, sizeof line,
             "weights quantised to multiples of 2^%d, step %g, so equal "
             "distances tie exactly",
             ilogb(step), step);
    cr_assert(strstr(out, line), "want '%s': %s", line, out);
}

Test(eval, threads_zero_is_the_default_and_1024_the_limit)
{
    char out[8192];
    int rc = tu_run(out, sizeof out, EVAL_NPY " --threads 0", EVAL_ARGS);
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, EVAL_NPY " --threads 1025", EVAL_ARGS);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--threads") && strstr(out, "0 to 1024"), "%s", out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 2 --threads 0 --out %s",
                tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("t"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 2 --threads 1025 --out %s",
                tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("t"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--threads") && strstr(out, "0 to 1024"), "%s", out);
    /* encode: --threads 0 passes; the failure is the missing model, not the flag. */
    rc = tu_run(out, sizeof out, "%s encode --model %s --threads 0 --out %s", tu_exe(),
                tu_path("none.bin"), tu_path("x"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "--threads") == NULL && strstr(out, "none.bin"), "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --model %s --threads 1025 --out %s", tu_exe(),
                tu_path("none.bin"), tu_path("x"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--threads") && strstr(out, "0 to 1024"), "%s", out);
}

/* --json is checked before anything is loaded or encoded: with a model that does not exist
 * the error is the output's. */
Test(eval, json_output_is_checked_before_work)
{
    char out[4096], arg[600];
    const char *cases[][2] = {
        {"", "empty"}, {"dir", "is a directory"}, {"nofolder/e.json", "does not exist"}};
    for (int i = 0; i < 3; i++) {
        snprintf(arg, sizeof arg, "'%s'", cases[i][0][0] ? tu_path(cases[i][0]) : "");
        int rc = tu_run(out, sizeof out, "%s eval --model %s --json %s", tu_exe(),
                        tu_path("none.bin"), arg);
        cr_assert_eq(rc, 2, "%s: %s", arg, out);
        cr_assert(strstr(out, "--json") && strstr(out, cases[i][1]) && !strstr(out, "none.bin"),
                  "%s", out);
        rc = tu_run(out, sizeof out, EVAL_NPY " --json %s", EVAL_ARGS, arg);
        cr_assert_eq(rc, 2, "%s: %s", arg, out);
        cr_assert(strstr(out, cases[i][1]) && !strstr(out, "mAP"), "%s", out);
    }
    cr_assert_eq(entries(tu_path("dir")), 0, "nothing written in the directory");
    cr_assert_neq(access(tu_path("nofolder"), F_OK), 0);
}

Test(eval, missing_flags_are_named_alone)
{
    char out[4096];
    int rc = tu_run(out, sizeof out, "%s eval --codes %s --db %s --qlabels %s", tu_exe(),
                    tu_path("q.npy"), tu_path("db.npy"), tu_path("ql.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch eval: --dblabels FILE is required"), "%s", out);
    cr_assert(!strstr(out, "--qlabels") && !strstr(out, "--model"), "only the missing flag: %s",
              out);
    rc = tu_run(out, sizeof out, "%s eval --codes %s --qlabels %s", tu_exe(), tu_path("q.npy"),
                tu_path("ql.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch eval: --db FILE and --dblabels FILE are required"), "%s", out);
    rc = tu_run(out, sizeof out, EVAL_NPY " --qcams %s", EVAL_ARGS, tu_path("ql.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--dbcams FILE is required"), "%s", out);
    rc = tu_run(out, sizeof out, "%s eval", tu_exe());
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--model") && strstr(out, "--codes"), "%s", out);
}

/* Inputs that do not exist or are directories: the user's path and the cause. */
Test(eval, input_errors_name_the_path_and_the_cause)
{
    char out[4096];
    struct {
        const char *flag, *name, *cause;
    } cases[] = {
        {"--codes", "dir", "is a directory"},   {"--db", "nothere.npy", "no such file"},
        {"--qlabels", "dir", "is a directory"}, {"--dblabels", "nothere.npy", "no such file"},
        {"--weights", "dir", "is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p[4] = {tu_path("q.npy"), tu_path("db.npy"), tu_path("ql.npy"),
                            tu_path("dbl.npy")};
        const char *flags[4] = {"--codes", "--db", "--qlabels", "--dblabels"};
        char cmd[3000];
        int n = snprintf(cmd, sizeof cmd, "%s eval", tu_exe());
        for (int k = 0; k < 4; k++)
            n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s %s", flags[k],
                          strcmp(flags[k], cases[i].flag) ? p[k] : tu_path(cases[i].name));
        if (!strcmp(cases[i].flag, "--weights"))
            snprintf(cmd + n, sizeof cmd - (size_t)n, " --weights %s", tu_path(cases[i].name));
        int rc = tu_run(out, sizeof out, "%s", cmd);
        cr_assert_eq(rc, 1, "%s: %s", cases[i].flag, out);
        cr_assert(strstr(out, tu_path(cases[i].name)) && strstr(out, cases[i].cause), "%s: %s",
                  cases[i].flag, out);
        assert_clean(out);
    }
    int rc = tu_run(out, sizeof out, "%s eval --model %s", tu_exe(), tu_path("dir"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("dir")) && strstr(out, "is a directory"), "%s", out);
    rc = tu_run(out, sizeof out, "%s eval --model %s", tu_exe(), tu_path("none.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("none.bin")) && strstr(out, "no such file"), "%s", out);
}

/* -h and --help: exit 0, usage on stdout, every flag of the command described, nothing about
 * issues or earlier defaults. */
static void check_help(const char *cmd, const char *flags)
{
    const char *forms[2] = {"-h", "--help"};
    for (int f = 0; f < 2; f++) {
        char out[16384];
        int rc = tu_run(out, sizeof out, "%s %s %s 2>/dev/null", tu_exe(), cmd, forms[f]);
        cr_assert_eq(rc, 0, "%s %s: %s", cmd, forms[f], out);
        cr_assert(strncmp(out, "usage: drsch ", 13) == 0, "%s %s: %s", cmd, forms[f], out);
        for (const char *p = flags; *p;) {
            char flag[40], needle[48];
            int n = 0;
            sscanf(p, "%39s%n", flag, &n);
            /* A flag's own line: "  --flag ARG  text" or "  -h, --help  text". */
            snprintf(needle, sizeof needle, "\n  %s ", flag);
            const char *at = strstr(out, needle);
            if (!at) {
                snprintf(needle, sizeof needle, "\n  -h, %s ", flag);
                at = strstr(out, needle);
            }
            cr_assert(at, "%s %s lists %s: %s", cmd, forms[f], flag, out);
            /* Described: text follows the flag on its line. */
            const char *eol = strchr(at + 1, '\n');
            cr_assert(eol && eol - at > (long)strlen(needle) + 8, "%s: %s has no description", cmd,
                      flag);
            p += n;
            while (*p == ' ')
                p++;
        }
        const char *th = strstr(out, "\n  --threads ");
        cr_assert(th && strstr(th, "0 = OMP_NUM_THREADS or all cores") < strchr(th + 1, '\n') &&
                      strstr(th, "0 = OMP_NUM_THREADS or all cores"),
                  "%s: --threads says what 0 means", cmd);
        for (const char *w = "issue\0previous\0earlier\0used to\0formerly\0"; *w;
             w += strlen(w) + 1)
            cr_assert(strcasestr(out, w) == NULL, "%s help mentions '%s': %s", cmd, w, out);
    }
}

/* Re-id from .npy files, both gallery compositions, the case of tests/test_metrics.c worked by
 * hand: Q (camera 0) ids 1 2 1 9, codes 0x0 0x3 0x2 0x0; G (camera 1) ids 1 2 1 3, codes 0x1 0x2
 * 0x3 0x7. cross-camera: 3 queries (1 skipped), mAP 7/12, mINP 5/9, rank-1 1/3; all (Q and G
 * pooled): 6 queries (2 skipped), mAP 307/720, mINP 137/360, rank-1 1/6, rank-5 1. */
Test(eval, reid_gallery_compositions_by_hand)
{
    static const uint8_t qv[4] = {0x0, 0x3, 0x2, 0x0}, gv[4] = {0x1, 0x2, 0x3, 0x7};
    static const int32_t qid[4] = {1, 2, 1, 9}, qcam[4] = {0}, gid[4] = {1, 2, 1, 3},
                         gcam[4] = {1, 1, 1, 1};
    const char *names[6] = {"rq.npy", "rg.npy", "rqid.npy", "rgid.npy", "rqcam.npy", "rgcam.npy"};
    const void *data[6] = {qv, gv, qid, gid, qcam, gcam};
    drsch_error err;
    for (int i = 0; i < 6; i++) {
        size_t shape[2] = {4, 1};
        cr_assert_eq(npy_save(tu_path(names[i]), i < 2 ? NPY_U8 : NPY_I32, i < 2 ? 2 : 1, shape,
                              data[i], &err),
                     DRSCH_OK, "%s", err.msg);
    }
    static const char *const modes[3] = {"", " --reid-gallery cross-camera", " --reid-gallery all"};
    const double want[3][5] = {{3, 1, 7.0 / 12, 5.0 / 9, 1.0 / 3},
                               {3, 1, 7.0 / 12, 5.0 / 9, 1.0 / 3},
                               {6, 2, 307.0 / 720, 137.0 / 360, 1.0 / 6}};
    const char *lines[3] = {
        "     4   0.5833   0.5556   0.3333   1.0000   1.0000   1.0000         3",
        "     4   0.5833   0.5556   0.3333   1.0000   1.0000   1.0000         3",
        "     4   0.4264   0.3806   0.1667   1.0000   1.0000   1.0000         6"};
    char out[8192];
    for (int m = 0; m < 3; m++) {
        int rc = tu_run(out, sizeof out,
                        "%s eval --codes %s --db %s --qlabels %s --dblabels %s --qcams %s --dbcams "
                        "%s --bits 4%s --json %s 2>/dev/null",
                        tu_exe(), tu_path("rq.npy"), tu_path("rg.npy"), tu_path("rqid.npy"),
                        tu_path("rgid.npy"), tu_path("rqcam.npy"), tu_path("rgcam.npy"), modes[m],
                        tu_path("r.json"));
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, "  bits      mAP     mINP   rank-1") && strstr(out, lines[m]),
                  "%s: %s", modes[m], out);
        char *text = tu_slurp(tu_path("r.json"), NULL);
        cJSON *j = cJSON_Parse(text);
        free(text);
        cr_assert_not_null(j);
        cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "benchmarks"), 0);
        const char *keys[5] = {"queries", "queries_skipped", "mAP", "mINP", "rank-1"};
        for (int k = 0; k < 5; k++)
            cr_assert_float_eq(cJSON_GetObjectItemCaseSensitive(e, keys[k])->valuedouble,
                               want[m][k], 1e-12, "%s %s", modes[m], keys[k]);
        cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "context");
        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ctx, "reid_gallery")->valuestring,
                         m == 2 ? "all" : "cross-camera");
        cJSON_Delete(j);
    }
    /* a bad choice, and the choice without re-id inputs, are usage errors */
    int rc = tu_run(out, sizeof out,
                    "%s eval --codes %s --db %s --qlabels %s --dblabels %s --qcams %s --dbcams %s "
                    "--reid-gallery pooled",
                    tu_exe(), tu_path("rq.npy"), tu_path("rg.npy"), tu_path("rqid.npy"),
                    tu_path("rgid.npy"), tu_path("rqcam.npy"), tu_path("rgcam.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--reid-gallery") && strstr(out, "cross-camera"), "%s", out);
    rc = tu_run(out, sizeof out, EVAL_NPY " --reid-gallery all", EVAL_ARGS);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--reid-gallery is for re-id") && strstr(out, "--qcams"), "%s", out);
    assert_clean(out);
}

Test(eval, help)
{
    check_help(
        "eval",
        "--model --dataset --protocol --testset --size --seed --weighted --weight-power "
        "--precision --codes --db --qlabels --dblabels --qcams --dbcams --bits --weights --topk "
        "--radius --single-shot --reid-gallery --threads --json --help");
    check_help("search",
               "--db --queries --out --k --bits --weights --weight-power --threads --isa --help");
    check_help("encode",
               "--model --dataset --split --protocol --testset --size --seed --bits --threads "
               "--precision --weight-power --out --help");
}

/* ---- search and encode: outputs checked before work, missing flags ------------------------ */

TestSuite(outputs, .init = setup, .fini = tu_tmpdir_remove);

/* search --out and encode --out: a prefix; "" and a directory are refused (they would write
 * hidden files .indices.npy or files beside the directory), so is a missing folder, all
 * before the inputs are read (the inputs here do not exist). */
Test(outputs, prefixes_are_checked_before_work)
{
    char out[4096], arg[600];
    const char *cases[][2] = {{"", "empty"},
                              {"dir", "is a directory"},
                              {"dir/", "is a directory"},
                              {"nofolder/x", "does not exist"}};
    for (int i = 0; i < 4; i++) {
        snprintf(arg, sizeof arg, "'%s'", cases[i][0][0] ? tu_path(cases[i][0]) : "");
        int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --out %s", tu_exe(),
                        tu_path("none.npy"), tu_path("q.npy"), arg);
        cr_assert_eq(rc, 2, "search --out %s: %s", arg, out);
        cr_assert(strstr(out, "--out") && strstr(out, cases[i][1]) && !strstr(out, "none.npy"),
                  "%s", out);
        rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --out %s", tu_exe(),
                    tu_path("db.npy"), tu_path("q.npy"), arg);
        cr_assert_eq(rc, 2, "search --out %s: %s", arg, out);
        if (i == 1)
            cr_assert(strstr(out, "prefix inside"), "the message says what to give: %s", out);
        rc = tu_run(out, sizeof out, "%s encode --model %s --out %s", tu_exe(), tu_path("none.bin"),
                    arg);
        cr_assert_eq(rc, 2, "encode --out %s: %s", arg, out);
        cr_assert(strstr(out, "--out") && strstr(out, cases[i][1]) && !strstr(out, "none.bin"),
                  "%s", out);
        if (i == 1)
            cr_assert(strstr(out, "prefix inside"), "the message says what to give: %s", out);
    }
    cr_assert_eq(entries(tu_path("dir")), 0, "nothing written in the directory");
    cr_assert_neq(access(tu_path("dir.indices.npy"), F_OK), 0,
                  "nothing written beside the directory");
    cr_assert_neq(access(".indices.npy", F_OK), 0);
    cr_assert_neq(access(tu_path("nofolder"), F_OK), 0);
}

/* The peak memory drsch search prints is its own: started straight from a process that holds
 * 512 MiB (Linux keeps getrusage's ru_maxrss across execve), it still reports its own few MiB. */
Test(outputs, peak_memory_is_the_programs_own)
{
    enum { BIG = 512 << 20 };
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%s", tu_path("search.err"));
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* only async-signal-safe calls after fork: mmap, not malloc */
        char *big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (big == MAP_FAILED)
            _exit(126);
        memset(big, 1, BIG);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(125);
        execl(tu_exe(), tu_exe(), "search", "--db", tu_path("db.npy"), "--queries",
              tu_path("q.npy"), "--k", "2", "--out", tu_path("peak"), (char *)NULL);
        _exit(127);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *text = tu_slurp(err_path, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, text);
    const char *at = strstr(text, "peak memory ");
    cr_assert_not_null(at, "%s", text);
    double mib = atof(at + strlen("peak memory "));
    cr_expect(mib > 0 && mib < 256, "peak memory %g MiB, started by a process of 512 MiB: %s", mib,
              text);
    free(text);
}

Test(outputs, missing_flags_are_named_alone)
{
    char out[4096];
    int rc = tu_run(out, sizeof out, "%s encode --model %s", tu_exe(), tu_path("none.bin"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch encode: --out PREFIX is required\n"), "%s", out);
    cr_assert(!strstr(out, "--model"), "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --out %s", tu_exe(), tu_path("x"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch encode: --model FILE is required\n"), "%s", out);
    rc = tu_run(out, sizeof out, "%s search --db %s", tu_exe(), tu_path("db.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch search: --queries FILE and --out PREFIX are required\n"), "%s",
              out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s", tu_exe(), tu_path("db.npy"),
                tu_path("q.npy"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "drsch search: --out PREFIX is required\n"), "%s", out);
}

Test(outputs, input_errors_name_the_path_and_the_cause)
{
    char out[4096];
    int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --out %s", tu_exe(),
                    tu_path("dir"), tu_path("q.npy"), tu_path("o"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("dir")) && strstr(out, "is a directory"), "%s", out);
    assert_clean(out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --out %s", tu_exe(),
                tu_path("db.npy"), tu_path("nothere.npy"), tu_path("o"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("nothere.npy")) && strstr(out, "no such file"), "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --model %s --out %s", tu_exe(), tu_path("dir"),
                tu_path("o"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("dir")) && strstr(out, "is a directory"), "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --model %s --out %s", tu_exe(), tu_path("none.bin"),
                tu_path("o"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, tu_path("none.bin")) && strstr(out, "no such file"), "%s", out);
    assert_clean(out);
    cr_assert_neq(access(tu_path("o.indices.npy"), F_OK), 0);
}

/* ---- --weight-power ------------------------------------------------------------------------ */

TestSuite(weight_power, .init = setup, .fini = tu_tmpdir_remove, .timeout = 240);

/* 0, 3 and x are refused by every command that has the flag, with status 2 and the flag named;
 * so is the flag where nothing is ranked by weights. */
Test(weight_power, bad_values_are_refused_naming_the_flag)
{
    const char *cmds[] = {"eval", "encode", "search", "reproduce"}, *vals[] = {"0", "3", "x"};
    char out[8192];
    for (int c = 0; c < 4; c++)
        for (int v = 0; v < 3; v++) {
            int rc = tu_run(out, sizeof out, "%s %s --weight-power %s", tu_exe(), cmds[c], vals[v]);
            cr_expect_eq(rc, 2, "%s --weight-power %s: %s", cmds[c], vals[v], out);
            cr_expect(strstr(out, "--weight-power") != NULL, "%s --weight-power %s: %s", cmds[c],
                      vals[v], out);
            assert_clean(out);
        }
    int rc = tu_run(out, sizeof out, EVAL_NPY " --weight-power 2", EVAL_ARGS);
    cr_expect_eq(rc, 2, "eval ranks by Hamming distance here: %s", out);
    cr_expect(strstr(out, "--weight-power") && strstr(out, "--weights FILE"), "%s", out);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --weight-power 2 --out %s",
                tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("s"));
    cr_expect_eq(rc, 2, "search without --weights: %s", out);
    cr_expect(strstr(out, "--weight-power") && strstr(out, "--weights FILE"), "%s", out);
}

/* search --weight-power 2 squares the file's weights: query 0000 against the codes 0001, 0000,
 * 0011, 0001, 1111 with w = (1, 2, 3, 0.5) gives 1, 0, 5, 1, 14.25 (power 1: 1, 0, 3, 1, 6.5);
 * eval --weight-power 2 with w ranks as eval with a file of w^2. */
Test(weight_power, search_and_eval_square_the_files_weights)
{
    const float w[4] = {1, 2, 3, 0.5f}, wsq[4] = {1, 4, 9, 0.25f};
    size_t s4[1] = {4};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("w.npy"), NPY_F32, 1, s4, w, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_save(tu_path("wsq.npy"), NPY_F32, 1, s4, wsq, &err), DRSCH_OK, "%s", err.msg);
    const float want[2][5] = {{0, 1, 1, 3, 6.5f}, {0, 1, 1, 5, 14.25f}};
    const int64_t want_idx[2][5] = {{1, 0, 3, 2, 4}, {1, 0, 3, 2, 4}};
    char out[8192], prefix[64], path[1200];
    for (int p = 1; p <= 2; p++) {
        snprintf(prefix, sizeof prefix, "s%d", p);
        int rc = tu_run(out, sizeof out,
                        "%s search --db %s --queries %s --k 5 --weights %s --weight-power %d "
                        "--out %s",
                        tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("w.npy"), p,
                        tu_path(prefix));
        cr_assert_eq(rc, 0, "power %d: %s", p, out);
        npy_array d, ix;
        snprintf(path, sizeof path, "%s.distances.npy", tu_path(prefix));
        cr_assert_eq(npy_load(path, &d, &err), DRSCH_OK, "%s", err.msg);
        snprintf(path, sizeof path, "%s.indices.npy", tu_path(prefix));
        cr_assert_eq(npy_load(path, &ix, &err), DRSCH_OK, "%s", err.msg);
        cr_assert_eq(d.dtype, NPY_F32);
        for (int j = 0; j < 5; j++) {
            cr_expect_eq(((float *)d.data)[j], want[p - 1][j], "power %d, neighbour %d: %g", p, j,
                         ((float *)d.data)[j]);
            cr_expect_eq(((int64_t *)ix.data)[j], want_idx[p - 1][j], "power %d, neighbour %d", p,
                         j);
        }
        npy_free(&d);
        npy_free(&ix);
    }
    char squared[8192], given[8192];
    int rc = tu_run(squared, sizeof squared, EVAL_NPY " --weights %s --weight-power 2 --topk 3",
                    EVAL_ARGS, tu_path("w.npy"));
    cr_assert_eq(rc, 0, "%s", squared);
    rc = tu_run(given, sizeof given, EVAL_NPY " --weights %s --topk 3", EVAL_ARGS,
                tu_path("wsq.npy"));
    cr_assert_eq(rc, 0, "%s", given);
    cr_expect_str_eq(squared, given);
}

/* A drsch-mnist model of 16 bits at path whose bit weights are w_k = (k odd ? -1 : 1) (k + 1) / 8:
 * far from equal, so that ranking by the sum of |w| and by the sum of w^2 differ. */
static void write_model(const char *path)
{
    enum { BITS = 16 };
    nn_config cfg;
    drsch_error err;
    cr_assert_eq(nn_config_init(&cfg, "drsch-mnist", BITS, 10, 0, &err), DRSCH_OK, "%s", err.msg);
    cfg.seed = 11;
    nn_net *net = NULL;
    cr_assert_eq(nn_net_create(&net, &cfg, &err), DRSCH_OK, "%s", err.msg);
    size_t np = nn_params_plain_size(net);
    float *p = malloc(sizeof *p * np);
    cr_assert_not_null(p);
    cr_assert_eq(nn_params_export(net, p, np, &err), DRSCH_OK, "%s", err.msg);
    for (int k = 0; k < BITS; k++) /* the bit weights are the last B parameters */
        p[np - BITS + (size_t)k] = (k % 2 ? -1.0f : 1.0f) * (float)(k + 1) / 8.0f;
    cr_assert_eq(nn_params_import(net, p, np, &err), DRSCH_OK, "%s", err.msg);
    free(p);
    cr_assert_eq(nn_model_save(net, path, &err), DRSCH_OK, "%s", err.msg);
    nn_net_free(net);
}

/* A 300 + 60 image MNIST-style dataset in tu_path("mnist") (its path into data) and
 * write_model's model as tu_path("m.bin"). */
static void small_dataset_and_model(char *data, size_t cap)
{
    snprintf(data, cap, "%s", tu_path("mnist"));
    cr_assert_eq(mkdir(data, 0755), 0);
    tu_write_idx_split(data, "train", 300, 5, 63);
    tu_write_idx_split(data, "t10k", 60, 5, 63);
    write_model(tu_path("m.bin"));
}

/* The mAP@all of the first table row of eval's stdout (the line after the header). */
static double first_map(const char *out)
{
    const char *row = strstr(out, "\n");
    double bits = 0, map = -1;
    cr_assert(row && sscanf(row + 1, "%lf %lf", &bits, &map) == 2, "no table row: %s", out);
    return map;
}

/* On a model with unequal bit weights: encode --weight-power 2 writes the squares of power 1's
 * weights (in the same order) and says so; eval --weighted --weight-power 2 runs, records the
 * power in its report and ranks differently from power 1. */
Test(weight_power, encode_and_eval_on_a_model)
{
    char data[1024], out[1 << 14];
    small_dataset_and_model(data, sizeof data);
    float w[2][16];
    for (int p = 1; p <= 2; p++) {
        char prefix[16], path[1200];
        snprintf(prefix, sizeof prefix, "e%d", p);
        int rc = tu_run(out, sizeof out,
                        "%s encode --model %s --dataset mnist:%s --protocol full --split query "
                        "--weight-power %d --threads 2 --out %s",
                        tu_exe(), tu_path("m.bin"), data, p, tu_path(prefix));
        cr_assert_eq(rc, 0, "power %d: %s", p, out);
        cr_expect(strstr(out, p == 2 ? "weights.npy: w^2 (weighted ranking by the sum of w^2 over "
                                       "differing bits)"
                                     : "weights.npy: |w| (weighted ranking by the sum of |w| over "
                                       "differing bits)"),
                  "encode says which weights it wrote: %s", out);
        npy_array a;
        drsch_error err;
        snprintf(path, sizeof path, "%s.weights.npy", tu_path(prefix));
        cr_assert_eq(npy_load(path, &a, &err), DRSCH_OK, "%s", err.msg);
        cr_assert_eq(a.count, 16);
        memcpy(w[p - 1], a.data, sizeof w[0]);
        npy_free(&a);
    }
    for (int j = 0; j < 16; j++) {
        cr_expect_gt(w[0][j], 0, "power 1: |w| of bit %d", j);
        cr_expect_eq(w[1][j], w[0][j] * w[0][j], "bit %d: %g, expected %g^2", j, w[1][j], w[0][j]);
    }
    double map[2];
    for (int p = 1; p <= 2; p++) {
        char json[32];
        snprintf(json, sizeof json, "r%d.json", p);
        int rc = tu_run(out, sizeof out,
                        "%s eval --model %s --dataset mnist:%s --protocol full --weighted "
                        "--weight-power %d --threads 2 --json %s 2>/dev/null",
                        tu_exe(), tu_path("m.bin"), data, p, tu_path(json));
        cr_assert_eq(rc, 0, "power %d: %s", p, out);
        map[p - 1] = first_map(out);
        char *text = tu_slurp(tu_path(json), NULL);
        cr_assert_not_null(text);
        cJSON *root = cJSON_Parse(text);
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
        const cJSON *wp = cJSON_GetObjectItemCaseSensitive(ctx, "weight_power");
        cr_expect(cJSON_IsNumber(wp) && wp->valuedouble == p, "the report records power %d: %s", p,
                  text);
        cJSON_Delete(root);
        free(text);
    }
    cr_expect(map[0] >= 0 && map[1] >= 0);
    cr_expect_neq(map[0], map[1], "powers 1 and 2 rank alike: mAP %.4f", map[0]);
}

/* ---- --bit-order --------------------------------------------------------------------------- */

TestSuite(bit_order, .init = setup, .fini = tu_tmpdir_remove, .timeout = 240);

/* Bit j of row i of PREFIX.codes.npy (uint8 (N, ceil(B/8)), bit j in byte j/8 at bit j%8). */
static int code_bit(const npy_array *a, size_t i, size_t j)
{
    return ((const uint8_t *)a->data)[i * a->shape[1] + j / 8] >> (j % 8) & 1;
}

static void load_npy(const char *prefix, const char *member, npy_array *a)
{
    char path[1200];
    drsch_error err;
    snprintf(path, sizeof path, "%s.%s", tu_path(prefix), member);
    cr_assert_eq(npy_load(path, a, &err), DRSCH_OK, "%s", err.msg);
}

/* write_model's bits are saved in network order and weigh |w_k| = (k + 1) / 8, so by |w| the
 * order is 15, 14, ..., 0: encode --bit-order weight writes bit j of every code as network bit
 * 15 - j (bit 15 - j of the saved order's codes) and weight j as (16 - j) / 8; --bits 4 keeps
 * the first 4 of that order; --bit-order saved writes what encode writes without the flag. */
Test(bit_order, encode_orders_codes_and_weights_by_weight)
{
    char data[1024], out[1 << 14];
    small_dataset_and_model(data, sizeof data);
    const char *runs[][2] = {{"plain", ""},
                             {"saved", "--bit-order saved"},
                             {"weight", "--bit-order weight"},
                             {"weight4", "--bit-order weight --bits 4"}};
    npy_array codes[4], w[4];
    for (int r = 0; r < 4; r++) {
        int rc = tu_run(out, sizeof out,
                        "%s encode --model %s --dataset mnist:%s --protocol full --split query %s "
                        "--threads 2 --out %s",
                        tu_exe(), tu_path("m.bin"), data, runs[r][1], tu_path(runs[r][0]));
        cr_assert_eq(rc, 0, "%s: %s", runs[r][0], out);
        load_npy(runs[r][0], "codes.npy", &codes[r]);
        load_npy(runs[r][0], "weights.npy", &w[r]);
    }
    cr_expect(strstr(out, "weight bit order"), "encode says which order it wrote: %s", out);
    const npy_array *plain = &codes[0], *saved = &codes[1], *weight = &codes[2], *w4 = &codes[3];
    cr_assert_eq(plain->count, saved->count);
    cr_expect_eq(memcmp(plain->data, saved->data, plain->count), 0, "saved is today's order");
    cr_assert(weight->shape[0] == plain->shape[0] && weight->shape[1] == 2 && w4->shape[1] == 1);
    int moved = 0;
    for (size_t i = 0; i < plain->shape[0]; i++)
        for (size_t j = 0; j < 16; j++) {
            cr_assert_eq(code_bit(weight, i, j), code_bit(plain, i, 15 - j), "row %zu bit %zu", i,
                         j);
            if (j < 4)
                cr_assert_eq(code_bit(w4, i, j), code_bit(plain, i, 15 - j), "--bits 4: row %zu",
                             i);
            moved += code_bit(plain, i, j) != code_bit(plain, i, 15 - j);
        }
    cr_expect_gt(moved, 0, "the codes tell the two orders apart");
    cr_assert(w[2].count == 16 && w[3].count == 4 && w[1].count == 16);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(((float *)w[1].data)[j], (float)(j + 1) / 8, "saved, weight %d", j);
        cr_expect_eq(((float *)w[2].data)[j], (float)(16 - j) / 8, "weight order, weight %d", j);
        if (j < 4)
            cr_expect_eq(((float *)w[3].data)[j], (float)(16 - j) / 8, "--bits 4, weight %d", j);
    }
    for (int r = 0; r < 4; r++) {
        npy_free(&codes[r]);
        npy_free(&w[r]);
    }
}

/* eval --model --bit-order weight truncates and ranks in that order: its table is the table of
 * eval on the codes encode --bit-order weight writes; saved is eval's table without the flag; the
 * report records the order. A bad order and --bit-order with .npy codes are usage errors. */
Test(bit_order, eval_truncates_in_the_order_asked)
{
    char data[1024], out[1 << 14];
    small_dataset_and_model(data, sizeof data);
    for (int s = 0; s < 2; s++) {
        int rc =
            tu_run(out, sizeof out,
                   "%s encode --model %s --dataset mnist:%s --protocol full --split %s "
                   "--bit-order weight --threads 2 --out %s",
                   tu_exe(), tu_path("m.bin"), data, s ? "db" : "query", tu_path(s ? "db" : "q"));
        cr_assert_eq(rc, 0, "%s", out);
    }
    static char npy[1 << 14], model[1 << 14], saved[1 << 14], plain[1 << 14];
    char q[1200], db[1200], ql[1200], dl[1200];
    snprintf(q, sizeof q, "%s.codes.npy", tu_path("q"));
    snprintf(db, sizeof db, "%s.codes.npy", tu_path("db"));
    snprintf(ql, sizeof ql, "%s.labels.npy", tu_path("q"));
    snprintf(dl, sizeof dl, "%s.labels.npy", tu_path("db"));
    int rc = tu_run(npy, sizeof npy,
                    "%s eval --codes %s --db %s --qlabels %s --dblabels %s --bits 4,8,16 "
                    "--weights %s.weights.npy 2>/dev/null",
                    tu_exe(), q, db, ql, dl, tu_path("q"));
    cr_assert_eq(rc, 0, "%s", npy);
    const char *fmt = "%s eval --model %s --dataset mnist:%s --protocol full --bits 4,8,16 "
                      "--weighted %s --threads 2 --json %s 2>/dev/null";
    rc = tu_run(model, sizeof model, fmt, tu_exe(), tu_path("m.bin"), data, "--bit-order weight",
                tu_path("w.json"));
    cr_assert_eq(rc, 0, "%s", model);
    cr_expect_str_eq(model, npy, "eval --model --bit-order weight ranks as its codes");
    rc = tu_run(saved, sizeof saved, fmt, tu_exe(), tu_path("m.bin"), data, "--bit-order saved",
                tu_path("s.json"));
    cr_assert_eq(rc, 0, "%s", saved);
    rc = tu_run(plain, sizeof plain, fmt, tu_exe(), tu_path("m.bin"), data, "", tu_path("p.json"));
    cr_assert_eq(rc, 0, "%s", plain);
    cr_expect_str_eq(saved, plain, "saved is today's order");
    cr_expect_str_neq(model, saved, "the orders rank alike: the test tells nothing");
    for (int k = 0; k < 2; k++) {
        char *text = tu_slurp(tu_path(k ? "s.json" : "w.json"), NULL);
        cr_assert_not_null(text);
        cJSON *root = cJSON_Parse(text);
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "context"), "bit_order");
        cr_expect(cJSON_IsString(o) && !strcmp(o->valuestring, k ? "saved" : "weight"), "%s", text);
        cJSON_Delete(root);
        free(text);
    }
    rc = tu_run(out, sizeof out, "%s eval --model %s --bit-order top", tu_exe(), tu_path("m.bin"));
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "--bit-order"), "%s", out);
    rc = tu_run(out, sizeof out,
                "%s eval --codes %s --db %s --qlabels %s --dblabels %s "
                "--bit-order weight",
                tu_exe(), q, db, ql, dl);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "--bit-order") && strstr(out, "drsch encode --bit-order"), "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --model %s --bit-order 1 --out %s", tu_exe(),
                tu_path("m.bin"), tu_path("x"));
    cr_expect_eq(rc, 2, "%s", out);
}
