/* What the commands share about an experiment: protocol names and the split they build, the
 * HxW size flag, the codes of a model on a split, code prefixes, packed multi-hot labels, and the
 * evaluation of a split's codes with the dataset's labels (retrieval, re-id). */
#ifndef DRSCH_EXPERIMENT_H
#define DRSCH_EXPERIMENT_H

#include <stdint.h>

#include "datasets.h"
#include "hamming.h"
#include "metrics.h"
#include "nn.h"
#include "status.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    XP_PROTO_AUTO = 0,       /* classic for CUHK03, multi-label for NUS-WIDE, paper otherwise */
    XP_PROTO_PAPER,          /* per class 100 queries / 500 train / rest database */
    XP_PROTO_PAPER_DB_TRAIN, /* the same with the training images also in the database */
    XP_PROTO_FULL,           /* official split: query = test file, train = database = train file */
    XP_PROTO_CLASSIC,        /* CUHK03 classic 20 splits (one testset) */
    XP_PROTO_NEW,            /* CUHK03 767/700 (needs the config .mat) */
    XP_PROTO_NONE,
    /* Named after the protocols other code bases publish (their tables can be put beside
     * drsch's); the split's name says which protocol it is, its sizes and its seed. */
    XP_PROTO_CIFAR10,    /* per class 100 queries / 500 train / the rest database: paper's split */
    XP_PROTO_CIFAR10_1,  /* the same, database = every non-query image: paper-db-train's split */
    XP_PROTO_CIFAR10_2,  /* query = test file, train = database = train file: full's split */
    XP_PROTO_NUSWIDE_21, /* 21 concepts, per concept 100 queries / 500 train, database = every
                            labelled non-query image (training images included) */
    XP_PROTO_TRANSFER,   /* ds_split_transfer: 75% of the classes train, the others are held out
                            for queries (100 per class) and database */
} xp_protocol;

#define XP_PROTOCOL_NAMES                                                                          \
    "auto, paper, paper-db-train, full, classic, new, cifar10, cifar10-1, cifar10-2, nuswide-21, " \
    "transfer, none"

/* Builds the split of protocol p; testset is 0-based (CUHK03 classic), config the 767/700 file.
 * cifar10, cifar10-1 and cifar10-2 need a single-label dataset (any number of classes: the sizes
 * above are CIFAR-10's), nuswide-21 a multi-label one with 21 concepts, transfer a single-label
 * one; otherwise DRSCH_ERR_ARG with a message naming the protocol that fits. */
DRSCH_API drsch_status xp_make_split(const ds_dataset *d, xp_protocol p, uint64_t seed, int testset,
                                     const char *config, ds_split *sp, drsch_error *err);

/* ---- The codes of a model ---------------------------------------------------------------- */

/* What a model gives on a dataset: the codes of the queries and of the database, row i of each
 * the image of its index list's entry i, with the bits in significance order; and the weights
 * of those bits in the same order: |w|^p of the model's learned bit weights (nn_bit_weights)
 * taken in its bit order (nn_bit_order), p the weight power asked for; 1.0 each for a model
 * without them (what weighted ranking uses). */
typedef struct {
    hm_codes query, db; /* db is empty when no database was asked for */
    float *weights;     /* bits values */
    uint32_t bits;      /* the model's code length */
} xp_codes;

/* The weight power of weighted ranking: the distance of two codes is the sum of |w_k|^p over
 * the bits k where they differ. DRSCH's loss sees the weighted outputs w_k h_k, so the distance
 * it learns is sum_k w_k^2 (h_ik - h_jk)^2, on +-1 codes 4 x the sum of w_k^2 over the differing
 * bits: p = 2 ranks by that distance, p = 1 by the sum of |w_k| (the default). */
#define XP_WEIGHT_POWER_DEFAULT 1

/* What power p ranks by, for messages and reports: "sum of |w| over differing bits" (1), "sum
 * of w^2 over differing bits" (2), "unknown" otherwise. */
DRSCH_API const char *xp_weight_power_text(int power);

/* Encodes the images query[0..n_query) and, unless db is NULL, db[0..n_db) with net (in f32, or
 * bf16 where the CPU runs it: DRSCH_ERR_UNSUPPORTED otherwise, never an f32 fallback); the
 * weights are |w|^weight_power, weight_power 1 or 2 (DRSCH_ERR_ARG otherwise). An empty list is
 * an error ("nothing to encode"). On failure *out is empty and *err is the encoder's status and
 * message (or "out of memory"). */
DRSCH_API drsch_status xp_net_codes(const nn_net *net, const ds_dataset *d, const int64_t *query,
                                    int64_t n_query, const int64_t *db, int64_t n_db,
                                    nn_precision precision, int weight_power, xp_codes *out,
                                    drsch_error *err);
/* The same with the model file at path, loaded for inference and freed before returning;
 * when it cannot be loaded, the loader's status and message (which names the file) with
 * err->file set to path (and to something else for the other failures). */
DRSCH_API drsch_status xp_model_codes(const char *path, const ds_dataset *d, const int64_t *query,
                                      int64_t n_query, const int64_t *db, int64_t n_db,
                                      nn_precision precision, int weight_power, xp_codes *out,
                                      drsch_error *err);
/* The classifier baseline (Sablayrolles et al., "How should we evaluate supervised hashing?",
 * ICASSP 2017) of a split: trains the network of `base` (its architecture, solver, batches,
 * augmentation, iterations and seed; the objective set to TR_OBJECTIVE_SOFTMAX, the code length
 * to the split's training classes C) on sp's training images as tr_train does, writing the model
 * to model_path (and model_path.state; resume_path as tr_train's), then encodes sp's queries and
 * database (if it has one) with it: one-hot codes of the predicted class, C bits, weights 1.
 * stop, progress and ctx as tr_train's. Single-label datasets only (DRSCH_ERR_ARG otherwise). */
DRSCH_API drsch_status xp_classifier_codes(const tr_config *base, const ds_dataset *d,
                                           const ds_split *sp, const char *model_path,
                                           const char *resume_path, volatile sig_atomic_t *stop,
                                           tr_progress_fn progress, void *ctx, xp_codes *out,
                                           drsch_error *err);

/* ---- The bit order at evaluation ------------------------------------------------------------ */

/* The order a model's codes are made in, significance first (what a b-bit prefix keeps and what
 * weighted ranking sums over): the order saved in the model file (drsch's default: by |w|
 * discounted for bits that repeat the ones before them), or by |w| descending, ties by network
 * index (the paper's order: the first b bits are the b of largest learned weight; nn.h). */
typedef enum { XP_BIT_ORDER_SAVED = 0, XP_BIT_ORDER_WEIGHT = 1 } xp_bit_order;
#define XP_BIT_ORDER_CHOICES "saved|weight" /* the flag's words, in the enum's order */

/* "saved", "weight"; NULL for an unknown order. */
DRSCH_API const char *xp_bit_order_name(xp_bit_order o);
/* Puts net's bits in order o (XP_BIT_ORDER_SAVED leaves them as loaded); DRSCH_ERR_ARG for an
 * unknown order. */
DRSCH_API drsch_status xp_apply_bit_order(nn_net *net, xp_bit_order o, drsch_error *err);
/* The codes c of net (xp_net_codes, made in net's current order) as net would make them in
 * order o: every code's bits and the weights permuted, without encoding again. net's order is
 * left as it was. On failure *out is empty (DRSCH_ERR_ARG: c is not net's, or o unknown). */
DRSCH_API drsch_status xp_codes_in_order(nn_net *net, const xp_codes *c, xp_bit_order o,
                                         xp_codes *out, drsch_error *err);

/* How xp_model_codes_with makes the codes of a model file. Zero is f32, power 1, saved order. */
typedef struct {
    nn_precision precision;
    int weight_power;       /* 1 or 2; 0 is XP_WEIGHT_POWER_DEFAULT */
    xp_bit_order bit_order; /* the order the codes and weights are in */
} xp_code_options;

/* xp_model_codes with the options of o (NULL: the defaults). */
DRSCH_API drsch_status xp_model_codes_with(const char *path, const ds_dataset *d,
                                           const int64_t *query, int64_t n_query, const int64_t *db,
                                           int64_t n_db, const xp_code_options *o, xp_codes *out,
                                           drsch_error *err);

/* Frees what xp_net_codes / xp_model_codes allocated and empties c (c may be empty already). */
DRSCH_API void xp_codes_free(xp_codes *c);

/* ---- Labels --------------------------------------------------------------------------------- */

/* uint64 words per row of packed multi-hot labels of width L (ev_labels.words): ceil(L / 64). */
DRSCH_API size_t xp_multi_hot_words(size_t L);
/* Packs multi-hot labels as ev_labels bitmasks: multi holds one row of L bytes per item (0 = label
 * absent, anything else present); row i of out (xp_multi_hot_words(L) words, cleared here) gets
 * bit l % 64 of word l / 64 set for every label l of item idx[i] (of item i when idx is NULL). */
DRSCH_API void xp_pack_multi_hot(const uint8_t *multi, size_t L, const int64_t *idx, size_t n,
                                 uint64_t *out);

/* ---- Code prefixes and evaluation --------------------------------------------------------- */

/* out = the first `bits` bits of every code of c (allocated here). DRSCH_ERR_ARG when bits >
 * c->bits, DRSCH_ERR_NOMEM when out of memory. */
DRSCH_API drsch_status xp_codes_prefix(const hm_codes *c, uint32_t bits, hm_codes *out);

/* Retrieval metrics of query codes q (the split's queries, in order) against database codes db
 * (the split's database, in order), truncated to their first `bits` bits, with the dataset's
 * labels as relevance (shared label, or at least one shared concept). w may be NULL. */
DRSCH_API drsch_status xp_eval_retrieval(const ds_dataset *d, const ds_split *sp, const hm_codes *q,
                                         const hm_codes *db, uint32_t bits, const float *weights,
                                         const ev_options *opt, ev_retrieval *out,
                                         drsch_error *err);

/* Re-id metrics (harness/metrics.h: same identity and camera removed, CMC rank 1..20, mAP and
 * mINP over the whole gallery) of query codes q against gallery codes g, in the split's query /
 * db order, truncated to their first `bits` bits, with the dataset's identities and cameras
 * (d->cams must be set); gallery: q against g, or both pooled (ev_reid_gallery).
 * single_shot_repeats > 0: CMC from that many seeded single-gallery-shot samplings; w may be
 * NULL. */
DRSCH_API drsch_status xp_eval_reid(const ds_dataset *d, const ds_split *sp, const hm_codes *q,
                                    const hm_codes *g, uint32_t bits, const float *weights,
                                    ev_reid_gallery gallery, int single_shot_repeats, uint64_t seed,
                                    ev_reid *out, drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
