/* The curves of drsch reproduce (reproduce.h) and their gnuplot script: mAP vs bits and the
 * precision-recall curves (retrieval), the CMC curves (re-id). The mAP plot's y range follows the
 * figures (rp_map_yrange), and the published figures are drawn as points of their own. Library
 * code: never prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "report_text.h"
#include "reproduce.h"

void rp_map_yrange(const xp_retrieval_result *res, int ncols, double *lo, double *hi)
{
    double mn = INFINITY, mx = -INFINITY;
    for (int k = 0; k < res->n_rows; k++)
        for (int i = 0; i < ncols; i++)
            if (res->rows[k].have[i] && isfinite(res->rows[k].map[i])) {
                mn = fmin(mn, res->rows[k].map[i]);
                mx = fmax(mx, res->rows[k].map[i]);
            }
    if (!(mn <= mx)) {
        *lo = 0;
        *hi = 1;
        return;
    }
    const double margin = mx > mn ? 0.1 * (mx - mn) : 0.05, step = 0.05;
    /* rounded out to the step; the 1e-9 keeps a value on a multiple of it where it is */
    *lo = fmax(0, step * floor((mn - margin) / step + 1e-9));
    *hi = fmin(1, step * ceil((mx + margin) / step - 1e-9));
    if (*hi - *lo < step / 2) { /* cannot happen with a margin of at least 0.05; kept safe */
        *lo = fmax(0, *lo - step);
        *hi = fmin(1, *hi + step);
    }
}

static drsch_status retrieval_curves(const char *dir, const ds_dataset *d, const xp_repro_config *c,
                                     const xp_retrieval_result *res, drsch_error *err)
{
    const int nl = c->n_lengths, nrows = res->n_rows;
    uint32_t cols[XP_REPRO_MAX_LENGTHS + 1];
    rp_repro_columns(c, cols);
    sbuf dat = {0}, pr = {0}, gp = {0};
    /* A plain header line (not a comment): gnuplot's columnhead() takes the first line it reads. */
    sb_printf(&dat, "bits");
    for (int k = 0; k < nrows; k++)
        sb_printf(&dat, " \"%s\"", res->rows[k].method);
    sb_printf(&dat, "\n");
    for (int i = 0; i <= nl; i++) {
        sb_printf(&dat, "%u", cols[i]);
        for (int k = 0; k < nrows; k++)
            res->rows[k].have[i] ? sb_printf(&dat, " %.6f", res->rows[k].map[i])
                                 : sb_printf(&dat, " NaN");
        sb_printf(&dat, "\n");
    }
    for (int i = 0; i < nl; i++) {
        const xp_pr_curve *p = &res->pr[i];
        sb_printf(&pr, "# %u bits: radius recall precision\n", c->lengths[i]);
        for (size_t k = 0; k < p->n; k++)
            sb_printf(&pr, "%zu %.6f %.6f\n", k, p->recall[k], p->precision[k]);
        sb_printf(&pr, "\n\n");
    }
    const char *metric = res->metric;
    double lo, hi;
    rp_map_yrange(res, nl + 1, &lo, &hi);
    /* the published figures (the last row when there are some): points only, their own legend */
    const int ndrawn = res->have_paper ? nrows - 1 : nrows;
    sb_printf(&gp,
              "set terminal svg size 1080,540 dynamic noenhanced font 'sans,12'\nset datafile "
              "missing 'NaN'\nset output '%s/map_vs_bits.svg'\nset title '%s: %s vs code length'\n"
              "set xlabel 'bits'\nset ylabel '%s'\nset key outside right\nset grid\n"
              "set yrange [%.2f:%.2f]\nplot for [k=2:%d] '%s/map_vs_bits.dat' using 1:k with "
              "linespoints title columnhead(k)",
              dir, d->name, metric, metric, lo, hi, ndrawn + 1, dir);
    if (res->have_paper)
        sb_printf(
            &gp,
            ", \\\n     '%s/map_vs_bits.dat' using 1:%d with points pointtype 7 pointsize 1.5 "
            "linecolor rgb 'black' title 'published (quoted, unverified)'",
            dir, nrows + 1);
    sb_printf(&gp, "\n");
    sb_printf(&gp,
              "set output '%s/pr.svg'\nset title '%s: precision-recall over Hamming radius "
              "(DRSCH)'\nset xlabel 'recall'\nset ylabel 'precision'\nset xrange [0:1]\n"
              "set yrange [0:1]\nset key inside bottom left\nplot for [i=0:%d] '%s/pr.dat' index i "
              "using 2:3 with "
              "linespoints title sprintf('%%d bits', word('",
              dir, d->name, nl - 1, dir);
    for (int i = 0; i < nl; i++)
        sb_printf(&gp, "%s%u", i ? " " : "", c->lengths[i]);
    sb_printf(&gp, "', i+1)+0)\n");
    drsch_status st = sb_write(&dat, dir, "map_vs_bits.dat", err);
    if (st == DRSCH_OK)
        st = sb_write(&pr, dir, "pr.dat", err);
    if (st == DRSCH_OK)
        st = sb_write(&gp, dir, "plots.gp", err);
    free(dat.s);
    free(pr.s);
    free(gp.s);
    return st;
}

/* ---- Re-identification ------------------------------------------------------------------- */

/* Curves: DRSCH at every length; every method at the longest of the lengths. */
static drsch_status reid_curves(const char *dir, const ds_dataset *d, const xp_repro_config *c,
                                const xp_reid_result *res, drsch_error *err)
{
    const int S = res->n_splits, at = c->n_lengths - 1;
    sbuf cmc = {0}, meth = {0}, gp = {0};
    sb_printf(&cmc, "rank");
    for (int i = 0; i < res->n_cols; i++)
        sb_printf(&cmc, " \"%u bits\"", res->cols[i]);
    sb_printf(&cmc, "\n");
    sb_printf(&meth, "rank");
    for (int m = 0; m < XP_REID_METHODS; m++)
        sb_printf(&meth, " \"%s\"", res->rows[m].method);
    sb_printf(&meth, "\n");
    xp_reid_mean all[XP_REID_METHODS][XP_REPRO_MAX_LENGTHS + 1];
    for (int m = 0; m < XP_REID_METHODS; m++)
        for (int i = 0; i < res->n_cols; i++)
            all[m][i] = xp_reid_average(res, m, i);
    for (int r = 0; r < EV_CMC_RANKS; r++) {
        sb_printf(&cmc, "%d", r + 1);
        for (int i = 0; i < res->n_cols; i++)
            sb_printf(&cmc, " %.6f", all[XP_REID_DRSCH][i].cmc[r]);
        sb_printf(&cmc, "\n");
        sb_printf(&meth, "%d", r + 1);
        for (int m = 0; m < XP_REID_METHODS; m++)
            all[m][at].n ? sb_printf(&meth, " %.6f", all[m][at].cmc[r]) : sb_printf(&meth, " NaN");
        sb_printf(&meth, "\n");
    }
    sb_printf(&gp,
              "set terminal svg size 720,480 dynamic noenhanced font 'sans,12'\nset datafile "
              "missing 'NaN'\nset xlabel 'rank'\nset ylabel 'matching rate (CMC)'\n"
              "set key bottom right\nset grid\nset xrange [1:%d]\nset yrange [0:1]\n"
              "set xtics (1, 5, 10, 15, 20)\n",
              EV_CMC_RANKS);
    sb_printf(&gp,
              "set output '%s/cmc.svg'\nset title '%s: CMC of DRSCH-%u truncated, mean over %d "
              "split%s'\nplot for [k=2:%d] '%s/cmc.dat' using 1:k with linespoints title "
              "columnhead(k)\n",
              dir, d->name, res->model_bits, S, S > 1 ? "s" : "", res->n_cols + 1, dir);
    sb_printf(&gp,
              "set output '%s/cmc_methods.svg'\nset title '%s: CMC at %u bits, mean over %d "
              "split%s'\nplot for [k=2:%d] '%s/cmc_methods.dat' using 1:k with linespoints title "
              "columnhead(k)\n",
              dir, d->name, res->cols[at], S, S > 1 ? "s" : "", XP_REID_METHODS + 1, dir);
    drsch_status st = sb_write(&cmc, dir, "cmc.dat", err);
    if (st == DRSCH_OK)
        st = sb_write(&meth, dir, "cmc_methods.dat", err);
    if (st == DRSCH_OK)
        st = sb_write(&gp, dir, "plots.gp", err);
    free(cmc.s);
    free(meth.s);
    free(gp.s);
    return st;
}

drsch_status rp_repro_curves(const char *dir, const ds_dataset *d, const xp_repro_config *c,
                             const xp_retrieval_result *ret, const xp_reid_result *reid,
                             drsch_error *err)
{
    return ret ? retrieval_curves(dir, d, c, ret, err) : reid_curves(dir, d, c, reid, err);
}
