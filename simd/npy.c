/* .npy reader and writer (see npy.h). The header is a Python dict literal; this parser accepts
 * exactly the three keys numpy writes ('descr', 'fortran_order', 'shape') with string, boolean
 * and tuple values, in any order, and rejects anything else rather than guessing. */
#define _GNU_SOURCE /* MAP_POPULATE */
#include "npy.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *descr[3]; /* accepted spellings */
    const char *name;
    size_t size;
} DTYPES[NPY_DTYPE_COUNT] = {
    [NPY_U8] = {{"|u1", "<u1", NULL}, "uint8", 1},
    [NPY_I8] = {{"|i1", "<i1", NULL}, "int8", 1},
    [NPY_U16] = {{"<u2", NULL, NULL}, "uint16", 2},
    [NPY_I16] = {{"<i2", NULL, NULL}, "int16", 2},
    [NPY_I32] = {{"<i4", NULL, NULL}, "int32", 4},
    [NPY_U32] = {{"<u4", NULL, NULL}, "uint32", 4},
    [NPY_I64] = {{"<i8", NULL, NULL}, "int64", 8},
    [NPY_U64] = {{"<u8", NULL, NULL}, "uint64", 8},
    [NPY_F32] = {{"<f4", NULL, NULL}, "float32", 4},
    [NPY_F64] = {{"<f8", NULL, NULL}, "float64", 8},
    [NPY_BOOL] = {{"|b1", NULL, NULL}, "bool", 1},
};

const char *npy_dtype_name(npy_dtype t)
{
    return (unsigned)t < NPY_DTYPE_COUNT ? DTYPES[t].name : "?";
}
size_t npy_dtype_size(npy_dtype t) { return (unsigned)t < NPY_DTYPE_COUNT ? DTYPES[t].size : 0; }

void npy_free(npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- header parsing ---------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...") without escapes, copied into out. */
static int parse_str(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap)
            return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return 1;
    }
    return 0;
}

static drsch_status parse_header(const char *h, size_t len, const char *name, npy_array *a,
                                 drsch_error *err)
{
    cursor c = {h, h + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!accept(&c, '{'))
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: .npy header is not a dict", name);
    while (!accept(&c, '}')) {
        char key[32], val[32];
        if (!parse_str(&c, key, sizeof key) || !accept(&c, ':'))
            return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy header", name);
        if (!strcmp(key, "descr")) {
            if (!parse_str(&c, val, sizeof val))
                return drsch_fail(err, DRSCH_ERR_FORMAT,
                                  "%s: .npy 'descr' is not a simple dtype string "
                                  "(structured dtypes are not supported)",
                                  name);
            int found = 0;
            for (int t = 0; t < NPY_DTYPE_COUNT && !found; t++)
                for (int s = 0; s < 3 && DTYPES[t].descr[s]; s++)
                    if (!strcmp(val, DTYPES[t].descr[s])) {
                        a->dtype = (npy_dtype)t;
                        found = 1;
                        break;
                    }
            if (!found)
                return drsch_fail(err, DRSCH_ERR_FORMAT,
                                  "%s: unsupported .npy dtype '%s' (drsch reads "
                                  "little-endian integer, float and bool arrays)",
                                  name, val);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (parse_word(&c, "True"))
                return drsch_fail(err, DRSCH_ERR_FORMAT,
                                  "%s: Fortran-order .npy arrays are not supported; "
                                  "save with numpy.ascontiguousarray",
                                  name);
            if (!parse_word(&c, "False"))
                return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy 'fortran_order'",
                                  name);
            have_order = 1;
        } else if (!strcmp(key, "shape")) {
            if (!accept(&c, '('))
                return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy 'shape'", name);
            a->ndim = 0;
            while (!accept(&c, ')')) {
                skip_ws(&c);
                if (c.p >= c.end || *c.p < '0' || *c.p > '9')
                    return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy 'shape'", name);
                size_t v = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    size_t d = (size_t)(*c.p++ - '0');
                    if (v > (SIZE_MAX - d) / 10)
                        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: .npy shape overflows", name);
                    v = v * 10 + d;
                }
                if (c.p < c.end && *c.p == 'L')
                    c.p++; /* Python 2 long suffix */
                if (a->ndim == NPY_MAX_DIMS)
                    return drsch_fail(err, DRSCH_ERR_FORMAT,
                                      "%s: .npy array has more than %d dimensions", name,
                                      NPY_MAX_DIMS);
                a->shape[a->ndim++] = v;
                if (!accept(&c, ',')) {
                    if (!accept(&c, ')'))
                        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy 'shape'",
                                          name);
                    break;
                }
            }
            have_shape = 1;
        } else {
            return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: unexpected key '%s' in .npy header", name,
                              key);
        }
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: malformed .npy header", name);
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: .npy header lacks %s", name,
                          !have_descr   ? "'descr'"
                          : !have_order ? "'fortran_order'"
                                        : "'shape'");
    return DRSCH_OK;
}

/* Validates magic, version and header in buf[0..avail) and fills a's dtype and shape, the
 * payload offset and its size in bytes. Does not look at the payload. */
static drsch_status parse_meta(const uint8_t *buf, size_t avail, const char *name, npy_array *a,
                               size_t *payload_off, size_t *nbytes, drsch_error *err)
{
    static const uint8_t MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    memset(a, 0, sizeof *a);
    if (avail < 10 || memcmp(buf, MAGIC, 6))
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: not a .npy file (bad magic)", name);
    unsigned major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (avail < 12)
            return drsch_fail(err, DRSCH_ERR_TRUNCATED, "%s: truncated .npy header", name);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: unsupported .npy format version %u.%u", name,
                          major, buf[7]);
    }
    if (hlen > avail - hstart)
        return drsch_fail(err, DRSCH_ERR_TRUNCATED,
                          "%s: truncated .npy header (%zu bytes announced, %zu present)", name,
                          hlen, avail - hstart);
    drsch_status st = parse_header((const char *)buf + hstart, hlen, name, a, err);
    if (st != DRSCH_OK)
        return st;
    size_t count = 1, esize = DTYPES[a->dtype].size;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] && count > SIZE_MAX / a->shape[i])
            return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: .npy shape overflows", name);
        count *= a->shape[i];
    }
    if (count > SIZE_MAX / esize / 2)
        return drsch_fail(err, DRSCH_ERR_FORMAT, "%s: .npy shape overflows", name);
    a->count = count;
    *payload_off = hstart + hlen;
    *nbytes = count * esize;
    return DRSCH_OK;
}

static drsch_status check_payload(const char *name, size_t nbytes, size_t have, drsch_error *err)
{
    if (have < nbytes)
        return drsch_fail(err, DRSCH_ERR_TRUNCATED,
                          "%s: truncated .npy payload: shape needs %zu bytes, file has %zu", name,
                          nbytes, have);
    if (have > nbytes)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: .npy payload has %zu trailing bytes beyond its shape", name,
                          have - nbytes);
    return DRSCH_OK;
}

static drsch_status alloc_payload(npy_array *a, const char *name, size_t nbytes, drsch_error *err)
{
    a->data = aligned_alloc(64, nbytes ? (nbytes + 63) / 64 * 64 : 64);
    if (!a->data)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory for %zu bytes", name, nbytes);
    return DRSCH_OK;
}

drsch_status npy_parse(const uint8_t *buf, size_t len, const char *name, npy_array *out,
                       drsch_error *err)
{
    size_t off = 0, nbytes = 0;
    drsch_status st = parse_meta(buf, len, name, out, &off, &nbytes, err);
    if (st == DRSCH_OK)
        st = check_payload(name, nbytes, len - off, err);
    if (st == DRSCH_OK)
        st = alloc_payload(out, name, nbytes, err);
    if (st != DRSCH_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    memcpy(out->data, buf + off, nbytes);
    return DRSCH_OK;
}

drsch_status npy_load(const char *path, npy_array *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    /* only a regular file is read (a FIFO would block, a device never end); a member of an
     * output set must be the one its manifest lists */
    FILE *f = fio_open_read(path, ".npy file", err);
    if (!f)
        return DRSCH_ERR_IO;
    drsch_status st = fio_set_verify(path, err);
    if (st != DRSCH_OK) {
        fclose(f);
        return st;
    }
    uint8_t *head = NULL;
    long flen = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        flen = ftell(f);
    if (flen < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: cannot determine the file size", path);
        goto done;
    }
    /* The header never exceeds 10 + 65535 bytes in v1 and is a few hundred bytes in practice;
     * 1 MiB bounds what a corrupt v2/v3 length can make us read. */
    size_t avail = (size_t)flen < (1u << 20) ? (size_t)flen : (1u << 20);
    head = malloc(avail ? avail : 1);
    if (!head) {
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(head, 1, avail, f) != avail) {
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: read error: %s", path,
                        ferror(f) ? strerror(errno) : "the file shrank");
        goto done;
    }
    size_t off = 0, nbytes = 0;
    st = parse_meta(head, avail, path, out, &off, &nbytes, err);
    if (st == DRSCH_OK)
        st = check_payload(path, nbytes, (size_t)flen - off, err);
    if (st == DRSCH_OK)
        st = alloc_payload(out, path, nbytes, err);
    if (st == DRSCH_OK &&
        (fseek(f, (long)off, SEEK_SET) != 0 || fread(out->data, 1, nbytes, f) != nbytes))
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: read error in .npy payload", path);
done:
    free(head);
    fclose(f);
    if (st != DRSCH_OK)
        npy_free(out);
    return st;
}

drsch_status npy_write(fio_out *o, npy_dtype dtype, int ndim, const size_t *shape, const void *data,
                       drsch_error *err)
{
    const char *path = o->shown;
    if ((unsigned)dtype >= NPY_DTYPE_COUNT || ndim < 0 || ndim > NPY_MAX_DIMS)
        return drsch_fail(err, DRSCH_ERR_ARG, "%s: invalid dtype or rank for .npy output", path);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     DTYPES[dtype].descr[0]);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, ndim == 1 ? "%zu," : (i ? ", %zu" : "%zu"),
                      shape[i]);
        count *= shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces so that the payload starts on a 64-byte boundary, newline last. */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    uint8_t pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};

    static const char spaces[64] =
        "                                                               ";
    fio_out_write(o, pre, 10);
    fio_out_write(o, dict, (size_t)n);
    fio_out_write(o, spaces, padded - 1 - (10 + (size_t)n));
    fio_out_write(o, "\n", 1);
    fio_out_write(o, data, count * DTYPES[dtype].size);
    if (o->err)
        return drsch_fail(err, DRSCH_ERR_IO, "%s: cannot write: %s", path, strerror(o->err));
    return DRSCH_OK;
}

drsch_status npy_save(const char *path, npy_dtype dtype, int ndim, const size_t *shape,
                      const void *data, drsch_error *err)
{
    fio_out o;
    drsch_status st = fio_out_begin(&o, path, err);
    if (st != DRSCH_OK)
        return st;
    if ((st = npy_write(&o, dtype, ndim, shape, data, err)) != DRSCH_OK) {
        fio_out_abort(&o);
        return st;
    }
    return fio_out_commit(&o, 0, err);
}

/* Whether a (its dtype and shape) holds codes of which `bits` can be taken; the error if not. */
static drsch_status check_codes(const char *path, const npy_array *a, uint32_t bits,
                                drsch_error *err)
{
    if (a->dtype != NPY_U8 || a->ndim != 2) {
        char shape[96] = "";
        int n = 0;
        for (int i = 0; i < a->ndim && n < 80; i++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, i ? ", %zu" : "%zu", a->shape[i]);
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: codes must be a uint8 array of shape (N, ceil(bits/8)); "
                          "got %s with shape (%s)",
                          path, npy_dtype_name(a->dtype), shape);
    }
    if (a->shape[1] == 0 || a->shape[1] * 8 > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: %zu bytes per code: code length must be 1..%d bits", path,
                          a->shape[1], HM_MAX_BITS);
    if (bits > a->shape[1] * 8)
        return drsch_fail(err, DRSCH_ERR_FORMAT,
                          "%s: asked for %u bits but codes have only %zu bits (%zu bytes)", path,
                          bits, a->shape[1] * 8, a->shape[1]);
    return DRSCH_OK;
}

/* Codes from a private, prefaulted mapping of the whole file: the page cache's pages are used
 * as they are (no read into fresh memory, whose first touch costs a page fault per 4 KiB) and,
 * when the rows are whole 64-bit words taken in full and the payload is 64-byte aligned (numpy
 * pads its header to 64 bytes), not copied at all. Returns DRSCH_ERR_UNSUPPORTED, with nothing
 * reported, when the file cannot be mapped: the caller then reads it. */
static drsch_status load_codes_mapped(const char *path, FILE *f, uint32_t bits, hm_codes *out,
                                      drsch_error *err)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 16)
        return DRSCH_ERR_UNSUPPORTED;
    size_t len = (size_t)sb.st_size;
    /* Populated read-only (populating a writable private mapping would copy every page), then
     * made writable: a caller that writes to its codes gets private copies of those pages. */
    uint8_t *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fileno(f), 0);
    if (map == MAP_FAILED)
        return DRSCH_ERR_UNSUPPORTED;
    if (mprotect(map, len, PROT_READ | PROT_WRITE) != 0) {
        munmap(map, len);
        return DRSCH_ERR_UNSUPPORTED;
    }
    npy_array a;
    size_t off = 0, nbytes = 0;
    drsch_status st =
        parse_meta(map, len < (1u << 20) ? len : (1u << 20), path, &a, &off, &nbytes, err);
    if (st == DRSCH_OK)
        st = check_payload(path, nbytes, len - off, err);
    if (st == DRSCH_OK)
        st = check_codes(path, &a, bits, err);
    if (st != DRSCH_OK) {
        munmap(map, len);
        return st;
    }
    const size_t rb = a.shape[1];
    if (bits == 0)
        bits = (uint32_t)(rb * 8);
    if (rb % 8 == 0 && bits == rb * 8 && off % 64 == 0 && a.shape[0] > 0) {
        out->n = a.shape[0];
        out->bits = bits;
        out->words = rb / 8;
        out->data = (uint64_t *)(void *)(map + off);
        out->mapping = map;
        out->mapping_len = len;
        return DRSCH_OK;
    }
    st = hm_codes_from_bytes(out, map + off, a.shape[0], rb, bits, err);
    munmap(map, len);
    return st;
}

drsch_status npy_load_codes(const char *path, uint32_t bits, hm_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fio_open_read(path, ".npy file", err);
    if (!f)
        return DRSCH_ERR_IO;
    drsch_status st = fio_set_verify(path, err);
    if (st == DRSCH_OK)
        st = load_codes_mapped(path, f, bits, out, err);
    fclose(f);
    if (st != DRSCH_ERR_UNSUPPORTED)
        return st;
    /* not mappable (or too small to be codes): read it */
    npy_array a;
    st = npy_load(path, &a, err);
    if (st != DRSCH_OK)
        return st;
    st = check_codes(path, &a, bits, err);
    if (st == DRSCH_OK)
        st = hm_codes_from_bytes(out, a.data, a.shape[0], a.shape[1],
                                 bits ? bits : (uint32_t)(a.shape[1] * 8), err);
    npy_free(&a);
    return st;
}

drsch_status npy_write_codes(fio_out *o, const hm_codes *c, drsch_error *err)
{
    size_t rb = hm_bytes_for_bits(c->bits);
    size_t nbytes = c->n * rb;
    uint8_t *bytes = malloc(nbytes ? nbytes : 1);
    if (!bytes)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", o->shown);
    hm_codes_to_bytes(c, bytes);
    size_t shape[2] = {c->n, rb};
    drsch_status st = npy_write(o, NPY_U8, 2, shape, bytes, err);
    free(bytes);
    return st;
}

drsch_status npy_save_codes(const char *path, const hm_codes *c, drsch_error *err)
{
    fio_out o;
    drsch_status st = fio_out_begin(&o, path, err);
    if (st != DRSCH_OK)
        return st;
    if ((st = npy_write_codes(&o, c, err)) != DRSCH_OK) {
        fio_out_abort(&o);
        return st;
    }
    return fio_out_commit(&o, 0, err);
}

/* ---- a row range of a codes file ----------------------------------------------------------- */

/* Reads len bytes at offset pos of fd, whole (pread may return less than asked). */
static drsch_status read_at(int fd, void *buf, size_t len, size_t pos, const char *path,
                            drsch_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t got = pread(fd, p, len, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return drsch_fail(err, DRSCH_ERR_IO, "%s: read error: %s", path,
                              got < 0 ? strerror(errno) : "the file shrank");
        p += got;
        pos += (size_t)got;
        len -= (size_t)got;
    }
    return DRSCH_OK;
}

/* Opens a codes file and checks its header (magic, dtype, shape, the file size against the
 * shape, `bits` against the code length) without reading the payload: *f open on success, with
 * the payload offset in *off. */
static drsch_status open_codes(const char *path, uint32_t bits, FILE **f, npy_array *a, size_t *off,
                               drsch_error *err)
{
    *f = fio_open_read(path, ".npy file", err);
    if (!*f)
        return DRSCH_ERR_IO;
    drsch_status st = fio_set_verify(path, err);
    struct stat sb;
    if (st == DRSCH_OK && fstat(fileno(*f), &sb) != 0)
        st = drsch_fail(err, DRSCH_ERR_IO, "%s: cannot determine the file size: %s", path,
                        strerror(errno));
    /* 1 MiB bounds what a corrupt v2/v3 header length can make us read (as npy_load) */
    size_t flen = st == DRSCH_OK ? (size_t)sb.st_size : 0, nbytes = 0;
    size_t avail = flen < (1u << 20) ? flen : (1u << 20);
    uint8_t *head = NULL;
    if (st == DRSCH_OK && !(head = malloc(avail ? avail : 1)))
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
    if (st == DRSCH_OK)
        st = read_at(fileno(*f), head, avail, 0, path, err);
    if (st == DRSCH_OK)
        st = parse_meta(head, avail, path, a, off, &nbytes, err);
    if (st == DRSCH_OK)
        st = check_payload(path, nbytes, flen - *off, err);
    if (st == DRSCH_OK)
        st = check_codes(path, a, bits, err);
    free(head);
    if (st != DRSCH_OK) {
        fclose(*f);
        *f = NULL;
    }
    return st;
}

drsch_status npy_codes_shape(const char *path, size_t *rows, size_t *row_bytes, drsch_error *err)
{
    FILE *f;
    npy_array a;
    size_t off;
    drsch_status st = open_codes(path, 0, &f, &a, &off, err);
    if (st != DRSCH_OK)
        return st;
    fclose(f);
    *rows = a.shape[0];
    *row_bytes = a.shape[1];
    return DRSCH_OK;
}

drsch_status npy_load_codes_rows(const char *path, size_t r0, size_t r1, uint32_t bits,
                                 hm_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f;
    npy_array a;
    size_t off;
    drsch_status st = open_codes(path, bits, &f, &a, &off, err);
    if (st != DRSCH_OK)
        return st;
    const size_t rb = a.shape[1];
    if (bits == 0)
        bits = (uint32_t)(rb * 8);
    if (r0 > r1 || r1 > a.shape[0]) {
        fclose(f);
        return drsch_fail(err, DRSCH_ERR_RANGE, "%s: rows %zu..%zu asked of %zu codes", path, r0,
                          r1, a.shape[0]);
    }
    st = hm_codes_alloc(out, r1 - r0, bits, err);
    int fd = fileno(f);
    if (st == DRSCH_OK && rb % 8 == 0 && bits == rb * 8) { /* the rows are the words: read them */
        st = read_at(fd, out->data, (r1 - r0) * rb, off + r0 * rb, path, err);
    } else if (st == DRSCH_OK) { /* repacked in chunks of rows, to bound the extra memory */
        size_t chunk = ((size_t)1 << 20) / rb + 1;
        uint8_t *buf = malloc(chunk * rb);
        if (!buf)
            st = drsch_fail(err, DRSCH_ERR_NOMEM, "%s: out of memory", path);
        for (size_t r = r0; st == DRSCH_OK && r < r1; r += chunk) {
            size_t n = r1 - r < chunk ? r1 - r : chunk;
            hm_codes part = {0};
            st = read_at(fd, buf, n * rb, off + r * rb, path, err);
            if (st == DRSCH_OK)
                st = hm_codes_from_bytes(&part, buf, n, rb, bits, err);
            if (st == DRSCH_OK)
                memcpy(out->data + (r - r0) * out->words, part.data, n * out->words * 8);
            hm_codes_free(&part);
        }
        free(buf);
    }
    fclose(f);
    if (st != DRSCH_OK)
        hm_codes_free(out);
    return st;
}
