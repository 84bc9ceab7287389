/* What search, encode and eval share about their inputs: a check that an input file exists and
 * is a file (made before any work, so that a run does not fail late on a typing error), the one
 * rule for bit-weight files, and the message naming the required flags that are missing. Each
 * prints "drsch <cmd>: ..." to stderr on failure; only the command line uses it. */
#ifndef DRSCH_INPUTS_H
#define DRSCH_INPUTS_H

#include <stddef.h>
#include <stdint.h>

/* An input file given as `flag path`: refuses "" ("the file name is empty"), a path that does
 * not exist ("no such file"), a directory ("is a directory") and one that cannot be read.
 * Returns 0, or -1 after printing "drsch <cmd>: <flag> <path>: <why>". */
int in_check_input(const char *cmd, const char *flag, const char *path);

/* Bit weights from a .npy file, the rule of every command: a 1-D float32 or float64 array of
 * between `need` and `max` entries (one per code bit, the first bits of the code), every entry
 * finite once in float32, the sum of |w| at most FLT_MAX / 2 (weighted distances stay finite).
 * *out (malloc'd float32) and *len on success; returns 0, or -1 after printing why, naming the
 * file. */
int in_load_weights(const char *cmd, const char *path, size_t need, size_t max, float **out,
                    size_t *len);

/* Prints "drsch <cmd>: A is required" or "drsch <cmd>: A, B and C are required" for the n
 * flags given (e.g. "--out PREFIX"), then `tail` when not NULL (e.g. " with --codes"). */
void in_report_missing(const char *cmd, const char *const *flags, int n, const char *tail);

#endif
