/* drsch train, encode and eval --model end to end: a short training run writes a model and a
 * resume state; Ctrl-C (SIGINT) and SIGTERM write a checkpoint, and --resume continues it to a
 * model byte-identical to an uninterrupted run; encode writes codes, labels and weights of the
 * right shapes; eval --model prints the table; mismatched inputs are refused with clear errors;
 * --precision bf16 agrees with f32 and is an error where oneDNN has no bf16. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

#include <oneapi/dnnl/dnnl.h>

#include "experiment.h"
#include "npy.h"
#include "rng.h"
#include "nn.h"
#include "test_util.h"
#include "train_internal.h"

static void setup(void)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)");
    tu_tmpdir_make("train");
}

/* A synthetic MNIST-style dataset of 300 + 60 images (tu_write_idx_split) in tu_path(name), its
 * path in dir: for runs that need no real images, where each checkpoint and evaluation would
 * otherwise encode Fashion-MNIST's 5,000 training or 70,000 images. */
static void write_small_mnist(const char *name, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", tu_path(name));
    cr_assert_eq(mkdir(dir, 0755), 0, "%s", dir);
    tu_write_idx_split(dir, "train", 300, 5, 63);
    tu_write_idx_split(dir, "t10k", 60, 5, 63);
}

/* The dataset of write_small_mnist ("small", written at the first call in a test: each test runs
 * in a process of its own) for runs whose checks do not depend on the images: "mnist:DIR" (spec)
 * and the flags that train on all of it (flags). Over Fashion-MNIST each run would load 70,000
 * images and each checkpoint encode 5,000: a run of TRAIN_FLAGS under ASan took 4.8-5.3 s there,
 * 3.0 s on these (2-core Zen 5). */
static const char *small_spec(void)
{
    static char spec[1100];
    if (!spec[0]) {
        char dir[1024];
        write_small_mnist("small", dir, sizeof dir);
        snprintf(spec, sizeof spec, "mnist:%s", dir);
    }
    return spec;
}

static const char *small_flags(void)
{
    static char flags[1200];
    snprintf(flags, sizeof flags, "--dataset %s --protocol full", small_spec());
    return flags;
}

#define TRAIN_FLAGS "--threads 2 --iters 120 --log-every 40 --checkpoint-every 20 --bits 16 %s"

TestSuite(train, .init = setup, .fini = tu_tmpdir_remove, .timeout = 600);

Test(train, interrupted_and_resumed_run_equals_an_uninterrupted_one)
{
    static char out[1 << 16];
    int rc = tu_run(out, sizeof out, "%s train " TRAIN_FLAGS " --out %s", tu_exe(), small_flags(),
                    tu_path("straight.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "iter     40/120") != NULL, "progress line expected: %s", out);
    cr_assert(strstr(out, "img/s") && strstr(out, "ETA"), "%s", out);

    /* The same run, interrupted by SIGINT once its first checkpoint exists. */
    const char *spec = small_spec();
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(tu_exe(), tu_exe(), "train", "--threads", "2", "--iters", "120", "--log-every", "40",
              "--checkpoint-every", "20", "--bits", "16", "--dataset", spec, "--protocol", "full",
              "--out", tu_path("cut.bin"), (char *)NULL);
        _exit(127);
    }
    struct stat stt;
    for (int i = 0; i < 6000 && stat(tu_path("cut.bin.state"), &stt) != 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "training must exit cleanly on SIGINT");
    int code = WEXITSTATUS(status);
    cr_assert(code == 130 || code == 0, "exit %d", code);
    if (code == 130) {
        rc = tu_run(out, sizeof out, "%s train " TRAIN_FLAGS " --resume %s --out %s", tu_exe(),
                    small_flags(), tu_path("cut.bin"), tu_path("cut.bin"));
        cr_assert_eq(rc, 0, "%s", out);
    }
    size_t la, lb;
    char *a = tu_slurp(tu_path("straight.bin"), &la), *b = tu_slurp(tu_path("cut.bin"), &lb);
    cr_assert_eq(la, lb);
    cr_assert(memcmp(a, b, la) == 0, "resumed model differs from the uninterrupted one (exit %d)",
              code);
    free(a);
    free(b);

    /* Resuming with other settings is refused. */
    rc = tu_run(out, sizeof out, "%s train " TRAIN_FLAGS " --lr 0.1 --resume %s --out %s", tu_exe(),
                small_flags(), tu_path("cut.bin"), tu_path("other.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "other settings") != NULL, "%s", out);
}

/* --replicas 2: data parallel in one process. The model has the same bytes at 1 and 2 threads
 * (each replica computes alone, the gradients are added in replica order), a run resumed from its
 * checkpoint ends as the uninterrupted one, and more replicas than images are refused. */
Test(train, replicas_give_the_same_bytes_at_any_thread_count_and_on_resume)
{
    static char out[1 << 16];
#define REPLICA_FLAGS "--iters 80 --log-every 40 --bits 16 --replicas 2 %s"
    int rc = tu_run(out, sizeof out, "%s train " REPLICA_FLAGS " --threads 1 --out %s", tu_exe(),
                    small_flags(), tu_path("one.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "1 thread (2 replicas)") != NULL, "%s", out);
    rc = tu_run(out, sizeof out, "%s train " REPLICA_FLAGS " --threads 2 --out %s", tu_exe(),
                small_flags(), tu_path("two.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s train --iters 40 --log-every 40 --bits 16 --replicas 2 --threads 2 %s --out %s",
                tu_exe(), small_flags(), tu_path("half.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s train " REPLICA_FLAGS " --threads 2 --resume %s --out %s",
                tu_exe(), small_flags(), tu_path("half.bin"), tu_path("half.bin"));
    cr_assert_eq(rc, 0, "%s", out);
#undef REPLICA_FLAGS
    const char *names[2] = {"two.bin", "half.bin"};
    size_t la, lb;
    char *a = tu_slurp(tu_path("one.bin"), &la);
    for (int i = 0; i < 2; i++) {
        char *b = tu_slurp(tu_path(names[i]), &lb);
        cr_expect(la == lb && memcmp(a, b, la) == 0, "one.bin and %s differ", names[i]);
        free(b);
    }
    free(a);

    rc = tu_run(out, sizeof out, "%s train --iters 1 --bits 16 --replicas 101 --out %s", tu_exe(),
                tu_path("many.bin"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "--replicas 101") && strstr(out, "batches of 100 images"), "%s", out);
    cr_expect(access(tu_path("many.bin"), F_OK) != 0, "nothing written");
}

/* A version 2 training state (momentum in the internal layout of the build that wrote it) is
 * still resumed: the parameters as saved, the momentum from zero, and stderr says so. The state
 * of a version 3 run is rewritten as version 2 would have laid it out: magic "DRSCHTR2" and
 * parameters + internal momentum (nn_sgd_history's count, here zeros), crc32 over it all. */
Test(train, version_2_state_resumes_with_the_momentum_from_zero)
{
    static char out[1 << 16];
    int rc =
        tu_run(out, sizeof out,
               "%s train --threads 2 --iters 40 --log-every 20 --checkpoint-every 20 --bits 16 "
               "%s --out %s",
               tu_exe(), small_flags(), tu_path("v3.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    nn_net *net = NULL;
    drsch_error err;
    /* the batch of the run (10 x 10), whose layouts the resume will pick */
    cr_assert_eq(nn_model_load(&net, tu_path("v3.bin"), 100, 1, &err), DRSCH_OK, "%s", err.msg);
    size_t nh, np = nn_params_plain_size(net);
    (void)nn_sgd_history(net, &nh);
    nn_net_free(net);

    char path[1024];
    snprintf(path, sizeof path, "%s.state", tu_path("v3.bin"));
    size_t len;
    char *v3 = tu_slurp(path, &len);
    cr_assert(v3 && len > 28 && memcmp(v3, "DRSCHTR3", 8) == 0, "not a version 3 state");
    uint32_t slen;
    memcpy(&slen, v3 + 16, 4);
    const size_t head = 20 + (size_t)slen; /* magic, iteration, settings */
    uint64_t count;
    memcpy(&count, v3 + head, 8);
    cr_assert_eq(count, 2 * np, "a version 3 state holds parameters and momentum, plain");
    const size_t v2len = head + 8 + (np + nh) * sizeof(float) + 4;
    char *v2 = calloc(1, v2len);
    memcpy(v2, v3, head);
    memcpy(v2, "DRSCHTR2", 8);
    uint64_t c2 = np + nh;
    memcpy(v2 + head, &c2, 8);
    memcpy(v2 + head + 8, v3 + head + 8, np * sizeof(float)); /* parameters; momentum zeros */
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)v2, (uInt)(v2len - 4));
    memcpy(v2 + v2len - 4, &crc, 4);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(v2, 1, v2len, f) == v2len && fclose(f) == 0);
    free(v2);
    free(v3);

    rc = tu_run(out, sizeof out,
                "%s train --threads 2 --iters 40 --log-every 20 --checkpoint-every 20 --bits 16 "
                "%s --resume %s --out %s",
                tu_exe(), small_flags(), tu_path("v3.bin"), tu_path("v2-resumed.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "written by an older drsch") && strstr(out, "starts again from zero"),
              "%s", out);
}

/* The lr and decay multipliers of each tensor of the model file at path: lr_mult must be 1
 * everywhere and decay_mult decay[group] (nn_param_group order), lr_bias for biases. */
static void expect_model_mults(const char *path, const float decay[NN_GROUPS], float lr_bias)
{
    nn_net *net = NULL;
    drsch_error err;
    cr_assert_eq(nn_model_load(&net, path, 1, 0, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(nn_param_count(net), 11); /* 3 conv + 2 fc, weights and biases; bit weights */
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        nn_param p = nn_param_at(net, i);
        nn_param_group g = nn_param_group_at(net, i);
        cr_expect_eq(p.decay_mult, decay[g], "%s: tensor %d (group %d): decay x%g", path, i, g,
                     p.decay_mult);
        cr_expect_eq(p.lr_mult, g == NN_GROUP_BIAS ? lr_bias : 1.0f, "%s: tensor %d", path, i);
    }
    nn_net_free(net);
}

/* --recipe authors is recorded in the training state, so that a resume with another recipe is
 * refused naming --recipe (both ways), and in the model file's multipliers. */
Test(train, recipe_is_recorded_and_a_resume_needs_the_same)
{
    static char out[1 << 16];
    char fl[1400];
    snprintf(fl, sizeof fl, "--threads 2 --log-every 10 --checkpoint-every 10 --bits 16 %s",
             small_flags());
    int rc = tu_run(out, sizeof out, "%s train %s --iters 20 --recipe authors --out %s", tu_exe(),
                    fl, tu_path("authors.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "seed 1, recipe authors\n") != NULL, "%s", out);
    const float authors[NN_GROUPS] = {0.1f, 0.5f, 0.0f, 0.5f}, drsch[NN_GROUPS] = {1, 1, 0, 0};
    expect_model_mults(tu_path("authors.bin"), authors, 1.0f);
    rc = tu_run(out, sizeof out, "%s train %s --iters 20 --out %s", tu_exe(), fl,
                tu_path("drsch.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "seed 1, recipe drsch\n") != NULL, "%s", out);
    expect_model_mults(tu_path("drsch.bin"), drsch, 2.0f);

    rc = tu_run(out, sizeof out, "%s train %s --iters 30 --resume %s --out %s", tu_exe(), fl,
                tu_path("authors.bin"), tu_path("other.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "other settings: --recipe authors (this run: drsch)") != NULL, "%s", out);
    rc = tu_run(out, sizeof out, "%s train %s --iters 30 --recipe authors --resume %s --out %s",
                tu_exe(), fl, tu_path("drsch.bin"), tu_path("other.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "other settings: --recipe drsch (this run: authors)") != NULL, "%s", out);
    cr_expect(access(tu_path("other.bin"), F_OK) != 0, "a refused resume wrote a model");

    /* the same recipe resumes, and the model still records it */
    rc = tu_run(out, sizeof out, "%s train %s --iters 30 --recipe authors --resume %s --out %s",
                tu_exe(), fl, tu_path("authors.bin"), tu_path("authors.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    expect_model_mults(tu_path("authors.bin"), authors, 1.0f);
}

/* In process pid every thread but one (the main thread and OpenMP's among them) has SIGTERM
 * blocked, and SIGINT and SIGHUP blocked unless ignored: no stop signal is handled in a thread that
 * may be inside oneDNN's gemm kernel, whose stack pointer then points into the heap (a handler's
 * frame there corrupted the heap: fio_cleanup_on_signals). The one is the signal thread: it takes
 * them with sigwait, which unblocks them while it waits. /proc/PID/task/TID/status. */
static void expect_stop_signals_blocked_in_every_thread(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int threads = 0, open = 0;
    char seen[512] = "";
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) /* the thread ended meanwhile */
            continue;
        unsigned long long blk = 0, ign = 0;
        char line[256];
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "SigBlk: %llx", &blk);
            sscanf(line, "SigIgn: %llx", &ign);
        }
        fclose(f);
        threads++;
        const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        int taken = 1;
        for (int i = 0; i < 3; i++)
            taken = taken && ((blk | (i ? ign : 0)) >> (sigs[i] - 1) & 1);
        open += !taken;
        size_t n = strlen(seen);
        snprintf(seen + n, sizeof seen - n, " %s:%llx", e->d_name, blk);
    }
    closedir(d);
    /* the main thread, the second OpenMP thread, the signal thread */
    cr_expect_geq(threads, 3, "%d threads:%s", threads, seen);
    cr_expect_leq(open, 1, "%d of %d threads take stop signals (thread:SigBlk%s)", open, threads,
                  seen);
}

/* SIGTERM (timeout, systemd, container stops) stops training at a checkpoint, as SIGINT does: exit
 * 128 + 15, the model and its state written, no temporary file or lock left, and --resume
 * finishes the run. */
Test(train, sigterm_writes_a_checkpoint_and_resume_finishes)
{
    char log[1100];
    snprintf(log, sizeof log, "%s", tu_path("term.log"));
    const char *spec = small_spec(); /* written here, not in the child */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        freopen(log, "w", stderr);
        execl(tu_exe(), tu_exe(), "train", "--threads", "2", "--iters", "2000", "--log-every", "40",
              "--checkpoint-every", "20", "--bits", "16", "--dataset", spec, "--protocol", "full",
              "--out", tu_path("term.bin"), (char *)NULL);
        _exit(127);
    }
    struct stat stt;
    for (int i = 0; i < 6000 && stat(tu_path("term.bin.state"), &stt) != 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    expect_stop_signals_blocked_in_every_thread(pid);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "training must exit cleanly on SIGTERM, not die by it");
    cr_assert_eq(WEXITSTATUS(status), 128 + SIGTERM);
    cr_assert_eq(access(tu_path("term.bin"), R_OK), 0);
    cr_assert_eq(access(tu_path("term.bin.state"), R_OK), 0);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tu_path("term.bin"), (long)pid);
    cr_expect_neq(access(tmp, F_OK), 0, "%s is left behind", tmp);
    snprintf(tmp, sizeof tmp, "%s.state.tmp.%ld", tu_path("term.bin"), (long)pid);
    cr_expect_neq(access(tmp, F_OK), 0, "%s is left behind", tmp);
    cr_expect_neq(access(tu_path("term.bin.lock"), F_OK), 0, "the lock is left behind");
    /* the run stopped at iteration N; resuming it to N + 20 finishes (--iters may differ) */
    char *text = tu_slurp(log, NULL);
    cr_assert_not_null(text);
    const char *at = strstr(text, "interrupted at iteration ");
    cr_assert_not_null(at, "%s", text);
    long long stopped = atoll(at + strlen("interrupted at iteration "));
    cr_expect(strstr(text, "Terminated") != NULL, "the signal is named: %s", text);
    free(text);
    static char out[1 << 16];
    int rc =
        tu_run(out, sizeof out,
               "%s train --threads 2 --iters %lld --log-every 40 --checkpoint-every 20 "
               "--bits 16 %s --resume %s --out %s",
               tu_exe(), stopped + 20, small_flags(), tu_path("term.bin"), tu_path("term.bin"));
    cr_assert_eq(rc, 0, "%s", out);
}

Test(train, encode_eval_and_bad_input)
{
    static char out[1 << 16];
    int rc = tu_run(out, sizeof out,
                    "%s train --threads 2 --iters 60 --log-every 30 --bits 24 --out %s --eval",
                    tu_exe(), tu_path("m.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "mAP@all") != NULL, "%s", out);
    cr_expect(strstr(out, "0 of 1000 queries have no relevant item (counted as AP 0)") != NULL,
              "%s", out);

    rc = tu_run(out, sizeof out, "%s encode --model %s --split query --out %s", tu_exe(),
                tu_path("m.bin"), tu_path("q"));
    cr_assert_eq(rc, 0, "%s", out);
    npy_array a;
    drsch_error err;
    cr_assert_eq(npy_load(tu_path("q.codes.npy"), &a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(a.dtype, NPY_U8);
    cr_assert_eq(a.shape[0], 1000, "paper protocol: 100 queries per class");
    cr_assert_eq(a.shape[1], 3);
    npy_free(&a);
    cr_assert_eq(npy_load(tu_path("q.labels.npy"), &a, &err), DRSCH_OK);
    cr_assert_eq(a.dtype, NPY_I32);
    int counts[10] = {0};
    for (size_t i = 0; i < a.count; i++)
        counts[((int32_t *)a.data)[i]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_eq(counts[c], 100);
    npy_free(&a);
    /* The weights file holds the model's bit weights in its bit order, and that order is the
     * decorrelated one (the default) of the codes of the 5000 training images. */
    nn_net *model = NULL;
    drsch_error ne;
    cr_assert_eq(nn_model_load(&model, tu_path("m.bin"), 1, 0, &ne), DRSCH_OK, "%s", ne.msg);
    const uint32_t *order = nn_bit_order(model);
    uint32_t saved[24];
    memcpy(saved, order, sizeof saved);
    cr_assert_eq(npy_load(tu_path("q.weights.npy"), &a, &err), DRSCH_OK);
    cr_assert_eq(a.count, 24);
    for (size_t j = 0; j < a.count; j++)
        cr_assert_eq(((float *)a.data)[j], nn_bit_weights(model)[saved[j]], "weight of bit %zu", j);
    npy_free(&a);
    rc = tu_run(out, sizeof out, "%s encode --model %s --split train --out %s", tu_exe(),
                tu_path("m.bin"), tu_path("tr"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(npy_load(tu_path("tr.codes.npy"), &a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(a.shape[0], 5000);
    hm_codes net_order;
    cr_assert_eq(hm_codes_alloc(&net_order, 5000, 24, &err), DRSCH_OK);
    for (size_t i = 0; i < 5000; i++)
        for (int j = 0; j < 24; j++)
            if (((const uint8_t *)a.data)[i * 3 + (size_t)j / 8] >> (j % 8) & 1)
                net_order.data[i * net_order.words] |= 1ULL << saved[j];
    npy_free(&a);
    cr_assert_eq(nn_bit_order_decorrelated(model, &net_order, &ne), DRSCH_OK, "%s", ne.msg);
    cr_assert(memcmp(nn_bit_order(model), saved, sizeof saved) == 0,
              "saved bit order is not the decorrelated one");
    nn_bit_order_by_weight(model);
    cr_expect(memcmp(nn_bit_order(model), saved, sizeof saved) != 0,
              "this run should reorder some bits");
    hm_codes_free(&net_order);
    nn_net_free(model);
    /* The rest runs on a synthetic dataset of 300 + 60 images (protocol full): over
     * Fashion-MNIST, each evaluation through --model encodes 70,000 images (8.5 s under ASan). */
    char small28[1024];
    write_small_mnist("mnist28", small28, sizeof small28);
    /* --bit-order weight: the authors' order, weights non-increasing */
    rc = tu_run(out, sizeof out,
                "%s train --threads 2 --iters 60 --log-every 30 --bits 24 --bit-order weight "
                "--dataset mnist:%s --protocol full --out %s",
                tu_exe(), small28, tu_path("mw.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s encode --model %s --dataset mnist:%s --protocol full --split query --out %s",
                tu_exe(), tu_path("mw.bin"), small28, tu_path("qw"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(npy_load(tu_path("qw.weights.npy"), &a, &err), DRSCH_OK);
    for (size_t i = 1; i < a.count; i++)
        cr_assert(((float *)a.data)[i] <= ((float *)a.data)[i - 1],
                  "weights in significance order");
    npy_free(&a);
    rc = tu_run(out, sizeof out, "%s train --iters 1 --bit-order size --out %s", tu_exe(),
                tu_path("bad.bin"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--bit-order") != NULL, "%s", out);

    /* Codes of the model evaluate identically through --model and through the .npy route. */
    for (int s = 0; s < 2; s++) {
        rc = tu_run(out, sizeof out,
                    "%s encode --model %s --dataset mnist:%s --protocol full --split %s --out %s",
                    tu_exe(), tu_path("m.bin"), small28, s ? "db" : "query",
                    tu_path(s ? "sdb" : "sq"));
        cr_assert_eq(rc, 0, "%s", out);
    }
    char viamodel[4096], vianpy[4096];
    rc = tu_run(viamodel, sizeof viamodel,
                "%s eval --model %s --dataset mnist:%s --protocol full --bits 8,24 --topk 100 "
                "2>/dev/null",
                tu_exe(), tu_path("m.bin"), small28);
    cr_assert_eq(rc, 0, "%s", viamodel);
    rc = tu_run(
        vianpy, sizeof vianpy,
        "%s eval --codes %s --db %s --qlabels %s --dblabels %s --bits 8,24 --topk 100 2>/dev/null",
        tu_exe(), tu_path("sq.codes.npy"), tu_path("sdb.codes.npy"), tu_path("sq.labels.npy"),
        tu_path("sdb.labels.npy"));
    cr_assert_eq(rc, 0, "%s", vianpy);
    cr_assert_str_eq(viamodel, vianpy);

    rc = tu_run(out, sizeof out,
                "%s eval --model %s --dataset mnist:%s --protocol full --weighted --json %s",
                tu_exe(), tu_path("m.bin"), small28, tu_path("e.json"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(access(tu_path("e.json"), R_OK), 0);
    /* Determinism: the same evaluation twice gives the same report but for times, dates and the
     * measured clock. */
    rc = tu_run(out, sizeof out,
                "%s eval --model %s --dataset mnist:%s --protocol full --weighted --json %s",
                tu_exe(), tu_path("m.bin"), small28, tu_path("e2.json"));
    cr_assert_eq(rc, 0, "%s", out);
    char base[512];
    snprintf(base, sizeof base, "%s", tu_path("e"));
    rc = tu_run(
        out, sizeof out,
        "for f in %s.json %s2.json; do grep -vE "
        "'\"(date|real_time|cpu_time|load_avg|mhz_per_cpu|cpu_ghz_measured)\"|^\\s*[0-9.]+,?$' "
        "$f > $f.kept; done; cmp %s.json.kept %s2.json.kept",
        base, base, base, base);
    cr_assert_eq(rc, 0, "reports of two identical runs differ beyond times: %s", out);

    /* Bad input: bits beyond the model, a dataset of another image size, a corrupt model, an
     * empty query file. */
    rc = tu_run(out, sizeof out, "%s encode --model %s --bits 32 --out %s", tu_exe(),
                tu_path("m.bin"), tu_path("x"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "32") && strstr(out, "24 bits"), "%s", out);
    rc = tu_run(out, sizeof out, "%s eval --model %s --bits 12,30", tu_exe(), tu_path("m.bin"));
    cr_assert_eq(rc, 2, "%s", out);

    /* An MNIST-format dataset of 20x20 images: the model takes 26x26 crops. */
    mkdir(tu_path("small"), 0755);
    static const char *const files[2][2] = {
        {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
        {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
    for (int f = 0; f < 2; f++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", tu_path("small"), files[f][0]);
        gzFile g = gzopen(p, "wb");
        unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 20, 0, 0, 0, 20};
        gzwrite(g, hdr, 16);
        static unsigned char px[20 * 400];
        gzwrite(g, px, sizeof px);
        gzclose(g);
        snprintf(p, sizeof p, "%s/%s", tu_path("small"), files[f][1]);
        g = gzopen(p, "wb");
        unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, 20};
        gzwrite(g, lh, 8);
        unsigned char lab[20];
        for (int i = 0; i < 20; i++)
            lab[i] = (unsigned char)(i % 10);
        gzwrite(g, lab, 20);
        gzclose(g);
    }
    rc = tu_run(out, sizeof out, "%s encode --model %s --dataset mnist:%s --out %s", tu_exe(),
                tu_path("m.bin"), tu_path("small"), tu_path("x"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "26") && strstr(out, "20"), "error names both shapes: %s", out);

    size_t len;
    char *m = tu_slurp(tu_path("m.bin"), &len);
    FILE *f = fopen(tu_path("cut.bin"), "wb");
    fwrite(m, 1, len / 2, f);
    fclose(f);
    free(m);
    rc = tu_run(out, sizeof out, "%s eval --model %s", tu_exe(), tu_path("cut.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "cut.bin") && strstr(out, "truncated"), "%s", out);

    size_t shape[2] = {0, 3};
    cr_assert_eq(npy_save(tu_path("empty.npy"), NPY_U8, 2, shape, "", &err), DRSCH_OK);
    size_t lshape[1] = {0};
    cr_assert_eq(npy_save(tu_path("emptyl.npy"), NPY_I32, 1, lshape, "", &err), DRSCH_OK);
    rc = tu_run(out, sizeof out, "%s eval --codes %s --db %s --qlabels %s --dblabels %s", tu_exe(),
                tu_path("empty.npy"), tu_path("sdb.codes.npy"), tu_path("emptyl.npy"),
                tu_path("sdb.labels.npy"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "query") != NULL, "%s", out);
}

/* NaN / Inf: training stops with the iteration named and the last good checkpoint intact. */
Test(train, numeric_blowup_stops_and_keeps_the_last_checkpoint)
{
    static char out[1 << 16];
    int rc = tu_run(out, sizeof out,
                    "%s train --threads 2 --iters 60 --lr 1e8 --log-every 1 --checkpoint-every 1 "
                    "--bits 16 --out %s",
                    tu_exe(), tu_path("nan.bin"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "NaN or Inf") && strstr(out, "iteration"), "%s", out);
    if (strstr(out, "checkpoint of iteration")) {
        rc = tu_run(out, sizeof out, "%s encode --model %s --split query --out %s", tu_exe(),
                    tu_path("nan.bin"), tu_path("q"));
        cr_assert_eq(rc, 0, "the kept checkpoint must load: %s", out);
    }
}

/* Share of equal bits between two .npy code files of the same shape. */
static double bits_agree(const char *a_path, const char *b_path)
{
    npy_array a, b;
    drsch_error err;
    cr_assert_eq(npy_load(a_path, &a, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_load(b_path, &b, &err), DRSCH_OK, "%s", err.msg);
    cr_assert(a.ndim == 2 && b.ndim == 2 && a.shape[0] == b.shape[0] && a.shape[1] == b.shape[1]);
    size_t differ = 0;
    for (size_t i = 0; i < a.count; i++)
        differ +=
            (size_t)__builtin_popcount(((const uint8_t *)a.data)[i] ^ ((const uint8_t *)b.data)[i]);
    double share = 1.0 - (double)differ / (double)(a.count * 8);
    npy_free(&a);
    npy_free(&b);
    return share;
}

/* --precision bf16 end to end: encode and eval --model in bf16 agree with f32 (the bounds of
 * tests/test_core.c: at least 99% of the bits), reports record the precision, f32 stays the
 * default, bad values are usage errors, and an ISA without bf16 (oneDNN capped at AVX2) is an
 * error naming bf16, never a silent f32 run. */
Test(train, bf16_encode_and_eval)
{
    static char out[1 << 16];
    /* a synthetic dataset of 300 + 1,000 images (protocol full: 1,000 queries): each eval over
     * Fashion-MNIST's 70,000 had made this test take 18 s under ASan */
    char data[1024];
    snprintf(data, sizeof data, "%s", tu_path("mnist"));
    cr_assert_eq(mkdir(data, 0755), 0, "%s", data);
    tu_write_idx_split(data, "train", 300, 5, 63);
    tu_write_idx_split(data, "t10k", 1000, 5, 63);
    char ds[1100];
    snprintf(ds, sizeof ds, "--dataset mnist:%s --protocol full", data);
    int rc = tu_run(out, sizeof out,
                    "%s train --threads 1 --iters 40 --log-every 40 --bits 32 %s --out %s",
                    tu_exe(), ds, tu_path("m.bin"));
    cr_assert_eq(rc, 0, "%s", out);

    rc = tu_run(out, sizeof out, "%s encode --model %s %s --split query --precision bf17 --out %s",
                tu_exe(), tu_path("m.bin"), ds, tu_path("x"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--precision") && strstr(out, "bf16"), "%s", out);
    rc = tu_run(
        out, sizeof out,
        "ONEDNN_MAX_CPU_ISA=AVX2 %s encode --model %s %s --split query --precision bf16 --out %s",
        tu_exe(), tu_path("m.bin"), ds, tu_path("x"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "bf16") && strstr(out, "avx2"), "%s", out);
    cr_assert_neq(access(tu_path("x.codes.npy"), F_OK), 0,
                  "no codes may be written after the error");
    rc = tu_run(out, sizeof out, "ONEDNN_MAX_CPU_ISA=AVX2 %s eval --model %s %s --precision bf16",
                tu_exe(), tu_path("m.bin"), ds);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "bf16") && strstr(out, "avx2"), "%s", out);

    rc = tu_run(out, sizeof out, "%s eval --model %s %s --bits 16,32 --json %s", tu_exe(),
                tu_path("m.bin"), ds, tu_path("f.json"));
    cr_assert_eq(rc, 0, "%s", out);
    size_t len;
    char *j = tu_slurp(tu_path("f.json"), &len);
    cr_assert(strstr(j, "\"precision\":\t\"f32\""), "f32 is the default and recorded: %s", j);
    free(j);

    const unsigned core = (unsigned)dnnl_cpu_isa_avx512_core;
    if (((unsigned)dnnl_get_effective_cpu_isa() & core) != core)
        cr_skip_test(
            "oneDNN's ISA here has no AVX-512: bf16 runs were checked to fail cleanly only");
    rc = tu_run(out, sizeof out, "%s encode --model %s %s --split query --out %s", tu_exe(),
                tu_path("m.bin"), ds, tu_path("q32"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out, "%s encode --model %s %s --split query --precision bf16 --out %s",
                tu_exe(), tu_path("m.bin"), ds, tu_path("q16"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "bf16") != NULL, "the log names the precision: %s", out);
    double agree = bits_agree(tu_path("q32.codes.npy"), tu_path("q16.codes.npy"));
    cr_expect_geq(agree, 0.99, "only %.4f of the query code bits agree between f32 and bf16",
                  agree);
    cr_log_info("f32 vs bf16 query codes: %.4f of the bits agree", agree);

    rc = tu_run(out, sizeof out, "%s eval --model %s %s --bits 16,32 --precision bf16 --json %s",
                tu_exe(), tu_path("m.bin"), ds, tu_path("b.json"));
    cr_assert_eq(rc, 0, "%s", out);
    j = tu_slurp(tu_path("b.json"), &len);
    cr_assert(strstr(j, "\"precision\":\t\"bf16\""), "%s", j);
    cr_assert(strstr(j, "\"onednn_isa\""), "%s", j);
    free(j);

    rc = tu_run(out, sizeof out,
                "%s bench encode --threads 1 --images 200 --iters 1 --repetitions 1 --warmup 0 "
                "--precision bf16 --json %s",
                tu_exe(), tu_path("be.json"));
    cr_assert_eq(rc, 0, "%s", out);
    j = tu_slurp(tu_path("be.json"), &len);
    cr_assert(strstr(j, "\"precision\":\t\"bf16\"") && strstr(j, "/precision:bf16\""), "%s", j);
    cr_assert(strstr(j, "\"onednn_impl\":\t\"") && strstr(j, "bf16"), "%s", j);
    free(j);
}

/* SIGKILL at arbitrary moments never leaves a corrupt model or state: after every kill the
 * model loads, and resuming finishes with the model of an uninterrupted run. On a synthetic
 * dataset of 300 + 60 images (protocol full) in batches of 30: every checkpoint encodes the
 * training images for the model's bit order, which over Fashion-MNIST's 5,000 (batches of 100)
 * made this test take 93 s under ASan. */
Test(train, sigkill_never_corrupts_and_resume_matches)
{
    static char out[1 << 16];
    const char *dataset = small_spec();
    const char *flags[] = {"train", "--threads",   "2",     "--iters",
                           "150",   "--log-every", "50",    "--checkpoint-every",
                           "10",    "--bits",      "16",    "--seed",
                           "3",     "--dataset",   dataset, "--protocol",
                           "full",  "--per-class", "3"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc =
        tu_run(out, sizeof out,
               "%s train --threads 2 --iters 150 --log-every 50 --checkpoint-every 10 --bits 16 "
               "--seed 3 --dataset %s --protocol full --per-class 3 --out %s",
               tu_exe(), dataset, tu_path("ref.bin"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(rc, 0, "%s", out);
    /* Kill moments are fractions of the reference run's duration (slow under sanitizers). */
    double ref_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    int resumed = 0;
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            freopen("/dev/null", "w", stderr);
            char *argv[32];
            int a = 0;
            argv[a++] = (char *)tu_exe();
            for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
                argv[a++] = (char *)flags[i];
            argv[a++] = "--out";
            argv[a++] = (char *)tu_path("k.bin");
            if (access(tu_path("k.bin.state"), R_OK) == 0) {
                argv[a++] = "--resume";
                argv[a++] = (char *)tu_path("k.bin");
            }
            argv[a] = NULL;
            execv(tu_exe(), argv);
            _exit(127);
        }
        /* Kill after 35% to 80% of the reference duration, a different moment each round. */
        long ms = (long)(ref_ms * (0.35 + 0.15 * round));
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (access(tu_path("k.bin"), R_OK) == 0) {
            rc = tu_run(out, sizeof out,
                        "%s eval --model %s --dataset %s --protocol full --bits 16 --topk 0",
                        tu_exe(), tu_path("k.bin"), dataset);
            cr_assert_eq(rc, 0, "model after SIGKILL in round %d must load: %s", round, out);
            resumed = 1;
        }
    }
    cr_assert(resumed, "no checkpoint was written in 4 rounds");
    /* Finish from the last checkpoint (or it already finished). */
    rc = tu_run(
        out, sizeof out,
        "%s train --threads 2 --iters 150 --log-every 50 --checkpoint-every 10 --bits 16 --seed 3 "
        "--dataset %s --protocol full --per-class 3 --resume %s --out %s",
        tu_exe(), dataset, tu_path("k.bin"), tu_path("k.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    size_t la, lb;
    char *a = tu_slurp(tu_path("ref.bin"), &la), *b = tu_slurp(tu_path("k.bin"), &lb);
    cr_assert(la == lb && memcmp(a, b, la) == 0,
              "resumed-after-SIGKILL model differs from the uninterrupted one");
    free(a);
    free(b);
}

/* One training step of network arch at batch 20, 1 thread, with ONEDNN_VERBOSE=1: its output in
 * out (cap bytes). */
static void verbose_training_step_of(const char *arch, char *out, size_t cap)
{
    int rc = tu_run(out, cap,
                    "ONEDNN_VERBOSE=1 %s bench train --arch %s --batch 20 --iters 1 --warmup 0 "
                    "--repetitions 1 --threads 1",
                    tu_exe(), arch);
    cr_assert_eq(rc, 0, "%s", out);
}
static void verbose_training_step(char *out, size_t cap)
{
    verbose_training_step_of("drsch-mnist", out, cap);
}

/* The next "onednn_verbose,exec," line at or after *pos, copied into buf (cut at 511 bytes);
 * NULL when there is none. Moves *pos past its start. */
static const char *next_exec_line(const char **pos, char buf[512])
{
    const char *line = strstr(*pos, "onednn_verbose,exec,");
    if (!line)
        return NULL;
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    snprintf(buf, 512, "%.*s", (int)(len < 511 ? len : 511), line);
    *pos = line + 1;
    return buf;
}

/* No training primitive of the default network runs on oneDNN's reference kernels (which are
 * 10-100x slower): on AVX2 the first convolution's weight gradient fell back to ref:any and
 * took 95% of a training step until core/nn_layers.c chose plain layouts for that layer. Where
 * oneDNN runs AVX-512, every layer of drsch-mnist is on drsch's loops and the step runs only
 * oneDNN's reorders of the weights; the verbose lines must be there either way. */
Test(train, no_reference_kernels_in_a_training_step)
{
    static char out[1 << 18];
    verbose_training_step(out, sizeof out);
    int execs = 0;
    char buf[512];
    for (const char *pos = out; next_exec_line(&pos, buf); execs++)
        if (!strstr(buf, ",reorder,"))
            cr_expect(!strstr(buf, ",ref:"), "a reference kernel in a training step: %s", buf);
    cr_expect_gt(execs, 0, "no oneDNN verbose lines: %s", out);
}

/* Where oneDNN runs AVX-512 kernels, a training convolution of 16+ input channels and a small
 * output that drsch's direct loops do not take (drsch-cifar's conv3: 8x8, padding 2) computes its
 * forward pass with the brgemm kernels (nhwc layouts): oneDNN's own choice (format_tag_any,
 * blocked layouts, direct jit kernels) ran drsch-mnist's conv2 13% slower in a training step.
 * Skipped where oneDNN's kernels are not AVX-512 (it has no f32 brgconv there). */
Test(train, avx512_training_convolutions_run_brgemm)
{
    static char out[1 << 18];
    verbose_training_step_of("drsch-cifar", out, sizeof out);
    if (!strstr(out, "isa:Intel AVX-512"))
        cr_skip_test("oneDNN does not run AVX-512 kernels here");
    int convs = 0;
    char buf[512];
    for (const char *pos = out; next_exec_line(&pos, buf);) {
        if (!strstr(buf, ",convolution,") || !strstr(buf, ",forward_training,") ||
            !strstr(buf, "_ic32oc64_ih8oh8"))
            continue;
        cr_expect(strstr(buf, ",brgconv:") != NULL, "a training convolution not on brgemm: %s",
                  buf);
        convs++;
    }
    cr_expect_eq(convs, 1, "drsch-cifar's conv3 did not run once: %s", out);
}

/* The implementation of each of drsch-mnist's layers in a training step and in encoding, as
 * bench train and bench encode report them (layer_impls): conv3 (6x6 input of 64 channels, 5x5
 * kernel, 2x2 output) runs wholly on drsch's direct loops in a training step where oneDNN runs
 * AVX-512 ("direct:avx512+grouped": forward pass and input gradient three whole images a block),
 * and in encoding as a product of its unfolded input and its weights on oneDNN's sgemm whose
 * forward pass runs on the same loops ("direct:avx512+sgemm"; oneDNN ran it as a convolution at
 * 27-58% of the f32 peak, its inner product at 30-50% at 2 threads), as an inner product (batch
 * 20: 80 rows of 64 x 5 x 5 values, forward and backward) elsewhere; conv2 runs on drsch's direct
 * AVX-512 loops wherever oneDNN runs AVX-512 (its kernels at 67-78% of the peak), over pool1's
 * output as oneDNN leaves it, on oneDNN elsewhere; conv1 and pool1 run on drsch's first-convolution
 * loops (one pass for both), pool2, pool3 on its pooling loops and fc1, fc2 on its fc loops
 * wherever oneDNN runs AVX-512, and the hash and bit-weight layers on drsch's plain C ("drsch")
 * everywhere. No oneDNN convolution computes conv3 in the step, nor conv1 and conv2 with
 * AVX-512, and no inner product the fc layers with AVX-512. */
Test(train, mnist_layer_implementations)
{
    static char out[1 << 18];
    verbose_training_step(out, sizeof out);
    char buf[512];
    const int avx512 = strstr(out, "isa:Intel AVX-512") != NULL;
    const char *kinds[] = {",forward_training,", ",backward_weights,", ",backward_data,"};
    int found[3] = {0, 0, 0};
    for (const char *pos = out; next_exec_line(&pos, buf);) {
        for (int k = 0; k < 3; k++)
            if (strstr(buf, ",inner_product,") && strstr(buf, kinds[k]) &&
                strstr(buf, "mb80ic1600oc128"))
                found[k] = 1;
        cr_expect(!(strstr(buf, ",convolution,") && strstr(buf, "_ic64oc128_")),
                  "conv3 ran as a convolution: %s", buf);
        cr_expect(!(avx512 && strstr(buf, ",convolution,") && strstr(buf, "_ic32oc64_")),
                  "conv2 ran on oneDNN: %s", buf);
        cr_expect(!(avx512 && strstr(buf, ",convolution,") && strstr(buf, "_ic1oc32_")),
                  "conv1 ran on oneDNN: %s", buf);
        cr_expect(!(avx512 && strstr(buf, ",inner_product,") &&
                    (strstr(buf, "ic128ih1iw1oc512") || strstr(buf, "ic512oc48"))),
                  "an fc layer ran on oneDNN: %s", buf);
        /* conv2 reads pool1's output and writes its gradient in pool1's layout */
        cr_expect(!(avx512 && strstr(buf, ",reorder,") && strstr(buf, ",20x32x11x11,")),
                  "pool1's output reordered for conv2: %s", buf);
    }
    for (int k = 0; k < 3; k++)
        cr_expect_eq(found[k], !avx512,
                     "%sinner product of conv3's unfolded input: %d (AVX-512: %d)", kinds[k],
                     found[k], avx512);
    const char *bench[] = {"train", "encode --images 40"};
    for (int b = 0; b < 2; b++) {
        const char *json = tu_path(b ? "layers-encode.json" : "layers-train.json");
        int rc = tu_run(out, sizeof out,
                        "%s bench %s --batch 20 --iters 1 --warmup 0 --repetitions 1 --threads 1 "
                        "--no-limits --json %s",
                        tu_exe(), bench[b], json);
        cr_assert_eq(rc, 0, "%s", out);
        char *rep = tu_slurp(json, NULL);
        cr_assert_not_null(rep);
        const char *layers = strstr(rep, "\"layer_impls\"");
        cr_assert_not_null(layers, "bench %s reports no layer_impls: %s", bench[b], rep);
        const char *want = b ? "\"drsch:stem,drsch:avg+stem,direct:avx512,drsch:avg,"
                               "direct:avx512+sgemm,drsch:avg,drsch:fc,drsch:fc,drsch,drsch\""
                             : "\"drsch:stem,drsch:avg+stem,direct:avx512,drsch:avg+direct,"
                               "direct:avx512+grouped,drsch:avg,drsch:fc,drsch:fc,drsch,drsch\"";
        const char *first = strchr(layers + strlen("\"layer_impls\""), '"');
        cr_assert_not_null(first, "%.200s", layers);
        if (avx512)
            cr_expect_eq(strncmp(first, want, strlen(want)), 0, "bench %s: %.200s", bench[b],
                         layers);
        else {
            cr_expect_eq(strstr(layers, "direct:avx512"), NULL, "bench %s: %.200s", bench[b],
                         layers);
            cr_expect_not_null(strstr(layers, ",drsch,drsch\""), "bench %s: %.200s", bench[b],
                               layers);
        }
        free(rep);
    }
}

/* The number after "key": in a report (NAN when absent). */
static double report_number(const char *rep, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(rep, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

/* bench train --passes: a row for each of drsch-mnist's ten layers, then the loss, the SGD step
 * and the parameter copies, and how much of the mean step they cover; the same as counters of the
 * JSON entry, whose passes add up to at most the step and (the rest being the step's loop) to
 * most of it; the conv layers' rows give GFLOP/s. Without --passes, no such rows or counters. */
Test(train, bench_train_passes_cover_the_step)
{
    static char out[1 << 16];
    for (int on = 0; on < 2; on++) {
        const char *json = tu_path(on ? "passes.json" : "no-passes.json");
        int rc =
            tu_run(out, sizeof out,
                   "%s bench train --batch 20 --iters 4 --warmup 1 --repetitions 2 --threads 2 "
                   "--no-limits %s --json %s",
                   tu_exe(), on ? "--passes" : "", json);
        cr_assert_eq(rc, 0, "%s", out);
        char *rep = tu_slurp(json, NULL);
        cr_assert_not_null(rep);
        if (!on) {
            cr_expect(!strstr(out, "passes:") && !strstr(rep, "pass_"), "%s", out);
            free(rep);
            continue;
        }
        cr_expect(strstr(out, "passes: means over 8 timed steps"), "%s", out);
        const char *rows[] = {" 0 conv 5x5/2 32, ", " 2 conv 5x5/1 64, ", " 3 avg pool 2x2/1, ",
                              " 7 fc 48, ",         " 9 bit weights, ",   "loss and its gradient",
                              "SGD step",           "parameter copies"};
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
            cr_expect(strstr(out, rows[i]), "no row '%s': %s", rows[i], out);
        const char *conv2 = strstr(out, " 2 conv 5x5/1 64, ");
        cr_expect(conv2 && strstr(conv2, "GFLOP/s") < strchr(conv2, '\n'), "%s", out);
        double sum = 0;
        char key[48];
        for (int i = 0; i < 10; i++)
            for (int b = 0; b < 2; b++) {
                snprintf(key, sizeof key, "pass_%s_ms_%d", b ? "backward" : "forward", i);
                const double v = report_number(rep, key);
                cr_expect(v >= 0, "%s: %g", key, v);
                sum += v;
            }
        cr_expect(isnan(report_number(rep, "pass_forward_ms_10")));
        sum += report_number(rep, "pass_loss_ms") + report_number(rep, "pass_sgd_ms") +
               report_number(rep, "pass_copies_ms");
        const double step = report_number(rep, "pass_step_ms");
        cr_expect(sum <= step && sum > 0.5 * step, "passes %g ms of a %g ms step", sum, step);
        cr_expect(report_number(rep, "pass_forward_ms_2") > 0 &&
                      report_number(rep, "pass_sgd_ms") > 0,
                  "%s", rep);
        free(rep);
    }
}

/* bench train / bench encode: the f32 peak measured before each repetition and after the last;
 * the headline's share is the best repetition's against the higher of the two peaks around it,
 * between the lowest and highest share any repetition reached, that peak between the lowest and
 * highest measured. With --ghz the formula's peak for every repetition, so the fastest repetition
 * has the highest share; with one repetition, its peak is the higher of the two measured. */
Test(train, bench_peak_is_measured_around_each_repetition)
{
    static char out[1 << 16];
    const char *cmds[] = {"train --batch 20 --iters 2 --warmup 1",
                          "encode --batch 20 --images 40 --iters 1 --warmup 0"};
    for (int c = 0; c < 2; c++)
        for (int ghz = 0; ghz < 2; ghz++) {
            const char *json = tu_path("peak.json");
            int rc = tu_run(out, sizeof out, "%s bench %s --repetitions 3 --threads 1 %s --json %s",
                            tu_exe(), cmds[c], ghz ? "--ghz 2" : "", json);
            cr_assert_eq(rc, 0, "%s", out);
            char *rep = tu_slurp(json, NULL);
            cr_assert_not_null(rep);
            const double gf = report_number(rep, "gflops"), pk = report_number(rep, "peak_gflops"),
                         frac = report_number(rep, "peak_fraction"),
                         pk_lo = report_number(rep, "peak_gflops_min"),
                         pk_hi = report_number(rep, "peak_gflops_max"),
                         fr_lo = report_number(rep, "peak_fraction_min"),
                         fr_hi = report_number(rep, "peak_fraction_max");
            cr_expect(gf > 0 && pk > 0 && fabs(frac - gf / pk) <= 1e-9 * frac, "%s", rep);
            cr_expect(pk_lo > 0 && pk_lo <= pk && pk <= pk_hi, "%s", rep);
            cr_expect(fr_lo > 0 && fr_lo <= frac && frac <= fr_hi, "%s", rep);
            if (ghz) {
                cr_expect(pk == 128 && pk_lo == 128 && pk_hi == 128, "1 x 2 GHz x 64: %s", rep);
                cr_expect(frac == fr_hi, "%s", rep);
                cr_expect(strstr(out, "formula: 1 thread x 2.000 GHz"), "%s", out);
            } else {
                cr_expect(strstr(out, "% of the f32 peak") &&
                              strstr(out, "measured around that repetition") &&
                              strstr(out, "an FMA loop before and after each repetition"),
                          "%s", out);
                cr_expect(strstr(rep, "before and after each repetition"), "%s", rep);
            }
            free(rep);
        }
    /* one repetition: two peaks around it, and the higher one is the headline's */
    const char *json = tu_path("one.json");
    int rc = tu_run(out, sizeof out,
                    "%s bench train --batch 20 --iters 2 --warmup 1 --repetitions 1 --threads 1 "
                    "--json %s",
                    tu_exe(), json);
    cr_assert_eq(rc, 0, "%s", out);
    char *rep = tu_slurp(json, NULL);
    cr_assert_not_null(rep);
    const double pk = report_number(rep, "peak_gflops");
    cr_expect(pk > 0 && pk == report_number(rep, "peak_gflops_max") &&
                  pk >= report_number(rep, "peak_gflops_min"),
              "%s", rep);
    cr_expect(report_number(rep, "peak_fraction") == report_number(rep, "peak_fraction_min") &&
                  report_number(rep, "peak_fraction") == report_number(rep, "peak_fraction_max"),
              "%s", rep);
    free(rep);
}

/* bench train --momentum: the SGD step's momentum, in the report's context, and it reaches the
 * update (the loss after a few steps moves with it; the same momentum, the same loss); out of
 * range refused, naming the flag. */
Test(train, bench_train_momentum_reaches_the_update)
{
    static char out[1 << 14];
    const char *m[] = {"0", "0.9", "0.9"};
    double loss[3];
    for (int i = 0; i < 3; i++) {
        const char *json = tu_path("momentum.json");
        int rc =
            tu_run(out, sizeof out,
                   "%s bench train --batch 20 --iters 4 --warmup 1 --repetitions 1 --threads 2 "
                   "--no-limits --momentum %s --json %s",
                   tu_exe(), m[i], json);
        cr_assert_eq(rc, 0, "%s", out);
        char *rep = tu_slurp(json, NULL);
        cr_assert_not_null(rep);
        cr_expect_eq(report_number(rep, "momentum"), atof(m[i]), "%s", rep);
        const char *entry = strstr(rep, "\"benchmarks\""); /* past the context's "loss" */
        cr_assert_not_null(entry, "%s", rep);
        loss[i] = report_number(entry, "loss");
        cr_expect(isfinite(loss[i]), "%s", rep);
        free(rep);
    }
    cr_expect_neq(loss[0], loss[1], "momentum 0 and 0.9: the same loss %.17g", loss[0]);
    cr_expect_eq(loss[1], loss[2], "momentum 0.9 twice: %.17g and %.17g", loss[1], loss[2]);
    int rc = tu_run(out, sizeof out, "%s bench train --momentum 1", tu_exe());
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "--momentum: 1 is out of range"), "%s", out);
}

/* The gradient norm that clipping compares with its limit: over drsch-mnist's 348,000 gradient
 * values (seeded, spread over six orders of magnitude), the same bits at 1 and 2 threads, and
 * within 1e-12 (relative) of the norm summed in long double. */
Test(train, gradient_norm_same_at_any_thread_count)
{
    nn_config cfg;
    drsch_error err;
    cr_assert_eq(nn_config_init(&cfg, "drsch-mnist", 48, 10, 1, &err), DRSCH_OK, "%s", err.msg);
    nn_net *net = NULL;
    cr_assert_eq(nn_net_create(&net, &cfg, &err), DRSCH_OK, "%s", err.msg);
    rng_state r;
    rng_seed(&r, 5);
    long double ref = 0;
    size_t count = 0;
    for (int32_t i = 0; i < nn_param_count(net); i++) {
        nn_param p = nn_param_at(net, i);
        for (size_t k = 0; k < p.count; k++) {
            const double u = (double)(rng_next(&r) >> 11) * 0x1.0p-53 - 0.5;
            p.grad[k] = (float)(u * pow(10.0, (double)(k % 7) - 3.0));
            ref += (long double)p.grad[k] * p.grad[k];
        }
        count += p.count;
    }
    cr_assert_gt(count, 300000);
    double norm[2];
#ifdef DRSCH_HAVE_OPENMP
    const int before = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        norm[t] = tr_grad_norm(net);
    }
    omp_set_num_threads(before);
#else
    norm[0] = norm[1] = tr_grad_norm(net);
#endif
    cr_expect_eq(memcmp(&norm[0], &norm[1], sizeof norm[0]), 0, "1 thread %.17g, 2 threads %.17g",
                 norm[0], norm[1]);
    const double want = (double)sqrtl(ref);
    cr_expect(fabs(norm[0] - want) <= 1e-12 * want, "norm %.17g, long double sum %.17g", norm[0],
              want);
    nn_net_free(net);
}

/* ---- the classifier baseline (--loss softmax) on a tiny synthetic MNIST-style dataset ---- */

static char cls_data[1024];

static void cls_setup(void)
{
    tu_tmpdir_make("classifier");
    write_small_mnist("mnist", cls_data, sizeof cls_data);
}

TestSuite(classifier, .init = cls_setup, .fini = tu_tmpdir_remove, .timeout = 600);

#define CLS_FLAGS                                                                                  \
    "--protocol full --loss softmax --per-class 2 --lr 0.004 --threads 2 --log-every 50 "          \
    "--checkpoint-every 50"

/* The loss of the progress line of iteration it ("iter     50/150  loss softmax 2.25"). */
static double progress_loss(const char *out, int it, int iters)
{
    char key[64];
    snprintf(key, sizeof key, "iter %6d/%d  loss softmax ", it, iters);
    const char *p = strstr(out, key);
    cr_assert_not_null(p, "no progress line for iteration %d: %s", it, out);
    return strtod(p + strlen(key), NULL);
}

/* Trains a classifier: the settings and progress lines say so, the loss decreases, --eval's mAP
 * is high, the model is a 10-class softmax model whose codes are one-hot (mostly of the right
 * class), eval --model prints its mAP; an interrupted and resumed run writes the same model and
 * state as an uninterrupted one. */
Test(classifier, trains_evaluates_and_resumes)
{
    static char out[1 << 16];
    int rc = tu_run(out, sizeof out,
                    "%s train --dataset mnist:%s " CLS_FLAGS " --iters 150 --out %s --eval",
                    tu_exe(), cls_data, tu_path("c.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_neq(strstr(out, "10 bits, 150 iterations"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "loss softmax (classifier: one bit per class)"), NULL, "%s", out);
    double l50 = progress_loss(out, 50, 150), l150 = progress_loss(out, 150, 150);
    cr_expect_lt(l150, 0.7 * l50, "the loss did not decrease: %g then %g", l50, l150);
    const char *row = strstr(out, "\n    10 ");
    cr_assert_not_null(row, "%s", out);
    double map = strtod(row + 8, NULL);
    cr_expect_gt(map, 0.9, "mAP of the classifier %g: %s", map, out);
    cr_expect_null(strstr(out, "\n    12 "), "a classifier has no prefix lengths: %s", out);

    nn_net *model = NULL;
    drsch_error ne;
    cr_assert_eq(nn_model_load(&model, tu_path("c.bin"), 1, 0, &ne), DRSCH_OK, "%s", ne.msg);
    cr_expect_eq(nn_net_config(model)->head, NN_HEAD_SOFTMAX);
    cr_expect_eq(nn_net_config(model)->bits, 10);
    cr_expect_null(nn_bit_weights(model));
    for (int j = 0; j < 10; j++)
        cr_expect_eq(nn_bit_order(model)[j], (uint32_t)j, "bit %d is not class %d", j, j);
    nn_net_free(model);

    rc = tu_run(out, sizeof out,
                "%s encode --model %s --dataset mnist:%s --protocol full --split query --threads 2 "
                "--out %s",
                tu_exe(), tu_path("c.bin"), cls_data, tu_path("q"));
    cr_assert_eq(rc, 0, "%s", out);
    npy_array codes, labels;
    drsch_error err;
    cr_assert_eq(npy_load(tu_path("q.codes.npy"), &codes, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(npy_load(tu_path("q.labels.npy"), &labels, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(codes.shape[0], 60);
    cr_assert_eq(codes.shape[1], 2);
    int right = 0;
    for (int i = 0; i < 60; i++) {
        const uint8_t *c = (const uint8_t *)codes.data + 2 * i;
        unsigned v = c[0] | (unsigned)c[1] << 8;
        cr_expect(v && !(v & (v - 1)) && v < 1024, "code %d is not one-hot: %x", i, v);
        right += v == 1u << ((int32_t *)labels.data)[i];
    }
    cr_expect_geq(right, 54, "%d of 60 queries classified right", right);
    npy_free(&codes), npy_free(&labels);

    rc =
        tu_run(out, sizeof out, "%s eval --model %s --dataset mnist:%s --protocol full --threads 2",
               tu_exe(), tu_path("c.bin"), cls_data);
    cr_assert_eq(rc, 0, "%s", out);
    row = strstr(out, "\n    10 ");
    cr_assert_not_null(row, "%s", out);
    cr_expect_float_eq(strtod(row + 8, NULL), map, 1e-4, "%s", out);

    /* interrupted at 100 (a run of 100), resumed to 150 */
    rc = tu_run(out, sizeof out, "%s train --dataset mnist:%s " CLS_FLAGS " --iters 100 --out %s",
                tu_exe(), cls_data, tu_path("r.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s " CLS_FLAGS " --iters 150 --resume %s --out %s",
                tu_exe(), cls_data, tu_path("r.bin"), tu_path("r.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    const char *pairs[2][2] = {{"c.bin", "r.bin"}, {"c.bin.state", "r.bin.state"}};
    for (int k = 0; k < 2; k++) {
        size_t la, lb;
        char *a = tu_slurp(tu_path(pairs[k][0]), &la), *b = tu_slurp(tu_path(pairs[k][1]), &lb);
        cr_expect(la == lb && memcmp(a, b, la) == 0, "resumed %s differs from the straight run",
                  pairs[k][1]);
        free(a), free(b);
    }
}

/* A classifier's checkpoint cannot continue a DRSCH run, nor a DRSCH checkpoint a classifier
 * run; --bits other than the class count is a usage error. */
Test(classifier, refuses_mixing_and_other_bits)
{
    static char out[1 << 16];
    int rc =
        tu_run(out, sizeof out, "%s train --dataset mnist:%s " CLS_FLAGS " --iters 10 --out %s",
               tu_exe(), cls_data, tu_path("c.bin"));
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s --protocol full --per-class 2 --threads 2 --bits 10 "
                "--log-every 50 --checkpoint-every 50 --iters 10 --out %s",
                tu_exe(), cls_data, tu_path("h.bin"));
    cr_assert_eq(rc, 0, "%s", out);

    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s --protocol full --per-class 2 --threads 2 --bits 10 "
                "--log-every 50 --checkpoint-every 50 --iters 20 --resume %s --out %s",
                tu_exe(), cls_data, tu_path("c.bin"), tu_path("x.bin"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_neq(strstr(out, "a classifier (softmax) model cannot continue a DRSCH run"), NULL,
                  "%s", out);
    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s " CLS_FLAGS " --iters 20 --resume %s --out %s",
                tu_exe(), cls_data, tu_path("h.bin"), tu_path("x.bin"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_neq(strstr(out, "a hash model cannot continue a classifier run"), NULL, "%s", out);
    /* the state alone says it too (a classifier model beside a DRSCH state) */
    size_t len;
    char *st = tu_slurp(tu_path("h.bin.state"), &len);
    tu_write_file(tu_path("c.bin.state"), st, len);
    free(st);
    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s " CLS_FLAGS " --iters 20 --resume %s --out %s",
                tu_exe(), cls_data, tu_path("c.bin"), tu_path("x.bin"));
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_neq(strstr(out, "--loss drsch (this run: softmax)"), NULL, "%s", out);
    cr_expect(access(tu_path("x.bin"), F_OK) != 0, "a refused resume wrote a model");

    rc = tu_run(out, sizeof out,
                "%s train --dataset mnist:%s " CLS_FLAGS " --bits 16 --iters 10 --out %s", tu_exe(),
                cls_data, tu_path("b.bin"));
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect_neq(strstr(out, "--bits 10, not 16"), NULL, "%s", out);
    rc = tu_run(out, sizeof out, "%s train --help", tu_exe());
    cr_expect_neq(strstr(out, "--loss L"), NULL, "%s", out);
}

/* The library entry of the classifier baseline on the transfer protocol (7 of 10 classes train,
 * the 3 others are queried): a 7-class model, 7-bit one-hot codes of queries and database,
 * weights 1; a dataset that is not single-label is refused before training. */
Test(classifier, library_entry_on_the_transfer_protocol)
{
    ds_dataset *d = NULL;
    drsch_error err;
    char spec[1100];
    snprintf(spec, sizeof spec, "mnist:%s", cls_data);
    cr_assert_eq(ds_load(spec, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    ds_transfer_opts to;
    ds_transfer_opts_default(&to);
    to.query_per_class = 10;
    ds_split sp = {0};
    cr_assert_eq(ds_split_transfer(d, &to, 1, &sp, &err), DRSCH_OK, "%s", err.msg);
    cr_assert_eq(tr_train_classes(d, &sp), 7);
    tr_config c;
    tr_config_default(&c, d);
    c.iters = 20;
    c.classes_per_batch = 7;
    c.images_per_class = 2;
    c.log_every = 10;
    xp_codes codes;
    cr_assert_eq(
        xp_classifier_codes(&c, d, &sp, tu_path("t.bin"), NULL, NULL, NULL, NULL, &codes, &err),
        DRSCH_OK, "%s", err.msg);
    cr_expect_eq(codes.bits, 7);
    cr_expect_eq(codes.query.n, (size_t)sp.n_query);
    cr_expect_eq(codes.db.n, (size_t)sp.n_db);
    for (size_t i = 0; i < codes.query.n; i++) {
        uint64_t v = codes.query.data[i * codes.query.words];
        cr_expect(v && !(v & (v - 1)) && v < 128, "query %zu: %llx", i, (unsigned long long)v);
    }
    for (uint32_t j = 0; j < 7; j++)
        cr_expect_eq(codes.weights[j], 1.0f);
    xp_codes_free(&codes);
    ds_split_free(&sp);
    ds_dataset_free(d);

    ds_dataset multi;
    memset(&multi, 0, sizeof multi);
    snprintf(multi.name, sizeof multi.name, "multi");
    multi.label_kind = DS_LABELS_MULTI;
    multi.n_classes = 21;
    ds_split none = {0};
    snprintf(none.name, sizeof none.name, "none");
    cr_expect_eq(tr_train_classes(&multi, &none), -1);
    cr_expect_eq(xp_classifier_codes(&c, &multi, &none, tu_path("u.bin"), NULL, NULL, NULL, NULL,
                                     &codes, &err),
                 DRSCH_ERR_ARG);
    cr_expect_neq(strstr(err.msg, "single-label"), NULL, "%s", err.msg);
    cr_expect(access(tu_path("u.bin"), F_OK) != 0);
}

/* ---- data parallel (tr_train_parallel) as rank 1 of 2, beside a stand-in rank 0 ----
 * The stand-in's collectives: its rows are this rank's (the gathers copy them), its gradients
 * too (the sum doubles), its parameters this rank's (broadcasts change nothing); its failure is
 * reported at the fail_at-th agreement (max). Under mpirun the same runs across processes
 * (test_mpi). */

typedef struct {
    int calls, fail_at;
} stand_in;

static void si_allgather(void *ctx, const float *send, float *recv, const int32_t *counts)
{
    (void)ctx;
    memcpy(recv, send, sizeof(float) * (size_t)counts[1]);
    memcpy(recv + counts[0], send, sizeof(float) * (size_t)counts[1]);
}
static void si_sum(void *ctx, float *buf, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        buf[i] *= 2;
}
/* rank 0's data as zeros (its start iteration 0, its parameters and history all zero): left as
 * they were, rank 1's buffers held whatever the heap had, which made some runs train from
 * non-finite weights (the parameters' buffer is not initialised before the broadcast) */
static void si_broadcast(void *ctx, void *buf, size_t bytes)
{
    (void)ctx;
    memset(buf, 0, bytes);
}
static int32_t si_max(void *ctx, int32_t v)
{
    stand_in *s = ctx;
    return ++s->calls == s->fail_at ? 1 : v;
}

/* Whichever agreement of a run (the set-up, each iteration's forward and backward, each
 * checkpoint) carries the other rank's failure, this rank returns DRSCH_ERR_PEER there and goes
 * no further (no later collective: under mpirun, no hang); a stop of the other rank (each
 * iteration's first agreement) stops this one after the checkpoint's agreement; a run without
 * either finishes; rank 1 writes no file. */
Test(classifier, a_peer_failure_at_any_agreement_ends_the_run)
{
    ds_dataset *d = NULL;
    drsch_error err;
    char spec[1100];
    snprintf(spec, sizeof spec, "mnist:%s", cls_data);
    cr_assert_eq(ds_load(spec, NULL, &d, &err), DRSCH_OK, "%s", err.msg);
    ds_split sp = {0};
    cr_assert_eq(xp_make_split(d, XP_PROTO_FULL, 1, 0, NULL, &sp, &err), DRSCH_OK, "%s", err.msg);
    tr_config c;
    tr_config_default(&c, d);
    c.bits = 16;
    c.iters = 6;
    c.images_per_class = 2; /* batches of 20: 10 rows on each rank */
    c.log_every = 2;
    c.checkpoint_every = 3;
    stand_in s = {0, 0};
    tr_parallel par = {.rank = 1,
                       .size = 2,
                       .ctx = &s,
                       .allgather = si_allgather,
                       .sum = si_sum,
                       .broadcast = si_broadcast,
                       .max = si_max};
    cr_assert_eq(
        tr_train_parallel(&c, d, &sp, tu_path("p.bin"), NULL, NULL, NULL, NULL, &par, &err),
        DRSCH_OK, "%s", err.msg);
    const int agreements = s.calls;
    cr_expect_geq(agreements, 3 * 6 + 2, "a stop, forward and backward agreement per iteration");
    int stops = 0;
    for (int k = 1; k <= agreements; k++) {
        s = (stand_in){0, k};
        drsch_status st =
            tr_train_parallel(&c, d, &sp, tu_path("p.bin"), NULL, NULL, NULL, NULL, &par, &err);
        if (st == DRSCH_INTERRUPTED) { /* it was a stop agreement: the other rank stopped */
            cr_expect_gt(k, 1, "the set-up agreement is not a stop");
            cr_expect_eq(s.calls, k + 1, "stop at agreement %d: then the checkpoint's only", k);
            stops++;
            continue;
        }
        cr_expect_eq(st, DRSCH_ERR_PEER, "failure at agreement %d: status %d (%s)", k, st, err.msg);
        cr_expect_str_eq(err.msg, "another rank failed");
        cr_expect_eq(s.calls, k, "failure at agreement %d: %d collectives after it", k,
                     s.calls - k);
    }
    cr_expect_eq(stops, 6, "one stop agreement per iteration");
    cr_expect_neq(access(tu_path("p.bin"), F_OK), 0, "rank 1 writes nothing");
    ds_split_free(&sp);
    ds_dataset_free(d);
}
