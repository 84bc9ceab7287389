/* What the two reproduce experiments (xp_retrieval.c, xp_reid.c) share: not a public header. */
#ifndef DRSCH_XP_REPRO_INTERNAL_H
#define DRSCH_XP_REPRO_INTERNAL_H

#include "reproduce.h"

/* Monotonic seconds. */
double xp_now(void);
/* Sends one line of text to the config's progress callback (nothing without one). */
void xp_note(const xp_repro_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Trains a model of `bits` bits with recipe `recipe` on sp's training images into path
 * (progress as training steps of tag; *seconds its training time), drops its training state
 * (MODEL.state, of no use once the model is trained) and encodes sp's queries and database with
 * it into *codes (bits in the model's saved order, weights |w|^weight_power); unless by_weight is
 * NULL, the same codes with the bits in order by |w| (the authors' order) into *by_weight. */
drsch_status xp_repro_model(const xp_repro_config *c, const ds_dataset *d, const ds_split *sp,
                            uint32_t bits, nn_recipe recipe, int weight_power, const char *path,
                            const char *tag, double *seconds, xp_codes *codes, xp_codes *by_weight,
                            drsch_error *err);

#endif
