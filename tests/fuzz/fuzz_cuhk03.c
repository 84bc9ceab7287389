/* libFuzzer target: the CUHK03 reader (the entry of drsch's HDF5 module, drsch_cuhk03_hdf5_read,
 * linked in here so that the fuzzer sees its branches) over MATLAB v7.3 files built by a
 * generator. The fuzzer's bytes do not become the HDF5 container itself (that would fuzz
 * libhdf5's own parser, not drsch); they drive a generator that writes, with the HDF5 C API, a
 * cuhk-03.mat with MATLAB's layout and its mutations: 0..6 camera pairs, cells of (10 x N),
 * (N x 10) or wrong shapes, slots holding (3 x W x H) or (W x H x 3) uint8 images, MATLAB empty
 * matrices, images of the wrong type or rank, null references and references to groups,
 * 'labeled' missing or not a dataset, and 'testsets' of any shape (rank 1..3) with values that
 * include 0, negatives, huge numbers and NaN; images and cells may declare huge shapes while
 * storing nothing (chunked, never written), which the reader must refuse before allocating.
 * The loaded dataset, when the load succeeds, is checksummed. Checks memory safety, leaks
 * (including HDF5 handles left open) and hangs. */
#include <hdf5.h>
#include <math.h>

#include "cuhk03_module.h"
#include "datasets.h"
#include "fuzz_util.h"

typedef struct {
    const uint8_t *p;
    size_t n, at;
    hid_t file, refs; /* the file and its "#refs#" group (where MATLAB keeps cell contents) */
    int next;         /* name counter inside #refs# */
} gen;

static unsigned byte(gen *g) { return g->at < g->n ? g->p[g->at++] : 0; }

/* A new dataset under #refs# of the given type, rank and dims; data may be NULL (fill). */
static void ref_to_new(gen *g, hid_t type, int rank, const hsize_t *dims, const void *data,
                       hobj_ref_t *ref)
{
    char name[32];
    snprintf(name, sizeof name, "a%d", g->next++);
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_NULL);
    hid_t ds = H5Dcreate2(g->refs, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (data && ds >= 0)
        H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    H5Sclose(sp);
    char full[64];
    snprintf(full, sizeof full, "/#refs#/%s", name);
    H5Rcreate(ref, g->file, full, H5R_OBJECT, -1);
}

/* A new dataset under #refs# declaring the given shape but storing nothing: chunked (chunks of
 * at most 64 a side), never written. */
static void ref_to_unstored(gen *g, hid_t type, int rank, const hsize_t *dims, hobj_ref_t *ref)
{
    char name[32];
    snprintf(name, sizeof name, "a%d", g->next++);
    hsize_t chunk[3];
    for (int k = 0; k < rank && k < 3; k++)
        chunk[k] = dims[k] < 64 ? dims[k] : 64;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    hid_t ds = H5Dcreate2(g->refs, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    char full[64];
    snprintf(full, sizeof full, "/#refs#/%s", name);
    H5Rcreate(ref, g->file, full, H5R_OBJECT, -1);
}

/* One cell slot. */
static void make_slot(gen *g, hobj_ref_t *ref)
{
    unsigned b = byte(g), kind = b % 9;
    if (b >= 250) { /* an image declaring up to 65536 x 65536 pixels and storing none */
        hsize_t dims[3] = {3, (hsize_t)1 << (byte(g) % 17), (hsize_t)1 << (byte(g) % 17)};
        ref_to_unstored(g, H5T_NATIVE_UINT8, 3, dims, ref);
        return;
    }
    hsize_t dims[3];
    uint8_t px[3 * 6 * 6];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 37u + g->at);
    switch (kind) {
    case 0: /* MATLAB empty matrix: its shape as uint64 [0 0] */
    {
        uint64_t shape[2] = {0, 0};
        dims[0] = 2;
        ref_to_new(g, H5T_NATIVE_UINT64, 1, dims, shape, ref);
        break;
    }
    case 1: /* no elements */
        dims[0] = 0;
        dims[1] = 3;
        ref_to_new(g, H5T_NATIVE_UINT8, 2, dims, NULL, ref);
        break;
    case 2: /* MATLAB's H x W x 3 as HDF5 sees it: 3 x W x H */
    case 3: /* also accepted: W x H x 3 */
    {
        hsize_t w = 1 + byte(g) % 6, h = 1 + byte(g) % 6;
        if (kind == 2) {
            dims[0] = 3, dims[1] = w, dims[2] = h;
        } else {
            dims[0] = w, dims[1] = h, dims[2] = 3;
        }
        ref_to_new(g, H5T_NATIVE_UINT8, 3, dims, px, ref);
        break;
    }
    case 4: /* wrong element type */
        dims[0] = 3, dims[1] = 2, dims[2] = 2;
        ref_to_new(g, H5T_NATIVE_DOUBLE, 3, dims, NULL, ref);
        break;
    case 5: /* wrong rank */
        dims[0] = 1 + byte(g) % 4, dims[1] = 3;
        ref_to_new(g, H5T_NATIVE_UINT8, 2, dims, px, ref);
        break;
    case 6: /* a reference to a group */ H5Rcreate(ref, g->file, "/#refs#", H5R_OBJECT, -1); break;
    case 7: /* a null reference */ memset(ref, 0, sizeof *ref); break;
    default: /* a dataspace without extent (H5S_NULL) */
        ref_to_new(g, H5T_NATIVE_UINT8, 0, NULL, NULL, ref);
        break;
    }
}

/* A dataset `name` (under loc) of object references with the given shape. */
static void write_refs(hid_t loc, const char *name, int rank, const hsize_t *dims,
                       const hobj_ref_t *refs)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, H5T_STD_REF_OBJ, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0)
        H5Dwrite(ds, H5T_STD_REF_OBJ, H5S_ALL, H5S_ALL, H5P_DEFAULT, refs);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void make_cell(gen *g, const char *name)
{
    unsigned how = byte(g) % 8;
    if (how == 6) { /* a group where a dataset belongs */
        hid_t grp = H5Gcreate2(g->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Gclose(grp);
        return;
    }
    if (how == 7) { /* numbers instead of references */
        hsize_t d = 5;
        double v[5] = {1, 2, 3, 4, 5};
        hid_t sp = H5Screate_simple(1, &d, NULL);
        hid_t ds =
            H5Dcreate2(g->file, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(ds);
        H5Sclose(sp);
        return;
    }
    int pairs = (int)(byte(g) % 7);
    hobj_ref_t prefs[6];
    for (int p = 0; p < pairs; p++) {
        unsigned shape = byte(g) % 4, pb = byte(g);
        hsize_t persons = pb % 4;
        hsize_t dims[2];
        if (pb >= 250) { /* a cell declaring up to 10 x 2^31 references and storing none */
            dims[0] = 10, dims[1] = (hsize_t)1 << (16 + byte(g) % 16);
            hobj_ref_t cell;
            ref_to_unstored(g, H5T_STD_REF_OBJ, 2, dims, &cell);
            prefs[p] = cell;
            continue;
        }
        if (shape == 0 || shape == 3) /* 10 x N as MATLAB writes it (most inputs) */
            dims[0] = 10, dims[1] = persons;
        else if (shape == 1)
            dims[0] = persons, dims[1] = 10;
        else
            dims[0] = 1 + byte(g) % 12, dims[1] = persons; /* usually a wrong shape */
        hsize_t total = dims[0] * dims[1];
        hobj_ref_t *refs = calloc(total ? total : 1, sizeof *refs);
        if (!refs)
            abort();
        for (hsize_t i = 0; i < total; i++)
            make_slot(g, &refs[i]);
        char inner[32];
        snprintf(inner, sizeof inner, "c%d", g->next++);
        write_refs(g->refs, inner, 2, dims, refs);
        free(refs);
        char full[64];
        snprintf(full, sizeof full, "/#refs#/%s", inner);
        if (byte(g) % 16 == 15)
            memset(&prefs[p], 0, sizeof prefs[p]); /* dangling pair reference */
        else
            H5Rcreate(&prefs[p], g->file, full, H5R_OBJECT, -1);
    }
    hsize_t pd[2] = {(hsize_t)pairs, 1};
    if (pairs == 0) { /* an empty cell */
        write_refs(g->file, name, 1, pd, prefs);
        return;
    }
    write_refs(g->file, name, how < 3 ? 2 : 1, pd, prefs);
}

static void make_testsets(gen *g)
{
    static const double VALUES[] = {1,    2,   3,       1, 2, 0, -1, 1e300, NAN, 2147483648.0,
                                    -3e9, 1.5, INFINITY};
    unsigned how = byte(g) % 4;
    if (how == 0)
        return; /* absent: allowed */
    int nt = (int)(byte(g) % 4);
    hobj_ref_t refs[4];
    for (int t = 0; t < nt; t++) {
        unsigned shape = byte(g) % 6;
        hsize_t rows = byte(g) % 4, dims[3] = {2, rows, 2};
        int rank = 2;
        if (shape == 4)
            rank = 3; /* a rank the reader does not expect */
        else if (shape == 5)
            rank = 1, dims[0] = 1 + rows;
        hsize_t total = dims[0] * (rank > 1 ? dims[1] : 1) * (rank > 2 ? dims[2] : 1);
        double v[2 * 3 * 2 + 4];
        for (hsize_t i = 0; i < total && i < sizeof v / sizeof v[0]; i++)
            v[i] = VALUES[byte(g) % (sizeof VALUES / sizeof VALUES[0])];
        ref_to_new(g, H5T_NATIVE_DOUBLE, rank, dims, v, &refs[t]);
    }
    hsize_t d = (hsize_t)nt;
    write_refs(g->file, "testsets", 1, &d, refs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the generator's own failures are not findings */
        quiet = 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/cuhk-03.mat", fuzz_dir());
    gen g = {.p = data, .n = size};
    unsigned flags = byte(&g);
    g.file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (g.file < 0)
        abort(); /* the scratch directory is gone, or a previous load left the file open */
    g.refs = H5Gcreate2(g.file, "#refs#", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (!(flags & 2))
        make_cell(&g, "labeled");
    if (flags & 4)
        make_cell(&g, "detected");
    make_testsets(&g);
    H5Gclose(g.refs);
    H5Fclose(g.file);

    /* As ds_load_cuhk03 calls it; 4 x 3 images: the resize is not what is fuzzed here. */
    ds_dataset *d = calloc(1, sizeof *d);
    drsch_error err;
    drsch_error_clear(&err);
    if (d && drsch_cuhk03_hdf5_read(DS_CUHK03_ABI, sizeof *d, sizeof err, path, flags & 1, 4, 3, d,
                                    &err) == DRSCH_OK)
        (void)ds_checksum(d);
    ds_dataset_free(d);
    /* The reader must close every HDF5 object it opened: a leaked handle keeps the file open
     * (and its memory) for the life of the process. */
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
        __builtin_trap();
    return 0;
}
