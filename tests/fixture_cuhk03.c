/* The CUHK03 v7.3 .mat writer of the test suites (see fixture_cuhk03.h). */
#include "fixture_cuhk03.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* Creates dataset `name` of the given type and shape and writes data (NULL: leave unwritten). */
static int put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
               const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (sp < 0)
        return -1;
    hid_t ds = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = ds >= 0 && (!data || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(sp);
    return ok ? 0 : -1;
}

int fx_cuhk03_write(const char *path, const fx_cuhk03 *x, char *msg, size_t cap)
{
    if (x->pairs < 1 || x->h < 1 || x->w < 1 ||
        (x->n_testsets && (x->testset_rows < 1 || !x->testsets)))
        return fail(msg, cap, "%s: bad fixture description", path);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return fail(msg, cap, "%s: cannot create the HDF5 file", path);
    int rc = -1;
    hid_t g = H5Gcreate2(f, "#refs#", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hobj_ref_t *pair_refs = calloc((size_t)x->pairs, sizeof *pair_refs);
    hobj_ref_t *cell = NULL, *trefs = NULL;
    uint8_t *px = malloc((size_t)3 * x->h * x->w);
    double *ts = NULL;
    if (g < 0 || !pair_refs || !px) {
        fail(msg, cap, "%s: cannot start the fixture", path);
        goto done;
    }
    for (int p = 1; p <= x->pairs; p++) {
        int N = x->persons[p - 1];
        free(cell);
        cell = malloc((size_t)10 * N * sizeof *cell + 1);
        if (!cell)
            goto oom;
        for (int q = 1; q <= N; q++)
            for (int s = 0; s < 10; s++) {
                char name[96];
                snprintf(name, sizeof name, "/#refs#/img_%d_%d_%d", p, q, s);
                int bad;
                if (x->empty && x->empty(p, q, s, x->ctx) && p % 2 == 0) {
                    const hsize_t d1[1] = {2};
                    const uint64_t shape[2] = {0, 0};
                    bad = put(f, name, H5T_NATIVE_UINT64, 1, d1, shape);
                } else if (x->empty && x->empty(p, q, s, x->ctx)) {
                    const hsize_t d2[2] = {0, 0};
                    bad = put(f, name, H5T_NATIVE_DOUBLE, 2, d2, NULL);
                } else {
                    const hsize_t d3[3] = {3, (hsize_t)x->w, (hsize_t)x->h};
                    x->pixels(p, q, s, px, x->h, x->w, x->ctx);
                    bad = put(f, name, H5T_NATIVE_UINT8, 3, d3, px);
                }
                /* cell element (person q, slot s) at HDF5 [s][q - 1] of the 10 x N array */
                if (bad || H5Rcreate(&cell[(size_t)s * N + (q - 1)], f, name, H5R_OBJECT, -1) < 0) {
                    fail(msg, cap, "%s: cannot write %s", path, name);
                    goto done;
                }
            }
        char name[64];
        snprintf(name, sizeof name, "/#refs#/pair_%d", p);
        const hsize_t dc[2] = {10, (hsize_t)N};
        if (put(f, name, H5T_STD_REF_OBJ, 2, dc, cell) ||
            H5Rcreate(&pair_refs[p - 1], f, name, H5R_OBJECT, -1) < 0) {
            fail(msg, cap, "%s: cannot write %s", path, name);
            goto done;
        }
    }
    const hsize_t dp[2] = {1, (hsize_t)x->pairs};
    static const char *const cells[2] = {"labeled", "detected"};
    for (int k = x->with_labeled ? 0 : 1; k < 2; k++)
        if (put(f, cells[k], H5T_STD_REF_OBJ, 2, dp, pair_refs)) {
            fail(msg, cap, "%s: cannot write '%s'", path, cells[k]);
            goto done;
        }
    if (x->n_testsets) {
        int R = x->testset_rows;
        trefs = malloc((size_t)x->n_testsets * sizeof *trefs);
        ts = malloc((size_t)2 * R * sizeof *ts);
        if (!trefs || !ts)
            goto oom;
        for (int t = 0; t < x->n_testsets; t++) {
            /* MATLAB R x 2 [pair, person] is HDF5 2 x R: the pairs, then the persons. */
            for (int r = 0; r < R; r++) {
                ts[r] = x->testsets[((size_t)t * R + r) * 2];
                ts[R + r] = x->testsets[((size_t)t * R + r) * 2 + 1];
            }
            char name[64];
            snprintf(name, sizeof name, "/#refs#/ts_%d", t);
            const hsize_t dt[2] = {2, (hsize_t)R};
            if (put(f, name, H5T_NATIVE_DOUBLE, 2, dt, ts) ||
                H5Rcreate(&trefs[t], f, name, H5R_OBJECT, -1) < 0) {
                fail(msg, cap, "%s: cannot write %s", path, name);
                goto done;
            }
        }
        const hsize_t d1[2] = {1, (hsize_t)x->n_testsets};
        if (put(f, "testsets", H5T_STD_REF_OBJ, 2, d1, trefs)) {
            fail(msg, cap, "%s: cannot write 'testsets'", path);
            goto done;
        }
    }
    rc = 0;
    goto done;
oom:
    fail(msg, cap, "out of memory");
done:
    free(pair_refs);
    free(cell);
    free(trefs);
    free(ts);
    free(px);
    if (g >= 0)
        H5Gclose(g);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = fail(msg, cap, "%s: cannot close the HDF5 file", path);
    return rc;
}

/* ---- the small standard file (fx_cuhk03_write_small) ---- */

static const int FX_PERSONS[FX_PAIRS] = {6, 6, 6, 6, 6};

/* Person 1 of every pair misses slot 4 and slot 9 (as real files have empty slots); person 6
 * of pair 5 has no second-camera image (a test identity the protocol must drop). */
static int fx_empty(int p, int q, int s, void *ctx)
{
    (void)ctx;
    return (q == 1 && (s == 4 || s == 9)) || (p == 5 && q == 6 && s >= 5);
}

/* Three horizontal bands (head, torso, legs), each a colour drawn from the identity; the slot
 * shifts the brightness a little and the second camera a little more, plus a fixed texture. */
static void fx_pixels(int p, int q, int s, uint8_t *px, int h, int w, void *ctx)
{
    (void)ctx;
    uint64_t id = (uint64_t)(p * 16 + q) * 0x9E3779B97F4A7C15ull;
    int shift = (s % 5) * 3 + (s >= 5 ? 12 : 0);
    for (int ch = 0; ch < 3; ch++)
        for (int x = 0; x < w; x++)
            for (int y = 0; y < h; y++) {
                int band = y * 3 / h;
                int base = (int)((id >> (8 * (band * 3 + ch) % 56)) & 0xBF);
                int v = base + shift + ((x * 7 + y * 5 + s) & 7);
                px[((size_t)ch * w + (size_t)x) * h + (size_t)y] = (uint8_t)(v > 255 ? 255 : v);
            }
}

/* Three testsets of 6 (pair, person) rows; the third holds (5, 6), which has no gallery. */
static const int FX_TESTSETS[3 * 6 * 2] = {
    1, 2, 2, 3, 3, 4, 4, 5, 5, 1, 1, 6, /* testsets{1} */
    2, 1, 3, 2, 4, 3, 5, 4, 1, 5, 2, 6, /* testsets{2} */
    3, 1, 4, 2, 5, 3, 1, 4, 2, 5, 5, 6, /* testsets{3} */
};

int fx_cuhk03_write_small(const char *path, int with_testsets, char *msg, size_t cap)
{
    fx_cuhk03 x = {.pairs = FX_PAIRS,
                   .persons = FX_PERSONS,
                   .h = FX_H,
                   .w = FX_W,
                   .with_labeled = 1,
                   .n_testsets = with_testsets ? 3 : 0,
                   .testset_rows = 6,
                   .testsets = FX_TESTSETS,
                   .empty = fx_empty,
                   .pixels = fx_pixels};
    return fx_cuhk03_write(path, &x, msg, cap);
}
