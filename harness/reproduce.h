/* drsch reproduce as a library: the paper's two experiments and the files that report them.
 *
 * Retrieval (xp_retrieval_run: Fashion-MNIST / MNIST, CIFAR-10, NUS-WIDE): a DRSCH model trained
 * at each code length (drsch's recipe), one longer model per training recipe (drsch's, the
 * authors') truncated to every length in its saved bit order and in the authors' (top |w|), each
 * with Hamming and weighted ranking (|w| and w^2), LSH and ITQ on the pixels of the same split,
 * and the paper's published figures where the dataset is one of the paper's. Re-identification
 * (xp_reid_run: CUHK03, classic protocol): per classic split one model of long_bits bits truncated
 * to every length, LSH and ITQ on colour thumbnails; CMC, mAP and mINP per split, the queries and
 * gallery of a split as reid_gallery says. The experiments write the models into the output folder,
 * report progress through a callback (one line of text, or a training step) and return a status
 * with a message; they never print.
 *
 * The writers (report_write.c, report_plot.c) turn the results into the report's entries and
 * context, the Markdown table (table.md), the curves (.dat) and their gnuplot script (plots.gp),
 * the mAP plot's y range fitted to the figures, the published ones drawn as points; and compare
 * the report with a baseline report (the line that ends a run). Library code: never prints. */
#ifndef DRSCH_REPRODUCE_H
#define DRSCH_REPRODUCE_H

#include <stddef.h>
#include <stdint.h>

#include "datasets.h"
#include "experiment.h"
#include "metrics.h"
#include "report.h"
#include "report_read.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XP_REPRO_MAX_LENGTHS 8 /* code lengths of --bits */
#define XP_REPRO_MAX_ROWS 20   /* rows of the retrieval table */
#define XP_REPRO_MAX_RECIPES 2 /* training recipes of the long retrieval model */
#define XP_REID_REPEATS 10     /* single-gallery-shot samplings per split (seeded) */

/* What an experiment reports while it runs: a line of text (what it starts, a figure it got, a
 * step it skips; no trailing newline), or a training step of the model called tag. */
typedef enum { XP_EVENT_NOTE, XP_EVENT_TRAIN } xp_event_kind;

typedef struct {
    xp_event_kind kind;
    const char *text; /* XP_EVENT_NOTE */
    const char *tag;  /* XP_EVENT_TRAIN: the model ("DRSCH 12 bits", "split 1/2, 64 bits") */
    const tr_progress *train; /* XP_EVENT_TRAIN */
} xp_event;

typedef void (*xp_progress_fn)(const xp_event *e, void *ctx);

/* A distributed experiment (drsch reproduce under mpirun): the ranks and the two collectives it
 * needs, supplied by the caller; the library itself sends nothing. The experiment's independent
 * units of work (retrieval: each model trained at one length, each recipe's long model, the
 * classifier baseline, the LSH and ITQ baselines; re-id: each split) are dealt out in turn, unit
 * u to rank u mod size, in rounds of one unit per rank; after each round the ranks agree whether
 * one failed (then every rank stops: the failing one returns its error, the others
 * DRSCH_ERR_PEER). Retrieval: each long model's codes then go from its rank to every rank, and
 * its evaluations (each truncation length, bit order and ranking) are dealt out the same way, in
 * one round. At the end each unit's and evaluation's results go from its rank to every rank, so
 * every rank returns the whole result, the serial run's (same seeds; the same figures when each
 * rank has the serial run's thread count). Each callback is a collective: every rank calls it, in
 * the same order. */
typedef struct {
    int32_t rank, size; /* 0 .. size - 1 */
    void *ctx;          /* passed to the callbacks */
    /* rank root's bytes at buf, to buf on every rank */
    void (*broadcast)(void *ctx, void *buf, size_t bytes, int32_t root);
    /* the largest v over the ranks, on every rank */
    int32_t (*max)(void *ctx, int32_t v);
} xp_parallel;

typedef struct {
    const char *dir;                        /* output folder: the models are written there */
    uint32_t lengths[XP_REPRO_MAX_LENGTHS]; /* increasing code lengths, each below long_bits */
    int n_lengths;
    uint32_t long_bits;      /* the longer model truncated to each length */
    tr_config train;         /* every model's training settings but bits (xp_repro_train_config) */
    uint64_t seed;           /* of the baselines and the CMC samplings */
    int splits;              /* re-id: the first `splits` classic splits (xp_reid_splits) */
    const char *paper_csv;   /* retrieval: published figures (results/paper/drsch_map.csv) */
    int weight_power;        /* the weighted rows rank by the sum of |w|^weight_power over differing
                              * bits (experiment.h): 1 or 2; 0 is XP_WEIGHT_POWER_DEFAULT */
    xp_progress_fn progress; /* or NULL */
    void *progress_ctx;
    ev_reid_gallery reid_gallery; /* re-id: a split's queries and gallery (default cross-camera) */
    /* Retrieval: the recipes the long model is trained with, one model each, in this order, all
     * different (0 recipes: drsch's only). The models trained at each length use train.recipe. */
    nn_recipe recipes[XP_REPRO_MAX_RECIPES];
    int n_recipes;
    /* Retrieval: 1 leaves out the classifier baseline (a network of c->train trained with
     * softmax cross-entropy, its code the one-hot of the predicted class; single-label only). */
    int no_classifier;
    const xp_parallel *par; /* the ranks of a distributed run, or NULL (one process) */
} xp_repro_config;

/* Parses a --recipes list ("drsch,authors": recipe names of nn_recipe_name, comma-separated, each
 * at most once) into c->recipes; DRSCH_ERR_ARG with the reason otherwise. */
DRSCH_API drsch_status xp_repro_parse_recipes(const char *list, xp_repro_config *c,
                                              drsch_error *err);

/* The weight power of c's weighted rows: c->weight_power, or XP_WEIGHT_POWER_DEFAULT for 0. The
 * experiments refuse any other than 1 and 2 (DRSCH_ERR_ARG) before they start. */
DRSCH_API int xp_repro_weight_power(const xp_repro_config *c);

/* The training settings of reproduce: drsch train's defaults for d with the given seed, no
 * checkpoints, iters iterations (<= 0: 12000 for retrieval, 3000 per split for re-id; with quick
 * 1000 and 150), the learning rate stepping down every third of the run, 5 progress steps. */
DRSCH_API void xp_repro_train_config(const ds_dataset *d, int reid, int quick, int64_t iters,
                                     uint64_t seed, tr_config *c);

/* ---- Retrieval ------------------------------------------------------------------------------ */

/* One row of the retrieval table: a method's figures at each column (the lengths, then
 * long_bits); have[i] says whether column i has figures. */
typedef struct {
    char method[96];
    /* What the row is (the table's columns): recipe the training recipe (nn_recipe_name) of a
     * DRSCH row, else NULL; truncated 1 for the long model cut to each length, in bit order
     * `order`; ranking 0 for Hamming distance, 1 or 2 for weighted, the sum of |w|^ranking over
     * the differing bits. */
    const char *recipe;
    int truncated;
    xp_bit_order order;
    int ranking;
    double map[XP_REPRO_MAX_LENGTHS + 1];  /* mAP@5000 (multi-label) or mAP@all */
    double ties[XP_REPRO_MAX_LENGTHS + 1]; /* tie-aware mAP; 0 when not computed */
    double pr2[XP_REPRO_MAX_LENGTHS + 1];  /* precision within radius 2; < 0 when unknown */
    int have[XP_REPRO_MAX_LENGTHS + 1];
    size_t no_relevant[XP_REPRO_MAX_LENGTHS + 1]; /* queries with no relevant item */
    size_t queries;
    double seconds; /* training time */
} xp_repro_row;

/* A precision-recall curve over the Hamming radius 0..n-1. */
typedef struct {
    size_t n;
    double *recall, *precision;
} xp_pr_curve;

typedef struct {
    const char *metric; /* "mAP@5000" (multi-label datasets) or "mAP@all" */
    /* rows: 0 the models trained at each length; then six per recipe of the long model (in the
     * config's order): its codes truncated in the saved order, then in order by |w|, each with
     * Hamming ranking, then weighted of power 1 and 2; the classifier baseline (single-label
     * datasets, unless no_classifier: its C-bit one-hot code's figures at every column of at
     * least C bits); LSH and ITQ; the published figures when have_paper (last). */
    xp_repro_row rows[XP_REPRO_MAX_ROWS];
    int n_rows;
    int have_paper;
    char paper_metric[64];
    xp_pr_curve pr[XP_REPRO_MAX_LENGTHS]; /* of the model trained at each length */
} xp_retrieval_result;

/* Runs the retrieval experiment on split sp of d (models in c->dir/model-B.bin). On failure
 * err->msg says why (DRSCH_ERR_NOMEM when out of memory) and *out is empty. */
DRSCH_API drsch_status xp_retrieval_run(const xp_repro_config *c, const ds_dataset *d,
                                        const ds_split *sp, xp_retrieval_result *out,
                                        drsch_error *err);
DRSCH_API void xp_retrieval_result_free(xp_retrieval_result *r);

/* ---- Sweeps over code lengths and seeds ----------------------------------------------------- */

/* How one training run of a sweep ended: a collapse of the codes or a NaN is a result of the
 * sweep (what it is there to find), not a failure of it. */
typedef enum { XP_SWEEP_TRAINED, XP_SWEEP_COLLAPSED, XP_SWEEP_NAN } xp_sweep_outcome;

typedef struct {
    uint32_t bits;
    uint64_t seed;
    xp_sweep_outcome outcome;
    double map, map_ties, pr2; /* at its own length (trained runs only): mAP@all (@5000 on
                                  multi-label datasets), tie-aware mAP, precision within radius 2 */
    size_t queries, no_relevant;
    double seconds; /* training time */
    char note[512]; /* a collapse or NaN: the trainer's message */
} xp_sweep_cell;

/* Trains one model per (length, seed), c->lengths[0..n_lengths) x seeds[0..n_seeds), length
 * major, each with c->train (bits and seed replaced) on the protocol's split drawn with its seed
 * (xp_make_split), into c->dir/model-B-sS.bin, and evaluates it at its own length. cells:
 * n_lengths x n_seeds. Distributed over c->par as the reproduce experiments are (reproduce.h:
 * xp_parallel), a run being a unit; every rank returns every cell. */
DRSCH_API drsch_status xp_sweep_run(const xp_repro_config *c, const ds_dataset *d,
                                    xp_protocol protocol, const uint64_t *seeds, int n_seeds,
                                    xp_sweep_cell *cells, drsch_error *err);

/* ---- Re-identification: CUHK03, classic protocol -------------------------------------------- */

enum { XP_REID_DRSCH, XP_REID_WEIGHTED, XP_REID_LSH, XP_REID_ITQ, XP_REID_METHODS };

typedef struct {
    char method[96];
    ev_reid *r;      /* [split * n_cols + col] */
    uint8_t *have;   /* [split * n_cols + col] */
    double *seconds; /* [split]: training (DRSCH), training + encoding (LSH, ITQ) */
} xp_reid_row;

typedef struct {
    int n_splits, n_cols;
    uint32_t cols[XP_REPRO_MAX_LENGTHS + 1]; /* the lengths, then long_bits */
    uint32_t model_bits;
    xp_reid_row rows[XP_REID_METHODS];
    char (*split_name)[256];                /* [split] the protocol's description of the split */
    int64_t *n_query, *n_gallery, *n_train; /* [split] */
} xp_reid_result;

/* Means over the splits of a method at a column, and sample standard deviations. */
typedef struct {
    double cmc[EV_CMC_RANKS], map, minp;
    double sd_cmc[EV_CMC_RANKS], sd_map, sd_minp; /* 0 with one split */
    int n;                                        /* splits averaged */
} xp_reid_mean;

/* The number of classic splits to run on d: splits > 0 asks for that many (DRSCH_ERR_ARG when
 * d has fewer testsets), else all of them (2 with quick). DRSCH_ERR_RANGE when d has no testsets.
 */
DRSCH_API drsch_status xp_reid_splits(const ds_dataset *d, int64_t splits, int quick, int *n_splits,
                                      drsch_error *err);
/* The protocol's description (the report's "protocol" context), with the gallery composition. */
DRSCH_API void xp_reid_protocol(const ds_dataset *d, int n_splits, uint64_t seed,
                                ev_reid_gallery gallery, char *out, size_t cap);
/* Runs c->splits classic splits of d (models in c->dir/model-splitK-B.bin). On failure err->msg
 * says why (DRSCH_ERR_NOMEM when out of memory) and *out is empty. */
DRSCH_API drsch_status xp_reid_run(const xp_repro_config *c, const ds_dataset *d,
                                   xp_reid_result *out, drsch_error *err);
DRSCH_API void xp_reid_result_free(xp_reid_result *r);
DRSCH_API xp_reid_mean xp_reid_average(const xp_reid_result *r, int method, int col);

/* ---- Reports (report_write.c, report_plot.c) ------------------------------------------------ */

/* What the report records of the run besides the results. */
typedef struct {
    const char *command;  /* the command line */
    const char *spec;     /* the dataset as given */
    const char *protocol; /* the protocol's description */
    int threads;
    double total_seconds;
} rp_repro_info;

/* Writes the curves of the results (exactly one of ret and reid is set) into dir: map_vs_bits.dat
 * and pr.dat, or cmc.dat and cmc_methods.dat; then plots.gp, the gnuplot script drawing them as
 * SVG files into dir. Each file whole or not at all (simd/fileio.h); on failure err names the
 * file and the cause. */
DRSCH_API drsch_status rp_repro_curves(const char *dir, const ds_dataset *d,
                                       const xp_repro_config *c, const xp_retrieval_result *ret,
                                       const xp_reid_result *reid, drsch_error *err);
/* Adds the run's context and result entries to rep, and returns the Markdown table of the run in
 * *table_md (free with free()). */
DRSCH_API drsch_status rp_repro_report(rp_report *rep, const rp_repro_info *info,
                                       const ds_dataset *d, const xp_repro_config *c,
                                       const xp_retrieval_result *ret, const xp_reid_result *reid,
                                       char **table_md, drsch_error *err);

/* Writes rep to dir/report.json and table_md to dir/table.md, each whole or not at all; on
 * failure err names the file and the cause. */
DRSCH_API drsch_status rp_repro_write(const rp_report *rep, const char *table_md, const char *dir,
                                      drsch_error *err);

/* The report the run is compared with at the end, read before the run's own report is written
 * at report_path (its folder may be the baseline's). 1 when *ref holds it; else 0 with the reason,
 * a whole output line, in msg. A missing file is no error (there are no committed results). */
DRSCH_API int rp_repro_read_baseline(const char *path, const char *report_path, rp_read_report *ref,
                                     char *msg, size_t cap);
/* The line saying whether the run (report rep, written to path) reproduced the baseline ref read
 * from ref_path: accuracy counters compared as drsch compare does, times ignored; it names the
 * recorded settings of the run that differ from the baseline's. */
DRSCH_API void rp_repro_line(const rp_report *rep, const char *path, rp_read_report *ref,
                             const char *ref_path, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
