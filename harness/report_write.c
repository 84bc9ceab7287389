/* The reports of drsch reproduce (reproduce.h): the report's context and entries (report.h, with
 * cJSON), the Markdown table (table.md) and the line comparing a run with a baseline report (the
 * curves and their gnuplot script: report_plot.c). Text files are written whole or not at
 * all (simd/fileio.h). Library code: never prints. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "baselines.h"
#include "fileio.h"
#include "machine.h"
#include "report_compare.h"
#include "report_text.h"
#include "reproduce.h"
#include "version.h"

/* CMC ranks of the table and of the report counters (the usual re-id summary, INTERNALS.md). */
static const int REID_RANKS[] = {1, 5, 10, 20};
#define N_REID_RANKS (int)(sizeof REID_RANKS / sizeof REID_RANKS[0])

/* ---- Text ----------------------------------------------------------------------------------- */

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

drsch_status sb_write(sbuf *b, const char *dir, const char *name, drsch_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    drsch_status st;
    if (b->failed)
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for the text of %s", path);
    else
        st = fio_write_file(path, b->s ? b->s : "", b->len, 0, err);
    free(b->s);
    memset(b, 0, sizeof *b);
    return st;
}

/* "DRSCH-64 truncated" -> "DRSCH-64_truncated": entry names without spaces, commas or brackets. */
static void slug(const char *method, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = method; *p && k + 1 < cap; p++)
        out[k++] =
            (*p == ' ' || *p == ',' || *p == '(' || *p == ')') ? (*p == ' ' ? '_' : '-') : *p;
    out[k] = '\0';
}

int rp_repro_columns(const xp_repro_config *c, uint32_t *cols)
{
    memcpy(cols, c->lengths, sizeof(uint32_t) * (size_t)c->n_lengths);
    cols[c->n_lengths] = c->long_bits;
    return c->n_lengths + 1;
}

/* ---- Retrieval ------------------------------------------------------------------------------ */

static void retrieval_entries(rp_report *rep, const char *dataset, const xp_repro_row *r,
                              const uint32_t *cols, int ncols, int threads, const char *metric)
{
    for (int i = 0; i < ncols; i++) {
        if (!r->have[i])
            continue;
        char name[256], sl[96];
        slug(r->method, sl, sizeof sl);
        snprintf(name, sizeof name, "reproduce/%s/%s/bits:%u", dataset, sl, cols[i]);
        rp_entry *e = rp_add(rep, name, 1, r->seconds, r->seconds, "s", threads);
        rp_counter(e, "mAP", r->map[i]);
        if (r->queries) {
            rp_counter(e, "queries", (double)r->queries);
            rp_counter(e, "queries_without_relevant", (double)r->no_relevant[i]);
        }
        if (r->ties[i] > 0)
            rp_counter(e, "mAP_tie_aware", r->ties[i]);
        if (r->pr2[i] >= 0)
            rp_counter(e, "P_at_radius", r->pr2[i]);
        rp_label(e, metric);
    }
}

typedef enum { COL_MAP, COL_TIES, COL_PR2 } column;

/* The table's words for a row's bit order and ranking (Markdown: the bars escaped). */
static const char *order_text(const xp_repro_row *r)
{
    return !r->truncated                     ? "—"
           : r->order == XP_BIT_ORDER_WEIGHT ? "top \\|w\\| (authors')"
                                             : "saved (drsch's)";
}

static const char *ranking_text(const xp_repro_row *r, int published)
{
    return published         ? "—"
           : r->ranking == 1 ? "weighted \\|w\\|"
           : r->ranking == 2 ? "weighted w^2"
                             : "Hamming";
}

/* One Markdown table of a metric: a row per method (its recipe, bit order and ranking), a column
 * per code length; rows without any value of that metric are left out, missing cells blank.
 * published: the index of the published row, or -1. */
static void md_table(sbuf *md, const xp_repro_row *rows, int nrows, int published,
                     const uint32_t *cols, int ncols, column what)
{
    sb_printf(md, "| method | recipe | bit order | ranking |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " %u bits |", cols[i]);
    sb_printf(md, "\n| --- | --- | --- | --- |");
    for (int i = 0; i < ncols; i++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    for (int k = 0; k < nrows; k++) {
        const double *v = what == COL_MAP    ? rows[k].map
                          : what == COL_TIES ? rows[k].ties
                                             : rows[k].pr2;
        int ok[XP_REPRO_MAX_LENGTHS + 1], any = 0;
        for (int i = 0; i < ncols; i++) {
            ok[i] =
                rows[k].have[i] && (what == COL_MAP || (what == COL_TIES ? v[i] > 0 : v[i] >= 0));
            any |= ok[i];
        }
        if (!any)
            continue;
        sb_printf(md, "| %s | %s | %s | %s |", rows[k].method,
                  rows[k].recipe ? rows[k].recipe : "—", order_text(&rows[k]),
                  ranking_text(&rows[k], k == published));
        for (int i = 0; i < ncols; i++)
            ok[i] ? sb_printf(md, " %.4f |", v[i]) : sb_printf(md, " |");
        sb_printf(md, "\n");
    }
}

/* Bit-scalability: every long model's Hamming-ranked rows (saved order, then by |w|) against the
 * models trained at each length (row 0), in mAP points; nothing without such rows. */
static void bit_scalability(sbuf *md, const xp_repro_config *c, const xp_retrieval_result *res)
{
    const xp_repro_row *rows = res->rows;
    int any = 0;
    for (int k = 1; k < res->n_rows; k++) {
        if (!rows[k].truncated || rows[k].ranking || !rows[k].recipe)
            continue;
        if (!any++)
            sb_printf(md,
                      "\nBit-scalability: the %u-bit model truncated to each length against a "
                      "model trained at that length (mAP points, truncated minus trained; Hamming "
                      "ranking), in each bit order:\n\n",
                      c->long_bits);
        sb_printf(md, "- recipe %s, %s order:", rows[k].recipe,
                  rows[k].order == XP_BIT_ORDER_WEIGHT ? "the authors' (top |w|)"
                                                       : "the saved (drsch's)");
        for (int i = 0; i < c->n_lengths; i++)
            if (rows[k].have[i] && rows[0].have[i])
                sb_printf(md, " %u bits %+.1f;", c->lengths[i],
                          100 * (rows[k].map[i] - rows[0].map[i]));
        sb_printf(md, "\n");
    }
}

/* Whether the rows hold the classifier baseline (its method name starts with "Classifier"). */
static int has_classifier(const xp_repro_row *rows, int n)
{
    for (int k = 0; k < n; k++)
        if (!strncmp(rows[k].method, "Classifier", 10))
            return 1;
    return 0;
}

static void retrieval_md(sbuf *md, const xp_repro_config *c, const xp_retrieval_result *res)
{
    const char *metric = res->metric;
    const xp_repro_row *rows = res->rows;
    uint32_t cols[XP_REPRO_MAX_LENGTHS + 1];
    int ncols = rp_repro_columns(c, cols);
    sb_printf(md, "## %s by code length\n\n", metric);
    const int published = res->have_paper ? res->n_rows - 1 : -1;
    sb_printf(md,
              "Rows: DRSCH trained at each length (drsch's recipe only); the %u-bit model of each "
              "recipe (--recipes) truncated to each length, its bits in their saved order "
              "(drsch's: |w| discounted for bits that repeat the ones before them) or in the "
              "authors' (the b bits of largest |w| first), ranked by Hamming distance or weighted "
              "(the sum of |w|, or of w^2, over the differing bits);%s LSH and ITQ on the "
              "pixels.\n\n",
              c->long_bits,
              has_classifier(rows, res->n_rows)
                  ? " the classifier baseline (the same network trained with softmax "
                    "cross-entropy on the same images, its code the one-hot of the predicted "
                    "class: one bit per class, shown at every length of at least that many bits);"
                  : "");
    md_table(md, rows, res->n_rows, published, cols, ncols, COL_MAP);
    if (res->have_paper)
        sb_printf(
            md,
            "\nThe published row is %s as quoted by later work (results/paper/drsch_map.csv): "
            "quoted, unverified.\n",
            res->paper_metric);
    else
        sb_printf(md, "\nThe paper reports no figures for this dataset; its CIFAR-10 and NUS-WIDE "
                      "figures are in results/paper/drsch_map.csv (quoted, unverified).\n");
    /* Relevance depends on the labels only, so every row has the same count. */
    if (rows[0].queries)
        sb_printf(md,
                  "\n%zu of %zu queries have no relevant item in the database (counted as AP 0).\n",
                  rows[0].no_relevant[0], rows[0].queries);
    bit_scalability(md, c, res);
    sb_printf(md,
              "\nTie-aware %s (expected value when tied Hamming distances are ordered at "
              "random), same rows:\n\n",
              metric);
    md_table(md, rows, res->n_rows, published, cols, ncols, COL_TIES);
    sb_printf(md,
              "\nPrecision within Hamming radius 2 (0 when nothing is retrieved), same rows:\n\n");
    md_table(md, rows, res->n_rows, published, cols, ncols, COL_PR2);
    sb_printf(md,
              "\nPlots: `map_vs_bits.svg` (%s vs bits), `pr.svg` (precision-recall of the models "
              "trained at each length, one point per Hamming radius); data in `map_vs_bits.dat`, "
              "`pr.dat`.\n",
              metric);
}

/* ---- Re-identification ------------------------------------------------------------------------
 */

static void reid_counters(rp_entry *e, const double *cmc, double map, double minp)
{
    for (int r = 0; r < N_REID_RANKS; r++) {
        char cn[16];
        snprintf(cn, sizeof cn, "rank-%d", REID_RANKS[r]);
        rp_counter(e, cn, cmc[REID_RANKS[r] - 1]);
    }
    rp_counter(e, "mAP", map);
    rp_counter(e, "mINP", minp);
}

/* Entries: reproduce/<dataset>/<method>/split:<k>/bits:<b> for every split, and
 * reproduce/<dataset>/<method>/mean/bits:<b> averaged over the splits. */
static void reid_entries(rp_report *rep, const ds_dataset *d, const xp_reid_result *res,
                         int threads)
{
    for (int m = 0; m < XP_REID_METHODS; m++) {
        const xp_reid_row *row = &res->rows[m];
        char sl[96], name[300], label[300];
        slug(row->method, sl, sizeof sl);
        for (int i = 0; i < res->n_cols; i++) {
            double secs = 0;
            for (int s = 0; s < res->n_splits; s++) {
                size_t k = (size_t)s * (size_t)res->n_cols + (size_t)i;
                if (!row->have[k])
                    continue;
                secs += row->seconds[s];
                snprintf(name, sizeof name, "reproduce/%s/%s/split:%d/bits:%u", d->name, sl, s + 1,
                         res->cols[i]);
                rp_entry *e = rp_add(rep, name, 1, row->seconds[s], row->seconds[s], "s", threads);
                reid_counters(e, row->r[k].cmc, row->r[k].map, row->r[k].minp);
                rp_counter(e, "queries", (double)row->r[k].queries);
                rp_label(e, res->split_name[s]);
            }
            xp_reid_mean a = xp_reid_average(res, m, i);
            if (!a.n)
                continue;
            snprintf(name, sizeof name, "reproduce/%s/%s/mean/bits:%u", d->name, sl, res->cols[i]);
            rp_entry *e = rp_add(rep, name, 1, secs / a.n, secs / a.n, "s", threads);
            reid_counters(e, a.cmc, a.map, a.minp);
            rp_counter(e, "splits", a.n);
            snprintf(label, sizeof label,
                     "mean over %d CUHK03 classic split%s; CMC from %d single-gallery-shot "
                     "samplings per split",
                     a.n, a.n > 1 ? "s" : "", XP_REID_REPEATS);
            rp_label(e, label);
        }
    }
}

/* The CMC table: rank 1, 5, 10, 20, mAP and mINP, mean +- sd over the splits. */
static void reid_md_means(sbuf *md, const xp_reid_result *res)
{
    const int S = res->n_splits;
    sb_printf(md, "## CMC, mAP and mINP by code length, mean over %d split%s\n\n", S,
              S > 1 ? "s" : "");
    sb_printf(md,
              "DRSCH: one %u-bit model per split, truncated to each length (bit-scalable codes, "
              "INTERNALS.md); training one model per length would take %d times as long, so the "
              "shorter lengths are not trained separately. LSH and ITQ: trained on the split's "
              "training identities, on %s.\n\n",
              res->model_bits, res->n_cols,
              "block-averaged colour thumbnails (at most 20 x 8 cells per channel)");
    sb_printf(md, "| method | bits |");
    for (int r = 0; r < N_REID_RANKS; r++)
        sb_printf(md, " rank-%d |", REID_RANKS[r]);
    sb_printf(md, " mAP | mINP |\n| --- | --- |");
    for (int r = 0; r <= N_REID_RANKS + 1; r++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    for (int m = 0; m < XP_REID_METHODS; m++)
        for (int i = 0; i < res->n_cols; i++) {
            xp_reid_mean a = xp_reid_average(res, m, i);
            if (!a.n)
                continue;
            sb_printf(md, "| %s | %u |", res->rows[m].method, res->cols[i]);
            for (int r = 0; r < N_REID_RANKS; r++) {
                int k = REID_RANKS[r] - 1;
                S > 1 ? sb_printf(md, " %.4f ± %.4f |", a.cmc[k], a.sd_cmc[k])
                      : sb_printf(md, " %.4f |", a.cmc[k]);
            }
            S > 1 ? sb_printf(md, " %.4f ± %.4f | %.4f ± %.4f |\n", a.map, a.sd_map, a.minp,
                              a.sd_minp)
                  : sb_printf(md, " %.4f | %.4f |\n", a.map, a.minp);
        }
    if (S > 1)
        sb_printf(md, "\n± is the sample standard deviation over the splits.\n");
    sb_printf(md, "\nPublished figures: none. No CUHK03 CMC figure of DRSCH could be confirmed "
                  "(the paper's text was not available; see results/paper/README.md), so there is "
                  "no published row to print beside these.\n");
}

/* The means, rank-1 per split, and where the curves are. */
static void reid_md(sbuf *md, const xp_repro_config *c, const xp_reid_result *res)
{
    const int nl = c->n_lengths, S = res->n_splits;
    reid_md_means(md, res);
    sb_printf(md,
              "\n## Per split (DRSCH-%u truncated, plain ranking)\n\n| split | queries | gallery | "
              "training images | training s |",
              res->model_bits);
    for (int i = 0; i < res->n_cols; i++)
        sb_printf(md, " rank-1 @%u |", res->cols[i]);
    sb_printf(md, " mAP @%u |\n| --- | --- | --- | --- | --- |", res->cols[nl - 1]);
    for (int i = 0; i <= res->n_cols; i++)
        sb_printf(md, " --- |");
    sb_printf(md, "\n");
    const xp_reid_row *dr = &res->rows[XP_REID_DRSCH];
    for (int s = 0; s < S; s++) {
        sb_printf(md, "| %d | %lld | %lld | %lld | %.0f |", s + 1, (long long)res->n_query[s],
                  (long long)res->n_gallery[s], (long long)res->n_train[s], dr->seconds[s]);
        for (int i = 0; i < res->n_cols; i++)
            sb_printf(md, " %.4f |", dr->r[(size_t)s * (size_t)res->n_cols + (size_t)i].cmc[0]);
        sb_printf(md, " %.4f |\n", dr->r[(size_t)s * (size_t)res->n_cols + (size_t)(nl - 1)].map);
    }
    sb_printf(md,
              "\nPlots: `cmc.svg` (CMC of DRSCH at each length), `cmc_methods.svg` (every method "
              "at %u bits); data in `cmc.dat`, `cmc_methods.dat`; script `plots.gp`.\n",
              res->cols[nl - 1]);
}

/* ---- The run: context, header -----------------------------------------------------------------
 */

/* The training settings in one line (the report's "hyperparameters", the table's header). */
static void hyperparameters(const tr_config *b, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "lr %g momentum %g weight decay %g step %lld gamma %g warmup %lld; clip grad %g; "
             "beta %g (label graph); margin -B/2 growing by B/24 every %lld down to -B; triplets "
             "%s, divided by %s; hash scale %g x %g every %lld; batch %d x %d; crop %dx%d mirror "
             "%d rotate %g zoom %g; bit order %s",
             b->sgd.base_lr, b->sgd.momentum, b->sgd.weight_decay, (long long)b->sgd.step,
             b->sgd.gamma, (long long)b->sgd.warmup, b->clip_grad, b->loss.beta,
             (long long)b->loss.margin_every,
             b->loss.triplets == DH_TRIPLETS_HARD ? "batch-hard" : "all in the batch",
             b->loss.norm == DH_NORM_ACTIVE ? "the active ones" : "their number", b->scale0,
             b->scale_mult, (long long)b->scale_every, b->classes_per_batch, b->images_per_class,
             b->crop_h, b->crop_w, b->mirror, b->rotate, b->zoom,
             b->bit_order == TR_BIT_ORDER_WEIGHT ? "by |w|" : "by |w| discounted by redundancy");
}

static void context(rp_report *rep, const rp_repro_info *info, const ds_dataset *d,
                    const xp_repro_config *c, int reid, const char *hyper)
{
    char buf[64];
    rp_context_set(rep, "command", info->command);
    rp_context_set(rep, "dataset", info->spec);
    rp_context_set(rep, "dataset_name", d->name);
    snprintf(buf, sizeof buf, "%08x", ds_checksum(d));
    rp_context_set(rep, "dataset_crc32", buf);
    rp_context_set(rep, "protocol", info->protocol);
    rp_context_set_num(rep, "seed", (double)c->seed);
    rp_context_set_num(rep, "iterations_per_model", (double)c->train.iters);
    if (c->train.replicas > 1) /* the models' bits depend on it (absent: one network) */
        rp_context_set_num(rep, "train_replicas", (double)c->train.replicas);
    rp_context_set_num(rep, "weight_power", xp_repro_weight_power(c));
    rp_context_set(rep, "weighted_ranking", xp_weight_power_text(xp_repro_weight_power(c)));
    rp_context_set(rep, "weight_quantisation", HM_WEIGHTS_QUANTISATION);
    if (*bl_lapack_libraries())
        rp_context_set(rep, "itq_lapack", bl_lapack_libraries());
    if (reid) {
        rp_context_set_num(rep, "splits", c->splits);
        rp_context_set_num(rep, "single_shot_repeats", XP_REID_REPEATS);
        rp_context_set_num(rep, "model_bits", (double)c->long_bits);
        rp_context_set(rep, "reid_gallery", ev_reid_gallery_name(c->reid_gallery));
        rp_context_set(rep, "tie_rule", "(distance, gallery index)");
        rp_context_set(rep, "reid_rule",
                       "gallery items with the query's identity and camera removed; queries "
                       "without a true match skipped; CMC single-gallery-shot, mAP and mINP over "
                       "the whole gallery");
        snprintf(buf, sizeof buf, "%dx%d", d->h, d->w);
        rp_context_set(rep, "image_size", buf);
    } else {
        rp_context_set(
            rep, "tie_rule",
            "(distance, database index); tie-aware mAP = expectation under random tie order");
        rp_context_set(rep, "empty_query_rule", "queries without a relevant item count as AP 0");
        char recipes[64] = "drsch"; /* no recipes: drsch's only */
        size_t n = 0;
        for (int k = 0; k < c->n_recipes && k < XP_REPRO_MAX_RECIPES; k++)
            n += (size_t)snprintf(recipes + n, sizeof recipes - n, "%s%s", k ? "," : "",
                                  nn_recipe_name(c->recipes[k]));
        rp_context_set(rep, "long_model_recipes", recipes);
        rp_context_set(rep, "length_model_recipe", nn_recipe_name(c->train.recipe));
    }
    rp_context_set(rep, "hyperparameters", hyper);
}

/* The table's header: the command, the build, the machine, the dataset and the protocol. */
static void md_header(sbuf *md, const rp_repro_info *info, const ds_dataset *d,
                      const xp_repro_config *c, int reid, const char *hyper)
{
    struct utsname un;
    char machine[768] = "unknown", reps[40] = "";
    mc_machine m;
    mc_describe(&m);
    if (c->train.replicas > 1)
        snprintf(reps, sizeof reps, " (%d training replicas)", c->train.replicas);
    if (uname(&un) == 0)
        snprintf(machine, sizeof machine,
                 "%s, %d cores (%d logical CPUs), %.1f GiB, measured clock %.2f GHz, %s %s %s, "
                 "%d thread%s%s",
                 m.cpu_model, m.physical_cores, m.logical_cpus,
                 (double)m.memory_bytes / (1024.0 * 1024.0 * 1024.0), m.clock_ghz, un.sysname,
                 un.release, un.machine, info->threads, info->threads == 1 ? "" : "s", reps);
    sb_printf(md, "# drsch reproduce: %s\n\n", d->name);
    char limits[256], isa[512];
    if (rp_isa_limits(limits, sizeof limits))
        snprintf(isa, sizeof isa, "%s, oneDNN kernels for %s, set by %s on a CPU whose best is %s",
                 hm_isa_name(hm_isa_active()), nn_onednn_isa(), limits, hm_isa_name(hm_isa_best()));
    else
        snprintf(isa, sizeof isa, "%s", hm_isa_name(hm_isa_active()));
    sb_printf(md, "Command: `%s` (drsch %s, commit %s, %s, ISA %s). Machine: %s.\n\n",
              info->command, drsch_version(), drsch_git_commit(), drsch_compiler(), isa, machine);
    if (reid) {
        sb_printf(md,
                  "Dataset: %s (%lld images of %dx%d, %d identities, crc32 %08x). Protocol: %s. "
                  "%lld iterations per model; %s.\n\n",
                  d->source, (long long)d->n, d->h, d->w, d->n_classes, ds_checksum(d),
                  info->protocol, (long long)c->train.iters, hyper);
        sb_printf(md,
                  "Ranking ties are ordered by gallery index. Gallery images with the query's "
                  "identity and camera are removed; queries without a true match are skipped. CMC "
                  "rank k: share of queries whose true match is within the first k when the "
                  "gallery holds one random image per identity (%d seeded samplings per split, "
                  "averaged); mAP: over the whole gallery; mINP: the mean over the queries of "
                  "their true matches divided by the rank of the last one, in the whole "
                  "gallery.\n\n",
                  XP_REID_REPEATS);
    } else {
        sb_printf(md,
                  "Dataset: %s (%lld images, crc32 %08x). Protocol: %s. Seed %lld; %lld "
                  "iterations per model; %s.\n\nRanking ties are ordered by database index; "
                  "queries without a relevant item count as AP 0.\n\n",
                  d->source, (long long)d->n, ds_checksum(d), info->protocol, (long long)c->seed,
                  (long long)c->train.iters, hyper);
    }
    sb_printf(md, "Weighted ranking: the %s (--weight-power %d).%s Its %s.\n\n",
              xp_weight_power_text(xp_repro_weight_power(c)), xp_repro_weight_power(c),
              reid ? ""
                   : " The other weighted rows name their power P: the sum of |w|^P over "
                     "differing bits.",
              HM_WEIGHTS_QUANTISATION);
    if (*bl_lapack_libraries())
        sb_printf(md,
                  "ITQ's eigen-decomposition and SVDs ran on %s; another LAPACK or BLAS rounds "
                  "differently, and ITQ's figures then differ in the third or fourth decimal.\n\n",
                  bl_lapack_libraries());
}

drsch_status rp_repro_report(rp_report *rep, const rp_repro_info *info, const ds_dataset *d,
                             const xp_repro_config *c, const xp_retrieval_result *ret,
                             const xp_reid_result *reid, char **table_md, drsch_error *err)
{
    *table_md = NULL;
    char hyper[512];
    hyperparameters(&c->train, hyper, sizeof hyper);
    context(rep, info, d, c, !ret, hyper);
    sbuf md = {0};
    md_header(&md, info, d, c, !ret, hyper);
    if (ret) {
        uint32_t cols[XP_REPRO_MAX_LENGTHS + 1];
        int ncols = rp_repro_columns(c, cols);
        /* The entries of the long model at its own length are named bits:0, as they have been
         * (the committed reports under results/ and the regression gate use that name); the
         * table and the curves give its length. */
        cols[ncols - 1] = 0;
        for (int i = 0; i < ret->n_rows; i++)
            if (!(ret->have_paper && i == ret->n_rows - 1))
                retrieval_entries(rep, d->name, &ret->rows[i], cols, ncols, info->threads,
                                  ret->metric);
        retrieval_md(&md, c, ret);
    } else {
        reid_entries(rep, d, reid, info->threads);
        reid_md(&md, c, reid);
    }
    sb_printf(&md, "\nTotal time: %.0f s.\n", info->total_seconds);
    rp_context_set_num(rep, "total_seconds", info->total_seconds);
    if (md.failed) {
        free(md.s);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for the text of the table");
    }
    *table_md = md.s;
    return DRSCH_OK;
}

drsch_status rp_repro_write(const rp_report *rep, const char *table_md, const char *dir,
                            drsch_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/report.json", dir);
    drsch_status st = rp_write(rep, path, err);
    if (st != DRSCH_OK)
        return st;
    snprintf(path, sizeof path, "%s/table.md", dir);
    return fio_write_file(path, table_md, strlen(table_md), 0, err);
}

/* ---- The reproduction line ------------------------------------------------------------------- */

int rp_repro_read_baseline(const char *path, const char *report_path, rp_read_report *ref,
                           char *msg, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        snprintf(msg, cap,
                 "Reproduction: not checked: there is no committed report %s to compare %s with "
                 "(--baseline FILE names one)",
                 path, report_path);
        return 0;
    }
    drsch_error err;
    if (rp_read_file(path, ref, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", err.msg);
        return 0;
    }
    return 1;
}

/* The run's settings recorded in both contexts that differ ("seed, threads"), so
 * that a difference of figures is not read as a failure to reproduce the same run. */
static void settings_differ(const cJSON *ref_root, const cJSON *cur_root, char *out, size_t cap)
{
    static const char *const keys[] = {
        "dataset_crc32", "protocol",   "seed",    "iterations_per_model", "splits",
        "model_bits",    "image_size", "threads", "onednn_isa",           "train_replicas"};
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ref_root, "context");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cur_root, "context");
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && k < cap; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        if (!x && !y)
            continue;
        if (x && y && cJSON_Compare(x, y, 1))
            continue;
        k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? ", " : "", keys[i]);
    }
}

/* The verdict of a comparison: the start of the line (its length). */
static size_t verdict(const rpc_result *res, const rpc_options *o, const char *path,
                      const char *ref_path, char *msg, size_t cap)
{
    size_t k = 0;
    switch (rpc_agreement_of(res)) {
    case RPC_IDENTICAL:
        k = (size_t)snprintf(msg, cap,
                             "Reproduction: identical: all %d metrics of %s equal those of %s",
                             res->metrics, path, ref_path);
        break;
    case RPC_WITHIN_NOISE:
        k = (size_t)snprintf(
            msg, cap,
            "Reproduction: within noise: all %d metrics of %s within %.2f of %s (%d identical, "
            "largest difference %.4f)",
            res->metrics, path, o->max_metric_drop, ref_path, res->metrics_equal, res->max_diff);
        break;
    case RPC_DIFFERENT:
        k = (size_t)snprintf(msg, cap,
                             "Reproduction: NOT reproduced: %d of %d metrics of %s differ from %s "
                             "by more than %.2f",
                             res->metrics_beyond, res->metrics, path, ref_path, o->max_metric_drop);
        if (res->metrics_missing && k < cap)
            k += (size_t)snprintf(msg + k, cap - k, ", %d missing", res->metrics_missing);
        if (res->max_drop_row >= 0 && k < cap) {
            const rpc_row *w = &res->rows[res->max_drop_row];
            k += (size_t)snprintf(msg + k, cap - k, " (largest drop %.4f: %s %s)", res->max_drop,
                                  w->entry, w->counter);
        }
        break;
    case RPC_NO_METRICS:
        k = (size_t)snprintf(msg, cap, "Reproduction: not checked: %s has no accuracy counters",
                             ref_path);
        break;
    }
    return k;
}

void rp_repro_line(const rp_report *rep, const char *path, rp_read_report *ref,
                   const char *ref_path, char *msg, size_t cap)
{
    char *text = rp_print(rep);
    rp_read_report cur;
    drsch_error err;
    if (!text || rp_read_parse(text, strlen(text), path, &cur, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", text ? err.msg : "out of memory");
        free(text);
        return;
    }
    free(text);
    rpc_options o;
    rpc_options_default(&o);
    o.gate_time = 0;
    rpc_result res;
    if (rpc_compare(ref, &cur, &o, &res, &err) != DRSCH_OK) {
        snprintf(msg, cap, "Reproduction: not checked: %s", err.msg);
        rp_read_free(&cur);
        return;
    }
    char settings[256];
    settings_differ(ref->root, cur.root, settings, sizeof settings);
    size_t k = verdict(&res, &o, path, ref_path, msg, cap);
    if (settings[0] && k < cap)
        snprintf(msg + k, cap - k, "; the baseline's run differs in %s", settings);
    rpc_result_free(&res);
    rp_read_free(&cur);
}
