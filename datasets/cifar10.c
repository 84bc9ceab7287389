/* CIFAR-10 binary version reader: data_batch_1..5.bin then test_batch.bin, each a sequence of
 * 3073-byte records (1 label byte in [0, 10), then 1024 R, 1024 G, 1024 B bytes, row-major
 * 32 x 32). Class names come from batches.meta.txt when present. Does not read the Python
 * pickle version or CIFAR-100. */
#include "datasets_internal.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CIFAR_CLASSES 10
#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)

static const char *const CIFAR_FILES[6] = {"data_batch_1.bin", "data_batch_2.bin",
                                           "data_batch_3.bin", "data_batch_4.bin",
                                           "data_batch_5.bin", "test_batch.bin"};

static const char *const CIFAR_NAMES[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

static drsch_status file_size(const char *path, int64_t *size, drsch_error *err)
{
    drsch_status cs = ds_check_file(path, err);
    if (cs)
        return cs;
    FILE *f = fopen(path, "rb");
    if (!f)
        return drsch_fail_at(err, DRSCH_ERR_IO, path, -1, "cannot open: %s", strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return drsch_fail_at(err, DRSCH_ERR_IO, path, -1, "cannot seek");
    }
    long s = ftell(f);
    fclose(f);
    if (s < 0)
        return drsch_fail_at(err, DRSCH_ERR_IO, path, -1, "cannot tell size");
    *size = s;
    return DRSCH_OK;
}

static void read_class_names(const char *dir, ds_dataset *d)
{
    char path[DRSCH_PATH_MAX];
    if (ds_path_join(path, dir, "batches.meta.txt") != 0)
        return;
    /* optional: a meta file that is not a regular file (a FIFO would block) is ignored */
    FILE *f = fio_open_read(path, "class name list", NULL, 0);
    char **names = calloc(CIFAR_CLASSES, sizeof *names);
    if (!names) {
        if (f)
            fclose(f);
        return;
    }
    int k = 0;
    char line[256];
    while (f && k < CIFAR_CLASSES && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0)
            continue;
        names[k++] = strdup(line);
    }
    if (f)
        fclose(f);
    for (; k < CIFAR_CLASSES; k++)
        names[k] = strdup(CIFAR_NAMES[k]);
    d->class_names = names;
}

drsch_status ds_load_cifar10(const char *dir, ds_dataset **out, drsch_error *err)
{
    drsch_error_clear(err);
    *out = NULL;
    char paths[6][DRSCH_PATH_MAX];
    int64_t counts[6], total = 0;
    for (int i = 0; i < 6; i++) {
        if (ds_path_join(paths[i], dir, CIFAR_FILES[i]) != 0)
            return drsch_fail_at(err, DRSCH_ERR_ARG, dir, -1, "path too long");
        int64_t size = 0;
        drsch_status s = file_size(paths[i], &size, err);
        if (s)
            return s;
        if (size == 0 || size % CIFAR_RECORD != 0)
            return drsch_fail_at(
                err, DRSCH_ERR_FORMAT, paths[i], size / CIFAR_RECORD,
                "size %lld is not a positive multiple of the %d-byte record (1 label + "
                "3 x 32 x 32)",
                (long long)size, CIFAR_RECORD);
        counts[i] = size / CIFAR_RECORD;
        total += counts[i];
    }
    ds_dataset *d = ds_dataset_alloc(total, 3, 32, 32, DS_LABELS_SINGLE, CIFAR_CLASSES);
    if (d)
        d->subset = malloc((size_t)total * sizeof *d->subset);
    if (!d || !d->subset) {
        ds_dataset_free(d);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, dir, -1, "cannot allocate %lld images",
                             (long long)total);
    }
    uint8_t *rec = malloc(CIFAR_RECORD);
    if (!rec) {
        ds_dataset_free(d);
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, dir, -1, "out of memory");
    }
    int64_t at = 0;
    drsch_status s = DRSCH_OK;
    for (int i = 0; i < 6 && !s; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            s = drsch_fail_at(err, DRSCH_ERR_IO, paths[i], -1, "cannot open: %s", strerror(errno));
            break;
        }
        for (int64_t r = 0; r < counts[i]; r++, at++) {
            if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD) {
                s = drsch_fail_at(err, DRSCH_ERR_IO, paths[i], r,
                                  "truncated record (expected %d bytes)", CIFAR_RECORD);
                break;
            }
            if (rec[0] >= CIFAR_CLASSES) {
                s = drsch_fail_at(err, DRSCH_ERR_RANGE, paths[i], r,
                                  "label %u out of range [0, %d)", rec[0], CIFAR_CLASSES);
                break;
            }
            d->labels[at] = rec[0];
            d->subset[at] = i == 5;
            memcpy(d->images + (size_t)at * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
        }
        fclose(f);
    }
    free(rec);
    if (s) {
        ds_dataset_free(d);
        return s;
    }
    d->kind = DS_KIND_CIFAR10;
    snprintf(d->name, sizeof d->name, "cifar10");
    snprintf(d->source, sizeof d->source, "%s", dir);
    read_class_names(dir, d);
    *out = d;
    return DRSCH_OK;
}
