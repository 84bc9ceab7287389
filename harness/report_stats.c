/* The Mann-Whitney U test of drsch compare (see report_compare.h), computed as
 * scipy.stats.mannwhitneyu computes it by default (the test Google Benchmark's compare.py runs),
 * on R's standalone maths library (libRmath): pwilcox for the exact distribution of U, pnorm for
 * the normal approximation. libRmath's pwilcox keeps a cache in static memory, so this function
 * is not thread-safe. libRmath is loaded by the first test that needs it (lazylib.h). */
#define MATHLIB_STANDALONE 1
#include <Rmath.h>
#include <math.h>
#include <stdlib.h>

#include "lazylib.h"
#include "report_compare.h"

/* The soname of the libRmath the build found (Debian 12's r-mathlib: libRmath.so.1). */
#ifndef DRSCH_RMATH_SONAME
#define DRSCH_RMATH_SONAME "libRmath.so.1"
#endif

/* Rmath.h names pnorm as a macro for pnorm5, the symbol the library exports. */
#define RMATH_FUNCTIONS(X, s) X(s, pwilcox) X(s, pnorm5)
LAZY_FUNCTIONS(rmath, RMATH_FUNCTIONS);
static lazy_lib g_rmath = LAZY_LIB(DRSCH_RMATH_SONAME, "libRmath", rmath_names, rmath_slots);

typedef struct {
    double v;
    int from_x;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return (x > y) - (x < y);
}

/* Two-sided p-value of U (U of x) for samples of nx and ny without ties: 2 P(U' >= max(U, U2)),
 * U' following the exact null distribution. */
static double exact_p(double u, size_t nx, size_t ny)
{
    double m = (double)nx, n = (double)ny, big = fmax(u, m * n - u);
    /* pwilcox(q, ..., lower_tail = 0) = P(U > q); U is an integer here */
    double p = 2 * rmath.pwilcox(big - 1, m, n, 0, 0);
    return p > 1 ? 1 : p;
}

drsch_status rpc_mann_whitney(const double *x, size_t nx, const double *y, size_t ny, rpc_mwu *out,
                              drsch_error *err)
{
    out->u = 0;
    out->p = 1;
    out->exact = 0;
    if (nx == 0 || ny == 0)
        return drsch_fail(err, DRSCH_ERR_ARG, "Mann-Whitney U test: a sample is empty");
    const char *unloaded = lazy_lib_load(&g_rmath);
    if (unloaded)
        return drsch_fail(err, DRSCH_ERR_UNSUPPORTED, "Mann-Whitney U test: %s", unloaded);
    size_t n = nx + ny;
    ranked *r = malloc(n * sizeof *r);
    if (!r)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "Mann-Whitney U test: out of memory");
    for (size_t i = 0; i < n; i++) {
        r[i].v = i < nx ? x[i] : y[i - nx];
        r[i].from_x = i < nx;
        if (isnan(r[i].v)) {
            free(r);
            return drsch_fail(err, DRSCH_ERR_ARG, "Mann-Whitney U test: a value is NaN");
        }
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    /* average ranks of tied runs; the tie term sum(t^3 - t) over the runs */
    double rank_sum_x = 0, ties = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && r[j].v == r[i].v;)
            j++;
        double t = (double)(j - i), avg = 0.5 * (double)(i + 1 + j);
        for (size_t k = i; k < j; k++)
            rank_sum_x += r[k].from_x ? avg : 0;
        ties += t * t * t - t;
    }
    free(r);
    double m = (double)nx, nn = (double)ny;
    out->u = rank_sum_x - m * (m + 1) / 2;
    if (ties == 0 && (nx <= 8 || ny <= 8)) {
        out->exact = 1;
        out->p = exact_p(out->u, nx, ny);
        return DRSCH_OK;
    }
    double big = fmax(out->u, m * nn - out->u), mu = m * nn / 2;
    double total = (double)n;
    double s = sqrt(m * nn / 12 * ((total + 1) - ties / (total * (total - 1))));
    if (!(s > 0)) /* every value equal: no evidence of a difference */
        return DRSCH_OK;
    double z = (big - mu - 0.5) / s; /* with the continuity correction */
    double p = 2 * rmath.pnorm5(z, 0, 1, 0, 0);
    out->p = p > 1 ? 1 : p < 0 ? 0 : p;
    return DRSCH_OK;
}
