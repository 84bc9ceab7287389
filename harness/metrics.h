/* Retrieval and re-identification metrics over Hamming (or weighted Hamming) rankings, exact
 * and by the rules of INTERNALS.md:
 *  - ranking ties are ordered by (distance, database index);
 *  - AP@all = sum over relevant ranks of precision@rank / number of relevant items;
 *    AP@K   = the same over the top K / number of relevant items within the top K;
 *    a query with no relevant item (in the database, or within the top K) has AP 0 and counts;
 *  - P@K = relevant items within the top K / min(K, N): a database of N < K items retrieves
 *    only N, so P@K and mAP@K are then those of the whole ranking (mAP@K = mAP@all);
 *  - tie-aware AP: the expected AP@all when tied items are ordered uniformly at random
 *    (McSherry & Najork, ECIR 2008), so a reader sees how much the tie rule moves the number;
 *  - precision within Hamming radius r: relevant / retrieved among d <= r, 0 when nothing is
 *    retrieved; precision-recall curve at each radius 0..bits (precision averaged over the
 *    queries that retrieve something at that radius, recall over the queries that have a
 *    relevant item); weighted rankings have no radius metrics (reported as -1);
 *  - re-id: gallery items with the query's identity AND camera are removed; CMC rank 1..20,
 *    mAP and mINP over queries that keep at least one true match; optional single-gallery-shot
 *    sampling (one random image per gallery identity, seeded, repeated) for CMC as in CUHK03's
 *    classic protocol. mINP (Ye et al., TPAMI 2021; as torchreid and fast-reid compute it): a
 *    query's INP = its true matches / the rank of the last one, in the (distance, gallery index)
 *    order of the whole filtered gallery, so a match tied with non-matches ranks by its index.
 * Integer distances are ranked by counting (two passes over the database, no sort); weighted
 * distances by a sort. OpenMP over queries. Library code: returns status, never prints. */
#ifndef DRSCH_METRICS_H
#define DRSCH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "hamming.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Labels of n items: single label / identity (labels, int32) or multi-hot (multi: n x words
 * uint64 bitmasks, relevance = at least one shared label). Exactly one of the two is set. */
typedef struct {
    size_t n;
    const int32_t *labels;
    const uint64_t *multi;
    size_t words;
} ev_labels;

#define EV_MAX_PR_POINTS (HM_MAX_BITS + 1)

typedef struct {
    size_t topk;     /* K of mAP@K and P@K; 0 = do not compute */
    uint32_t radius; /* precision within this Hamming radius (default 2) */
    int pr_curve;    /* fill the precision-recall curve (integer distances only) */
} ev_options;

typedef struct {
    size_t queries;
    size_t queries_without_relevant; /* counted with AP 0 */
    double map_all, map_tie_aware, map_at_k, precision_at_k, precision_radius;
    size_t pr_points;     /* bits + 1 when requested */
    double *pr_precision; /* pr_points, radius 0..bits; owned, free with ev_retrieval_free */
    double *pr_recall;
} ev_retrieval;

/* Ranks every database code for every query; w = NULL for plain Hamming distance. */
DRSCH_API drsch_status ev_retrieval_eval(const hm_codes *q, const ev_labels *ql, const hm_codes *db,
                                         const ev_labels *dbl, const hm_weights *w,
                                         const ev_options *opt, ev_retrieval *out,
                                         drsch_error *err);
DRSCH_API void ev_retrieval_free(ev_retrieval *r);

/* Average precision of one ranked list: rel[i] != 0 when the item at rank i (0-based) is
 * relevant; n_relevant_total is the denominator of AP@all (>= relevant items in the list).
 * Exposed for tests and for other tools' rankings. */
DRSCH_API double ev_average_precision(const uint8_t *rel, size_t n, size_t n_relevant_total);

#define EV_CMC_RANKS 20

typedef struct {
    size_t queries; /* queries with at least one true match after filtering */
    size_t queries_skipped;
    double cmc[EV_CMC_RANKS]; /* cmc[r] = fraction with a true match within rank r + 1 */
    double map;
    double minp; /* mean INP over the whole filtered gallery (never single-shot sampled) */
    int single_shot_repeats; /* 0 = multi-shot CMC over the whole filtered gallery */
} ev_reid;

/* Re-id evaluation. qid/qcam: q->n; gid/gcam: g->n. single_shot_repeats > 0 samples one
 * gallery image per identity for CMC, repeated and averaged, seeded. */
DRSCH_API drsch_status ev_reid_eval(const hm_codes *q, const int32_t *qid, const int32_t *qcam,
                                    const hm_codes *g, const int32_t *gid, const int32_t *gcam,
                                    const hm_weights *w, int single_shot_repeats, uint64_t seed,
                                    ev_reid *out, drsch_error *err);

/* Which images are queries and which the gallery, given a query set Q and a gallery set G.
 * EV_REID_CROSS_CAMERA: Q against G, as given (CUHK03 classic: the test identities' first-camera
 * images against their second-camera images). EV_REID_ALL: Q and G pooled, Q's rows then G's
 * (gallery index = pooled row), every pooled image a query against the pool; the same-identity-
 * same-camera filter removes the query itself (torchreid's classic CUHK03 split, where every test
 * image is a query and the gallery). The values are the indices of EV_REID_GALLERY_CHOICES. */
typedef enum { EV_REID_CROSS_CAMERA = 0, EV_REID_ALL = 1 } ev_reid_gallery;
#define EV_REID_GALLERY_CHOICES "cross-camera|all"

/* "cross-camera" or "all" ("?" for anything else). */
DRSCH_API const char *ev_reid_gallery_name(ev_reid_gallery gallery);

/* ev_reid_eval with the composition `gallery` of Q (q, qid, qcam) and G (g, gid, gcam); with
 * EV_REID_ALL, out->queries + out->queries_skipped = q->n + g->n. */
DRSCH_API drsch_status ev_reid_eval_gallery(ev_reid_gallery gallery, const hm_codes *q,
                                            const int32_t *qid, const int32_t *qcam,
                                            const hm_codes *g, const int32_t *gid,
                                            const int32_t *gcam, const hm_weights *w,
                                            int single_shot_repeats, uint64_t seed, ev_reid *out,
                                            drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
