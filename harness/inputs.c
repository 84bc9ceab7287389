/* Input checks and the bit-weights file rule shared by drsch search, encode and eval. */
#include "inputs.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "npy.h"

int in_check_input(const char *cmd, const char *flag, const char *path)
{
    struct stat st;
    if (!path || !path[0]) {
        fprintf(stderr, "drsch %s: %s: the file name is empty\n", cmd, flag);
        return -1;
    }
    if (stat(path, &st) != 0) {
        fprintf(stderr, "drsch %s: %s %s: %s\n", cmd, flag, path,
                errno == ENOENT ? "no such file" : strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "drsch %s: %s %s: is a directory\n", cmd, flag, path);
        return -1;
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "drsch %s: %s %s: cannot be read: %s\n", cmd, flag, path, strerror(errno));
        return -1;
    }
    /* a FIFO would block the reader, a device such as /dev/zero never ends: refused now */
    char what[64], msg[600];
    snprintf(what, sizeof what, "%s input", flag);
    if (fio_check_regular(path, what, msg, sizeof msg) != 0) {
        fprintf(stderr, "drsch %s: %s %s\n", cmd, flag, msg);
        return -1;
    }
    return 0;
}

int in_load_weights(const char *cmd, const char *path, size_t need, size_t max, float **out,
                    size_t *len)
{
    npy_array a;
    drsch_error err;
    if (npy_load(path, &a, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, err.msg);
        return -1;
    }
    int rc = -1;
    float *w = NULL;
    if (a.ndim != 1 || (a.dtype != NPY_F32 && a.dtype != NPY_F64)) {
        fprintf(stderr,
                "drsch %s: %s: weights must be a 1-D float32 or float64 array; got %s with %d "
                "dimensions\n",
                cmd, path, npy_dtype_name(a.dtype), a.ndim);
    } else if (a.count < need || a.count > max) {
        if (need == max)
            fprintf(stderr, "drsch %s: %s: %zu weights, but the codes need %zu (one per bit)\n",
                    cmd, path, a.count, need);
        else
            fprintf(stderr,
                    "drsch %s: %s: %zu weights, but the codes need %zu to %zu (one per bit)\n", cmd,
                    path, a.count, need, max);
    } else if (!(w = malloc(a.count * sizeof *w))) {
        fprintf(stderr, "drsch %s: %s: out of memory for %zu weights\n", cmd, path, a.count);
    } else {
        rc = 0;
        for (size_t i = 0; i < a.count && rc == 0; i++) {
            double v = a.dtype == NPY_F32 ? (double)((float *)a.data)[i] : ((double *)a.data)[i];
            w[i] = (float)v;
            if (!isfinite(w[i])) {
                fprintf(stderr, "drsch %s: %s: weight %zu is %s (weights must be finite)\n", cmd,
                        path, i,
                        isnan(v)   ? "NaN"
                        : isinf(v) ? "infinite"
                                   : "beyond the float32 range");
                rc = -1;
            }
        }
        double abs_sum = 0;
        for (size_t i = 0; i < a.count && rc == 0; i++)
            abs_sum += fabs((double)w[i]);
        if (rc == 0 && abs_sum > (double)FLT_MAX / 2) {
            fprintf(stderr,
                    "drsch %s: %s: the sum of |weights| %g is too large (at most %g, so that "
                    "distances, "
                    "sums of weights, stay finite in float32)\n",
                    cmd, path, abs_sum, (double)FLT_MAX / 2);
            rc = -1;
        }
        if (rc == 0) {
            *out = w;
            *len = a.count;
            w = NULL;
        }
    }
    free(w);
    npy_free(&a);
    return rc;
}

void in_report_missing(const char *cmd, const char *const *flags, int n, const char *tail)
{
    fprintf(stderr, "drsch %s: ", cmd);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", flags[i]);
    fprintf(stderr, " %s required%s\n", n == 1 ? "is" : "are", tail ? tail : "");
}
