/* What search, encode and eval share about their inputs: a check that an input file exists and
 * is a file (made before any work, so that a run does not fail late on a typing error), the one
 * rule for bit-weight files, and the message naming the required flags that are missing. Each
 * prints "drsch <cmd>: ..." to stderr on failure; only the command line uses it. */
#ifndef DRSCH_INPUTS_H
#define DRSCH_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "datasets.h"
#include "experiment.h"

/* An input file given as `flag path`: refuses "" ("the file name is empty"), a path that does
 * not exist ("no such file"), a directory ("is a directory") and one that cannot be read.
 * Returns 0, or -1 after printing "drsch <cmd>: <flag> <path>: <why>". */
int in_check_input(const char *cmd, const char *flag, const char *path);

/* Bit weights from a .npy file, the rule of every command: a 1-D float32 or float64 array of
 * between `need` and `max` entries (one per code bit, the first bits of the code), every entry
 * finite once in float32; power 2 (--weight-power 2) squares each one in float32, power 1 keeps
 * them as given; the sum of the results' |w| at most FLT_MAX / 2 (weighted distances stay
 * finite). *out (malloc'd float32) and *len on success; returns 0, or -1 after printing why,
 * naming the file. */
int in_load_weights(const char *cmd, const char *path, size_t need, size_t max, int power,
                    float **out, size_t *len);

/* Prints "drsch <cmd>: A is required" or "drsch <cmd>: A, B and C are required" for the n
 * flags given (e.g. "--out PREFIX"), then `tail` when not NULL (e.g. " with --codes"). */
void in_report_missing(const char *cmd, const char *const *flags, int n, const char *tail);

/* ---- datasets and protocols ---------------------------------------------------------------- */
/* Parses a --protocol value; prints "drsch <cmd>: --protocol: ..." and returns -1 if unknown. */
int in_parse_protocol(const char *cmd, const char *s, xp_protocol *out);
/* Parses "HxW" (1..4096 each) for --size / --crop; prints an error and returns -1 if bad. */
int in_parse_size(const char *cmd, const char *s, int *h, int *w);

/* --size is allowed for spec (NUS-WIDE, CUHK03)? Prints why not and returns -1. */
int in_size_check(const char *cmd, const char *spec);
/* Loads the dataset of spec for command cmd; size (or NULL) is a --size HxW value, allowed only
 * for datasets decoded and resized on loading (NUS-WIDE, CUHK03). Prints "drsch <cmd>: ..." and
 * returns -1 on failure, with the exit status in *exit_code (2 for a bad --size, 1 otherwise). */
int in_load_dataset(const char *cmd, const char *spec, const char *size, ds_dataset **out,
                    int *exit_code);

/* The same as flag-table parsers (CLI_CUSTOM rows of flags.h): --protocol into an xp_protocol,
 * HxW into int[2] (--crop), HxW into a ds_load_opts's out_h x out_w, HxW checked and kept as
 * text (--size, for in_load_dataset), --precision into an nn_precision. */
int in_flag_protocol(const char *cmd, const char *flag, const char *value, void *dest);
int in_flag_hw(const char *cmd, const char *flag, const char *value, void *dest);
int in_flag_load_size(const char *cmd, const char *flag, const char *value, void *dest);
int in_flag_size_text(const char *cmd, const char *flag, const char *value, void *dest);
int in_flag_precision(const char *cmd, const char *flag, const char *value, void *dest);

/* Labels of N items: int32 labels, or uint64 bitmask rows of multi-hot labels. */
typedef struct {
    int32_t *labels;
    uint64_t *multi;
    size_t n, words, cols; /* cols: labels per row of multi-hot labels */
} in_labels;

/* Labels for expect_n items from a .npy file: int32 / int64 (N,) class labels, or uint8 / bool
 * (N, L) multi-hot rows of 0 and 1 (packed into bitmasks). 0, or -1 after printing
 * "drsch <cmd>: <path>: <why>" (a count that differs from expect_n, a value that is not 0 or 1,
 * another dtype or shape, out of memory). */
int in_load_labels(const char *cmd, const char *path, size_t expect_n, in_labels *out);

#endif
