/* Files read whole and written whole, and the registry of temporary files a signal removes (see
 * fileio.h for the guarantees; locks and output sets: fileio_set.c). */
#define _GNU_SOURCE
#include "fileio.h"
#include "fileio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

drsch_status fio_fail(drsch_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    drsch_vfail(err, DRSCH_ERR_IO, fmt, ap);
    va_end(ap);
    return DRSCH_ERR_IO;
}

char *fio_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* ---- the registry of files a signal handler removes ---------------------------------------- */

#define REGISTRY_SLOTS 64
static char *volatile registry[REGISTRY_SLOTS];

void fio_registry_add(char *path)
{
    for (int i = 0; i < REGISTRY_SLOTS; i++)
        if (!registry[i]) {
            registry[i] = path;
            return;
        }
    /* more than 64 outputs open at once: the extra ones are not removed by a signal */
}

void fio_registry_drop(const char *path)
{
    for (int i = 0; i < REGISTRY_SLOTS; i++)
        if (registry[i] == path)
            registry[i] = NULL;
}

void fio_remove_temporaries(void)
{
    for (int i = 0; i < REGISTRY_SLOTS; i++) {
        char *p = registry[i];
        if (p)
            unlink(p);
    }
}

/* ---- the signals that end a command -------------------------------------------------------- */

/* The flag and signal number a first signal sets while fio_stop_on_signals has armed them */
static _Atomic(volatile sig_atomic_t *) g_stop_flag;
static _Atomic(volatile sig_atomic_t *) g_stop_sig;
static sigset_t g_watched; /* the signals the watcher thread takes */

/* What a stop signal does: set the armed flag if it is not set yet; otherwise remove the
 * temporaries and end the process by the signal. Async-signal-safe: it also runs as a handler,
 * in a thread that has the signals unblocked. */
static void on_stop_signal(int sig)
{
    volatile sig_atomic_t *flag = g_stop_flag, *number = g_stop_sig;
    if (flag && number && !__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        /* both pointers read once (a disarm meanwhile clears them); the stores are atomic, as
         * the thread that polls the flag is another one than the watcher */
        __atomic_store_n(number, sig, __ATOMIC_RELAXED);
        __atomic_store_n(flag, 1, __ATOMIC_RELEASE);
        return;
    }
    int saved = errno;
    fio_remove_temporaries();
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL); /* the watcher has it blocked; a handler too */
    raise(sig);                               /* the default action ends the process */
    errno = saved;
}

static pthread_t g_watcher;
static sigset_t g_waited;   /* g_watched and SIGRTMIN: what the watcher's sigwait takes */
static atomic_int g_ending; /* set by stop_watching before it sends SIGRTMIN */

/* At exit: the signal thread ended and joined (its stack and TLS freed; valgrind counts a thread
 * still running at exit as a possible leak). It is woken by a signal of its own rather than
 * cancelled: pthread_cancel unwinds the thread's stack with libgcc_s, which glibc loads for it
 * (about 0.3 ms at the end of every command: README, "Files, failures and concurrent runs"). A
 * SIGRTMIN sent to the process from outside is taken here and ignored. */
static void stop_watching(void)
{
    atomic_store(&g_ending, 1);
    if (pthread_kill(g_watcher, SIGRTMIN) == 0)
        pthread_join(g_watcher, NULL);
}

static void *watch_signals(void *arg)
{
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&g_waited, &sig) != 0)
            continue;
        if (sig != SIGRTMIN)
            on_stop_signal(sig);
        else if (atomic_load(&g_ending))
            return NULL;
    }
}

void fio_cleanup_on_signals(void)
{
    static int started;
    if (started)
        return;
    started = 1;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&g_watched);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* a signal the caller's parent ignores (nohup) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&g_watched, sigs[i]);
    }
    /* Blocked here, so in every thread created after this one; taken by a thread of their own
     * with sigwait. Without a thread (pthread_create failed) the handler above takes them.
     * SIGRTMIN, which wakes that thread at exit, is blocked too (its default action would end
     * the process) and only ever sent to that thread. */
    g_waited = g_watched;
    sigaddset(&g_waited, SIGRTMIN);
    sigset_t before;
    if (pthread_sigmask(SIG_BLOCK, &g_waited, &before) != 0)
        return;
    if (pthread_create(&g_watcher, NULL, watch_signals, NULL) != 0) {
        pthread_sigmask(SIG_SETMASK, &before, NULL);
        return;
    }
    atexit(stop_watching);
}

int fio_system(const char *cmd)
{
    sigset_t before;
    pthread_sigmask(SIG_UNBLOCK, &g_waited, &before);
    int rc = system(cmd);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    return rc;
}

void fio_stop_on_signals(volatile sig_atomic_t *flag, volatile sig_atomic_t *sig)
{
    g_stop_flag = NULL; /* never a flag without its signal number, while they change */
    g_stop_sig = sig;
    g_stop_flag = flag && sig ? flag : NULL;
}

/* ---- inputs --------------------------------------------------------------------------------- */

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static drsch_status regular_fd(int fd, const char *path, const char *what, drsch_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fio_fail(err, "%s: cannot read: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return fio_fail(err, "%s: %s, not a %s", path, strerror(EISDIR), what);
    if (!S_ISREG(st.st_mode))
        return fio_fail(err, "%s: is %s, not a %s (only regular files are read)", path,
                        kind_of(st.st_mode), what);
    return DRSCH_OK;
}

static int open_regular(const char *path, const char *what, drsch_error *err)
{
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fio_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (regular_fd(fd, path, what, err) != 0) {
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

FILE *fio_open_read(const char *path, const char *what, drsch_error *err)
{
    int fd = open_regular(path, what, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        fio_fail(err, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

drsch_status fio_check_regular(const char *path, const char *what, drsch_error *err)
{
    int fd = open_regular(path, what, err);
    if (fd < 0)
        return DRSCH_ERR_IO;
    close(fd);
    return DRSCH_OK;
}

drsch_status fio_read_file(const char *path, const char *what, uint8_t **data, size_t *len,
                           drsch_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fio_open_read(path, what, err);
    if (!f)
        return DRSCH_ERR_IO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return fio_fail(err, "%s: cannot read: %s", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory for its %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        free(buf);
        return fio_fail(err, "%s: read error: %s", path,
                        e ? strerror(e) : "the file shrank while it was read");
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return DRSCH_OK;
}

/* ---- outputs -------------------------------------------------------------------------------- */

/* The file PATH finally names: symbolic links followed (a dangling one to the path it names). */
static char *link_target(const char *path)
{
    char *cur = strdup(path);
    for (int depth = 0; cur && depth < 40; depth++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur;
        char buf[PATH_MAX];
        ssize_t k = readlink(cur, buf, sizeof buf - 1);
        if (k < 0)
            return cur;
        buf[k] = '\0';
        char *next;
        const char *slash = strrchr(cur, '/');
        if (buf[0] == '/' || !slash) {
            next = strdup(buf);
        } else {
            size_t dl = (size_t)(slash - cur) + 1;
            next = malloc(dl + (size_t)k + 1);
            if (next) {
                memcpy(next, cur, dl);
                memcpy(next + dl, buf, (size_t)k + 1);
            }
        }
        free(cur);
        cur = next;
    }
    return cur;
}

static void out_release(fio_out *o)
{
    if (o->tmp)
        fio_registry_drop(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o->shown);
    memset(o, 0, sizeof *o);
}

drsch_status fio_out_begin(fio_out *o, const char *path, drsch_error *err)
{
    memset(o, 0, sizeof *o);
    if (!path[0])
        return fio_fail(err, "the output file name is empty");
    o->shown = strdup(path);
    o->path = link_target(path);
    if (!o->shown || !o->path) {
        out_release(o);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    }
    struct stat st;
    int exists = stat(o->path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        out_release(o);
        return fio_fail(err, "%s: cannot write: %s (name a file inside it)", path,
                        strerror(EISDIR));
    }
    int fd;
    if (exists && !S_ISREG(st.st_mode)) {
        /* /dev/null, /dev/stdout, a FIFO: written in place, never replaced */
        fd = open(o->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            out_release(o);
            return fio_fail(err, "%s: cannot write: %s", path, strerror(e));
        }
    } else {
        char suffix[32];
        snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
        o->tmp = fio_concat(o->path, suffix);
        if (!o->tmp) {
            out_release(o);
            return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
        }
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) {
            /* left by a dead process that had our process id */
            unlink(o->tmp);
            fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        }
        if (fd < 0) {
            int e = errno;
            out_release(o);
            return fio_fail(err, "%s: cannot create: %s", path, strerror(e));
        }
        fio_registry_add(o->tmp);
        if (exists)
            (void)fchmod(fd, st.st_mode & 07777); /* a replaced file keeps its permissions */
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        int e = errno;
        close(fd);
        if (o->tmp)
            unlink(o->tmp);
        out_release(o);
        return fio_fail(err, "%s: cannot write: %s", path, strerror(e));
    }
    return DRSCH_OK;
}

void fio_out_write(fio_out *o, const void *p, size_t len)
{
    if (o->err || !len)
        return;
    errno = 0;
    if (fwrite(p, 1, len, o->f) != len) {
        o->err = errno ? errno : EIO;
        return;
    }
    if (o->summed)
        o->crc = (uint32_t)crc32_z(o->crc, (const Bytef *)p, (z_size_t)len);
    o->bytes += len;
}

/* Flush, sync and close; the temporary file stays for the caller to rename or remove. */
drsch_status fio_out_close(fio_out *o, int durable, drsch_error *err)
{
    int e = o->err;
    if (!e && fflush(o->f) != 0)
        e = errno ? errno : EIO;
    if (!e && durable && o->tmp && fsync(fileno(o->f)) != 0)
        e = errno;
    if (fclose(o->f) != 0 && !e)
        e = errno ? errno : EIO;
    o->f = NULL;
    if (e)
        return fio_fail(err, "%s: cannot write: %s", o->shown, strerror(e));
    return DRSCH_OK;
}

void fio_sync_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

drsch_status fio_out_publish(fio_out *o, int durable, drsch_error *err)
{
    if (!o->tmp)
        return DRSCH_OK;
    if (rename(o->tmp, o->path) != 0)
        return fio_fail(err, "%s: cannot replace it: %s", o->shown, strerror(errno));
    fio_registry_drop(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    if (durable)
        fio_sync_folder(o->path);
    return DRSCH_OK;
}

void fio_out_abort(fio_out *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp)
        unlink(o->tmp);
    out_release(o);
}

drsch_status fio_out_commit(fio_out *o, int durable, drsch_error *err)
{
    drsch_status r = fio_out_close(o, durable, err);
    if (r == 0)
        r = fio_out_publish(o, durable, err);
    fio_out_abort(o);
    return r;
}

drsch_status fio_write_file(const char *path, const void *data, size_t len, int durable,
                            drsch_error *err)
{
    fio_out o;
    drsch_status st = fio_out_begin(&o, path, err);
    if (st != DRSCH_OK)
        return st;
    fio_out_write(&o, data, len);
    return fio_out_commit(&o, durable, err);
}
