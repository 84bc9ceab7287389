/* Bilinear resize with half-pixel centres, interleaved (H x W x C) to planar (C x H x W) 8-bit
 * pixels; no antialiasing when shrinking (NUS-WIDE and CUHK03 images are shrunk by small factors
 * to the network input). Its own file because drsch's HDF5 module (the CUHK03 reader) is built
 * from it too. */
#include "datasets_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
