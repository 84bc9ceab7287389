/* drsch search and drsch train under mpirun.
 *
 * Search: the database searched in slices, one per rank (harness/dist.c,
 * cmd_search_slices.c). For 1, 2 and 3 ranks, plain and weighted (float weights with ties),
 * 64-bit codes and codes of 5 bytes searched at 37 bits, over databases of a few distinct codes
 * (equal distances across every slice boundary), the output files are byte-identical to the
 * one-process run's; --db-shards gives the bytes of --db; ranks with fewer rows than k; a
 * truncated shard on one rank ends every rank (no hang) with one message naming it.
 *
 * Train: data parallel (tr_train_parallel) on a synthetic MNIST; 1 rank writes the bytes of one
 * process, 2 and 3 follow it to within the order of the floating-point sums, --resume under
 * mpirun equals an uninterrupted run, a rank with corrupt data ends every rank with one
 * message. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture_cuhk03.h"
#include "nn.h"
#include "nn_internal.h" /* nn_onednn_avx512 */
#include "npy.h"
#include "test_util.h"

static void make_tmpdir(void) { tu_tmpdir_make("mpi"); }

TestSuite(mpi, .init = make_tmpdir, .fini = tu_tmpdir_remove, .timeout = 300);

/* mpirun with what running as root and 3 ranks on 2 cores need, under a timeout of `seconds`.
 * Its session directory goes under the test's own folder: two workers run tests at once, and two
 * mpiruns sharing the default one (/tmp/ompi.HOST.UID) collided on it once, in the sanitizer
 * pass of a fresh-clone run of the test command ("A call to mkdir was unable to create the desired
 * directory: /tmp/ompi.vm.0 ... File exists", orte_init failed). */
static const char *mpirun_for(int seconds)
{
    static char cmd[2048];
    const char *exe = getenv("DRSCH_MPIEXEC");
    cr_assert_not_null(exe, "DRSCH_MPIEXEC is set by CTest");
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 OMPI_MCA_orte_tmpdir_base=%s timeout %d %s --allow-run-as-root "
             "--oversubscribe",
             tu_tmpdir, seconds, exe);
    return cmd;
}

/* The same under a 60 s timeout (a hang shows as exit status 124); the experiments, which train
 * models, take mpirun_for(300). */
static const char *mpirun(void) { return mpirun_for(60); }

/* n codes of rb bytes, each one of 4 distinct rows (ties everywhere), rows [r0, r1) saved. */
static void write_codes(const char *path, size_t n, size_t rb, size_t r0, size_t r1, uint32_t seed)
{
    uint8_t vals[4][8], *bytes = malloc(n * rb + 1);
    for (size_t v = 0; v < 4; v++)
        for (size_t b = 0; b < 8; b++)
            vals[v][b] = (uint8_t)((v * 73 + b * 151 + seed) * 2654435761u >> 24);
    for (size_t i = 0; i < n; i++)
        memcpy(bytes + i * rb, vals[(i * 7919 + seed) % 4], rb);
    size_t shape[2] = {r1 - r0, rb};
    drsch_error err;
    cr_assert_eq(npy_save(path, NPY_U8, 2, shape, bytes + r0 * rb, &err), DRSCH_OK, "%s", err.msg);
    free(bytes);
}

static void write_weights(const char *path, size_t bits)
{
    float w[64];
    for (size_t i = 0; i < bits; i++)
        w[i] = i % 3 ? 0.5f : 1.75f; /* equal weights: ties among weighted distances */
    size_t shape[1] = {bits};
    drsch_error err;
    cr_assert_eq(npy_save(path, NPY_F32, 1, shape, w, &err), DRSCH_OK, "%s", err.msg);
}

/* The three output files of prefixes a and b are the same bytes. */
static void expect_same(const char *a, const char *b, const char *what)
{
    static const char *ext[] = {".indices.npy", ".distances.npy", ".manifest"};
    for (int e = 0; e < 3; e++) {
        char pa[512], pb[512], out[256];
        snprintf(pa, sizeof pa, "%s%s", tu_path(a), ext[e]);
        snprintf(pb, sizeof pb, "%s%s", tu_path(b), ext[e]);
        int rc = tu_run(out, sizeof out, "cmp %s %s", pa, pb);
        cr_assert_eq(rc, 0, "%s: %s%s differs: %s", what, b, ext[e], out);
    }
}

/* Counts the lines of out that begin with "drsch <cmd>:". */
static int drsch_lines(const char *out, const char *cmd)
{
    char lead[32];
    snprintf(lead, sizeof lead, "drsch %s:", cmd);
    int n = 0;
    for (const char *p = out; (p = strstr(p, lead)); p++)
        n += p == out || p[-1] == '\n';
    return n;
}

Test(mpi, every_rank_count_writes_the_bytes_of_one_process)
{
    static char out[8192];
    const size_t widths[] = {8, 5};
    const char *bits[] = {"", "--bits 37"};
    for (int wi = 0; wi < 2; wi++) {
        write_codes(tu_path("db.npy"), 5000, widths[wi], 0, 5000, 1);
        write_codes(tu_path("q.npy"), 30, widths[wi], 0, 30, 2);
        write_weights(tu_path("w.npy"), widths[wi] * 8);
        for (int weighted = 0; weighted < 2; weighted++) {
            char flags[256];
            snprintf(flags, sizeof flags, "--db %s --queries %s --k 120 %s %s%s", tu_path("db.npy"),
                     tu_path("q.npy"), bits[wi], weighted ? "--weights " : "",
                     weighted ? tu_path("w.npy") : "");
            int rc =
                tu_run(out, sizeof out, "%s search %s --out %s", tu_exe(), flags, tu_path("one"));
            cr_assert_eq(rc, 0, "%s", out);
            for (int p = 1; p <= 3; p++) {
                char what[64];
                snprintf(what, sizeof what, "%zu bytes, weighted %d, %d ranks", widths[wi],
                         weighted, p);
                rc = tu_run(out, sizeof out, "%s -n %d %s search %s --out %s", mpirun(), p,
                            tu_exe(), flags, tu_path("many"));
                cr_assert_eq(rc, 0, "%s: %s", what, out);
                char line[64];
                snprintf(line, sizeof line, "ranks=%d (slices of", p);
                cr_assert(strstr(out, line), "%s: one timing line from rank 0: %s", what, out);
                cr_assert_eq(drsch_lines(out, "search"), 1, "%s: %s", what, out);
                expect_same("one", "many", what);
            }
        }
    }
}

/* MPI is drsch's MPI module, loaded only under mpirun: found beside libdrsch.so when
 * DRSCH_MODULE_DIR is not set, and when it is missing every rank ends with a message naming it
 * (no hang). */
Test(mpi, the_mpi_module_is_found_or_named)
{
    static char out[8192];
    write_codes(tu_path("db.npy"), 500, 8, 0, 500, 1);
    write_codes(tu_path("q.npy"), 10, 8, 0, 10, 2);
    int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 20 --out %s", tu_exe(),
                    tu_path("db.npy"), tu_path("q.npy"), tu_path("one"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "env -u DRSCH_MODULE_DIR %s -n 2 %s search --db %s --queries %s "
                "--k 20 --out %s",
                mpirun(), tu_exe(), tu_path("db.npy"), tu_path("q.npy"), tu_path("many"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "ranks=2 (slices of"), "%s", out);
    expect_same("one", "many", "the module found beside libdrsch.so");
    cr_assert_eq(mkdir(tu_path("nomodules"), 0755), 0);
    rc = tu_run(out, sizeof out,
                "DRSCH_MODULE_DIR=%s %s -n 2 %s search --db %s --queries %s "
                "--k 20 --out %s",
                tu_path("nomodules"), mpirun(), tu_exe(), tu_path("db.npy"), tu_path("q.npy"),
                tu_path("none"));
    cr_assert(rc != 0 && rc != 124, "%s", out);
    cr_assert(strstr(out, "drsch search: MPI could not start: ") && strstr(out, "dist_mpi.so") &&
                  strstr(out, "nomodules"),
              "%s", out);
    rc = tu_run(out, sizeof out, "test -e %s.indices.npy", tu_path("none"));
    cr_assert_neq(rc, 0, "nothing written");
}

/* --db-shards (uneven shards, one with fewer rows than k) gives the bytes of --db, under mpirun
 * and, for one shard, without it. */
Test(mpi, db_shards_write_the_bytes_of_db)
{
    static char out[8192];
    const size_t cut[] = {0, 2100, 2150, 5000};
    write_codes(tu_path("db.npy"), 5000, 8, 0, 5000, 3);
    write_codes(tu_path("q.npy"), 20, 8, 0, 20, 4);
    write_weights(tu_path("w.npy"), 64);
    for (int s = 0; s < 3; s++) {
        char name[32];
        snprintf(name, sizeof name, "db.%d.npy", s);
        write_codes(tu_path(name), 5000, 8, cut[s], cut[s + 1], 3);
    }
    write_codes(tu_path("solo.0.npy"), 5000, 8, 0, 5000, 3);
    for (int weighted = 0; weighted < 2; weighted++) {
        char wp[512]; /* tu_path's buffers rotate */
        const char *w = weighted ? "--weights " : "";
        snprintf(wp, sizeof wp, "%s", weighted ? tu_path("w.npy") : "");
        int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 80 %s%s --out %s",
                        tu_exe(), tu_path("db.npy"), tu_path("q.npy"), w, wp, tu_path("one"));
        cr_assert_eq(rc, 0, "%s", out);
        rc = tu_run(out, sizeof out,
                    "%s -n 3 %s search --db-shards %s/db.%%d.npy --queries %s "
                    "--k 80 %s%s --out %s",
                    mpirun(), tu_exe(), tu_tmpdir, tu_path("q.npy"), w, wp, tu_path("shards"));
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, "ranks=3 (slices of 50 to 2850 codes)"), "%s", out);
        expect_same("one", "shards", weighted ? "--db-shards, weighted" : "--db-shards");
        /* one process, one shard */
        rc = tu_run(out, sizeof out,
                    "%s search --db-shards %s/solo.%%d.npy --queries %s --k 80 "
                    "%s%s --out %s",
                    tu_exe(), tu_tmpdir, tu_path("q.npy"), w, wp, tu_path("solo"));
        cr_assert_eq(rc, 0, "%s", out);
        expect_same("one", "solo", "--db-shards without mpirun");
    }
}

/* A database of 5 codes on 3 ranks with k = 5: every slice (2, 2, 1) has fewer rows than k. */
Test(mpi, slices_smaller_than_k)
{
    static char out[8192];
    write_codes(tu_path("tiny.npy"), 5, 8, 0, 5, 5);
    write_codes(tu_path("q.npy"), 9, 8, 0, 9, 6);
    int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 5 --out %s", tu_exe(),
                    tu_path("tiny.npy"), tu_path("q.npy"), tu_path("one"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s -n 3 %s search --db %s --queries %s --k 5 --out %s", mpirun(),
                tu_exe(), tu_path("tiny.npy"), tu_path("q.npy"), tu_path("many"));
    cr_assert_eq(rc, 0, "%s", out);
    expect_same("one", "many", "slices smaller than k");
    rc = tu_run(out, sizeof out, "%s -n 3 %s search --db %s --queries %s --k 6 --out %s", mpirun(),
                tu_exe(), tu_path("tiny.npy"), tu_path("q.npy"), tu_path("many"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "drsch search: --k 6 is larger than the database (5 codes in "), "%s",
              out);
}

/* A truncated shard on rank 1: every rank exits (no hang: not the timeout's 124), non-zero, with
 * one message from rank 0 naming rank 1 and the file. A shard count that is not the rank count
 * and shards of different widths are refused by name. */
Test(mpi, a_failing_rank_ends_every_rank_with_one_message)
{
    static char out[8192];
    write_codes(tu_path("q.npy"), 10, 8, 0, 10, 4);
    for (int s = 0; s < 3; s++) {
        char name[32];
        snprintf(name, sizeof name, "db.%d.npy", s);
        write_codes(tu_path(name), 300, 8, (size_t)s * 100, (size_t)s * 100 + 100, 3);
    }
    size_t len;
    char *img = tu_slurp(tu_path("db.1.npy"), &len);
    tu_write_file(tu_path("db.1.npy"), img, len - 100);
    free(img);
    int rc = tu_run(out, sizeof out,
                    "%s -n 3 %s search --db-shards %s/db.%%d.npy --queries %s "
                    "--k 10 --out %s",
                    mpirun(), tu_exe(), tu_tmpdir, tu_path("q.npy"), tu_path("f"));
    cr_assert_neq(rc, 124, "a rank hung: %s", out);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, "drsch search: rank 1: ") && strstr(out, "db.1.npy: truncated .npy"),
              "%s", out);
    cr_assert_eq(drsch_lines(out, "search"), 1, "one message: %s", out);
    rc = tu_run(out, sizeof out, "test -e %s.indices.npy", tu_path("f"));
    cr_assert_neq(rc, 0, "nothing written");

    /* 3 shard files for 2 ranks, then for 4 */
    rc = tu_run(out, sizeof out,
                "%s -n 2 %s search --db-shards %s/db.%%d.npy --queries %s "
                "--k 10 --out %s",
                mpirun(), tu_exe(), tu_tmpdir, tu_path("q.npy"), tu_path("f"));
    cr_assert(rc != 0 && rc != 124, "%s", out);
    cr_assert(strstr(out, "db.2.npy exists, but there are 2 ranks"), "%s", out);
    cr_assert_eq(drsch_lines(out, "search"), 1, "one message: %s", out);
    rc = tu_run(out, sizeof out,
                "%s -n 4 %s search --db-shards %s/db.%%d.npy --queries %s "
                "--k 10 --out %s",
                mpirun(), tu_exe(), tu_tmpdir, tu_path("q.npy"), tu_path("f"));
    cr_assert(rc != 0 && rc != 124, "%s", out);
    cr_assert(strstr(out, "drsch search: rank 3: --db-shards ") && strstr(out, "db.3.npy: no such"),
              "%s", out);

    /* shard 1 of 4-byte codes among 8-byte ones */
    write_codes(tu_path("db.1.npy"), 300, 4, 100, 200, 3);
    rc = tu_run(out, sizeof out,
                "%s -n 3 %s search --db-shards %s/db.%%d.npy --queries %s "
                "--k 10 --out %s",
                mpirun(), tu_exe(), tu_tmpdir, tu_path("q.npy"), tu_path("f"));
    cr_assert(rc != 0 && rc != 124, "%s", out);
    cr_assert(strstr(out, "the shards' codes differ in width: ") &&
                  strstr(out, "db.0.npy has 8 bytes per code, ") && strstr(out, "db.1.npy has 4"),
              "%s", out);
    cr_assert_eq(drsch_lines(out, "search"), 1, "one message: %s", out);
}

/* ---- drsch train under mpirun: data parallel (tr_train_parallel) ---- */

/* A synthetic MNIST of 600 + 60 images in tu_tmpdir/data (tu_write_idx_split). */
static void write_mnist(void)
{
    char out[256];
    cr_assert_eq(tu_run(out, sizeof out, "mkdir -p %s", tu_path("data")), 0, "%s", out);
    tu_write_idx_split(tu_path("data"), "train", 600, 5, 63);
    tu_write_idx_split(tu_path("data"), "t10k", 60, 5, 63);
}

#define DP_ITERS 20
#define DP_FLAGS "--protocol full --iters 20 --log-every 1 --threads 1"

/* The loss of each progress line ("iter      3/20  loss 23.9988 ..."), DP_ITERS of them. */
static void losses(const char *out, double *loss)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, "iter ")) && n < DP_ITERS; p++) {
        int it, iters;
        double l;
        if (sscanf(p, "iter %d/%d loss %lf", &it, &iters, &l) == 3 && it == n + 1)
            loss[n++] = l;
    }
    cr_assert_eq(n, DP_ITERS, "a progress line per iteration: %s", out);
}

/* The parameters of a model file, in the plain layout; their count in *n. */
static float *model_params(const char *path, size_t *n)
{
    nn_net *net = NULL;
    drsch_error err;
    cr_assert_eq(nn_model_load(&net, path, 1, 0, &err), DRSCH_OK, "%s", err.msg);
    *n = nn_params_plain_size(net);
    float *p = malloc(sizeof(float) * *n);
    cr_assert_eq(nn_params_export(net, p, *n, &err), DRSCH_OK, "%s", err.msg);
    nn_net_free(net);
    return p;
}

static void expect_same_files(const char *a, const char *b, const char *what)
{
    char out[256];
    cr_assert_eq(tu_run(out, sizeof out, "cmp %s %s", tu_path(a), tu_path(b)), 0, "%s: %s", what,
                 out);
}

/* One rank under mpirun writes the bytes of one process. Two and three ranks, sharing each batch
 * of 100 images (50 / 50, 34 / 33 / 33), follow one process to within the order of the
 * floating-point sums: over the first 20 iterations the losses agree to 1e-4 (relative) and the
 * parameters after them to 1e-6 of their largest magnitude. (Later the runs drift apart as runs
 * of one process on 1 and 2 threads do: SGD on this objective amplifies rounding.) Rank 0 alone
 * prints: one header, one progress line per iteration, one last line. */
Test(mpi, data_parallel_training_follows_one_process)
{
    static char out[65536];
    write_mnist();
    double one[DP_ITERS], many[DP_ITERS];
    int rc = tu_run(out, sizeof out,
                    "OMP_NUM_THREADS=1 %s train --dataset mnist:%s " DP_FLAGS " --out %s", tu_exe(),
                    tu_path("data"), tu_path("one.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    losses(out, one);
    size_t n;
    float *ref = model_params(tu_path("one.bin"), &n);
    float top = 0;
    for (size_t i = 0; i < n; i++)
        top = fabsf(ref[i]) > top ? fabsf(ref[i]) : top;
    for (int p = 1; p <= 3; p++) {
        rc = tu_run(out, sizeof out, "%s -n %d %s train --dataset mnist:%s " DP_FLAGS " --out %s",
                    mpirun(), p, tu_exe(), tu_path("data"), tu_path("many.bin"));
        cr_assert_eq(rc, 0, "%d ranks: %s", p, out);
        losses(out, many);
        char ranks[32];
        snprintf(ranks, sizeof ranks, "%d rank%s x 1 thread,", p, p == 1 ? "" : "s");
        cr_assert(strstr(out, ranks), "%d ranks: the header says so: %s", p, out);
        cr_assert_eq(drsch_lines(out, "train"), 2, "%d ranks: one header, one end: %s", p, out);
        cr_assert_null(strstr(strstr(out, "iter     20/20") + 1, "iter     20/20"),
                       "%d ranks: progress from rank 0 only: %s", p, out);
        for (int i = 0; i < DP_ITERS; i++)
            cr_expect_leq(fabs(many[i] - one[i]), 1e-4 * fabs(one[i]),
                          "%d ranks, iteration %d: loss %.6f, one process %.6f", p, i + 1, many[i],
                          one[i]);
        if (p == 1) {
            expect_same_files("one.bin", "many.bin", "1 rank");
            expect_same_files("one.bin.state", "many.bin.state", "1 rank");
            continue;
        }
        size_t m;
        float *got = model_params(tu_path("many.bin"), &m);
        cr_assert_eq(m, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)got[i] - ref[i]));
        cr_expect_leq(worst, 1e-6 * top, "%d ranks: parameters differ by up to %g (largest %g)", p,
                      worst, top);
        printf("%d ranks: parameters within %.3g of one process's (largest %.3g)\n", p, worst, top);
        free(got);
    }
    free(ref);
}

/* --replicas under mpirun: each rank's rows shared again by its replicas. Two ranks of two
 * replicas compute the four quarters of each batch that one process of four replicas computes,
 * and follow it to within the order of the gradient sums ((g0 + g1) + (g2 + g3) against
 * ((g0 + g1) + g2) + g3), as two ranks follow one process above. */
Test(mpi, data_parallel_replicas_follow_one_process_of_as_many)
{
    static char out[65536];
    write_mnist();
    double one[DP_ITERS], many[DP_ITERS];
    int rc =
        tu_run(out, sizeof out, "%s train --dataset mnist:%s " DP_FLAGS " --replicas 4 --out %s",
               tu_exe(), tu_path("data"), tu_path("one.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    losses(out, one);
    rc = tu_run(out, sizeof out,
                "%s -n 2 %s train --dataset mnist:%s " DP_FLAGS " --replicas 2 --out %s", mpirun(),
                tu_exe(), tu_path("data"), tu_path("many.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "2 ranks x 1 thread (2 replicas)"), "the header says so: %s", out);
    losses(out, many);
    for (int i = 0; i < DP_ITERS; i++)
        cr_expect_leq(fabs(many[i] - one[i]), 1e-4 * fabs(one[i]),
                      "iteration %d: loss %.6f, one process %.6f", i + 1, many[i], one[i]);
    size_t n, m;
    float *ref = model_params(tu_path("one.bin"), &n), *got = model_params(tu_path("many.bin"), &m);
    cr_assert_eq(m, n);
    double worst = 0, top = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)got[i] - ref[i]));
        top = fmax(top, fabs((double)ref[i]));
    }
    cr_expect_leq(worst, 1e-6 * top, "parameters differ by up to %g (largest %g)", worst, top);
    free(ref);
    free(got);
}

/* --resume under mpirun: 10 iterations, then resumed to 20, give the bytes of 20 in one run. */
Test(mpi, data_parallel_resume_equals_an_uninterrupted_run)
{
    static char out[65536];
    write_mnist();
    int rc = tu_run(out, sizeof out, "%s -n 2 %s train --dataset mnist:%s " DP_FLAGS " --out %s",
                    mpirun(), tu_exe(), tu_path("data"), tu_path("whole.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(
        out, sizeof out,
        "%s -n 2 %s train --dataset mnist:%s --protocol full --iters 10 --threads 1 --out %s",
        mpirun(), tu_exe(), tu_path("data"), tu_path("part.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s -n 2 %s train --dataset mnist:%s " DP_FLAGS " --resume %s --out %s", mpirun(),
                tu_exe(), tu_path("data"), tu_path("part.bin"), tu_path("part.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    expect_same_files("whole.bin", "part.bin", "resumed under mpirun");
    expect_same_files("whole.bin.state", "part.bin.state", "resumed under mpirun");
}

/* A rank whose data is corrupt (its own --dataset: mpirun's MPMD form) ends every rank, non-zero
 * and without a hang, with one message naming the rank and the file; a batch smaller than the
 * ranks is refused by every rank alike. Nothing is written. */
Test(mpi, data_parallel_failing_rank_ends_every_rank)
{
    static char out[65536];
    write_mnist();
    int rc = tu_run(out, sizeof out, "mkdir -p %s && cp %s/* %s", tu_path("bad"), tu_path("data"),
                    tu_path("bad"));
    cr_assert_eq(rc, 0, "%s", out);
    char imgs[600];
    snprintf(imgs, sizeof imgs, "%s/train-images-idx3-ubyte", tu_path("bad"));
    size_t len;
    char *img = tu_slurp(imgs, &len);
    tu_write_file(imgs, img, len - 1000);
    free(img);
    char good[600];
    snprintf(good, sizeof good, "%s", tu_path("data"));
    rc = tu_run(out, sizeof out,
                "%s -n 1 %s train --dataset mnist:%s " DP_FLAGS " --out %s : -n 1 %s train "
                "--dataset mnist:%s " DP_FLAGS " --out %s",
                mpirun(), tu_exe(), good, tu_path("f.bin"), tu_exe(), tu_path("bad"),
                tu_path("f.bin"));
    cr_assert(rc != 0 && rc != 124, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "drsch train: rank 1: ") && strstr(out, "train-images-idx3-ubyte"), "%s",
              out);
    cr_assert_eq(drsch_lines(out, "train"), 1, "one message: %s", out);
    cr_assert_neq(tu_run(out, sizeof out, "test -e %s", tu_path("f.bin")), 0, "nothing written");

    rc = tu_run(out, sizeof out,
                "%s -n 5 %s train --dataset mnist:%s --protocol full --classes 2 --per-class 2 "
                "--iters 5 --out %s",
                mpirun(), tu_exe(), tu_path("data"), tu_path("f.bin"));
    cr_assert(rc != 0 && rc != 124, "rc %d: %s", rc, out);
    cr_assert(
        strstr(out,
               "a batch of 4 images (--classes 2 x --per-class 2) cannot be shared by 5 ranks"),
        "%s", out);
    cr_assert_eq(drsch_lines(out, "train"), 1, "one message: %s", out);
}

/* ---- drsch bench hamming under mpirun ---- */

/* The value of the first "results_crc32" of a report, and that every one is the same. */
static double results_crc(const char *json)
{
    char *text = tu_slurp(json, NULL);
    const char *p = strstr(text, "\"results_crc32\":");
    cr_assert_not_null(p, "%s has no results_crc32: %s", json, text);
    double v = strtod(p + strlen("\"results_crc32\":"), NULL);
    while ((p = strstr(p + 1, "\"results_crc32\":")))
        cr_assert_eq(strtod(p + strlen("\"results_crc32\":"), NULL), v, "%s: one result", json);
    free(text);
    return v;
}

/* Sharded over 1, 2 and 3 ranks (strong: one database split; weak: --per-rank, a database of
 * n P codes), plain and weighted at 37 bits, the merged results are those of the one-process
 * benchmark over the same database (the CRC-32 of indices and distances), and the report has the
 * merge and per-rank figures. */
Test(mpi, bench_hamming_sharded_finds_what_one_process_finds)
{
    static char out[16384];
    for (int weighted = 0; weighted < 2; weighted++) {
        const char *flags = weighted ? "--queries 40 --k 25 --bits 37 --repetitions 1 --weighted"
                                     : "--queries 40 --k 25 --bits 37 --repetitions 1";
        for (int p = 1; p <= 3; p++) {
            for (int weak = 0; weak < 2; weak++) {
                /* --no-limits: the one-process run's ceiling and bandwidth measurements take
                 * about 5 s each and are not what this test compares */
                int rc = tu_run(out, sizeof out, "%s bench hamming --n %d %s --no-limits --json %s",
                                tu_exe(), weak ? 6000 * p : 6000, flags, tu_path("one.json"));
                cr_assert_eq(rc, 0, "%s", out);
                rc = tu_run(out, sizeof out, "%s -n %d %s bench hamming --n 6000 %s%s --json %s",
                            mpirun(), p, tu_exe(), flags, weak ? " --per-rank" : "",
                            tu_path("many.json"));
                cr_assert_eq(rc, 0, "%d ranks: %s", p, out);
                cr_assert(strstr(out, weak ? "weak scaling" : "strong scaling"), "%s", out);
                cr_expect_eq(results_crc(tu_path("many.json")), results_crc(tu_path("one.json")),
                             "%d ranks, weighted %d, weak %d: other results", p, weighted, weak);
                char *json = tu_slurp(tu_path("many.json"), NULL);
                char name[64];
                snprintf(name, sizeof name, "\"hamming/37/ranks:%d/threads:1", p);
                cr_expect(strstr(json, name) && strstr(json, "\"merge_bytes\"") &&
                              strstr(json, "\"parallel_efficiency\"") &&
                              strstr(json, "\"rank_items_per_second_min\""),
                          "%s", json);
                free(json);
            }
        }
    }
}

/* ---- drsch reproduce under mpirun: the units of work dealt out to the ranks ---- */

/* A synthetic MNIST large enough for the paper protocol (100 queries, 500 training images per
 * class) in tu_tmpdir/paper. */
static void write_paper_sized(void)
{
    char out[256];
    cr_assert_eq(tu_run(out, sizeof out, "mkdir -p %s", tu_path("paper")), 0, "%s", out);
    tu_write_idx_split(tu_path("paper"), "train", 6500, 1, 31);
    tu_write_idx_split(tu_path("paper"), "t10k", 100, 1, 31);
}

#define REPRO_FLAGS                                                                                \
    "--quick --iters 5 --bits 12,24 --long-bits 32 --recipes drsch,authors --threads 1"

/* 2 and 3 ranks (9 units: 2 lengths, 2 long models, the classifier, the baselines) write the
 * serial run's report: every metric identical (the report's own check against --baseline); rank
 * 0 alone writes, the other ranks' progress names them. */
Test(mpi, distributed_reproduce_equals_the_serial_run, .timeout = 600)
{
    static char out[1 << 17];
    write_paper_sized();
    char data[600], serial[600];
    snprintf(data, sizeof data, "%s", tu_path("paper"));
    snprintf(serial, sizeof serial, "%s", tu_path("serial"));
    int rc = tu_run(out, sizeof out,
                    "OMP_NUM_THREADS=1 %s reproduce --dataset mnist:%s " REPRO_FLAGS " --out %s",
                    tu_exe(), data, serial);
    cr_assert_eq(rc, 0, "%s", out);
    for (int p = 2; p <= 3; p++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/ranks%d", tu_tmpdir, p);
        rc = tu_run(out, sizeof out,
                    "%s -n %d %s reproduce --dataset mnist:%s " REPRO_FLAGS
                    " --out %s --baseline %s/report.json",
                    mpirun_for(300), p, tu_exe(), data, dir, serial);
        cr_assert_eq(rc, 0, "%d ranks: %s", p, out);
        cr_assert(strstr(out, "Reproduction: identical: all "), "%d ranks: %s", p, out);
        cr_assert(strstr(out, "drsch reproduce: rank 1: training "), "%d ranks: %s", p, out);
        cr_assert_null(strstr(strstr(out, "wrote ") + 1, "wrote "), "one report: %s", out);
    }
}

/* A rank whose data is corrupt ends every rank, with one message naming it; the other ranks'
 * data loads, and nothing is trained. */
Test(mpi, distributed_reproduce_failing_rank_ends_every_rank, .timeout = 300)
{
    static char out[1 << 16];
    write_paper_sized();
    char bad[600], imgs[700];
    snprintf(bad, sizeof bad, "%s", tu_path("bad"));
    int rc = tu_run(out, sizeof out, "mkdir -p %s && cp %s/* %s", bad, tu_path("paper"), bad);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(imgs, sizeof imgs, "%s/t10k-labels-idx1-ubyte", bad);
    tu_write_file(imgs, "garbage", 7);
    rc = tu_run(out, sizeof out,
                "%s -n 1 %s reproduce --dataset mnist:%s " REPRO_FLAGS " --out %s : -n 1 %s "
                "reproduce --dataset mnist:%s " REPRO_FLAGS " --out %s",
                mpirun_for(300), tu_exe(), tu_path("paper"), tu_path("o"), tu_exe(), bad,
                tu_path("o"));
    cr_assert(rc != 0 && rc != 124, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "drsch reproduce: rank 1: ") && strstr(out, "t10k-labels-idx1-ubyte"),
              "%s", out);
    cr_assert_null(strstr(out, "training "), "%s", out);
}

/* Re-id: the splits dealt out (3 splits over 2 ranks: rank 0 runs two), the report identical to
 * the serial run's. */
Test(mpi, distributed_reid_reproduce_equals_the_serial_run, .timeout = 300)
{
    static char out[1 << 17];
    char mat[600], serial[600], dir[600], msg[512];
    snprintf(mat, sizeof mat, "%s", tu_path("cuhk-03.mat"));
    cr_assert_eq(fx_cuhk03_write_small(mat, 1, msg, sizeof msg), 0, "%s", msg);
    snprintf(serial, sizeof serial, "%s", tu_path("serial"));
    snprintf(dir, sizeof dir, "%s", tu_path("ranks"));
    char flags[1400];
    snprintf(flags, sizeof flags,
             "reproduce --dataset cuhk03:%s:labeled --size %dx%d --iters 10 --splits 3 "
             "--threads 1",
             mat, FX_H, FX_W);
    int rc = tu_run(out, sizeof out, "OMP_NUM_THREADS=1 %s %s --out %s", tu_exe(), flags, serial);
    cr_assert_eq(rc, 0, "%s", out);
    for (int p = 2; p <= 3; p++) {
        rc = tu_run(out, sizeof out, "%s -n %d %s %s --out %s --baseline %s/report.json",
                    mpirun_for(300), p, tu_exe(), flags, dir, serial);
        cr_assert_eq(rc, 0, "%d ranks: %s", p, out);
        cr_assert(strstr(out, "Reproduction: identical: all "), "%d ranks: %s", p, out);
        cr_assert(strstr(out, "drsch reproduce: rank 1: training DRSCH, split 2/3"), "%s", out);
    }
}

/* The embedded default, Fashion-MNIST, with --quick (iterations cut to 40 to keep CI short):
 * 3 ranks of 1 thread write the serial run's report. Where oneDNN runs AVX-512 the serial run
 * takes 2 threads (drsch's loops give the same bits at any thread count; 11 s against 20 s at 1
 * thread, 2-core Xeon), which its report's equality checks as well; oneDNN's AVX2 kernels sum
 * in orders that depend on the thread count, so there it takes 1, as the ranks do. */
Test(mpi, distributed_reproduce_fashion_mnist_quick, .timeout = 600)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)");
    if (getenv("ASAN_OPTIONS")) /* ci/sanitize: the synthetic-data tests run the same code */
        cr_skip_test("minutes of training under ASan; the Release run checks it");
    static char out[1 << 17];
    const char *flags = "reproduce --quick --iters 40 --bits 12,24 --long-bits 32";
    char serial[600];
    snprintf(serial, sizeof serial, "%s", tu_path("serial"));
    const int threads = nn_onednn_avx512() ? 2 : 1;
    int rc =
        tu_run(out, sizeof out, "%s %s --threads %d --out %s", tu_exe(), flags, threads, serial);
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s -n 3 %s %s --threads 1 --out %s --baseline %s/report.json",
                mpirun_for(240), tu_exe(), flags, tu_path("ranks"), serial);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "Reproduction: identical: all "), "%s", out);
}

/* ---- drsch sweep: one model per (length, seed), the runs dealt out under mpirun ---- */

/* 2 and 3 ranks write the serial sweep's table (every figure but the training times), runs on
 * other ranks named in the progress; a re-id dataset is refused with a reason. */
Test(mpi, distributed_sweep_equals_the_serial_sweep, .timeout = 600)
{
    static char out[1 << 16];
    write_paper_sized();
    const char *flags = "--bits 8,16 --seeds 1,2,3 --iters 5 --threads 1";
    char data[600];
    snprintf(data, sizeof data, "%s", tu_path("paper"));
    int rc = tu_run(out, sizeof out, "OMP_NUM_THREADS=1 %s sweep --dataset mnist:%s %s --out %s",
                    tu_exe(), data, flags, tu_path("serial"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "| 16 | 3 | trained | "), "%s", out);
    for (int p = 2; p <= 3; p++) {
        rc = tu_run(out, sizeof out, "%s -n %d %s sweep --dataset mnist:%s %s --out %s",
                    mpirun_for(300), p, tu_exe(), data, flags, tu_path("ranks"));
        cr_assert_eq(rc, 0, "%d ranks: %s", p, out);
        cr_assert(strstr(out, "drsch sweep: rank 1: training 8 bits, seed 2"), "%s", out);
        /* the tables without their header (command, times) and the training-time column */
        rc = tu_run(out, sizeof out,
                    "cd %s && for d in serial ranks; do sed -e 1,6d -e 's/| [0-9]* |$//' "
                    "$d/sweep.md > $d.rows; done && cmp serial.rows ranks.rows",
                    tu_tmpdir);
        cr_assert_eq(rc, 0, "%d ranks: other figures: %s", p, out);
    }
    rc = tu_run(out, sizeof out, "%s sweep --bits 8,4", tu_exe());
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--bits: '8,4' must be"), "%s", out);
}

/* SIGTERM to every rank (what a batch scheduler sends; Ctrl-C on mpirun sends it too, then
 * SIGKILL after mpirun's grace period): every rank stops at one iteration, rank 0 writes the
 * checkpoint and names it, the run exits non-zero; resumed to a few iterations more it gives the
 * bytes of an uninterrupted run of that length. */
Test(mpi, data_parallel_interrupt_writes_a_checkpoint_that_resumes_exactly)
{
    static char out[1 << 16];
    write_mnist();
    char data[600];
    snprintf(data, sizeof data, "%s", tu_path("data"));
    /* The signal goes once the first progress line (iteration 10) is out, or after 60 s; a fixed
     * wait of 4 s made the two runs after it train some thousand iterations each (the test took
     * 10.2 s, now 3.6 s; under ASan 11.0 s, now 4.6 s; 2-core Zen 5). */
    char log[1100];
    snprintf(log, sizeof log, "%s", tu_path("cut.log"));
    int rc = tu_run(out, sizeof out,
                    "(%s -n 2 %s train --dataset mnist:%s --protocol full --iters 100000 "
                    "--log-every 10 --threads 1 --out %s >%s 2>&1 & i=0; "
                    "until grep -q 'iter ' %s || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done; "
                    "pkill -TERM -f '^%s train .*%s'; wait $!; rc=$?; cat %s; exit $rc)",
                    mpirun(), tu_exe(), data, tu_path("cut.bin"), log, log, tu_exe(),
                    tu_path("cut.bin"), log);
    const char *p = strstr(out, "interrupted at iteration ");
    cr_assert_not_null(p, "rc %d: %s", rc, out);
    long long at = strtoll(p + strlen("interrupted at iteration "), NULL, 10);
    cr_assert_gt(at, 0, "%s", out);
    cr_assert(strstr(out, "continue with --resume"), "%s", out);
    cr_assert(rc != 0 && rc != 124, "rc %d: %s", rc, out);
    char flags[1200];
    snprintf(flags, sizeof flags,
             "train --dataset mnist:%s --protocol full --iters %lld --threads 1", data, at + 5);
    rc = tu_run(out, sizeof out, "%s -n 2 %s %s --resume %s --out %s", mpirun(), tu_exe(), flags,
                tu_path("cut.bin"), tu_path("cut.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s -n 2 %s %s --out %s", mpirun(), tu_exe(), flags,
                tu_path("whole.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    expect_same_files("whole.bin", "cut.bin", "interrupted and resumed under mpirun");
}
