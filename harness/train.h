/* Training and encoding with the DRSCH method (tr_): class-balanced batches with augmentation
 * (datasets/), the network (core/), the DRSCH objective (core/dh.h), SGD, hash-scale annealing,
 * collapse detection, atomic checkpoints and resume; every saved model, checkpoints included,
 * carries the bit order of tr_config.bit_order (by default by |w| discounted by redundancy, the
 * authors' by |w| on request); encoding of any image subset to packed codes in that order.
 *
 * Library code: progress goes to a callback, errors to a message; nothing is printed here. */
#ifndef DRSCH_TRAIN_H
#define DRSCH_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "datasets.h"
#include "dh.h"
#include "hamming.h"
#include "nn.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bit order a saved model (each checkpoint too) carries: codes of length b are its first b bits.
 * Training itself runs in network order; the order is set when a model file is written. */
typedef enum {
    TR_BIT_ORDER_WEIGHT = 0,      /* by |w| (the authors, INTERNALS.md) */
    TR_BIT_ORDER_DECORRELATED = 1 /* by |w| discounted by redundancy (nn_bit_order_decorrelated) on
                                     the codes of up to 5000 training images (drsch's default) */
} tr_bit_order;

/* What the network is trained for. TR_OBJECTIVE_SOFTMAX is the classifier baseline (Sablayrolles
 * et al., "How should we evaluate supervised hashing?", ICASSP 2017): the same network with its
 * last fc giving one logit per training class (nn_config_classifier), softmax cross-entropy
 * (ce_loss) on the same class-balanced batches, labels renumbered 0..C-1 in the order of the
 * dataset's labels among the training split's classes; its code is the one-hot of the predicted
 * class, C bits (tr_config.bits is set to C). Single-label datasets only. */
typedef enum {
    TR_OBJECTIVE_DRSCH = 0,  /* the DRSCH objective (dh.h), hash codes */
    TR_OBJECTIVE_SOFTMAX = 1 /* the classifier baseline */
} tr_objective;

typedef struct {
    char arch[NN_ARCH_NAME_MAX]; /* "" = chosen from the image shape */
    int32_t bits;                /* code length B (default 48) */
    int64_t iters;               /* SGD iterations */
    int32_t classes_per_batch;   /* 10 (authors) */
    int32_t images_per_class;    /* 10 (authors) */
    uint64_t seed;               /* network init, sampling, augmentation */
    nn_sgd_config sgd;
    nn_recipe recipe; /* the lr and decay multipliers of each parameter group (nn.h): drsch's
                         (default) or the authors' */
    dh_config loss;
    int32_t margin_auto;      /* 1: margin C = -B/2 at start, growing by B/24 every margin_every
                                 iterations (loss.margin0 / margin_step are then ignored) */
    float scale0, scale_mult; /* hash scale s = scale0 * scale_mult^(iter / scale_every) */
    int64_t scale_every;      /* authors: 5, 1.1, 10000 */
    int32_t crop_h, crop_w;   /* random crop for training, centre crop for encoding (0 = none) */
    int32_t pad;              /* zero padding before the crop */
    int32_t mirror;           /* random horizontal flips */
    float rotate;             /* random rotation in [-rotate, rotate] degrees (0 = none) */
    float zoom;               /* random zoom in [1 - zoom, 1 + zoom] (0 = none) */
    float clip_grad;   /* rescale the parameter gradient to this L2 norm when larger (0 = off) */
    float margin_min;  /* the growing margin stops at margin_min (auto: -B) */
    int64_t log_every; /* iterations between progress reports */
    int64_t checkpoint_every; /* iterations between checkpoints (0 = at the end only) */
    double collapse_distinct; /* stop when a batch has fewer than this share of distinct codes */
    tr_bit_order bit_order;   /* order of the saved model's bits (default DECORRELATED) */
    tr_objective objective;   /* TR_OBJECTIVE_DRSCH (default) or TR_OBJECTIVE_SOFTMAX */
    int32_t replicas; /* copies of the network sharing each batch, one per OpenMP thread (nn.h:
                         nn_team); 1 (default) = one network on all threads. Like the thread
                         count, not a setting a resume must match */
} tr_config;

/* The defaults for a dataset: the authors' solver and objective, with drsch's schedule (see
 * train_config.c for the values and why each differs from the authors' where it does). */
DRSCH_API void tr_config_default(tr_config *c, const ds_dataset *d);

typedef struct {
    int64_t iter, iters;
    double loss, triplet_loss, laplacian_loss;
    double active_share;       /* active triplets / triplets in the last batch */
    double bit_balance;        /* mean over bits of |mean sign|: 0 balanced, 1 constant bits */
    double distinct_share;     /* distinct codes / batch size in the last batch */
    double bitw_min, bitw_max; /* range of the learned bit weights |w| */
    double grad_norm;          /* L2 norm of the parameter gradient before clipping */
    double images_per_second, eta_seconds, lr, hash_scale, margin;
    tr_objective objective; /* softmax: loss is the cross-entropy, accuracy is set */
    double accuracy;        /* softmax: share of the last batch's images classified right */
    /* since the run (or its resume) began: seconds in the loss of whole batches, and (data
     * parallel) in this rank's collectives, waiting for the other ranks included (else 0) */
    double loss_seconds, collective_seconds;
} tr_progress;

typedef void (*tr_progress_fn)(const tr_progress *p, void *ctx);

/* The classes of the split's training images (the outputs of a classifier trained on it), or -1
 * when the dataset is not single-label (multi-label, re-id identities) or a label is out of
 * range. */
DRSCH_API int tr_train_classes(const ds_dataset *d, const ds_split *split);

/* Trains on the split's training images and writes the model to out_path (atomically; also at
 * every checkpoint). resume_path (or NULL): a model written by an earlier run of the same
 * configuration, to continue from its iteration; --iters may differ (at least the checkpoint's
 * iteration), as no schedule depends on it. stop: polled each iteration (e.g. SIGINT), with an
 * atomic load (acquire), so that another thread may set it with an atomic store
 * (__atomic_store_n; fio_stop_on_signals does). */
DRSCH_API drsch_status tr_train(const tr_config *c, const ds_dataset *d, const ds_split *split,
                                const char *out_path, const char *resume_path,
                                volatile sig_atomic_t *stop, tr_progress_fn progress, void *ctx,
                                drsch_error *err);

/* Data-parallel training (drsch train under mpirun): the ranks of one run and the collectives
 * it needs, supplied by the caller; the library itself sends nothing. Each rank forwards and
 * back-propagates its share of every batch (rows [r N / P, (r + 1) N / P) of the N images); the
 * network outputs are gathered so that every rank computes the loss of the whole batch (the
 * in-batch triplets and the Laplacian need every image); the parameter gradients are summed
 * before the SGD step, so every rank takes the same step. The batches are those of one process
 * (seeded by (seed, iteration)); the result differs from one process's only by the order of the
 * floating-point sums. Rank 0 writes the checkpoints and the model and alone reads --resume (the
 * other ranks receive its parameters). Each callback is a collective: every rank calls it, in the
 * same order. */
typedef struct {
    int32_t rank, size; /* 0 .. size - 1; size 1 is one process */
    void *ctx;          /* passed to every callback */
    /* recv, on every rank, gets counts[r] floats of each rank r in rank order; send holds this
     * rank's counts[rank] */
    void (*allgather)(void *ctx, const float *send, float *recv, const int32_t *counts);
    /* buf[0..n) becomes the element-wise sum over the ranks, the same bits on every rank */
    void (*sum)(void *ctx, float *buf, size_t n);
    /* rank 0's bytes at buf, to buf on every rank */
    void (*broadcast)(void *ctx, void *buf, size_t bytes);
    /* the largest v over the ranks, on every rank */
    int32_t (*max)(void *ctx, int32_t v);
} tr_parallel;

/* tr_train as one rank of a data-parallel run (par NULL, or of size 1: tr_train). Every rank
 * passes the same settings and data; out_path and resume_path are used on rank 0 only, progress
 * is called on every rank (give it to one). A rank whose own work went well but another's did
 * not returns DRSCH_ERR_PEER, the failing rank its error: every rank returns, none waits. */
DRSCH_API drsch_status tr_train_parallel(const tr_config *c, const ds_dataset *d,
                                         const ds_split *split, const char *out_path,
                                         const char *resume_path, volatile sig_atomic_t *stop,
                                         tr_progress_fn progress, void *ctx, const tr_parallel *par,
                                         drsch_error *err);

/* Encodes images idx[0..n) of d with the model (centre crop to its input, its normalisation)
 * into out (allocated here: n codes of the model's B bits, significance order), in f32. */
DRSCH_API drsch_status tr_encode(const nn_net *model, const ds_dataset *d, const int64_t *idx,
                                 int64_t n, hm_codes *out, drsch_error *err);
/* The same in a chosen precision: NN_PRECISION_BF16 gives DRSCH_ERR_UNSUPPORTED where the CPU
 * cannot run bf16 (no silent f32 fallback). */
DRSCH_API drsch_status tr_encode_precision(const nn_net *model, const ds_dataset *d,
                                           const int64_t *idx, int64_t n, nn_precision precision,
                                           hm_codes *out, drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
