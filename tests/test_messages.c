/* Library messages as a user sees them.
 *
 * File errors of the readers and writers: a message names the user's path (never the temporary
 * file a writer renames over it) and the real cause, e.g. "Is a directory" for a directory
 * (fopen of a directory succeeds on Linux, the read then failed with "read error" or a bogus
 * size) and "No such file or directory" for a missing file or folder. Readers: .npy, JSON
 * reports, IDX, CIFAR-10, MAT v5, CUHK03; writers: .npy, JSON reports. (Model files:
 * tests/test_core.c, core_model/file_errors_name_the_path_and_cause.)
 *
 * No internal function names: messages that reach users (through `drsch search --isa`,
 * DRSCH_FORCE_ISA, or a caller's misuse of core/) read as sentences, not "hm_isa_set: ...". */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets.h"
#include "hamming.h"
#include "matv5.h"
#include "nn.h"
#include "npy.h"
#include "report.h"
#include "report_read.h"
#include "test_util.h"

static void make_tmpdir(void) { tu_tmpdir_make("file-errors"); }

TestSuite(file_errors, .init = make_tmpdir, .fini = tu_tmpdir_remove);

/* A directory tu_tmpdir/name, made once; its path in a static buffer. */
static const char *a_dir(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s", tu_path(name));
    cr_assert(mkdir(p, 0700) == 0 || errno == EEXIST, "mkdir %s", p);
    return p;
}

static void expect_msg(const char *msg, const char *path, const char *cause)
{
    char want[1024];
    snprintf(want, sizeof want, "%s: ", path);
    cr_expect(strncmp(msg, want, strlen(want)) == 0, "does not start with the path %s: %s", path,
              msg);
    cr_expect(strstr(msg, cause), "no '%s' in: %s", cause, msg);
    cr_expect_null(strstr(msg, ".tmp"), "names the temporary file: %s", msg);
}

Test(file_errors, npy)
{
    drsch_error err;
    npy_array a;
    const char *dir = a_dir("dir.npy");
    cr_expect_neq(npy_load(dir, &a, &err), DRSCH_OK);
    expect_msg(err.msg, dir, "Is a directory");
    cr_expect_neq(npy_load(tu_path("missing.npy"), &a, &err), DRSCH_OK);
    expect_msg(err.msg, tu_path("missing.npy"), "No such file or directory");

    const size_t shape[1] = {4};
    const uint8_t data[4] = {1, 2, 3, 4};
    cr_expect_neq(npy_save(dir, NPY_U8, 1, shape, data, &err), DRSCH_OK);
    expect_msg(err.msg, dir, "Is a directory");
    const char *in_missing = tu_path("no-such-folder/x.npy");
    cr_expect_neq(npy_save(in_missing, NPY_U8, 1, shape, data, &err), DRSCH_OK);
    expect_msg(err.msg, in_missing, "No such file or directory");
    cr_expect_eq(npy_save(tu_path("ok.npy"), NPY_U8, 1, shape, data, &err), DRSCH_OK, "%s",
                 err.msg);
}

Test(file_errors, reports)
{
    drsch_error err;
    rp_read_report rr;
    const char *dir = a_dir("dir.json");
    cr_expect_eq(rp_read_file(dir, &rr, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, dir, "Is a directory");
    cr_expect_eq(rp_read_file(tu_path("missing.json"), &rr, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, tu_path("missing.json"), "No such file or directory");

    rp_report *r = rp_create();
    cr_assert_not_null(r);
    cr_expect_eq(rp_write(r, dir, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, dir, "Is a directory");
    const char *in_missing = tu_path("no-such-folder/r.json");
    cr_expect_eq(rp_write(r, in_missing, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, in_missing, "No such file or directory");
    rp_free(r);
}

Test(file_errors, datasets)
{
    drsch_error err;
    ds_dataset *d = NULL;
    const char *dir = a_dir("images-idx3-ubyte");
    char dir_copy[512];
    snprintf(dir_copy, sizeof dir_copy, "%s", dir);
    cr_expect_eq(ds_load_idx_pair(dir_copy, tu_path("labels"), &d, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, dir_copy, "Is a directory");

    /* CIFAR-10: data_batch_1.bin is a directory (its "size" was 2^63 - 1) */
    const char *cifar = a_dir("cifar");
    char batch1[600];
    snprintf(batch1, sizeof batch1, "%s/data_batch_1.bin", cifar);
    cr_assert_eq(mkdir(batch1, 0700), 0);
    cr_expect_eq(ds_load_cifar10(cifar, &d, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, batch1, "Is a directory");

    mat_var v;
    cr_expect_neq(mat_read_var(dir_copy, "x", &v, &err), DRSCH_OK);
    expect_msg(err.msg, dir_copy, "Is a directory");
    cr_expect_neq(mat_read_var(tu_path("missing.mat"), "x", &v, &err), DRSCH_OK);
    expect_msg(err.msg, tu_path("missing.mat"), "No such file or directory");
    cr_expect_eq(ds_load_cuhk03(dir_copy, 0, NULL, &d, &err), DRSCH_ERR_IO);
    expect_msg(err.msg, dir_copy, "Is a directory");
    cr_expect_null(d);
}

TestSuite(messages);

/* The ISA refusals, without "hm_isa_set" or "DRSCH_FORCE_ISA:" glued to a function's name. */
Test(messages, isa_refusals_read_as_sentences)
{
    drsch_error err;
    hm_isa best = hm_isa_best();
    char want[256];
#if defined(__x86_64__) || defined(__i386__)
    const hm_isa foreign = HM_ISA_NEON;
#else
    const hm_isa foreign = HM_ISA_AVX512;
#endif
    cr_expect_eq(hm_isa_set(foreign, &err), DRSCH_ERR_ISA);
    if (!hm_isa_compiled(foreign))
        snprintf(want, sizeof want, "%s: this build of drsch has no %s kernels (best here: %s)",
                 hm_isa_name(foreign), hm_isa_name(foreign), hm_isa_name(best));
    else
        snprintf(want, sizeof want, "%s: this CPU does not support", hm_isa_name(foreign));
    cr_expect(strstr(err.msg, want) == err.msg, "got '%s', want '%s'", err.msg, want);
    if (hm_isa_compiled(HM_ISA_AVX512) && !hm_isa_supported(HM_ISA_AVX512)) {
        /* what `drsch search --isa avx512` shows on an AVX2-only machine */
        cr_expect_eq(hm_isa_set(HM_ISA_AVX512, &err), DRSCH_ERR_ISA);
        snprintf(want, sizeof want,
                 "avx512: this CPU does not support AVX-512 F+BW+VBMI+VPOPCNTDQ (best here: %s)",
                 hm_isa_name(best));
        cr_expect_str_eq(err.msg, want);
    }
    cr_expect_eq(hm_isa_set((hm_isa)77, &err), DRSCH_ERR_ISA);
    cr_expect_str_eq(err.msg, "ISA number 77 is none of scalar, avx2, avx512, neon");

    setenv("DRSCH_FORCE_ISA", hm_isa_name(foreign), 1);
    cr_expect_eq(hm_isa_init(&err), DRSCH_ERR_ISA);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "DRSCH_FORCE_ISA=%s: this ", hm_isa_name(foreign));
    cr_expect(strstr(err.msg, prefix) == err.msg, "%s", err.msg);
    unsetenv("DRSCH_FORCE_ISA");
}

/* core/ refusals of a caller's misuse name what was refused, not the function. */
Test(messages, core_misuse_without_function_names)
{
    nn_config cfg;
    drsch_error err;
    cr_assert_eq(nn_config_init(&cfg, "drsch-mnist", 8, 2, 0, &err), DRSCH_OK);
    nn_net *net = NULL;
    cr_assert_eq(nn_net_create(&net, &cfg, &err), DRSCH_OK, "%s", err.msg);
    cr_expect_eq(nn_forward(net, NULL, &err), DRSCH_ERR_ARG);
    cr_expect_str_eq(err.msg, "forward pass: no input images given");
    float dy[16] = {0};
    cr_expect_eq(nn_backward(net, dy, NULL, &err), DRSCH_ERR_ARG);
    cr_expect_str_eq(err.msg, "backward pass: the network was created for inference, not training");
    nn_sgd_config sgd;
    nn_sgd_defaults(&sgd);
    cr_expect_eq(nn_sgd_step(net, &sgd, 0, &err), DRSCH_ERR_ARG);
    cr_expect_str_eq(err.msg, "SGD step: the network was created for inference, not training");
    nn_net_free(net);
}
