/* Packed binary codes (allocation, conversion from and to the on-disk byte layout with prefix
 * truncation), weighted-Hamming tables, the double-precision weighted reference, and the
 * single-query distance entry points that route to the active ISA.
 *
 * Weights are quantised once to integer multiples of a power-of-two step (hm_weights_create),
 * so every weighted distance is an exact float sum, the same in any order.
 *
 * Does not read or write files (npy.c does) and does not rank (knn.c does).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "simd_internal.h"

/* Bytes of an n x words buffer, rounded up to whole 64-byte lines (aligned vector loads never
 * run past it); SIZE_MAX on overflow. */
static size_t padded_bytes(size_t n, size_t words)
{
    if (words && n > (SIZE_MAX - 64) / 8 / words)
        return SIZE_MAX;
    size_t b = n * words * 8;
    b = (b + 63) & ~(size_t)63;
    return b ? b : 64;
}

drsch_status hm_codes_alloc(hm_codes *c, size_t n, uint32_t bits, drsch_error *err)
{
    memset(c, 0, sizeof *c);
    if (bits < 1 || bits > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_ARG, "code length %u bits is outside 1..%d", bits,
                          HM_MAX_BITS);
    size_t words = hm_words_for_bits(bits);
    size_t bytes = padded_bytes(n, words);
    if (bytes == SIZE_MAX)
        return drsch_fail(err, DRSCH_ERR_ARG, "%zu codes of %u bits overflow the address space", n,
                          bits);
    uint64_t *data = aligned_alloc(64, bytes);
    if (!data)
        return drsch_fail(err, DRSCH_ERR_NOMEM,
                          "cannot allocate %zu bytes for %zu codes of %u bits", bytes, n, bits);
    memset(data, 0, bytes);
    c->n = n;
    c->bits = bits;
    c->words = words;
    c->data = data;
    return DRSCH_OK;
}

void hm_codes_free(hm_codes *c)
{
    if (!c)
        return;
    if (c->mapping)
        munmap(c->mapping, c->mapping_len);
    else
        free(c->data);
    memset(c, 0, sizeof *c);
}

drsch_status hm_codes_from_bytes(hm_codes *c, const uint8_t *bytes, size_t n, size_t row_bytes,
                                 uint32_t bits, drsch_error *err)
{
    memset(c, 0, sizeof *c);
    if (bits < 1 || bits > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_ARG, "code length %u bits is outside 1..%d", bits,
                          HM_MAX_BITS);
    if ((size_t)bits > 8 * row_bytes)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "asked for %u bits but rows hold only %zu bytes (%zu bits)", bits,
                          row_bytes, 8 * row_bytes);
    if (n && !bytes)
        return drsch_fail(err, DRSCH_ERR_ARG, "no code bytes given for %zu codes", n);
    drsch_status st = hm_codes_alloc(c, n, bits, err);
    if (st != DRSCH_OK)
        return st;
    size_t nb = hm_bytes_for_bits(bits), words = c->words;
    uint8_t last_mask = (uint8_t)(bits % 8 ? (1u << (bits % 8)) - 1u : 0xffu);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *src = bytes + i * row_bytes;
        uint64_t *dst = c->data + i * words;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst, src, nb - 1);
        ((uint8_t *)dst)[nb - 1] = src[nb - 1] & last_mask;
#else
        for (size_t b = 0; b < nb; b++) {
            uint8_t v = b + 1 == nb ? (uint8_t)(src[b] & last_mask) : src[b];
            dst[b / 8] |= (uint64_t)v << (8 * (b % 8));
        }
#endif
    }
    return DRSCH_OK;
}

void hm_codes_to_bytes(const hm_codes *c, uint8_t *out)
{
    size_t nb = hm_bytes_for_bits(c->bits);
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *row = hm_code_row(c, i);
        for (size_t b = 0; b < nb; b++)
            out[i * nb + b] = (uint8_t)(row[b / 8] >> (8 * (b % 8)));
    }
}

void hm_distances(const uint64_t *q, const hm_codes *db, uint32_t *out)
{
    hm_active_kernels()->distances(q, db->data, db->n, db->words, out);
}

/* ---- weights ----------------------------------------------------------------------------- */

/* Sum of |round(w_i / 2^e)| over the weights, in integers (exact). */
static int64_t quantised_abs_sum(const float *w, uint32_t bits, int e)
{
    int64_t s = 0;
    for (uint32_t i = 0; i < bits; i++)
        s += (int64_t)fabs(round(ldexp((double)w[i], -e)));
    return s;
}

/* The exponent e of the quantisation step 2^e: the smallest e >= -149 (the float subnormal
 * unit; every float weight is a multiple of it) with sum |w_i| / 2^e <= 2^24 - bits. Rounding
 * adds at most 1/2 per weight, so sum |round(w_i / 2^e)| <= 2^24; that is also checked exactly
 * (in integers). All-zero weights get step 1. */
static int quantisation_exponent(const float *w, uint32_t bits, double abs_sum)
{
    if (!(abs_sum > 0.0))
        return 0;
    const double limit = HM_WEIGHT_UNITS - (double)bits;
    int e;
    frexp(abs_sum / limit, &e); /* abs_sum / limit < 2^e, and >= 2^(e-1) up to rounding */
    e = e - 2 < -149 ? -149 : e - 2;
    while (ldexp(abs_sum, -e) > limit || quantised_abs_sum(w, bits, e) > (int64_t)HM_WEIGHT_UNITS)
        e++;
    return e;
}

static int float_increasing(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

drsch_status hm_weights_create(hm_weights **out, const float *w, uint32_t bits, drsch_error *err)
{
    *out = NULL;
    if (bits < 1 || bits > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_ARG, "weights for %u bits: outside 1..%d", bits,
                          HM_MAX_BITS);
    if (!w)
        return drsch_fail(err, DRSCH_ERR_ARG, "no weights given");
    double abs_sum = 0.0;
    for (uint32_t i = 0; i < bits; i++) {
        if (!isfinite(w[i]))
            return drsch_fail(err, DRSCH_ERR_ARG, "weight %u is %s (weights must be finite)", i,
                              isnan(w[i]) ? "NaN" : "infinite");
        abs_sum += fabs((double)w[i]);
    }
    /* Keeps every distance finite with a wide margin (the largest, step * sum |q_i|, exceeds
     * sum |w_i| by at most bits * step / 2); the command line's weight readers refuse the same. */
    if (abs_sum > (double)FLT_MAX / 2)
        return drsch_fail(err, DRSCH_ERR_ARG, "sum of |weights| %g is too large for float sums",
                          abs_sum);
    int e = quantisation_exponent(w, bits, abs_sum);
    double step = ldexp(1.0, e);
    hm_weights *hw = calloc(1, sizeof *hw);
    if (!hw)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "cannot allocate weights");
    hw->bits = bits;
    hw->words = hm_words_for_bits(bits);
    hw->step = step;
    size_t nt = hw->words * 256; /* 16 nibbles x 16 values per word */
    hw->tables = aligned_alloc(64, nt * sizeof(float));
    hw->w = malloc(bits * sizeof(float));
    hw->lb = malloc((bits + 1) * sizeof(double));
    if (!hw->tables || !hw->w || !hw->lb) {
        hm_weights_free(hw);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "cannot allocate weight tables for %u bits", bits);
    }
    /* q_i * 2^e with |q_i| <= 2^24: exactly a float (normal or subnormal, as e >= -149) */
    for (uint32_t i = 0; i < bits; i++)
        hw->w[i] = (float)ldexp(round(ldexp((double)w[i], -e)), e);
    for (size_t p = 0; p < hw->words * 16; p++) {
        for (unsigned v = 0; v < 16; v++) {
            float s = 0.0f; /* exact: a multiple of step below 2^24 steps */
            for (unsigned b = 0; b < 4; b++) {
                size_t bit = 4 * p + b;
                if ((v >> b) & 1u && bit < bits)
                    s += hw->w[bit];
            }
            hw->tables[p * 16 + v] = s;
        }
    }
    /* lb: prefix sums of the weights in increasing order (exact in double: multiples of step) */
    float *sorted = malloc(bits * sizeof(float));
    if (!sorted) {
        hm_weights_free(hw);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "cannot allocate weight tables for %u bits", bits);
    }
    memcpy(sorted, hw->w, bits * sizeof(float));
    qsort(sorted, bits, sizeof(float), float_increasing);
    hw->lb[0] = 0;
    for (uint32_t h = 0; h < bits; h++)
        hw->lb[h + 1] = hw->lb[h] + sorted[h];
    if (sorted[0] < 0) { /* the sums fall then rise: no bound from them */
        free(hw->lb);
        hw->lb = NULL;
    }
    free(sorted);
    *out = hw;
    return DRSCH_OK;
}

double hm_weights_step(const hm_weights *w) { return w->step; }

const float *hm_weights_values(const hm_weights *w) { return w->w; }

void hm_weights_free(hm_weights *w)
{
    if (!w)
        return;
    free(w->tables);
    free(w->w);
    free(w->lb);
    free(w);
}

void hm_weighted_distances(const uint64_t *q, const hm_codes *db, const hm_weights *w, float *out)
{
    hm_active_kernels()->weighted_distances(q, db->data, db->n, db->words, w->tables, out);
}

double hm_weighted_distance_ref(const uint64_t *a, const uint64_t *b, const float *w, uint32_t bits)
{
    double s = 0.0;
    for (uint32_t i = 0; i < bits; i++)
        if (((a[i / 64] ^ b[i / 64]) >> (i % 64)) & 1u)
            s += (double)w[i];
    return s;
}
