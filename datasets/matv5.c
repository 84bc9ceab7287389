/* Minimal MATLAB v5 MAT-file reader (MathWorks "MAT-File Format", level 5): enough for the
 * CUHK03 767/700 protocol files cuhk03_new_protocol_config_{labeled,detected}.mat: top-level
 * numeric arrays (any integer or float element type, read as double) and cell arrays of char
 * strings, compressed (miCOMPRESSED, zlib) or not, little-endian. Not supported: structs,
 * sparse and complex arrays, big-endian files, v7.3 (HDF5) files. */
#include "matv5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    MI_INT8 = 1,
    MI_UINT8 = 2,
    MI_INT16 = 3,
    MI_UINT16 = 4,
    MI_INT32 = 5,
    MI_UINT32 = 6,
    MI_SINGLE = 7,
    MI_DOUBLE = 9,
    MI_INT64 = 12,
    MI_UINT64 = 13,
    MI_MATRIX = 14,
    MI_COMPRESSED = 15,
    MI_UTF8 = 16,
    MI_UTF16 = 17
};
enum { MX_CELL = 1, MX_STRUCT = 2, MX_CHAR = 4 };

/* Most bytes one compressed element may inflate to. The 767/700 config files hold about 1.5 MB
 * uncompressed (14097 file names, three index lists); deflate expands at most 1032:1, so an
 * element never needs more than 1032 x its compressed size either. */
#define MATV5_MAX_INFLATED ((uLongf)64 << 20)
#define MATV5_DEFLATE_MAX_RATIO 1032

typedef struct {
    const uint8_t *p;
    size_t n;
} span;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Reads one data element at *at in s: type, payload; advances *at past padding. */
static int next_element(span s, size_t *at, uint32_t *type, span *data)
{
    if (*at + 8 > s.n)
        return -1;
    const uint8_t *t = s.p + *at;
    uint32_t w0 = le32(t);
    if (w0 >> 16) { /* small data element: 4 bytes of payload inside the tag */
        uint32_t nb = w0 >> 16;
        if (nb > 4)
            return -1;
        *type = w0 & 0xFFFF;
        data->p = t + 4;
        data->n = nb;
        *at += 8;
        return 0;
    }
    uint32_t nb = le32(t + 4);
    if (nb > s.n - *at - 8)
        return -1;
    *type = w0;
    data->p = t + 8;
    data->n = nb;
    size_t adv = 8 + (size_t)nb;
    if (w0 != MI_COMPRESSED)
        adv = (adv + 7) & ~(size_t)7;
    *at += adv > s.n - *at ? s.n - *at : adv;
    return 0;
}

static int elem_size(uint32_t t)
{
    switch (t) {
    case MI_INT8:
    case MI_UINT8:
    case MI_UTF8: return 1;
    case MI_INT16:
    case MI_UINT16:
    case MI_UTF16: return 2;
    case MI_INT32:
    case MI_UINT32:
    case MI_SINGLE: return 4;
    case MI_DOUBLE:
    case MI_INT64:
    case MI_UINT64: return 8;
    }
    return 0;
}

static double elem_value(uint32_t t, const uint8_t *p)
{
    switch (t) {
    case MI_INT8: return (int8_t)p[0];
    case MI_UINT8:
    case MI_UTF8: return p[0];
    case MI_INT16: return (int16_t)(p[0] | (p[1] << 8));
    case MI_UINT16:
    case MI_UTF16: return (uint16_t)(p[0] | (p[1] << 8));
    case MI_INT32: return (int32_t)le32(p);
    case MI_UINT32: return le32(p);
    case MI_SINGLE: {
        float f;
        uint32_t u = le32(p);
        memcpy(&f, &u, 4);
        return f;
    }
    case MI_DOUBLE: {
        double d;
        uint64_t u = le32(p) | ((uint64_t)le32(p + 4) << 32);
        memcpy(&d, &u, 8);
        return d;
    }
    case MI_INT64: return (double)(int64_t)(le32(p) | ((uint64_t)le32(p + 4) << 32));
    case MI_UINT64: return (double)(le32(p) | ((uint64_t)le32(p + 4) << 32));
    }
    return 0;
}

/* Parses an miMATRIX payload into v (name, class, dims, values or strings). */
static int parse_matrix(span m, mat_var *v, int want_name)
{
    size_t at = 0;
    uint32_t t;
    span flags, dims, name, re;
    if (next_element(m, &at, &t, &flags) || t != MI_UINT32 || flags.n < 8)
        return -1;
    v->cls = (int)(le32(flags.p) & 0xFF);
    if (next_element(m, &at, &t, &dims) || t != MI_INT32 || dims.n < 8)
        return -1;
    v->count = 1;
    for (size_t k = 0; k < dims.n / 4; k++) {
        int64_t dk = (int32_t)le32(dims.p + 4 * k);
        if (dk < 0 ||
            (dk > 0 && v->count > INT64_MAX / dk)) /* negative, or a product beyond int64 */
            return -1;
        v->count *= dk;
    }
    if (next_element(m, &at, &t, &name) || t != MI_INT8)
        return -1;
    if (want_name) {
        size_t nn = name.n < sizeof v->name - 1 ? name.n : sizeof v->name - 1;
        memcpy(v->name, name.p, nn);
        v->name[nn] = '\0';
    }
    if (v->cls == MX_CELL) {
        if (v->count > (int64_t)(m.n / 8)) /* every cell needs at least an 8-byte tag */
            return -1;
        v->strings = calloc((size_t)(v->count ? v->count : 1), sizeof *v->strings);
        if (!v->strings)
            return -1;
        for (int64_t k = 0; k < v->count; k++) {
            span cell;
            if (next_element(m, &at, &t, &cell) || t != MI_MATRIX)
                return -1;
            mat_var c;
            memset(&c, 0, sizeof c);
            if (cell.n == 0) { /* empty cell */
                v->strings[k] = strdup("");
            } else if (parse_matrix(cell, &c, 0) == 0 && c.cls == MX_CHAR) {
                v->strings[k] = malloc((size_t)c.count + 1);
                if (v->strings[k]) {
                    for (int64_t j = 0; j < c.count; j++) {
                        double x =
                            c.values[j]; /* NaN or beyond int: '?' (the cast would be undefined) */
                        v->strings[k][j] =
                            x >= -2147483648.0 && x <= 2147483647.0 ? (char)(int)x : '?';
                    }
                    v->strings[k][c.count] = '\0';
                }
            } else {
                mat_var_free(&c);
                return -1;
            }
            mat_var_free(&c);
            if (!v->strings[k])
                return -1;
        }
        return 0;
    }
    if (v->cls == MX_STRUCT || v->cls == 3 /* object */)
        return 0; /* not needed: kept with no values */
    if (v->count == 0)
        return 0;
    if (next_element(m, &at, &t, &re))
        return -1;
    int es = elem_size(t);
    if (es == 0 || re.n / (size_t)es < (size_t)v->count)
        return -1;
    v->values = malloc((size_t)v->count * sizeof *v->values);
    if (!v->values)
        return -1;
    for (int64_t k = 0; k < v->count; k++)
        v->values[k] = elem_value(t, re.p + (size_t)k * (size_t)es);
    return 0;
}

void mat_var_free(mat_var *v)
{
    if (v->strings)
        for (int64_t k = 0; k < v->count; k++)
            free(v->strings[k]);
    free(v->strings);
    free(v->values);
    memset(v, 0, sizeof *v);
}

drsch_status mat_read_var(const char *path, const char *name, mat_var *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf = NULL;
    size_t sz = 0;
    drsch_status s = ds_read_file(path, &buf, &sz, err);
    if (s != DRSCH_OK)
        return s;
    if (sz < 128 || memcmp(buf, "MATLAB 5.0 MAT-file", 19) != 0) {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                          "not a MATLAB v5 MAT-file (no 'MATLAB 5.0 MAT-file' header)");
        goto done;
    }
    if (buf[126] != 'I' || buf[127] != 'M') {
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                          "big-endian or v7.3 MAT-file: not supported here");
        goto done;
    }
    span file = {buf, (size_t)sz};
    size_t at = 128;
    int found = 0;
    while (!found && at < file.n) {
        uint32_t t;
        span e;
        if (next_element(file, &at, &t, &e)) {
            s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                              "truncated or corrupt data element at byte %zu", at);
            goto done;
        }
        uint8_t *inflated = NULL;
        span m = e;
        if (t == MI_COMPRESSED) {
            /* the compressed stream holds one element: tag, then payload */
            uLongf limit = (uLongf)e.n * MATV5_DEFLATE_MAX_RATIO + 1024;
            if (limit > MATV5_MAX_INFLATED)
                limit = MATV5_MAX_INFLATED;
            uLongf cap = (uLongf)e.n * 4 + 1024;
            if (cap > limit)
                cap = limit;
            for (;;) {
                inflated = malloc(cap);
                if (!inflated) {
                    s = drsch_fail_at(err, DRSCH_ERR_NOMEM, path, -1, "out of memory");
                    goto done;
                }
                uLongf got = cap;
                int zr = uncompress(inflated, &got, e.p, (uLong)e.n);
                if (zr == Z_OK) {
                    span z = {inflated, got};
                    size_t zat = 0;
                    if (next_element(z, &zat, &t, &m)) {
                        free(inflated);
                        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                                          "corrupt compressed element");
                        goto done;
                    }
                    break;
                }
                free(inflated);
                inflated = NULL;
                if (zr == Z_BUF_ERROR && cap >= limit) {
                    s = drsch_fail_at(
                        err, DRSCH_ERR_FORMAT, path, -1,
                        "a compressed element of %zu bytes inflates to more than %lu bytes "
                        "(accepted: %d "
                        "times its size, deflate's maximal ratio, and at most %lu MB)",
                        e.n, (unsigned long)limit, MATV5_DEFLATE_MAX_RATIO,
                        (unsigned long)(MATV5_MAX_INFLATED >> 20));
                    goto done;
                }
                if (zr != Z_BUF_ERROR) {
                    s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                                      "zlib cannot inflate a compressed element (%d)", zr);
                    goto done;
                }
                cap = cap > limit / 4 ? limit : cap * 4;
            }
        }
        if (t == MI_MATRIX) {
            mat_var v;
            memset(&v, 0, sizeof v);
            if (parse_matrix(m, &v, 1) != 0) {
                mat_var_free(&v);
                free(inflated);
                s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1,
                                  "corrupt or unsupported array element");
                goto done;
            }
            if (!strcmp(v.name, name)) {
                *out = v;
                found = 1;
            } else {
                mat_var_free(&v);
            }
        }
        free(inflated);
    }
    if (!found)
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, path, -1, "no variable '%s'", name);
done:
    free(buf);
    return s;
}
