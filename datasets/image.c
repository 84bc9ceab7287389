/* Image decoding (JPEG through libjpeg / libjpeg-turbo, PNG through libpng's simplified API)
 * to 8-bit RGB (the resize to the network input: resize.c). Deliberately no other formats, no
 * colour management. Each library is loaded by the first image of its format (lazylib.h). */
#include "datasets_internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "lazylib.h"

/* The sonames of the libraries the build found (Debian 12: libjpeg62-turbo, libpng 1.6). */
#ifndef DRSCH_JPEG_SONAME
#define DRSCH_JPEG_SONAME "libjpeg.so.62"
#endif
#ifndef DRSCH_PNG_SONAME
#define DRSCH_PNG_SONAME "libpng16.so.16"
#endif

/* The functions called here (lazylib.h: jpeglib.f and pnglib.f point at them). */
#define JPEG_FUNCTIONS(X, s)                                                                       \
    X(s, jpeg_std_error)                                                                           \
    X(s, jpeg_CreateDecompress)                                                                    \
    X(s, jpeg_mem_src)                                                                             \
    X(s, jpeg_read_header)                                                                         \
    X(s, jpeg_start_decompress)                                                                    \
    X(s, jpeg_read_scanlines)                                                                      \
    X(s, jpeg_finish_decompress)                                                                   \
    X(s, jpeg_destroy_decompress)
#define PNG_FUNCTIONS(X, s)                                                                        \
    X(s, png_image_begin_read_from_memory)                                                         \
    X(s, png_image_finish_read)                                                                    \
    X(s, png_image_free)
LAZY_FUNCTIONS(jpeglib, JPEG_FUNCTIONS);
LAZY_FUNCTIONS(pnglib, PNG_FUNCTIONS);
static lazy_lib g_jpeg = LAZY_LIB(DRSCH_JPEG_SONAME, "libjpeg", jpeglib_names, jpeglib_slots);
static lazy_lib g_png = LAZY_LIB(DRSCH_PNG_SONAME, "libpng", pnglib_names, pnglib_slots);

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_silent(j_common_ptr cinfo) { (void)cinfo; }

static drsch_status decode_jpeg(const char *path, const uint8_t *buf, size_t len, uint8_t **pixels,
                                int *h, int *w, drsch_error *err)
{
    const char *unloaded = lazy_lib_load(&g_jpeg);
    if (unloaded)
        return drsch_fail_at(err, DRSCH_ERR_UNSUPPORTED, path, -1, "cannot decode a JPEG image: %s",
                             unloaded);
    struct jpeg_decompress_struct cinfo;
    jpeg_err je;
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile out = NULL;
    cinfo.err = jpeglib.jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_error_exit;
    je.pub.output_message = jpeg_silent;
    je.msg[0] = '\0';
    if (setjmp(je.jump)) {
        jpeglib.jpeg_destroy_decompress(&cinfo);
        free(out);
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "JPEG decoding failed: %s", je.msg);
    }
    jpeglib.jpeg_CreateDecompress(&cinfo, JPEG_LIB_VERSION, sizeof cinfo);
    jpeglib.jpeg_mem_src(&cinfo, (unsigned char *)buf, (unsigned long)len);
    jpeglib.jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeglib.jpeg_start_decompress(&cinfo);
    int W = (int)cinfo.output_width, H = (int)cinfo.output_height;
    if (cinfo.output_components != 3 || W <= 0 || H <= 0) {
        jpeglib.jpeg_destroy_decompress(&cinfo);
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1,
                             "JPEG with %d components, expected RGB", cinfo.output_components);
    }
    out = malloc((size_t)W * (size_t)H * 3);
    if (!out) {
        jpeglib.jpeg_destroy_decompress(&cinfo);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, path, -1, "out of memory for a %d x %d image", W,
                             H);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * (size_t)W * 3;
        jpeglib.jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeglib.jpeg_finish_decompress(&cinfo);
    jpeglib.jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    *h = H;
    *w = W;
    return DRSCH_OK;
}

static drsch_status decode_png(const char *path, const uint8_t *buf, size_t len, uint8_t **pixels,
                               int *h, int *w, drsch_error *err)
{
    const char *unloaded = lazy_lib_load(&g_png);
    if (unloaded)
        return drsch_fail_at(err, DRSCH_ERR_UNSUPPORTED, path, -1, "cannot decode a PNG image: %s",
                             unloaded);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!pnglib.png_image_begin_read_from_memory(&img, buf, len))
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "PNG decoding failed: %s",
                             img.message);
    img.format = PNG_FORMAT_RGB;
    size_t sz = PNG_IMAGE_SIZE(img);
    uint8_t *out = malloc(sz ? sz : 1);
    if (!out) {
        pnglib.png_image_free(&img);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, path, -1, "out of memory for a %u x %u image",
                             img.width, img.height);
    }
    if (!pnglib.png_image_finish_read(&img, NULL, out, 0, NULL)) {
        free(out);
        drsch_status s =
            drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "PNG decoding failed: %s", img.message);
        pnglib.png_image_free(&img);
        return s;
    }
    *pixels = out;
    *h = (int)img.height;
    *w = (int)img.width;
    return DRSCH_OK;
}

drsch_status ds_image_decode_file(const char *path, uint8_t **pixels, int *h, int *w,
                                  drsch_error *err)
{
    *pixels = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    drsch_status s = ds_read_file(path, &buf, &len, err);
    if (s)
        return s;
    static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(buf, PNG_SIG, 8))
        s = decode_png(path, buf, len, pixels, h, w, err);
    else if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        s = decode_jpeg(path, buf, len, pixels, h, w, err);
    else
        s = drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1,
                          "neither a JPEG nor a PNG file (%zu bytes)", len);
    free(buf);
    return s;
}
