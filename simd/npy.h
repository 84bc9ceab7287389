/* NumPy .npy files (format versions 1.0, 2.0 and 3.0), the interchange format of drsch: packed
 * codes as uint8 (N, ceil(bits/8)), labels int32 (N,) or uint8 (N, L), distances int32/float32,
 * indices int64, weights float32 (B,).
 *
 * Reads little-endian or byte-sized C-order arrays of the dtypes drsch exchanges; refuses
 * big-endian, Fortran order, object/structured dtypes, and any header or payload that is
 * truncated or inconsistent, naming the file and what was wrong. Writes through fileio.h (temporary
 * file + rename) so that an existing file is never left half-written. Library code: no printing. */
#ifndef DRSCH_NPY_H
#define DRSCH_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "hamming.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NPY_MAX_DIMS 8

typedef enum {
    NPY_U8 = 0, /* '|u1' */
    NPY_I8,     /* '|i1' */
    NPY_U16,    /* '<u2' */
    NPY_I16,    /* '<i2' */
    NPY_I32,    /* '<i4' */
    NPY_U32,    /* '<u4' */
    NPY_I64,    /* '<i8' */
    NPY_U64,    /* '<u8' */
    NPY_F32,    /* '<f4' */
    NPY_F64,    /* '<f8' */
    NPY_BOOL,   /* '|b1' */
    NPY_DTYPE_COUNT
} npy_dtype;

typedef struct {
    npy_dtype dtype;
    int ndim;                   /* 0..NPY_MAX_DIMS */
    size_t shape[NPY_MAX_DIMS]; /* C order */
    size_t count;               /* product of shape */
    void *data;                 /* count elements, owned, 64-byte aligned */
} npy_array;

DRSCH_API const char *npy_dtype_name(npy_dtype t); /* numpy spelling: "uint8", "float32", ... */
DRSCH_API size_t npy_dtype_size(npy_dtype t);

/* Loads path into out (free with npy_free). Errors name the file and the problem. */
DRSCH_API drsch_status npy_load(const char *path, npy_array *out, drsch_error *err);
/* Parses an in-memory .npy image (used by npy_load and the fuzzer). Copies the payload. */
DRSCH_API drsch_status npy_parse(const uint8_t *buf, size_t len, const char *name, npy_array *out,
                                 drsch_error *err);
DRSCH_API void npy_free(npy_array *a);

/* Writes a C-order array as one output (fileio.h: a temporary file renamed over path). */
DRSCH_API drsch_status npy_save(const char *path, npy_dtype dtype, int ndim, const size_t *shape,
                                const void *data, drsch_error *err);
/* The same into an output already open, e.g. a member of an output set (fio_set_add). */
DRSCH_API drsch_status npy_write(fio_out *o, npy_dtype dtype, int ndim, const size_t *shape,
                                 const void *data, drsch_error *err);

/* Convenience for codes: a uint8 (N, R) array with R = ceil(file bits / 8); bits = 0 keeps
 * all 8 * R bits, otherwise the first `bits` bits (prefix truncation, bits <= 8 * R). */
DRSCH_API drsch_status npy_load_codes(const char *path, uint32_t bits, hm_codes *out,
                                      drsch_error *err);
/* A part of a codes file without reading the rest, e.g. one process's slice of a database
 * searched by several (drsch search under mpirun). npy_codes_shape reads only the header: the
 * number of rows and the bytes per code. npy_load_codes_rows reads the header, then rows
 * [r0, r1) alone (positioned reads), keeping the first `bits` bits as npy_load_codes does
 * (bits = 0: all); r0 <= r1 <= rows, and r0 == r1 gives 0 codes. Both check the header and
 * that the file's size is exactly the shape's (a truncated file is refused with the same
 * message as npy_load_codes gives). */
DRSCH_API drsch_status npy_codes_shape(const char *path, size_t *rows, size_t *row_bytes,
                                       drsch_error *err);
DRSCH_API drsch_status npy_load_codes_rows(const char *path, size_t r0, size_t r1, uint32_t bits,
                                           hm_codes *out, drsch_error *err);
DRSCH_API drsch_status npy_save_codes(const char *path, const hm_codes *c, drsch_error *err);
DRSCH_API drsch_status npy_write_codes(fio_out *o, const hm_codes *c, drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
