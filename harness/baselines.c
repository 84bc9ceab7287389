/* LSH and ITQ (see baselines.h). */
#define _GNU_SOURCE /* dladdr */
#include "baselines.h"
#include "lazylib.h"
#include "rng.h"

#include <dlfcn.h>
#include <lapacke.h> /* types and prototypes only: the library is loaded by lapack_load() */
#include <pthread.h>
#include <stdbool.h>
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

/* t[k] = the sum over j, in order, of ((double)x[j] - mean[j]) * p[j * B + k], k < B: a row of
 * (x - mean) P. A row of P at a time, so that the B sums are independent additions (and
 * vectorise) rather than one chain each over strided P; every sum adds the same products in the
 * same order as a loop over j per k (ISO C: no FMA contraction), so the same bits. */
static void project_row(const float *x, const float *mean, const float *p, size_t D, size_t B,
                        double *t)
{
    for (size_t k = 0; k < B; k++)
        t[k] = 0;
    for (size_t j = 0; j < D; j++) {
        const double c = (double)x[j] - mean[j];
        const float *pj = p + j * B;
        for (size_t k = 0; k < B; k++)
            t[k] += c * pj[k];
    }
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

/* The covariance's sums in blocks: COV_ROWS rows of the data at a time, centred once into a
 * buffer of each thread, and COV_A x COV_B entries at a time, held in registers over those rows.
 * The plain loop over every entry (a, b) and every row i, s += ((double)x[i][a] - mean[a]) *
 * ((double)x[i][b] - mean[b]), read two strided columns per entry and waited on one addition
 * chain: 1.5 billion of them for 5,000 images of 784 pixels, 2 s per code length on one thread
 * (the 2-core Zen 5). Here every entry still adds the same products in the same row order (ISO
 * C: the multiply and the add are not contracted into an FMA), so the sums are the same bits.
 *
 * A block's sums are COV_A x COV_B / 2 named pairs of doubles (GCC's and clang's vector extension,
 * the width of SSE2's registers): with an array of sums, the sanitizer build (ci/sanitize) kept
 * them in memory, checked every access and ran the loop 12-19 times slower than the Release
 * build; wider vectors, where the build targets SSE2 only, went through memory in the Release
 * build as well (twice the time). Here a row of the block is two pair loads and COV_A scalar
 * loads, in either build. */
enum { COV_ROWS = 64, COV_A = 4, COV_B = 4 };
_Static_assert(COV_A == 4 && COV_B == 4, "covariance_sums names a block's 4 x 2 pairs of sums");
typedef double cov_pair __attribute__((vector_size(2 * sizeof(double)), aligned(sizeof(double))));

/* Row length of the sums (D rounded up to COV_B; COV_A divides COV_B). */
static size_t cov_stride(size_t D) { return (D + COV_B - 1) / COV_B * COV_B; }

/* sums (cov_stride(D) squared, zeroed by the caller): at (a, b), b >= a, the sum over the n rows
 * of x (n x D) of the centred products. Entries left of the diagonal in each COV_A x COV_B block
 * are computed too and not used. false when out of memory. */
static bool covariance_sums(const float *x, size_t n, size_t D, const float *mean, double *sums)
{
    const size_t DP = cov_stride(D), groups = DP / COV_A;
    bool ok = true;
#pragma omp parallel
    {
        double *t = calloc(COV_ROWS * DP, sizeof *t); /* the block's centred rows, zero padded */
        if (!t) {
#pragma omp atomic write
            ok = false;
        }
#pragma omp barrier
        for (size_t i0 = 0; ok && i0 < n; i0 += COV_ROWS) {
            const size_t rows = n - i0 < COV_ROWS ? n - i0 : COV_ROWS;
            for (size_t r = 0; r < rows; r++) {
                for (size_t j = 0; j < D; j++)
                    t[r * DP + j] = (double)x[(i0 + r) * D + j] - mean[j];
            }
            /* The same groups of rows of sums on the same thread in every block (a static
             * schedule of the same loop), so each entry's additions keep their order. */
#pragma omp for schedule(static, 1) nowait
            for (size_t g = 0; g < groups; g++) {
                const size_t a0 = g * COV_A;
                for (size_t b0 = a0 / COV_B * COV_B; b0 < DP; b0 += COV_B) {
                    cov_pair *s = (cov_pair *)(sums + a0 * DP + b0);
                    const size_t sr = DP / 2; /* a row of sums, in pairs */
                    cov_pair s00 = s[0], s01 = s[1], s10 = s[sr], s11 = s[sr + 1], s20 = s[2 * sr],
                             s21 = s[2 * sr + 1], s30 = s[3 * sr], s31 = s[3 * sr + 1];
                    for (size_t r = 0; r < rows; r++) {
                        const double *row = t + r * DP;
                        const cov_pair v0 = *(const cov_pair *)(row + b0),
                                       v1 = *(const cov_pair *)(row + b0 + 2);
                        s00 += row[a0] * v0;
                        s01 += row[a0] * v1;
                        s10 += row[a0 + 1] * v0;
                        s11 += row[a0 + 1] * v1;
                        s20 += row[a0 + 2] * v0;
                        s21 += row[a0 + 2] * v1;
                        s30 += row[a0 + 3] * v0;
                        s31 += row[a0 + 3] * v1;
                    }
                    s[0] = s00;
                    s[1] = s01;
                    s[sr] = s10;
                    s[sr + 1] = s11;
                    s[2 * sr] = s20;
                    s[2 * sr + 1] = s21;
                    s[3 * sr] = s30;
                    s[3 * sr + 1] = s31;
                }
            }
        }
        free(t);
    }
    return ok;
}

/* The sums of covariance_sums in a new array (cov_stride(D) squared); NULL when out of memory. */
static double *covariance_sums_new(const float *x, size_t n, size_t D, const float *mean)
{
    const size_t DP = cov_stride(D);
    double *sums = calloc(DP * DP, sizeof *sums);
    if (sums && !covariance_sums(x, n, D, mean, sums)) {
        free(sums);
        sums = NULL;
    }
    return sums;
}

drsch_status bl_covariance(const float *x, size_t n, int dim, const float *mean, double *out,
                           drsch_error *err)
{
    if (n < 2 || dim < 1)
        return drsch_fail(err, DRSCH_ERR_ARG, "a covariance needs 2+ samples and 1+ dimensions");
    const size_t D = (size_t)dim, DP = cov_stride(D);
    double *sums = covariance_sums_new(x, n, D, mean);
    if (!sums)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for a covariance of %d dimensions",
                          dim);
    for (size_t a = 0; a < D; a++)
        for (size_t b = a; b < D; b++)
            out[a * D + b] = sums[a * DP + b] / (double)(n - 1);
    free(sums);
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
    double *cov = covariance_sums_new(x, n, D, out->mean);
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
    /* The covariance (bl_covariance's bits), both triangles, in float for LAPACK. */
    const size_t DP = cov_stride(D);
    for (size_t a = 0; a < D; a++)
        for (size_t b = a; b < D; b++)
            covf[a * D + b] = covf[b * D + a] = (float)(cov[a * DP + b] / (double)(n - 1));
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
    for (size_t i = 0; i < n; i++) {
        double t[HM_MAX_BITS];
        project_row(x + i * D, out->mean, evec, D, B, t);
        for (size_t k = 0; k < B; k++)
            V[i * B + k] = (float)t[k];
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
            double t[HM_MAX_BITS];
            for (size_t k = 0; k < B; k++)
                t[k] = 0;
            for (size_t l = 0; l < B; l++) /* each t[k]: its sum over l in order */
                for (size_t k = 0; k < B; k++)
                    t[k] += (double)V[i * B + l] * R[l * B + k];
            for (size_t k = 0; k < B; k++)
                code[k] = t[k] >= 0 ? 1.0f : -1.0f;
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
        double t[HM_MAX_BITS];
        project_row(x + i * D, m->mean, m->proj, D, B, t);
        for (size_t k = 0; k < B; k++)
            if (t[k] > 0)
                row[k / 64] |= 1ull << (k % 64);
    }
}
