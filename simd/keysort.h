/* Stable sort of distances by value: the order of top-k lists (knn.c) and of the evaluation's
 * weighted rankings (harness/metrics.c). Libc only. Not part of the installed headers. */
#ifndef DRSCH_KEYSORT_H
#define DRSCH_KEYSORT_H

#include <stddef.h>
#include <stdint.h>

/* A distance and the position it came from. */
typedef struct {
    float d;
    uint32_t idx;
} hm_keyed;

/* Sorts a[0..n) by d, keeping the order of equal distances (-0 equals +0; no NaN): a stable LSD
 * radix sort on the distance's bytes, tmp holding n more entries, skipping a byte every key
 * shares. So a list in idx order on entry ends in (d, idx) order. Linear time: a query's 59,000
 * weighted distances sort in a fraction of qsort's time, which dominated weighted evaluation,
 * and a top-k list's final sort no longer waits on a merge sort's dependent compares. */
void hm_sort_keyed(hm_keyed *a, hm_keyed *tmp, size_t n);

#endif
