/* simd's io module: .npy reading and writing (round trips of every dtype and rank, a header
 * numpy reads, every malformed-file case refused with a reason, codes truncated to a prefix);
 * libraries loaded on first use (lazylib.h). The file rules of fileio.c are tested with the
 * commands that use them, in test_faults.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "hamming.h"
#include "lazylib.h"
#include "npy.h"
#include "test_util.h"

static void make_tmpdir(void) { tu_tmpdir_make("io"); }

TestSuite(npy, .init = make_tmpdir, .fini = tu_tmpdir_remove);

Test(npy, round_trip_every_dtype_and_rank)
{
    static const npy_dtype types[] = {NPY_U8, NPY_I32, NPY_I64, NPY_F32, NPY_F64, NPY_U16};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        size_t shapes[3][3] = {{7, 0, 0}, {3, 5, 0}, {2, 3, 4}};
        for (int nd = 1; nd <= 3; nd++) {
            size_t count = 1;
            for (int i = 0; i < nd; i++)
                count *= shapes[nd - 1][i];
            size_t es = npy_dtype_size(types[t]);
            uint8_t *data = malloc(count * es);
            for (size_t i = 0; i < count * es; i++)
                data[i] = (uint8_t)(i * 37 + t);
            drsch_error err;
            cr_assert_eq(npy_save(tu_path("a.npy"), types[t], nd, shapes[nd - 1], data, &err),
                         DRSCH_OK, "%s", err.msg);
            npy_array a;
            cr_assert_eq(npy_load(tu_path("a.npy"), &a, &err), DRSCH_OK, "%s", err.msg);
            cr_assert_eq(a.dtype, types[t]);
            cr_assert_eq(a.ndim, nd);
            for (int i = 0; i < nd; i++)
                cr_assert_eq(a.shape[i], shapes[nd - 1][i]);
            cr_assert_eq(memcmp(a.data, data, count * es), 0);
            npy_free(&a);
            free(data);
        }
    }
}

Test(npy, header_is_numpy_compatible)
{
    size_t shape[2] = {2, 3};
    uint8_t d[6] = {1, 2, 3, 4, 5, 6};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("h.npy"), NPY_U8, 2, shape, d, &err), DRSCH_OK);
    FILE *f = fopen(tu_path("h.npy"), "rb");
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t hlen = (size_t)(uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8;
    cr_assert_eq((10 + hlen) % 64, 0, "payload must start on a 64-byte boundary");
    cr_assert_eq(n, 10 + hlen + 6);
    cr_assert_eq(buf[10 + hlen - 1], '\n');
    cr_assert(strstr(buf + 10, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }") ==
              buf + 10);
}

static void expect_load_error(const uint8_t *img, size_t len, const char *needle)
{
    tu_write_file(tu_path("bad.npy"), img, len);
    npy_array a;
    drsch_error err;
    cr_assert_neq(npy_load(tu_path("bad.npy"), &a, &err), DRSCH_OK, "loading should fail (%s)",
                  needle);
    cr_assert(strstr(err.msg, "bad.npy") != NULL, "error names the file: %s", err.msg);
    cr_assert(strstr(err.msg, needle) != NULL, "error '%s' should mention '%s'", err.msg, needle);
    cr_assert_null(a.data);
    cr_assert_neq(npy_parse(img, len, "mem", &a, &err), DRSCH_OK);
}

Test(npy, malformed_files_are_refused_with_a_reason)
{
    uint8_t img[512], pay[64] = {0};
    size_t n =
        tu_npy_image(img, "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 2), }", pay, 8);
    expect_load_error(img, n - 1, "truncated");
    uint8_t extra[512];
    memcpy(extra, img, n);
    extra[n] = 0;
    expect_load_error(extra, n + 1, "trailing");
    expect_load_error(img, 20, "truncated");
    expect_load_error((const uint8_t *)"hello world, not numpy", 22, "magic");
    n = tu_npy_image(img, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", pay, 8);
    expect_load_error(img, n, "dtype");
    n = tu_npy_image(img, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", pay, 16);
    expect_load_error(img, n, "Fortran");
    n = tu_npy_image(img, "{'descr': '<f4', 'fortran_order': False, }", pay, 16);
    expect_load_error(img, n, "shape");
    n = tu_npy_image(img, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", pay, 16);
    expect_load_error(img, n, "shape");
    n = tu_npy_image(img, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", pay,
                     8);
    expect_load_error(img, n, "dtype");
    n = tu_npy_image(img,
                     "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999, 99999999999, "
                     "99999999999), }",
                     pay, 8);
    expect_load_error(img, n, "overflow");
    memcpy(img, "\x93NUMPY\x09\x00", 8);
    expect_load_error(img, 64, "version");
}

Test(npy, codes_truncate_to_a_prefix_and_check_dtype)
{
    uint8_t bytes[3 * 2] = {0xFF, 0xFF, 0x0F, 0xF0, 0xAA, 0x55};
    size_t shape[2] = {3, 2};
    drsch_error err;
    cr_assert_eq(npy_save(tu_path("c.npy"), NPY_U8, 2, shape, bytes, &err), DRSCH_OK);
    hm_codes c;
    cr_assert_eq(npy_load_codes(tu_path("c.npy"), 12, &c, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(c.bits, 12);
    cr_assert_eq(hm_code_row(&c, 0)[0], 0x0FFFu);
    cr_assert_eq(hm_code_row(&c, 1)[0], 0x000Fu);
    cr_assert_eq(hm_code_row(&c, 2)[0], 0x05AAu);
    cr_assert_eq(npy_save_codes(tu_path("c2.npy"), &c, &err), DRSCH_OK);
    hm_codes_free(&c);
    npy_array a;
    cr_assert_eq(npy_load(tu_path("c2.npy"), &a, &err), DRSCH_OK);
    cr_assert_eq(a.shape[1], 2);
    cr_assert_eq(((uint8_t *)a.data)[1], 0x0F);
    npy_free(&a);
    cr_assert_neq(npy_load_codes(tu_path("c.npy"), 17, &c, &err), DRSCH_OK);
    cr_assert(strstr(err.msg, "17 bits") != NULL, "%s", err.msg);
    int32_t ints[6] = {0};
    cr_assert_eq(npy_save(tu_path("i.npy"), NPY_I32, 2, shape, ints, &err), DRSCH_OK);
    cr_assert_neq(npy_load_codes(tu_path("i.npy"), 0, &c, &err), DRSCH_OK);
    cr_assert(strstr(err.msg, "uint8") != NULL, "%s", err.msg);
}

/* A uint8 (n, rb) .npy codes file at path, of scrambled bytes; returns the bytes (free them). */
static uint8_t *codes_file(const char *path, size_t n, size_t rb)
{
    uint8_t *bytes = malloc(n * rb);
    cr_assert_not_null(bytes);
    for (size_t i = 0; i < n * rb; i++)
        bytes[i] = (uint8_t)(i * 2654435761u >> 13);
    size_t shape[2] = {n, rb};
    drsch_error err;
    cr_assert_eq(npy_save(path, NPY_U8, 2, shape, bytes, &err), DRSCH_OK, "%s", err.msg);
    return bytes;
}

/* Codes of whole 64-bit words taken in full are used from the file's mapping as they are; other
 * lengths and prefixes are copied. Either way the codes are the file's, and writing to them
 * changes neither the file nor a second load. */
Test(npy, codes_load_from_a_mapping_without_a_copy_when_rows_are_whole_words)
{
    static const size_t widths[] = {8, 32, 13, 1};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const size_t n = 1000, rb = widths[wi];
        drsch_error err;
        const char *path = tu_path("codes.npy");
        uint8_t *bytes = codes_file(path, n, rb);
        for (int prefix = 0; prefix < 2; prefix++) {
            uint32_t bits = prefix ? (uint32_t)(rb * 8 - 3) : 0;
            hm_codes c;
            cr_assert_eq(npy_load_codes(path, bits, &c, &err), DRSCH_OK, "%s", err.msg);
            const int whole = rb % 8 == 0 && !prefix;
            cr_assert_eq(c.mapping != NULL, whole, "%zu bytes per row, prefix %d", rb, prefix);
            cr_assert_eq((uintptr_t)c.data % 64, 0);
            uint8_t *back = malloc(n * rb);
            hm_codes_to_bytes(&c, back);
            size_t nb = hm_bytes_for_bits(c.bits);
            for (size_t i = 0; i < n; i++)
                for (size_t b = 0; b < nb; b++) {
                    uint8_t want = bytes[i * rb + b];
                    if (b + 1 == nb && c.bits % 8)
                        want &= (uint8_t)((1u << (c.bits % 8)) - 1u);
                    cr_assert_eq(back[i * nb + b], want, "row %zu byte %zu", i, b);
                }
            free(back);
            c.data[0] = ~c.data[0]; /* private: neither the file nor the next load sees it */
            hm_codes_free(&c);
            cr_assert_null(c.data);
            hm_codes again;
            cr_assert_eq(npy_load_codes(path, bits, &again, &err), DRSCH_OK, "%s", err.msg);
            cr_assert_eq(((const uint8_t *)again.data)[0], bytes[0]);
            hm_codes_free(&again);
        }
        free(bytes);
    }
}

/* A row range of a codes file (one rank's slice under mpirun): rows [r0, r1) equal those rows of
 * the whole file, at full length and at a prefix, for whole-word rows (read in place) and others
 * (repacked in chunks, more rows than one chunk); an empty range; the shape from the header. */
Test(npy, codes_row_range_equals_those_rows_of_the_whole_file)
{
    static const size_t widths[] = {8, 5, 1};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const size_t n = 300000 / widths[wi] + 7, rb = widths[wi];
        drsch_error err;
        const char *path = tu_path("range.npy");
        uint8_t *bytes = codes_file(path, n, rb);
        size_t rows = 0, row_bytes = 0;
        cr_assert_eq(npy_codes_shape(path, &rows, &row_bytes, &err), DRSCH_OK, "%s", err.msg);
        cr_assert_eq(rows, n);
        cr_assert_eq(row_bytes, rb);
        for (int prefix = 0; prefix < 2; prefix++) {
            uint32_t bits = prefix ? (uint32_t)(rb * 8 - 3) : 0;
            hm_codes all, part;
            cr_assert_eq(npy_load_codes(path, bits, &all, &err), DRSCH_OK, "%s", err.msg);
            const size_t ranges[][2] = {{0, n}, {3, n - 2}, {n / 3, n / 3 + 1}, {n, n}, {5, 5}};
            for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                size_t r0 = ranges[ri][0], r1 = ranges[ri][1];
                cr_assert_eq(npy_load_codes_rows(path, r0, r1, bits, &part, &err), DRSCH_OK,
                             "%zu bytes, rows %zu..%zu: %s", rb, r0, r1, err.msg);
                cr_assert_eq(part.n, r1 - r0);
                cr_assert_eq(part.bits, all.bits);
                cr_assert_eq(part.words, all.words);
                cr_assert_eq(memcmp(part.data, hm_code_row(&all, r0), part.n * part.words * 8), 0,
                             "%zu bytes, prefix %d, rows %zu..%zu", rb, prefix, r0, r1);
                hm_codes_free(&part);
            }
            hm_codes_free(&all);
        }
        free(bytes);
    }
}

/* A row range is refused as the whole file is: a truncated file (even when the rows asked for
 * are present), rows beyond the file, more bits than stored, another dtype. */
Test(npy, codes_row_range_refuses_what_the_whole_file_refuses)
{
    uint8_t bytes[100 * 4];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)i;
    size_t shape[2] = {100, 4};
    drsch_error err;
    const char *path = tu_path("r.npy");
    cr_assert_eq(npy_save(path, NPY_U8, 2, shape, bytes, &err), DRSCH_OK, "%s", err.msg);
    size_t len;
    char *img = tu_slurp(path, &len);
    tu_write_file(tu_path("cut.npy"), img, len - 10);
    free(img);
    hm_codes c;
    size_t rows, rb;
    cr_assert_eq(npy_load_codes_rows(tu_path("cut.npy"), 0, 2, 0, &c, &err), DRSCH_ERR_TRUNCATED);
    cr_assert(strstr(err.msg, "cut.npy: truncated .npy payload"), "%s", err.msg);
    cr_assert_eq(npy_codes_shape(tu_path("cut.npy"), &rows, &rb, &err), DRSCH_ERR_TRUNCATED);
    cr_assert_eq(npy_load_codes_rows(path, 50, 101, 0, &c, &err), DRSCH_ERR_RANGE);
    cr_assert(strstr(err.msg, "rows 50..101 asked of 100 codes"), "%s", err.msg);
    cr_assert_eq(npy_load_codes_rows(path, 60, 50, 0, &c, &err), DRSCH_ERR_RANGE);
    cr_assert_eq(npy_load_codes_rows(path, 0, 1, 33, &c, &err), DRSCH_ERR_FORMAT);
    cr_assert(strstr(err.msg, "33 bits"), "%s", err.msg);
    cr_assert_null(c.data);
    int32_t ints[400] = {0};
    cr_assert_eq(npy_save(tu_path("i4.npy"), NPY_I32, 2, shape, ints, &err), DRSCH_OK);
    cr_assert_eq(npy_load_codes_rows(tu_path("i4.npy"), 0, 1, 0, &c, &err), DRSCH_ERR_FORMAT);
    cr_assert(strstr(err.msg, "uint8"), "%s", err.msg);
    cr_assert_eq(npy_load_codes_rows(tu_path("none.npy"), 0, 1, 0, &c, &err), DRSCH_ERR_IO);
}

/* A library loaded on first use: its functions land in their slots and work as when linked; a
 * library that is missing, or lacks a function, is refused with a message naming it and why, sets
 * no slot, and the answer stays the same on later calls. */
#define ZLIB_FUNCTIONS(X, s) X(s, crc32) X(s, zlibVersion)
LAZY_FUNCTIONS(zfn, ZLIB_FUNCTIONS);

Test(lazylib, functions_work_as_linked_and_failures_are_named)
{
    static lazy_lib z = LAZY_LIB("libz.so.1", "zlib", zfn_names, zfn_slots);
    cr_assert_null(zfn.crc32, "nothing is resolved before the first load");
    const char *why = lazy_lib_load(&z);
    cr_assert_null(why, "zlib does not load: %s", why);
    cr_assert_null(lazy_lib_load(&z), "a second load answers the same");
    const Bytef text[] = "123456789";
    cr_expect_eq(zfn.crc32(0, text, 9), 0xCBF43926u, "the CRC-32 check value, through the slot");
    cr_expect_str_eq(zfn.zlibVersion(), zlibVersion());
    cr_expect_not_null(lazy_lib_symbol(&z, "adler32"), "one more symbol, looked up by name");
    cr_expect_null(lazy_lib_symbol(&z, "drsch_no_such_function"));

    static lazy_lib gone =
        LAZY_LIB("libdrsch-no-such-library.so.7", "the test library", NULL, NULL);
    why = lazy_lib_load(&gone);
    cr_assert_not_null(why, "a missing library loads");
    cr_expect(strstr(why, "the test library (libdrsch-no-such-library.so.7) cannot be loaded: "),
              "%s", why);
    cr_expect_eq(lazy_lib_load(&gone), why, "a failure is kept, not retried");
    cr_expect_null(lazy_lib_symbol(&gone, "crc32"));

    static const char *const lacking_names[] = {"crc32", "drsch_no_such_function", NULL};
    static void *crc_slot, *none_slot;
    static void *const lacking_slots[] = {&crc_slot, &none_slot};
    static lazy_lib lacking = LAZY_LIB("libz.so.1", "zlib", lacking_names, lacking_slots);
    why = lazy_lib_load(&lacking);
    cr_assert_not_null(why, "a library lacking a function is used");
    cr_expect(strstr(why, "zlib (libz.so.1) cannot be used: it has no drsch_no_such_function"),
              "%s", why);
    cr_expect_null(crc_slot, "a refused library sets no slot");
    cr_expect_null(lazy_lib_symbol(&lacking, "crc32"), "nothing of a refused library is used");
}
