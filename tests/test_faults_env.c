/* Faults of the environment drsch runs in, none of which may lose a result or hang a command:
 *  - stdout that cannot be written (a full disk, /dev/full; a closed pipe with SIGPIPE ignored)
 *    makes the command fail with "drsch: cannot write standard output: <cause>", not exit 0;
 *  - LAPACK (and the system BLAS behind it) is not loaded at start, only when ITQ needs it: under
 *    an address-space limit OpenBLAS's thread pool hung every command at exit, --version too;
 *  - OMP_NUM_THREADS is capped like --threads (100000 crashed search and eval), and more threads
 *    than cores gets one warning. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baselines.h"
#include "npy.h"
#include "test_util.h"

#define FASHION_MNIST "/usr/share/datasets/fashion-mnist"

/* 200 random 64-bit codes as the database, 5 as queries, with labels for eval. */
static void write_codes(void)
{
    uint8_t db[200 * 8], q[5 * 8];
    int32_t dbl[200], ql[5];
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof db; i++)
        db[i] = (uint8_t)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 56);
    for (size_t i = 0; i < sizeof q; i++)
        q[i] = db[i];
    for (int i = 0; i < 200; i++)
        dbl[i] = i % 4;
    for (int i = 0; i < 5; i++)
        ql[i] = i % 4;
    size_t sdb[2] = {200, 8}, sq[2] = {5, 8}, sdbl[1] = {200}, sql[1] = {5};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("db.npy"), NPY_U8, 2, sdb, db, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_save(tu_path("q.npy"), NPY_U8, 2, sq, q, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_save(tu_path("dbl.npy"), NPY_I32, 1, sdbl, dbl, &err), DRSCH_OK, "%s",
                 err.msg);
    cr_assert_eq(npy_save(tu_path("ql.npy"), NPY_I32, 1, sql, ql, &err), DRSCH_OK, "%s", err.msg);
}

static void setup(void)
{
    tu_tmpdir_make("faults-env");
    write_codes();
}

TestSuite(stdout_lost, .init = setup, .fini = tu_tmpdir_remove, .timeout = 60);
TestSuite(lapack, .init = setup, .fini = tu_tmpdir_remove, .timeout = 60);
TestSuite(threads, .init = setup, .fini = tu_tmpdir_remove, .timeout = 120);

typedef struct {
    int rc;
    char *out, *err; /* stdout and stderr, malloc'd */
} result;

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs `ENV drsch ARGS` (shell syntax; env: "" or assignments such as "OMP_NUM_THREADS=8") with
 * stdout and stderr in files; stdout goes to `out_path` when given (e.g. /dev/full). */
static result run_to(const char *out_path, const char *env, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static result run_to(const char *out_path, const char *env, const char *fmt, ...)
{
    char args[2048], sink[256], o[512], e[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s", tu_path("stdout"));
    snprintf(e, sizeof e, "%s", tu_path("stderr"));
    unlink(o);
    tu_write_file(o, "", 0);
    result r;
    r.rc = tu_run(sink, sizeof sink, "{ %s %s %s >%s 2>%s; }", env, tu_exe(), args,
                  out_path ? out_path : o, e);
    r.out = tu_slurp(o, NULL);
    r.err = tu_slurp(e, NULL);
    return r;
}

#define EVAL_ARGS "eval --codes %s --db %s --qlabels %s --dblabels %s"
#define EVAL_FILES tu_path("q.npy"), tu_path("db.npy"), tu_path("ql.npy"), tu_path("dbl.npy")
#define SEARCH_ARGS "search --db %s --queries %s --k 5 --out %s"
#define SEARCH_FILES tu_path("db.npy"), tu_path("q.npy"), tu_path("res")

/* ---- stdout that cannot be written ------------------------------------------------------------
 */

static void expect_stdout_failure(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect_stdout_failure(const char *what, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    result r = run_to("/dev/full", "", "%s", args);
    cr_expect_eq(r.rc, 1, "%s > /dev/full: exit %d (results lost, success reported); stderr: %s",
                 what, r.rc, r.err);
    cr_expect(strstr(r.err, "drsch: cannot write standard output: No space left on device\n") !=
                  NULL,
              "%s > /dev/full: stderr: %s", what, r.err);
    result_free(&r);
}

Test(stdout_lost, full_disk_fails_version_help_eval_and_data_info)
{
    expect_stdout_failure("drsch --version", "--version");
    expect_stdout_failure("drsch version", "version");
    expect_stdout_failure("drsch --help", "--help");
    expect_stdout_failure("drsch data info --help", "data info --help");
    expect_stdout_failure("drsch eval", EVAL_ARGS, EVAL_FILES);
    struct stat st;
    if (stat(FASHION_MNIST, &st) == 0) /* Debian package dataset-fashion-mnist */
        expect_stdout_failure("drsch data info fashion-mnist", "data info fashion-mnist");
}

Test(stdout_lost, a_failing_command_keeps_its_exit_code)
{
    /* A usage error (2) with stdout full stays 2; the stdout message is added only if it wrote. */
    result r = run_to("/dev/full", "", "eval --codes %s", tu_path("q.npy"));
    cr_expect_eq(r.rc, 2, "exit %d: %s", r.rc, r.err);
    result_free(&r);
    /* And a command with nothing to write to stdout succeeds on /dev/full. */
    r = run_to("/dev/full", "", SEARCH_ARGS, SEARCH_FILES);
    cr_expect_eq(r.rc, 0, "search with stdout on /dev/full: exit %d: %s", r.rc, r.err);
    cr_expect(strstr(r.err, "cannot write standard output") == NULL, "%s", r.err);
    result_free(&r);
}

/* stdout a pipe whose reader is gone, SIGPIPE ignored (as under many supervisors): EPIPE. */
Test(stdout_lost, closed_pipe_with_sigpipe_ignored_fails)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    const char *errf = tu_path("pipe-stderr");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN); /* kept across exec */
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(p[1], 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execl(tu_exe(), tu_exe(), "--version", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char *err = tu_slurp(errf, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1,
              "drsch --version into a closed pipe: status %#x; stderr: %s", st, err);
    cr_expect(strstr(err, "drsch: cannot write standard output: Broken pipe\n") != NULL, "%s", err);
    free(err);
}

/* ---- LAPACK loaded only for ITQ -------------------------------------------------------------- */

/* Whether a mapping of this process names a BLAS or LAPACK library. */
static int blas_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, "blas") || strstr(line, "lapack");
    fclose(f);
    return found;
}

/* The libraries the dynamic loader maps for drsch (ldd's list, LD_TRACE_LOADED_OBJECTS) hold no
 * BLAS or LAPACK. */
Test(lapack, drsch_does_not_load_blas_or_lapack_at_start)
{
    char out[16384];
    int rc = tu_run(out, sizeof out, "LD_TRACE_LOADED_OBJECTS=1 %s", tu_exe());
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "libc.so") != NULL, "no library list: %s", out);
    cr_expect(strstr(out, "blas") == NULL && strstr(out, "lapack") == NULL,
              "drsch loads BLAS/LAPACK at start:\n%s", out);
}

/* With the address space limited to 250 MB every command used to hang at exit when OpenBLAS was
 * the system BLAS (a pool thread retrying a failed mmap): --version and an eval end at once. */
Test(lapack, commands_end_under_an_address_space_limit)
{
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test("AddressSanitizer reserves terabytes of shadow address space: nothing starts "
                 "under ulimit -v");
#endif
    char out[8192];
    int rc = tu_run(out, sizeof out, "sh -c 'ulimit -v 250000 && exec timeout 10 %s --version'",
                    tu_exe());
    cr_expect_eq(rc, 0, "drsch --version under ulimit -v 250000: exit %d (124: hung): %s", rc, out);
    rc = tu_run(out, sizeof out, "sh -c 'ulimit -v 250000 && exec timeout 10 %s " EVAL_ARGS "'",
                tu_exe(), EVAL_FILES);
    cr_expect_eq(rc, 0, "drsch eval under ulimit -v 250000: exit %d (124: hung): %s", rc, out);
}

/* ITQ loads LAPACK on first use (not before), with one BLAS thread unless the user chose, and
 * trains: its projection W R has orthonormal columns (PCA directions times a rotation). */
Test(lapack, itq_loads_lapack_when_it_needs_it)
{
    cr_assert(!blas_mapped(), "BLAS/LAPACK is mapped before ITQ ran");
    const char *user = getenv("OPENBLAS_NUM_THREADS");
    enum { N = 300, D = 24, B = 16 };
    static float x[N * D];
    uint64_t s = 7;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i * D + j] =
                (float)((double)(s >> 40) / (double)(1 << 24)) * (float)(j + 1) + (float)(i % 3);
        }
    bl_model m;
    drsch_error err;
    cr_assert_eq(bl_itq_train(x, N, D, B, 20, 1, &m, &err), 0, "%s", err.msg);
    cr_expect(blas_mapped(), "ITQ ran but no LAPACK is mapped");
    if (!user)
        cr_expect_str_eq(getenv("OPENBLAS_NUM_THREADS"), "1");
    else
        cr_expect_str_eq(getenv("OPENBLAS_NUM_THREADS"), user,
                         "the user's OPENBLAS_NUM_THREADS was replaced");
    for (int a = 0; a < B; a++)
        for (int b = 0; b < B; b++) {
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += (double)m.proj[j * B + a] * m.proj[j * B + b];
            cr_expect(fabs(dot - (a == b)) < 1e-3, "column %d . column %d = %g", a, b, dot);
        }
    hm_codes codes = {0};
    drsch_error he;
    cr_assert_eq(hm_codes_alloc(&codes, N, B, &he), DRSCH_OK, "%s", he.msg);
    bl_encode(&m, x, N, &codes, 0);
    size_t ones = 0;
    for (size_t i = 0; i < N; i++)
        ones += (size_t)__builtin_popcountll(hm_code_row(&codes, i)[0]);
    /* Centred data and a rotation of its principal directions: bits are near balanced. */
    cr_expect(ones > N * B / 4 && ones < N * B * 3 / 4, "%zu ones of %d bits", ones, N * B);
    hm_codes_free(&codes);
    bl_model_free(&m);
    /* A second model reuses the loaded library. */
    cr_assert_eq(bl_itq_train(x, N, D, 8, 5, 2, &m, &err), 0, "%s", err.msg);
    bl_model_free(&m);
}

/* Under an address-space limit too tight for the BLAS buffer (OpenBLAS maps 128 MiB at its first
 * call and retried a failed mmap forever) ITQ fails at once with the reason, whatever the BLAS. */
Test(lapack, itq_under_a_tight_address_space_limit_fails_with_the_reason, .timeout = 30)
{
    enum { N = 100, D = 16, B = 8 };
    static float x[N * D];
    for (int i = 0; i < N * D; i++)
        x[i] = (float)((i * 7919) % 101) / 101.0f;
    size_t vm = tu_vm_size();
    cr_assert(vm > 0);
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    rl = old;
    rl.rlim_cur = vm + (64u << 20); /* 64 MiB beyond what the process maps now */
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    bl_model m;
    drsch_error err;
    int rc = bl_itq_train(x, N, D, B, 5, 1, &m, &err);
    setrlimit(RLIMIT_AS, &old);
    cr_assert_eq(rc, -1, "ITQ ran under a 64 MiB margin");
    cr_expect(strstr(err.msg, "ulimit -v") && strstr(err.msg, "raise the limit"), "%s", err.msg);
}

/* ---- thread counts --------------------------------------------------------------------------- */

static int cores(void)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    return CPU_COUNT(&set);
}

static void expect_warning(const char *err, int threads, int ncores, const char *what)
{
    char want[128], hint[160];
    snprintf(want, sizeof want, "drsch: warning: %d threads", threads);
    snprintf(hint, sizeof hint,
             " on %d cores: OpenMP threads will wait for each other; use --threads %d\n", ncores,
             ncores);
    const char *w = strstr(err, want);
    cr_expect(w && strstr(w, hint), "%s: no warning '%s...%s' in: %s", what, want, hint, err);
    if (w)
        cr_expect(strstr(w + 1, "drsch: warning:") == NULL, "%s: more than one warning: %s", what,
                  err);
}

Test(threads, omp_num_threads_above_1024_is_capped_with_a_warning)
{
    int n = cores();
    if (n >= 1024)
        cr_skip_test("%d cores", n);
    result r = run_to(NULL, "OMP_NUM_THREADS=100000", SEARCH_ARGS, SEARCH_FILES);
    cr_expect_eq(r.rc, 0, "OMP_NUM_THREADS=100000 drsch search: exit %d: %s", r.rc, r.err);
    expect_warning(r.err, 1024, n, "OMP_NUM_THREADS=100000 search");
    cr_expect(strstr(r.err, "OMP_NUM_THREADS=100000") != NULL, "%s", r.err);
    result_free(&r);
    r = run_to(NULL, "OMP_NUM_THREADS=100000", EVAL_ARGS, EVAL_FILES);
    cr_expect_eq(r.rc, 0, "OMP_NUM_THREADS=100000 drsch eval: exit %d: %s", r.rc, r.err);
    cr_expect(strstr(r.out, "mAP") != NULL, "%s", r.out);
    expect_warning(r.err, 1024, n, "OMP_NUM_THREADS=100000 eval");
    result_free(&r);
    r = run_to(NULL, "OMP_NUM_THREADS=100000", "--version");
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "threads:  1024 ") != NULL, "%s", r.out);
    result_free(&r);
}

Test(threads, more_threads_than_cores_warns_once)
{
    int n = cores();
    if (n >= 64)
        cr_skip_test("%d cores", n);
    result r = run_to(NULL, "", SEARCH_ARGS " --threads 64", SEARCH_FILES);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    expect_warning(r.err, 64, n, "search --threads 64");
    result_free(&r);
    r = run_to(NULL, "OMP_NUM_THREADS=64", EVAL_ARGS, EVAL_FILES);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    expect_warning(r.err, 64, n, "OMP_NUM_THREADS=64 eval");
    result_free(&r);
    /* --threads wins over the environment, and the warning names the count used. */
    r = run_to(NULL, "OMP_NUM_THREADS=100000", SEARCH_ARGS " --threads %d", SEARCH_FILES, n + 1);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    expect_warning(r.err, n + 1, n, "search --threads cores+1");
    cr_expect(strstr(r.err, "OMP_NUM_THREADS") == NULL, "%s", r.err);
    result_free(&r);
}

Test(threads, the_default_and_the_core_count_do_not_warn)
{
    int n = cores();
    result r = run_to(NULL, "env -u OMP_NUM_THREADS", SEARCH_ARGS, SEARCH_FILES);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.err, "warning") == NULL, "default threads warned: %s", r.err);
    result_free(&r);
    r = run_to(NULL, "env -u OMP_NUM_THREADS", EVAL_ARGS " --threads %d", EVAL_FILES, n);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.err, "warning") == NULL, "--threads %d warned: %s", n, r.err);
    result_free(&r);
}
