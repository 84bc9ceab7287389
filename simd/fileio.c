/* Files read whole and written whole (see fileio.h for the guarantees). */
#define _GNU_SOURCE
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int fail(char *msg, size_t n, const char *fmt, ...)
{
    if (msg && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *concat(const char *a, const char *b)
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

static void registry_add(char *path)
{
    for (int i = 0; i < REGISTRY_SLOTS; i++)
        if (!registry[i]) {
            registry[i] = path;
            return;
        }
    /* more than 64 outputs open at once: the extra ones are not removed by a signal */
}

static void registry_drop(const char *path)
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

static void on_fatal_signal(int sig)
{
    int saved = errno;
    fio_remove_temporaries();
    errno = saved;
    raise(sig); /* SA_RESETHAND restored the default action: the process ends by this signal */
}

void fio_cleanup_on_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* a signal the caller's parent ignores (nohup) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
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

static int regular_fd(int fd, const char *path, const char *what, char *msg, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail(msg, n, "%s: cannot read: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return fail(msg, n, "%s: %s, not a %s", path, strerror(EISDIR), what);
    if (!S_ISREG(st.st_mode))
        return fail(msg, n, "%s: is %s, not a %s (only regular files are read)", path,
                    kind_of(st.st_mode), what);
    return 0;
}

static int open_regular(const char *path, const char *what, char *msg, size_t n)
{
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fail(msg, n, "%s: cannot open: %s", path, strerror(errno));
    if (regular_fd(fd, path, what, msg, n) != 0) {
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

FILE *fio_open_read(const char *path, const char *what, char *msg, size_t n)
{
    int fd = open_regular(path, what, msg, n);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        fail(msg, n, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int fio_check_regular(const char *path, const char *what, char *msg, size_t n)
{
    int fd = open_regular(path, what, msg, n);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int fio_read_file(const char *path, const char *what, uint8_t **data, size_t *len, char *msg,
                  size_t n)
{
    *data = NULL;
    *len = 0;
    FILE *f = fio_open_read(path, what, msg, n);
    if (!f)
        return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        errno = e;
        return fail(msg, n, "%s: cannot read: %s", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        fail(msg, n, "%s: out of memory for its %zu bytes", path, size);
        errno = ENOMEM;
        return -1;
    }
    size_t got = fread(buf, 1, size, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        free(buf);
        fail(msg, n, "%s: read error: %s", path,
             e ? strerror(e) : "the file shrank while it was read");
        errno = e ? e : EIO;
        return -1;
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return 0;
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
        registry_drop(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o->shown);
    memset(o, 0, sizeof *o);
}

int fio_out_begin(fio_out *o, const char *path, char *msg, size_t n)
{
    memset(o, 0, sizeof *o);
    if (!path[0])
        return fail(msg, n, "the output file name is empty");
    o->shown = strdup(path);
    o->path = link_target(path);
    if (!o->shown || !o->path) {
        out_release(o);
        return fail(msg, n, "%s: out of memory", path);
    }
    struct stat st;
    int exists = stat(o->path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        out_release(o);
        return fail(msg, n, "%s: cannot write: %s (name a file inside it)", path, strerror(EISDIR));
    }
    int fd;
    if (exists && !S_ISREG(st.st_mode)) {
        /* /dev/null, /dev/stdout, a FIFO: written in place, never replaced */
        fd = open(o->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            out_release(o);
            return fail(msg, n, "%s: cannot write: %s", path, strerror(e));
        }
    } else {
        char suffix[32];
        snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
        o->tmp = concat(o->path, suffix);
        if (!o->tmp) {
            out_release(o);
            return fail(msg, n, "%s: out of memory", path);
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
            return fail(msg, n, "%s: cannot create: %s", path, strerror(e));
        }
        registry_add(o->tmp);
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
        return fail(msg, n, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

void fio_out_write(fio_out *o, const void *p, size_t len)
{
    if (o->err || !len)
        return;
    errno = 0;
    if (fwrite(p, 1, len, o->f) != len)
        o->err = errno ? errno : EIO;
}

/* Flush, sync and close; the temporary file stays for the caller to rename or remove. */
static int out_close(fio_out *o, int durable, char *msg, size_t n)
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
        return fail(msg, n, "%s: cannot write: %s", o->shown, strerror(e));
    return 0;
}

static void sync_folder(const char *path)
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

static int out_publish(fio_out *o, int durable, char *msg, size_t n)
{
    if (!o->tmp)
        return 0;
    if (rename(o->tmp, o->path) != 0)
        return fail(msg, n, "%s: cannot replace it: %s", o->shown, strerror(errno));
    registry_drop(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    if (durable)
        sync_folder(o->path);
    return 0;
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

int fio_out_commit(fio_out *o, int durable, char *msg, size_t n)
{
    int r = out_close(o, durable, msg, n);
    if (r == 0)
        r = out_publish(o, durable, msg, n);
    fio_out_abort(o);
    return r;
}

int fio_write_file(const char *path, const void *data, size_t len, int durable, char *msg, size_t n)
{
    fio_out o;
    if (fio_out_begin(&o, path, msg, n) != 0)
        return -1;
    fio_out_write(&o, data, len);
    return fio_out_commit(&o, durable, msg, n);
}

/* ---- locks ---------------------------------------------------------------------------------- */

int fio_lock_take(fio_lock *l, const char *path, char *msg, size_t n)
{
    l->fd = -1;
    l->path = concat(path, ".lock");
    if (!l->path)
        return fail(msg, n, "%s: out of memory", path);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            int e = errno;
            free(l->path);
            l->path = NULL;
            return fail(msg, n, "%s: cannot create its lock %s.lock: %s", path, path, strerror(e));
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t k = read(fd, pid, sizeof pid - 1);
            close(fd);
            free(l->path);
            l->path = NULL;
            if (e != EWOULDBLOCK)
                return fail(msg, n, "%s: cannot lock %s.lock: %s", path, path, strerror(e));
            pid[k > 0 ? k : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            return fail(
                msg, n,
                "%s: another drsch run%s%s%s is writing it (it holds %s.lock); wait for it to "
                "finish or choose another output",
                path, pid[0] ? " (process " : "", pid, pid[0] ? ")" : "", path);
        }
        /* The holder before us may have removed the file between our open and our flock: the
         * lock is ours only if PATH.lock still names the file we locked. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            char pid[32];
            int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)k) != k) {
                /* the process id is for messages only */
            }
            l->fd = fd;
            registry_add(l->path);
            return 0;
        }
        close(fd);
    }
    free(l->path);
    l->path = NULL;
    return fail(msg, n, "%s: cannot take its lock %s.lock (it keeps being replaced)", path, path);
}

void fio_lock_release(fio_lock *l)
{
    if (l->path && l->fd >= 0) {
        registry_drop(l->path);
        unlink(l->path);
        close(l->fd);
    }
    free(l->path);
    l->path = NULL;
    l->fd = -1;
}

/* ---- sets ----------------------------------------------------------------------------------- */

int fio_set_begin(fio_set *s, const char *prefix, char *msg, size_t n)
{
    memset(s, 0, sizeof *s);
    s->lock.fd = -1;
    s->prefix = strdup(prefix);
    if (!s->prefix)
        return fail(msg, n, "%s: out of memory", prefix);
    if (fio_lock_take(&s->lock, prefix, msg, n) != 0) {
        free(s->prefix);
        s->prefix = NULL;
        return -1;
    }
    return 0;
}

fio_out *fio_set_add(fio_set *s, const char *suffix, char *msg, size_t n)
{
    if (s->count == FIO_SET_MAX) {
        fail(msg, n, "%s: more than %d files in one output set", s->prefix, FIO_SET_MAX);
        return NULL;
    }
    char *dotted = concat(".", suffix);
    char *path = dotted ? concat(s->prefix, dotted) : NULL;
    free(dotted);
    s->suffix[s->count] = strdup(suffix);
    if (!path || !s->suffix[s->count]) {
        free(path);
        free(s->suffix[s->count]);
        s->suffix[s->count] = NULL;
        fail(msg, n, "%s: out of memory", s->prefix);
        return NULL;
    }
    int r = fio_out_begin(&s->member[s->count], path, msg, n);
    free(path);
    if (r != 0) {
        free(s->suffix[s->count]);
        s->suffix[s->count] = NULL;
        return NULL;
    }
    return &s->member[s->count++];
}

/* CRC-32 and size of a file, read back in blocks. */
static int file_crc(const char *path, uint32_t *crc, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static const size_t block = 1 << 20;
    unsigned char *buf = malloc(block);
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    ssize_t k = 0;
    while (buf && (k = read(fd, buf, block)) != 0) {
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        c = crc32_z(c, buf, (z_size_t)k);
        total += (uint64_t)k;
    }
    int e = !buf || k < 0 ? (buf ? errno : ENOMEM) : 0;
    free(buf);
    close(fd);
    if (e) {
        errno = e;
        return -1;
    }
    *crc = (uint32_t)c;
    *size = total;
    return 0;
}

static const char MANIFEST_HEAD[] = "drsch-set 1\n";

/* Removes the members an earlier set at the same prefix listed and this one does not (a
 * PREFIX.cams.npy of a re-id run must not stay beside the set of a later retrieval run). */
static void remove_stale_members(const fio_set *s, const char *manifest_text)
{
    const char *line = manifest_text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char name[256];
        unsigned crc;
        unsigned long long size;
        char buf[400];
        if (len < sizeof buf && line[0] != '#') {
            memcpy(buf, line, len);
            buf[len] = '\0';
            if (sscanf(buf, "%8x %llu %255s", &crc, &size, name) == 3 && !strchr(name, '/')) {
                int kept = 0;
                for (int i = 0; i < s->count; i++)
                    kept |= strcmp(s->suffix[i], name) == 0;
                char *dotted = kept ? NULL : concat(".", name);
                char *path = dotted ? concat(s->prefix, dotted) : NULL;
                if (path)
                    unlink(path);
                free(path);
                free(dotted);
            }
        }
        line = end ? end + 1 : NULL;
    }
}

/* The text of an existing manifest (NULL when there is none or it is not one). */
static char *read_manifest(const char *path)
{
    char msg[8];
    FILE *f = fio_open_read(path, "manifest", msg, sizeof msg);
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len;
    char *text = malloc(cap);
    if (text) {
        len = fread(text, 1, cap - 1, f);
        text[len] = '\0';
        if (strncmp(text, MANIFEST_HEAD, sizeof MANIFEST_HEAD - 1) != 0) {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

int fio_set_commit(fio_set *s, char *msg, size_t n)
{
    int r = 0;
    size_t cap = 256 + (size_t)s->count * 64;
    for (int i = 0; i < s->count; i++)
        cap += strlen(s->suffix[i]);
    char *text = malloc(cap);
    size_t len = 0;
    if (!text)
        r = fail(msg, n, "%s: out of memory", s->prefix);
    else
        len = (size_t)snprintf(
            text, cap,
            "%s# written together as PREFIX.NAME: CRC-32, bytes, NAME; drsch refuses a "
            "member that differs\n",
            MANIFEST_HEAD);
    for (int i = 0; i < s->count && r == 0; i++) {
        fio_out *o = &s->member[i];
        int in_place = !o->tmp; /* a device or FIFO: nothing to list */
        r = out_close(o, 1, msg, n);
        if (r != 0 || in_place)
            continue;
        uint32_t crc = 0;
        uint64_t size = 0;
        if (file_crc(o->tmp, &crc, &size) != 0)
            r = fail(msg, n, "%s: cannot read it back: %s", o->shown, strerror(errno));
        if (r == 0)
            len += (size_t)snprintf(text + len, cap - len, "%08x %llu %s\n", (unsigned)crc,
                                    (unsigned long long)size, s->suffix[i]);
    }
    /* The manifest goes first: until every member follows it, the members it does not match are
     * refused by readers. */
    char *manifest = r == 0 ? concat(s->prefix, ".manifest") : NULL;
    if (r == 0 && !manifest)
        r = fail(msg, n, "%s: out of memory", s->prefix);
    char *previous = r == 0 ? read_manifest(manifest) : NULL;
    if (r == 0)
        r = fio_write_file(manifest, text, len, 1, msg, n);
    for (int i = 0; i < s->count && r == 0; i++)
        r = out_publish(&s->member[i], 0, msg, n);
    if (r == 0 && previous)
        remove_stale_members(s, previous);
    free(previous);
    if (r == 0 && s->count)
        sync_folder(s->member[0].path);
    free(manifest);
    free(text);
    fio_set_abort(s);
    return r;
}

void fio_set_abort(fio_set *s)
{
    for (int i = 0; i < s->count; i++) {
        fio_out_abort(&s->member[i]);
        free(s->suffix[i]);
        s->suffix[i] = NULL;
    }
    s->count = 0;
    fio_lock_release(&s->lock);
    free(s->prefix);
    s->prefix = NULL;
}

int fio_set_verify(const char *path, char *msg, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ext = strrchr(base, '.');
    if (!ext || ext == base)
        return 0;
    const char *dot = ext;
    while (dot > base && dot[-1] != '.')
        dot--;
    if (dot <= base + 1)
        return 0; /* NAME.EXT alone: no prefix */
    size_t plen = (size_t)(dot - 1 - path);
    char *manifest = malloc(plen + sizeof ".manifest");
    if (!manifest)
        return fail(msg, n, "%s: out of memory", path);
    memcpy(manifest, path, plen);
    memcpy(manifest + plen, ".manifest", sizeof ".manifest");
    const char *member = dot;
    int r = 0;
    struct stat st;
    FILE *f = NULL;
    if (stat(manifest, &st) != 0) {
        if (errno != ENOENT)
            r = fail(msg, n, "%s: cannot read: %s", manifest, strerror(errno));
    } else {
        f = fio_open_read(manifest, "manifest", msg, n);
        if (!f)
            r = -1;
    }
    if (f) {
        char line[PATH_MAX + 64];
        int listed = 0;
        unsigned crc = 0;
        unsigned long long size = 0;
        if (!fgets(line, sizeof line, f) || strcmp(line, MANIFEST_HEAD) != 0) {
            r = fail(msg, n,
                     "%s: not a drsch output-set manifest (its first line is not \"drsch-set 1\")",
                     manifest);
        }
        while (r == 0 && !listed && fgets(line, sizeof line, f)) {
            char name[PATH_MAX];
            if (line[0] == '#')
                continue;
            if (sscanf(line, "%8x %llu %4095s", &crc, &size, name) != 3) {
                r = fail(msg, n, "%s: malformed line \"%.*s\"", manifest, (int)strcspn(line, "\n"),
                         line);
                break;
            }
            listed = strcmp(name, member) == 0;
        }
        fclose(f);
        /* not listed: PREFIX.NAME.EXT written beside a set by someone else, not a member */
        uint32_t have = 0;
        uint64_t bytes = 0;
        if (r == 0 && listed) {
            if (file_crc(path, &have, &bytes) != 0)
                r = fail(msg, n, "%s: cannot read: %s", path, strerror(errno));
            else if (bytes != size || have != crc)
                r = fail(msg, n,
                         "%s: not the %s that %s lists (%llu bytes, CRC-32 %08x; this file: %llu "
                         "bytes, %08x): "
                         "a run was interrupted while it wrote the set, or another run wrote part "
                         "of it; "
                         "write the set again",
                         path, member, manifest, size, crc, (unsigned long long)bytes,
                         (unsigned)have);
        }
    }
    free(manifest);
    return r;
}
