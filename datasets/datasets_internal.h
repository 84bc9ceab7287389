/* Shared internals of datasets/: dataset allocation and file helpers (errors: status.h). Not part
 * of the public API. Every random choice (splits, samplers, augmentation) draws from simd/rng.h's
 * rng_state, so they are reproducible from a seed. */
#ifndef DRSCH_DATASETS_INTERNAL_H
#define DRSCH_DATASETS_INTERNAL_H

#include <stdbool.h>

#include "datasets.h"
#include "rng.h"

/* A zeroed dataset with images and (for single/identity labels) labels allocated. */
ds_dataset *ds_dataset_alloc(int64_t n, int c, int h, int w, ds_label_kind kind, int n_classes);

/* Whether the rotation / zoom augmentation may use its AVX-512 loop (on: when the CPU has it, the
 * default; off: the scalar loop). The two give the same bits; tests compare them. */
void ds_affine_vectorize(bool on);

int ds_file_exists(const char *path);
/* DRSCH_OK when path is a regular file that can be opened; otherwise DRSCH_ERR_IO naming path and
 * the cause ("No such file or directory", "Is a directory", "is a FIFO (named pipe)"). */
drsch_status ds_check_file(const char *path, drsch_error *err);
/* The whole of a regular dataset file (*data malloc'd, NUL-terminated), errors as ds_check_file. */
drsch_status ds_read_file(const char *path, uint8_t **data, size_t *len, drsch_error *err);
/* Copies at most DRSCH_PATH_MAX - 1 bytes; returns -1 when the result would be truncated. */
int ds_path_join(char *out, const char *a, const char *b);

#endif
