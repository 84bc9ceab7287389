/* Input checks, the bit-weights file rule, the dataset and protocol flags and their flag-table
 * parsers, shared by the commands. */
#include "inputs.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
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
    char what[64];
    drsch_error err;
    snprintf(what, sizeof what, "%s input", flag);
    if (fio_check_regular(path, what, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s %s\n", cmd, flag, err.msg);
        return -1;
    }
    return 0;
}

int in_load_weights(const char *cmd, const char *path, size_t need, size_t max, int power,
                    float **out, size_t *len)
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
        for (size_t i = 0; i < a.count && rc == 0; i++) {
            if (power == 2) /* w^2 in float32, as the kernels will use it */
                w[i] = w[i] * w[i];
            abs_sum += fabs((double)w[i]);
        }
        if (rc == 0 && abs_sum > (double)FLT_MAX / 2) { /* also a square beyond float32 */
            fprintf(stderr,
                    "drsch %s: %s: the sum of %s %g is too large (at most %g, so that "
                    "distances, sums of weights, stay finite in float32)\n",
                    cmd, path, power == 2 ? "the squared weights" : "|weights|", abs_sum,
                    (double)FLT_MAX / 2);
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

int in_parse_protocol(const char *cmd, const char *s, xp_protocol *out)
{
    static const char *const names[] = {"auto", "paper", "paper-db-train", "full", "classic",
                                        "new",  "none"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) {
            *out = (xp_protocol)i;
            return 0;
        }
    fprintf(stderr, "drsch %s: --protocol: '%s' is not one of " XP_PROTOCOL_NAMES "\n", cmd, s);
    return -1;
}

int in_parse_size(const char *cmd, const char *s, int *h, int *w)
{
    char *end = NULL;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        goto bad;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end != '\0' || a < 1 || b < 1 || a > 4096 || b > 4096)
        goto bad;
    *h = (int)a;
    *w = (int)b;
    return 0;
bad:
    fprintf(stderr, "drsch %s: --size/--crop: '%s' is not HxW with 1 <= H, W <= 4096\n", cmd, s);
    return -1;
}

int in_size_check(const char *cmd, const char *spec)
{
    ds_spec ds;
    drsch_error de;
    if (ds_spec_parse(spec, &ds, &de) != DRSCH_OK)
        return 0; /* reported when the dataset is loaded */
    if (ds.kind != DS_KIND_CUHK03 && ds.kind != DS_KIND_NUSWIDE) {
        fprintf(
            stderr,
            "drsch %s: --size resizes NUS-WIDE and CUHK03 images on loading; %s images are used at "
            "their own size\n",
            cmd, ds.name);
        return -1;
    }
    return 0;
}

int in_load_dataset(const char *cmd, const char *spec, const char *size, ds_dataset **out,
                    int *exit_code)
{
    ds_load_opts lo;
    ds_load_opts_default(&lo);
    ds_spec ds;
    drsch_error de;
    *out = NULL;
    *exit_code = 1;
    if (ds_spec_parse(spec, &ds, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, de.msg);
        return -1;
    }
    *exit_code = 2;
    if (size && (in_parse_size(cmd, size, &lo.out_h, &lo.out_w) || in_size_check(cmd, spec)))
        return -1;
    *exit_code = 1;
    if (ds_load_spec(&ds, &lo, out, &de) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, de.msg);
        return -1;
    }
    *exit_code = 0;
    return 0;
}

int in_flag_protocol(const char *cmd, const char *flag, const char *value, void *dest)
{
    (void)flag;
    return in_parse_protocol(cmd, value, dest);
}

int in_flag_hw(const char *cmd, const char *flag, const char *value, void *dest)
{
    int *hw = dest;
    (void)flag;
    return in_parse_size(cmd, value, &hw[0], &hw[1]);
}

int in_flag_size_text(const char *cmd, const char *flag, const char *value, void *dest)
{
    int h, w;
    (void)flag;
    if (in_parse_size(cmd, value, &h, &w))
        return -1;
    *(const char **)dest = value;
    return 0;
}

int in_flag_precision(const char *cmd, const char *flag, const char *value, void *dest)
{
    (void)flag;
    return cli_parse_precision(cmd, value, dest);
}
