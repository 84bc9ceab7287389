/* LSH and ITQ (see baselines.h). */
#define _GNU_SOURCE /* dladdr */
#include "baselines.h"
#include "lazylib.h"
#include "rng.h"

#include <dlfcn.h>
#include <lapacke.h> /* types and prototypes only: the library is loaded by lapack_load() */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* LAPACK is loaded when ITQ first needs it, not at start: linked into drsch, the system BLAS
 * behind it (OpenBLAS on many machines) started its thread pool in every command, and under an
 * address-space limit (ulimit -v 250000) a pool thread retried a failed mmap forever, so every
 * command, even --version, hung at exit. ITQ's eigen-decomposition and SVDs are called outside
 * drsch's OpenMP regions on small matrices: one BLAS thread (OPENBLAS_NUM_THREADS=1 unless the
 * user set it) and no pool. */
#define BL_LAPACKE_SONAME "liblapacke.so.3"

#define LAPACKE_FUNCTIONS(X, s) X(s, LAPACKE_ssyevr) X(s, LAPACKE_sgesvd)
LAZY_FUNCTIONS(lapack, LAPACKE_FUNCTIONS);
static lazy_lib g_lapacke = LAZY_LIB(BL_LAPACKE_SONAME, "LAPACK", lapack_names, lapack_slots);
static pthread_once_t g_setup_once = PTHREAD_ONCE_INIT, g_libs_once = PTHREAD_ONCE_INIT;
static char g_libs[1100]; /* the files of LAPACK and BLAS, once loaded (bl_lapack_libraries) */

/* The file, symlinks resolved, that defines sym among LAPACKE and its dependencies; "unknown" if
 * none. */
static void defining_file(const char *sym, char *out, size_t cap)
{
    void *p = lazy_lib_symbol(&g_lapacke, sym);
    Dl_info di;
    if (!p || !dladdr(p, &di) || !di.dli_fname) {
        snprintf(out, cap, "unknown");
        return;
    }
    char *real = realpath(di.dli_fname, NULL);
    snprintf(out, cap, "%s", real ? real : di.dli_fname);
    free(real);
}

/* Before LAPACK is loaded: OpenBLAS reads its thread count when it loads. */
static void lapack_setup(void) { setenv("OPENBLAS_NUM_THREADS", "1", 0); }

/* Which LAPACK and BLAS the system's alternatives chose: their roundings differ. */
static void note_libraries(void)
{
    char lp[512], bp[512];
    defining_file("ssyevr_", lp, sizeof lp);
    defining_file("sgemm_", bp, sizeof bp);
    snprintf(g_libs, sizeof g_libs, "LAPACK %s, BLAS %s", lp, bp);
}

const char *bl_lapack_libraries(void) { return g_libs; }

/* Address space this process may still map under RLIMIT_AS (ulimit -v), bytes; -1 if unlimited
 * or unknown. */
static double address_space_left(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : (double)rl.rlim_cur - kb * 1024.0;
}

/* OpenBLAS (0.3.21, Debian 12) maps a 128 MiB buffer at its first call and, when that mmap fails,
 * retries it forever: ITQ under a tight ulimit -v spun instead of failing. Refused up front. */
#define BL_BLAS_HEADROOM (160.0 * 1048576.0)

/* DRSCH_OK with lapack.LAPACKE_ssyevr and lapack.LAPACKE_sgesvd set, or the reason in err. */
static drsch_status lapack_load(drsch_error *err)
{
    pthread_once(&g_setup_once, lapack_setup);
    const char *unloaded = lazy_lib_load(&g_lapacke);
    if (unloaded)
        return drsch_fail(err, DRSCH_ERR_UNSUPPORTED, "%s (package liblapacke)", unloaded);
    pthread_once(&g_libs_once, note_libraries);
    double left = address_space_left();
    if (left >= 0 && left < BL_BLAS_HEADROOM) {
        return drsch_fail(err, DRSCH_ERR_NOMEM,
                          "ITQ: the address-space limit (ulimit -v) leaves %.0f MiB and LAPACK's "
                          "BLAS may need %.0f MiB (OpenBLAS then waits forever): raise the limit",
                          left / 1048576.0, BL_BLAS_HEADROOM / 1048576.0);
    }
    return DRSCH_OK;
}

static drsch_status alloc_model(bl_model *m, int dim, uint32_t bits, drsch_error *err)
{
    m->dim = dim;
    m->bits = bits;
    m->mean = calloc((size_t)dim, sizeof *m->mean);
    m->proj = calloc((size_t)dim * bits, sizeof *m->proj);
    if (!m->mean || !m->proj) {
        bl_model_free(m);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a %d x %u projection", dim,
                          bits);
    }
    return DRSCH_OK;
}

static void column_mean(const float *x, size_t n, int dim, float *mean)
{
    for (int j = 0; j < dim; j++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += x[i * (size_t)dim + (size_t)j];
        mean[j] = (float)(s / (double)(n ? n : 1));
    }
}

void bl_model_free(bl_model *m)
{
    free(m->mean);
    free(m->proj);
    m->mean = m->proj = NULL;
}

drsch_status bl_lsh_train(const float *x, size_t n, int dim, uint32_t bits, uint64_t seed,
                          bl_model *out, drsch_error *err)
{
    drsch_status st = alloc_model(out, dim, bits, err);
    if (st != DRSCH_OK)
        return st;
    column_mean(x, n, dim, out->mean);
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)dim * bits; i++)
        out->proj[i] = (float)rng_splitmix64_normal(&s);
    return DRSCH_OK;
}

drsch_status bl_itq_train(const float *x, size_t n, int dim, uint32_t bits, int iters,
                          uint64_t seed, bl_model *out, drsch_error *err)
{
    if ((int)bits > dim || n < 2)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "ITQ needs bits <= feature dimension (%u > %d) and 2+ samples", bits,
                          dim);
    drsch_status rc = lapack_load(err);
    if (rc == DRSCH_OK)
        rc = alloc_model(out, dim, bits, err);
    if (rc != DRSCH_OK)
        return rc;
    column_mean(x, n, dim, out->mean);
    const size_t D = (size_t)dim, B = bits;
    double *cov = calloc(D * D, sizeof *cov);
    float *covf = malloc(D * D * sizeof *covf), *eval = malloc(D * sizeof *eval),
          *evec = malloc(D * B * sizeof *evec);
    float *V = malloc(n * B * sizeof *V), *R = malloc(B * B * sizeof *R),
          *M = malloc(B * B * sizeof *M);
    float *U = malloc(B * B * sizeof *U), *Vt = malloc(B * B * sizeof *Vt),
          *sv = malloc(B * sizeof *sv);
    float *superb = malloc(B * sizeof *superb);
    lapack_int *isuppz = malloc(2 * B * sizeof *isuppz);
    rc = DRSCH_ERR_NOMEM;
    if (!cov || !covf || !eval || !evec || !V || !R || !M || !U || !Vt || !sv || !superb ||
        !isuppz) {
        drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for ITQ (%d dimensions)", dim);
        goto done;
    }
    /* Covariance (upper triangle), OpenMP over rows. */
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t a = 0; a < D; a++)
        for (size_t b = a; b < D; b++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += ((double)x[i * D + a] - out->mean[a]) * ((double)x[i * D + b] - out->mean[b]);
            cov[a * D + b] = s / (double)(n - 1);
        }
    for (size_t a = 0; a < D; a++)
        for (size_t b = a; b < D; b++)
            covf[a * D + b] = covf[b * D + a] = (float)cov[a * D + b];
    /* The B largest eigenvectors (ssyevr returns ascending eigenvalues in the index range). */
    lapack_int found = 0;
    lapack_int info = lapack.LAPACKE_ssyevr(
        LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)D, covf, (lapack_int)D, 0, 0,
        (lapack_int)(D - B + 1), (lapack_int)D, 0, &found, eval, evec, (lapack_int)B, isuppz);
    if (info != 0 || found != (lapack_int)B) {
        rc = drsch_fail(err, DRSCH_ERR_NUMERIC, "PCA eigen-decomposition failed (LAPACK info %d)",
                        (int)info);
        goto done;
    }
    /* V = (X - mean) W, n x B. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < B; k++) {
            double s = 0;
            for (size_t j = 0; j < D; j++)
                s += ((double)x[i * D + j] - out->mean[j]) * evec[j * B + k];
            V[i * B + k] = (float)s;
        }
    /* Random orthogonal start: the U of the SVD of a Gaussian matrix. */
    uint64_t s = seed;
    for (size_t i = 0; i < B * B; i++)
        M[i] = (float)rng_splitmix64_normal(&s);
    info = lapack.LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'A', 'A', (lapack_int)B, (lapack_int)B, M,
                                 (lapack_int)B, sv, R, (lapack_int)B, Vt, (lapack_int)B, superb);
    if (info != 0) {
        rc = drsch_fail(err, DRSCH_ERR_NUMERIC, "SVD failed (LAPACK info %d)", (int)info);
        goto done;
    }
    for (int it = 0; it < iters; it++) {
        /* M = V^T sign(V R) (B x B); R = U Vt of its SVD (orthogonal Procrustes). */
        memset(M, 0, B * B * sizeof *M);
        for (size_t i = 0; i < n; i++) {
            float code[HM_MAX_BITS];
            for (size_t k = 0; k < B; k++) {
                double t = 0;
                for (size_t l = 0; l < B; l++)
                    t += (double)V[i * B + l] * R[l * B + k];
                code[k] = t >= 0 ? 1.0f : -1.0f;
            }
            for (size_t a = 0; a < B; a++)
                for (size_t k = 0; k < B; k++)
                    M[a * B + k] += V[i * B + a] * code[k];
        }
        info =
            lapack.LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'A', 'A', (lapack_int)B, (lapack_int)B, M,
                                  (lapack_int)B, sv, U, (lapack_int)B, Vt, (lapack_int)B, superb);
        if (info != 0) {
            rc = drsch_fail(err, DRSCH_ERR_NUMERIC, "SVD failed (LAPACK info %d)", (int)info);
            goto done;
        }
        for (size_t a = 0; a < B; a++)
            for (size_t k = 0; k < B; k++) {
                double t = 0;
                for (size_t l = 0; l < B; l++)
                    t += (double)U[a * B + l] * Vt[l * B + k];
                R[a * B + k] = (float)t;
            }
    }
    /* proj = W R. */
    for (size_t j = 0; j < D; j++)
        for (size_t k = 0; k < B; k++) {
            double t = 0;
            for (size_t l = 0; l < B; l++)
                t += (double)evec[j * B + l] * R[l * B + k];
            out->proj[j * B + k] = (float)t;
        }
    rc = DRSCH_OK;
done:
    free(cov);
    free(covf);
    free(eval);
    free(evec);
    free(V);
    free(R);
    free(M);
    free(U);
    free(Vt);
    free(sv);
    free(superb);
    free(isuppz);
    if (rc)
        bl_model_free(out);
    return rc;
}

void bl_encode(const bl_model *m, const float *x, size_t n, hm_codes *out, size_t first)
{
    const size_t D = (size_t)m->dim, B = m->bits;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t *row = out->data + (first + i) * out->words;
        memset(row, 0, out->words * sizeof *row);
        for (size_t k = 0; k < B; k++) {
            double t = 0;
            for (size_t j = 0; j < D; j++)
                t += ((double)x[i * D + j] - m->mean[j]) * m->proj[j * B + k];
            if (t > 0)
                row[k / 64] |= 1ull << (k % 64);
        }
    }
}
