/* Data-parallel training replicas in one process (nn.h: nn_team). Each replica is a whole training
 * net for its share of the batch rows, created while OpenMP offers one thread, so oneDNN plans
 * every primitive for one thread; inside the team's parallel region oneDNN runs each primitive on
 * the calling thread alone. The replicas' layouts are checked to be the same, so the gradients
 * add element by element over the parameter block and the parameters copy as one memcpy. */
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

struct nn_team {
    int32_t replicas, rows, out_dim, bits;
    nn_net **nets; /* nets[0] is the lead */
    int32_t *lo;   /* replicas + 1 row boundaries */
    float *y, *u; /* rows x out_dim outputs, rows x bits hash outputs (NULL without a hash layer) */
    drsch_status *st; /* per replica: the last call's status and error */
    drsch_error *err;
};

int32_t nn_team_rows_of(int32_t rows, int32_t replicas, int32_t k)
{
    return (int32_t)((int64_t)(k + 1) * rows / replicas - (int64_t)k * rows / replicas);
}

/* A net for `batch` rows with oneDNN's primitives planned for one thread. */
static drsch_status create_replica(nn_net **out, const nn_config *base, int32_t batch,
                                   drsch_error *err)
{
    nn_config cfg = *base;
    cfg.batch = batch;
    cfg.input_grad = 0; /* the team gives no input gradient */
#ifdef DRSCH_HAVE_OPENMP
    int before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    drsch_status st = nn_net_create(out, &cfg, err);
#ifdef DRSCH_HAVE_OPENMP
    omp_set_num_threads(before);
#endif
    return st;
}

/* Whether b's parameter block is laid out as a's (same tensors, offsets and layouts). */
static int same_layout(const nn_net *a, const nn_net *b)
{
    if (a->n_tensors != b->n_tensors || a->block_floats != b->block_floats)
        return 0;
    for (int t = 0; t < a->n_tensors; t++) {
        const nn_tensor *x = &a->tensors[t], *y = &b->tensors[t];
        if (x->offset != y->offset || x->count != y->count ||
            !dnnl_memory_desc_equal(&x->md, &y->md))
            return 0;
    }
    return 1;
}

drsch_status nn_team_create(nn_team **out, const nn_net *model, int32_t replicas, drsch_error *err)
{
    *out = NULL;
    const nn_config *mc = nn_net_config(model);
    if (!mc->training)
        return drsch_fail(err, DRSCH_ERR_ARG, "training replicas: the model is an inference net");
    if (replicas < 1 || replicas > NN_TEAM_MAX || replicas > mc->batch)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "training replicas: %d replicas cannot share batches of %d images "
                          "(1 to %d replicas, at most one per image)",
                          replicas, mc->batch, NN_TEAM_MAX);
    nn_team *t = calloc(1, sizeof *t);
    if (!t)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    t->replicas = replicas;
    t->rows = mc->batch;
    t->out_dim = nn_output_dim(model);
    t->bits = mc->bits;
    t->nets = calloc((size_t)replicas, sizeof *t->nets);
    t->lo = malloc(sizeof *t->lo * ((size_t)replicas + 1));
    t->st = malloc(sizeof *t->st * (size_t)replicas);
    t->err = malloc(sizeof *t->err * (size_t)replicas);
    t->y = malloc(sizeof(float) * (size_t)t->rows * (size_t)t->out_dim);
    int hashed = model->hash_layer >= 0;
    if (hashed)
        t->u = malloc(sizeof(float) * (size_t)t->rows * (size_t)t->bits);
    drsch_status st = DRSCH_OK;
    if (!t->nets || !t->lo || !t->st || !t->err || !t->y || (hashed && !t->u))
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for %d training replicas", replicas);
    for (int32_t k = 0; st == DRSCH_OK && k <= replicas; k++)
        t->lo[k] = (int32_t)((int64_t)k * t->rows / replicas);
    for (int32_t k = 0; st == DRSCH_OK && k < replicas; k++) {
        st = create_replica(&t->nets[k], mc, t->lo[k + 1] - t->lo[k], err);
        if (st == DRSCH_OK)
            st = nn_net_copy_params(t->nets[k], model, err);
        if (st == DRSCH_OK && k > 0 && !same_layout(t->nets[0], t->nets[k]))
            st = drsch_fail(err, DRSCH_ERR_UNSUPPORTED,
                            "training replicas: oneDNN laid out the parameters of a replica of %d "
                            "images unlike those of one of %d; use one replica",
                            t->lo[k + 1] - t->lo[k], t->lo[1]);
    }
    if (st == DRSCH_OK)
        st = nn_net_copy_history(t->nets[0], model, err);
    if (st != DRSCH_OK) {
        nn_team_free(t);
        return st;
    }
    *out = t;
    return DRSCH_OK;
}

void nn_team_free(nn_team *team)
{
    if (!team)
        return;
    for (int32_t k = 0; team->nets && k < team->replicas; k++)
        nn_net_free(team->nets[k]);
    free(team->nets);
    free(team->lo);
    free(team->st);
    free(team->err);
    free(team->y);
    free(team->u);
    free(team);
}

nn_net *nn_team_lead(nn_team *team) { return team->nets[0]; }

int32_t nn_team_replicas(const nn_team *team) { return team->replicas; }

/* Runs fn(team, k, arg) for every replica k on the OpenMP threads (one replica each when there
 * are as many threads, else some take turns: each replica computes alone, so the results are the
 * same); the first failure (in replica order) is returned. */
typedef drsch_status (*replica_fn)(nn_team *team, int32_t k, const float *arg, drsch_error *err);
static drsch_status each_replica(nn_team *team, replica_fn fn, const float *arg, drsch_error *err)
{
    const int32_t R = team->replicas;
    drsch_status *st = team->st;
    drsch_error *e = team->err;
#ifdef DRSCH_HAVE_OPENMP
    int threads = omp_get_max_threads();
    threads = threads < R ? threads : R;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
    for (int32_t k = 0; k < R; k++)
        st[k] = fn(team, k, arg, &e[k]);
    for (int32_t k = 0; k < R; k++)
        if (st[k] != DRSCH_OK) {
            if (err)
                *err = e[k];
            return st[k];
        }
    return DRSCH_OK;
}

static drsch_status forward_one(nn_team *team, int32_t k, const float *x, drsch_error *err)
{
    nn_net *net = team->nets[k];
    const int32_t lo = team->lo[k], n = team->lo[k + 1] - lo;
    TRY(nn_forward(net, x + (size_t)lo * nn_input_size(net), err));
    memcpy(team->y + (size_t)lo * (size_t)team->out_dim, nn_output(net),
           sizeof(float) * (size_t)n * (size_t)team->out_dim);
    if (team->u)
        memcpy(team->u + (size_t)lo * (size_t)team->bits, nn_hash_output(net),
               sizeof(float) * (size_t)n * (size_t)team->bits);
    return DRSCH_OK;
}

drsch_status nn_team_forward(nn_team *team, const float *x, drsch_error *err)
{
    /* the lead's parameters (changed by SGD since the last step) and hash scale to the others */
    const nn_net *lead = team->nets[0];
    for (int32_t k = 1; k < team->replicas; k++) {
        nn_net *net = team->nets[k];
        memcpy(net->block, lead->block, sizeof(float) * lead->block_floats);
        net->hash_scale = lead->hash_scale;
        net->weights_dirty = true;
    }
    return each_replica(team, forward_one, x, err);
}

const float *nn_team_output(const nn_team *team) { return team->y; }

const float *nn_team_hash_output(const nn_team *team) { return team->u; }

static drsch_status backward_one(nn_team *team, int32_t k, const float *dy, drsch_error *err)
{
    return nn_backward(team->nets[k], dy + (size_t)team->lo[k] * (size_t)team->out_dim, NULL, err);
}

drsch_status nn_team_backward(nn_team *team, const float *dy, drsch_error *err)
{
    TRY(each_replica(team, backward_one, dy, err));
    /* the lead's gradient += every other replica's, in replica order for every element */
    const size_t n = team->nets[0]->block_floats;
    float *g = team->nets[0]->block + n;
    const int32_t R = team->replicas;
    nn_net *const *nets = team->nets;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel for simd schedule(static)
#endif
    for (size_t i = 0; i < n; i++) {
        float s = g[i];
        for (int32_t k = 1; k < R; k++)
            s += nets[k]->block[n + i];
        g[i] = s;
    }
    return DRSCH_OK;
}
