/* Tests for datasets/: every reader against fixtures that the tests write themselves in the
 * exact on-disk formats (IDX raw and gzip, CIFAR-10 binary, NUS-WIDE lists with PNG/JPEG
 * images, a MATLAB v7.3-layout CUHK03 file built with the HDF5 C API), the real Fashion-MNIST
 * files, protocols, augmentation, the class-balanced sampler, and bad input (each must give a
 * clear error naming the file and record, never a crash). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "datasets.h"
#include "datasets_internal.h"
#include "rng.h"
#include "test_util.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- fixtures ---------------- */

/* The suites that write files get a temp directory of their own for each test (test_util.h:
 * tu_tmpdir, tu_path), removed after it, pass or fail. */
static void make_tmpdir(void) { tu_tmpdir_make("datasets"); }

TestSuite(idx, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(idx_bad, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(cifar10, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(cifar10_bad, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(spec, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(image, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(nuswide, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(nuswide_bad, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(cuhk03, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(cuhk03_bad, .init = make_tmpdir, .fini = tu_tmpdir_remove);
TestSuite(cli, .init = make_tmpdir, .fini = tu_tmpdir_remove);

static void write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        if (n)
            cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        tu_write_file(path, data, n);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pixel value of image i at (y, x): a pattern that differs per image. */
static uint8_t pix(int64_t i, int y, int x) { return (uint8_t)(i * 7 + y * 13 + x * 3); }

/* Writes an IDX image file (n x h x w) and label file; labels[i] = label_of(i). If truncate_to
 * > 0 the image file is cut to that many bytes. */
static void write_idx(const char *img_path, const char *lab_path, int n, int h, int w,
                      const uint8_t *labels, int gz, uint32_t img_magic, long truncate_to)
{
    size_t isz = 16 + (size_t)n * h * w;
    uint8_t *ib = malloc(isz);
    put_be32(ib, img_magic);
    put_be32(ib + 4, (uint32_t)n);
    put_be32(ib + 8, (uint32_t)h);
    put_be32(ib + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                ib[16 + ((size_t)i * h + y) * w + x] = pix(i, y, x);
    write_bytes(img_path, ib, truncate_to > 0 ? (size_t)truncate_to : isz, gz);
    free(ib);
    uint8_t *lb = malloc(8 + (size_t)n);
    put_be32(lb, 0x00000801u);
    put_be32(lb + 4, (uint32_t)n);
    memcpy(lb + 8, labels, (size_t)n);
    write_bytes(lab_path, lb, 8 + (size_t)n, gz);
    free(lb);
}

/* An MNIST-style directory (tu_tmpdir, or its folder sub: "name/"): n_train + n_test images of
 * h x w, label i % 10. */
static void write_idx_dir(const char *sub, int n_train, int n_test, int h, int w, int gz)
{
    uint8_t lab[4096];
    for (int i = 0; i < 4096; i++)
        lab[i] = (uint8_t)(i % 10);
    const char *ext = gz ? ".gz" : "";
    char a[128], b[128];
    snprintf(a, sizeof a, "%strain-images-idx3-ubyte%s", sub, ext);
    snprintf(b, sizeof b, "%strain-labels-idx1-ubyte%s", sub, ext);
    write_idx(tu_path(a), tu_path(b), n_train, h, w, lab, gz, 0x803, 0);
    snprintf(a, sizeof a, "%st10k-images-idx3-ubyte%s", sub, ext);
    snprintf(b, sizeof b, "%st10k-labels-idx1-ubyte%s", sub, ext);
    write_idx(tu_path(a), tu_path(b), n_test, h, w, lab, gz, 0x803, 0);
}

/* A dataset built in memory: n images c x h x w of pattern pix, labels i % k. */
static ds_dataset *mem_dataset(int64_t n, int c, int h, int w, int k)
{
    ds_dataset *d = calloc(1, sizeof *d);
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->n_classes = k;
    d->label_kind = DS_LABELS_SINGLE;
    d->images = malloc((size_t)n * c * h * w);
    d->labels = malloc((size_t)n * sizeof *d->labels);
    snprintf(d->name, sizeof d->name, "mem");
    for (int64_t i = 0; i < n; i++) {
        d->labels[i] = (int32_t)(i % k);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    d->images[(((size_t)i * c + ch) * h + y) * w + x] = pix(i * c + ch, y, x);
    }
    return d;
}

/* ---------------------------------------------------------------- PRNG --------------------- */
/* simd/rng.h, which datasets/ draws every split, sampler and augmentation from. */

Test(rng, reproducible_and_unbiased_enough)
{
    rng_state a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(rng_next(&a), rng_next(&b));
    rng_seed(&b, 43);
    cr_assert_neq(rng_next(&a), rng_next(&b));
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rng_below(&a, 7);
        cr_assert_lt(v, 7u);
        hist[v]++;
    }
    for (int k = 0; k < 7; k++)
        cr_assert(hist[k] > 9500 && hist[k] < 10500, "bucket %d has %d of 70000", k, hist[k]);
    int64_t p[100];
    for (int i = 0; i < 100; i++)
        p[i] = i;
    rng_shuffle_i64(&a, p, 100);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[p[i]]++;
        moved += p[i] != i;
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_gt(moved, 50);
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* The streams are pinned: they were produced by the generators as they were before they became
 * one module (ds_rng of datasets/, nn_rng of core/, the baselines' own Box-Muller), and any
 * change to them changes trained models, splits and baselines (results/). The normal deviates
 * go through libm's log and cos (glibc's here). */
Test(rng, streams_pinned_bit_for_bit)
{
    rng_state r;
    rng_seed(&r, 42);
    static const uint64_t next[4] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                     0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rng_next(&r), next[i], "draw %d", i);
    static const uint64_t below[4] = {991, 769, 719, 850};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rng_below(&r, 1000), below[i], "draw %d below 1000", i);
    int64_t p[10];
    static const int64_t shuffled[10] = {0, 9, 3, 6, 1, 4, 2, 8, 5, 7};
    for (int i = 0; i < 10; i++)
        p[i] = i;
    rng_shuffle_i64(&r, p, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(p[i], shuffled[i], "shuffled[%d]", i);

    uint64_t st = 7;
    static const uint64_t sm[3] = {0x63cbe1e459320dd7ULL, 0x044c3cd7f43c661cULL,
                                   0xe6984080bab12a02ULL};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rng_splitmix64(&st), sm[i], "splitmix64 draw %d", i);

    rng_seed(&r, 1); /* core/'s default initialisation seed */
    cr_assert_eq(double_bits(rng_uniform(&r)), 0x3fe67e55eda1f8e2ULL);
    static const uint64_t normal[4] = {0xbff056e337f15d83ULL, 0xbfdc90a029ab9b66ULL,
                                       0x3ffc6f50eef56b9cULL, 0x3fedd6dba1b7c655ULL};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(double_bits(rng_normal(&r)), normal[i], "normal %d", i);

    st = 5;
    static const uint64_t sm_normal[4] = {0x3f9475672662cbceULL, 0x3ff62b9459d21a72ULL,
                                          0xbff566ea97fa98a1ULL, 0xbfc5c69e2060921cULL};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(double_bits(rng_splitmix64_normal(&st)), sm_normal[i], "splitmix64 normal %d",
                     i);

    /* the int32 shuffle draws as the int64 one does */
    int32_t q[10];
    for (int i = 0; i < 10; i++)
        q[i] = i;
    rng_seed(&r, 42);
    for (int i = 0; i < 8; i++)
        rng_next(&r);
    rng_shuffle_i32(&r, q, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(q[i], (int32_t)shuffled[i], "int32 shuffled[%d]", i);
}

/* ---------------------------------------------------------------- IDX ---------------------- */

static void check_idx_dir(int gz)
{
    const char *dir = tu_tmpdir;
    write_idx_dir("", 23, 9, 5, 4, gz);
    ds_dataset *d = NULL;
    drsch_error err;
    drsch_status s = ds_load_idx_dir(dir, "mnist", &d, &err);
    cr_assert_eq(s, DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 32);
    cr_assert_eq(d->c, 1);
    cr_assert_eq(d->h, 5);
    cr_assert_eq(d->w, 4);
    cr_assert_eq(d->n_classes, 10);
    for (int64_t i = 0; i < d->n; i++) {
        int64_t local = i < 23 ? i : i - 23;
        cr_assert_eq(d->labels[i], local % 10, "record %lld", (long long)i);
        cr_assert_eq(d->subset[i], i >= 23);
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 4; x++)
                cr_assert_eq(d->images[(i * 5 + y) * 4 + x], pix(local, y, x), "image %lld (%d,%d)",
                             (long long)i, y, x);
    }
    ds_dataset_free(d);
}

Test(idx, raw_files_record_by_record) { check_idx_dir(0); }
Test(idx, gzip_files_record_by_record) { check_idx_dir(1); }

Test(idx, dot_spelling_of_file_names)
{
    const char *dir = tu_tmpdir;
    uint8_t lab[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    write_idx(tu_path("train-images.idx3-ubyte"), tu_path("train-labels.idx1-ubyte"), 8, 2, 2, lab,
              0, 0x803, 0);
    write_idx(tu_path("t10k-images.idx3-ubyte"), tu_path("t10k-labels.idx1-ubyte"), 3, 2, 2, lab, 0,
              0x803, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_idx_dir(dir, "mnist", &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 11);
    cr_assert_eq(d->labels[10], 3);
    ds_dataset_free(d);
}

Test(idx_bad, truncated_images_name_file_and_record)
{
    uint8_t lab[10] = {0};
    const char *img = tu_path("img"), *l = tu_path("lab");
    /* header + 6 full images of 4x4 + half of the 7th */
    write_idx(img, l, 10, 4, 4, lab, 0, 0x803, 16 + 6 * 16 + 8);
    ds_dataset *d = NULL;
    drsch_error err;
    drsch_status s = ds_load_idx_pair(img, l, &d, &err);
    cr_assert_eq(s, DRSCH_ERR_IO);
    cr_assert_null(d);
    cr_assert_eq(err.record, 6);
    cr_assert_str_eq(err.file, img);
    cr_assert_not_null(strstr(err.msg, img), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "record 6"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "truncated"), "%s", err.msg);
}

Test(idx_bad, truncated_gzip_stream)
{
    uint8_t lab[200] = {0};
    const char *img = tu_path("img.gz"), *l = tu_path("lab.gz");
    write_idx(img, l, 200, 28, 28, lab, 1, 0x803, 0);
    /* cut the compressed file in half */
    FILE *f = fopen(img, "rb");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(img, sz / 2), 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_idx_pair(img, l, &d, &err), DRSCH_ERR_IO);
    cr_assert_not_null(strstr(err.msg, img), "%s", err.msg);
    cr_assert_geq(err.record, 0);
    cr_assert_lt(err.record, 200);
}

Test(idx_bad, wrong_magic)
{
    uint8_t lab[8] = {0};
    const char *img = tu_path("img"), *l = tu_path("lab");
    write_idx(img, l, 8, 3, 3, lab, 0, 0x00000802u, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_idx_pair(img, l, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "magic"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, img), "%s", err.msg);
    /* labels passed as images: magic 0x801 is not 0x803 (the 16-byte file holds a full header) */
    cr_assert_eq(ds_load_idx_pair(l, l, &d, &err), DRSCH_ERR_FORMAT, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "0x00000801"), "%s", err.msg);
}

Test(idx_bad, label_out_of_range_names_record)
{
    uint8_t lab[6] = {0, 1, 2, 3, 10, 5};
    const char *img = tu_path("img"), *l = tu_path("lab");
    write_idx(img, l, 6, 2, 2, lab, 0, 0x803, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_idx_pair(img, l, &d, &err), DRSCH_ERR_RANGE);
    cr_assert_eq(err.record, 4);
    cr_assert_not_null(strstr(err.msg, "record 4"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, l), "%s", err.msg);
}

Test(idx_bad, count_mismatch_and_missing_files)
{
    const char *dir = tu_tmpdir;
    uint8_t lab[6] = {0};
    const char *img = tu_path("img"), *l = tu_path("lab");
    write_idx(img, l, 6, 2, 2, lab, 0, 0x803, 0);
    const char *l2 = tu_path("lab2"), *img2 = tu_path("img2");
    write_idx(img2, l2, 5, 2, 2, lab, 0, 0x803, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_idx_pair(img, l2, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "5 labels for 6 images"), "%s", err.msg);
    cr_assert_eq(ds_load_idx_pair(tu_path("nope"), l, &d, &err), DRSCH_ERR_IO);
    cr_assert_eq(ds_load_idx_dir(dir, "mnist", &d, &err), DRSCH_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "train-images-idx3-ubyte"), "%s", err.msg);
    /* empty file: header truncated */
    tu_write_file(img, "", 0);
    cr_assert_eq(ds_load_idx_pair(img, l, &d, &err), DRSCH_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "header"), "%s", err.msg);
}

/* ---------------------------------------------------------------- real Fashion-MNIST -------- */

Test(fashion_mnist, real_files_load_with_known_counts, .timeout = 60)
{
    unsetenv("DRSCH_DATA");
    if (!getenv("DRSCH_SOURCE_DIR") && access(DS_FASHION_MNIST_SYSTEM_DIR, R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist not installed");
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load("fashion-mnist", NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_str_eq(d->name, "fashion-mnist");
    cr_assert_str_eq(d->source, DS_FASHION_MNIST_SYSTEM_DIR);
    cr_assert_eq(d->n, 70000);
    cr_assert_eq(d->c, 1);
    cr_assert_eq(d->h, 28);
    cr_assert_eq(d->w, 28);
    int64_t train[10] = {0}, test[10] = {0}, n_test = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->subset[i]) {
            test[d->labels[i]]++;
            n_test++;
        } else {
            train[d->labels[i]]++;
        }
    }
    cr_assert_eq(n_test, 10000);
    for (int k = 0; k < 10; k++) {
        cr_assert_eq(train[k], 6000, "class %d", k);
        cr_assert_eq(test[k], 1000, "class %d", k);
    }
    cr_assert_str_eq(d->class_names[9], "Ankle boot");
    /* known first labels of the training file (9 = ankle boot, 0 = T-shirt/top) */
    cr_assert_eq(d->labels[0], 9);
    cr_assert_eq(d->labels[1], 0);
    cr_assert_eq(d->labels[60000], 9); /* first t10k label */
    /* measured on Debian's dataset-fashion-mnist 2020 files; reports record this value */
    cr_assert_eq(ds_checksum(d), 0x37284389u, "checksum %08x", ds_checksum(d));

    ds_split sp;
    cr_assert_eq(ds_split_paper(d, NULL, 1, &sp, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(sp.n_query, 1000);
    cr_assert_eq(sp.n_train, 5000);
    cr_assert_eq(sp.n_db, 64000);
    ds_split_free(&sp);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- CIFAR-10 ----------------- */

static void write_cifar_file(const char *path, int n, int first, const int *bad_label_at, long cut)
{
    size_t sz = (size_t)n * 3073;
    uint8_t *b = malloc(sz);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = b + (size_t)r * 3073;
        rec[0] = (uint8_t)((first + r) % 10);
        if (bad_label_at && *bad_label_at == r)
            rec[0] = 10;
        for (int k = 0; k < 3072; k++)
            rec[1 + k] = (uint8_t)((first + r) * 31 + k);
    }
    tu_write_file(path, b, cut > 0 ? (size_t)cut : sz);
    free(b);
}

/* CIFAR-10's six batch files in tu_tmpdir. */
static void write_cifar_dir(int per_file)
{
    const char *names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                            "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    for (int i = 0; i < 6; i++)
        write_cifar_file(tu_path(names[i]), per_file, i * per_file, NULL, 0);
}

Test(cifar10, records_and_class_names)
{
    const char *dir = tu_tmpdir;
    write_cifar_dir(7);
    FILE *f = fopen(tu_path("batches.meta.txt"), "w");
    fprintf(f, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    fclose(f);
    ds_dataset *d = NULL;
    drsch_error err;
    char spec[1100];
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    cr_assert_eq(ds_load(spec, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 42);
    cr_assert_eq(d->c, 3);
    cr_assert_eq(d->h, 32);
    cr_assert_eq(d->w, 32);
    for (int64_t i = 0; i < 42; i++) {
        cr_assert_eq(d->labels[i], i % 10);
        cr_assert_eq(d->subset[i], i >= 35);
        for (int k = 0; k < 3072; k += 97)
            cr_assert_eq(d->images[i * 3072 + k], (uint8_t)(i * 31 + k));
    }
    cr_assert_str_eq(d->class_names[1], "automobile");
    ds_dataset_free(d);
}

Test(cifar10_bad, wrong_record_size_and_label_out_of_range)
{
    const char *dir = tu_tmpdir;
    write_cifar_dir(3);
    const char *p = tu_path("data_batch_3.bin");
    write_cifar_file(p, 3, 0, NULL, 3 * 3073 - 5);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cifar10(dir, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "data_batch_3.bin"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "3073"), "%s", err.msg);
    int bad = 2;
    write_cifar_file(p, 3, 0, &bad, 0);
    cr_assert_eq(ds_load_cifar10(dir, &d, &err), DRSCH_ERR_RANGE);
    cr_assert_eq(err.record, 2);
    cr_assert_not_null(strstr(err.msg, "data_batch_3.bin: record 2: label 10"), "%s", err.msg);
    unlink(tu_path("test_batch.bin"));
    cr_assert_eq(ds_load_cifar10(dir, &d, &err), DRSCH_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "test_batch.bin"), "%s", err.msg);
    cr_assert_null(d);
}

/* ---------------------------------------------------------------- specs -------------------- */

Test(spec, parse_all_forms)
{
    ds_spec s;
    drsch_error err;
    setenv("DRSCH_DATA", "/data/root", 1);
    cr_assert_eq(ds_spec_parse("mnist:/x/y", &s, &err), DRSCH_OK);
    cr_assert_eq(s.kind, DS_KIND_IDX);
    cr_assert_str_eq(s.path, "/x/y");
    cr_assert_str_eq(s.name, "mnist");
    cr_assert_eq(ds_spec_parse("mnist", &s, &err), DRSCH_OK);
    cr_assert_str_eq(s.path, "/data/root/mnist");
    cr_assert_eq(ds_spec_parse("fashion-mnist", &s, &err), DRSCH_OK);
    cr_assert_str_eq(s.path, DS_FASHION_MNIST_SYSTEM_DIR,
                     "no /data/root/fashion-mnist: system fallback");
    cr_assert_eq(ds_spec_parse("cifar10:/c", &s, &err), DRSCH_OK);
    cr_assert_eq(s.kind, DS_KIND_CIFAR10);
    cr_assert_str_eq(s.path, "/c");
    cr_assert_eq(ds_spec_parse("nuswide:/l/list.txt:/img", &s, &err), DRSCH_OK);
    cr_assert_eq(s.kind, DS_KIND_NUSWIDE);
    cr_assert_str_eq(s.path, "/l/list.txt");
    cr_assert_str_eq(s.path2, "/img");
    cr_assert_eq(ds_spec_parse("nuswide", &s, &err), DRSCH_OK);
    cr_assert_str_eq(s.path, "/data/root/nuswide/list.txt");
    cr_assert_str_eq(s.path2, "/data/root/nuswide/images");
    cr_assert_eq(ds_spec_parse("cuhk03:/m/cuhk-03.mat", &s, &err), DRSCH_OK);
    cr_assert_eq(s.kind, DS_KIND_CUHK03);
    cr_assert_eq(s.detected, 0);
    cr_assert_str_eq(s.path, "/m/cuhk-03.mat");
    cr_assert_eq(ds_spec_parse("cuhk03:/m/cuhk-03.mat:detected", &s, &err), DRSCH_OK);
    cr_assert_eq(s.detected, 1);
    cr_assert_str_eq(s.path, "/m/cuhk-03.mat");
    cr_assert_str_eq(s.name, "cuhk03-detected");
    cr_assert_eq(ds_spec_parse("cuhk03:labeled", &s, &err), DRSCH_OK);
    cr_assert_str_eq(s.path, "/data/root/cuhk03/cuhk-03.mat");
    cr_assert_eq(ds_spec_parse("cuhk03:/m.mat:sideways", &s, &err), DRSCH_ERR_ARG);
    cr_assert_eq(ds_spec_parse("nuswide:/only-list", &s, &err), DRSCH_ERR_ARG);
    cr_assert_eq(ds_spec_parse("imagenet", &s, &err), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "imagenet"), "%s", err.msg);
    cr_assert_eq(ds_spec_parse("", &s, &err), DRSCH_ERR_ARG);
    unsetenv("DRSCH_DATA");
    cr_assert_eq(ds_spec_parse("mnist", &s, &err), DRSCH_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "DRSCH_DATA"), "%s", err.msg);
}

Test(spec, drsch_data_root_provides_fashion_mnist)
{
    const char *dir = tu_tmpdir;
    cr_assert_eq(mkdir(tu_path("fashion-mnist"), 0700), 0);
    write_idx_dir("fashion-mnist/", 12, 4, 3, 3, 1);
    setenv("DRSCH_DATA", dir, 1);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load("fashion-mnist", NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 16);
    cr_assert_str_eq(d->source, tu_path("fashion-mnist"));
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- checksum ---------------- */

Test(checksum, changes_with_any_image_or_label_byte)
{
    ds_dataset *d = mem_dataset(20, 1, 4, 4, 5);
    uint32_t a = ds_checksum(d);
    cr_assert_eq(ds_checksum(d), a);
    d->labels[7] = 1;
    uint32_t b = ds_checksum(d);
    cr_assert_neq(a, b);
    d->images[100] ^= 1;
    cr_assert_neq(ds_checksum(d), b);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- protocols --------------- */

static void assert_sorted_unique(const int64_t *v, int64_t n)
{
    for (int64_t i = 1; i < n; i++)
        cr_assert_lt(v[i - 1], v[i]);
}

Test(protocol, paper_split_per_class_counts_disjoint_reproducible)
{
    ds_dataset *d = mem_dataset(200, 1, 2, 2, 4); /* 50 per class */
    d->labels[0] = 1;                             /* class 0: 49, class 1: 51 */
    ds_paper_opts o = {.query_per_class = 5, .train_per_class = 10, .db_includes_train = 0};
    ds_split a, b, c;
    drsch_error err;
    cr_assert_eq(ds_split_paper(d, &o, 7, &a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(a.n_query, 20);
    cr_assert_eq(a.n_train, 40);
    cr_assert_eq(a.n_db, 140);
    assert_sorted_unique(a.query, a.n_query);
    assert_sorted_unique(a.train, a.n_train);
    assert_sorted_unique(a.db, a.n_db);
    int role[200] = {0};
    int qc[4] = {0}, tc[4] = {0};
    for (int64_t i = 0; i < a.n_query; i++) {
        role[a.query[i]] |= 1;
        qc[d->labels[a.query[i]]]++;
    }
    for (int64_t i = 0; i < a.n_train; i++) {
        role[a.train[i]] |= 2;
        tc[d->labels[a.train[i]]]++;
    }
    for (int64_t i = 0; i < a.n_db; i++)
        role[a.db[i]] |= 4;
    for (int i = 0; i < 200; i++)
        cr_assert(role[i] == 1 || role[i] == 2 || role[i] == 4, "image %d role %d", i, role[i]);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(qc[k], 5);
        cr_assert_eq(tc[k], 10);
    }
    cr_assert_not_null(strstr(a.name, "seed 7"), "%s", a.name);
    cr_assert_eq(ds_split_paper(d, &o, 7, &b, &err), DRSCH_OK);
    cr_assert_eq(memcmp(a.query, b.query, sizeof(int64_t) * 20), 0);
    cr_assert_eq(memcmp(a.train, b.train, sizeof(int64_t) * 40), 0);
    cr_assert_eq(ds_split_paper(d, &o, 8, &c, &err), DRSCH_OK);
    cr_assert_neq(memcmp(a.query, c.query, sizeof(int64_t) * 20), 0);
    ds_split_free(&b);
    ds_split_free(&c);
    o.db_includes_train = 1;
    cr_assert_eq(ds_split_paper(d, &o, 7, &b, &err), DRSCH_OK);
    cr_assert_eq(b.n_db, 180);
    cr_assert_eq(memcmp(a.train, b.train, sizeof(int64_t) * 40), 0,
                 "same seed, same training images");
    ds_split_free(&b);
    ds_split_free(&a);
    o.train_per_class = 45; /* class 0 has 49 < 5 + 45 */
    cr_assert_eq(ds_split_paper(d, &o, 7, &a, &err), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(err.msg, "class 0 has 49 images"), "%s", err.msg);
    ds_dataset_free(d);
}

Test(protocol, full_split_uses_official_subsets)
{
    ds_dataset *d = mem_dataset(30, 1, 2, 2, 3);
    ds_split s;
    drsch_error err;
    cr_assert_eq(ds_split_full(d, &s, &err), DRSCH_ERR_ARG);
    d->subset = calloc(30, sizeof *d->subset);
    for (int i = 20; i < 30; i++)
        d->subset[i] = 1;
    cr_assert_eq(ds_split_full(d, &s, &err), DRSCH_OK);
    cr_assert_eq(s.n_query, 10);
    cr_assert_eq(s.n_train, 20);
    cr_assert_eq(s.n_db, 20);
    cr_assert_eq(s.query[0], 20);
    cr_assert_eq(s.db[19], 19);
    ds_split_free(&s);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- augmentation ------------ */

Test(batch, identity_centre_crop_mirror_pad_exact)
{
    ds_dataset *d = mem_dataset(3, 2, 5, 6, 3);
    ds_augment a;
    ds_augment_default(&a);
    a.scale[0] = a.scale[1] = 1.0f;
    a.mean[1] = 10.0f;
    int64_t idx[2] = {2, 0};
    float out[2 * 2 * 5 * 6];
    drsch_error err;
    cr_assert_eq(ds_batch_build(d, idx, 2, &a, 1, out, &err), DRSCH_OK, "%s", err.msg);
    for (int j = 0; j < 2; j++)
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 6; x++)
                    cr_assert_float_eq(out[((j * 2 + c) * 5 + y) * 6 + x],
                                       (float)pix(idx[j] * 2 + c, y, x) - (c ? 10.0f : 0.0f), 0.0f);
    /* centre crop 3 x 4: offsets (1, 1) */
    a.out_h = 3;
    a.out_w = 4;
    float o2[2 * 3 * 4];
    cr_assert_eq(ds_batch_build(d, idx, 1, &a, 1, o2, &err), DRSCH_OK);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            cr_assert_float_eq(o2[y * 4 + x], (float)pix(4, y + 1, x + 1), 0.0f);
    /* pad 1, crop 7 x 8 centred = the whole padded image: border is (0 - mean) * scale */
    a.pad = 1;
    a.out_h = 7;
    a.out_w = 8;
    float o3[2 * 7 * 8];
    cr_assert_eq(ds_batch_build(d, idx, 1, &a, 1, o3, &err), DRSCH_OK);
    cr_assert_float_eq(o3[0], 0.0f, 0.0f);
    cr_assert_float_eq(o3[7 * 8 + 0], -10.0f, 0.0f);
    cr_assert_float_eq(o3[1 * 8 + 1], (float)pix(4, 0, 0), 0.0f);
    /* random crop + mirror: every output image is a (possibly mirrored) window of the source */
    a.pad = 0;
    a.out_h = 4;
    a.out_w = 4;
    a.random_crop = 1;
    a.mirror = 1;
    int flips = 0, offsets_seen[4] = {0};
    for (uint64_t seed = 0; seed < 64; seed++) {
        float o4[2 * 4 * 4];
        cr_assert_eq(ds_batch_build(d, idx, 1, &a, seed, o4, &err), DRSCH_OK);
        int found = 0;
        for (int y0 = 0; y0 <= 1 && !found; y0++)
            for (int x0 = 0; x0 <= 2 && !found; x0++)
                for (int fl = 0; fl < 2 && !found; fl++) {
                    int ok = 1;
                    for (int y = 0; y < 4 && ok; y++)
                        for (int x = 0; x < 4 && ok; x++)
                            ok = o4[y * 4 + x] == (float)pix(4, y0 + y, x0 + (fl ? 3 - x : x));
                    if (ok) {
                        found = 1;
                        flips += fl;
                        offsets_seen[y0 * 2 + (x0 > 0)]++;
                    }
                }
        cr_assert(found, "seed %llu: output is not a window of the source",
                  (unsigned long long)seed);
    }
    cr_assert(flips > 10 && flips < 54, "mirror rate %d / 64", flips);
    for (int k = 0; k < 4; k++)
        cr_assert_gt(offsets_seen[k], 0);
    /* errors */
    a.out_h = 9;
    cr_assert_eq(ds_batch_build(d, idx, 1, &a, 1, o3, &err), DRSCH_ERR_ARG);
    a.out_h = 4;
    int64_t bad[1] = {3};
    cr_assert_eq(ds_batch_build(d, bad, 1, &a, 1, o3, &err), DRSCH_ERR_RANGE);
    ds_dataset_free(d);
}

/* Mass and orientation (second moments, degrees, y down) of a 1-channel output image. */
static void moments(const float *o, int h, int w, double *mass, double *angle)
{
    double m = 0, cy = 0, cx = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            m += o[y * w + x];
            cy += y * (double)o[y * w + x];
            cx += x * (double)o[y * w + x];
        }
    cy /= m;
    cx /= m;
    double m20 = 0, m02 = 0, m11 = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = o[y * w + x], dy = y - cy, dx = x - cx;
            m20 += v * dx * dx;
            m02 += v * dy * dy;
            m11 += v * dx * dy;
        }
    *mass = m;
    *angle = 0.5 * atan2(2 * m11, m20 - m02) * 180.0 / 3.14159265358979323846;
}

/* The rotation / zoom augmentation's AVX-512 loop gives the scalar loop's bits: random pixels,
 * rows of 1, 15, 16, 17, 26 and 33 values (a partial vector, one, one and a bit, several), crops
 * that reach into the padding and past the image, mirrored and not, 1 and 3 channels, angles up
 * to 180 degrees and zooms up to 0.5, 40 seeds each. */
Test(batch, rotation_and_zoom_vector_loop_gives_the_scalar_bits)
{
    if (!__builtin_cpu_supports("avx512f"))
        cr_skip_test("no AVX-512 on this CPU: only the scalar loop runs");
    static const struct {
        int c, h, w, oh, ow, pad, mirror;
        float rotate, zoom;
    } cases[] = {{1, 28, 28, 26, 26, 0, 1, 10.0f, 0.1f},  {3, 13, 17, 15, 15, 3, 1, 30.0f, 0.3f},
                 {1, 20, 40, 16, 33, 2, 0, 180.0f, 0.5f}, {3, 9, 24, 5, 16, 0, 1, 45.0f, 0.0f},
                 {1, 8, 20, 7, 17, 1, 0, 0.0f, 0.25f},    {2, 6, 6, 6, 1, 2, 1, 90.0f, 0.2f}};
    drsch_error err;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ds_dataset *d = mem_dataset(5, cases[t].c, cases[t].h, cases[t].w, 2);
        rng_state r;
        rng_seed(&r, 100 + t);
        for (size_t i = 0; i < (size_t)5 * cases[t].c * cases[t].h * cases[t].w; i++)
            d->images[i] = (uint8_t)(rng_next(&r) >> 56);
        ds_augment a;
        ds_augment_default(&a);
        a.out_h = cases[t].oh;
        a.out_w = cases[t].ow;
        a.pad = cases[t].pad;
        a.random_crop = 1;
        a.mirror = cases[t].mirror;
        a.rotate = cases[t].rotate;
        a.scale_jitter = cases[t].zoom;
        for (int ch = 0; ch < cases[t].c; ch++) {
            a.mean[ch] = 100.0f + 7.0f * (float)ch;
            a.scale[ch] = 1.0f / (60.0f + (float)ch);
        }
        int64_t idx[5] = {4, 0, 2, 1, 3};
        const size_t per = (size_t)cases[t].c * cases[t].oh * cases[t].ow;
        float *vec = malloc(5 * per * sizeof(float)), *ref = malloc(5 * per * sizeof(float));
        for (uint64_t seed = 0; seed < 40; seed++) {
            ds_affine_vectorize(true);
            cr_assert_eq(ds_batch_build(d, idx, 5, &a, seed, vec, &err), DRSCH_OK, "%s", err.msg);
            ds_affine_vectorize(false);
            cr_assert_eq(ds_batch_build(d, idx, 5, &a, seed, ref, &err), DRSCH_OK, "%s", err.msg);
            for (size_t k = 0; k < 5 * per; k++)
                cr_assert(memcmp(&vec[k], &ref[k], sizeof(float)) == 0,
                          "case %zu, seed %llu, value %zu: AVX-512 %.9g, scalar %.9g", t,
                          (unsigned long long)seed, k, (double)vec[k], (double)ref[k]);
        }
        ds_affine_vectorize(true);
        free(vec);
        free(ref);
        ds_dataset_free(d);
    }
}

Test(batch, rotation_and_zoom_turn_and_scale_the_crop)
{
    /* image 0: a horizontal bar 20 x 2 through the centre; image 1: a disc of radius 8 */
    ds_dataset *d = mem_dataset(2, 1, 32, 32, 2);
    memset(d->images, 0, 2 * 32 * 32);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            d->images[y * 32 + x] = (y == 15 || y == 16) && x >= 6 && x < 26 ? 255 : 0;
            d->images[1024 + y * 32 + x] =
                (y - 15.5) * (y - 15.5) + (x - 15.5) * (x - 15.5) <= 64 ? 255 : 0;
        }
    ds_augment a;
    ds_augment_default(&a);
    drsch_error err;
    float plain[2][32 * 32], o[32 * 32];
    int64_t idx[2] = {0, 1};
    cr_assert_eq(ds_batch_build(d, idx, 2, &a, 1, plain[0], &err), DRSCH_OK, "%s", err.msg);
    double bar_mass, bar_angle, disc_mass, disc_angle;
    moments(plain[0], 32, 32, &bar_mass, &bar_angle);
    moments(plain[1], 32, 32, &disc_mass, &disc_angle);
    cr_assert_float_eq(bar_angle, 0.0, 1e-9);
    /* rotation up to 20 degrees: the bar turns by at most 20 degrees, both ways, mass kept */
    a.rotate = 20.0f;
    double lo = 0, hi = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        cr_assert_eq(ds_batch_build(d, idx, 1, &a, seed, o, &err), DRSCH_OK);
        double m, ang;
        moments(o, 32, 32, &m, &ang);
        cr_assert(fabs(ang) <= 20.5, "seed %llu: bar turned by %.2f degrees",
                  (unsigned long long)seed, ang);
        cr_assert(fabs(m / bar_mass - 1.0) < 0.03, "seed %llu: mass ratio %.4f",
                  (unsigned long long)seed, m / bar_mass);
        lo = fmin(lo, ang);
        hi = fmax(hi, ang);
    }
    cr_assert(lo < -15.0 && hi > 15.0, "angles seen %.1f .. %.1f", lo, hi);
    /* zoom 0.2: the disc's area scales by the zoom squared, in [0.64, 1.44], both ways */
    a.rotate = 0.0f;
    a.scale_jitter = 0.2f;
    lo = 10, hi = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        cr_assert_eq(ds_batch_build(d, idx + 1, 1, &a, seed, o, &err), DRSCH_OK);
        double m, ang;
        moments(o, 32, 32, &m, &ang);
        double r = m / disc_mass;
        cr_assert(r > 0.64 - 0.03 && r < 1.44 + 0.03, "seed %llu: area ratio %.4f",
                  (unsigned long long)seed, r);
        lo = fmin(lo, r);
        hi = fmax(hi, r);
    }
    cr_assert(lo < 0.75 && hi > 1.3, "area ratios seen %.3f .. %.3f", lo, hi);
    /* a vanishing rotation gives the exact crop-and-mirror output of the same seed: the crop and
     * flip draws do not change when rotation is asked for */
    ds_dataset *r = mem_dataset(4, 2, 9, 11, 2);
    ds_augment b;
    ds_augment_default(&b);
    b.out_h = 6;
    b.out_w = 7;
    b.pad = 1;
    b.random_crop = b.mirror = 1;
    int64_t ridx[4] = {3, 1, 0, 2};
    float e1[4 * 2 * 6 * 7], e2[4 * 2 * 6 * 7];
    cr_assert_eq(ds_batch_build(r, ridx, 4, &b, 5, e1, &err), DRSCH_OK);
    b.rotate = 1e-4f;
    cr_assert_eq(ds_batch_build(r, ridx, 4, &b, 5, e2, &err), DRSCH_OK);
    for (int k = 0; k < 4 * 2 * 6 * 7; k++)
        cr_assert_float_eq(e2[k], e1[k], 1e-4, "element %d", k);
    /* evaluation has neither */
    ds_augment ev = ds_augment_eval(&b);
    cr_assert(ev.rotate == 0.0f && ev.scale_jitter == 0.0f);
    /* out of range */
    b.rotate = 181.0f;
    cr_assert_eq(ds_batch_build(r, ridx, 1, &b, 5, e2, &err), DRSCH_ERR_ARG);
    cr_assert(strstr(err.msg, "rotation"), "%s", err.msg);
    b.rotate = NAN;
    cr_assert_eq(ds_batch_build(r, ridx, 1, &b, 5, e2, &err), DRSCH_ERR_ARG);
    b.rotate = 0.0f;
    b.scale_jitter = 1.0f;
    cr_assert_eq(ds_batch_build(r, ridx, 1, &b, 5, e2, &err), DRSCH_ERR_ARG);
    ds_dataset_free(r);
    ds_dataset_free(d);
}

Test(batch, identical_for_any_thread_count)
{
    ds_dataset *d = mem_dataset(500, 1, 28, 28, 10);
    ds_augment a;
    ds_augment_default(&a);
    a.out_h = a.out_w = 26;
    a.pad = 2;
    a.random_crop = a.mirror = 1;
    int64_t idx[200];
    for (int i = 0; i < 200; i++)
        idx[i] = (i * 37) % 500;
    size_t n = 200 * 26 * 26;
    float *x1 = malloc(n * sizeof *x1), *x2 = malloc(n * sizeof *x2);
    drsch_error err;
#ifdef DRSCH_HAVE_OPENMP
    omp_set_num_threads(1);
#endif
    cr_assert_eq(ds_batch_build(d, idx, 200, &a, 99, x1, &err), DRSCH_OK);
#ifdef DRSCH_HAVE_OPENMP
    omp_set_num_threads(3);
#endif
    cr_assert_eq(ds_batch_build(d, idx, 200, &a, 99, x2, &err), DRSCH_OK);
    cr_assert_eq(memcmp(x1, x2, n * sizeof *x1), 0);
    cr_assert_eq(ds_batch_build(d, idx, 200, &a, 100, x2, &err), DRSCH_OK);
    cr_assert_neq(memcmp(x1, x2, n * sizeof *x1), 0, "another seed, other crops");
    free(x1);
    free(x2);
    ds_dataset_free(d);
}

Test(batch, channel_stats)
{
    ds_dataset *d = mem_dataset(2, 1, 1, 2, 2);
    d->images[0] = 0;
    d->images[1] = 2;
    d->images[2] = 4;
    d->images[3] = 6;
    double m, s;
    ds_channel_stats(d, NULL, 0, &m, &s);
    cr_assert_float_eq(m, 3.0, 1e-12);
    cr_assert_float_eq(s, sqrt(5.0), 1e-12);
    int64_t one[1] = {1};
    ds_channel_stats(d, one, 1, &m, &s);
    cr_assert_float_eq(m, 5.0, 1e-12);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- sampler ----------------- */

Test(sampler, class_balanced_batches_cover_the_pool)
{
    ds_dataset *d = mem_dataset(1000, 1, 2, 2, 20);
    int64_t pool[600];
    for (int i = 0; i < 600; i++)
        pool[i] = i; /* 30 images per class */
    ds_sampler *s = NULL;
    drsch_error err;
    cr_assert_eq(ds_sampler_create(d, pool, 600, 10, 10, 5, &s, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(ds_sampler_batch_size(s), 100);
    cr_assert_eq(ds_sampler_classes(s), 20);
    int64_t idx[100];
    int32_t cls[100];
    int seen[600] = {0};
    for (int b = 0; b < 60; b++) {
        ds_sampler_next(s, idx, cls);
        int classes[20] = {0};
        for (int j = 0; j < 100; j++) {
            cr_assert_lt(idx[j], 600, "only pool images");
            cr_assert_eq(d->labels[idx[j]], cls[j]);
            seen[idx[j]]++;
            if (j % 10 == 0)
                classes[cls[j]]++;
            else
                cr_assert_eq(cls[j], cls[j - 1], "grouped class by class");
        }
        for (int k = 0; k < 20; k++)
            cr_assert_leq(classes[k], 1, "batch %d holds class %d twice", b, k);
    }
    /* 6000 draws over 600 images in per-class cycles: every image exactly 10 times */
    for (int i = 0; i < 600; i++)
        cr_assert_eq(seen[i], 10, "image %d drawn %d times", i, seen[i]);
    ds_sampler_free(s);
    cr_assert_eq(ds_sampler_create(d, pool, 600, 21, 10, 5, &s, &err), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(err.msg, "only 20 classes"), "%s", err.msg);
    ds_dataset_free(d);
}

Test(sampler, same_seed_same_batches)
{
    ds_dataset *d = mem_dataset(300, 1, 2, 2, 10);
    ds_sampler *a = NULL, *b = NULL;
    drsch_error err;
    int64_t pool[300];
    for (int i = 0; i < 300; i++)
        pool[i] = i;
    cr_assert_eq(ds_sampler_create(d, pool, 300, 7, 4, 11, &a, &err), DRSCH_OK);
    cr_assert_eq(ds_sampler_create(d, pool, 300, 7, 4, 11, &b, &err), DRSCH_OK);
    for (int k = 0; k < 20; k++) {
        int64_t x[28], y[28];
        ds_sampler_next(a, x, NULL);
        ds_sampler_next(b, y, NULL);
        cr_assert_eq(memcmp(x, y, sizeof x), 0);
    }
    ds_sampler_free(a);
    ds_sampler_free(b);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- image utilities --------- */

Test(image, bilinear_resize_half_pixel_centres)
{
    /* 1 x 2 -> 1 x 4: centres at source x = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1) */
    uint8_t src[2] = {0, 200};
    uint8_t dst[4];
    ds_resize_bilinear_hwc_to_chw(src, 1, 2, 1, dst, 1, 4);
    cr_assert_eq(dst[0], 0);
    cr_assert_eq(dst[1], 50);
    cr_assert_eq(dst[2], 150);
    cr_assert_eq(dst[3], 200);
    /* same size: identity, HWC -> CHW */
    uint8_t rgb[2 * 3 * 3], out[3 * 2 * 3];
    for (int i = 0; i < 18; i++)
        rgb[i] = (uint8_t)(i * 11);
    ds_resize_bilinear_hwc_to_chw(rgb, 2, 3, 3, out, 2, 3);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++)
                cr_assert_eq(out[(c * 2 + y) * 3 + x], rgb[(y * 3 + x) * 3 + c]);
    /* 2x downscale samples between source pixels: mean of each 2 x 2 block */
    uint8_t g[16], h[4];
    for (int i = 0; i < 16; i++)
        g[i] = (uint8_t)(i * 10);
    ds_resize_bilinear_hwc_to_chw(g, 4, 4, 1, h, 2, 2);
    cr_assert_eq(h[0], (0 + 10 + 40 + 50) / 4);
    cr_assert_eq(h[3], (100 + 110 + 140 + 150) / 4);
}

#include <jpeglib.h>
#include <png.h>

static void write_png_rgb(const char *path, int h, int w, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t *px = malloc((size_t)h * w * 3);
    for (int i = 0; i < h * w; i++) {
        px[3 * i] = r;
        px[3 * i + 1] = g;
        px[3 * i + 2] = b;
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_RGB;
    cr_assert(png_image_write_to_file(&img, path, 0, px, 0, NULL), "png write: %s", img.message);
    free(px);
}

static void write_jpeg_rgb(const char *path, int h, int w, uint8_t r, uint8_t g, uint8_t b)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) {
        row[3 * x] = r;
        row[3 * x + 1] = g;
        row[3 * x + 2] = b;
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
}

Test(image, decode_png_jpeg_and_reject_garbage)
{
    write_png_rgb(tu_path("a.png"), 5, 7, 10, 20, 30);
    write_jpeg_rgb(tu_path("b.jpg"), 9, 16, 200, 100, 50);
    uint8_t *px = NULL;
    int h, w;
    drsch_error err;
    cr_assert_eq(ds_image_decode_file(tu_path("a.png"), &px, &h, &w, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(h, 5);
    cr_assert_eq(w, 7);
    cr_assert_eq(px[3 * 34 + 2], 30);
    free(px);
    cr_assert_eq(ds_image_decode_file(tu_path("b.jpg"), &px, &h, &w, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(h, 9);
    cr_assert_eq(w, 16);
    cr_assert(abs(px[0] - 200) <= 3 && abs(px[1] - 100) <= 3 && abs(px[2] - 50) <= 3,
              "jpeg %d %d %d", px[0], px[1], px[2]);
    free(px);
    tu_write_file(tu_path("c.jpg"), "hello, not an image", 19);
    cr_assert_eq(ds_image_decode_file(tu_path("c.jpg"), &px, &h, &w, &err), DRSCH_ERR_DECODE);
    cr_assert_not_null(strstr(err.msg, "c.jpg"), "%s", err.msg);
    /* a JPEG cut after its header: decoding error, no crash */
    size_t n;
    char *jpg = tu_slurp(tu_path("b.jpg"), &n);
    tu_write_file(tu_path("d.jpg"), jpg, n > 200 ? 200 : n / 2);
    free(jpg);
    drsch_status s = ds_image_decode_file(tu_path("d.jpg"), &px, &h, &w, &err);
    if (s == DRSCH_OK)
        free(px); /* libjpeg pads truncated data with a warning; accepted, but must not crash */
    else
        cr_assert_eq(s, DRSCH_ERR_DECODE);
    cr_assert_eq(ds_image_decode_file(tu_path("none.png"), &px, &h, &w, &err), DRSCH_ERR_IO);
}

/* ---------------------------------------------------------------- NUS-WIDE ---------------- */

static void write_list_line(FILE *f, const char *rel, int n_labels, unsigned mask_lo, int extra)
{
    fprintf(f, "%s", rel);
    for (int l = 0; l < n_labels + extra; l++)
        fprintf(f, " %d", l < 32 ? (int)((mask_lo >> l) & 1) : 0);
    fprintf(f, "\n");
}

/* A NUS-WIDE list (list.txt) and image folder (img/) in tu_tmpdir. */
static void nus_fixture(int bad_line_extra, int missing_third)
{
    mkdir(tu_path("img"), 0700);
    mkdir(tu_path("img/Flickr"), 0700);
    write_png_rgb(tu_path("img/Flickr/0.png"), 20, 30, 10, 20, 30);
    write_jpeg_rgb(tu_path("img/Flickr/1.jpg"), 16, 16, 250, 128, 0);
    if (!missing_third)
        write_png_rgb(tu_path("img/Flickr/2.png"), 8, 8, 1, 2, 3);
    write_png_rgb(tu_path("img/Flickr/3.png"), 40, 12, 90, 91, 92);
    FILE *f = fopen(tu_path("list.txt"), "w");
    write_list_line(f, "Flickr/0.png", 21, 0x1u, 0);
    write_list_line(f, "Flickr/1.jpg", 21, 0x3u, 0);
    fprintf(f, "\n");
    write_list_line(f, "Flickr/2.png", 21, 0x100000u, bad_line_extra);
    write_list_line(f, "Flickr/3.png", 21, 0x6u, 0);
    fclose(f);
}

Test(nuswide, list_and_images_record_by_record)
{
    nus_fixture(0, 0);
    const char *dir = tu_tmpdir;
    ds_load_opts o;
    ds_load_opts_default(&o);
    o.out_h = 6;
    o.out_w = 5;
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), &o, &d, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(d->n, 4);
    cr_assert_eq(d->c, 3);
    cr_assert_eq(d->h, 6);
    cr_assert_eq(d->w, 5);
    cr_assert_eq(d->label_kind, DS_LABELS_MULTI);
    cr_assert_eq(d->n_classes, 21);
    cr_assert_eq(d->n_skipped, 0);
    const uint8_t expect_rgb[4][3] = {{10, 20, 30}, {250, 128, 0}, {1, 2, 3}, {90, 91, 92}};
    const unsigned masks[4] = {0x1u, 0x3u, 0x100000u, 0x6u};
    for (int i = 0; i < 4; i++) {
        for (int l = 0; l < 21; l++)
            cr_assert_eq(d->multi[i * 21 + l], (masks[i] >> l) & 1, "image %d label %d", i, l);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 30; p++) {
                int v = d->images[(size_t)(i * 3 + c) * 30 + p];
                cr_assert(abs(v - expect_rgb[i][c]) <= (i == 1 ? 3 : 0), "image %d channel %d: %d",
                          i, c, v);
            }
    }
    ds_dataset_free(d);
    /* through the spec: nuswide:LIST:IMGROOT, default size 32 x 32 */
    char spec[2300];
    snprintf(spec, sizeof spec, "nuswide:%s/list.txt:%s/img", dir, dir);
    cr_assert_eq(ds_load(spec, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->h, 32);
    cr_assert_str_eq(d->name, "nuswide-21");
    ds_dataset_free(d);
}

Test(nuswide_bad, wrong_label_count_names_line)
{
    nus_fixture(1, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), NULL, &d, &err),
                 DRSCH_ERR_FORMAT);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.msg, "list.txt: line 4: 22 labels, expected 21"), "%s", err.msg);
    cr_assert_eq(err.record, 3);
    FILE *f = fopen(tu_path("list.txt"), "w");
    fprintf(f, "a.png 0 1 0\n");
    fclose(f);
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), NULL, &d, &err),
                 DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "line 1: 3 labels"), "%s", err.msg);
    f = fopen(tu_path("list.txt"), "w");
    write_list_line(f, "Flickr/0.png", 21, 0, 0);
    fprintf(f, "Flickr/0.png 0 1 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
    fclose(f);
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), NULL, &d, &err),
                 DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "line 2: label 3 is '2'"), "%s", err.msg);
    cr_assert_eq(ds_load_nuswide(tu_path("nolist.txt"), tu_path("img"), NULL, &d, &err),
                 DRSCH_ERR_IO);
}

Test(nuswide_bad, missing_and_undecodable_images_fail_or_are_counted)
{
    nus_fixture(0, 1);
    tu_write_file(tu_path("img/Flickr/3.png"), "\x89PNG\r\n\x1a\nbroken", 14);
    ds_dataset *d = NULL;
    drsch_error err;
    ds_load_opts o;
    ds_load_opts_default(&o);
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), &o, &d, &err), DRSCH_ERR_IO);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.msg, "list.txt: line 4:"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "Flickr/2.png"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "skip"), "%s", err.msg);
    o.skip_bad_images = 1;
    cr_assert_eq(ds_load_nuswide(tu_path("list.txt"), tu_path("img"), &o, &d, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->n_skipped, 2);
    cr_assert_eq(d->multi[21 + 1], 1, "second kept image keeps its labels");
    ds_dataset_free(d);
}

Test(nuswide, top_concepts_and_multilabel_split)
{
    /* 120 images, 5 concepts: concept k present in images where (i + k) % (k + 2) == 0 etc. */
    ds_dataset *d = calloc(1, sizeof *d);
    d->n = 120;
    d->c = 1;
    d->h = d->w = 1;
    d->n_classes = 5;
    d->label_kind = DS_LABELS_MULTI;
    d->images = malloc(120);
    d->multi = calloc(120 * 5, 1);
    for (int i = 0; i < 120; i++) {
        d->images[i] = (uint8_t)i;
        d->multi[i * 5 + 0] = i < 60;      /* 60 */
        d->multi[i * 5 + 1] = i % 10 == 0; /* 12 */
        d->multi[i * 5 + 2] = i >= 50;     /* 70 */
        d->multi[i * 5 + 3] = i % 3 == 0;  /* 40 */
        d->multi[i * 5 + 4] = i == 5;      /* 1 */
    }
    drsch_error err;
    cr_assert_eq(ds_select_top_concepts(d, 3, &err), DRSCH_OK);
    cr_assert_eq(d->n_classes,
                 3); /* concepts 0, 2, 3 in original order; every image keeps a label */
    cr_assert_eq(d->n, 120);
    cr_assert_eq(d->multi[5 * 3 + 0], 1);
    cr_assert_eq(d->multi[5 * 3 + 2], 0);
    ds_paper_opts o = {.query_per_class = 4, .train_per_class = 6, .db_includes_train = 0};
    ds_split s;
    cr_assert_eq(ds_split_paper(d, &o, 3, &s, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(s.n_query, 12);
    cr_assert_eq(s.n_train, 18);
    cr_assert_eq(s.n_db, 90);
    cr_assert_not_null(strstr(s.name, "multi-label"));
    int64_t got[3] = {0};
    for (int64_t j = 0; j < s.n_query; j++)
        for (int l = 0; l < 3; l++)
            got[l] += d->multi[s.query[j] * 3 + l];
    for (int l = 0; l < 3; l++)
        cr_assert_geq(got[l], 4, "concept %d has %lld queries", l, (long long)got[l]);
    ds_split_free(&s);
    o.train_per_class = 100;
    cr_assert_eq(ds_split_paper(d, &o, 3, &s, &err), DRSCH_ERR_RANGE);
    ds_dataset_free(d);
}

/* ---------------------------------------------------------------- CUHK03 (HDF5) ----------- */

#include <hdf5.h>

#include "fixture_cuhk03.h"

#define FX_PAIRS 5
static const int FX_PERSONS[FX_PAIRS] = {3, 2, 4, 2, 3};

/* Fixture rules: image of (pair p, person q, slot s), all 1-based except s: value
 * p * 40 + q * 10 + s in every pixel and channel; slots 4 and 9 of person 1 in every pair are
 * empty (2-element uint64 in even pairs, a 0-element dataset in odd ones); person 2 of pair 3
 * has no second-camera images at all. */
static int fx_empty(int p, int q, int s)
{
    return (q == 1 && (s == 4 || s == 9)) || (p == 3 && q == 2 && s >= 5);
}
static uint8_t fx_value(int p, int q, int s) { return (uint8_t)(p * 40 + q * 10 + s); }

static int fx_empty_cb(int p, int q, int s, void *ctx)
{
    (void)ctx;
    return fx_empty(p, q, s);
}

static void fx_pixels_cb(int p, int q, int s, uint8_t *px, int h, int w, void *ctx)
{
    (void)ctx;
    memset(px, fx_value(p, q, s), (size_t)3 * h * w);
}

static void write_cuhk03(const char *path, int with_labeled, int with_testsets)
{
    /* 2 testsets of 3 rows, [pair, person] */
    static const int ts[2 * 3 * 2] = {1, 2, 3, 2, 5, 3, /* testsets{1} */ 2, 1, 4, 2, 5, 1};
    fx_cuhk03 x = {.pairs = FX_PAIRS,
                   .persons = FX_PERSONS,
                   .h = 6,
                   .w = 4,
                   .with_labeled = with_labeled,
                   .n_testsets = with_testsets ? 2 : 0,
                   .testset_rows = 3,
                   .testsets = ts,
                   .empty = fx_empty_cb,
                   .pixels = fx_pixels_cb};
    char msg[512];
    cr_assert_eq(fx_cuhk03_write(path, &x, msg, sizeof msg), 0, "%s", msg);
}

/* The fixture of write_cuhk03 (labeled, with testsets) at path, loaded at 4x2: the dataset the
 * 767/700 config tests pair with their config files. */
static ds_dataset *load_small_cuhk03(const char *path)
{
    write_cuhk03(path, 1, 1);
    ds_dataset *d = NULL;
    drsch_error err;
    ds_load_opts o;
    ds_load_opts_default(&o);
    o.out_h = 4;
    o.out_w = 2;
    cr_assert_eq(ds_load_cuhk03(path, 0, &o, &d, &err), DRSCH_OK, "%s", err.msg);
    return d;
}

Test(cuhk03, v73_layout_record_by_record)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_cuhk03(mat, 1, 1);
    ds_dataset *d = NULL;
    drsch_error err;
    ds_load_opts o;
    ds_load_opts_default(&o);
    o.out_h = 8;
    o.out_w = 3;
    cr_assert_eq(ds_load_cuhk03(mat, 0, &o, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_str_eq(d->name, "cuhk03-labeled");
    cr_assert_eq(d->label_kind, DS_LABELS_IDENTITY);
    cr_assert_eq(d->n_classes, 14);
    cr_assert_eq(d->n_pairs, 5);
    cr_assert_eq(d->c, 3);
    cr_assert_eq(d->h, 8);
    cr_assert_eq(d->w, 3);
    /* walk the fixture in reader order: pair, person, slot; empty slots skipped */
    int64_t i = 0;
    int offset = 0;
    for (int p = 1; p <= FX_PAIRS; p++) {
        for (int q = 1; q <= FX_PERSONS[p - 1]; q++)
            for (int s = 0; s < 10; s++) {
                if (fx_empty(p, q, s))
                    continue;
                cr_assert_lt(i, d->n);
                cr_assert_eq(d->pair[i], p);
                cr_assert_eq(d->person[i], q);
                cr_assert_eq(d->slot[i], s);
                cr_assert_eq(d->labels[i], offset + q - 1);
                cr_assert_eq(d->cams[i], 2 * (p - 1) + (s >= 5));
                for (int k = 0; k < 3 * 8 * 3; k++)
                    cr_assert_eq(d->images[i * 72 + k], fx_value(p, q, s), "image %lld",
                                 (long long)i);
                i++;
            }
        offset += FX_PERSONS[p - 1];
    }
    cr_assert_eq(i, d->n, "%lld images read, %lld expected", (long long)d->n, (long long)i);
    cr_assert_eq(d->n_testsets, 2);
    cr_assert_eq(d->testset_rows, 3);
    cr_assert_eq(d->testsets[0], 1);
    cr_assert_eq(d->testsets[1], 2);
    cr_assert_eq(d->testsets[2 * 3 + 2 * 2], 5);
    cr_assert_eq(d->testsets[2 * 3 + 2 * 2 + 1], 1);

    /* classic split on testsets{1}: identities (1,2) (3,2) (5,3) */
    ds_cuhk03_opts co = {.testset = 0, .single_shot = 1};
    ds_split sp;
    cr_assert_eq(ds_split_cuhk03_classic(d, &co, 9, &sp, &err), DRSCH_OK, "%s", err.msg);
    int id12 = 1, id32 = 3 + 2 + 1, id53 = 3 + 2 + 4 + 2 + 2;
    /* (3,2) has no second-camera images: no gallery, so no queries; the name says so */
    cr_assert_not_null(strstr(sp.name, "1 without second-camera images dropped"), "%s", sp.name);
    cr_assert_eq(sp.n_query, 10);
    cr_assert_eq(sp.n_db, 2);
    for (int64_t j = 0; j < sp.n_query; j++) {
        int64_t x = sp.query[j];
        cr_assert(d->labels[x] == id12 || d->labels[x] == id53);
        cr_assert_lt(d->slot[x], 5);
    }
    int g12 = 0, g53 = 0;
    for (int64_t j = 0; j < sp.n_db; j++) {
        int64_t x = sp.db[j];
        cr_assert_geq(d->slot[x], 5);
        g12 += d->labels[x] == id12;
        g53 += d->labels[x] == id53;
    }
    cr_assert(g12 == 1 && g53 == 1);
    for (int64_t j = 0; j < sp.n_train; j++) {
        int l = d->labels[sp.train[j]];
        cr_assert(l != id12 && l != id32 && l != id53);
    }
    cr_assert_eq(sp.n_train + sp.n_query + sp.n_db + 5 /* (3,2) first camera */ +
                     8 /* unpicked shots */,
                 d->n);
    ds_split_free(&sp);
    co.single_shot = 0;
    cr_assert_eq(ds_split_cuhk03_classic(d, &co, 9, &sp, &err), DRSCH_OK);
    cr_assert_eq(sp.n_db, 10);
    ds_split_free(&sp);
    co.testset = 2;
    cr_assert_eq(ds_split_cuhk03_classic(d, &co, 9, &sp, &err), DRSCH_ERR_RANGE);
    ds_dataset_free(d);

    /* the spec form reads 'detected' */
    char spec[1200];
    snprintf(spec, sizeof spec, "cuhk03:%s:detected", mat);
    cr_assert_eq(ds_load(spec, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_str_eq(d->name, "cuhk03-detected");
    cr_assert_eq(d->h, 160);
    cr_assert_eq(d->w, 60);
    ds_dataset_free(d);
}

Test(cuhk03_bad, missing_datasets_and_wrong_files)
{
    const char *mat = tu_path("nolabeled.mat");
    write_cuhk03(mat, 0, 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_null(d);
    cr_assert_str_eq(err.file, mat);
    cr_assert_not_null(strstr(err.msg, "no dataset 'labeled'"), "%s", err.msg);
    /* 'detected' is there; without 'testsets' the classic protocol says so */
    cr_assert_eq(ds_load_cuhk03(mat, 1, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n_testsets, 0);
    ds_split sp;
    ds_cuhk03_opts co = {0, 1};
    cr_assert_eq(ds_split_cuhk03_classic(d, &co, 1, &sp, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "testsets"), "%s", err.msg);
    ds_dataset_free(d);
    /* an HDF5 file without any of the datasets */
    const char *empty = tu_path("empty.mat");
    hid_t f = H5Fcreate(empty, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    cr_assert_eq(ds_load_cuhk03(empty, 1, NULL, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "empty.mat: no dataset 'detected'"), "%s", err.msg);
    /* 'labeled' that is not a cell of references */
    const char *wrong = tu_path("wrong.mat");
    f = H5Fcreate(wrong, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dd[2] = {1, 5};
    hid_t sp2 = H5Screate_simple(2, dd, NULL);
    hid_t ds =
        H5Dcreate2(f, "labeled", H5T_NATIVE_DOUBLE, sp2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(sp2);
    H5Fclose(f);
    cr_assert_eq(ds_load_cuhk03(wrong, 0, NULL, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "not a MATLAB cell"), "%s", err.msg);
    /* not HDF5 (a MATLAB v5 file starts with a text header) and a missing file */
    const char *v5 = tu_path("v5.mat");
    tu_write_file(v5, "MATLAB 5.0 MAT-file, Platform: GLNXA64", 38);
    cr_assert_eq(ds_load_cuhk03(v5, 0, NULL, &d, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "v7.3"), "%s", err.msg);
    cr_assert_eq(ds_load_cuhk03(tu_path("none.mat"), 0, NULL, &d, &err), DRSCH_ERR_IO);
}

/* The reader is drsch's HDF5 module, loaded on first use: a missing or broken module is an error
 * that names the file being read, the module and where it was looked for; nothing crashes. */
Test(cuhk03_bad, module_missing_or_broken)
{
    const char *mat = tu_path("cuhk-03.mat");
    write_cuhk03(mat, 1, 1);
    const char *dir = tu_path("modules");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(setenv("DRSCH_MODULE_DIR", dir, 1), 0);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_IO);
    cr_assert_null(d);
    cr_assert_str_eq(err.file, mat);
    cr_assert_not_null(strstr(err.msg, "needs drsch's module cuhk03_hdf5.so"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, dir), "%s", err.msg);
    /* a file of that name that is not a shared object */
    char so[1200];
    snprintf(so, sizeof so, "%s/cuhk03_hdf5.so", dir);
    tu_write_file(so, "not an ELF file", 15);
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_IO);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.msg, "cannot be loaded"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, so), "%s", err.msg);
}

/* ---------------------------------------------------------------- command line ------------ */

/* Runs `$DRSCH_EXE args`, its stdout (stderr dropped) into out (cap bytes); the exit status. */
static int run_drsch(const char *args, char *out, size_t cap)
{
    return tu_run(out, cap, "{ '%s' %s; } 2>/dev/null", tu_exe(), args);
}

static void need_exe(void)
{
    const char *exe = getenv("DRSCH_EXE");
    if (!exe || access(exe, X_OK) != 0)
        cr_skip_test("DRSCH_EXE not set or not built");
}

Test(cli, data_info_and_errors, .timeout = 60)
{
    need_exe();
    static char out[1 << 16];
    cr_assert_eq(run_drsch("data --help", out, sizeof out), 0);
    const char *flags[] = {"--protocol", "--seed", "--testset", "--size", "--skip-bad", "default"};
    for (int i = 0; i < 6; i++)
        cr_assert_not_null(strstr(out, flags[i]), "help lacks %s", flags[i]);
    cr_assert_eq(run_drsch("data info fashion-mnist", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "images:    70000 (uint8 1 x 28 x 28"), "%s", out);
    cr_assert_not_null(strstr(out, "crc32 37284389"), "%s", out);
    cr_assert_not_null(strstr(out, "1000 query, 5000 train, 64000 database"), "%s", out);
    cr_assert_eq(run_drsch("data info imagenet", out, sizeof out), 2);
    cr_assert_eq(run_drsch("data info", out, sizeof out), 2);
    cr_assert_eq(run_drsch("data info --size 3 fashion-mnist", out, sizeof out), 2);
    const char *dir = tu_tmpdir;
    char args[2048];
    snprintf(args, sizeof args, "data info cifar10:%s", dir);
    cr_assert_eq(run_drsch(args, out, sizeof out), 1, "missing files: failure, not usage");
    const char *mat = tu_path("c.mat");
    write_cuhk03(mat, 1, 1);
    snprintf(args, sizeof args, "data info cuhk03:%s --size 16x8", mat);
    /* without DRSCH_MODULE_DIR: the command finds drsch's HDF5 module beside libdrsch.so */
    cr_assert_eq(unsetenv("DRSCH_MODULE_DIR"), 0);
    cr_assert_eq(run_drsch(args, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "identity (re-id), 14 identities"), "%s", out);
    cr_assert_not_null(strstr(out, "cuhk03 classic: testsets{1}"), "%s", out);
}

Test(cli, bench_data_writes_json, .timeout = 60)
{
    need_exe();
    static char out[1 << 16];
    const char *dir = tu_tmpdir;
    char args[2048];
    snprintf(args, sizeof args,
             "bench data --iters 20 --repetitions 1 --threads 2 --json %s/b.json", dir);
    cr_assert_eq(run_drsch(args, out, sizeof out), 0);
    char *js = tu_slurp(tu_path("b.json"), NULL);
    /* training's augmentation of 28x28 images by default: turned by up to 10 degrees, zoomed by
     * up to 10% */
    cr_assert_not_null(
        strstr(js, "BM_DataBatch/fashion-mnist/batch:10x10/crop:26x26/pad:0/mirror:1/rotate:10/"
                   "zoom:0.1/threads:"),
        "%s", js);
    cr_assert_not_null(strstr(js, "items_per_second"), "%s", js);
    cr_assert_not_null(strstr(js, "37284389"), "dataset checksum in the context");
    free(js);
    snprintf(
        args, sizeof args,
        "bench data --iters 5 --repetitions 1 --threads 1 --rotate 0 --zoom 0 --json %s/c.json",
        dir);
    cr_assert_eq(run_drsch(args, out, sizeof out), 0);
    js = tu_slurp(tu_path("c.json"), NULL);
    cr_assert_not_null(strstr(js, "/mirror:1/rotate:0/zoom:0/threads:1"), "%s", js);
    free(js);
    cr_assert_eq(run_drsch("bench data --rotate 200", out, sizeof out), 2, "rotation past 180");
    cr_assert_eq(run_drsch("bench data --help", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "--no-mirror"), "%s", out);
    cr_assert_eq(run_drsch("bench data --classes 11", out, sizeof out), 1, "only 10 classes");
}

/* ---------------------------------------------------------------- CUHK03 767/700 (MAT v5) -- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v)
{
    put(b, &v, 4);
} /* the tests run on little-endian hosts */

/* A v5 data element: tag (type, bytes) + payload padded to 8 bytes. */
static void put_elem(bytes *b, uint32_t type, const void *d, size_t n)
{
    put_u32(b, type);
    put_u32(b, (uint32_t)n);
    put(b, d, n);
    static const uint8_t zero[8] = {0};
    put(b, zero, (8 - n % 8) % 8);
}

static void put_matrix_header(bytes *m, int cls, int rows, int cols, const char *name)
{
    uint32_t flags[2] = {(uint32_t)cls, 0};
    int32_t dims[2] = {rows, cols};
    put_elem(m, 6 /* miUINT32 */, flags, 8);
    put_elem(m, 5 /* miINT32 */, dims, 8);
    put_elem(m, 1 /* miINT8 */, name, strlen(name));
}

static void put_doubles(bytes *f, const char *name, const double *v, int n)
{
    bytes m = {0};
    put_matrix_header(&m, 6 /* mxDOUBLE */, n, 1, name);
    put_elem(&m, 9 /* miDOUBLE */, v, (size_t)n * 8);
    put_elem(f, 14 /* miMATRIX */, m.p, m.n);
    free(m.p);
}

/* filelist as a cell of char arrays (UTF-16), written inside an miCOMPRESSED element. */
static void put_filelist_compressed(bytes *f, const char *const *names, int n)
{
    bytes m = {0};
    put_matrix_header(&m, 1 /* mxCELL */, n, 1, "filelist");
    for (int k = 0; k < n; k++) {
        bytes c = {0};
        int len = (int)strlen(names[k]);
        put_matrix_header(&c, 4 /* mxCHAR */, 1, len, "");
        uint16_t *u = malloc((size_t)len * 2);
        for (int j = 0; j < len; j++)
            u[j] = (uint16_t)names[k][j];
        put_elem(&c, 4 /* miUINT16 */, u, (size_t)len * 2);
        free(u);
        put_elem(&m, 14, c.p, c.n);
        free(c.p);
    }
    bytes whole = {0};
    put_elem(&whole, 14, m.p, m.n);
    uLongf zn = compressBound(whole.n);
    uint8_t *z = malloc(zn);
    cr_assert_eq(compress(z, &zn, whole.p, whole.n), Z_OK);
    put_u32(f, 15 /* miCOMPRESSED */);
    put_u32(f, (uint32_t)zn);
    put(f, z, zn);
    free(z);
    free(whole.p);
    free(m.p);
}

static void write_new_protocol(const char *path, const char *const *names, int n_names,
                               const double *q, int nq, const double *g, int ng, const double *t,
                               int nt)
{
    bytes f = {0};
    char hdr[128];
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, "MATLAB 5.0 MAT-file, written by the drsch tests", 47);
    hdr[124] = 0x00;
    hdr[125] = 0x01;
    hdr[126] = 'I';
    hdr[127] = 'M';
    put(&f, hdr, 128);
    put_doubles(&f, "labels", q, nq); /* an unrelated variable first: must be skipped */
    put_filelist_compressed(&f, names, n_names);
    put_doubles(&f, "query_idx", q, nq);
    put_doubles(&f, "gallery_idx", g, ng);
    put_doubles(&f, "train_idx", t, nt);
    tu_write_file(path, f.p, f.n);
    free(f.p);
}

Test(cuhk03, new_protocol_config_maps_file_names)
{
    const char *mat = tu_path("cuhk-03.mat");
    drsch_error err;
    ds_dataset *d = load_small_cuhk03(mat);
    const char *names[5] = {"1_001_1_01.png", "1_002_2_06.png", "2_001_1_02.png", "5_003_2_10.png",
                            "3_004_1_03.png"};
    const double q[2] = {1, 3}, g[2] = {4, 2}, t[1] = {5};
    const char *cfg = tu_path("cuhk03_new_protocol_config_labeled.mat");
    write_new_protocol(cfg, names, 5, q, 2, g, 2, t, 1);
    ds_split sp;
    cr_assert_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(sp.n_query, 2);
    cr_assert_eq(sp.n_db, 2);
    cr_assert_eq(sp.n_train, 1);
    /* query[0] = 1_001_1_01 = pair 1, person 1, slot 0 */
    cr_assert_eq(d->pair[sp.query[0]], 1);
    cr_assert_eq(d->person[sp.query[0]], 1);
    cr_assert_eq(d->slot[sp.query[0]], 0);
    cr_assert_eq(d->pair[sp.query[1]], 2);
    cr_assert_eq(d->slot[sp.query[1]], 1);
    cr_assert_eq(d->pair[sp.db[0]], 1);
    cr_assert_eq(d->person[sp.db[0]], 2);
    cr_assert_eq(d->slot[sp.db[0]], 5);
    cr_assert_eq(d->pair[sp.db[1]], 5);
    cr_assert_eq(d->slot[sp.db[1]], 9);
    cr_assert_eq(d->pair[sp.train[0]], 3);
    cr_assert_eq(d->person[sp.train[0]], 4);
    cr_assert_not_null(strstr(sp.name, "1 train / 2 test identities"), "%s", sp.name);
    ds_split_free(&sp);

    /* an empty slot of the dataset (person 1, slot 5) named in filelist */
    const char *bad[1] = {"1_001_1_05.png"};
    write_new_protocol(cfg, bad, 1, q, 1, q, 1, q, 1);
    cr_assert_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "record 0: 1_001_1_05.png is not in"), "%s", err.msg);
    /* an index past the end of filelist */
    const double far[1] = {6};
    write_new_protocol(cfg, names, 5, q, 2, far, 1, t, 1);
    cr_assert_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_ERR_RANGE);
    cr_assert_not_null(strstr(err.msg, "gallery_idx value 6"), "%s", err.msg);
    /* a truncated file, and an HDF5 file instead of v5 */
    size_t n;
    char *whole = tu_slurp(cfg, &n);
    tu_write_file(cfg, whole, n > 200 ? 200 : n);
    free(whole);
    cr_assert_neq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_OK);
    cr_assert_not_null(strstr(err.msg, cfg), "%s", err.msg);
    cr_assert_eq(ds_split_cuhk03_new(d, mat, &sp, &err), DRSCH_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "not a MATLAB v5 MAT-file"), "%s", err.msg);
    ds_dataset_free(d);
}

/* ------------------------------------------- CUHK03 regressions found by tests/fuzz/ ------- */

/* A small cuhk-03.mat: 'labeled' = 1 pair of 1 person whose 10 slots are 3 x 2 x 2 uint8
 * images, except slot `group_slot` (>= 0), a reference to a group; 'testsets' = one dataset of
 * the given rank and dims holding `vals` (doubles), or none when ts_rank is 0. */
static void write_cuhk03_small(const char *path, int group_slot, int ts_rank,
                               const hsize_t *ts_dims, const double *vals)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t g = H5Gcreate2(f, "#refs#", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t px[12];
    memset(px, 77, sizeof px);
    hobj_ref_t slots[10], pair;
    hsize_t d3[3] = {3, 2, 2}, d10[2] = {10, 1}, d1[2] = {1, 1};
    for (int s = 0; s < 10; s++) {
        char name[32];
        snprintf(name, sizeof name, "/#refs#/i%d", s);
        if (s == group_slot) {
            cr_assert_geq(H5Rcreate(&slots[s], f, "/#refs#", H5R_OBJECT, -1), 0);
            continue;
        }
        hid_t sp = H5Screate_simple(3, d3, NULL);
        hid_t ds = H5Dcreate2(f, name, H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px);
        H5Dclose(ds);
        H5Sclose(sp);
        cr_assert_geq(H5Rcreate(&slots[s], f, name, H5R_OBJECT, -1), 0);
    }
    hid_t sp = H5Screate_simple(2, d10, NULL);
    hid_t ds =
        H5Dcreate2(f, "/#refs#/cell", H5T_STD_REF_OBJ, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_STD_REF_OBJ, H5S_ALL, H5S_ALL, H5P_DEFAULT, slots);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Rcreate(&pair, f, "/#refs#/cell", H5R_OBJECT, -1);
    sp = H5Screate_simple(2, d1, NULL);
    ds = H5Dcreate2(f, "labeled", H5T_STD_REF_OBJ, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_STD_REF_OBJ, H5S_ALL, H5S_ALL, H5P_DEFAULT, &pair);
    H5Dclose(ds);
    H5Sclose(sp);
    if (ts_rank > 0) {
        hobj_ref_t tref;
        sp = H5Screate_simple(ts_rank, ts_dims, NULL);
        ds = H5Dcreate2(f, "/#refs#/ts", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
        H5Dclose(ds);
        H5Sclose(sp);
        H5Rcreate(&tref, f, "/#refs#/ts", H5R_OBJECT, -1);
        sp = H5Screate_simple(2, d1, NULL);
        ds = H5Dcreate2(f, "testsets", H5T_STD_REF_OBJ, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_STD_REF_OBJ, H5S_ALL, H5S_ALL, H5P_DEFAULT, &tref);
        H5Dclose(ds);
        H5Sclose(sp);
    }
    H5Gclose(g);
    H5Fclose(f);
}

/* A slot referencing a group was closed with H5Dclose, which fails on groups: the handle leaked
 * and kept the file open, so it could not even be rewritten afterwards. */
Test(cuhk03_bad, reference_to_a_group_fails_and_leaves_no_handle_open)
{
    const char *mat = tu_path("group-slot.mat");
    write_cuhk03_small(mat, 3, 0, NULL, NULL);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_FORMAT, "%s", err.msg);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.msg, "labeled{1}(1, 4)"), "%s", err.msg);
    cr_assert_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0,
                 "HDF5 objects left open by the reader");
    write_cuhk03_small(mat, -1, 0, NULL, NULL); /* the file can be rewritten: it is closed */
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 10);
    ds_dataset_free(d);
}

/* 'testsets' entries of rank 3 made the reader write three dimensions into a two-element array
 * (stack overflow); they are a format error. */
Test(cuhk03_bad, testsets_of_rank_three_are_a_format_error)
{
    const char *mat = tu_path("ts-rank3.mat");
    hsize_t dims[3] = {2, 1, 2};
    double vals[4] = {1, 1, 1, 1};
    write_cuhk03_small(mat, -1, 3, dims, vals);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_FORMAT, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "testsets{1}"), "%s", err.msg);
    cr_assert_null(d);
}

/* NaN or out-of-int32 numbers in 'testsets' were converted to int32 (undefined behaviour); they
 * are reported as nonexistent (pair, person) rows. */
Test(cuhk03_bad, testsets_with_nan_or_huge_numbers_are_out_of_range)
{
    const char *mat = tu_path("ts-nan.mat");
    const double bad[] = {NAN, 1e300, -3e9, INFINITY};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        hsize_t dims[2] = {2, 1};
        double vals[2] = {1, bad[k]}; /* (pair 1, person bad) */
        write_cuhk03_small(mat, -1, 2, dims, vals);
        ds_dataset *d = NULL;
        drsch_error err;
        cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_RANGE, "value %g: %s",
                     bad[k], err.msg);
        cr_assert_null(d);
    }
    hsize_t dims[2] = {2, 1};
    double ok[2] = {1, 1};
    write_cuhk03_small(mat, -1, 2, dims, ok);
    ds_dataset *d = NULL;
    drsch_error err;
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n_testsets, 1);
    ds_dataset_free(d);
}

/* ------------------------------------------------ IDX regression found by tests/fuzz/ ------- */

/* Found by tests/fuzz/fuzz_idx: a 26-byte image file whose header promises 4096 images of
 * 1024 x 1024 made the reader allocate 4 GiB before reading a byte of pixels. A header the file
 * cannot back (raw: its size; gzip: 1032 x its size, deflate's maximum ratio) is now refused
 * as truncated before any allocation. */
Test(idx_bad, header_promising_more_than_the_file_holds)
{
    for (int gz = 0; gz < 2; gz++) {
        const char *img = tu_path(gz ? "big-img.gz" : "big-img"),
                   *lab = tu_path(gz ? "big-lab.gz" : "big-lab");
        uint8_t ib[26] = {0}, lb[8 + 4096] = {0};
        put_be32(ib, 0x803);
        put_be32(ib + 4, 4096);
        put_be32(ib + 8, 1024);
        put_be32(ib + 12, 1024);
        put_be32(lb, 0x801);
        put_be32(lb + 4, 4096);
        write_bytes(img, ib, sizeof ib, gz);
        write_bytes(lab, lb, sizeof lb, gz);
        ds_dataset *d = NULL;
        drsch_error err;
        cr_assert_eq(ds_load_idx_pair(img, lab, &d, &err), DRSCH_ERR_IO, "%s", err.msg);
        cr_assert_null(d);
        cr_assert_str_eq(err.file, img);
        cr_assert_not_null(strstr(err.msg, "more than the file can hold"), "%s", err.msg);
    }
}

/* ------------------------------------------ MAT v5 regressions found by tests/fuzz/ --------- */

/* A config file whose only variable is a 'filelist' cell of the given dims (3 of them) holding
 * no cells at all. */
static void write_v5_empty_cell(const char *path, const int32_t dims[3])
{
    bytes f = {0}, m = {0};
    char hdr[128];
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, "MATLAB 5.0 MAT-file, written by the drsch tests", 47);
    hdr[124] = 0x00;
    hdr[125] = 0x01;
    hdr[126] = 'I';
    hdr[127] = 'M';
    put(&f, hdr, 128);
    uint32_t flags[2] = {1 /* mxCELL */, 0};
    put_elem(&m, 6 /* miUINT32 */, flags, 8);
    put_elem(&m, 5 /* miINT32 */, dims, 12);
    put_elem(&m, 1 /* miINT8 */, "filelist", 8);
    put_elem(&f, 14 /* miMATRIX */, m.p, m.n);
    tu_write_file(path, f.p, f.n);
    free(m.p);
    free(f.p);
}

/* Found by tests/fuzz/fuzz_matv5: a cell whose dimensions multiply past int64 (signed overflow,
 * undefined behaviour), and a cell claiming 2^30 elements in a 200-byte file (the reader
 * allocated and then walked 2^30 string pointers, seconds per file). Both are format errors
 * found before any allocation. */
Test(cuhk03_bad, new_protocol_config_with_impossible_cell_sizes)
{
    const char *mat = tu_path("cuhk-03.mat");
    drsch_error err;
    ds_dataset *d = load_small_cuhk03(mat);
    const char *cfg = tu_path("cuhk03_new_protocol_config_labeled.mat");
    const int32_t overflow[3] = {INT32_MAX, INT32_MAX, INT32_MAX}, huge[3] = {1 << 30, 1, 1};
    const int32_t *cases[2] = {overflow, huge};
    for (int c = 0; c < 2; c++) {
        write_v5_empty_cell(cfg, cases[c]);
        ds_split sp;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_ERR_FORMAT, "case %d: %s", c,
                     err.msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        cr_expect_lt(secs, 1.0, "case %d took %.2f s", c, secs);
    }
    ds_dataset_free(d);
}

/* Found by tests/fuzz/fuzz_matv5: a 'filelist' string stored as doubles holding NaN was
 * converted to char through int (undefined behaviour); such characters now read as '?'. */
Test(cuhk03_bad, new_protocol_filelist_with_nan_characters)
{
    const char *mat = tu_path("cuhk-03.mat");
    drsch_error err;
    ds_dataset *d = load_small_cuhk03(mat);
    bytes f = {0}, m = {0}, c = {0};
    char hdr[128];
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, "MATLAB 5.0 MAT-file, written by the drsch tests", 47);
    hdr[124] = 0x00;
    hdr[125] = 0x01;
    hdr[126] = 'I';
    hdr[127] = 'M';
    put(&f, hdr, 128);
    put_matrix_header(&c, 4 /* mxCHAR */, 1, 3, "");
    const double chars[3] = {NAN, 'A', 1e300};
    put_elem(&c, 9 /* miDOUBLE */, chars, sizeof chars);
    put_matrix_header(&m, 1 /* mxCELL */, 1, 1, "filelist");
    put_elem(&m, 14, c.p, c.n);
    put_elem(&f, 14, m.p, m.n);
    const double one[1] = {1};
    put_doubles(&f, "query_idx", one, 1);
    put_doubles(&f, "gallery_idx", one, 1);
    put_doubles(&f, "train_idx", one, 1);
    const char *cfg = tu_path("cuhk03_new_protocol_config_labeled.mat");
    tu_write_file(cfg, f.p, f.n);
    free(c.p), free(m.p), free(f.p);
    ds_split sp;
    cr_assert_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_ERR_FORMAT, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "'?A?'"), "%s", err.msg);
    ds_dataset_free(d);
}

/* ------------------------- CUHK03: sizes declared by dataset headers, bounded first --------- */

#include <sys/resource.h>

/* Creates dataset `name` under loc: chunked by `chunk` (NULL: contiguous), deflate-compressed
 * if `deflate`, its storage allocated only when written if `late`; writes `data` unless NULL
 * (then nothing is stored: the dataset declares its shape and holds no element). */
static void crafted_put(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                        const hsize_t *chunk, int deflate, int late, const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert_geq(sp, 0);
    if (chunk)
        cr_assert_geq(H5Pset_chunk(dcpl, rank, chunk), 0);
    if (deflate)
        cr_assert_geq(H5Pset_deflate(dcpl, 9), 0);
    if (late)
        cr_assert_geq(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE), 0);
    hid_t ds = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(ds, 0, "cannot create %s", name);
    if (data)
        cr_assert_geq(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

enum {
    CR_VALID,         /* loads: 10 images of 2 x 2 */
    CR_HUGE_SIDE,     /* slot 1: 50000 x 40000 x 3 declared, chunked, nothing written */
    CR_UNSTORED,      /* slot 1: 3000 x 4000 x 3 (sides accepted), contiguous, never allocated */
    CR_COMPRESSED,    /* slot 1: 300 x 200 x 3 of one value, deflate 9: about 1000:1, loads */
    CR_CELL_REFS,     /* the pair's cell: 10 x 2^28 references declared, none stored */
    CR_TOP_REFS,      /* 'labeled': 1 x 2^30 references declared, none stored */
    CR_TESTSETS_ROWS, /* 'testsets': 1000 entries, all one unwritten 2 x 1000000 dataset */
    CR_TESTSET_EMPTY, /* 'testsets': one 2 x 1 dataset never allocated */
};

/* A cuhk-03.mat of one pair of one person (slots: 3 x 2 x 2 uint8 images) whose headers declare
 * more than the file stores, as `kind` says. */
static void write_cuhk03_crafted(const char *path, int kind)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t g = H5Gcreate2(f, "#refs#", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t px[12];
    memset(px, 77, sizeof px);
    hobj_ref_t slots[10], pair;
    const hsize_t d3[3] = {3, 2, 2}, d10[2] = {10, 1}, d1[2] = {1, 1};
    for (int s = 0; s < 10; s++) {
        char name[32];
        snprintf(name, sizeof name, "/#refs#/i%d", s);
        if (s == 0 && kind == CR_HUGE_SIDE) {
            const hsize_t dims[3] = {3, 40000, 50000}, chunk[3] = {3, 64, 64};
            crafted_put(f, name, H5T_NATIVE_UINT8, 3, dims, chunk, 1, 0, NULL);
        } else if (s == 0 && kind == CR_UNSTORED) {
            const hsize_t dims[3] = {3, 4000, 3000};
            crafted_put(f, name, H5T_NATIVE_UINT8, 3, dims, NULL, 0, 1, NULL);
        } else if (s == 0 && kind == CR_COMPRESSED) {
            const hsize_t dims[3] = {3, 200, 300};
            uint8_t *big = malloc((size_t)3 * 200 * 300);
            cr_assert_not_null(big);
            memset(big, 9, (size_t)3 * 200 * 300);
            crafted_put(f, name, H5T_NATIVE_UINT8, 3, dims, dims, 1, 0, big);
            free(big);
        } else {
            crafted_put(f, name, H5T_NATIVE_UINT8, 3, d3, NULL, 0, 0, px);
        }
        cr_assert_geq(H5Rcreate(&slots[s], f, name, H5R_OBJECT, -1), 0);
    }
    if (kind == CR_CELL_REFS) {
        const hsize_t dims[2] = {10, (hsize_t)1 << 28}, chunk[2] = {10, 1024};
        crafted_put(f, "/#refs#/cell", H5T_STD_REF_OBJ, 2, dims, chunk, 0, 0, NULL);
    } else {
        crafted_put(f, "/#refs#/cell", H5T_STD_REF_OBJ, 2, d10, NULL, 0, 0, slots);
    }
    cr_assert_geq(H5Rcreate(&pair, f, "/#refs#/cell", H5R_OBJECT, -1), 0);
    if (kind == CR_TOP_REFS) {
        const hsize_t dims[2] = {1, (hsize_t)1 << 30}, chunk[2] = {1, 4096};
        crafted_put(f, "labeled", H5T_STD_REF_OBJ, 2, dims, chunk, 0, 0, NULL);
    } else {
        crafted_put(f, "labeled", H5T_STD_REF_OBJ, 2, d1, NULL, 0, 0, &pair);
    }
    if (kind == CR_TESTSETS_ROWS || kind == CR_TESTSET_EMPTY) {
        hobj_ref_t trefs[1000];
        int nt = kind == CR_TESTSETS_ROWS ? 1000 : 1;
        const hsize_t dims[2] = {2, kind == CR_TESTSETS_ROWS ? 1000000 : 1}, chunk[2] = {2, 4096};
        crafted_put(f, "/#refs#/ts", H5T_NATIVE_DOUBLE, 2, dims,
                    kind == CR_TESTSETS_ROWS ? chunk : NULL, 0, 1, NULL);
        for (int t = 0; t < nt; t++)
            cr_assert_geq(H5Rcreate(&trefs[t], f, "/#refs#/ts", H5R_OBJECT, -1), 0);
        const hsize_t dt[2] = {1, (hsize_t)nt};
        crafted_put(f, "testsets", H5T_STD_REF_OBJ, 2, dt, NULL, 0, 0, trefs);
    }
    H5Gclose(g);
    cr_assert_geq(H5Fclose(f), 0);
}

/* The reader allocated what headers declared before checking it: images up to 100000 pixels a
 * side (30 GB), any number of references, 'testsets' entries x rows; an HDF5 dataset declares
 * any shape while storing nothing, so a few-KB file asked for gigabytes (a libFuzzer finding
 * waiting to happen: ci/fuzz fails on any malloc over 2 GB). Every such size is now checked,
 * against a plausibility limit and against what the dataset stores, before allocating; loads
 * run here with the address space limited to 256 MB more than the process uses. */
Test(cuhk03_bad, declared_sizes_bounded_by_what_the_file_stores)
{
    const char *mat = tu_path("cuhk-03.mat");
    ds_dataset *d = NULL;
    drsch_error err;
    /* valid files load (and HDF5 is initialised) before the limit */
    write_cuhk03_crafted(mat, CR_VALID);
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 10);
    ds_dataset_free(d);
    /* a compressed image of one value, near deflate's maximal ratio, is not mistaken for one
     * declaring more than it stores */
    write_cuhk03_crafted(mat, CR_COMPRESSED);
    cr_assert_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(d->n, 10);
    ds_dataset_free(d);
    d = NULL;

    struct rlimit rl = {tu_vm_size() + ((size_t)256 << 20), RLIM_INFINITY};
    cr_assert_gt(rl.rlim_cur, (size_t)256 << 20, "no VmSize in /proc/self/status");
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    static const struct {
        int kind;
        const char *want;
    } cases[] = {
        {CR_HUGE_SIDE, "labeled{1}(1, 1): image declares 50000x40000x3 pixels (height x width x "
                       "channels); images "
                       "larger than 4096 pixels a side are refused"},
        {CR_UNSTORED, "labeled{1}(1, 1): image declares 3000x4000x3 pixels (36000000 bytes) but "
                      "its dataset stores "
                      "only 0 bytes"},
        {CR_CELL_REFS,
         "labeled{1} declares 10 x 268435456 references (21474836480 bytes) but its dataset stores "
         "only 0 bytes"},
        {CR_TOP_REFS, "'labeled' declares 1 x 1073741824 references (8589934592 bytes) but its "
                      "dataset stores only "
                      "0 bytes"},
        {CR_TESTSETS_ROWS, "testsets{1} has 1000000 rows, more than the 1 persons of 'labeled'"},
        {CR_TESTSET_EMPTY,
         "testsets{1} declares 2 x 1 numbers but its dataset stores only 0 bytes"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_cuhk03_crafted(mat, cases[c].kind);
        cr_expect_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_ERR_FORMAT, "case %zu: %s", c,
                     err.msg);
        cr_expect_null(d);
        char want[512];
        snprintf(want, sizeof want, "%s: %s", mat, cases[c].want);
        cr_expect(strstr(err.msg, want), "case %zu: %s", c, err.msg);
        cr_expect_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0,
                     "case %zu: HDF5 objects left open", c);
    }
    /* and a valid file still loads under the limit */
    write_cuhk03_crafted(mat, CR_VALID);
    cr_expect_eq(ds_load_cuhk03(mat, 0, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    ds_dataset_free(d);
}

/* A compressed element of a MAT v5 config file was inflated into buffers growing 4x until one
 * was large enough or passed 1 GiB: a zlib bomb of a few hundred KB (300 MB of zeros) made the
 * reader ask for 1.2 GB, 4.8 GB for a 1 MB file. Growth now stops at 1032 x the compressed size
 * (deflate's maximal ratio) and at 64 MB, far above the 767/700 config files' 1.5 MB. */
Test(cuhk03_bad, new_protocol_config_zlib_bomb_refused_before_allocating)
{
    const char *mat = tu_path("cuhk-03.mat");
    drsch_error err;
    ds_dataset *d = load_small_cuhk03(mat);
    /* 300 MB of zeros, deflated to about 290 KB */
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15, 8, Z_RLE),
                 Z_OK); /* fast, same ratio on zeros */
    size_t zcap = (size_t)1 << 20, zn = 0;
    uint8_t *zbuf = malloc(zcap), *zeros = calloc(1, (size_t)1 << 20);
    cr_assert(zbuf && zeros);
    for (int k = 0; k < 300; k++) {
        z.next_in = zeros;
        z.avail_in = 1u << 20;
        int flush = k == 299 ? Z_FINISH : Z_NO_FLUSH, zr;
        do {
            z.next_out = zbuf + zn;
            z.avail_out = (uInt)(zcap - zn);
            zr = deflate(&z, flush);
            zn = zcap - z.avail_out;
            cr_assert(zn < zcap, "deflated stream larger than expected");
        } while (z.avail_in > 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    }
    deflateEnd(&z);
    free(zeros);
    bytes f = {0};
    char hdr[128];
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, "MATLAB 5.0 MAT-file, written by the drsch tests", 47);
    hdr[124] = 0x00;
    hdr[125] = 0x01;
    hdr[126] = 'I';
    hdr[127] = 'M';
    put(&f, hdr, 128);
    put_elem(&f, 15 /* miCOMPRESSED */, zbuf, zn);
    const char *cfg = tu_path("cuhk03_new_protocol_config_labeled.mat");
    tu_write_file(cfg, f.p, f.n);
    free(f.p);
    free(zbuf);

    struct rlimit rl = {tu_vm_size() + ((size_t)256 << 20), RLIM_INFINITY};
    cr_assert_gt(rl.rlim_cur, (size_t)256 << 20, "no VmSize in /proc/self/status");
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    ds_split sp;
    cr_expect_eq(ds_split_cuhk03_new(d, cfg, &sp, &err), DRSCH_ERR_FORMAT, "%s", err.msg);
    char want[256];
    snprintf(want, sizeof want,
             "%s: a compressed element of %zu bytes inflates to more than 67108864 bytes", cfg, zn);
    cr_expect(strstr(err.msg, want), "%s", err.msg);
    ds_dataset_free(d);
}
