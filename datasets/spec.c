/* Dataset spec strings (fashion-mnist, mnist:DIR, cifar10:DIR, nuswide:LIST:IMGROOT,
 * cuhk03:FILE.mat[:labeled|detected]) and the loader that dispatches on them. Bare names
 * resolve under $DRSCH_DATA; fashion-mnist falls back to Debian's dataset-fashion-mnist. */
#include "datasets_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ds_load_opts_default(ds_load_opts *o) { memset(o, 0, sizeof *o); }

static drsch_status data_root_path(const char *spec, const char *rel, char *out, drsch_error *err)
{
    const char *root = getenv("DRSCH_DATA");
    if (!root || !root[0])
        return drsch_fail_at(
            err, DRSCH_ERR_ARG, NULL, -1,
            "dataset '%s': DRSCH_DATA is not set; set it to the dataset root or give the path "
            "explicitly (see drsch data --help)",
            spec);
    if (ds_path_join(out, root, rel) != 0)
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1, "dataset '%s': path too long", spec);
    return DRSCH_OK;
}

static drsch_status set_path(char *dst, const char *src, size_t len, const char *spec,
                             drsch_error *err)
{
    if (len == 0)
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1, "dataset '%s': empty path", spec);
    if (len >= DRSCH_PATH_MAX)
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1, "dataset '%s': path too long", spec);
    memcpy(dst, src, len);
    dst[len] = '\0';
    return DRSCH_OK;
}

drsch_status ds_spec_parse(const char *spec, ds_spec *out, drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    if (!spec || !spec[0])
        return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1, "empty dataset spec");
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *rest = colon ? colon + 1 : NULL;
#define IS(n) (nlen == strlen(n) && !strncmp(spec, n, nlen))
    if (IS("fashion-mnist") || IS("mnist")) {
        out->kind = DS_KIND_IDX;
        snprintf(out->name, sizeof out->name, "%.*s", (int)nlen, spec);
        if (rest)
            return set_path(out->path, rest, strlen(rest), spec, err);
        if (IS("fashion-mnist")) {
            const char *root = getenv("DRSCH_DATA");
            if (root && root[0] && ds_path_join(out->path, root, "fashion-mnist") == 0 &&
                ds_file_exists(out->path))
                return DRSCH_OK;
            snprintf(out->path, sizeof out->path, "%s", DS_FASHION_MNIST_SYSTEM_DIR);
            return DRSCH_OK;
        }
        return data_root_path(spec, "mnist", out->path, err);
    }
    if (IS("cifar10") || IS("cifar-10")) {
        out->kind = DS_KIND_CIFAR10;
        snprintf(out->name, sizeof out->name, "cifar10");
        if (rest)
            return set_path(out->path, rest, strlen(rest), spec, err);
        drsch_status s = data_root_path(spec, "cifar10", out->path, err);
        if (s == DRSCH_OK && !ds_file_exists(out->path))
            data_root_path(spec, "cifar-10-batches-bin", out->path, err);
        return s;
    }
    if (IS("nuswide") || IS("nus-wide")) {
        out->kind = DS_KIND_NUSWIDE;
        snprintf(out->name, sizeof out->name, "nuswide");
        if (!rest) {
            drsch_status s = data_root_path(spec, "nuswide/list.txt", out->path, err);
            if (s)
                return s;
            return data_root_path(spec, "nuswide/images", out->path2, err);
        }
        const char *c2 = strrchr(rest, ':');
        if (!c2)
            return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1,
                                 "dataset '%s': expected nuswide:LIST:IMGROOT", spec);
        drsch_status s = set_path(out->path, rest, (size_t)(c2 - rest), spec, err);
        if (s)
            return s;
        return set_path(out->path2, c2 + 1, strlen(c2 + 1), spec, err);
    }
    if (IS("cuhk03") || IS("cuhk-03")) {
        out->kind = DS_KIND_CUHK03;
        const char *file = rest;
        size_t flen = rest ? strlen(rest) : 0;
        if (rest) {
            const char *c2 = strrchr(rest, ':');
            const char *last = c2 ? c2 + 1 : rest;
            if (!strcmp(last, "labeled") || !strcmp(last, "detected")) {
                out->detected = !strcmp(last, "detected");
                flen = c2 ? (size_t)(c2 - rest) : 0;
            } else if (c2) {
                return drsch_fail_at(
                    err, DRSCH_ERR_ARG, NULL, -1,
                    "dataset '%s': expected cuhk03:FILE.mat[:labeled|detected], got '%s'", spec,
                    last);
            }
        }
        snprintf(out->name, sizeof out->name, "cuhk03-%s", out->detected ? "detected" : "labeled");
        if (flen)
            return set_path(out->path, file, flen, spec, err);
        return data_root_path(spec, "cuhk03/cuhk-03.mat", out->path, err);
    }
#undef IS
    return drsch_fail_at(err, DRSCH_ERR_ARG, NULL, -1,
                         "unknown dataset '%s' (expected fashion-mnist, mnist:DIR, cifar10:DIR, "
                         "nuswide:LIST:IMGROOT "
                         "or cuhk03:FILE.mat[:labeled|detected])",
                         spec);
}

drsch_status ds_load_spec(const ds_spec *spec, const ds_load_opts *opts, ds_dataset **out,
                          drsch_error *err)
{
    ds_load_opts def;
    if (!opts) {
        ds_load_opts_default(&def);
        opts = &def;
    }
    drsch_status s = DRSCH_ERR_ARG;
    switch (spec->kind) {
    case DS_KIND_IDX: s = ds_load_idx_dir(spec->path, spec->name, out, err); break;
    case DS_KIND_CIFAR10: s = ds_load_cifar10(spec->path, out, err); break;
    case DS_KIND_NUSWIDE:
        s = ds_load_nuswide(spec->path, spec->path2, opts, out, err);
        if (s == DRSCH_OK && (*out)->n_classes > 21) {
            /* NUS-WIDE-21: the 21 most frequent of the 81 concepts (paper, Sec. IV). */
            s = ds_select_top_concepts(*out, 21, err);
            if (s) {
                ds_dataset_free(*out);
                *out = NULL;
            }
        }
        if (s == DRSCH_OK)
            snprintf((*out)->name, sizeof(*out)->name, "nuswide-21");
        break;
    case DS_KIND_CUHK03: s = ds_load_cuhk03(spec->path, spec->detected, opts, out, err); break;
    }
    if (s == DRSCH_OK && spec->kind != DS_KIND_NUSWIDE)
        snprintf((*out)->name, sizeof(*out)->name, "%s", spec->name);
    return s;
}

drsch_status ds_load(const char *spec, const ds_load_opts *opts, ds_dataset **out, drsch_error *err)
{
    *out = NULL;
    ds_spec sp;
    drsch_status s = ds_spec_parse(spec, &sp, err);
    if (s)
        return s;
    return ds_load_spec(&sp, opts, out, err);
}
