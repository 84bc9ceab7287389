/* What the writers of drsch reproduce's files (report_write.c, report_plot.c) share: a growing
 * text written whole, and the columns of the tables. Not a public header. */
#ifndef DRSCH_REPORT_TEXT_H
#define DRSCH_REPORT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "reproduce.h"

/* A growing string; failed: an allocation failed, the text is incomplete (never written). */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

/* Appends to b as printf; on failure sets b->failed. */
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the text of b to DIR/NAME whole (fileio.h); a text cut short is not written. Frees b. */
drsch_status sb_write(sbuf *b, const char *dir, const char *name, drsch_error *err);

/* The columns of the tables into cols: the lengths, then long_bits; returns their number. */
int rp_repro_columns(const xp_repro_config *c, uint32_t *cols);

/* The y range of the mAP-vs-bits plot: the values' minimum and maximum (the rows' columns that
 * have figures) widened by 10% of their span on each side (0.05 when they are all equal), rounded
 * out to multiples of 0.05, within [0, 1]; [0, 1] when there are no figures. */
void rp_map_yrange(const xp_retrieval_result *res, int ncols, double *lo, double *hi);

#endif
