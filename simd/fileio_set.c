/* Locks on PATH.lock and output sets with their manifest (see fileio.h for the guarantees). */
#define _GNU_SOURCE
#include "fileio.h"
#include "fileio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- locks ---------------------------------------------------------------------------------- */

drsch_status fio_lock_take(fio_lock *l, const char *path, drsch_error *err)
{
    l->fd = -1;
    l->path = fio_concat(path, ".lock");
    if (!l->path)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            int e = errno;
            free(l->path);
            l->path = NULL;
            return fio_fail(err, "%s: cannot create its lock %s.lock: %s", path, path, strerror(e));
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t k = read(fd, pid, sizeof pid - 1);
            close(fd);
            free(l->path);
            l->path = NULL;
            if (e != EWOULDBLOCK)
                return fio_fail(err, "%s: cannot lock %s.lock: %s", path, path, strerror(e));
            pid[k > 0 ? k : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            return fio_fail(
                err,
                "%s: another drsch run%s%s%s is writing it (it holds %s.lock); wait for it to "
                "finish or choose another output",
                path, pid[0] ? " (process " : "", pid, pid[0] ? ")" : "", path);
        }
        /* The holder before us may have removed the file between our open and our flock: the
         * lock is ours only if PATH.lock still names the file we locked. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            /* The process id, for messages only, over whatever a dead holder left (readers stop
             * at the first newline). Not truncated first: on ext4, a file truncated to 0 is
             * written to disk when it is closed (the auto_da_alloc rule for files replaced
             * by truncation), which cost each output set about 0.8 ms at its end. */
            char pid[32];
            int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (pwrite(fd, pid, (size_t)k, 0) != k) {
                /* the process id is for messages only */
            }
            l->fd = fd;
            fio_registry_add(l->path);
            return DRSCH_OK;
        }
        close(fd);
    }
    free(l->path);
    l->path = NULL;
    return fio_fail(err, "%s: cannot take its lock %s.lock (it keeps being replaced)", path, path);
}

void fio_lock_release(fio_lock *l)
{
    if (l->path && l->fd >= 0) {
        fio_registry_drop(l->path);
        unlink(l->path);
        close(l->fd);
    }
    free(l->path);
    l->path = NULL;
    l->fd = -1;
}

/* ---- sets ----------------------------------------------------------------------------------- */

drsch_status fio_set_begin(fio_set *s, const char *prefix, drsch_error *err)
{
    memset(s, 0, sizeof *s);
    s->lock.fd = -1;
    s->durable = 1;
    s->prefix = strdup(prefix);
    if (!s->prefix)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", prefix);
    drsch_status st = fio_lock_take(&s->lock, prefix, err);
    if (st != DRSCH_OK) {
        free(s->prefix);
        s->prefix = NULL;
        return st;
    }
    return DRSCH_OK;
}

fio_out *fio_set_add(fio_set *s, const char *suffix, drsch_error *err)
{
    if (s->count == FIO_SET_MAX) {
        fio_fail(err, "%s: more than %d files in one output set", s->prefix, FIO_SET_MAX);
        return NULL;
    }
    char *dotted = fio_concat(".", suffix);
    char *path = dotted ? fio_concat(s->prefix, dotted) : NULL;
    free(dotted);
    s->suffix[s->count] = strdup(suffix);
    if (!path || !s->suffix[s->count]) {
        free(path);
        free(s->suffix[s->count]);
        s->suffix[s->count] = NULL;
        drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", s->prefix);
        return NULL;
    }
    int r = fio_out_begin(&s->member[s->count], path, err);
    free(path);
    if (r != 0) {
        free(s->suffix[s->count]);
        s->suffix[s->count] = NULL;
        return NULL;
    }
    s->member[s->count].summed = 1;
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
                char *dotted = kept ? NULL : fio_concat(".", name);
                char *path = dotted ? fio_concat(s->prefix, dotted) : NULL;
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
    drsch_error err;
    FILE *f = fio_open_read(path, "manifest", &err);
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

drsch_status fio_set_commit(fio_set *s, drsch_error *err)
{
    drsch_status r = DRSCH_OK;
    size_t cap = 256 + (size_t)s->count * 64;
    for (int i = 0; i < s->count; i++)
        cap += strlen(s->suffix[i]);
    char *text = malloc(cap);
    size_t len = 0;
    if (!text)
        r = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", s->prefix);
    else
        len = (size_t)snprintf(
            text, cap,
            "%s# written together as PREFIX.NAME: CRC-32, bytes, NAME; drsch refuses a "
            "member that differs\n",
            MANIFEST_HEAD);
    for (int i = 0; i < s->count && r == 0; i++) {
        fio_out *o = &s->member[i];
        int in_place = !o->tmp; /* a device or FIFO: nothing to list */
        r = fio_out_close(o, s->durable, err);
        if (r != 0 || in_place)
            continue;
        /* the CRC of the bytes as they were written (no read-back: the file is the page cache
         * until it reaches the disk, so reading it would check nothing more) */
        len += (size_t)snprintf(text + len, cap - len, "%08x %llu %s\n", (unsigned)o->crc,
                                (unsigned long long)o->bytes, s->suffix[i]);
    }
    /* The manifest goes first: until every member follows it, the members it does not match are
     * refused by readers. */
    char *manifest = r == 0 ? fio_concat(s->prefix, ".manifest") : NULL;
    if (r == 0 && !manifest)
        r = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", s->prefix);
    char *previous = r == 0 ? read_manifest(manifest) : NULL;
    if (r == 0)
        r = fio_write_file(manifest, text, len, s->durable, err);
    for (int i = 0; i < s->count && r == 0; i++)
        r = fio_out_publish(&s->member[i], 0, err);
    if (r == 0 && previous)
        remove_stale_members(s, previous);
    free(previous);
    if (r == 0 && s->count && s->durable)
        fio_sync_folder(s->member[0].path);
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

drsch_status fio_set_verify(const char *path, drsch_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ext = strrchr(base, '.');
    if (!ext || ext == base)
        return DRSCH_OK;
    const char *dot = ext;
    while (dot > base && dot[-1] != '.')
        dot--;
    if (dot <= base + 1)
        return DRSCH_OK; /* NAME.EXT alone: no prefix */
    size_t plen = (size_t)(dot - 1 - path);
    char *manifest = malloc(plen + sizeof ".manifest");
    if (!manifest)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    memcpy(manifest, path, plen);
    memcpy(manifest + plen, ".manifest", sizeof ".manifest");
    const char *member = dot;
    drsch_status r = DRSCH_OK;
    struct stat st;
    FILE *f = NULL;
    if (stat(manifest, &st) != 0) {
        if (errno != ENOENT)
            r = fio_fail(err, "%s: cannot read: %s", manifest, strerror(errno));
    } else {
        f = fio_open_read(manifest, "manifest", err);
        if (!f)
            r = DRSCH_ERR_IO;
    }
    if (f) {
        char line[PATH_MAX + 64];
        int listed = 0;
        unsigned crc = 0;
        unsigned long long size = 0;
        if (!fgets(line, sizeof line, f) || strcmp(line, MANIFEST_HEAD) != 0) {
            r = drsch_fail(
                err, DRSCH_ERR_FORMAT,
                "%s: not a drsch output-set manifest (its first line is not \"drsch-set 1\")",
                manifest);
        }
        while (r == 0 && !listed && fgets(line, sizeof line, f)) {
            char name[PATH_MAX];
            if (line[0] == '#')
                continue;
            if (sscanf(line, "%8x %llu %4095s", &crc, &size, name) != 3) {
                r = drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed line \"%.*s\"", manifest,
                               (int)strcspn(line, "\n"), line);
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
                r = fio_fail(err, "%s: cannot read: %s", path, strerror(errno));
            else if (bytes != size || have != crc)
                r = drsch_fail(
                    err, DRSCH_ERR_CHECKSUM,
                    "%s: not the %s that %s lists (%llu bytes, CRC-32 %08x; this file: %llu "
                    "bytes, %08x): "
                    "a run was interrupted while it wrote the set, or another run wrote part "
                    "of it; "
                    "write the set again",
                    path, member, manifest, size, crc, (unsigned long long)bytes, (unsigned)have);
        }
    }
    free(manifest);
    return r;
}
