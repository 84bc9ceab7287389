/* Stable radix sort of distances (keysort.h). */
#include "keysort.h"

#include <string.h>

/* The float's order as an unsigned integer's: negatives reversed below positives, -0 as +0 (they
 * compare equal as floats). Distances are finite. */
static inline uint32_t float_order_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (u == 0x80000000u)
        u = 0;
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

void hm_sort_keyed(hm_keyed *a, hm_keyed *tmp, size_t n)
{
    hm_keyed *src = a, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[256] = {0};
        for (size_t j = 0; j < n; j++)
            count[float_order_key(src[j].d) >> shift & 0xff]++;
        if (n && count[float_order_key(src[0].d) >> shift & 0xff] == n)
            continue; /* every key has this byte: the pass would not move anything */
        size_t at = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (size_t j = 0; j < n; j++)
            dst[count[float_order_key(src[j].d) >> shift & 0xff]++] = src[j];
        hm_keyed *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}
