/* drsch sweep: stability and accuracy over code lengths and seeds. One model per (length, seed)
 * with drsch train's defaults on the protocol's split of that seed, each evaluated at its own
 * length (xp_sweep_run); writes DIR/sweep.md (every run's outcome, mAP and training time, then
 * the mean and spread per length over the runs that trained) and DIR/sweep.json (one entry per
 * run, Google Benchmark-compatible, for drsch compare). Under mpirun the runs are dealt out to
 * the ranks; rank 0 writes the tables, the serial run's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "cli.h"
#include "cmd_progress.h"
#include "commands.h"
#include "dist.h"
#include "fileio.h"
#include "flags.h"
#include "inputs.h"
#include "report.h"
#include "reproduce.h"
#include "version.h"

#define MAX_SEEDS 64

typedef struct {
    const char *spec, *out, *bits, *seeds, *size;
    xp_protocol proto;
    int64_t iters, threads, replicas;
    int recipe;
    char cmdline[2048], dirbuf[256];
    uint64_t seed_list[MAX_SEEDS];
    int n_seeds;
    xp_repro_config cfg;
} sweep_args;

/* A comma-separated list of at most cap integers in [lo, hi] (increasing when `increasing`) into
 * out; the count, or -1. */
static int parse_list(const char *text, long long lo, long long hi, int increasing, int cap,
                      long long *out)
{
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < lo || v > hi || n == cap || (*end && *end != ',') ||
            (increasing && n && v <= out[n - 1]))
            return -1;
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n ? n : -1;
}

/* The flags: -1 to go on, else the exit status. */
static int parse(int argc, char **argv, sweep_args *a)
{
    memset(a, 0, sizeof *a);
    a->spec = "fashion-mnist";
    a->bits = "8,16,24,32,48,64";
    a->seeds = "1,2,3";
    a->replicas = 1;
    a->proto = XP_PROTO_AUTO;
    rp_command_line("drsch", argc, argv, a->cmdline, sizeof a->cmdline);
    cli_flag t[] = {
        CLI_STRING("dataset", &a->spec, "SPEC",
                   "a retrieval dataset, a spec as drsch data --help lists (default "
                   "fashion-mnist)"),
        CLI_CUSTOM("protocol", &a->proto, in_flag_protocol, "P",
                   "the query / training / database split, one of " XP_PROTOCOL_NAMES
                   " (default auto: paper); each seed draws its own"),
        CLI_CUSTOM("size", &a->size, in_flag_size_text, "HxW",
                   "resize NUS-WIDE images on loading (default 32x32)"),
        CLI_STRING("bits", &a->bits, "LIST", "code lengths, increasing (default 8,16,24,32,48,64)"),
        CLI_STRING("seeds", &a->seeds, "LIST", "seeds, at most 64 (default 1,2,3)"),
        CLI_INT("iters", &a->iters, 1, (double)((int64_t)1 << 40), "N",
                "iterations per model (default: drsch train's, 30000)"),
        CLI_CHOICE("recipe", &a->recipe, "drsch|authors", "R",
                   "the training recipe (drsch train --recipe; default drsch)"),
        CLI_STRING("out", &a->out, "DIR",
                   "output folder: the models, sweep.md and sweep.json (default "
                   "runs/sweep-<dataset>)"),
        CLI_INT("threads", &a->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads (per rank under mpirun), 0 to 1024; 0 = OMP_NUM_THREADS or all "
                "cores"),
        CLI_INT("replicas", &a->replicas, 1, NN_TEAM_MAX, "R",
                "training replicas of every model (drsch train --replicas): the same models at "
                "any --threads; 1 = one network on all threads"),
        CLI_END,
    };
    int rc = cli_flags_parse("sweep", t, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch sweep [--dataset SPEC] [--bits LIST] [--seeds LIST] [--out DIR] "
               "[options]\n\n"
               "Trains one DRSCH model per (code length, seed) with drsch train's defaults, each\n"
               "on the protocol's split drawn with its seed, evaluates each at its own length,\n"
               "and writes DIR/sweep.md (every run's outcome: trained, collapsed or NaN; mAP;\n"
               "training time; then the mean and spread per length) and DIR/sweep.json (drsch\n"
               "compare reads it). Under mpirun (mpirun -n P drsch sweep ...) the runs are dealt\n"
               "out to the ranks and rank 0 writes the same tables. Each run takes about 5\n"
               "minutes at 2 threads on Fashion-MNIST.\n\n");
        cli_flags_help(stdout, t);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    long long v[MAX_SEEDS];
    int n = parse_list(a->bits, 1, HM_MAX_BITS, 1, XP_REPRO_MAX_LENGTHS, v);
    if (n < 0) {
        fprintf(stderr, "drsch sweep: --bits: '%s' must be 1 to %d increasing lengths of 1 to %d\n",
                a->bits, XP_REPRO_MAX_LENGTHS, HM_MAX_BITS);
        return EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        a->cfg.lengths[i] = (uint32_t)v[i];
    a->cfg.n_lengths = n;
    if ((a->n_seeds = parse_list(a->seeds, 0, INT64_MAX, 0, MAX_SEEDS, v)) < 0) {
        fprintf(stderr, "drsch sweep: --seeds: '%s' must be 1 to %d seeds (0 or more)\n", a->seeds,
                MAX_SEEDS);
        return EXIT_USAGE;
    }
    for (int i = 0; i < a->n_seeds; i++)
        a->seed_list[i] = (uint64_t)v[i];
    if (a->out && cli_check_output_dir("sweep", "--out", a->out))
        return EXIT_USAGE;
    return -1;
}

static const char *outcome_name(xp_sweep_outcome o)
{
    return o == XP_SWEEP_TRAINED ? "trained" : o == XP_SWEEP_COLLAPSED ? "collapsed" : "NaN";
}

/* sweep.md and sweep.json, each written atomically. */
static int write_tables(const sweep_args *a, const ds_dataset *d, const xp_sweep_cell *cells,
                        int threads, int ranks, double seconds)
{
    const int nl = a->cfg.n_lengths, ns = a->n_seeds;
    const char *metric = d->label_kind == DS_LABELS_MULTI ? "mAP@5000" : "mAP@all";
    struct utsname un;
    char machine[600] = "unknown", reps[40] = "";
    if (a->cfg.train.replicas > 1)
        snprintf(reps, sizeof reps, " (%d training replicas)", a->cfg.train.replicas);
    if (uname(&un) == 0)
        snprintf(machine, sizeof machine, "%s %s, %d rank%s x %d thread%s%s", un.machine,
                 un.release, ranks, cli_plural(ranks), threads, cli_plural(threads), reps);
    size_t cap = 4096 + (size_t)(nl * ns + nl) * 700;
    char *md = malloc(cap);
    rp_report *rep = rp_create();
    if (!md || !rep) {
        free(md);
        rp_free(rep);
        fprintf(stderr, "drsch sweep: out of memory\n");
        return 1;
    }
    size_t k = 0;
#define MD(...) k += (size_t)snprintf(md + k, k < cap ? cap - k : 0, __VA_ARGS__)
    MD("# drsch sweep: %s\n\nCommand: `%s` (drsch %s, commit %s, ISA %s). Machine: %s. %.0f s in "
       "all.\n\n",
       d->name, a->cmdline, drsch_version(), drsch_git_commit(), hm_isa_name(hm_isa_active()),
       machine, seconds);
    MD("One model per (length, seed), %lld iterations, recipe %s, on the protocol's split drawn "
       "with the seed; %s at the model's own length.\n\n",
       (long long)a->cfg.train.iters, nn_recipe_name(a->cfg.train.recipe), metric);
    MD("| bits | seed | outcome | %s | tie-aware mAP | P@r2 | training (s) |\n", metric);
    MD("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int u = 0; u < nl * ns; u++) {
        const xp_sweep_cell *c = &cells[u];
        if (c->outcome == XP_SWEEP_TRAINED)
            MD("| %u | %llu | trained | %.4f | %.4f | %.4f | %.0f |\n", c->bits,
               (unsigned long long)c->seed, c->map, c->map_ties, c->pr2, c->seconds);
        else
            MD("| %u | %llu | %s | - | - | - | %.0f |\n", c->bits, (unsigned long long)c->seed,
               outcome_name(c->outcome), c->seconds);
        char name[128];
        snprintf(name, sizeof name, "sweep/%s/bits:%u/seed:%llu", d->name, c->bits,
                 (unsigned long long)c->seed);
        rp_entry *e =
            rp_add(rep, name, 1, c->seconds * 1e3, c->seconds * 1e3 * threads, "ms", threads);
        if (c->outcome == XP_SWEEP_TRAINED) {
            rp_counter(e, d->label_kind == DS_LABELS_MULTI ? "mAP_at_5000" : "mAP_all", c->map);
            rp_counter(e, "precision_r2", c->pr2);
        }
        rp_counter(e, "collapsed", c->outcome == XP_SWEEP_COLLAPSED);
        rp_counter(e, "nan", c->outcome == XP_SWEEP_NAN);
        rp_label(e, outcome_name(c->outcome));
    }
    MD("\n| bits | mean %s | sample sd | trained / runs |\n| --- | --- | --- | --- |\n", metric);
    for (int i = 0; i < nl; i++) {
        double s = 0, s2 = 0;
        int n = 0;
        for (int j = 0; j < ns; j++) {
            const xp_sweep_cell *c = &cells[i * ns + j];
            if (c->outcome == XP_SWEEP_TRAINED)
                s += c->map, s2 += c->map * c->map, n++;
        }
        double mean = n ? s / n : 0,
               sd = n > 1 ? sqrt(fmax(0, (s2 - n * mean * mean) / (n - 1))) : 0;
        if (n)
            MD("| %u | %.4f | %.4f | %d / %d |\n", a->cfg.lengths[i], mean, sd, n, ns);
        else
            MD("| %u | - | - | 0 / %d |\n", a->cfg.lengths[i], ns);
    }
    for (int u = 0; u < nl * ns; u++)
        if (cells[u].outcome != XP_SWEEP_TRAINED)
            MD("\n%u bits, seed %llu: %s", cells[u].bits, (unsigned long long)cells[u].seed,
               cells[u].note);
    MD("\n");
#undef MD
    rp_context_set(rep, "benchmark", "drsch sweep: one model per (code length, seed)");
    rp_context_set(rep, "command", a->cmdline);
    rp_context_set(rep, "dataset", d->name);
    rp_context_set_num(rep, "iterations_per_model", (double)a->cfg.train.iters);
    if (a->cfg.train.replicas > 1)
        rp_context_set_num(rep, "train_replicas", (double)a->cfg.train.replicas);
    rp_context_set_num(rep, "ranks", ranks);
    char path[4200];
    drsch_error err;
    int rc = 0;
    snprintf(path, sizeof path, "%s/sweep.md", a->out);
    if (k >= cap || fio_write_file(path, md, k, 1, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch sweep: %s\n", k >= cap ? "the table outgrew its buffer" : err.msg);
        rc = 1;
    }
    snprintf(path, sizeof path, "%s/sweep.json", a->out);
    if (!rc && rp_write(rep, path, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch sweep: %s\n", err.msg);
        rc = 1;
    }
    if (!rc) {
        fputs(md, stdout);
        fprintf(stderr, "drsch sweep: wrote %s/sweep.md and %s/sweep.json in %.0f s\n", a->out,
                a->out, seconds);
    }
    free(md);
    rp_free(rep);
    return rc;
}

/* The sweep on the loaded dataset, in its folder (rank 0 holds the folder's lock). */
static int run(sweep_args *a, const ds_dataset *d, int threads, double t0)
{
    const int ranks = dist_size() > 1, rank0 = dist_rank() == 0;
    if (!a->out) {
        snprintf(a->dirbuf, sizeof a->dirbuf, "runs/sweep-%s", d->name);
        a->out = a->dirbuf;
    }
    if (ranks)
        dist_hold();
    int bad = d->label_kind == DS_LABELS_IDENTITY;
    if (bad)
        fprintf(stderr, "drsch sweep: %s is a re-id dataset; drsch reproduce runs its protocol\n",
                d->name);
    bad = bad || cli_check_output_dir("sweep", "--out", a->out);
    fio_lock lock = {.fd = -1};
    drsch_error le;
    if (!bad && rank0 && fio_lock_take(&lock, a->out, &le) != DRSCH_OK) {
        fprintf(stderr, "drsch sweep: %s\n", le.msg);
        bad = 1;
    }
    if (ranks ? dist_release("sweep", bad) : bad) {
        fio_lock_release(&lock);
        return 1;
    }
    xp_repro_config *c = &a->cfg;
    tr_config_default(&c->train, d); /* drsch train's defaults */
    if (a->iters > 0)
        c->train.iters = a->iters;
    c->train.recipe = (nn_recipe)a->recipe;
    c->train.replicas = (int32_t)a->replicas;
    c->dir = a->out;
    cmd_progress_ctx who = {"sweep", dist_rank()};
    c->progress = cmd_progress;
    c->progress_ctx = &who;
    xp_parallel par = {.rank = dist_rank(),
                       .size = dist_size(),
                       .broadcast = dist_cb_broadcast_root,
                       .max = dist_cb_max};
    if (ranks)
        c->par = &par;
    xp_sweep_cell *cells = calloc((size_t)(c->n_lengths * a->n_seeds), sizeof *cells);
    if (dist_agree_alloc("sweep", ranks, !cells)) {
        free(cells);
        fio_lock_release(&lock);
        return 1;
    }
    drsch_error xe;
    drsch_status st = xp_sweep_run(c, d, a->proto, a->seed_list, a->n_seeds, cells, &xe);
    if (ranks)
        dist_hold();
    if (st != DRSCH_OK && st != DRSCH_ERR_PEER)
        fprintf(stderr, "drsch sweep: %s\n", xe.msg);
    int status = st != DRSCH_OK && st != DRSCH_ERR_PEER;
    if (ranks)
        status = dist_release("sweep", status);
    if (status == 0 && rank0)
        status = write_tables(a, d, cells, threads, dist_size(), cli_now() - t0);
    free(cells);
    fio_lock_release(&lock);
    return status;
}

static int sweep(int argc, char **argv)
{
    sweep_args a;
    const int ranks = dist_size() > 1;
    if (ranks)
        dist_hold();
    int status = parse(argc, argv, &a);
    if (ranks) { /* the same flags on every rank: rank 0 reports their errors */
        int rc = dist_release("sweep", status >= 0 ? status : 0);
        status = status >= 0 ? status : rc ? rc : -1;
    }
    if (status >= 0)
        return status;
    double t0 = cli_now();
    int threads = cli_set_threads((int)a.threads);
    drsch_error he;
    if (hm_isa_init(&he) != DRSCH_OK) {
        fprintf(stderr, "drsch sweep: %s\n", he.msg);
        return 1;
    }
    if (dist_rank() == 0)
        fprintf(stderr, "drsch sweep: loading %s%s\n", a.spec, ranks ? " (on every rank)" : "");
    ds_dataset *d = NULL;
    int xc = 0;
    if (ranks)
        dist_hold();
    int failed = in_load_dataset("sweep", a.spec, a.size, &d, &xc);
    if ((ranks ? dist_release("sweep", failed ? xc : 0) : failed ? xc : 0) != 0) {
        ds_dataset_free(d);
        return failed ? xc : 1;
    }
    status = run(&a, d, threads, t0);
    ds_dataset_free(d);
    return status;
}

int cmd_sweep(int argc, char **argv) { return dist_main("sweep", sweep, argc, argv); }
