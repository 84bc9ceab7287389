/* Image decoding (JPEG through libjpeg / libjpeg-turbo, PNG through libpng's simplified API)
 * to 8-bit RGB, and a bilinear resize with half-pixel centres. Deliberately no other formats,
 * no colour management, no antialiasing when shrinking (NUS-WIDE and CUHK03 images are
 * shrunk by small factors to the network input). */
#include "datasets_internal.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

void ds_resize_bilinear_hwc_to_chw(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh,
                                   int dw)
{
    /* source coordinate of destination pixel d: (d + 0.5) * s / D - 0.5, clamped to the edge */
    int xs0[4096], xs1[4096];
    float xw[4096];
    int *x0 = xs0, *x1 = xs1;
    float *wx = xw;
    int heap = dw > 4096;
    if (heap) {
        x0 = malloc((size_t)dw * sizeof *x0);
        x1 = malloc((size_t)dw * sizeof *x1);
        wx = malloc((size_t)dw * sizeof *wx);
        if (!x0 || !x1 || !wx) {
            free(x0);
            free(x1);
            free(wx);
            memset(dst, 0, (size_t)c * (size_t)dh * (size_t)dw);
            return;
        }
    }
    for (int x = 0; x < dw; x++) {
        float fx = ((float)x + 0.5f) * (float)sw / (float)dw - 0.5f;
        if (fx < 0)
            fx = 0;
        int i = (int)fx;
        if (i > sw - 1)
            i = sw - 1;
        x0[x] = i;
        x1[x] = i + 1 < sw ? i + 1 : sw - 1;
        wx[x] = fx - (float)i;
    }
    for (int y = 0; y < dh; y++) {
        float fy = ((float)y + 0.5f) * (float)sh / (float)dh - 0.5f;
        if (fy < 0)
            fy = 0;
        int y0 = (int)fy;
        if (y0 > sh - 1)
            y0 = sh - 1;
        int y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        float wy = fy - (float)y0;
        const uint8_t *r0 = src + (size_t)y0 * (size_t)sw * (size_t)c;
        const uint8_t *r1 = src + (size_t)y1 * (size_t)sw * (size_t)c;
        for (int ch = 0; ch < c; ch++) {
            uint8_t *o = dst + ((size_t)ch * (size_t)dh + (size_t)y) * (size_t)dw;
            for (int x = 0; x < dw; x++) {
                float a = r0[(size_t)x0[x] * c + ch], b = r0[(size_t)x1[x] * c + ch];
                float p = r1[(size_t)x0[x] * c + ch], q = r1[(size_t)x1[x] * c + ch];
                float top = a + (b - a) * wx[x], bot = p + (q - p) * wx[x];
                float v = top + (bot - top) * wy;
                o[x] = (uint8_t)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    if (heap) {
        free(x0);
        free(x1);
        free(wx);
    }
}

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
    struct jpeg_decompress_struct cinfo;
    jpeg_err je;
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile out = NULL;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_error_exit;
    je.pub.output_message = jpeg_silent;
    je.msg[0] = '\0';
    if (setjmp(je.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "JPEG decoding failed: %s", je.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int W = (int)cinfo.output_width, H = (int)cinfo.output_height;
    if (cinfo.output_components != 3 || W <= 0 || H <= 0) {
        jpeg_destroy_decompress(&cinfo);
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1,
                             "JPEG with %d components, expected RGB", cinfo.output_components);
    }
    out = malloc((size_t)W * (size_t)H * 3);
    if (!out) {
        jpeg_destroy_decompress(&cinfo);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, path, -1, "out of memory for a %d x %d image", W,
                             H);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * (size_t)W * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    *h = H;
    *w = W;
    return DRSCH_OK;
}

static drsch_status decode_png(const char *path, const uint8_t *buf, size_t len, uint8_t **pixels,
                               int *h, int *w, drsch_error *err)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, buf, len))
        return drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "PNG decoding failed: %s",
                             img.message);
    img.format = PNG_FORMAT_RGB;
    size_t sz = PNG_IMAGE_SIZE(img);
    uint8_t *out = malloc(sz ? sz : 1);
    if (!out) {
        png_image_free(&img);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, path, -1, "out of memory for a %u x %u image",
                             img.width, img.height);
    }
    if (!png_image_finish_read(&img, NULL, out, 0, NULL)) {
        free(out);
        drsch_status s =
            drsch_fail_at(err, DRSCH_ERR_DECODE, path, -1, "PNG decoding failed: %s", img.message);
        png_image_free(&img);
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
