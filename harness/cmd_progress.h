/* The progress lines of the experiment commands (drsch reproduce, drsch sweep): part of the
 * command line, not of the library. */
#ifndef DRSCH_CMD_PROGRESS_H
#define DRSCH_CMD_PROGRESS_H

#include "reproduce.h"

/* Who prints: the command's name ("reproduce") and, under mpirun, the rank (0 otherwise). */
typedef struct {
    const char *cmd;
    int rank;
} cmd_progress_ctx;

/* An xp_progress_fn (ctx: a cmd_progress_ctx): notes as "drsch <cmd>: [rank R: ]text", training
 * steps as "  [[rank R: ]tag] iter ..." on stderr; rank 0 is not named. */
void cmd_progress(const xp_event *e, void *ctx);

#endif
