/* The drsch command line as a whole: every command and subcommand answers -h and --help with its
 * usage on stdout, nothing on stderr and exit 0; the help of train, data and bench gives every
 * flag a meaning and a default and no help names a path of the build machine; outputs that
 * cannot be written (--out of train, --json of the benchmarks) are refused at once, with the
 * path named, before any data is loaded or anything is measured; --threads 0 is the default
 * thread count and 0..1024 the range; --repetitions is the one name for repetitions. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define EXIT_USAGE_STATUS 2 /* drsch's exit status for a bad argument (harness/commands.h) */

/* Every command of `drsch --help` and subcommand of `drsch bench --help` / `drsch data --help`. */
static const char *const COMMANDS[] = {
    "reproduce",   "train",        "encode",  "search",        "eval",
    "data",        "data info",    "bench",   "bench hamming", "bench data",
    "bench train", "bench encode", "compare", "version",       "sweep",
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void suite_init(void) { tu_tmpdir_make("cli"); }

TestSuite(help, .init = suite_init, .fini = tu_tmpdir_remove, .timeout = 60);
TestSuite(outputs, .init = suite_init, .fini = tu_tmpdir_remove, .timeout = 120);
TestSuite(flags, .init = suite_init, .fini = tu_tmpdir_remove, .timeout = 60);

typedef struct {
    int rc;
    double seconds;
    char *out, *err; /* stdout and stderr, malloc'd */
} result;

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs `drsch <args>` (args: printf format, shell syntax) with stdout and stderr kept apart. */
static result run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static result run(const char *fmt, ...)
{
    char args[2048], sink[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char o[512], e[512];
    snprintf(o, sizeof o, "%s", tu_path("stdout"));
    snprintf(e, sizeof e, "%s", tu_path("stderr"));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    result r;
    r.rc = tu_run(sink, sizeof sink, "{ %s %s >%s 2>%s; }", tu_exe(), args, o, e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    r.out = tu_slurp(o, NULL);
    r.err = tu_slurp(e, NULL);
    return r;
}

/* The help of `cmd`, checked for both spellings; returns the --help text (malloc'd). */
static char *check_help(const char *cmd)
{
    char *text = NULL;
    static const char *const spellings[] = {"-h", "--help"};
    for (int i = 0; i < 2; i++) {
        result r = run("%s %s", cmd, spellings[i]);
        cr_expect_eq(r.rc, 0, "drsch %s %s: exit %d; stderr: %s", cmd, spellings[i], r.rc, r.err);
        char want[64];
        snprintf(want, sizeof want, "usage: drsch %s", cmd);
        cr_expect(strstr(r.out, want) != NULL, "drsch %s %s: '%s' not on stdout: %s", cmd,
                  spellings[i], want, r.out);
        cr_expect_eq(r.err[0], '\0', "drsch %s %s wrote to stderr: %s", cmd, spellings[i], r.err);
        /* Nothing of the machine drsch was built on, nor of the project's tracker. */
        const char *src = getenv("DRSCH_SOURCE_DIR"), *bin = getenv("DRSCH_BINARY_DIR");
        cr_expect(!src || !src[0] || !strstr(r.out, src), "drsch %s %s names the source folder %s",
                  cmd, spellings[i], src);
        cr_expect(!bin || !bin[0] || !strstr(r.out, bin), "drsch %s %s names the build folder %s",
                  cmd, spellings[i], bin);
        cr_expect(!strstr(r.out, "issue"), "drsch %s %s refers to an issue: %s", cmd, spellings[i],
                  r.out);
        if (i == 1)
            text = r.out;
        else
            free(r.out);
        free(r.err);
    }
    return text;
}

#define HELP_TEST(id, cmd)                                                                         \
    Test(help, id) { free(check_help(cmd)); }

HELP_TEST(reproduce, "reproduce")
HELP_TEST(train, "train")
HELP_TEST(encode, "encode")
HELP_TEST(search, "search")
HELP_TEST(eval, "eval")
HELP_TEST(data, "data")
HELP_TEST(data_info, "data info")
HELP_TEST(bench, "bench")
HELP_TEST(bench_hamming, "bench hamming")
HELP_TEST(bench_data, "bench data")
HELP_TEST(bench_train, "bench train")
HELP_TEST(bench_encode, "bench encode")
HELP_TEST(compare, "compare")
HELP_TEST(version, "version")
HELP_TEST(sweep, "sweep")

static int listed(const char *cmd)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(COMMANDS[i], cmd))
            return 1;
    return 0;
}

/* The names listed under `heading` (lines "  name  summary" up to a blank line) are all in
 * COMMANDS, prefixed with `parent` (so that a new command cannot miss the tests above). */
static void check_listed(const char *help, const char *heading, const char *parent)
{
    const char *p = strstr(help, heading);
    cr_assert(p, "'%s' not in: %s", heading, help);
    p = strchr(p, '\n');
    int n = 0;
    while (p && p[1] == ' ') {
        char name[64], full[96];
        cr_assert_eq(sscanf(p + 1, " %63s", name), 1);
        snprintf(full, sizeof full, "%s%s", parent, name);
        cr_expect(listed(full), "'drsch %s' is listed but its help is not tested here", full);
        n++;
        p = strchr(p + 1, '\n');
    }
    cr_assert_gt(n, 0, "no names under '%s'", heading);
}

Test(help, every_listed_command_is_tested)
{
    result r = run("--help");
    cr_assert_eq(r.rc, 0);
    check_listed(r.out, "commands:", "");
    result_free(&r);
    r = run("bench --help");
    cr_assert_eq(r.rc, 0);
    check_listed(r.out, "benchmarks:", "bench ");
    result_free(&r);
    r = run("data --help");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "usage: drsch data info"), "%s", r.out);
    result_free(&r);
}

/* The end of a flag's text whose first line ends at `end`: lines indented deeper than flag
 * lines (more than 4 spaces) continue it. */
static const char *continued(const char *end)
{
    while (*end == '\n' && strspn(end + 1, " ") > 4 && end[1 + strspn(end + 1, " ")] != '\n')
        end += 1 + strcspn(end + 1, "\n");
    return end;
}

/* Every flag line ("  --flag [ARG]  meaning", or "-x, --flag") has its meaning on the same line,
 * not only a default in brackets, and the flag's text (up to the next flag) states its default
 * or that it is required. */
static void check_flags_described(const char *cmd)
{
    char *help = check_help(cmd);
    int flags = 0;
    for (char *line = help; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *p = line;
        while (*p == ' ')
            p++;
        if (p - line < 2 || p - line > 4 || *p != '-')
            continue;
        flags++;
        size_t len = strcspn(line, "\n");
        char text[256];
        snprintf(text, sizeof text, "%.*s", (int)(len < 255 ? len : 255), line);
        const char *gap = strstr(p, "  ");
        cr_expect(gap && gap < line + len, "drsch %s --help: no meaning on the line '%s'", cmd,
                  text);
        if (!gap || gap >= line + len)
            continue;
        while (*gap == ' ')
            gap++;
        cr_expect(gap < line + len && *gap != '(', "drsch %s --help: no meaning on the line '%s'",
                  cmd, text);
        if (strstr(text, "--help"))
            continue;
        /* The flag's whole text: this line and the indented lines that continue it. */
        const char *end = continued(line + len);
        char block[1024];
        snprintf(block, sizeof block, "%.*s", (int)(end - line < 1023 ? end - line : 1023), line);
        cr_expect(strstr(block, "default") || strstr(block, "required"),
                  "drsch %s --help: no default in '%s'", cmd, block);
    }
    cr_expect_gt(flags, 3, "drsch %s --help lists no flags: %s", cmd, help);
    free(help);
}

Test(help, train_data_and_bench_describe_every_flag)
{
    static const char *const cmds[] = {"train",      "data info",   "bench hamming",
                                       "bench data", "bench train", "bench encode"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        check_flags_described(cmds[i]);
}

Test(help, version_prints_the_version_without_flags)
{
    result r = run("version");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strncmp(r.out, "drsch ", 6) == 0 && strstr(r.out, "commit:"), "%s", r.out);
    result_free(&r);
    r = run("--version");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "commit:"), "%s", r.out);
    result_free(&r);
    r = run("version --bits 3");
    cr_assert_eq(r.rc, 2, "%s", r.out);
    cr_assert(strstr(r.err, "version") && !strstr(r.out, "commit:"), "%s", r.err);
    result_free(&r);
}

/* Exit handlers run after drsch's main returns and may still write stdout (libstdc++'s std::cout
 * flushes at exit the stdout it was set up with, which is drsch's stream when libstdc++ is first
 * loaded later): stdout must stay a live stream, its writes going nowhere. The preloaded library's
 * destructor writes and flushes it; MALLOC_PERTURB_ fills freed memory, so a freed stdout would
 * crash that flush. */
Test(cli, stdout_stays_a_stream_for_exit_handlers)
{
    char out[1 << 14];
    int rc =
        tu_run(out, sizeof out,
               "{ MALLOC_PERTURB_=165 GLIBC_TUNABLES=glibc.malloc.tcache_count=0 LD_PRELOAD=%s "
               "ASAN_OPTIONS=\"$ASAN_OPTIONS:verify_asan_link_order=0\" %s --version; }",
               STDOUT_AT_EXIT_SO, tu_exe());
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "commit:"), "%s", out);
    cr_assert_null(strstr(out, "written at exit"), "stdout was written after drsch closed it: %s",
                   out);
}

/* The libraries a command loads (LD_DEBUG=files): a search loads neither oneDNN (nor the C++
 * runtime it brings), nor HDF5, nor MPI, nor libjpeg, libpng or libRmath (drsch loads each when
 * first needed; linked, they were 28 ms of every command's start, the last three about 0.5 ms),
 * nor libgcc_s (glibc loads it to unwind a cancelled thread: the signal thread is woken at exit,
 * not cancelled, fileio.c),
 * --version, which prints oneDNN's version, does load oneDNN, and reading a CUHK03 file does load
 * HDF5 (drsch compare's test loading libRmath: test_compare.c). */
Test(outputs, search_loads_no_onednn_hdf5_mpi_images_or_rmath)
{
    static uint8_t npy[4096];
    uint8_t codes[64 * 8];
    for (int i = 0; i < 64 * 8; i++)
        codes[i] = (uint8_t)(i * 37 + 11);
    size_t n = tu_npy_image(npy, "{'descr': '|u1', 'fortran_order': False, 'shape': (64, 8), }",
                            codes, sizeof codes);
    tu_write_file(tu_path("db.npy"), npy, n);
    char out[1 << 15];
    int rc =
        tu_run(out, sizeof out,
               "{ LD_DEBUG=files %s search --db %s --queries %s --k 5 --out %s 2>&1 >/dev/null; }",
               tu_exe(), tu_path("db.npy"), tu_path("db.npy"), tu_path("r"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "file=libdrsch.so"), "LD_DEBUG lists the libraries loaded: %s", out);
    /* The sanitizer build loads oneDNN at start (see CMakeLists.txt), and its runtime brings
     * libstdc++ and libgcc_s: there those three are not checked. */
    int sanitized = strstr(out, "libasan") != NULL;
    const char *heavy[] = {"libhdf5",  "libmpi",  "libjpeg",   "libpng",
                           "libRmath", "libdnnl", "libstdc++", "libgcc_s"};
    for (int i = 0; i < (sanitized ? 5 : 8); i++)
        cr_assert_null(strstr(out, heavy[i]), "drsch search loaded %s", heavy[i]);
    rc = tu_run(out, sizeof out, "{ LD_DEBUG=files %s --version 2>&1 >/dev/null; }", tu_exe());
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "file=libdnnl"), "--version loads oneDNN: %s", out);
    tu_write_file(tu_path("x.mat"), "not HDF5", 8);
    rc = tu_run(out, sizeof out, "{ LD_DEBUG=files %s data info cuhk03:%s 2>&1 >/dev/null; }",
                tu_exe(), tu_path("x.mat"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "file=libhdf5"), "reading CUHK03 loads HDF5: %s", out);
    cr_assert(strstr(out, "not an HDF5 file"), "%s", out);
}

/* A refused output (exit 2, as any bad argument) or checkpoint to resume (exit 1, as any input
 * that cannot be read): within a second, the path named, nothing loaded, trained or measured. */
static void expect_refused_rc(const result *r, int rc, const char *what, const char *needle)
{
    cr_expect_eq(r->rc, rc, "%s: exit %d; stderr: %s", what, r->rc, r->err);
    cr_expect_lt(r->seconds, 1.0, "%s: refused only after %.1f s", what, r->seconds);
    cr_expect(strstr(r->err, needle) != NULL, "%s: '%s' not named in: %s", what, needle, r->err);
    cr_expect(!strstr(r->err, "iter ") && !strstr(r->err, "loaded") &&
                  !strstr(r->err, "training images;") && !strstr(r->err, "generating"),
              "%s: work started before the output was checked: %s", what, r->err);
    cr_expect_eq(r->out[0], '\0', "%s: results printed before the output was checked: %s", what,
                 r->out);
}

static void expect_refused(const result *r, const char *what, const char *needle)
{
    expect_refused_rc(r, EXIT_USAGE_STATUS, what, needle);
}

/* Each benchmark with small sizes, so that even a run that is not refused ends quickly. */
static const char *const QUICK_BENCHES[][2] = {
    {"hamming", "--n 2000 --queries 10 --k 5 --isa scalar"},
    {"data", "--iters 2"},
    {"train", "--batch 20 --iters 1 --warmup 0"},
    {"encode", "--batch 20 --images 40 --iters 1 --warmup 0"},
};
#define N_QUICK (sizeof QUICK_BENCHES / sizeof QUICK_BENCHES[0])

#define QUICK_TRAIN "train --threads 1 --iters 3 --bits 8 --log-every 1 --checkpoint-every 0"

Test(outputs, train_checks_the_model_and_its_state_before_training)
{
    tu_write_file(tu_path("file"), "x", 1);
    cr_assert_eq(mkdir(tu_path("m.bin.state"), 0755), 0);
    char in_file[512], model[512];
    snprintf(in_file, sizeof in_file, "%s", tu_path("file/m.bin"));
    snprintf(model, sizeof model, "%s", tu_path("m.bin"));
    struct {
        const char *out, *needle;
    } cases[] = {
        {"/nonexistent-drsch-folder/m.bin",
         "/nonexistent-drsch-folder/m.bin"}, /* a missing folder */
        {tu_tmpdir, tu_tmpdir},              /* a directory */
        {"''", "--out"},                     /* empty */
        {in_file, "file"},                   /* a file as the folder */
        {model, "m.bin.state"},              /* its state a directory */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = run(QUICK_TRAIN " --out %s", cases[i].out);
        char what[600];
        snprintf(what, sizeof what, "train --out %s", cases[i].out);
        expect_refused(&r, what, cases[i].needle);
        result_free(&r);
    }
    cr_expect_neq(access(model, F_OK), 0, "a model was written beside a state folder");
    /* The checkpoint to resume is read before the data is loaded too. */
    char state_only[512];
    snprintf(state_only, sizeof state_only, "%s", tu_path("s.bin"));
    tu_write_file(tu_path("s.bin.state"), "x", 1);
    const char *resumes[][2] = {
        {"/nonexistent-drsch-folder/r.bin", "/nonexistent-drsch-folder/r.bin"},
        {tu_tmpdir, "Is a directory"},
        {state_only, "s.bin"}};
    for (size_t i = 0; i < sizeof resumes / sizeof resumes[0]; i++) {
        result r = run(QUICK_TRAIN " --resume %s --out %s/n.bin", resumes[i][0], tu_tmpdir);
        char what[600];
        snprintf(what, sizeof what, "train --resume %s", resumes[i][0]);
        expect_refused_rc(&r, 1, what, resumes[i][1]);
        cr_expect(strstr(r.err, "--resume"), "%s: %s", what, r.err);
        result_free(&r);
    }
    tu_write_file(state_only, "x", 1);
    remove(tu_path("s.bin.state"));
    result r = run(QUICK_TRAIN " --resume %s --out %s/n.bin", state_only, tu_tmpdir);
    expect_refused_rc(&r, 1, "train --resume without its state", "s.bin.state");
    result_free(&r);
    /* The same with --eval and --resume: the outputs are still checked first. */
    r = run(QUICK_TRAIN " --eval --resume %s --out %s", model, tu_tmpdir);
    expect_refused(&r, "train --resume --out DIR", tu_tmpdir);
    result_free(&r);
}

Test(outputs, benchmarks_check_json_before_measuring)
{
    const char *jsons[][2] = {
        {"/nonexistent-drsch-folder/b.json", "/nonexistent-drsch-folder/b.json"},
        {tu_tmpdir, tu_tmpdir},
        {"''", "--json"},
    };
    for (size_t b = 0; b < N_QUICK; b++)
        for (size_t j = 0; j < sizeof jsons / sizeof jsons[0]; j++) {
            result r = run("bench %s %s --repetitions 1 --threads 1 --json %s", QUICK_BENCHES[b][0],
                           QUICK_BENCHES[b][1], jsons[j][0]);
            char what[600];
            snprintf(what, sizeof what, "bench %s --json %s", QUICK_BENCHES[b][0], jsons[j][0]);
            expect_refused(&r, what, jsons[j][1]);
            result_free(&r);
        }
}

/* The text of a flag in a help: its line and the lines continuing it (malloc'd), or NULL. */
static char *flag_text(const char *help, const char *flag)
{
    char key[64];
    snprintf(key, sizeof key, "  %s ", flag);
    const char *p = strstr(help, key);
    if (!p)
        return NULL;
    const char *end = continued(p + strcspn(p, "\n"));
    return strndup(p, (size_t)(end - p));
}

/* --threads: 0 is the default thread count, accepted everywhere; 1025 is refused with the range. */
Test(flags, threads_zero_is_the_default_and_the_range_is_printed)
{
    static const char *const cmds[][3] = {
        {"train", "--iters 1", "--out"},
        {"bench hamming", "--n 2000 --queries 10 --k 5 --isa scalar", "--json"},
        {"bench data", "--iters 2", "--json"},
        {"bench train", "--batch 20 --iters 1 --warmup 0", "--json"},
        {"bench encode", "--batch 20 --images 40 --iters 1 --warmup 0", "--json"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *cmd = cmds[i][0], *flags = cmds[i][1], *out = cmds[i][2];
        /* Accepted: the run goes on to refuse its missing output folder, not the flag. */
        result r = run("%s %s --threads 0 %s /nonexistent-drsch-folder/x", cmd, flags, out);
        cr_expect_eq(r.rc, EXIT_USAGE_STATUS, "%s --threads 0: exit %d: %s", cmd, r.rc, r.err);
        cr_expect(strstr(r.err, "/nonexistent-drsch-folder/x") && !strstr(r.err, "--threads"),
                  "%s: %s", cmd, r.err);
        result_free(&r);
        r = run("%s %s --threads 1025 %s /nonexistent-drsch-folder/x", cmd, flags, out);
        cr_expect_eq(r.rc, 2, "%s --threads 1025: exit %d: %s", cmd, r.rc, r.err);
        cr_expect(strstr(r.err, "--threads") && strstr(r.err, "0 to 1024"), "%s: %s", cmd, r.err);
        result_free(&r);
        /* The help says what 0 means. */
        r = run("%s --help", cmd);
        char *t = flag_text(r.out, "--threads");
        cr_expect(t && strstr(t, "0 = ") && strstr(t, "OMP_NUM_THREADS") && strstr(t, "1024"),
                  "drsch %s --help: --threads: %s", cmd, t ? t : r.out);
        free(t);
        result_free(&r);
    }
}

/* Values refused before any data is loaded, named with what would be accepted. */
Test(flags, train_and_bench_refuse_bad_names_at_once)
{
    result r = run("train --arch drsch-foo --iters 1 --out %s/m.bin", tu_tmpdir);
    cr_expect_eq(r.rc, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--arch") && strstr(r.err, "drsch-foo") && strstr(r.err, "drsch-mnist"),
              "%s", r.err);
    cr_expect(!strstr(r.err, "training images;") && r.seconds < 1.0, "%.1f s: %s", r.seconds,
              r.err);
    result_free(&r);
#if defined(__x86_64__)
    r = run("bench hamming --isa neon --n 100 --queries 1 --k 1");
    cr_expect_eq(r.rc, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--isa") && strstr(r.err, "neon"), "%s", r.err);
    result_free(&r);
#endif
}

/* bench train takes only its own flags: encode's --images is refused (it was accepted and
 * ignored), --precision with the reason; its --replicas (training replicas, 1 to 256) is its own:
 * accepted in range (the run then stops at the unwritable --json), refused out of it. */
Test(flags, bench_train_refuses_the_flags_of_bench_encode)
{
    static const char *const flags[][2] = {
        {"--images 40", "--images"},
        {"--precision f32", "--precision is an option of bench encode"},
        {"--replicas 0", "--replicas"},
        {"--replicas 257", "--replicas"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        result r = run("bench train --batch 20 --iters 1 --warmup 0 %s --json "
                       "/nonexistent-drsch-folder/x",
                       flags[i][0]);
        cr_expect_eq(r.rc, EXIT_USAGE_STATUS, "bench train %s: exit %d: %s", flags[i][0], r.rc,
                     r.err);
        cr_expect(strstr(r.err, flags[i][1]) && !strstr(r.err, "/nonexistent-drsch-folder"),
                  "bench train %s: %s", flags[i][0], r.err);
        result_free(&r);
    }
    result r = run("bench train --batch 20 --iters 1 --warmup 0 --replicas 2 --json "
                   "/nonexistent-drsch-folder/x");
    cr_expect_eq(r.rc, EXIT_USAGE_STATUS, "%s", r.err);
    cr_expect(strstr(r.err, "/nonexistent-drsch-folder/x") && !strstr(r.err, "--replicas"), "%s",
              r.err);
    result_free(&r);
}

/* --repetitions in every benchmark; --repeat is no second name for it. */
Test(flags, repetitions_is_the_one_name)
{
    for (size_t i = 0; i < N_QUICK; i++) {
        const char *b = QUICK_BENCHES[i][0], *quick = QUICK_BENCHES[i][1];
        result r = run("bench %s %s --repetitions 2 --json /nonexistent-drsch-folder/x", b, quick);
        cr_expect_eq(r.rc, EXIT_USAGE_STATUS, "bench %s --repetitions: exit %d: %s", b, r.rc,
                     r.err);
        cr_expect(strstr(r.err, "/nonexistent-drsch-folder/x") && !strstr(r.err, "--repetitions"),
                  "bench %s: %s", b, r.err);
        result_free(&r);
        r = run("bench %s --repetitions 0", b);
        cr_expect_eq(r.rc, 2, "bench %s --repetitions 0: exit %d: %s", b, r.rc, r.err);
        cr_expect(strstr(r.err, "--repetitions") && strstr(r.err, "1 to 1000"), "bench %s: %s", b,
                  r.err);
        result_free(&r);
        r = run("bench %s --repeat 2", b);
        cr_expect_eq(r.rc, 2, "bench %s --repeat: exit %d: %s", b, r.rc, r.err);
        result_free(&r);
        r = run("bench %s --help", b);
        cr_expect(strstr(r.out, "--repetitions") && !strstr(r.out, "--repeat "),
                  "bench %s --help: %s", b, r.out);
        result_free(&r);
    }
}
