/* The progress lines of drsch reproduce and drsch sweep (cmd_progress.h). */
#include "cmd_progress.h"

#include <stdio.h>

void cmd_progress(const xp_event *e, void *ctx)
{
    const cmd_progress_ctx *c = ctx;
    char who[32] = "";
    if (c->rank)
        snprintf(who, sizeof who, "rank %d: ", c->rank);
    if (e->kind == XP_EVENT_NOTE) {
        fprintf(stderr, "drsch %s: %s%s\n", c->cmd, who, e->text);
        return;
    }
    const tr_progress *p = e->train;
    int eta = (int)(p->eta_seconds + 0.5);
    if (p->objective == TR_OBJECTIVE_SOFTMAX) /* the classifier: no triplets, an accuracy */
        fprintf(stderr,
                "  [%s%s] iter %lld/%lld  loss softmax %.4f  accuracy %.1f%%  %.0f img/s  ETA "
                "%dm%02ds\n",
                who, e->tag, (long long)p->iter, (long long)p->iters, p->loss, 100 * p->accuracy,
                p->images_per_second, eta / 60, eta % 60);
    else
        fprintf(stderr,
                "  [%s%s] iter %lld/%lld  loss %.4f  active %.1f%%  distinct %.0f%%  %.0f img/s  "
                "ETA %dm%02ds\n",
                who, e->tag, (long long)p->iter, (long long)p->iters, p->loss,
                100 * p->active_share, 100 * p->distinct_share, p->images_per_second, eta / 60,
                eta % 60);
}
