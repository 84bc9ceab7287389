/* Classical hashing baselines measured by drsch under the same protocol as its deep codes, so a
 * table shows what the deep codes buy (bl_):
 *  - LSH: sign of random Gaussian projections of the centred features (Charikar, STOC 2002);
 *  - ITQ: PCA to B dimensions, then the rotation minimising the quantisation error by
 *    alternating sign / orthogonal Procrustes (Gong & Lazebnik, CVPR 2011; 50 iterations).
 * Both are linear: code = sign((x - mean) P) with P of dim x B. Eigen-decomposition and SVD come
 * from LAPACK (LAPACKE), matrix products are plain loops with OpenMP. Library code: no printing. */
#ifndef DRSCH_BASELINES_H
#define DRSCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "hamming.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dim;
    uint32_t bits;
    float *mean; /* dim */
    float *proj; /* dim x bits, row-major */
} bl_model;

typedef struct {
    char msg[256];
} drsch_error;

/* x: n x dim training features. Return 0, or -1 with a message. */
int bl_lsh_train(const float *x, size_t n, int dim, uint32_t bits, uint64_t seed, bl_model *out,
                 drsch_error *err);
int bl_itq_train(const float *x, size_t n, int dim, uint32_t bits, int iters, uint64_t seed,
                 bl_model *out, drsch_error *err);
/* Codes of x (n x dim) into rows first..first+n of out (allocated by the caller, out->bits ==
 * model bits). */
void bl_encode(const bl_model *m, const float *x, size_t n, hm_codes *out, size_t first);
void bl_model_free(bl_model *m);

#ifdef __cplusplus
}
#endif

#endif
