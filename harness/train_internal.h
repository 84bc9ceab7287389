/* What the training files share internally (train.c, train_state.c, train_encode.c): the error
 * helper and the training-state file. Not part of the public API, not installed. */
#ifndef DRSCH_TRAIN_INTERNAL_H
#define DRSCH_TRAIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"

/* The classifier's classes (train_config.c): map[label] = its output 0..C-1 for the labels of
 * the split's training images (in label order), -1 for the others; *classes = C. NULL (and
 * *classes -1) when d is not single-label, a label or index is out of range, or out of memory. */
int32_t *tr_class_map(const ds_dataset *d, const ds_split *split, int *classes);

/* The L2 norm of net's parameter gradient, which gradient clipping compares with its limit
 * (train.c): each tensor cut into blocks of 4096 values, the blocks' sums of squares (in double,
 * in 8 lanes) computed on the threads, then added in order: the same bits at any thread count. */
double tr_grad_norm(const nn_net *net);

/* Training state (train_state.c). */
/* Bytes of the settings list a state holds at most (the run keeps its list in a buffer this
 * size). */
#define TR_STATE_SETTINGS_MAX 4096
/* The fingerprint of version 1 states: a crc32 of the settings, --iters included. */
uint32_t tr_config_fingerprint(const tr_config *c, const ds_split *split);
/* The settings a resume must match, "flag=value" lines, into buf (n bytes): their length, or -1
 * when they do not fit. */
int tr_config_settings(const tr_config *c, const ds_split *split, char *buf, size_t n);
/* Writes MODEL.state atomically: iteration, the settings list, hist[0..nh) (parameters, then
 * momentum history, both in plain layout), checksum. */
drsch_status tr_write_state(const char *model_path, int64_t iter, const char *settings,
                            const float *hist, size_t nh, drsch_error *err);
/* Reads MODEL.state into hist and *iter, for a run of settings `have` (and, for a version 1
 * state, fingerprint fp_v1) and c->iters iterations: nh values from a version 3 state (momentum
 * in plain layout), nh_old from an older one (momentum in the internal layout of the build that
 * wrote it), *old set to say which (hist holds the larger). Refuses a state of other settings
 * (naming them), of another size, corrupt, or beyond c->iters. */
drsch_status tr_read_state(const char *model_path, const tr_config *c, const char *have,
                           uint32_t fp_v1, int64_t *iter, float *hist, size_t nh, size_t nh_old,
                           int *old, drsch_error *err);

#endif
