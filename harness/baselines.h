/* Classical hashing baselines measured by drsch under the same protocol as its deep codes, so a
 * table shows what the deep codes buy (bl_):
 *  - LSH: sign of random Gaussian projections of the centred features (Charikar, STOC 2002);
 *  - ITQ: PCA to B dimensions, then the rotation minimising the quantisation error by
 *    alternating sign / orthogonal Procrustes (Gong & Lazebnik, CVPR 2011; 50 iterations).
 * Both are linear: code = sign((x - mean) P) with P of dim x B. Eigen-decomposition and SVD come
 * from LAPACK (LAPACKE); the covariance and the products are drsch's loops with OpenMP, blocked
 * so that they vectorise, each sum still added in the order of the plain loop (the same bits).
 * Library code: no printing. */
#ifndef DRSCH_BASELINES_H
#define DRSCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "hamming.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dim;
    uint32_t bits;
    float *mean; /* dim */
    float *proj; /* dim x bits, row-major */
} bl_model;

/* x: n x dim training features. ITQ: DRSCH_ERR_UNSUPPORTED when LAPACK cannot be loaded,
 * DRSCH_ERR_NUMERIC when a decomposition fails. */
DRSCH_API drsch_status bl_lsh_train(const float *x, size_t n, int dim, uint32_t bits, uint64_t seed,
                                    bl_model *out, drsch_error *err);
DRSCH_API drsch_status bl_itq_train(const float *x, size_t n, int dim, uint32_t bits, int iters,
                                    uint64_t seed, bl_model *out, drsch_error *err);
/* The sample covariance of x (n x dim, n >= 2) about mean, in double: out[a * dim + b] for
 * b >= a (the upper triangle; the entries below it are left as they are). Each is the sum over
 * the rows, in row order, of ((double)x[i][a] - mean[a]) * ((double)x[i][b] - mean[b]), divided
 * by n - 1: the bits of that plain loop, at any thread count. ITQ's PCA. */
DRSCH_API drsch_status bl_covariance(const float *x, size_t n, int dim, const float *mean,
                                     double *out, drsch_error *err);
/* Codes of x (n x dim) into rows first..first+n of out (allocated by the caller, out->bits ==
 * model bits). */
DRSCH_API void bl_encode(const bl_model *m, const float *x, size_t n, hm_codes *out, size_t first);
DRSCH_API void bl_model_free(bl_model *m);
/* "LAPACK FILE, BLAS FILE": the libraries ITQ's decompositions ran on, as the system's
 * alternatives chose them (reference LAPACK, OpenBLAS, ...: their roundings differ, and so do
 * ITQ's codes in a few bits); "" before ITQ first loaded LAPACK. */
DRSCH_API const char *bl_lapack_libraries(void);

#ifdef __cplusplus
}
#endif

#endif
