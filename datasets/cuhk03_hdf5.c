/* CUHK03 reader for cuhk-03.mat (MATLAB v7.3, i.e. HDF5) through the HDF5 C API: drsch's HDF5
 * module (drsch-modules/cuhk03_hdf5.so), which libdrsch loads when a CUHK03 file is first read
 * (cuhk03.c), so that no other program or command pays for loading HDF5 and the 35 libraries it
 * links. Built from this file, resize.c and status.c; its one exported symbol is the entry point
 * declared in cuhk03_module.h.
 * Layout as HDF5 sees it (MATLAB stores column-major, so every shape is transposed):
 *   /labeled, /detected: 5 object references (MATLAB 5 x 1 cell), one per camera pair, each to
 *     a (10 x N) array of object references (MATLAB N x 10 cell: N persons, slots 1-5 from the
 *     pair's first camera, 6-10 from its second);
 *   each image: uint8 (3 x W x H) (MATLAB H x W x 3); an empty slot is MATLAB's empty matrix,
 *     stored as a 2-element uint64 array (its shape) or a dataset with no elements: skipped;
 *   /testsets: 20 references (MATLAB 1 x 20 cell), each to a double (2 x 100) array (MATLAB
 *     100 x 2: rows of [pair, person], 1-based).
 * Images are resized (bilinear) to out_h x out_w, default 160 x 60. Not read: the 767/700
 * protocol files (cuhk03_new_protocol_config_*.mat), which are MATLAB v5, not HDF5. */
#include "cuhk03_module.h"
#include "datasets_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#define CUHK03_DEFAULT_H 160
#define CUHK03_DEFAULT_W 60
#define CUHK03_SLOTS 10

/* Every size the file's dataset headers declare is checked before anything is allocated for it:
 * an HDF5 dataset can declare any shape while storing nothing (chunks never written, storage
 * allocated late), so a crafted or corrupt file could otherwise ask for gigabytes. */
/* Largest image side accepted. CUHK03's crops are at most a few hundred pixels a side (the
 * labeled and detected boxes of 1360 x 1024 camera frames, typically about 60-150 wide and
 * 150-350 high); 4096 leaves room for any re-cropped release while bounding an image to 48 MB. */
#define CUHK03_MAX_SIDE 4096
/* Deflate's maximal compression ratio (zlib: about 1032:1), the most a compressed (filtered)
 * dataset of a MATLAB v7.3 file can expand to; an unfiltered dataset holds what it stores. */
#define CUHK03_MAX_RATIO 1032.0
/* Most persons in one camera pair's cell: the real file has 843 at most (1467 in 5 pairs). */
#define CUHK03_MAX_PERSONS 100000
/* Most entries of 'testsets': the real file has 20. */
#define CUHK03_MAX_TESTSETS 1000

typedef struct {
    hid_t file;
    const char *path;
    const char *cell; /* "labeled" or "detected" */
    int oh, ow;
    drsch_error *err;
    /* growing outputs */
    uint8_t *images;
    int32_t *labels, *cams, *pair, *person, *slot;
    int64_t n, cap;
    int n_pairs;
    int32_t pair_persons[16];
    /* scratch */
    uint8_t *raw, *hwc;
    size_t raw_cap;
} reader;

static int grow(reader *r)
{
    if (r->n < r->cap)
        return 0;
    int64_t nc = r->cap ? r->cap * 2 : 1024;
    size_t per = (size_t)3 * (size_t)r->oh * (size_t)r->ow;
    uint8_t *im = realloc(r->images, (size_t)nc * per);
    if (!im)
        return -1;
    r->images = im;
    int32_t **arr[5] = {&r->labels, &r->cams, &r->pair, &r->person, &r->slot};
    for (int k = 0; k < 5; k++) {
        int32_t *p = realloc(*arr[k], (size_t)nc * sizeof **arr[k]);
        if (!p)
            return -1;
        *arr[k] = p;
    }
    r->cap = nc;
    return 0;
}

/* Whether dataset ds can hold `bytes` bytes of elements: no more than it stores when unfiltered,
 * CUHK03_MAX_RATIO times that when compressed. *stored receives what it stores. */
static int storage_holds(hid_t ds, double bytes, unsigned long long *stored)
{
    hsize_t st = H5Dget_storage_size(ds); /* 0 also when nothing is allocated */
    hid_t dcpl = H5Dget_create_plist(ds);
    int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    *stored = (unsigned long long)st;
    return bytes <= (double)st * (nf > 0 ? CUHK03_MAX_RATIO : 1.0);
}

/* Reads all object references of dataset `ds` (any shape); dims receives its shape. */
static drsch_status read_refs(reader *r, hid_t ds, const char *what, hobj_ref_t **refs,
                              hsize_t *dims, int *rank)
{
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    drsch_status s = DRSCH_OK;
    int rk = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (ty < 0 || rk < 1 || rk > 2 || H5Tget_class(ty) != H5T_REFERENCE) {
        s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                          "%s is not a MATLAB cell (array of object references)", what);
        goto done;
    }
    hsize_t d2[2] = {1, 1};
    H5Sget_simple_extent_dims(sp, d2, NULL);
    if (rk == 1)
        d2[1] = 1;
    /* a reference is 8 bytes stored (hobj_ref_t): the count must fit in what the dataset stores */
    double declared = (double)d2[0] * (double)d2[1];
    unsigned long long stored = 0;
    if (!storage_holds(ds, declared * sizeof(hobj_ref_t), &stored)) {
        s = drsch_fail_at(
            r->err, DRSCH_ERR_FORMAT, r->path, -1,
            "%s declares %llu x %llu references (%.0f bytes) but its dataset stores only "
            "%llu bytes",
            what, (unsigned long long)d2[0], (unsigned long long)d2[1],
            declared * sizeof(hobj_ref_t), stored);
        goto done;
    }
    hsize_t total = d2[0] * d2[1];
    *refs = malloc((size_t)(total ? total : 1) * sizeof **refs);
    if (!*refs) {
        s = drsch_fail_at(r->err, DRSCH_ERR_NOMEM, r->path, -1, "out of memory");
        goto done;
    }
    if (total && H5Dread(ds, H5T_STD_REF_OBJ, H5S_ALL, H5S_ALL, H5P_DEFAULT, *refs) < 0) {
        free(*refs);
        *refs = NULL;
        s = drsch_fail_at(r->err, DRSCH_ERR_HDF5, r->path, -1, "cannot read the references of %s",
                          what);
        goto done;
    }
    dims[0] = d2[0];
    dims[1] = rk == 2 ? d2[1] : 1;
    *rank = rk;
done:
    if (sp >= 0)
        H5Sclose(sp);
    if (ty >= 0)
        H5Tclose(ty);
    return s;
}

/* One image slot: appends the image, or does nothing for an empty slot. */
static drsch_status read_image(reader *r, hobj_ref_t ref, int pair, int person, int slot)
{
    char where[128];
    snprintf(where, sizeof where, "%s{%d}(%d, %d)", r->cell, pair, person, slot + 1);
    hid_t ds = H5Rdereference2(r->file, H5P_DEFAULT, H5R_OBJECT, &ref);
    if (ds < 0)
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1, "%s: dangling object reference",
                             where);
    drsch_status s = DRSCH_OK;
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    if (sp < 0 || ty < 0) {
        s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                          "%s: reference does not point to a dataset", where);
        goto done;
    }
    int rk = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[8] = {0};
    if (rk < 0 || rk > 8) {
        s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1, "%s: bad dataspace", where);
        goto done;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cls = H5Tget_class(ty);
    size_t tsz = H5Tget_size(ty);
    /* MATLAB's empty matrix: no elements, or its 2-element uint64 shape vector */
    if (np == 0 || (np == 2 && cls == H5T_INTEGER && tsz == 8))
        goto done;
    if (cls != H5T_INTEGER || tsz != 1 || rk != 3 || (dims[0] != 3 && dims[2] != 3)) {
        s = drsch_fail_at(
            r->err, DRSCH_ERR_FORMAT, r->path, -1,
            "%s: expected a uint8 RGB image (3 x W x H as HDF5 sees MATLAB's H x W x 3), "
            "got rank %d, "
            "%zu-byte %s elements",
            where, rk, tsz, cls == H5T_INTEGER ? "integer" : "non-integer");
        goto done;
    }
    /* channel-first (3, W, H) is what MATLAB writes; (W, H, 3) is accepted too */
    int chw = dims[0] == 3;
    hsize_t dw = chw ? dims[1] : dims[0], dh = chw ? dims[2] : dims[1];
    if (dw == 0 || dh == 0 || dw > CUHK03_MAX_SIDE || dh > CUHK03_MAX_SIDE) {
        s = drsch_fail_at(
            r->err, DRSCH_ERR_FORMAT, r->path, -1,
            "%s: image declares %llux%llux3 pixels (height x width x channels); images "
            "larger than %d "
            "pixels a side are refused",
            where, (unsigned long long)dh, (unsigned long long)dw, CUHK03_MAX_SIDE);
        goto done;
    }
    int W = (int)dw, H = (int)dh;
    size_t need = (size_t)W * (size_t)H * 3;
    unsigned long long stored = 0;
    if (!storage_holds(ds, (double)need, &stored)) {
        s = drsch_fail_at(
            r->err, DRSCH_ERR_FORMAT, r->path, -1,
            "%s: image declares %dx%dx3 pixels (%zu bytes) but its dataset stores only %llu bytes",
            where, H, W, need, stored);
        goto done;
    }
    if (need > r->raw_cap) {
        free(r->raw);
        free(r->hwc);
        r->raw = malloc(need);
        r->hwc = malloc(need);
        r->raw_cap = r->raw && r->hwc ? need : 0;
        if (!r->raw_cap) {
            s = drsch_fail_at(r->err, DRSCH_ERR_NOMEM, r->path, -1, "out of memory");
            goto done;
        }
    }
    if (H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->raw) < 0) {
        s = drsch_fail_at(r->err, DRSCH_ERR_HDF5, r->path, -1, "%s: cannot read the image", where);
        goto done;
    }
    /* to H x W x 3 interleaved */
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < W; x++)
            for (int y = 0; y < H; y++) {
                size_t src = chw ? ((size_t)c * W + x) * H + y : ((size_t)x * H + y) * 3 + c;
                r->hwc[((size_t)y * W + x) * 3 + c] = r->raw[src];
            }
    if (grow(r)) {
        s = drsch_fail_at(r->err, DRSCH_ERR_NOMEM, r->path, -1, "out of memory");
        goto done;
    }
    size_t per = (size_t)3 * (size_t)r->oh * (size_t)r->ow;
    ds_resize_bilinear_hwc_to_chw(r->hwc, H, W, 3, r->images + (size_t)r->n * per, r->oh, r->ow);
    r->pair[r->n] = pair;
    r->person[r->n] = person;
    r->slot[r->n] = slot;
    r->cams[r->n] = 2 * (pair - 1) + (slot >= 5);
    r->labels[r->n] = person - 1; /* pair offset added once all pairs are read */
    r->n++;
done:
    if (sp >= 0)
        H5Sclose(sp);
    if (ty >= 0)
        H5Tclose(ty);
    H5Oclose(ds); /* a reference may point to a group: H5Dclose would leak it (and the file) */
    return s;
}

static drsch_status read_pairs(reader *r)
{
    if (H5Lexists(r->file, r->cell, H5P_DEFAULT) <= 0)
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                             "no dataset '%s' (expected MATLAB v7.3 cuhk-03.mat with 'labeled', "
                             "'detected', 'testsets')",
                             r->cell);
    hid_t top = H5Dopen2(r->file, r->cell, H5P_DEFAULT);
    if (top < 0)
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1, "'%s' is not a dataset",
                             r->cell);
    hobj_ref_t *prefs = NULL;
    hsize_t pd[2];
    int rk;
    char what[64];
    snprintf(what, sizeof what, "'%s'", r->cell);
    drsch_status s = read_refs(r, top, what, &prefs, pd, &rk);
    H5Dclose(top);
    if (s)
        return s;
    r->n_pairs = (int)(pd[0] * pd[1]);
    if (r->n_pairs < 1 || r->n_pairs > 16) {
        free(prefs);
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                             "'%s' holds %d camera pairs, expected 5", r->cell, r->n_pairs);
    }
    for (int p = 0; p < r->n_pairs && !s; p++) {
        hid_t cell = H5Rdereference2(r->file, H5P_DEFAULT, H5R_OBJECT, &prefs[p]);
        snprintf(what, sizeof what, "%s{%d}", r->cell, p + 1);
        if (cell < 0) {
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "%s: dangling object reference", what);
            break;
        }
        hobj_ref_t *irefs = NULL;
        hsize_t id[2];
        s = read_refs(r, cell, what, &irefs, id, &rk);
        H5Oclose(cell);
        if (s)
            break;
        /* (10 x N) as HDF5 sees MATLAB's N x 10; a (N x 10) layout is accepted too */
        int slot_major = rk == 2 && id[0] == CUHK03_SLOTS;
        if (!slot_major && !(rk == 2 && id[1] == CUHK03_SLOTS)) {
            free(irefs);
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "%s: shape %llu x %llu, expected 10 x N", what,
                              (unsigned long long)id[0], (unsigned long long)id[1]);
            break;
        }
        hsize_t np = slot_major ? id[1] : id[0];
        if (np > CUHK03_MAX_PERSONS) {
            free(irefs);
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "%s: %llu persons, more than the %d accepted", what,
                              (unsigned long long)np, CUHK03_MAX_PERSONS);
            break;
        }
        int persons = (int)np;
        r->pair_persons[p] = persons;
        for (int pe = 0; pe < persons && !s; pe++)
            for (int sl = 0; sl < CUHK03_SLOTS && !s; sl++) {
                size_t at = slot_major ? (size_t)sl * (size_t)persons + (size_t)pe
                                       : (size_t)pe * CUHK03_SLOTS + sl;
                s = read_image(r, irefs[at], p + 1, pe + 1, sl);
            }
        free(irefs);
    }
    free(prefs);
    return s;
}

/* A double from the file as int32; NaN and values outside int32 (converting them is undefined
 * behaviour) become 0, which the range check then reports as a nonexistent pair / person. */
static int32_t to_i32(double v) { return v >= -2147483648.0 && v <= 2147483647.0 ? (int32_t)v : 0; }

static drsch_status read_testsets(reader *r, ds_dataset *d)
{
    if (H5Lexists(r->file, "testsets", H5P_DEFAULT) <= 0)
        return DRSCH_OK; /* the classic protocol reports the absence */
    hid_t top = H5Dopen2(r->file, "testsets", H5P_DEFAULT);
    if (top < 0)
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1, "'testsets' is not a dataset");
    hobj_ref_t *refs = NULL;
    hsize_t td[2];
    int rk;
    drsch_status s = read_refs(r, top, "'testsets'", &refs, td, &rk);
    H5Dclose(top);
    if (s)
        return s;
    if (td[0] * td[1] > CUHK03_MAX_TESTSETS) {
        free(refs);
        return drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                             "'testsets' holds %llu entries, more than the %d accepted",
                             (unsigned long long)(td[0] * td[1]), CUHK03_MAX_TESTSETS);
    }
    int nt = (int)(td[0] * td[1]);
    double *buf = NULL;
    for (int t = 0; t < nt && !s; t++) {
        hid_t ds = H5Rdereference2(r->file, H5P_DEFAULT, H5R_OBJECT, &refs[t]);
        if (ds < 0) {
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "testsets{%d}: dangling object reference", t + 1);
            break;
        }
        hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
        size_t tsz = ty >= 0 ? H5Tget_size(ty) : 0;
        if (ty >= 0)
            H5Tclose(ty);
        hsize_t dm[2] = {0, 0};
        int k = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (k == 2) /* dm holds two dimensions: ask only when there are two */
            H5Sget_simple_extent_dims(sp, dm, NULL);
        if (sp >= 0)
            H5Sclose(sp);
        /* (2 x rows) as HDF5 sees MATLAB's rows x 2 */
        if (k != 2 || dm[0] != 2 || dm[1] == 0) {
            H5Oclose(ds);
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "testsets{%d}: shape %llu x %llu, expected 2 x rows", t + 1,
                              (unsigned long long)dm[0], (unsigned long long)dm[1]);
            break;
        }
        /* a test set lists identities: no more rows than the file has persons */
        if (dm[1] > (hsize_t)d->n_classes) {
            H5Oclose(ds);
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "testsets{%d} has %llu rows, more than the %d persons of '%s'", t + 1,
                              (unsigned long long)dm[1], d->n_classes, r->cell);
            break;
        }
        unsigned long long stored = 0;
        if (!storage_holds(ds, (double)dm[1] * 2 * (double)tsz, &stored)) {
            H5Oclose(ds);
            s = drsch_fail_at(
                r->err, DRSCH_ERR_FORMAT, r->path, -1,
                "testsets{%d} declares 2 x %llu numbers but its dataset stores only %llu bytes",
                t + 1, (unsigned long long)dm[1], stored);
            break;
        }
        int rows = (int)dm[1];
        if (t == 0) {
            d->testset_rows = rows;
            d->testsets = malloc((size_t)nt * (size_t)rows * 2 * sizeof *d->testsets);
            buf = malloc((size_t)rows * 2 * sizeof *buf);
            if (!d->testsets || !buf) {
                H5Oclose(ds);
                s = drsch_fail_at(r->err, DRSCH_ERR_NOMEM, r->path, -1, "out of memory");
                break;
            }
        } else if (rows != d->testset_rows) {
            H5Oclose(ds);
            s = drsch_fail_at(r->err, DRSCH_ERR_FORMAT, r->path, -1,
                              "testsets{%d} has %d rows, testsets{1} has %d", t + 1, rows,
                              d->testset_rows);
            break;
        }
        herr_t e = H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Oclose(ds);
        if (e < 0) {
            s = drsch_fail_at(r->err, DRSCH_ERR_HDF5, r->path, -1,
                              "testsets{%d}: cannot read as numbers", t + 1);
            break;
        }
        int32_t *o = d->testsets + (size_t)t * (size_t)rows * 2;
        for (int i = 0; i < rows; i++) {
            o[2 * i] = to_i32(buf[i]);            /* pair   = MATLAB column 1 */
            o[2 * i + 1] = to_i32(buf[rows + i]); /* person = MATLAB column 2 */
        }
    }
    free(buf);
    free(refs);
    if (!s)
        d->n_testsets = nt;
    return s;
}

drsch_status drsch_cuhk03_hdf5_read(int abi, size_t dataset_size, size_t error_size,
                                    const char *mat, int detected, int out_h, int out_w,
                                    ds_dataset *d, drsch_error *err)
{
    if (abi != DS_CUHK03_ABI || dataset_size != sizeof *d || error_size != sizeof *err)
        return DRSCH_ERR_VERSION; /* err's layout is not known: the caller names the cause */
    /* library code never prints: silence HDF5's error stack printing while we work */
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    reader r;
    memset(&r, 0, sizeof r);
    r.path = mat;
    r.cell = detected ? "detected" : "labeled";
    r.oh = out_h > 0 ? out_h : CUHK03_DEFAULT_H;
    r.ow = out_w > 0 ? out_w : CUHK03_DEFAULT_W;
    r.err = err;
    drsch_status s = DRSCH_OK;
    if (H5Fis_hdf5(mat) <= 0) {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, mat, -1,
                          "not an HDF5 file (cuhk-03.mat must be MATLAB v7.3)");
        goto done;
    }
    r.file = H5Fopen(mat, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r.file < 0) {
        s = drsch_fail_at(err, DRSCH_ERR_HDF5, mat, -1, "HDF5 cannot open the file");
        goto done;
    }
    s = read_pairs(&r);
    if (s)
        goto done;
    if (r.n == 0) {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, mat, -1, "'%s' holds no images", r.cell);
        goto done;
    }
    int32_t offset[17] = {0};
    for (int p = 0; p < r.n_pairs; p++)
        offset[p + 1] = offset[p] + r.pair_persons[p];
    for (int64_t i = 0; i < r.n; i++)
        r.labels[i] += offset[r.pair[i] - 1];
    d->kind = DS_KIND_CUHK03;
    d->n = r.n;
    d->c = 3;
    d->h = r.oh;
    d->w = r.ow;
    d->label_kind = DS_LABELS_IDENTITY;
    d->n_classes = offset[r.n_pairs];
    d->images = r.images;
    d->labels = r.labels;
    d->cams = r.cams;
    d->pair = r.pair;
    d->person = r.person;
    d->slot = r.slot;
    r.images = NULL;
    r.labels = r.cams = r.pair = r.person = r.slot = NULL;
    d->n_pairs = r.n_pairs;
    d->pair_persons = malloc((size_t)r.n_pairs * sizeof *d->pair_persons);
    if (!d->pair_persons) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, mat, -1, "out of memory");
        goto done;
    }
    memcpy(d->pair_persons, r.pair_persons, (size_t)r.n_pairs * sizeof *d->pair_persons);
    snprintf(d->name, sizeof d->name, "cuhk03-%s", r.cell);
    snprintf(d->source, sizeof d->source, "%s", mat);
    s = read_testsets(&r, d);
    if (!s)
        for (int t = 0; t < d->n_testsets && !s; t++)
            for (int i = 0; i < d->testset_rows && !s; i++) {
                int pr = d->testsets[((size_t)t * d->testset_rows + i) * 2];
                int pe = d->testsets[((size_t)t * d->testset_rows + i) * 2 + 1];
                if (pr < 1 || pr > d->n_pairs || pe < 1 || pe > d->pair_persons[pr - 1])
                    s = drsch_fail_at(err, DRSCH_ERR_RANGE, mat, i,
                                      "testsets{%d}: (pair %d, person %d) does not exist", t + 1,
                                      pr, pe);
            }
done:
    if (r.file > 0)
        H5Fclose(r.file);
    free(r.images);
    free(r.labels);
    free(r.cams);
    free(r.pair);
    free(r.person);
    free(r.slot);
    free(r.raw);
    free(r.hwc);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return s; /* on an error, the caller frees what d holds */
}
