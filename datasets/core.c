/* Errors, dataset ownership, checksums and class counts. */
#include "datasets_internal.h"
#include "fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

void drsch_error_clear(drsch_error *err)
{
    if (!err)
        return;
    err->status = DRSCH_OK;
    err->file[0] = '\0';
    err->record = -1;
    err->msg[0] = '\0';
}

static drsch_status vfail(drsch_error *err, drsch_status s, const char *file, int64_t record,
                          const char *unit, const char *fmt, va_list ap)
{
    if (!err)
        return s;
    err->status = s;
    err->record = record;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    char what[1024];
    vsnprintf(what, sizeof what, fmt, ap);
    if (file && record >= 0)
        snprintf(err->msg, sizeof err->msg, "%s: %s %lld: %s", file, unit, (long long)record, what);
    else if (file)
        snprintf(err->msg, sizeof err->msg, "%s: %s", file, what);
    else
        snprintf(err->msg, sizeof err->msg, "%s", what);
    return s;
}

drsch_status drsch_fail_at(drsch_error *err, drsch_status s, const char *file, int64_t record,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, s, file, record, "record", fmt, ap);
    va_end(ap);
    return s;
}

drsch_status drsch_fail_line(drsch_error *err, drsch_status s, const char *file, int64_t line0,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* record stays 0-based; the message shows the 1-based line number an editor shows */
    vfail(err, s, file, line0 >= 0 ? line0 + 1 : -1, "line", fmt, ap);
    va_end(ap);
    if (err)
        err->record = line0;
    return s;
}

/* ---- datasets ---- */

ds_dataset *ds_dataset_alloc(int64_t n, int c, int h, int w, ds_label_kind kind, int n_classes)
{
    ds_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->label_kind = kind;
    d->n_classes = n_classes;
    size_t img = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    d->images = malloc(img ? img : 1);
    if (kind == DS_LABELS_MULTI)
        d->multi = calloc((size_t)(n ? n : 1) * (size_t)(n_classes ? n_classes : 1), 1);
    else
        d->labels = calloc((size_t)(n ? n : 1), sizeof *d->labels);
    if (!d->images || (kind == DS_LABELS_MULTI ? !d->multi : !d->labels)) {
        ds_dataset_free(d);
        return NULL;
    }
    return d;
}

void ds_dataset_free(ds_dataset *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    free(d->multi);
    free(d->subset);
    if (d->class_names)
        for (int i = 0; i < d->n_classes; i++)
            free(d->class_names[i]);
    free(d->class_names);
    free(d->cams);
    free(d->pair);
    free(d->person);
    free(d->slot);
    free(d->pair_persons);
    free(d->testsets);
    free(d);
}

static uint32_t crc_chunked(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

static uint32_t crc_i32(uint32_t crc, const int32_t *v, int64_t n)
{
    uint8_t buf[4096];
    int64_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; i < n && k + 4 <= sizeof buf; i++, k += 4) {
            uint32_t x = (uint32_t)v[i];
            buf[k] = (uint8_t)x;
            buf[k + 1] = (uint8_t)(x >> 8);
            buf[k + 2] = (uint8_t)(x >> 16);
            buf[k + 3] = (uint8_t)(x >> 24);
        }
        crc = crc_chunked(crc, buf, k);
    }
    return crc;
}

uint32_t ds_checksum(const ds_dataset *d)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    crc = crc_chunked(crc, d->images, (size_t)d->n * (size_t)d->c * (size_t)d->h * (size_t)d->w);
    if (d->labels)
        crc = crc_i32(crc, d->labels, d->n);
    if (d->multi)
        crc = crc_chunked(crc, d->multi, (size_t)d->n * (size_t)d->n_classes);
    if (d->cams)
        crc = crc_i32(crc, d->cams, d->n);
    return crc;
}

void ds_class_counts(const ds_dataset *d, int64_t *counts)
{
    for (int k = 0; k < d->n_classes; k++)
        counts[k] = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->label_kind == DS_LABELS_MULTI) {
            for (int k = 0; k < d->n_classes; k++)
                counts[k] += d->multi[(size_t)i * (size_t)d->n_classes + (size_t)k] != 0;
        } else if (d->labels[i] >= 0 && d->labels[i] < d->n_classes) {
            counts[d->labels[i]]++;
        }
    }
}

/* ---- paths ---- */

int ds_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Through fileio: only a regular file is read. A FIFO would block the reader (gzopen, fopen,
 * H5Fopen) forever and a device never ends, so both are refused here, before any reader opens
 * the file: "PATH: is a FIFO (named pipe), not a dataset file (only regular files are read)". */
drsch_status ds_check_file(const char *path, drsch_error *err)
{
    char msg[DRSCH_PATH_MAX + 256];
    if (fio_check_regular(path, "dataset file", msg, sizeof msg) == 0)
        return DRSCH_OK;
    /* fileio's message starts with the path, which ds_fail adds again */
    size_t n = strlen(path);
    const char *what =
        strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
    return drsch_fail_at(err, DRSCH_ERR_IO, path, -1, "%s", what);
}

drsch_status ds_read_file(const char *path, uint8_t **data, size_t *len, drsch_error *err)
{
    char msg[DRSCH_PATH_MAX + 256];
    if (fio_read_file(path, "dataset file", data, len, msg, sizeof msg) == 0)
        return DRSCH_OK;
    drsch_status s = errno == ENOMEM ? DRSCH_ERR_NOMEM : DRSCH_ERR_IO;
    /* fileio's message starts with the path, which ds_fail adds again */
    size_t n = strlen(path);
    const char *what =
        strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
    return drsch_fail_at(err, s, path, -1, "%s", what);
}

int ds_path_join(char *out, const char *a, const char *b)
{
    int n;
    if (a[0] == '\0')
        n = snprintf(out, DRSCH_PATH_MAX, "%s", b);
    else if (a[strlen(a) - 1] == '/')
        n = snprintf(out, DRSCH_PATH_MAX, "%s%s", a, b);
    else
        n = snprintf(out, DRSCH_PATH_MAX, "%s/%s", a, b);
    return (n < 0 || n >= DRSCH_PATH_MAX) ? -1 : 0;
}
