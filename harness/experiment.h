/* What the commands share about an experiment: protocol names and the split they build, the
 * HxW size flag, code prefixes, and the evaluation of a split's codes with the dataset's labels
 * (retrieval, re-id). Only the command line uses it; it prints the flag errors it detects. */
#ifndef DRSCH_EXPERIMENT_H
#define DRSCH_EXPERIMENT_H

#include <stdint.h>

#include "datasets.h"
#include "hamming.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    XP_PROTO_AUTO = 0,      /* classic for CUHK03, multi-label for NUS-WIDE, paper otherwise */
    XP_PROTO_PAPER,         /* per class 100 queries / 500 train / rest database */
    XP_PROTO_PAPER_DB_TRAIN,/* the same with the training images also in the database */
    XP_PROTO_FULL,          /* official split: query = test file, train = database = train file */
    XP_PROTO_CLASSIC,       /* CUHK03 classic 20 splits (one testset) */
    XP_PROTO_NEW,           /* CUHK03 767/700 (needs the config .mat) */
    XP_PROTO_NONE,
} xp_protocol;

#define XP_PROTOCOL_NAMES "auto, paper, paper-db-train, full, classic, new, none"

/* Parses a --protocol value; prints "drsch <cmd>: --protocol: ..." and returns -1 if unknown. */
int xp_protocol_parse(const char *cmd, const char *s, xp_protocol *out);
/* Builds the split of protocol p; testset is 0-based (CUHK03 classic), config the 767/700 file. */
ds_status xp_make_split(const ds_dataset *d, xp_protocol p, uint64_t seed, int testset, const char *config,
                        ds_split *sp, ds_error *err);
/* Parses "HxW" (1..4096 each) for --size / --crop; prints an error and returns -1 if bad. */
int xp_parse_size(const char *cmd, const char *s, int *h, int *w);

/* --size is allowed for spec (NUS-WIDE, CUHK03)? Prints why not and returns -1. */
int xp_size_check(const char *cmd, const char *spec);
/* Loads the dataset of spec for command cmd; size (or NULL) is a --size HxW value, allowed only
 * for datasets decoded and resized on loading (NUS-WIDE, CUHK03). Prints "drsch <cmd>: ..." and
 * returns -1 on failure, with the exit status in *exit_code (2 for a bad --size, 1 otherwise). */
int xp_load_dataset(const char *cmd, const char *spec, const char *size, ds_dataset **out, int *exit_code);

/* out = the first `bits` bits of every code of c (allocated here). Returns 0, or -1 when out of
 * memory or bits > c->bits. */
int xp_codes_prefix(const hm_codes *c, uint32_t bits, hm_codes *out);

/* Retrieval metrics of query codes q (the split's queries, in order) against database codes db
 * (the split's database, in order), truncated to their first `bits` bits, with the dataset's
 * labels as relevance (shared label, or at least one shared concept). w may be NULL. */
ev_status xp_eval_retrieval(const ds_dataset *d, const ds_split *sp, const hm_codes *q, const hm_codes *db,
                            uint32_t bits, const float *weights, const ev_options *opt, ev_retrieval *out,
                            ev_error *err);

/* Re-id metrics (harness/metrics.h: same identity and camera removed, CMC rank 1..20, mAP over
 * the whole gallery) of query codes q against gallery codes g, in the split's query / db
 * order, truncated to their first `bits` bits, with the dataset's identities and cameras
 * (d->cams must be set). single_shot_repeats > 0: CMC from that many seeded
 * single-gallery-shot samplings; w may be NULL. */
ev_status xp_eval_reid(const ds_dataset *d, const ds_split *sp, const hm_codes *q, const hm_codes *g, uint32_t bits,
                       const float *weights, int single_shot_repeats, uint64_t seed, ev_reid *out, ev_error *err);

#ifdef __cplusplus
}
#endif

#endif
