/* Protocol names and splits shared by data info, bench data, train, encode, eval and
 * reproduce. */
#include "experiment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xp_protocol_parse(const char *cmd, const char *s, xp_protocol *out)
{
    static const char *const names[] = {"auto", "paper", "paper-db-train", "full", "classic", "new", "none"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) {
            *out = (xp_protocol)i;
            return 0;
        }
    fprintf(stderr, "drsch %s: --protocol: '%s' is not one of " XP_PROTOCOL_NAMES "\n", cmd, s);
    return -1;
}

ds_status xp_make_split(const ds_dataset *d, xp_protocol p, uint64_t seed, int testset, const char *config,
                        ds_split *sp, ds_error *err)
{
    ds_paper_opts po;
    ds_paper_opts_default(&po);
    if (p == XP_PROTO_AUTO) {
        if (d->kind == DS_KIND_CUHK03)
            p = XP_PROTO_CLASSIC;
        else if (d->label_kind == DS_LABELS_MULTI)
            return ds_split_multilabel(d, &po, seed, sp, err);
        else
            p = XP_PROTO_PAPER;
    }
    switch (p) {
    case XP_PROTO_PAPER_DB_TRAIN:
        po.db_includes_train = 1;
        return ds_split_paper(d, &po, seed, sp, err);
    case XP_PROTO_FULL:
        return ds_split_full(d, sp, err);
    case XP_PROTO_NEW:
        if (!config) {
            memset(sp, 0, sizeof *sp);
            snprintf(err->msg, sizeof err->msg, "the new protocol needs --config cuhk03_new_protocol_config_*.mat");
            err->status = DS_ERR_ARG;
            return DS_ERR_ARG;
        }
        return ds_split_cuhk03_new(d, config, sp, err);
    case XP_PROTO_CLASSIC: {
        ds_cuhk03_opts co = {.testset = testset, .single_shot = 1};
        return ds_split_cuhk03_classic(d, &co, seed, sp, err);
    }
    case XP_PROTO_NONE:
        memset(sp, 0, sizeof *sp);
        snprintf(err->msg, sizeof err->msg, "no protocol selected");
        err->status = DS_ERR_ARG;
        return DS_ERR_ARG;
    default:
        return d->label_kind == DS_LABELS_MULTI ? ds_split_multilabel(d, &po, seed, sp, err)
                                                : ds_split_paper(d, &po, seed, sp, err);
    }
}

int xp_parse_size(const char *cmd, const char *s, int *h, int *w)
{
    char *end = NULL;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        goto bad;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end != '\0' || a < 1 || b < 1 || a > 4096 || b > 4096)
        goto bad;
    *h = (int)a;
    *w = (int)b;
    return 0;
bad:
    fprintf(stderr, "drsch %s: --size/--crop: '%s' is not HxW with 1 <= H, W <= 4096\n", cmd, s);
    return -1;
}
