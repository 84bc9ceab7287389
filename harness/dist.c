/* The ranks of a command under mpirun and its collectives (dist.h). With DRSCH_HAVE_MPI, MPI
 * (Open MPI from Debian in our builds) does the work, through drsch's MPI module (dist_mpi.h),
 * loaded only when mpirun started the process: MPI_Init_thread (funneled: only the main thread
 * calls MPI; OpenMP threads search), MPI_Allgather / MPI_Gather of each step's status and
 * message, MPI_Gatherv of results, MPI_Reduce of times. Without it, the one-process case. */
#include "dist.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_mpi.h"
#include "module.h"

/* The held text a rank sends to rank 0 at most (a message is a line or two). */
#define DIST_MSG 1024

static int g_rank, g_size = 1, g_mpi;
#if defined(DRSCH_HAVE_MPI)
static const dist_mpi_ops *g_ops; /* drsch's MPI module, once dist_init loaded it */
#endif
static int g_saved_fd = -1; /* the real stderr while a step holds messages back */
static FILE *g_held;

int dist_launched(void)
{
#if defined(DRSCH_HAVE_MPI)
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
#else
    return 0;
#endif
}

int dist_init(const char *cmd)
{
#if defined(DRSCH_HAVE_MPI)
    if (!dist_launched())
        return 0;
    drsch_error err;
    drsch_error_clear(&err);
    dist_mpi_entry_fn entry =
        (dist_mpi_entry_fn)drsch_module_symbol(DIST_MPI_MODULE, DIST_MPI_ENTRY, NULL, &err);
    const dist_mpi_ops *ops = entry ? entry() : NULL;
    if (!ops) {
        fprintf(stderr, "drsch %s: MPI could not start: %s\n", cmd, err.msg);
        return -1;
    }
    if (ops->abi != DIST_MPI_ABI) {
        fprintf(stderr,
                "drsch %s: MPI could not start: drsch's MPI module (%s) is of another drsch "
                "version than this command: install both from one build\n",
                cmd, DIST_MPI_MODULE);
        return -1;
    }
    if (ops->init(&g_rank, &g_size) != 0) {
        fprintf(stderr, "drsch %s: MPI could not start\n", cmd);
        return -1;
    }
    g_ops = ops;
    g_mpi = 1;
    if (g_rank > 0) { /* one copy of what the command prints (its --help) */
        fflush(stdout);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            close(null);
        }
    }
#else
    (void)cmd;
#endif
    return 0;
}

void dist_finalize(void)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_mpi)
        g_ops->finalize();
    g_mpi = 0;
#endif
}

int dist_main(const char *cmd, int (*fn)(int, char **), int argc, char **argv)
{
    if (!dist_launched())
        return fn(argc, argv);
    if (dist_init(cmd))
        return 1;
    int status = fn(argc, argv);
    dist_finalize();
    return status;
}

int dist_agree_alloc(const char *cmd, int ranks, int failed)
{
    if (ranks) /* every rank runs the collectives that follow, or none */
        dist_hold();
    if (failed)
        fprintf(stderr, "drsch %s: out of memory\n", cmd);
    return ranks ? dist_release(cmd, failed) : failed;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

void dist_hold(void)
{
    fflush(stderr);
    g_held = tmpfile();
    if (!g_held)
        return;
    g_saved_fd = dup(STDERR_FILENO);
    if (g_saved_fd < 0 || dup2(fileno(g_held), STDERR_FILENO) < 0) {
        if (g_saved_fd >= 0)
            close(g_saved_fd);
        g_saved_fd = -1;
        fclose(g_held);
        g_held = NULL;
    }
}

/* Ends holding: restores stderr and puts the held text (at most cap - 1 bytes) in buf. */
static void take_held(char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!g_held)
        return;
    fflush(stderr);
    dup2(g_saved_fd, STDERR_FILENO);
    close(g_saved_fd);
    g_saved_fd = -1;
    rewind(g_held);
    size_t n = fread(buf, 1, cap - 1, g_held);
    buf[n] = '\0';
    fclose(g_held);
    g_held = NULL;
}

#if defined(DRSCH_HAVE_MPI)
/* Prints text, each line that begins with "drsch <cmd>: " given "rank R: " after it. */
static void print_as_rank(const char *cmd, const char *text, int rank)
{
    char lead[64];
    int ln = snprintf(lead, sizeof lead, "drsch %s: ", cmd);
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (ln > 0 && (size_t)ln <= len && !strncmp(p, lead, (size_t)ln))
            fprintf(stderr, "%srank %d: %.*s\n", lead, rank, (int)(len - (size_t)ln), p + ln);
        else
            fprintf(stderr, "%.*s\n", (int)len, p);
        p += len + (eol != NULL);
    }
}
#endif

int dist_release(const char *cmd, int rc)
{
    char mine[DIST_MSG];
    take_held(mine, sizeof mine);
    if (g_size == 1) {
        fputs(mine, stderr);
        return rc;
    }
#if defined(DRSCH_HAVE_MPI)
    int *rcs = malloc((size_t)g_size * sizeof *rcs);
    char *all = g_rank == 0 ? malloc((size_t)g_size * DIST_MSG) : NULL;
    if (!rcs || (g_rank == 0 && !all)) /* a few bytes per rank: nothing sensible is left to do */
        g_ops->abort();
    g_ops->allgather_int(rc, rcs);
    g_ops->gather_bytes(mine, DIST_MSG, all, 0);
    int worst = 0, first = -1;
    for (int r = 0; r < g_size; r++) {
        worst = rcs[r] > worst ? rcs[r] : worst;
        if (rcs[r] && first < 0)
            first = r;
    }
    if (g_rank == 0 && worst == 0) {
        fputs(mine, stderr);
    } else if (g_rank == 0) {
        int same = 1;
        for (int r = 1; r < g_size && same; r++)
            same = rcs[r] == rcs[0] && !strcmp(all + (size_t)r * DIST_MSG, all);
        const char *text = all + (size_t)first * DIST_MSG;
        if (!*text)
            fprintf(stderr, "drsch %s: rank %d failed\n", cmd, first);
        else if (same)
            fputs(text, stderr);
        else
            print_as_rank(cmd, text, first);
    }
    free(rcs);
    free(all);
    return worst;
#else
    (void)cmd;
    return rc;
#endif
}

void dist_allgather_u64(uint64_t v, uint64_t *all)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_size > 1) {
        g_ops->allgather_u64(v, all);
        return;
    }
#endif
    all[0] = v;
}

double dist_max(double v)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_size > 1) {
        return g_ops->reduce_max_double(v, 0);
    }
#endif
    return v;
}

void dist_gather(const void *send, size_t n, void *recv, const size_t *counts)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_size > 1) {
        int *c = malloc(2 * (size_t)g_size * sizeof *c);
        if (!c)
            g_ops->abort();
        size_t at = 0;
        for (int r = 0; r < g_size; r++) {
            c[r] = (int)counts[r];
            c[g_size + r] = (int)at;
            at += counts[r];
        }
        g_ops->gatherv_bytes(send, (int)n, recv, c, c + g_size, 0);
        free(c);
        return;
    }
#endif
    (void)counts;
    if (n)
        memcpy(recv, send, n);
}

void dist_allgather_f32(const float *send, float *recv, const int32_t *counts)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_size > 1) {
        int *c = malloc(2 * (size_t)g_size * sizeof *c);
        if (!c)
            g_ops->abort();
        int at = 0;
        for (int r = 0; r < g_size; r++) {
            c[r] = counts[r];
            c[g_size + r] = at;
            at += counts[r];
        }
        g_ops->allgatherv_f32(send, c[g_rank], recv, c, c + g_size);
        free(c);
        return;
    }
#endif
    memcpy(recv, send, sizeof(float) * (size_t)counts[0]);
}

/* MPI's element counts are ints: large buffers go in pieces. */
#define DIST_PIECE ((size_t)1 << 28)

void dist_sum_f32(float *buf, size_t n)
{
#if defined(DRSCH_HAVE_MPI)
    /* A reduction to rank 0, then its result to all: MPI_Allreduce may add in another order on
     * each rank (the standard only recommends the same result everywhere). */
    for (size_t at = 0; g_size > 1 && at < n; at += DIST_PIECE) {
        int len = (int)(n - at < DIST_PIECE ? n - at : DIST_PIECE);
        g_ops->reduce_sum_f32(buf + at, len, 0, g_rank);
        g_ops->bcast_bytes(buf + at, len * (int)sizeof *buf, 0);
    }
#else
    (void)buf, (void)n;
#endif
}

void dist_broadcast_root(void *buf, size_t bytes, int root)
{
#if defined(DRSCH_HAVE_MPI)
    for (size_t at = 0; g_size > 1 && at < bytes; at += DIST_PIECE) {
        int len = (int)(bytes - at < DIST_PIECE ? bytes - at : DIST_PIECE);
        g_ops->bcast_bytes((char *)buf + at, len, root);
    }
#else
    (void)buf, (void)bytes, (void)root;
#endif
}

int32_t dist_max_i32(int32_t v)
{
#if defined(DRSCH_HAVE_MPI)
    if (g_size > 1) {
        return g_ops->allreduce_max_i32(v);
    }
#endif
    return v;
}

void dist_cb_allgather(void *ctx, const float *send, float *recv, const int32_t *counts)
{
    (void)ctx;
    dist_allgather_f32(send, recv, counts);
}

void dist_cb_sum(void *ctx, float *buf, size_t n)
{
    (void)ctx;
    dist_sum_f32(buf, n);
}

void dist_cb_broadcast(void *ctx, void *buf, size_t bytes)
{
    (void)ctx;
    dist_broadcast_root(buf, bytes, 0);
}

void dist_cb_broadcast_root(void *ctx, void *buf, size_t bytes, int32_t root)
{
    (void)ctx;
    dist_broadcast_root(buf, bytes, root);
}

int32_t dist_cb_max(void *ctx, int32_t v)
{
    (void)ctx;
    return dist_max_i32(v);
}
