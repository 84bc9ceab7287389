/* What the two reproduce experiments (xp_retrieval.c, xp_reid.c) share: not a public header. */
#ifndef DRSCH_XP_REPRO_INTERNAL_H
#define DRSCH_XP_REPRO_INTERNAL_H

#include "reproduce.h"

/* Monotonic seconds. */
double xp_now(void);
/* Sends one line of text to the config's progress callback (nothing without one). */
void xp_note(const xp_repro_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Trains a model of `bits` bits on sp's training images into path (progress as training steps
 * of tag; *seconds its training time), drops its training state (MODEL.state, of no use once the
 * model is trained) and encodes sp's queries and database with it into *codes. */
drsch_status xp_repro_model(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                            uint32_t bits, const char *path, const char *tag, double *seconds,
                            xp_codes *codes, drsch_error *err);

#endif
