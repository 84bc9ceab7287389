/* IDX reader (MNIST, Fashion-MNIST): big-endian magic 0x00000803 (uint8, 3 dims: N x H x W) for
 * images and 0x00000801 (uint8, 1 dim: N) for labels, gzip-compressed or raw (zlib's gzread
 * reads both). Labels must lie in [0, 10). Does not read other IDX element types. */
#include "datasets_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_U8_1D 0x00000801u
#define IDX_MAGIC_U8_3D 0x00000803u
#define IDX_CLASSES 10
/* deflate's maximum compression ratio (zlib technical details: 1032:1), so a file of s bytes,
 * gzip or raw, holds at most IDX_MAX_RATIO * s bytes of data. */
#define IDX_MAX_RATIO 1032.0

/* Whether path can hold `need` bytes of data; refuses header counts a small file cannot back
 * before they are allocated. */
static int idx_can_hold(const char *path, double need)
{
    struct stat st;
    return stat(path, &st) != 0 || need <= IDX_MAX_RATIO * (double)st.st_size + 64;
}

static const char *const FASHION_NAMES[IDX_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* Reads exactly n bytes; returns the number read (short on EOF or error). */
static size_t gz_read_full(gzFile f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        unsigned k = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int r = gzread(f, (uint8_t *)buf + got, k);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Opens path and reads its IDX header; dims holds ndim entries. */
static drsch_status idx_open(const char *path, uint32_t magic, int ndim, uint32_t *dims,
                             gzFile *out, drsch_error *err)
{
    drsch_status cs = ds_check_file(path, err);
    if (cs)
        return cs;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return drsch_fail_at(err, DRSCH_ERR_IO, path, -1, "cannot open: %s",
                             strerror(errno ? errno : ENOENT));
    uint8_t hdr[16];
    size_t need = 4 + 4 * (size_t)ndim;
    if (gz_read_full(f, hdr, need) != need) {
        gzclose(f);
        return drsch_fail_at(err, DRSCH_ERR_IO, path, -1,
                             "truncated IDX header (expected %zu bytes)", need);
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        gzclose(f);
        return drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                             "wrong IDX magic 0x%08x (expected 0x%08x: uint8, %d dims)", m, magic,
                             ndim);
    }
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(hdr + 4 + 4 * i);
    *out = f;
    return DRSCH_OK;
}

drsch_status ds_load_idx_pair(const char *images_path, const char *labels_path, ds_dataset **out,
                              drsch_error *err)
{
    drsch_error_clear(err);
    *out = NULL;
    uint32_t idim[3] = {0}, ldim[1] = {0};
    gzFile fi = NULL, fl = NULL;
    drsch_status s = idx_open(images_path, IDX_MAGIC_U8_3D, 3, idim, &fi, err);
    if (s)
        return s;
    s = idx_open(labels_path, IDX_MAGIC_U8_1D, 1, ldim, &fl, err);
    if (s) {
        gzclose(fi);
        return s;
    }
    ds_dataset *d = NULL;
    if (idim[0] != ldim[0]) {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, labels_path, -1, "%u labels for %u images in %s",
                          ldim[0], idim[0], images_path);
        goto done;
    }
    if (idim[1] == 0 || idim[2] == 0 || idim[1] > 4096 || idim[2] > 4096 || idim[0] > (1u << 28)) {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, images_path, -1,
                          "implausible image dimensions %u x %u x %u", idim[0], idim[1], idim[2]);
        goto done;
    }
    double need = (double)idim[0] * idim[1] * idim[2];
    if (!idx_can_hold(images_path, need) || !idx_can_hold(labels_path, (double)ldim[0])) {
        s = drsch_fail_at(
            err, DRSCH_ERR_IO, idx_can_hold(images_path, need) ? labels_path : images_path, -1,
            "truncated: the header promises %u images of %u x %u, more than the file can hold",
            idim[0], idim[1], idim[2]);
        goto done;
    }
    d = ds_dataset_alloc(idim[0], 1, (int)idim[1], (int)idim[2], DS_LABELS_SINGLE, IDX_CLASSES);
    if (!d) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, images_path, -1, "cannot allocate %u images",
                          idim[0]);
        goto done;
    }
    size_t rec = (size_t)idim[1] * idim[2];
    size_t got = gz_read_full(fi, d->images, rec * d->n);
    if (got != rec * d->n) {
        int zerr = 0;
        const char *zmsg = gzerror(fi, &zerr);
        s = drsch_fail_at(err, DRSCH_ERR_IO, images_path, (int64_t)(got / rec),
                          "truncated: expected %lld images of %zu bytes%s%s", (long long)d->n, rec,
                          zerr < 0 ? "; zlib: " : "", zerr < 0 ? zmsg : "");
        goto done;
    }
    uint8_t *lab = malloc(d->n ? (size_t)d->n : 1);
    if (!lab) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, labels_path, -1, "out of memory");
        goto done;
    }
    got = gz_read_full(fl, lab, (size_t)d->n);
    if (got != (size_t)d->n) {
        free(lab);
        s = drsch_fail_at(err, DRSCH_ERR_IO, labels_path, (int64_t)got,
                          "truncated: expected %lld labels", (long long)d->n);
        goto done;
    }
    for (int64_t i = 0; i < d->n; i++) {
        if (lab[i] >= IDX_CLASSES) {
            s = drsch_fail_at(err, DRSCH_ERR_RANGE, labels_path, i, "label %u out of range [0, %d)",
                              lab[i], IDX_CLASSES);
            free(lab);
            goto done;
        }
        d->labels[i] = lab[i];
    }
    free(lab);
    d->kind = DS_KIND_IDX;
    snprintf(d->name, sizeof d->name, "idx");
    snprintf(d->source, sizeof d->source, "%s", images_path);
done:
    gzclose(fi);
    gzclose(fl);
    if (s) {
        ds_dataset_free(d);
        return s;
    }
    *out = d;
    return DRSCH_OK;
}

/* Finds <dir>/<stem> among the spellings in use: train-images-idx3-ubyte(.gz) and
 * train-images.idx3-ubyte(.gz). */
static int find_idx_file(const char *dir, const char *prefix, const char *suffix, char *out)
{
    const char *seps[2] = {"-", "."};
    const char *exts[2] = {".gz", ""};
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            char name[256];
            snprintf(name, sizeof name, "%s%s%s%s", prefix, seps[s], suffix, exts[e]);
            if (ds_path_join(out, dir, name) == 0 && ds_file_exists(out))
                return 0;
        }
    char name[256];
    snprintf(name, sizeof name, "%s-%s.gz", prefix, suffix);
    ds_path_join(out, dir, name);
    return -1;
}

drsch_status ds_load_idx_dir(const char *dir, const char *name, ds_dataset **out, drsch_error *err)
{
    drsch_error_clear(err);
    *out = NULL;
    char ti[DRSCH_PATH_MAX], tl[DRSCH_PATH_MAX], vi[DRSCH_PATH_MAX], vl[DRSCH_PATH_MAX];
    const struct {
        char *buf;
        const char *prefix, *suffix;
    } files[4] = {{ti, "train", "images-idx3-ubyte"},
                  {tl, "train", "labels-idx1-ubyte"},
                  {vi, "t10k", "images-idx3-ubyte"},
                  {vl, "t10k", "labels-idx1-ubyte"}};
    for (int i = 0; i < 4; i++) {
        char pre[64];
        /* the "." spelling separates the stem before idxN: train-images.idx3-ubyte */
        const char *dash = strchr(files[i].suffix, '-');
        snprintf(pre, sizeof pre, "%s-%.*s", files[i].prefix, (int)(dash - files[i].suffix),
                 files[i].suffix);
        if (find_idx_file(dir, pre, dash + 1, files[i].buf) != 0)
            return drsch_fail_at(err, DRSCH_ERR_IO, files[i].buf, -1,
                                 "missing IDX file (expected %s-%s[.gz] or the '.' spelling in %s)",
                                 files[i].prefix, files[i].suffix, dir);
    }
    ds_dataset *a = NULL, *b = NULL;
    drsch_status s = ds_load_idx_pair(ti, tl, &a, err);
    if (s)
        return s;
    s = ds_load_idx_pair(vi, vl, &b, err);
    if (s) {
        ds_dataset_free(a);
        return s;
    }
    if (a->h != b->h || a->w != b->w) {
        drsch_fail_at(err, DRSCH_ERR_FORMAT, vi, -1,
                      "images are %d x %d but the training images are %d x %d", b->h, b->w, a->h,
                      a->w);
        ds_dataset_free(a);
        ds_dataset_free(b);
        return DRSCH_ERR_FORMAT;
    }
    ds_dataset *d = ds_dataset_alloc(a->n + b->n, 1, a->h, a->w, DS_LABELS_SINGLE, IDX_CLASSES);
    if (d)
        d->subset = malloc((size_t)(a->n + b->n) * sizeof *d->subset);
    if (!d || !d->subset) {
        ds_dataset_free(d);
        ds_dataset_free(a);
        ds_dataset_free(b);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, dir, -1, "out of memory");
    }
    size_t rec = (size_t)a->h * (size_t)a->w;
    memcpy(d->images, a->images, rec * (size_t)a->n);
    memcpy(d->images + rec * (size_t)a->n, b->images, rec * (size_t)b->n);
    memcpy(d->labels, a->labels, sizeof(int32_t) * (size_t)a->n);
    memcpy(d->labels + a->n, b->labels, sizeof(int32_t) * (size_t)b->n);
    for (int64_t i = 0; i < d->n; i++)
        d->subset[i] = i >= a->n;
    ds_dataset_free(a);
    ds_dataset_free(b);
    d->kind = DS_KIND_IDX;
    snprintf(d->name, sizeof d->name, "%s", name ? name : "idx");
    snprintf(d->source, sizeof d->source, "%s", dir);
    if (name && strstr(name, "fashion")) {
        d->class_names = calloc(IDX_CLASSES, sizeof *d->class_names);
        if (d->class_names)
            for (int k = 0; k < IDX_CLASSES; k++)
                d->class_names[k] = strdup(FASHION_NAMES[k]);
    }
    *out = d;
    return DRSCH_OK;
}
