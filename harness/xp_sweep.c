/* Sweeps over code lengths and seeds (reproduce.h: xp_sweep_run): one DRSCH model per (length,
 * seed), each on its seed's split, evaluated at its own length; collapses and NaNs recorded as
 * outcomes. Distributed, a run is a unit of work (xp_parallel), dealt out as the reproduce
 * experiments deal theirs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xp_repro_internal.h"

/* Run u of the sweep into *cell: its split, training, encoding and evaluation. */
static drsch_status sweep_unit(const xp_repro_config *c, const ds_dataset *d, xp_protocol protocol,
                               uint32_t bits, uint64_t seed, xp_sweep_cell *cell, drsch_error *err)
{
    memset(cell, 0, sizeof *cell);
    cell->bits = bits;
    cell->seed = seed;
    ds_split sp = {0};
    drsch_status st = xp_make_split(d, protocol, seed, 0, NULL, &sp, err);
    if (st != DRSCH_OK)
        return st;
    xp_repro_config rc = *c;
    rc.train.seed = seed;
    char path[4200], tag[64];
    snprintf(path, sizeof path, "%s/model-%u-s%llu.bin", c->dir, bits, (unsigned long long)seed);
    snprintf(tag, sizeof tag, "%u bits, seed %llu", bits, (unsigned long long)seed);
    xp_note(c, "training %s (%lld iterations) -> %s", tag, (long long)c->train.iters, path);
    xp_codes codes;
    drsch_error te;
    st = xp_repro_model(&rc, d, &sp, bits, c->train.recipe, xp_repro_weight_power(c), path, tag,
                        &cell->seconds, &codes, NULL, &te);
    if (st == DRSCH_ERR_COLLAPSE || st == DRSCH_ERR_NUMERIC) { /* an outcome: the sweep goes on */
        cell->outcome = st == DRSCH_ERR_COLLAPSE ? XP_SWEEP_COLLAPSED : XP_SWEEP_NAN;
        snprintf(cell->note, sizeof cell->note, "%.500s", te.msg);
        xp_note(c, "%s: %s", tag, te.msg);
        ds_split_free(&sp);
        return DRSCH_OK;
    }
    if (st != DRSCH_OK) {
        *err = te;
        ds_split_free(&sp);
        return st;
    }
    const int multi = d->label_kind == DS_LABELS_MULTI;
    ev_options opt = {.topk = multi ? 5000 : 0, .radius = 2};
    ev_retrieval r;
    st = xp_eval_retrieval(d, &sp, &codes.query, &codes.db, bits, NULL, &opt, &r, err);
    if (st == DRSCH_OK) {
        cell->map = multi ? r.map_at_k : r.map_all;
        cell->map_ties = multi ? 0 : r.map_tie_aware;
        cell->pr2 = r.precision_radius;
        cell->queries = r.queries;
        cell->no_relevant = r.queries_without_relevant;
        xp_note(c, "%s: %s %.4f", tag, multi ? "mAP@5000" : "mAP@all", cell->map);
        ev_retrieval_free(&r);
    }
    xp_codes_free(&codes);
    ds_split_free(&sp);
    return st;
}

drsch_status xp_sweep_run(const xp_repro_config *c, const ds_dataset *d, xp_protocol protocol,
                          const uint64_t *seeds, int n_seeds, xp_sweep_cell *cells,
                          drsch_error *err)
{
    const int n = c->n_lengths * n_seeds;
    if (c->n_lengths < 1 || n_seeds < 1)
        return drsch_fail(err, DRSCH_ERR_ARG, "a sweep needs a length and a seed");
    const xp_parallel *par = c->par && c->par->size > 1 ? c->par : NULL;
    const int P = par ? par->size : 1, rank = par ? par->rank : 0;
    drsch_status st = DRSCH_OK;
    for (int first = 0; first < n; first += P) { /* rounds of one run per rank */
        int u = first + rank;
        if (st == DRSCH_OK && u < n)
            st = sweep_unit(c, d, protocol, c->lengths[u / n_seeds], seeds[u % n_seeds], &cells[u],
                            err);
        if (par && par->max(par->ctx, st != DRSCH_OK) && st == DRSCH_OK)
            st = drsch_fail(err, DRSCH_ERR_PEER, "another rank failed");
        if (st != DRSCH_OK)
            return st;
    }
    for (int u = 0; par && u < n; u++)
        par->broadcast(par->ctx, &cells[u], sizeof cells[u], u % P);
    return DRSCH_OK;
}
