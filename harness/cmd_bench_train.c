/* drsch bench train / drsch bench encode: speed of the core/ network on random inputs.
 *
 * train:  one step = forward, the DRSCH objective on the outputs (in-batch triplets with the
 *         growing margin + label-graph Laplacian, dh_loss; batches of 10 classes), backward,
 *         SGD update. Images/s = batch / step.
 * encode: nn_encode of N images to packed codes, as drsch encode does (with --real the hash
 *         outputs u too, which takes the hash layer's tanh), replicas run batches in parallel,
 *         in f32 or (--precision bf16) bf16. Images/s = N / call.
 * Both report GFLOP/s (multiply-add = 2 flops, convolutions and inner products only) and the
 * fraction of the f32 peak: the multiply-add throughput of an FMA loop at this CPU's widest
 * vector width with the same threads (machine.h; bf16 runs are measured against the same f32
 * peak), measured before each timed repetition and after the last, each repetition against the
 * higher of the two measured around it (measure_peak, peak_around); or with --ghz F the formula
 * threads x F x 2 FMA units x 16 lanes x 2 flops. Timing: --warmup untimed runs, then --repetitions
 * repetitions of --iters runs; the best repetition is reported (the machine is shared), the mean is
 * a counter too. For the regression gate: --no-limits skips the peak, --plant-slowdown stretches
 * every timed repetition. train --passes: where a step's time goes, each layer's forward and
 * backward pass, the loss, the SGD step and the parameter copies (nn_pass_times), their means over
 * every timed step, with each pass's GFLOP/s and share of the peak; printed after the headline and
 * written as counters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "dh.h"
#include "flags.h"
#include "inputs.h"
#include "machine.h"
#include "nn.h"
#include "report.h"

typedef struct {
    const char *arch, *json;
    int64_t batch, bits, threads, iters, warmup, repetitions, seed, images, replicas;
    double ghz, plant; /* plant: --plant-slowdown, 1 when not given */
    double momentum;   /* train only: the SGD step's */
    int no_limits, real, passes;
    nn_precision precision; /* encode only; training is f32 */
    char impl[64];          /* oneDNN implementation of the first layer (encode) */
    char layers[512];       /* every layer's implementation (nn_layer_impl), "-" for none */
} bench_opts;

/* o->layers: the implementations of layers 0 .. n-1 as impl_of gives them, comma-separated. */
static void note_layers(bench_opts *o, int n, const char *(*impl_of)(const void *, int32_t),
                        const void *obj)
{
    size_t len = 0;
    o->layers[0] = 0;
    for (int i = 0; i < n && len < sizeof o->layers; i++) {
        const char *s = impl_of(obj, i);
        len += (size_t)snprintf(o->layers + len, sizeof o->layers - len, "%s%s", i ? "," : "",
                                s[0] ? s : "-");
    }
}
static const char *net_layer_impl(const void *net, int32_t i) { return nn_layer_impl(net, i); }
static const char *encoder_layer_impl(const void *enc, int32_t i)
{
    return nn_encoder_layer_impl(enc, i);
}

/* bench train --passes: the net's pass times over the timed steps, the loss's, and what each
 * layer is (kept before the net is freed). */
typedef struct {
    nn_pass_times t;
    double loss_s, steps_s; /* seconds over the timed steps: the loss's, the steps' */
    int64_t steps;
    int n_layers;
    char what[NN_MAX_LAYERS][64]; /* "conv 5x5/2 32, drsch:stem" */
} passes;

typedef struct {
    mc_counters *hw;         /* opened before the first parallel region */
    mc_counts counts;        /* over the timed runs */
    double runs;             /* timed runs */
    passes *passes;          /* train --passes, else NULL */
    double *rep_s, *rep_cpu; /* each timed repetition's wall and CPU seconds per run */
    double *peak;            /* measure_peak's, --repetitions + 1 of them (0: none) */
    int peak_failed;         /* the FMA loop could not be measured (how says why) */
    char how[200];           /* the peak's source, one line */
} timing;

/* The f32 peak (GFLOP/s) an FMA loop of machine.h runs at with the run's threads, measured for
 * PEAK_SECONDS before each timed repetition and once after the last (t->peak[rep], rep =
 * --repetitions for the last), so that finish() puts each repetition against the peaks measured
 * on either side of it: on a shared machine the clock moves from one second to the next (on a
 * 2-core Zen 5 VM the loop measured 413-461 GFLOP/s over six runs of ci/bench-vs-pytorch in a
 * row), and one measurement after all the repetitions had compared a repetition with a peak
 * measured up to a second later. With --ghz the formula threads x F x 2 FMA units x 16 lanes x 2
 * flops (a machine-independent reference), the same for every repetition; with --no-limits none
 * (0). t->how: one line saying which. */
#define PEAK_SECONDS 0.15
static void measure_peak(const bench_opts *o, int threads, timing *t, int64_t rep)
{
    t->peak[rep] = 0;
    if (o->no_limits) {
        snprintf(t->how, sizeof t->how, "not measured (--no-limits)");
        return;
    }
    if (o->ghz > 0) {
        snprintf(t->how, sizeof t->how,
                 "formula: %d thread%s x %.3f GHz (--ghz) x 2 FMA x 16 lanes x 2 flops", threads,
                 cli_plural(threads), o->ghz);
        t->peak[rep] = threads * o->ghz * 2 * 16 * 2;
        return;
    }
    if (t->peak_failed)
        return;
    mc_peak pk;
    drsch_error err;
    if (mc_fma_peak(threads, PEAK_SECONDS, &pk, &err) != DRSCH_OK) {
        snprintf(t->how, sizeof t->how, "unavailable: %.150s", err.msg);
        t->peak_failed = 1;
        return;
    }
    t->peak[rep] = pk.gflops;
    snprintf(t->how, sizeof t->how,
             "measured in this run: an FMA loop before and after each repetition, %d thread%s, %s "
             "(%d f32 lanes)",
             pk.threads, cli_plural(pk.threads), pk.isa, pk.lanes);
}

/* The end of timed repetition rep, dt and dc seconds of wall and CPU time a run: its hardware
 * counters added to the run's (the FMA loops of measure_peak between the repetitions are not
 * counted), its times kept. */
static void note_repetition(timing *t, int64_t rep, double dt, double dc)
{
    mc_counts c;
    mc_counters_stop(t->hw, &c);
    for (int i = 0; i < MC_NCOUNTERS; i++) {
        t->counts.have[i] = c.have[i];
        t->counts.value[i] += c.value[i];
    }
    t->rep_s[rep] = dt;
    t->rep_cpu[rep] = dc;
}

/* bench train --precision: refused, whatever the value. */
static int refuse_precision(const char *cmd, const char *flag, const char *value, void *dest)
{
    (void)value, (void)dest;
    fprintf(stderr, "drsch %s: %s is an option of bench encode; training runs in f32\n", cmd, flag);
    return -1;
}

#define MAX_FLAGS 17
#define STR_(x) #x
#define STR(x) STR_(x) /* a number in a help text */

/* The flags of bench train or (enc) bench encode into o, in `flags` (MAX_FLAGS rows at most). */
static void make_flags(int enc, bench_opts *o, cli_flag *flags)
{
    const cli_flag head[] = {
        CLI_STRING("arch", &o->arch, "NAME", "network: drsch-mnist, drsch-cifar, drsch-reid"),
        CLI_INT("batch", &o->batch, 1, 65536, "N",
                enc ? "images per forward pass, 1 to 65536"
                    : "images per training step, 1 to "
                      "65536"),
        CLI_INT("bits", &o->bits, 1, HM_MAX_BITS, "B", "code length, 1 to " STR(HM_MAX_BITS)),
        CLI_INT("threads", &o->threads, 0, CLI_THREADS_MAX, "T",
                "OpenMP threads, 0 to 1024; 0 = OMP_NUM_THREADS or all cores"),
    };
    const cli_flag encode[] = {
        CLI_INT("images", &o->images, 1, 100000000, "N", "images encoded per timed run"),
        CLI_INT("replicas", &o->replicas, 0, 1024, "R",
                "copies of the network encoding batches in parallel; 0 = one per thread"),
        CLI_CUSTOM("precision", &o->precision, in_flag_precision, "P",
                   "f32 | bf16: arithmetic of the forward pass (default f32)"),
        CLI_SWITCH("real", &o->real, 1,
                   "also return the hash outputs u (the library's nn_encode with real outputs; "
                   "their tanh is about 1% of the time) (default: codes alone, as drsch encode)"),
        CLI_INT("iters", &o->iters, 1, 1000000, "N", "timed runs per repetition"),
        CLI_INT("warmup", &o->warmup, 0, 1000000, "N", "untimed runs before the first repetition"),
    };
    const cli_flag train[] = {
        CLI_INT("replicas", &o->replicas, 1, NN_TEAM_MAX, "R",
                "copies of the network sharing each batch, each forwarding and back-propagating "
                "its rows on its own thread (as drsch train --replicas); 1 = one network on "
                "all threads"),
        CLI_INT("iters", &o->iters, 1, 1000000, "N", "timed steps per repetition"),
        CLI_INT("warmup", &o->warmup, 0, 1000000, "N", "untimed steps before the first repetition"),
        CLI_CUSTOM("precision", &o->precision, refuse_precision, "P",
                   "refused: an option of bench encode, training runs in f32 (default f32)"),
        CLI_FLOAT("momentum", &o->momentum, 0, 0.999999, "F",
                  "SGD momentum, 0 to 0.999999; drsch train's default is 0.9, the paper's and the "
                  "library's 0 (nn_sgd_defaults), which the baselines in results/ were measured "
                  "with"),
        CLI_SWITCH("passes", &o->passes, 1,
                   "also time each layer's forward and backward pass, the loss, the SGD step and "
                   "the parameter copies: their means over the timed steps, with GFLOP/s and the "
                   "share of the peak (with --replicas, the lead replica's passes against its "
                   "share of the peak); the timers add a clock read and a wait a layer, under 1% "
                   "of a drsch-mnist step (default: off)"),
    };
    const cli_flag tail[] = {
        CLI_INT("repetitions", &o->repetitions, 1, 1000, "R",
                "timed repetitions, 1 to 1000; the best is reported"),
        CLI_INT("seed", &o->seed, 0, INT64_MAX, "S",
                "seed of the network's initial weights and the images"),
        CLI_FLOAT("ghz", &o->ghz, 0.1, 10.0, "F",
                  "compare with the formula peak threads x F GHz x 2 FMA x 16 lanes x 2 flops, "
                  "0.1 to 10 (default: the peak of an FMA loop measured in the same run)"),
        CLI_SWITCH("no-limits", &o->no_limits, 1,
                   "do not measure the f32 peak (about 0.2 s before each repetition and after "
                   "the last); the report has no "
                   "share of the peak. For many short runs, such as the regression gate's "
                   "(default: measured)"),
        CLI_FLOAT("plant-slowdown", &o->plant, 1, 10, "F",
                  "for testing the regression gate only: each timed repetition is followed, "
                  "inside its timing, by a busy wait of F - 1 times its duration, so that the "
                  "times are F times the real ones (recorded in the report's context as "
                  "planted_slowdown)"),
        CLI_STRING("json", &o->json, "FILE",
                   "also write a Google Benchmark-compatible report (default: none)"),
        CLI_END,
    };
    _Static_assert(sizeof head + sizeof encode + sizeof tail <= MAX_FLAGS * sizeof(cli_flag),
                   "MAX_FLAGS");
    _Static_assert(sizeof head + sizeof train + sizeof tail <= MAX_FLAGS * sizeof(cli_flag),
                   "MAX_FLAGS");
    memcpy(flags, head, sizeof head);
    flags += sizeof head / sizeof *head;
    memcpy(flags, enc ? encode : train, enc ? sizeof encode : sizeof train);
    flags += enc ? sizeof encode / sizeof *encode : sizeof train / sizeof *train;
    memcpy(flags, tail, sizeof tail);
}

/* Parses and checks the flags of bench `cmd`; returns -1 to go on, else the exit status (0 after
 * the help). */
static int parse(int argc, char **argv, const char *cmd, bench_opts *o)
{
    int enc = !strcmp(cmd, "encode");
    *o = (bench_opts){.arch = "drsch-mnist",
                      .batch = 100,
                      .bits = 48,
                      .iters = enc ? 3 : 50,
                      .warmup = enc ? 1 : 5,
                      .repetitions = 3,
                      .seed = 1,
                      .images = 20000,
                      .replicas = enc ? 0 : 1,
                      .plant = 1,
                      .precision = NN_PRECISION_F32};
    cli_flag flags[MAX_FLAGS];
    make_flags(enc, o, flags);
    char name[32];
    snprintf(name, sizeof name, "bench %s", cmd);
    int rc = cli_flags_parse(name, flags, argc, argv, NULL);
    if (rc == CLI_FLAGS_HELP) {
        printf("usage: drsch bench %s [options] [--json FILE]\n\n%s\n"
               "Prints images/s, GFLOP/s and the share of the f32 peak, measured in the same run\n"
               "with the same threads (an FMA loop at the CPU's widest vectors) before each\n"
               "repetition and after the last. The best of --repetitions is reported, against\n"
               "the peak measured around it.\n"
               "\n",
               cmd,
               enc ? "Encoding speed: random images -> network -> packed codes (--real: and the\n"
                     "hash outputs)."
                   : "Training speed: forward pass, DRSCH loss (triplet + Laplacian), backward\n"
                     "pass and SGD update on random images.");
        cli_flags_help(stdout, flags);
        return 0;
    }
    if (rc)
        return EXIT_USAGE;
    if (o->json && cli_check_output_file(name, "--json", o->json))
        return EXIT_USAGE;
    return -1;
}

static float *random_images(size_t n, size_t size, uint64_t seed)
{
    float *x = malloc(n * size * sizeof(float));
    if (!x)
        return NULL;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 12345;
    for (size_t i = 0; i < n * size; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(s >> 40) * (1.0f / 16777216.0f);
    }
    return x;
}

/* What layer i of net is, for the passes table: its kind, shape and implementation. */
static void describe_layer(const nn_net *net, int i, char *buf, size_t cap)
{
    const nn_layer_spec *sp = &nn_net_config(net)->arch.layers[i];
    const char *impl = nn_layer_impl(net, i);
    impl = impl[0] ? impl : "-"; /* every layer records one; "-" would show one that does not */
    switch (sp->kind) {
    case NN_LAYER_CONV:
        snprintf(buf, cap, "conv %dx%d/%d %d, %s", sp->kernel, sp->kernel, sp->stride, sp->out,
                 impl);
        break;
    case NN_LAYER_POOL_MAX:
    case NN_LAYER_POOL_AVG:
        snprintf(buf, cap, "%s pool %dx%d/%d, %s", sp->kind == NN_LAYER_POOL_MAX ? "max" : "avg",
                 sp->kernel, sp->kernel, sp->stride, impl);
        break;
    case NN_LAYER_FC:
        snprintf(buf, cap, "fc %d, %s", sp->out ? sp->out : nn_output_dim(net), impl);
        break;
    case NN_LAYER_HASH: snprintf(buf, cap, "hash, %s", impl); break;
    case NN_LAYER_BITW: snprintf(buf, cap, "bit weights, %s", impl); break;
    }
}

/* One pass of the table appended to line (cap bytes): ms a step, and GFLOP/s and the share of
 * the peak when it computes. */
static void pass_cell(char *line, size_t cap, double seconds, double flops, double peak)
{
    size_t len = strlen(line);
    len += (size_t)snprintf(line + len, cap - len, "  %8.3f ms", 1e3 * seconds);
    const double gf = flops > 0 && seconds > 0 ? flops / seconds * 1e-9 : 0;
    if (len < cap && gf > 0)
        len += (size_t)snprintf(line + len, cap - len, " %7.1f GFLOP/s", gf);
    else if (len < cap)
        len += (size_t)snprintf(line + len, cap - len, "%15s", "");
    if (len < cap && gf > 0 && peak > 0)
        snprintf(line + len, cap - len, " %5.1f%%", 100 * gf / peak);
    else if (len < cap)
        snprintf(line + len, cap - len, "%7s", "");
}

/* The passes table after the headline, or its counters in e (and what each layer is in r's
 * context, "pass_layers") when e is given. */
static void report_passes(const passes *p, double peak, rp_report *r, rp_entry *e)
{
    if (e) {
        char what[NN_MAX_LAYERS * 64 + NN_MAX_LAYERS * 2] = "";
        for (int i = 0; i < p->n_layers; i++)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? "; " : "",
                     p->what[i]);
        rp_context_set(r, "pass_layers", what);
    }
    const double n = (double)(p->steps > 0 ? p->steps : 1);
    const nn_pass_times *t = &p->t;
    if (!e) {
        printf("passes: means over %lld timed steps (ms a step; GFLOP/s and share of the peak "
               "where they compute)\n",
               (long long)p->steps);
        printf("  %-41s %-34s %s\n", "layer", "   forward", "   backward");
    }
    double sum = 0;
    char key[48];
    for (int i = 0; i < p->n_layers; i++) {
        const double f = t->forward_s[i] / n, b = t->backward_s[i] / n;
        sum += f + b;
        if (e) {
            snprintf(key, sizeof key, "pass_forward_ms_%d", i);
            rp_counter(e, key, 1e3 * f);
            snprintf(key, sizeof key, "pass_backward_ms_%d", i);
            rp_counter(e, key, 1e3 * b);
            continue;
        }
        char line[200];
        snprintf(line, sizeof line, "  %2d %-38s", i, p->what[i]);
        pass_cell(line, sizeof line, f, t->forward_flops[i], peak);
        pass_cell(line, sizeof line, b, t->backward_flops[i], peak);
        size_t len = strlen(line);
        while (len > 0 && line[len - 1] == ' ')
            line[--len] = 0;
        printf("%s\n", line);
    }
    const double loss = p->loss_s / n, sgd = t->sgd_s / n, copies = t->refresh_s / n,
                 step = p->steps_s / n;
    sum += loss + sgd + copies;
    if (e) {
        rp_counter(e, "pass_loss_ms", 1e3 * loss);
        rp_counter(e, "pass_sgd_ms", 1e3 * sgd);
        rp_counter(e, "pass_copies_ms", 1e3 * copies);
        rp_counter(e, "pass_step_ms", 1e3 * step);
        return;
    }
    printf("  %-41s  %8.3f ms\n", "loss and its gradient (DRSCH objective)", 1e3 * loss);
    printf("  %-41s  %8.3f ms\n", "SGD step", 1e3 * sgd);
    printf("  %-41s  %8.3f ms\n", "parameter copies after the update", 1e3 * copies);
    printf("  passes %.3f ms of a %.3f ms step (mean); the rest %.3f ms\n", 1e3 * sum, 1e3 * step,
           1e3 * (step - sum));
}

/* The peak repetition rep is put against: the higher of the two measured before and after it.
 * Not their mean: whatever else runs on the machine can only slow the FMA loop down, and a loop
 * slowed so had put a repetition of encoding at 101% of the mean (six runs of ci/bench-vs-pytorch
 * on a 2-core Zen 5 VM, 36 benchmarks of 4 measurements each: one measured 306 GFLOP/s once,
 * where every other benchmark's lowest was 399 or more). */
static double peak_around(const timing *t, int64_t rep)
{
    return t->peak[rep] > t->peak[rep + 1] ? t->peak[rep] : t->peak[rep + 1];
}

/* The peaks measure_peak took (t->peak[0 .. reps]) as finish reports them, GFLOP/s: around,
 * peak_around the best repetition (best_rep); mean, the mean of every repetition's peak_around (the
 * --passes times are means over every timed step); lo, hi, the lowest and highest; share_lo,
 * share_hi, the lowest and highest share of the peak around it any repetition reached. All 0 when
 * there is no peak. */
typedef struct {
    double around, mean, lo, hi, share_lo, share_hi;
} peak_figures;

static peak_figures peak_figures_of(const timing *t, int64_t reps, int64_t best_rep,
                                    double flops_per_run)
{
    peak_figures f = {0};
    for (int64_t r = 0; r <= reps; r++)
        if (t->peak_failed || !(t->peak[r] > 0))
            return f;
    f.lo = f.share_lo = 1e300;
    for (int64_t r = 0; r <= reps; r++) {
        f.lo = t->peak[r] < f.lo ? t->peak[r] : f.lo;
        f.hi = t->peak[r] > f.hi ? t->peak[r] : f.hi;
    }
    for (int64_t r = 0; r < reps; r++) {
        f.mean += peak_around(t, r) / (double)reps;
        const double share = flops_per_run / t->rep_s[r] * 1e-9 / peak_around(t, r);
        f.share_lo = share < f.share_lo ? share : f.share_lo;
        f.share_hi = share > f.share_hi ? share : f.share_hi;
    }
    f.around = peak_around(t, best_rep);
    return f;
}

static int finish(const char *cmd, const bench_opts *o, int threads, const timing *t,
                  double images_per_run, double flops_per_run, double loss)
{
    /* the best repetition (the machine is shared) and the mean, seconds per run */
    int64_t best_rep = 0;
    double mean = 0;
    for (int64_t r = 0; r < o->repetitions; r++) {
        best_rep = t->rep_s[r] < t->rep_s[best_rep] ? r : best_rep;
        mean += t->rep_s[r] / (double)o->repetitions;
    }
    const double best = t->rep_s[best_rep];
    const peak_figures pf = peak_figures_of(t, o->repetitions, best_rep, flops_per_run);
    const double peak = pf.around; /* GFLOP/s */
    char how[300];
    if (peak > 0 && !(o->ghz > 0))
        snprintf(how, sizeof how, "%s, at %.2f GHz", t->how, mc_clock_ghz());
    else
        snprintf(how, sizeof how, "%s", t->how);
    const double ips = images_per_run / best, gflops = flops_per_run / best * 1e-9;
    const char *prec = nn_precision_name(o->precision);
    const int train = !strcmp(cmd, "train"), teamed = train && o->replicas > 1;
    char reps[40] = "";
    if (teamed)
        snprintf(reps, sizeof reps, " replicas %lld", (long long)o->replicas);
    printf("%s %s batch %lld bits %lld threads %d%s %s: %.0f images/s (best of %lld, mean %.0f), "
           "%.1f GFLOP/s, ",
           cmd, o->arch, (long long)o->batch, (long long)o->bits, threads, reps, prec, ips,
           (long long)o->repetitions, images_per_run / mean, gflops);
    if (peak > 0 && o->ghz > 0)
        printf("%.1f%% of the f32 peak %.0f GFLOP/s (%s)\n", 100 * gflops / peak, peak, how);
    else if (peak > 0)
        printf("%.1f%% of the f32 peak %.0f GFLOP/s measured around that repetition (every "
               "repetition %.1f-%.1f%% of the peak around it, the peak %.0f-%.0f GFLOP/s; %s)\n",
               100 * gflops / peak, peak, 100 * pf.share_lo, 100 * pf.share_hi, pf.lo, pf.hi, how);
    else
        printf("f32 peak %s\n", how);
    /* with replicas, the lead replica's passes run on its share of the threads */
    const double pass_peak = teamed ? pf.mean / (double)o->replicas : pf.mean;
    if (t->passes)
        report_passes(t->passes, pass_peak, NULL, NULL);
    if (!o->json)
        return 0;
    rp_report *r = rp_create();
    if (!r) {
        fprintf(stderr, "drsch bench %s: out of memory\n", cmd);
        return 1;
    }
    char name[160];
    /* f32 entries keep their historical names (the baselines); other precisions say theirs, and
     * training replicas their count. */
    snprintf(name, sizeof name, "%s/%s/batch:%lld/bits:%lld/threads:%d%s%s%s", cmd, o->arch,
             (long long)o->batch, (long long)o->bits, threads,
             o->precision == NN_PRECISION_F32 ? "" : "/precision:",
             o->precision == NN_PRECISION_F32 ? "" : prec, teamed ? "/replicas:" : "");
    if (teamed)
        snprintf(name + strlen(name), sizeof name - strlen(name), "%lld", (long long)o->replicas);
    rp_context_set(r, "benchmark", cmd);
    rp_context_set(r, "arch", o->arch);
    rp_context_set_num(r, "batch", (double)o->batch);
    rp_context_set_num(r, "bits", (double)o->bits);
    rp_context_set_num(r, "seed", (double)o->seed);
    rp_context_set(r, "precision", prec);
    rp_context_set(r, "onednn_isa", nn_onednn_isa());
    if (o->impl[0])
        rp_context_set(r, "onednn_impl", o->impl);
    if (o->layers[0])
        rp_context_set(r, "layer_impls", o->layers);
    rp_context_set(r, "inputs", "random uniform [0,1)");
    if (!train)
        rp_context_set(r, "outputs", o->real ? "codes and hash outputs" : "codes");
    rp_context_set(r, "peak_source", how);
    rp_context_set(r, "timing", "best of repetitions");
    if (o->plant > 1)
        rp_context_set_num(r, "planted_slowdown", o->plant);
    if (train) {
        rp_context_set_num(r, "momentum", o->momentum);
        rp_context_set(r, "loss",
                       "DRSCH: in-batch triplets (10 classes per batch, margin -5) + label-graph "
                       "Laplacian (beta 0.001)");
    }
    rp_entry *e = rp_add(r, name, o->iters, best * 1e3, t->rep_cpu[best_rep] * 1e3, "ms", threads);
    rp_counter(e, "images_per_second", ips);
    rp_counter(e, "images_per_second_mean", images_per_run / mean);
    rp_counter(e, "gflops", gflops);
    if (peak > 0) {
        rp_counter(e, "peak_gflops", peak);
        rp_counter(e, "peak_fraction", gflops / peak);
        rp_counter(e, "peak_gflops_min", pf.lo);
        rp_counter(e, "peak_gflops_max", pf.hi);
        rp_counter(e, "peak_fraction_min", pf.share_lo);
        rp_counter(e, "peak_fraction_max", pf.share_hi);
    }
    rp_counter(e, "images_per_run", images_per_run);
    rp_counter(e, "repetitions", (double)o->repetitions);
    rp_counter(e, "max_rss_bytes", cli_max_rss());
    cli_report_counters(r, e, t->hw, &t->counts, t->runs);
    if (train)
        rp_counter(e, "loss", loss);
    if (t->passes)
        report_passes(t->passes, pass_peak, r, e);
    rp_counter(e, "replicas", (double)(o->replicas ? o->replicas : threads));
    drsch_error err;
    if (rp_write(r, o->json, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench %s: %s\n", cmd, err.msg);
        rp_free(r);
        return 1;
    }
    rp_free(r);
    return 0;
}

/* t before the first repetition (its counters opened before any parallel region); 1 when out of
 * memory, said on stderr. */
static int timing_open(timing *t, const bench_opts *o, const char *cmd)
{
    *t = (timing){.hw = mc_counters_open()};
    t->rep_s = calloc((size_t)o->repetitions, sizeof *t->rep_s);
    t->rep_cpu = calloc((size_t)o->repetitions, sizeof *t->rep_cpu);
    t->peak = calloc((size_t)o->repetitions + 1, sizeof *t->peak);
    if (!t->rep_s || !t->rep_cpu || !t->peak) {
        fprintf(stderr, "drsch bench %s: out of memory\n", cmd);
        free(t->rep_s), free(t->rep_cpu), free(t->peak);
        mc_counters_close(t->hw);
        return 1;
    }
    return 0;
}

static void timing_close(timing *t)
{
    free(t->rep_s), free(t->rep_cpu), free(t->peak);
    mc_counters_close(t->hw);
}

/* The body of drsch bench train, timed into t (whose counters the caller opens and closes). */
static int bench_train_run(bench_opts *o, int threads, timing *t)
{
    nn_config cfg;
    drsch_error err;
    nn_net *net = NULL;
    if (nn_config_init(&cfg, o->arch, (int32_t)o->bits, (int32_t)o->batch, 1, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench train: %s\n", err.msg);
        return EXIT_USAGE;
    }
    cfg.seed = (uint64_t)o->seed;
    if (nn_net_create(&net, &cfg, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench train: %s\n", err.msg);
        return 1;
    }
    const int32_t B = (int32_t)o->bits, N = (int32_t)o->batch;
    note_layers(o, nn_net_config(net)->arch.n_layers, net_layer_impl, net);
    double ff, fb;
    nn_flops(net, &ff, &fb);
    nn_team *team = NULL;
    if (o->replicas > 1) {
        if (nn_team_create(&team, net, (int32_t)o->replicas, &err) != DRSCH_OK) {
            fprintf(stderr, "drsch bench train: --replicas %lld: %s\n", (long long)o->replicas,
                    err.msg);
            nn_net_free(net);
            return 1;
        }
        nn_net_free(net);
        net = nn_team_lead(team);
    }
    float *x = random_images((size_t)N, nn_input_size(net), (uint64_t)o->seed);
    float *dy = malloc(sizeof(float) * (size_t)N * B);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)N);
    if (!x || !dy || !labels) {
        fprintf(stderr, "drsch bench train: out of memory\n");
        free(x), free(dy), free(labels);
        team ? nn_team_free(team) : nn_net_free(net);
        return 1;
    }
    const int32_t per_class = N >= 10 ? N / 10 : 1;
    for (int32_t i = 0; i < N; i++)
        labels[i] = i / per_class;
    nn_sgd_config sgd;
    nn_sgd_defaults(&sgd);
    sgd.momentum = (float)o->momentum;
    dh_config loss_cfg;
    dh_config_default(&loss_cfg);
    uint8_t *sim = malloc((size_t)N * (size_t)N);
    if (!sim) {
        fprintf(stderr, "drsch bench train: out of memory\n");
        free(x), free(dy), free(labels);
        team ? nn_team_free(team) : nn_net_free(net);
        return 1;
    }
    dh_similarity(labels, NULL, 0, N, sim);
    dh_stats st;
    double loss = 0;
    int64_t it = 0;
    int failed = 0;
    passes *p = t->passes;
    if (p) {
        p->n_layers = nn_net_config(net)->arch.n_layers;
        for (int i = 0; i < p->n_layers; i++)
            describe_layer(net, i, p->what[i], sizeof p->what[i]);
    }
    for (int64_t rep = -1; rep < o->repetitions && !failed; rep++) {
        const int64_t steps = rep < 0 ? o->warmup : o->iters;
        if (rep >= 0) {
            measure_peak(o, threads, t, rep);
            mc_counters_start(t->hw);
        }
        if (rep == 0 && p)
            nn_net_time_passes(net, 1);
        double t0 = cli_now(), c0 = cli_cpu_seconds();
        for (int64_t k = 0; k < steps && !failed; k++, it++) {
            failed = (team ? nn_team_forward(team, x, &err) : nn_forward(net, x, &err)) != DRSCH_OK;
            if (!failed) {
                const float *y = team ? nn_team_output(team) : nn_output(net);
                const double l0 = p && rep >= 0 ? cli_now() : 0;
                failed = dh_loss(&loss_cfg, it, y, N, B, sim, NULL, 0, dy, &st) != 0;
                if (p && rep >= 0)
                    p->loss_s += cli_now() - l0;
                loss = st.loss;
                failed = failed ||
                         (team ? nn_team_backward(team, dy, &err)
                               : nn_backward(net, dy, NULL, &err)) != DRSCH_OK ||
                         nn_sgd_step(net, &sgd, it, &err) != DRSCH_OK;
            }
        }
        if (p && rep >= 0)
            p->steps_s += cli_now() - t0, p->steps += steps;
        if (rep >= 0)
            cli_plant_slowdown(o->plant, t0);
        double dt = (cli_now() - t0) / (double)(steps ? steps : 1),
               dc = (cli_cpu_seconds() - c0) / (double)(steps ? steps : 1);
        if (rep >= 0)
            note_repetition(t, rep, dt, dc);
    }
    if (!failed)
        measure_peak(o, threads, t, o->repetitions);
    if (p) {
        nn_net_pass_times(net, &p->t);
        nn_net_time_passes(net, 0);
    }
    t->runs = (double)o->repetitions * (double)o->iters;
    free(x), free(dy), free(labels), free(sim);
    team ? nn_team_free(team) : nn_net_free(net);
    if (failed) {
        fprintf(stderr, "drsch bench train: %s\n", err.msg);
        return 1;
    }
    return finish("train", o, threads, t, (double)N, ff + fb, loss);
}

int cmd_bench_train(int argc, char **argv)
{
    bench_opts o;
    int rc = parse(argc, argv, "train", &o);
    if (rc >= 0)
        return rc;
    const int threads = cli_set_threads((int)o.threads);
    static passes p; /* large: not on the stack */
    timing t;
    if (timing_open(&t, &o, "train"))
        return 1;
    t.passes = o.passes ? &p : NULL;
    rc = bench_train_run(&o, threads, &t);
    timing_close(&t);
    return rc;
}

/* The body of drsch bench encode, timed into t (whose counters the caller opens and closes). */
static int bench_encode_run(bench_opts *o, int threads, timing *t)
{
    nn_config cfg;
    drsch_error err;
    nn_net *model = NULL;
    if (nn_config_init(&cfg, o->arch, (int32_t)o->bits, (int32_t)o->batch, 0, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench encode: %s\n", err.msg);
        return EXIT_USAGE;
    }
    cfg.seed = (uint64_t)o->seed;
    if (nn_net_create(&model, &cfg, &err) != DRSCH_OK) {
        fprintf(stderr, "drsch bench encode: %s\n", err.msg);
        return 1;
    }
    const int32_t replicas = (int32_t)(o->replicas ? o->replicas : threads);
    nn_encoder *enc = NULL;
    if (nn_encoder_create(&enc, model, (int32_t)o->batch, replicas, o->precision, &err) !=
        DRSCH_OK) {
        fprintf(stderr, "drsch bench encode: %s\n", err.msg);
        nn_net_free(model);
        return 1;
    }
    snprintf(o->impl, sizeof o->impl, "%s", nn_encoder_impl(enc));
    note_layers(o, nn_net_config(model)->arch.n_layers, encoder_layer_impl, enc);
    cli_note_precision("bench encode", o->precision);
    double ff;
    nn_flops(model, &ff, NULL);
    const double flops_per_image = ff / (double)o->batch;
    const size_t n = (size_t)o->images;
    float *x = random_images(n, nn_input_size(model), (uint64_t)o->seed);
    float *real = o->real ? malloc(sizeof(float) * n * (size_t)o->bits) : NULL;
    hm_codes codes = {0};
    codes.n = n;
    codes.bits = (uint32_t)o->bits;
    codes.words = hm_words_for_bits(codes.bits);
    codes.data = aligned_alloc(64, (n * codes.words * 8 + 63) / 64 * 64);
    nn_net_free(model);
    if (!x || (o->real && !real) || !codes.data) {
        fprintf(stderr, "drsch bench encode: out of memory\n");
        free(x), free(real), free(codes.data);
        nn_encoder_free(enc);
        return 1;
    }
    int failed = 0;
    for (int64_t rep = -1; rep < o->repetitions && !failed; rep++) {
        const int64_t runs = rep < 0 ? o->warmup : o->iters;
        if (rep >= 0) {
            measure_peak(o, threads, t, rep);
            mc_counters_start(t->hw);
        }
        double t0 = cli_now(), c0 = cli_cpu_seconds();
        for (int64_t k = 0; k < runs && !failed; k++)
            failed = nn_encode(enc, x, n, real, &codes, &err) != DRSCH_OK;
        if (rep >= 0)
            cli_plant_slowdown(o->plant, t0);
        double dt = (cli_now() - t0) / (double)(runs ? runs : 1),
               dc = (cli_cpu_seconds() - c0) / (double)(runs ? runs : 1);
        if (rep >= 0)
            note_repetition(t, rep, dt, dc);
    }
    if (!failed)
        measure_peak(o, threads, t, o->repetitions);
    t->runs = (double)o->repetitions * (double)o->iters;
    free(x), free(real), free(codes.data);
    nn_encoder_free(enc);
    if (failed) {
        fprintf(stderr, "drsch bench encode: %s\n", err.msg);
        return 1;
    }
    o->replicas = replicas;
    return finish("encode", o, threads, t, (double)n, flops_per_image * (double)n, 0);
}

int cmd_bench_encode(int argc, char **argv)
{
    bench_opts o;
    int rc = parse(argc, argv, "encode", &o);
    if (rc >= 0)
        return rc;
    const int threads = cli_set_threads((int)o.threads);
    timing t;
    if (timing_open(&t, &o, "encode"))
        return 1;
    rc = bench_encode_run(&o, threads, &t);
    timing_close(&t);
    return rc;
}
