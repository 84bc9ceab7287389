/* Internal: a minimal MATLAB v5 MAT-file reader (see matv5.c for what it covers). */
#ifndef DRSCH_MATV5_H
#define DRSCH_MATV5_H

#include "datasets_internal.h"

typedef struct {
    char name[64];
    int cls;        /* MATLAB class (mxCELL 1, mxCHAR 4, mxDOUBLE 6, ...) */
    int64_t count;  /* number of elements (product of the dimensions) */
    double *values; /* numeric arrays: count values in column-major order */
    char **strings; /* cell arrays of char: count strings */
} mat_var;

/* Reads the top-level variable `name` of a v5 MAT-file. */
drsch_status mat_read_var(const char *path, const char *name, mat_var *out, drsch_error *err);
void mat_var_free(mat_var *v);

#endif
