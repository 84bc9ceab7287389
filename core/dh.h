/* The DRSCH objective (Zhang et al., IEEE TIP 2015; defaults from the authors' Caffe code, see
 * INTERNALS.md): on the bit-weighted relaxed codes y = w * tanh(s x / 2) of a batch,
 *
 *   L = (1/T) sum_{(a,p,n) active} (|y_a - y_p|^2 - |y_a - y_n|^2 - C)  +  (beta/n) tr(Y^T Lap Y)
 *
 * where the triplets are every (anchor, similar, dissimilar) of the batch, or one per anchor
 * with DH_TRIPLETS_HARD; T is their number, or the number of active ones with DH_NORM_ACTIVE;
 * a triplet is active while |y_a - y_p|^2 - |y_a - y_n|^2 >= C, the margin C starts at -5 and
 * moves by -0.1 every 10k iterations (a margin that grows), and Lap = D - A is the Laplacian of a
 * graph over the batch: A_ij = 1 for similar pairs and 0.001 otherwise (the authors' label graph),
 * or a k-NN heat-kernel graph on features (the abstract's "similar appearance"). tr(Y^T Lap Y) =
 * 1/2 sum_ij A_ij |y_i - y_j|^2. drsch deliberately builds D - A, not the authors' -(A + D + I),
 * and rebuilds the graph for every batch (their code keeps the first batch's labels). The
 * regulariser is divided by the batch size n, as the triplet term is by T: without it, at
 * beta = 0.001 and batches of 100 the label-graph term outweighs the triplet term about 3:1 and
 * merges the classes' codes (measured on Fashion-MNIST: mAP 0.59 against 0.77 without it).
 *
 * Similarity is given as an n x n 0/1 matrix, so single labels, identities and multi-hot labels
 * (at least one shared label) all work. Library code: no printing, no exits. */
#ifndef DRSCH_DH_H
#define DRSCH_DH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DH_GRAPH_LABEL = 0, DH_GRAPH_KNN } dh_graph;

/* What the triplet term is divided by: every triplet of the batch (the authors), or only the
 * active ones (the mean over triplets that still violate the margin, so the gradient does not
 * fade as most triplets are satisfied). */
typedef enum { DH_NORM_ALL = 0, DH_NORM_ACTIVE } dh_norm;

/* Which triplets the batch forms: every (anchor, similar, dissimilar) one (the authors), or per
 * anchor only its hardest: the farthest similar item and the nearest dissimilar one ("batch
 * hard", Hermans et al. 2017, arXiv 1703.07737). */
typedef enum { DH_TRIPLETS_ALL = 0, DH_TRIPLETS_HARD } dh_triplets;

typedef struct {
    float beta;           /* Laplacian weight; authors 0.001 */
    float margin0;        /* C at iteration 0; authors -5 */
    float margin_step;    /* added to C every margin_every iterations; authors -0.1 */
    int64_t margin_every; /* authors 10000 */
    float margin_min;     /* the margin stops growing here (0 = no limit; authors: none) */
    dh_graph graph;       /* DH_GRAPH_LABEL (default) or DH_GRAPH_KNN */
    float graph_other;    /* label graph: weight of dissimilar pairs; authors 0.001 */
    int32_t knn_k;        /* k-NN graph: neighbours per item (default 5) */
    dh_norm norm;         /* DH_NORM_ALL (authors) or DH_NORM_ACTIVE */
    dh_triplets triplets; /* DH_TRIPLETS_ALL (authors) or DH_TRIPLETS_HARD */
} dh_config;

DRSCH_API void dh_config_default(dh_config *c);
DRSCH_API float dh_margin_at(const dh_config *c, int64_t iter);

typedef struct {
    double loss, triplet_loss, laplacian_loss;
    int64_t triplets, active;
} dh_stats;

/* sim: n x n, sim[i*n+j] = 1 when i and j are similar (diagonal ignored).
 * feat (k-NN graph only): n x fdim features the graph is built on (e.g. the input pixels).
 * y: n x d outputs; dy: n x d, receives d L / d y. DRSCH_OK, or DRSCH_ERR_NOMEM. */
DRSCH_API drsch_status dh_loss(const dh_config *c, int64_t iter, const float *y, int32_t n,
                               int32_t d, const uint8_t *sim, const float *feat, int32_t fdim,
                               float *dy, dh_stats *stats);

/* sim from single labels (n) or from multi-hot bitmask rows (n x words); one of them NULL. */
DRSCH_API void dh_similarity(const int32_t *labels, const uint64_t *multi, size_t words, int32_t n,
                             uint8_t *sim);

/* ---- The classifier baseline's loss ------------------------------------------------------
 * Softmax cross-entropy (Sablayrolles et al., ICASSP 2017: every supervised hashing result held
 * against a plain classifier): logits n x classes, labels in 0..classes-1;
 *   *loss = (1/n) sum_i -log softmax(logits_i)[labels_i]   (in double, max-subtracted),
 *   dlogits (may be NULL) = (softmax(logits) - onehot(labels)) / n,
 *   *accuracy (may be NULL) = the share of rows whose first largest logit is their label.
 * DRSCH_ERR_ARG for n or classes < 1, DRSCH_ERR_RANGE for a label out of range, DRSCH_ERR_NUMERIC
 * for a NaN or infinite logit (nothing is written then). */
DRSCH_API drsch_status ce_loss(const float *logits, const int32_t *labels, int32_t n,
                               int32_t classes, float *dlogits, double *loss, double *accuracy,
                               drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
