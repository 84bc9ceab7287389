/* Faults on the output side (simd/fileio.c and its users): a write that fails (a full disk, from a
 * small tmpfs where the test may mount one, else a file-size limit) leaves the old file and no
 * temporary; links are followed and devices or FIFOs written in place, never replaced; output sets
 * are published with a manifest and a reader refuses a member that does not match it; a second
 * writer is refused by the lock; a signal removes the temporary files; drsch search, encode and
 * train refuse an output another run holds. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "npy.h"
#include "test_util.h"

static void setup(void) { tu_tmpdir_make("faults"); }

TestSuite(outputs, .init = setup, .fini = tu_tmpdir_remove, .timeout = 60);
TestSuite(sets, .init = setup, .fini = tu_tmpdir_remove, .timeout = 60);
TestSuite(commands, .init = setup, .fini = tu_tmpdir_remove, .timeout = 120);

/* Entries of a folder whose name contains `part` (temporary files ".tmp.", locks ".lock"). */
static int count_named(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static void save_u8(const char *path, size_t n, uint8_t fill)
{
    uint8_t *b = malloc(n);
    memset(b, fill, n);
    size_t shape[1] = {n};
    drsch_error err;
    cr_assert_eq(npy_save(path, NPY_U8, 1, shape, b, &err), DRSCH_OK, "%s", err.msg);
    free(b);
}

/* The old content of path is still there, whole: n bytes of `fill`. */
static void assert_u8(const char *path, size_t n, uint8_t fill)
{
    npy_array a;
    drsch_error err;
    cr_assert_eq(npy_load(path, &a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(a.count, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(((uint8_t *)a.data)[i], fill, "byte %zu", i);
    npy_free(&a);
}

/* The write fails with `why`; path keeps its old content, no temporary is left. */
static void full_disk_keeps_the_old_file(const char *dir, const char *why)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    save_u8(path, 100, 7);
    uint8_t *big = calloc(1, 1 << 20);
    size_t shape[1] = {1 << 20};
    drsch_error err;
    cr_assert_neq(npy_save(path, NPY_U8, 1, shape, big, &err), DRSCH_OK);
    cr_expect(strstr(err.msg, path) == err.msg, "the message names the file: %s", err.msg);
    cr_expect(strstr(err.msg, why) != NULL, "the message gives the cause (%s): %s", why, err.msg);
    cr_expect(strstr(err.msg, ".tmp") == NULL, "never the temporary file: %s", err.msg);
    free(big);
    assert_u8(path, 100, 7);
    cr_expect_eq(count_named(dir, ".tmp."), 0, "a temporary file is left in %s", dir);
}

Test(outputs, full_disk_by_a_file_size_limit_keeps_the_old_file)
{
    signal(SIGXFSZ, SIG_IGN); /* the write fails with EFBIG instead of killing the process */
    struct rlimit rl = {64 * 1024, 64 * 1024};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    full_disk_keeps_the_old_file(tu_path(""), strerror(EFBIG));
}

Test(outputs, full_disk_on_a_small_tmpfs_keeps_the_old_file)
{
    char mnt[1100];
    snprintf(mnt, sizeof mnt, "%s", tu_path("mnt"));
    cr_assert_eq(mkdir(mnt, 0755), 0);
    /* Mounting needs root and a mount namespace of our own (so nothing outside sees it). */
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0)
        cr_skip_test(
            "cannot mount a tmpfs here (not root, or no mount namespace); the file-size limit test "
            "covers the failed write");
    full_disk_keeps_the_old_file(mnt, strerror(ENOSPC));
    umount(mnt);
}

Test(outputs, a_link_is_followed_and_stays_a_link)
{
    char target[1100], link[1100];
    snprintf(target, sizeof target, "%s", tu_path("target.npy"));
    snprintf(link, sizeof link, "%s", tu_path("link.npy"));
    save_u8(target, 10, 1);
    cr_assert_eq(symlink("target.npy", link), 0);
    save_u8(link, 20, 2);
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the link was replaced by a file");
    assert_u8(target, 20, 2);
    /* a dangling link: the file it names is created */
    cr_assert_eq(symlink("new.npy", tu_path("dangling.npy")), 0);
    save_u8(tu_path("dangling.npy"), 5, 3);
    cr_assert_eq(lstat(tu_path("dangling.npy"), &st), 0);
    cr_expect(S_ISLNK(st.st_mode));
    assert_u8(tu_path("new.npy"), 5, 3);
}

Test(outputs, a_device_is_written_in_place)
{
    save_u8("/dev/null", 10, 1);
    struct stat st;
    cr_assert_eq(stat("/dev/null", &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "/dev/null is no longer a device");
    drsch_error fe;
    cr_assert_neq(fio_write_file("/dev/full", "x", 1, 0, &fe), 0);
    cr_expect(strstr(fe.msg, strerror(ENOSPC)) != NULL, "%s", fe.msg);
    cr_assert_eq(stat("/dev/full", &st), 0);
    cr_assert(S_ISCHR(st.st_mode));
}

Test(outputs, a_fifo_is_written_in_place)
{
    char fifo[1100];
    snprintf(fifo, sizeof fifo, "%s", tu_path("pipe"));
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* the reader: counts the bytes that come through */
        FILE *f = fopen(fifo, "rb");
        size_t n = 0;
        while (f && fgetc(f) != EOF)
            n++;
        _exit(n == 128 + 10 ? 0 : 1);
    }
    save_u8(fifo, 10, 1); /* a 128-byte .npy header, then the payload */
    int status;
    waitpid(pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader did not get the array");
    struct stat st;
    cr_assert_eq(stat(fifo, &st), 0);
    cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced by a file");
}

Test(outputs, a_directory_is_refused_and_permissions_are_kept)
{
    drsch_error fe;
    cr_assert_eq(mkdir(tu_path("d"), 0755), 0);
    cr_assert_neq(fio_write_file(tu_path("d"), "x", 1, 0, &fe), 0);
    cr_expect(strstr(fe.msg, strerror(EISDIR)) != NULL, "%s", fe.msg);
    save_u8(tu_path("private.npy"), 4, 1);
    cr_assert_eq(chmod(tu_path("private.npy"), 0600), 0);
    save_u8(tu_path("private.npy"), 4, 2);
    struct stat st;
    cr_assert_eq(stat(tu_path("private.npy"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
}

/* Two processes writing one path over and over: each write is one process's whole file. */
Test(outputs, concurrent_writers_never_mix_a_file)
{
    char path[1100];
    snprintf(path, sizeof path, "%s", tu_path("shared.npy"));
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert_neq(kids[k], -1);
        if (kids[k] == 0) {
            uint8_t *b = malloc(200000);
            memset(b, k + 1, 200000);
            size_t shape[1] = {200000};
            drsch_error err;
            for (int i = 0; i < 50; i++)
                if (npy_save(path, NPY_U8, 1, shape, b, &err) != DRSCH_OK)
                    _exit(1);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", k);
    }
    npy_array a;
    drsch_error err;
    cr_assert_eq(npy_load(path, &a, &err), DRSCH_OK, "%s", err.msg);
    uint8_t first = ((uint8_t *)a.data)[0];
    for (size_t i = 0; i < a.count; i++)
        cr_assert_eq(((uint8_t *)a.data)[i], first, "byte %zu mixes the writers", i);
    npy_free(&a);
    cr_expect_eq(count_named(tu_path(""), ".tmp."), 0);
}

/* A child registers a temporary file, then gets SIGTERM (or SIGINT): the file is gone and the
 * child ended by that signal. */
static void signal_removes_temporaries(int sig)
{
    char path[1100];
    snprintf(path, sizeof path, "%s", tu_path("out.npy"));
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        fio_cleanup_on_signals();
        fio_out o;
        drsch_error fe;
        if (fio_out_begin(&o, path, &fe) != 0)
            _exit(1);
        fio_out_write(&o, "partial", 7);
        fflush(o.f);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)pid);
    cr_assert_eq(access(tmp, F_OK), 0, "the temporary file %s should exist while writing", tmp);
    kill(pid, sig);
    int status;
    waitpid(pid, &status, 0);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == sig, "the child should end by the signal");
    cr_expect_neq(access(tmp, F_OK), 0, "%s is left behind", tmp);
    cr_expect_neq(access(path, F_OK), 0, "a half-written output was published");
    close(ready[0]);
    close(ready[1]);
}

Test(outputs, sigterm_removes_temporary_files) { signal_removes_temporaries(SIGTERM); }
Test(outputs, sigint_removes_temporary_files) { signal_removes_temporaries(SIGINT); }

/* ---- sets ----------------------------------------------------------------------------------- */

/* A set PREFIX.{codes,weights}.npy of n bytes of `fill`, plus PREFIX.cams.npy when cams. */
static int write_set(const char *prefix, size_t n, uint8_t fill, int cams, drsch_error *fe)
{
    fio_set s;
    if (fio_set_begin(&s, prefix, fe) != DRSCH_OK)
        return -1;
    static const char *names[] = {"codes.npy", "weights.npy", "cams.npy"};
    uint8_t *b = malloc(n);
    memset(b, fill, n);
    size_t shape[1] = {n};
    drsch_error err;
    for (int i = 0; i < 2 + cams; i++) {
        fio_out *o = fio_set_add(&s, names[i], fe);
        if (!o || npy_write(o, NPY_U8, 1, shape, b, &err) != DRSCH_OK) {
            if (o)
                *fe = err;
            free(b);
            fio_set_abort(&s);
            return -1;
        }
    }
    free(b);
    return fio_set_commit(&s, fe) == DRSCH_OK ? 0 : -1;
}

Test(sets, members_are_published_with_a_manifest_that_readers_check)
{
    char prefix[1100], path[1200];
    drsch_error fe;
    snprintf(prefix, sizeof prefix, "%s", tu_path("run"));
    cr_assert_eq(write_set(prefix, 100, 5, 0, &fe), 0, "%s", fe.msg);
    snprintf(path, sizeof path, "%s.manifest", prefix);
    char *m = tu_slurp(path, NULL);
    cr_assert_not_null(m);
    cr_expect(strstr(m, "drsch-set 1\n") == m, "%s", m);
    cr_expect(strstr(m, " codes.npy\n") && strstr(m, " weights.npy\n"), "%s", m);
    free(m);
    snprintf(path, sizeof path, "%s.codes.npy", prefix);
    assert_u8(path, 100, 5);
    /* another run replaces one member alone: readers refuse it */
    save_u8(path, 100, 6);
    npy_array a;
    drsch_error err;
    cr_assert_neq(npy_load(path, &a, &err), DRSCH_OK,
                  "a member that differs from the manifest was read");
    cr_expect(strstr(err.msg, "run.manifest") && strstr(err.msg, "write the set again"), "%s",
              err.msg);
    snprintf(path, sizeof path, "%s.weights.npy", prefix);
    assert_u8(path, 100, 5); /* the untouched member still reads */
}

/* The state a crash leaves between the manifest's rename and the members': every old member is
 * refused. */
Test(sets, an_interrupted_publication_is_refused)
{
    char a[1100], b[1100], path[1200];
    drsch_error fe;
    snprintf(a, sizeof a, "%s", tu_path("a"));
    snprintf(b, sizeof b, "%s", tu_path("b"));
    cr_assert_eq(write_set(a, 100, 1, 0, &fe), 0, "%s", fe.msg);
    cr_assert_eq(write_set(b, 120, 2, 0, &fe), 0, "%s", fe.msg);
    char from[1200], to[1200];
    snprintf(from, sizeof from, "%s.manifest", b);
    snprintf(to, sizeof to, "%s.manifest", a);
    cr_assert_eq(rename(from, to), 0);
    static const char *names[] = {"codes", "weights"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s.%s.npy", a, names[i]);
        npy_array arr;
        drsch_error err;
        cr_expect_neq(npy_load(path, &arr, &err), DRSCH_OK, "%s was read beside a newer manifest",
                      path);
    }
}

Test(sets, a_failed_set_leaves_the_old_set_whole)
{
    char prefix[1100], path[1200];
    drsch_error fe;
    snprintf(prefix, sizeof prefix, "%s", tu_path("run"));
    cr_assert_eq(write_set(prefix, 100, 5, 0, &fe), 0, "%s", fe.msg);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {64 * 1024, 64 * 1024};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    cr_assert_neq(write_set(prefix, 100000, 9, 0, &fe), 0);
    cr_expect(strstr(fe.msg, strerror(EFBIG)) != NULL, "%s", fe.msg);
    snprintf(path, sizeof path, "%s.codes.npy", prefix);
    assert_u8(path, 100, 5);
    snprintf(path, sizeof path, "%s.weights.npy", prefix);
    assert_u8(path, 100, 5);
    cr_expect_eq(count_named(tu_path(""), ".tmp."), 0);
    cr_expect_eq(count_named(tu_path(""), ".lock"), 0);
}

Test(sets, members_of_the_previous_set_not_written_again_are_removed)
{
    char prefix[1100], path[1200];
    drsch_error fe;
    snprintf(prefix, sizeof prefix, "%s", tu_path("run"));
    cr_assert_eq(write_set(prefix, 10, 1, 1, &fe), 0, "%s", fe.msg);
    snprintf(path, sizeof path, "%s.cams.npy", prefix);
    cr_assert_eq(access(path, F_OK), 0);
    cr_assert_eq(write_set(prefix, 10, 2, 0, &fe), 0, "%s", fe.msg);
    cr_expect_neq(access(path, F_OK), 0, "%s of the earlier run is left beside the new set", path);
}

Test(sets, a_second_writer_is_refused)
{
    char prefix[1100];
    drsch_error fe;
    snprintf(prefix, sizeof prefix, "%s", tu_path("run"));
    fio_set first;
    cr_assert_eq(fio_set_begin(&first, prefix, &fe), 0, "%s", fe.msg);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    cr_assert_neq(write_set(prefix, 10, 1, 0, &fe), 0, "a second writer got the set");
    cr_expect(strstr(fe.msg, "another drsch run") && strstr(fe.msg, pid) &&
                  strstr(fe.msg, "run.lock"),
              "%s", fe.msg);
    fio_set_abort(&first);
    cr_assert_eq(write_set(prefix, 10, 1, 0, &fe), 0, "%s", fe.msg);
    cr_expect_eq(count_named(tu_path(""), ".lock"), 0, "the lock is left behind");
}

/* The holder writes its process id over what a dead run left in the lock file (the file is not
 * truncated first), and a refused writer names the live holder only. */
Test(sets, a_dead_runs_longer_process_id_is_not_named)
{
    char prefix[1100], lock[1200];
    drsch_error fe;
    snprintf(prefix, sizeof prefix, "%s", tu_path("run"));
    snprintf(lock, sizeof lock, "%s.lock", prefix);
    FILE *f = fopen(lock, "w");
    cr_assert(f != NULL);
    fputs("987654321987654\n", f);
    cr_assert_eq(fclose(f), 0);
    fio_set first;
    cr_assert_eq(fio_set_begin(&first, prefix, &fe), 0, "%s", fe.msg);
    char pid[48];
    snprintf(pid, sizeof pid, "(process %ld)", (long)getpid());
    cr_assert_neq(write_set(prefix, 10, 1, 0, &fe), 0, "a second writer got the set");
    cr_expect(strstr(fe.msg, pid) && !strstr(fe.msg, "987654"), "%s", fe.msg);
    fio_set_abort(&first);
    cr_expect_eq(count_named(tu_path(""), ".lock"), 0, "the lock is left behind");
}

/* ---- the commands --------------------------------------------------------------------------- */

/* 8-bit codes for search: db rows 0..n-1, queries 0 and 255. */
static void write_codes(const char *prefix, int set)
{
    uint8_t db[64], q[2] = {0, 255};
    for (int i = 0; i < 64; i++)
        db[i] = (uint8_t)(i * 4);
    float w[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    size_t sdb[2] = {64, 1}, sq[2] = {2, 1}, sw[1] = {8};
    char path[1200];
    drsch_error fe;
    drsch_error err;
    if (set) {
        fio_set s;
        cr_assert_eq(fio_set_begin(&s, prefix, &fe), 0, "%s", fe.msg);
        fio_out *o = fio_set_add(&s, "codes.npy", &fe);
        cr_assert(o && npy_write(o, NPY_U8, 2, sdb, db, &err) == DRSCH_OK);
        o = fio_set_add(&s, "weights.npy", &fe);
        cr_assert(o && npy_write(o, NPY_F32, 1, sw, w, &err) == DRSCH_OK);
        cr_assert_eq(fio_set_commit(&s, &fe), 0, "%s", fe.msg);
    }
    snprintf(path, sizeof path, "%s", tu_path("q.npy"));
    cr_assert_eq(npy_save(path, NPY_U8, 2, sq, q, &err), DRSCH_OK, "%s", err.msg);
}

Test(commands, search_refuses_weights_of_another_run)
{
    static char out[1 << 14];
    write_codes(tu_path("enc"), 1);
    char db[1100], w[1100], res[1100];
    snprintf(db, sizeof db, "%s", tu_path("enc.codes.npy"));
    snprintf(w, sizeof w, "%s", tu_path("enc.weights.npy"));
    snprintf(res, sizeof res, "%s", tu_path("res"));
    int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --weights %s --k 3 --out %s",
                    tu_exe(), db, tu_path("q.npy"), w, res);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_eq(access(tu_path("res.manifest"), F_OK), 0, "search writes its results as a set");
    /* weights of another run (4 bits) put beside the codes */
    float w4[4] = {1, 2, 3, 4};
    size_t s4[1] = {4};
    drsch_error err;
    cr_assert_eq(npy_save(w, NPY_F32, 1, s4, w4, &err), DRSCH_OK);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --weights %s --k 3 --out %s",
                tu_exe(), db, tu_path("q.npy"), w, res);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "enc.manifest") != NULL, "%s", out);
    /* the same short weights as a file of their own: the first 4 bits are searched, never silently
     */
    cr_assert_eq(npy_save(tu_path("w4.npy"), NPY_F32, 1, s4, w4, &err), DRSCH_OK);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --weights %s --k 3 --out %s",
                tu_exe(), db, tu_path("q.npy"), tu_path("w4.npy"), res);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "searching the first 4 of the 8 bits") != NULL, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s search --db %s --queries %s --weights %s --bits 4 --k 3 --out %s", tu_exe(), db,
                tu_path("q.npy"), tu_path("w4.npy"), res);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "searching the first") == NULL, "--bits given: no note: %s", out);
}

Test(commands, search_encode_and_train_refuse_an_output_another_run_holds)
{
    static char out[1 << 14];
    write_codes(tu_path("enc"), 1);
    drsch_error fe;
    fio_lock held;
    cr_assert_eq(fio_lock_take(&held, tu_path("res"), &fe), 0, "%s", fe.msg);
    int rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 3 --out %s", tu_exe(),
                    tu_path("enc.codes.npy"), tu_path("q.npy"), tu_path("res"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "another drsch run") != NULL, "%s", out);
    cr_expect_neq(access(tu_path("res.indices.npy"), F_OK), 0, "the refused run wrote results");
    fio_lock_release(&held);
    rc = tu_run(out, sizeof out, "%s search --db %s --queries %s --k 3 --out %s", tu_exe(),
                tu_path("enc.codes.npy"), tu_path("q.npy"), tu_path("res"));
    cr_expect_eq(rc, 0, "%s", out);

    /* train: the lock is taken before the data is loaded; encode before the model is read */
    cr_assert_eq(fio_lock_take(&held, tu_path("m.bin"), &fe), 0, "%s", fe.msg);
    rc = tu_run(out, sizeof out, "%s train --iters 10 --out %s", tu_exe(), tu_path("m.bin"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "another drsch run") && strstr(out, "m.bin.lock"), "%s", out);
    fio_lock_release(&held);
    tu_write_file(tu_path("model.bin"), "x", 1);
    cr_assert_eq(fio_lock_take(&held, tu_path("codes"), &fe), 0, "%s", fe.msg);
    rc = tu_run(out, sizeof out, "%s encode --model %s --out %s", tu_exe(), tu_path("model.bin"),
                tu_path("codes"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "another drsch run") != NULL, "%s", out);
    fio_lock_release(&held);
}

Test(commands, eval_json_into_a_link_writes_its_target_and_a_device_in_place)
{
    static char out[1 << 14];
    write_codes(tu_path("enc"), 1);
    int32_t lab[64] = {0}, ql[2] = {0, 1};
    size_t s64[1] = {64}, s2[1] = {2};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("dbl.npy"), NPY_I32, 1, s64, lab, &err), DRSCH_OK);
    cr_assert_eq(npy_save(tu_path("ql.npy"), NPY_I32, 1, s2, ql, &err), DRSCH_OK);
    tu_write_file(tu_path("report.json"), "old", 3);
    cr_assert_eq(symlink("report.json", tu_path("latest.json")), 0);
    int rc =
        tu_run(out, sizeof out, "%s eval --codes %s --db %s --qlabels %s --dblabels %s --json %s",
               tu_exe(), tu_path("q.npy"), tu_path("enc.codes.npy"), tu_path("ql.npy"),
               tu_path("dbl.npy"), tu_path("latest.json"));
    cr_assert_eq(rc, 0, "%s", out);
    struct stat st;
    cr_assert_eq(lstat(tu_path("latest.json"), &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the link was replaced by a file");
    char *text = tu_slurp(tu_path("report.json"), NULL);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "\"benchmarks\"") != NULL, "the link's target was not written: %s",
              text);
    free(text);
    /* a device is written in place */
    rc = tu_run(out, sizeof out,
                "%s eval --codes %s --db %s --qlabels %s --dblabels %s --json /dev/null", tu_exe(),
                tu_path("q.npy"), tu_path("enc.codes.npy"), tu_path("ql.npy"), tu_path("dbl.npy"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(stat("/dev/null", &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "/dev/null was replaced by a file");
}
