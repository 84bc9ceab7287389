/* Test fixture: writes a CUHK03 cuhk-03.mat in MATLAB v7.3 layout (HDF5) with the HDF5 C API,
 * the way MATLAB stores it: 'labeled' and 'detected' are 1 x P cells of references to 10 x N
 * cells (HDF5 shape; MATLAB N x 10) of image references; an image is uint8 H x W x 3 in MATLAB,
 * 3 x W x H in HDF5; an empty slot is either a 2-element uint64 dataset (even pairs) or a
 * 0 x 0 double (odd pairs), the two forms MATLAB writes; 'testsets' is a 1 x T cell of R x 2
 * doubles [pair, person] (HDF5 2 x R). Shared by the datasets and reproduce suites; it does not
 * depend on Criterion and reports failure with a message instead of asserting. */
#ifndef DRSCH_TEST_FIXTURE_CUHK03_H
#define DRSCH_TEST_FIXTURE_CUHK03_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int pairs;          /* camera pairs (the real file has 5) */
    const int *persons; /* persons per pair [pairs] */
    int h, w;           /* stored image size */
    int with_labeled;   /* 1: write 'labeled' and 'detected'; 0: 'detected' only */
    int n_testsets;     /* 0: no 'testsets' dataset */
    int testset_rows;
    const int *testsets; /* n_testsets x testset_rows x 2: (pair, person), 1-based */
    /* Slot s (0-4 first camera, 5-9 second) of person q (1-based) in pair p (1-based) is empty. */
    int (*empty)(int p, int q, int s, void *ctx);
    /* Fills px (3 x w x h, HDF5 order: channel, column, row) for a non-empty slot. */
    void (*pixels)(int p, int q, int s, uint8_t *px, int h, int w, void *ctx);
    void *ctx;
} fx_cuhk03;

/* Writes the file; returns 0, or -1 with a message in msg. */
int fx_cuhk03_write(const char *path, const fx_cuhk03 *spec, char *msg, size_t cap);

/* A small file of FX_PAIRS pairs of 6 persons, FX_H x FX_W images: three horizontal bands (head,
 * torso, legs) coloured by identity; person 1 of every pair misses slots 4 and 9, person 6 of
 * pair 5 has no second-camera image; with_testsets: three testsets of 6 (pair, person) rows, the
 * third holding (5, 6). Returns 0, or -1 with a message in msg. */
#define FX_PAIRS 5
#define FX_H 48
#define FX_W 16
int fx_cuhk03_write_small(const char *path, int with_testsets, char *msg, size_t cap);

#endif
