/* CUHK03 767/700 protocol (Zhong, Zheng, Cao, Li, "Re-ranking person re-identification with
 * k-reciprocal encoding", CVPR 2017): maps the index lists of
 * cuhk03_new_protocol_config_{labeled,detected}.mat onto a dataset loaded from cuhk-03.mat,
 * through the file names "P_QQQ_V_SS.png" (pair, person, view 1/2, slot 1..10) that the config
 * lists. Reads the config with the minimal MAT v5 reader in matv5.c. */
#include "matv5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Maps the 1-based positions in v (into filelist) to dataset indices. */
static drsch_status map_list(const char *cfg, const mat_var *v, const int64_t *file_to_ds,
                             int64_t n_files, int64_t **out, int64_t *n_out, drsch_error *err)
{
    *out = malloc((size_t)(v->count ? v->count : 1) * sizeof **out);
    if (!*out)
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, cfg, -1, "out of memory");
    for (int64_t k = 0; k < v->count; k++) {
        double x = v->values[k];
        if (!(x >= 1 && x <= (double)n_files) || x != (double)(int64_t)x)
            return drsch_fail_at(err, DRSCH_ERR_RANGE, cfg, k,
                                 "%s value %g is not an index into filelist [1, %lld]", v->name, x,
                                 (long long)n_files);
        (*out)[k] = file_to_ds[(int64_t)x - 1];
    }
    qsort(*out, (size_t)v->count, sizeof **out, cmp_i64);
    *n_out = v->count;
    return DRSCH_OK;
}

drsch_status ds_split_cuhk03_new(const ds_dataset *d, const char *config_mat, ds_split *out,
                                 drsch_error *err)
{
    drsch_error_clear(err);
    memset(out, 0, sizeof *out);
    if (d->kind != DS_KIND_CUHK03 || !d->pair || !d->person || !d->slot || !d->pair_persons)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1, "dataset %s is not CUHK03",
                             d->name);
    mat_var files, lists[3];
    memset(lists, 0, sizeof lists);
    const char *names[3] = {"query_idx", "gallery_idx", "train_idx"};
    drsch_status s = mat_read_var(config_mat, "filelist", &files, err);
    for (int k = 0; k < 3 && !s; k++) {
        s = mat_read_var(config_mat, names[k], &lists[k], err);
        if (!s && !lists[k].values && lists[k].count > 0)
            s = drsch_fail_at(err, DRSCH_ERR_FORMAT, config_mat, -1, "'%s' is not a numeric array",
                              names[k]);
    }
    if (!s && !files.strings)
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, config_mat, -1,
                          "'filelist' is not a cell array of file names");
    int64_t *lookup = NULL, *file_to_ds = NULL;
    int32_t offset[17] = {0};
    if (s)
        goto done;
    for (int p = 0; p < d->n_pairs && p < 16; p++)
        offset[p + 1] = offset[p] + d->pair_persons[p];
    lookup = malloc((size_t)(d->n_classes ? d->n_classes : 1) * 10 * sizeof *lookup);
    file_to_ds = malloc((size_t)(files.count ? files.count : 1) * sizeof *file_to_ds);
    if (!lookup || !file_to_ds) {
        s = drsch_fail_at(err, DRSCH_ERR_NOMEM, config_mat, -1, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < (int64_t)d->n_classes * 10; k++)
        lookup[k] = -1;
    for (int64_t i = 0; i < d->n; i++)
        lookup[(int64_t)d->labels[i] * 10 + d->slot[i]] = i;
    for (int64_t k = 0; k < files.count; k++) {
        int p, q, v, sl;
        char tail[16];
        if (sscanf(files.strings[k], "%d_%d_%d_%d%15s", &p, &q, &v, &sl, tail) < 4 || p < 1 ||
            p > d->n_pairs || q < 1 || q > d->pair_persons[p - 1] || sl < 1 || sl > 10 ||
            v != (sl > 5 ? 2 : 1)) {
            s = drsch_fail_at(
                err, DRSCH_ERR_FORMAT, config_mat, k,
                "filelist name '%s' is not pair_person_view_slot (e.g. 1_001_1_01.png) "
                "within this dataset",
                files.strings[k]);
            goto done;
        }
        int64_t i = lookup[(int64_t)(offset[p - 1] + q - 1) * 10 + (sl - 1)];
        if (i < 0) {
            s = drsch_fail_at(
                err, DRSCH_ERR_FORMAT, config_mat, k,
                "%s is not in %s (empty slot there; labeled/detected config mismatch?)",
                files.strings[k], d->source);
            goto done;
        }
        file_to_ds[k] = i;
    }
    s = map_list(config_mat, &lists[0], file_to_ds, files.count, &out->query, &out->n_query, err);
    if (!s)
        s = map_list(config_mat, &lists[1], file_to_ds, files.count, &out->db, &out->n_db, err);
    if (!s)
        s = map_list(config_mat, &lists[2], file_to_ds, files.count, &out->train, &out->n_train,
                     err);
    if (!s) {
        /* count identities of each side for the name */
        uint8_t *seen = calloc((size_t)d->n_classes + 1, 1);
        int64_t tr = 0, te = 0;
        if (seen) {
            for (int64_t k = 0; k < out->n_train; k++)
                if (!(seen[d->labels[out->train[k]]] & 1)) {
                    seen[d->labels[out->train[k]]] |= 1;
                    tr++;
                }
            for (int64_t k = 0; k < out->n_db; k++)
                if (!(seen[d->labels[out->db[k]]] & 2)) {
                    seen[d->labels[out->db[k]]] |= 2;
                    te++;
                }
            free(seen);
        }
        const char *base = strrchr(config_mat, '/');
        snprintf(out->name, sizeof out->name,
                 "cuhk03 new protocol (Zhong et al. 2017): %lld train / %lld test identities, "
                 "query and gallery from %s",
                 (long long)tr, (long long)te, base ? base + 1 : config_mat);
    }
done:
    if (s)
        ds_split_free(out);
    free(lookup);
    free(file_to_ds);
    mat_var_free(&files);
    for (int k = 0; k < 3; k++)
        mat_var_free(&lists[k]);
    return s;
}
