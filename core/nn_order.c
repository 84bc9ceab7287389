/* The order of a network's bits, significance first: what truncating a code to its first b bits
 * keeps. Set as given (a model file's order), by |w| (the paper's order: the b bits of largest
 * learned weight), or decorrelated (drsch's default: greedily the bit whose weight times its
 * least disagreement with the bits already taken is largest; the README describes it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

const uint32_t *nn_bit_order(const nn_net *net) { return net->bit_order; }

drsch_status nn_set_bit_order(nn_net *net, const uint32_t *order, drsch_error *err)
{
    const uint32_t B = (uint32_t)net->cfg.bits;
    uint8_t *seen = calloc(B, 1);
    if (!seen)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    for (uint32_t j = 0; j < B; j++) {
        if (order[j] >= B || seen[order[j]]) {
            free(seen);
            return drsch_fail(err, DRSCH_ERR_ARG,
                              "bit order: entry %u (%u) makes it no permutation of 0..%u", j,
                              order[j], B - 1);
        }
        seen[order[j]] = 1;
    }
    free(seen);
    memcpy(net->bit_order, order, sizeof(uint32_t) * B);
    return DRSCH_OK;
}

void nn_bit_order_by_weight(nn_net *net)
{
    const float *w = nn_bit_weights(net);
    const int32_t B = net->cfg.bits;
    for (int32_t j = 0; j < B; j++)
        net->bit_order[j] = (uint32_t)j;
    if (!w)
        return;
    /* Insertion sort: B is at most a few thousand, and it is stable (ties by index). */
    for (int32_t j = 1; j < B; j++) {
        uint32_t v = net->bit_order[j];
        int32_t k = j - 1;
        while (k >= 0 && fabsf(w[net->bit_order[k]]) < fabsf(w[v])) {
            net->bit_order[k + 1] = net->bit_order[k];
            k--;
        }
        net->bit_order[k + 1] = v;
    }
}

drsch_status nn_bit_order_decorrelated(nn_net *net, const hm_codes *codes, drsch_error *err)
{
    const int32_t B = net->cfg.bits;
    if (!codes || codes->bits != (uint32_t)B || codes->n < 1)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "bit order: %zu sample codes of %u bits for a net of %d bits",
                          codes ? codes->n : 0, codes ? codes->bits : 0, B);
    const float *w = nn_bit_weights(net);
    const size_t n = codes->n, cw = (n + 63) / 64;
    /* columns: bit j of every sample code as one bitset, so a pair costs n / 64 popcounts */
    uint64_t *col = calloc((size_t)B * cw, sizeof *col);
    double *r = malloc(sizeof *r * (size_t)B);
    uint8_t *taken = calloc((size_t)B, 1);
    if (!col || !r || !taken) {
        free(col), free(r), free(taken);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "bit order: out of memory for %zu codes of %d bits",
                          n, B);
    }
    for (size_t i = 0; i < n; i++) {
        const uint64_t *c = codes->data + i * codes->words;
        for (int32_t j = 0; j < B; j++)
            if (c[j / 64] >> (j % 64) & 1)
                col[(size_t)j * cw + i / 64] |= 1ULL << (i % 64);
    }
    /* r_j against the constant bit: its balance */
    for (int32_t j = 0; j < B; j++) {
        size_t h = 0;
        for (size_t k = 0; k < cw; k++)
            h += (size_t)__builtin_popcountll(col[(size_t)j * cw + k]);
        r[j] = 1.0 - fabs(1.0 - 2.0 * (double)h / (double)n);
    }
    for (int32_t pos = 0; pos < B; pos++) {
        int32_t best = -1;
        double best_s = 0, best_w = 0;
        for (int32_t j = 0; j < B; j++) {
            if (taken[j])
                continue;
            double aw = w ? fabs((double)w[j]) : 1.0, sc = aw * r[j];
            if (best < 0 || sc > best_s || (sc == best_s && aw > best_w))
                best = j, best_s = sc, best_w = aw;
        }
        taken[best] = 1;
        net->bit_order[pos] = (uint32_t)best;
        const uint64_t *cb = col + (size_t)best * cw;
        for (int32_t j = 0; j < B; j++) {
            if (taken[j] || r[j] == 0.0)
                continue;
            const uint64_t *cj = col + (size_t)j * cw;
            size_t h = 0;
            for (size_t k = 0; k < cw; k++)
                h += (size_t)__builtin_popcountll(cb[k] ^ cj[k]);
            double a = 1.0 - fabs(1.0 - 2.0 * (double)h / (double)n);
            if (a < r[j])
                r[j] = a;
        }
    }
    free(col), free(r), free(taken);
    return DRSCH_OK;
}
