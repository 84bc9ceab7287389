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
#include "experiment.h"
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
    static const struct {
        const char *name;
        xp_protocol p;
    } protos[] = {
        {"auto", XP_PROTO_AUTO},
        {"paper", XP_PROTO_PAPER},
        {"paper-db-train", XP_PROTO_PAPER_DB_TRAIN},
        {"full", XP_PROTO_FULL},
        {"classic", XP_PROTO_CLASSIC},
        {"new", XP_PROTO_NEW},
        {"cifar10", XP_PROTO_CIFAR10},
        {"cifar10-1", XP_PROTO_CIFAR10_1},
        {"cifar10-2", XP_PROTO_CIFAR10_2},
        {"nuswide-21", XP_PROTO_NUSWIDE_21},
        {"transfer", XP_PROTO_TRANSFER},
        {"none", XP_PROTO_NONE},
    };
    for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
        if (!strcmp(s, protos[i].name)) {
            *out = protos[i].p;
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

int in_flag_load_size(const char *cmd, const char *flag, const char *value, void *dest)
{
    ds_load_opts *lo = dest;
    (void)flag;
    return in_parse_size(cmd, value, &lo->out_h, &lo->out_w);
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

int in_load_labels(const char *cmd, const char *path, size_t expect_n, in_labels *out)
{
    memset(out, 0, sizeof *out);
    npy_array a;
    drsch_error err;
    if (npy_load(path, &a, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch %s: %s\n", cmd, err.msg);
        return -1;
    }
    int rc = -1;
    size_t n = a.ndim >= 1 ? a.shape[0] : 0;
    if (n != expect_n) {
        fprintf(stderr, "drsch %s: %s: %zu labels, but there are %zu codes\n", cmd, path, n,
                expect_n);
    } else if (a.ndim == 1 && (a.dtype == NPY_I32 || a.dtype == NPY_I64)) {
        out->labels = malloc((n ? n : 1) * sizeof *out->labels);
        if (out->labels) {
            for (size_t i = 0; i < n; i++)
                out->labels[i] =
                    a.dtype == NPY_I32 ? ((int32_t *)a.data)[i] : (int32_t)((int64_t *)a.data)[i];
            out->n = n;
            rc = 0;
        } else {
            fprintf(stderr, "drsch %s: %s: out of memory for %zu labels\n", cmd, path, n);
        }
    } else if (a.ndim == 2 && (a.dtype == NPY_U8 || a.dtype == NPY_BOOL) && a.shape[1] > 0) {
        size_t L = a.shape[1], words = xp_multi_hot_words(L);
        const uint8_t *v = a.data;
        size_t bad = 0;
        while (bad < n * L && v[bad] <= 1)
            bad++;
        if (bad < n * L) {
            fprintf(stderr,
                    "drsch %s: %s: row %zu, label %zu is %u; multi-hot labels must be 0 or 1\n",
                    cmd, path, bad / L, bad % L, v[bad]);
        } else if ((out->multi = calloc(n * words + 1, sizeof *out->multi))) {
            xp_pack_multi_hot(v, L, NULL, n, out->multi);
            out->n = n;
            out->words = words;
            out->cols = L;
            rc = 0;
        } else {
            fprintf(stderr, "drsch %s: %s: out of memory for %zu x %zu labels\n", cmd, path, n, L);
        }
    } else {
        fprintf(stderr,
                "drsch %s: %s: labels must be int32/int64 (N,) or uint8 (N, L) multi-hot; got %s "
                "with %d dimensions\n",
                cmd, path, npy_dtype_name(a.dtype), a.ndim);
    }
    npy_free(&a);
    return rc;
}
