/* drsch: the command line. A thin layer over the library modules: it parses flags, calls the
 * library, prints results and chooses exit codes. Each subcommand lives in harness/cmd_*.c. */
#define _GNU_SOURCE /* fopencookie */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "hamming.h"
#include "nn.h"
#include "version.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"reproduce", cmd_reproduce,
     "regenerate the paper's table on a dataset (train, evaluate, compare)"},
    {"sweep", cmd_sweep, "train and evaluate one model per (code length, seed): stability, spread"},
    {"train", cmd_train, "train a DRSCH model on a dataset (progress, checkpoints, resume)"},
    {"encode", cmd_encode, "encode a dataset with a trained model to .npy codes, labels, weights"},
    {"search", cmd_search, "exact k-nearest-neighbour Hamming search over .npy codes"},
    {"eval", cmd_eval, "retrieval (mAP, P@K, P@r) or re-id (CMC, mAP) metrics of codes"},
    {"data", cmd_data, "dataset info: counts, shapes, classes, checksum, protocol split"},
    {"bench", cmd_bench, "benchmarks writing Google Benchmark-compatible JSON"},
    {"compare", cmd_compare, "regression gate: compare two JSON reports (times and metrics)"},
    {"version", cmd_version, "print version, commit, compiler, ISA and threads"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: drsch <command> [options]\n"
               "       drsch --version | --help\n\n"
               "DRSCH bit-scalable deep hashing (Zhang et al., IEEE TIP 2015) with a SIMD Hamming\n"
               "search engine and an evaluation harness.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n'drsch <command> --help' describes each command's flags.\n"
               "environment: OMP_NUM_THREADS (threads), DRSCH_FORCE_ISA=scalar|avx2|avx512|neon\n"
               "(kernel choice), DRSCH_DATA (dataset root).\n");
}

static void version_usage(FILE *f)
{
    fprintf(
        f, "usage: drsch version\n"
           "       drsch --version\n\n"
           "Prints the version, the commit it was built from, the compiler and its flags, the "
           "Hamming\n"
           "kernels (ISA) in use, supported and compiled in, the oneDNN version and the number of\n"
           "threads (OMP_NUM_THREADS or all cores).\n\n"
           "  -h, --help    this text\n");
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1) {
        if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            version_usage(stdout);
            return 0;
        }
        fprintf(stderr, "drsch version: unexpected argument '%s'; see 'drsch version --help'\n",
                argv[1]);
        return EXIT_USAGE;
    }
    drsch_error err;
    const char *isa_note = "";
    if (hm_isa_init(&err) != DRSCH_OK)
        isa_note = " (DRSCH_FORCE_ISA refused; see drsch search)";
    printf("drsch %s\n", drsch_version());
    printf("commit:   %s\n", drsch_git_commit());
    printf("compiler: %s (%s build, flags: %s)\n", drsch_compiler(), drsch_build_type(),
           drsch_compiler_flags());
    printf("isa:      %s%s (best supported: %s; compiled:", hm_isa_name(hm_isa_active()), isa_note,
           hm_isa_name(hm_isa_best()));
    for (int i = 0; i < HM_ISA_COUNT; i++)
        if (hm_isa_compiled((hm_isa)i))
            printf(" %s", hm_isa_name((hm_isa)i));
    printf(")\n");
    printf("oneDNN:   %s, kernels for %s\n", nn_onednn_version(), nn_onednn_isa());
    printf("threads:  %d (OpenMP%s)\n", cli_max_threads(),
#ifdef DRSCH_HAVE_OPENMP
           ""
#else
           " not available"
#endif
    );
    return 0;
}

/* Results printed on stdout are only delivered when the buffered output reaches the file or
 * pipe: a full disk (/dev/full), a closed pipe with SIGPIPE ignored (EPIPE) or an I/O error would
 * lose them while the command reports success. So the exit code checks stdout last (flushed, no
 * error seen, closed); else "drsch: cannot write standard output: <cause>" and exit 1 (or the
 * command's own failure code). Commands flush stdout themselves (eval, bench hamming), and a
 * failed write's errno is gone by the end: stdout is a stream over fd 1 that keeps it. */
static int stdout_errno; /* errno of the first failed write of stdout */

static ssize_t stdout_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(STDOUT_FILENO, buf + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (!stdout_errno)
                stdout_errno = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    return (ssize_t)done; /* fewer than size: the stream's error flag */
}

static void wrap_stdout(void)
{
    cookie_io_functions_t io = {.write = stdout_write};
    int tty = isatty(STDOUT_FILENO);
    FILE *f = fopencookie(NULL, "w", io);
    if (!f)
        return; /* the plain stdout: still checked, without the cause of an earlier failure */
    if (tty)    /* as stdio does for a terminal */
        setvbuf(f, NULL, _IOLBF, BUFSIZ);
    stdout = f;
}

/* Flushes stdout and closes fd 1, but never the stream: exit handlers run after this and may
 * still flush or write stdout (libstdc++'s std::cout, when libstdc++ was first loaded after
 * wrap_stdout, holds this very stream and flushes it at exit), and a closed stream is freed
 * memory. Their writes now go to /dev/null instead. */
static int close_stdout(int rc)
{
    errno = 0;
    int bad = fflush(stdout) != 0;
    int e = errno;
    bad |= ferror(stdout) != 0;
    errno = 0;
    if (close(STDOUT_FILENO) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    /* fd 1 stays taken (by /dev/null), so no file opened later can receive stdout's writes */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0 && null != STDOUT_FILENO)
        close(null);
    if (!bad)
        return rc;
    if (stdout_errno)
        e = stdout_errno;
    if (e)
        fprintf(stderr, "drsch: cannot write standard output: %s\n", strerror(e));
    else /* an earlier write failed and its errno is gone */
        fprintf(stderr, "drsch: cannot write standard output: an earlier write failed\n");
    return rc ? rc : 1;
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "-V"))
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(c, COMMANDS[i].name))
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "drsch: unknown command '%s'; see 'drsch --help'\n", c);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* A signal that ends a command removes its temporary files and locks (drsch train stops at
     * a checkpoint on the first). First, before any thread starts: the threads started after it
     * keep the signals blocked (fio_cleanup_on_signals says why). */
    fio_cleanup_on_signals();
    wrap_stdout();
    cli_threads_init();
    return close_stdout(run(argc, argv));
}
