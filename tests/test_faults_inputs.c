/* Faults on the input side (issue 13, "nothing lost, nothing hangs"): every reader refuses a FIFO
 * or a device before its first read (a FIFO blocked the reader forever: fopen, gzopen and
 * H5Fopen wait for a writer), a training state is checked against the run that resumes it (an
 * iteration beyond --iters, settings that differ, named), its writer gives the real cause of a
 * failure, and a truncated JSON report reads as a parse error with its position. Each reader runs
 * in the test process under alarm(): a reader that blocks fails the test instead of hanging it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "datasets.h"
#include "inputs.h"
#include "matv5.h"
#include "report_read.h"
#include "test_util.h"
#include "train.h"

static void setup(void) { tu_tmpdir_make("faults-inputs"); }

TestSuite(faults_inputs, .init = setup, .fini = tu_tmpdir_remove, .timeout = 120);

/* A FIFO tu_tmpdir/name (no writer ever opens it); its path in a static buffer. */
static const char *a_fifo(const char *name)
{
    static char p[8][512];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, 512, "%s", tu_path(name));
    cr_assert(mkfifo(s, 0600) == 0 || errno == EEXIST, "mkfifo %s: %s", s, strerror(errno));
    return s;
}

static void expect_fifo_msg(const char *msg, const char *path)
{
    char want[1024];
    snprintf(want, sizeof want, "%s: is a FIFO (named pipe), not a ", path);
    cr_expect(strstr(msg, want), "no '%s' in: %s", want, msg);
}

Test(faults_inputs, dataset_readers_refuse_a_fifo_at_once)
{
    ds_dataset *d = NULL;
    drsch_error err;
    alarm(20);
    /* IDX (.gz read by zlib) */
    const char *img = a_fifo("train-images-idx3-ubyte.gz");
    cr_expect_eq(ds_load_idx_pair(img, tu_path("labels.gz"), &d, &err), DRSCH_ERR_IO);
    expect_fifo_msg(err.msg, img);
    /* CIFAR-10: a batch file that is a FIFO */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_path("cifar"));
    cr_assert_eq(mkdir(dir, 0700), 0);
    char batch[600];
    snprintf(batch, sizeof batch, "%s/data_batch_1.bin", dir);
    cr_assert_eq(mkfifo(batch, 0600), 0);
    cr_expect_eq(ds_load_cifar10(dir, &d, &err), DRSCH_ERR_IO);
    expect_fifo_msg(err.msg, batch);
    /* NUS-WIDE list */
    const char *list = a_fifo("nus-list.txt");
    cr_expect_eq(ds_load_nuswide(list, tu_tmpdir, NULL, &d, &err), DRSCH_ERR_IO);
    expect_fifo_msg(err.msg, list);
    /* CUHK03 .mat (HDF5 opens by name) */
    const char *mat = a_fifo("cuhk-03.mat");
    cr_expect_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_IO);
    expect_fifo_msg(err.msg, mat);
    /* MAT v5 (the cuhk03-np configuration files) */
    mat_var v;
    cr_expect_neq(mat_read_var(mat, "train_idx", &v, &err), DRSCH_OK);
    expect_fifo_msg(err.msg, mat);
    /* an image of a list */
    uint8_t *px = NULL;
    int h, w;
    const char *jpg = a_fifo("image.jpg");
    cr_expect_neq(ds_image_decode_file(jpg, &px, &h, &w, &err), DRSCH_OK);
    expect_fifo_msg(err.msg, jpg);
    /* a device never ends */
    cr_expect_eq(ds_load_idx_pair("/dev/zero", tu_path("labels.gz"), &d, &err), DRSCH_ERR_IO);
    cr_expect(strstr(err.msg, "/dev/zero: is a character device"), "%s", err.msg);
    alarm(0);
    cr_expect_null(d);
}

/* drsch compare: a FIFO given as a report blocked; a truncated report read as "no benchmarks
 * array" instead of a JSON parse error with its position. */
Test(faults_inputs, json_reports)
{
    rp_read_report r;
    drsch_error err;
    alarm(20);
    const char *fifo = a_fifo("report.json");
    cr_expect_eq(rp_read_file(fifo, &r, &err), DRSCH_ERR_IO);
    expect_fifo_msg(err.msg, fifo);
    alarm(0);
    const char *cut = tu_path("cut.json");
    const char text[] = "{\n  \"benchmarks\": [\n    {\"name\": \"a\", \"real_time\": 1";
    tu_write_file(cut, text, sizeof text - 1);
    cr_expect_eq(rp_read_file(cut, &r, &err), DRSCH_ERR_FORMAT);
    char want[700];
    snprintf(want, sizeof want, "%s: JSON parse error at byte %zu (line 3, column", cut,
             sizeof text - 1);
    cr_expect(strstr(err.msg, want) && strstr(err.msg, "ends early"), "%s", err.msg);
    const char *bad = tu_path("bad.json");
    tu_write_file(bad, "{\"benchmarks\": [}", 17);
    cr_expect_eq(rp_read_file(bad, &r, &err), DRSCH_ERR_FORMAT);
    cr_expect(strstr(err.msg, "JSON parse error at byte 16 (line 1, column 17), at '}'"), "%s",
              err.msg);
    /* still: valid JSON without the array */
    const char *other = tu_path("other.json");
    tu_write_file(other, "{}", 2);
    cr_expect_eq(rp_read_file(other, &r, &err), DRSCH_ERR_FORMAT);
    cr_expect(strstr(err.msg, "no \"benchmarks\" array"), "%s", err.msg);
}

/* The input check of drsch search / encode / eval: a FIFO or /dev/zero passed (the reader then
 * blocked or grew its buffer without end). */
Test(faults_inputs, command_input_check)
{
    const char *fifo = a_fifo("db.npy");
    cr_expect_eq(in_check_input("search", "--db", fifo), -1);
    cr_expect_eq(in_check_input("encode", "--model", "/dev/zero"), -1);
    const char *ok = tu_path("ok.npy");
    tu_write_file(ok, "x", 1);
    cr_expect_eq(in_check_input("search", "--db", ok), 0);
}

/* ---- training states ----------------------------------------------------------------------- */

/* 40 images of 28 x 28 in two classes, all for training. */
static ds_dataset *tiny_dataset(ds_split *sp)
{
    ds_dataset *d = calloc(1, sizeof *d);
    cr_assert(d);
    d->kind = DS_KIND_IDX;
    snprintf(d->name, sizeof d->name, "tiny");
    d->n = 40;
    d->c = 1;
    d->h = d->w = 28;
    d->images = malloc(40 * 28 * 28);
    d->labels = malloc(40 * sizeof *d->labels);
    d->n_classes = 2;
    d->label_kind = DS_LABELS_SINGLE;
    uint32_t x = 12345;
    for (int i = 0; i < 40 * 28 * 28; i++) {
        x = x * 1664525u + 1013904223u;
        d->images[i] = (uint8_t)(x >> 24);
    }
    for (int i = 0; i < 40; i++)
        d->labels[i] = i % 2;
    memset(sp, 0, sizeof *sp);
    snprintf(sp->name, sizeof sp->name, "all-train");
    sp->n_train = 40;
    sp->train = malloc(40 * sizeof *sp->train);
    for (int i = 0; i < 40; i++)
        sp->train[i] = i;
    return d;
}

/* The training-state tests share one tiny dataset, made before each test and freed after it. */
static ds_dataset *tiny;
static ds_split tiny_sp;

static void state_setup(void)
{
    setup();
    tiny = tiny_dataset(&tiny_sp);
}

static void state_teardown(void)
{
    ds_split_free(&tiny_sp);
    ds_dataset_free(tiny);
    tu_tmpdir_remove();
}

TestSuite(faults_state, .init = state_setup, .fini = state_teardown, .timeout = 120);

static void tiny_config(tr_config *c, const ds_dataset *d, int64_t iters)
{
    tr_config_default(c, d);
    c->bits = 8;
    c->iters = iters;
    c->classes_per_batch = 2;
    c->images_per_class = 2;
    c->log_every = 1;
    c->checkpoint_every = 0;
    c->collapse_distinct = 0;
    c->bit_order = TR_BIT_ORDER_WEIGHT;
}

static drsch_status train(const tr_config *c, const ds_dataset *d, const ds_split *sp,
                          const char *out, const char *resume, drsch_error *err)
{
    return tr_train(c, d, sp, out, resume, NULL, NULL, NULL, err);
}

/* A model trained 2 iterations on the tiny dataset, at tu_path(name); its settings in *c and the
 * path of its training state in state. */
static void train_tiny(const char *name, tr_config *c, char *model, size_t mcap, char *state,
                       size_t scap)
{
    tiny_config(c, tiny, 2);
    snprintf(model, mcap, "%s", tu_path(name));
    snprintf(state, scap, "%s.state", model);
    drsch_error err;
    cr_assert_eq(train(c, tiny, &tiny_sp, model, NULL, &err), DRSCH_OK, "%s", err.msg);
}

/* Rewrites the u64 at byte off of a state file and its trailing crc32 (of every byte before it). */
static void patch_state_u64(const char *path, size_t off, uint64_t v)
{
    size_t len;
    unsigned char *p = (unsigned char *)tu_slurp(path, &len);
    cr_assert(p && len > off + 12);
    memcpy(p + off, &v, 8);
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(len - 4));
    memcpy(p + len - 4, &crc, 4);
    tu_write_file(path, p, len);
    free(p);
}

/* A state at iteration 1e12 (valid CRC) made the resume replay the sampler for days. */
Test(faults_state, state_beyond_iters_refused)
{
    ds_dataset *d = tiny;
    const ds_split sp = tiny_sp;
    tr_config c;
    drsch_error err;
    char model[512], state[600];
    train_tiny("beyond.bin", &c, model, sizeof model, state, sizeof state);
    patch_state_u64(state, 8, 1000000000000ull);
    alarm(60);
    cr_expect_eq(train(&c, d, &sp, model, model, &err), DRSCH_ERR_ARG, "%s", err.msg);
    alarm(0);
    cr_expect(strstr(err.msg, state) &&
                  strstr(err.msg, "iteration 1000000000000, beyond --iters 2"),
              "%s", err.msg);
}

/* "trained with other settings" named none of them. */
Test(faults_state, resume_names_the_settings_that_differ)
{
    ds_dataset *d = tiny;
    const ds_split sp = tiny_sp;
    tr_config c;
    tiny_config(&c, d, 2);
    drsch_error err;
    char model[512];
    snprintf(model, sizeof model, "%s", tu_path("settings.bin"));
    cr_assert_eq(train(&c, d, &sp, model, NULL, &err), DRSCH_OK, "%s", err.msg);
    tr_config o = c;
    o.sgd.base_lr = 0.001f;
    o.seed = 7;
    cr_expect_eq(train(&o, d, &sp, tu_path("other.bin"), model, &err), DRSCH_ERR_ARG, "%s",
                 err.msg);
    cr_expect(strstr(err.msg, "other settings"), "%s", err.msg);
    cr_expect(strstr(err.msg, "--lr 0.002 (this run: 0.001") &&
                  strstr(err.msg, "--seed 1 (this run: 7)"),
              "%s", err.msg);
    cr_expect_null(strstr(err.msg, "--iters"), "%s", err.msg);
}

/* No schedule depends on --iters, so a run resumed with a larger --iters is allowed, and it ends
 * byte for byte where one run of that length ends. */
Test(faults_state, resume_with_more_iters_extends_the_run)
{
    ds_dataset *d = tiny;
    const ds_split sp = tiny_sp;
    tr_config c2, c4;
    tiny_config(&c2, d, 2);
    tiny_config(&c4, d, 4);
    drsch_error err;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tu_path("extended.bin"));
    snprintf(b, sizeof b, "%s", tu_path("straight.bin"));
    cr_assert_eq(train(&c2, d, &sp, a, NULL, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(train(&c4, d, &sp, a, a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(train(&c4, d, &sp, b, NULL, &err), DRSCH_OK, "%s", err.msg);
    size_t la, lb;
    char *pa = tu_slurp(a, &la), *pb = tu_slurp(b, &lb);
    cr_expect(la == lb && memcmp(pa, pb, la) == 0,
              "the extended run differs from one run of 4 iterations");
    free(pa);
    free(pb);
}

/* The state next to the model: a FIFO blocked the resume, a directory read as "truncated". */
Test(faults_state, state_fifo_or_directory_refused)
{
    ds_dataset *d = tiny;
    const ds_split sp = tiny_sp;
    tr_config c;
    drsch_error err;
    char model[512], state[600];
    train_tiny("fifo-state.bin", &c, model, sizeof model, state, sizeof state);
    cr_assert_eq(remove(state), 0);
    cr_assert_eq(mkfifo(state, 0600), 0);
    alarm(30);
    cr_expect_eq(train(&c, d, &sp, tu_path("x.bin"), model, &err), DRSCH_ERR_IO, "%s", err.msg);
    alarm(0);
    expect_fifo_msg(err.msg, state);
    cr_assert_eq(remove(state), 0);
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_expect_eq(train(&c, d, &sp, tu_path("x.bin"), model, &err), DRSCH_ERR_IO, "%s", err.msg);
    char want[700];
    snprintf(want, sizeof want, "%s: Is a directory, not a drsch training state", state);
    cr_expect(strstr(err.msg, want), "%s", err.msg);
}

/* The state writer gives the cause: its .state a link to /dev/full (a device, written in place)
 * fails with ENOSPC; it used to replace the link with a regular file. */
Test(faults_state, state_write_failure_gives_the_cause)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    ds_dataset *d = tiny;
    const ds_split sp = tiny_sp;
    tr_config c;
    tiny_config(&c, d, 2);
    drsch_error err;
    char model[512], state[600];
    snprintf(model, sizeof model, "%s", tu_path("full.bin"));
    snprintf(state, sizeof state, "%s.state", model);
    cr_assert_eq(symlink("/dev/full", state), 0);
    cr_expect_eq(train(&c, d, &sp, model, NULL, &err), DRSCH_ERR_IO, "%s", err.msg);
    cr_expect(strstr(err.msg, state) && strstr(err.msg, "No space left on device"), "%s", err.msg);
    struct stat st;
    cr_expect(lstat(state, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
}
