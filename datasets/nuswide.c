/* NUS-WIDE image lists: one line per image, "relative/path.jpg l_1 ... l_L" with L = 21 or 81
 * labels in {0, 1} (the list format researchers ship with NUS-WIDE-21 / -81 subsets), images
 * under an image root, decoded (JPEG / PNG) and resized to the network input in parallel.
 * A missing or undecodable image fails the load unless skip_bad_images is set; then every skip
 * is counted in n_skipped. Also the NUS-WIDE-21 concept selection. */
#include "datasets_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUSWIDE_DEFAULT_SIZE 32

typedef struct {
    char *rel;    /* image path relative to the root */
    int64_t line; /* 0-based line in the list */
    drsch_status status;
} list_entry;

static void free_entries(list_entry *e, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        free(e[i].rel);
    free(e);
}

/* Reads a whole line of any length; returns NULL at EOF. */
static char *read_line(FILE *f, char **buf, size_t *cap)
{
    ssize_t r = getline(buf, cap, f);
    return r < 0 ? NULL : *buf;
}

drsch_status ds_load_nuswide(const char *list, const char *imgroot, const ds_load_opts *opts,
                             ds_dataset **out, drsch_error *err)
{
    drsch_error_clear(err);
    *out = NULL;
    ds_load_opts def;
    if (!opts) {
        ds_load_opts_default(&def);
        opts = &def;
    }
    const int oh = opts->out_h > 0 ? opts->out_h : NUSWIDE_DEFAULT_SIZE;
    const int ow = opts->out_w > 0 ? opts->out_w : NUSWIDE_DEFAULT_SIZE;
    drsch_status cs = ds_check_file(list, err);
    if (cs)
        return cs;
    FILE *f = fopen(list, "r");
    if (!f)
        return drsch_fail_at(err, DRSCH_ERR_IO, list, -1, "cannot open list: %s", strerror(errno));
    list_entry *ent = NULL;
    uint8_t *lab = NULL;
    int64_t n = 0, cap = 0, line = -1;
    int L = -1;
    char *buf = NULL;
    size_t bcap = 0;
    drsch_status s = DRSCH_OK;
    while (read_line(f, &buf, &bcap)) {
        line++;
        char *save = NULL;
        char *tok = strtok_r(buf, " \t\r\n", &save);
        if (!tok)
            continue; /* blank line */
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 1024;
            list_entry *ne = realloc(ent, (size_t)nc * sizeof *ne);
            if (!ne) {
                s = drsch_fail_at(err, DRSCH_ERR_NOMEM, list, -1, "out of memory");
                break;
            }
            ent = ne;
            if (L > 0) {
                uint8_t *nl = realloc(lab, (size_t)nc * (size_t)L);
                if (!nl) {
                    s = drsch_fail_at(err, DRSCH_ERR_NOMEM, list, -1, "out of memory");
                    break;
                }
                lab = nl;
            }
            cap = nc;
        }
        uint8_t row[128];
        int k = 0;
        char *t;
        while ((t = strtok_r(NULL, " \t\r\n", &save))) {
            if ((strcmp(t, "0") && strcmp(t, "1"))) {
                s = drsch_fail_line(err, DRSCH_ERR_FORMAT, list, line,
                                    "label %d is '%s', expected 0 or 1", k + 1, t);
                break;
            }
            if (k < 128)
                row[k] = (uint8_t)(t[0] - '0');
            k++;
        }
        if (s)
            break;
        if (L < 0) {
            if (k != 21 && k != 81) {
                s = drsch_fail_line(
                    err, DRSCH_ERR_FORMAT, list, line,
                    "%d labels after the image path, expected 21 or 81 (NUS-WIDE-21 / -81)", k);
                break;
            }
            L = k;
            lab = malloc((size_t)cap * (size_t)L);
            if (!lab) {
                s = drsch_fail_at(err, DRSCH_ERR_NOMEM, list, -1, "out of memory");
                break;
            }
        } else if (k != L) {
            s = drsch_fail_line(err, DRSCH_ERR_FORMAT, list, line,
                                "%d labels, expected %d like the first line", k, L);
            break;
        }
        ent[n].rel = strdup(tok);
        ent[n].line = line;
        ent[n].status = DRSCH_OK;
        if (!ent[n].rel) {
            s = drsch_fail_at(err, DRSCH_ERR_NOMEM, list, -1, "out of memory");
            break;
        }
        memcpy(lab + (size_t)n * (size_t)L, row, (size_t)L);
        n++;
    }
    free(buf);
    if (!s && ferror(f))
        s = drsch_fail_at(err, DRSCH_ERR_IO, list, -1, "read error");
    fclose(f);
    if (!s && n == 0)
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, list, -1, "no images listed");
    ds_dataset *d = NULL;
    if (!s) {
        d = ds_dataset_alloc(n, 3, oh, ow, DS_LABELS_MULTI, L);
        if (!d)
            s = drsch_fail_at(err, DRSCH_ERR_NOMEM, list, -1,
                              "cannot allocate %lld images of 3 x %d x %d", (long long)n, oh, ow);
    }
    if (s) {
        free_entries(ent, n);
        free(lab);
        return s;
    }
    memcpy(d->multi, lab, (size_t)n * (size_t)L);
    free(lab);
    const size_t per = (size_t)3 * (size_t)oh * (size_t)ow;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 16)
#endif
    for (int64_t i = 0; i < n; i++) {
        char path[DRSCH_PATH_MAX];
        if (ds_path_join(path, imgroot, ent[i].rel) != 0) {
            ent[i].status = DRSCH_ERR_ARG;
            continue;
        }
        uint8_t *px = NULL;
        int h = 0, w = 0;
        drsch_error e;
        ent[i].status = ds_image_decode_file(path, &px, &h, &w, &e);
        if (ent[i].status == DRSCH_OK)
            ds_resize_bilinear_hwc_to_chw(px, h, w, 3, d->images + (size_t)i * per, oh, ow);
        free(px);
    }
    /* fatal errors (memory, path length) and, without skipping, the first bad image */
    int64_t keep = 0;
    for (int64_t i = 0; i < n && !s; i++) {
        drsch_status st = ent[i].status;
        int skippable = st == DRSCH_ERR_IO || st == DRSCH_ERR_DECODE;
        if (st == DRSCH_OK) {
            if (keep != i) {
                memmove(d->images + (size_t)keep * per, d->images + (size_t)i * per, per);
                memmove(d->multi + (size_t)keep * (size_t)L, d->multi + (size_t)i * (size_t)L,
                        (size_t)L);
            }
            keep++;
        } else if (skippable && opts->skip_bad_images) {
            d->n_skipped++;
        } else {
            /* decode again to get the exact message for this record */
            char path[DRSCH_PATH_MAX];
            drsch_error e;
            drsch_error_clear(&e);
            if (ds_path_join(path, imgroot, ent[i].rel) != 0) {
                snprintf(e.msg, sizeof e.msg, "image path too long");
            } else {
                uint8_t *px = NULL;
                int h, w;
                if (ds_image_decode_file(path, &px, &h, &w, &e) == DRSCH_OK)
                    snprintf(e.msg, sizeof e.msg, "%s: failed while loading (out of memory?)",
                             path);
                free(px);
            }
            s = drsch_fail_line(err, st, list, ent[i].line, "%s%s", e.msg,
                                skippable ? " (use the skip option to skip such images)" : "");
        }
    }
    free_entries(ent, n);
    if (!s && keep == 0)
        s = drsch_fail_at(err, DRSCH_ERR_FORMAT, list, -1, "all %lld images were skipped",
                          (long long)n);
    if (s) {
        ds_dataset_free(d);
        return s;
    }
    d->n = keep;
    d->kind = DS_KIND_NUSWIDE;
    snprintf(d->name, sizeof d->name, "nuswide-%d", L);
    snprintf(d->source, sizeof d->source, "%s", list);
    *out = d;
    return DRSCH_OK;
}

drsch_status ds_select_top_concepts(ds_dataset *d, int k, drsch_error *err)
{
    drsch_error_clear(err);
    if (d->label_kind != DS_LABELS_MULTI)
        return drsch_fail_at(err, DRSCH_ERR_ARG, d->source, -1, "dataset %s is not multi-label",
                             d->name);
    int L = d->n_classes;
    if (k < 1 || k > L)
        return drsch_fail_at(err, DRSCH_ERR_RANGE, d->source, -1, "cannot keep %d of %d concepts",
                             k, L);
    int64_t *cnt = malloc((size_t)L * sizeof *cnt);
    uint8_t *chosen = calloc((size_t)L, 1);
    if (!cnt || !chosen) {
        free(cnt);
        free(chosen);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, NULL, -1, "out of memory");
    }
    ds_class_counts(d, cnt);
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int l = 0; l < L; l++)
            if (!chosen[l] && (best < 0 || cnt[l] > cnt[best]))
                best = l;
        if (best < 0)
            break; /* cannot happen (k <= L), but tells the compiler best indexes chosen */
        chosen[best] = 1;
    }
    int map[256];
    int nk = 0;
    for (int l = 0; l < L && l < 256; l++)
        if (chosen[l])
            map[nk++] = l;
    const size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    int64_t keep = 0;
    for (int64_t i = 0; i < d->n; i++) {
        uint8_t row[256];
        int any = 0;
        for (int j = 0; j < nk; j++) {
            row[j] = d->multi[(size_t)i * (size_t)L + (size_t)map[j]];
            any |= row[j];
        }
        if (!any)
            continue;
        if (keep != i)
            memmove(d->images + (size_t)keep * per, d->images + (size_t)i * per, per);
        memcpy(d->multi + (size_t)keep * (size_t)nk, row, (size_t)nk);
        keep++;
    }
    d->n = keep;
    d->n_classes = nk;
    free(cnt);
    free(chosen);
    return DRSCH_OK;
}
