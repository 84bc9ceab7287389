/* SGD with momentum, weight decay with per-tensor multipliers and Caffe's "step" learning-rate
 * policy, applied in place over the net's single parameter | gradient | history allocation.
 * Element-wise, so it works on blocked layouts as they are (padding stays zero). The recipes
 * set the per-tensor multipliers by parameter group. */
#include <math.h>
#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

#include "nn_internal.h"

/* {lr, decay} multipliers of each group (nn_param_group order), per recipe (nn_recipe order). */
static const float RECIPES[][NN_GROUPS][2] = {
    /* drsch: the named architectures' (nn_arch.c), Caffe's usual ones */
    {{1, 1}, {1, 1}, {2, 0}, {1, 0}},
    /* authors: prototxt/triplet/triplet_train.prototxt of ruixuejianfei/BitScalableDeepHash:
     * conv1-3 "blobs_lr: 1. blobs_lr: 1. weight_decay: 0.1 weight_decay: 0.", fc_7_triplet and
     * fc_8_triplet the same with weight_decay 0.5, weight_hash (elewise_product) blobs_lr 1,
     * weight_decay 0.5 (its second blob, a bias, is not used by its forward pass) */
    {{1, 0.1f}, {1, 0.5f}, {1, 0}, {1, 0.5f}},
};
#define N_RECIPES (int)(sizeof RECIPES / sizeof RECIPES[0])

const char *nn_recipe_name(nn_recipe r)
{
    switch (r) {
    case NN_RECIPE_DRSCH: return "drsch";
    case NN_RECIPE_AUTHORS: return "authors";
    }
    return NULL;
}

drsch_status nn_recipe_mults(nn_recipe r, nn_param_group g, float *lr_mult, float *decay_mult,
                             drsch_error *err)
{
    if ((int)r < 0 || (int)r >= N_RECIPES || (int)g < 0 || (int)g >= NN_GROUPS)
        return drsch_fail(err, DRSCH_ERR_ARG, "recipe %d, parameter group %d: no such %s", (int)r,
                          (int)g, (int)r < 0 || (int)r >= N_RECIPES ? "recipe" : "group");
    *lr_mult = RECIPES[r][g][0];
    *decay_mult = RECIPES[r][g][1];
    return DRSCH_OK;
}

nn_param_group nn_param_group_at(const nn_net *net, int32_t i)
{
    const nn_tensor *T = &net->tensors[i];
    if (T->is_bias)
        return NN_GROUP_BIAS;
    switch (net->layers[T->layer].spec.kind) {
    case NN_LAYER_CONV: return NN_GROUP_CONV_W;
    case NN_LAYER_BITW: return NN_GROUP_BIT_W;
    default: /* NN_LAYER_FC: the only other layer with parameters */ return NN_GROUP_FC_W;
    }
}

drsch_status nn_net_set_recipe(nn_net *net, nn_recipe r, drsch_error *err)
{
    float m[NN_GROUPS][2];
    for (int g = 0; g < NN_GROUPS; g++)
        TRY(nn_recipe_mults(r, (nn_param_group)g, &m[g][0], &m[g][1], err));
    for (int t = 0; t < net->n_tensors; t++) {
        nn_tensor *T = &net->tensors[t];
        const nn_param_group g = nn_param_group_at(net, t);
        T->lr_mult = m[g][0];
        T->decay_mult = m[g][1];
        /* the layer's spec and the architecture table, which model files record */
        nn_layer_spec *specs[2] = {&net->layers[T->layer].spec, &net->cfg.arch.layers[T->layer]};
        for (int k = 0; k < 2; k++) {
            if (T->is_bias) {
                specs[k]->b_lr_mult = T->lr_mult;
                specs[k]->b_decay_mult = T->decay_mult;
            } else {
                specs[k]->w_lr_mult = T->lr_mult;
                specs[k]->w_decay_mult = T->decay_mult;
            }
        }
    }
    return DRSCH_OK;
}

void nn_sgd_defaults(nn_sgd_config *c)
{
    c->base_lr = 0.00333f; /* authors' solver.prototxt */
    c->momentum = 0.0f;
    c->weight_decay = 0.0005f;
    c->gamma = 1.0f / 3.0f;
    c->step = 50000;
    c->warmup = 0;
}

float nn_sgd_lr(const nn_sgd_config *c, int64_t iter)
{
    float lr = c->step <= 0 ? c->base_lr : c->base_lr * powf(c->gamma, (float)(iter / c->step));
    if (c->warmup > 0 && iter < c->warmup)
        lr *= (float)(iter + 1) / (float)c->warmup;
    return lr;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SGD_STREAM 1

/* Updates v..v + 16 * count and w..w + 16 * count (both 64-byte aligned) with the history stored
 * past the caches: nothing reads it again before the next step's update, and with no momentum
 * the update does not read it either (0 x v + x is x for every finite v), so its lines are
 * written without being fetched first. The weights too when past_w (see nn_sgd_step). The same
 * operations in the same order as nn_sgd_step's loop (x = a (g + wd w), then mom v + x,
 * commuted, then w - x). */
__attribute__((target("avx512f"))) static void sgd_stream(float *w, const float *g, float *v,
                                                          size_t count, float a, float wd,
                                                          float mom, bool past_w)
{
    const __m512 va = _mm512_set1_ps(a), vwd = _mm512_set1_ps(wd), vmom = _mm512_set1_ps(mom);
    for (size_t k = 0; k < count * 16; k += 16) {
        const __m512 wk = _mm512_loadu_ps(w + k);
        __m512 x = _mm512_mul_ps(va, _mm512_add_ps(_mm512_loadu_ps(g + k), _mm512_mul_ps(vwd, wk)));
        if (mom != 0.0f)
            x = _mm512_add_ps(_mm512_mul_ps(vmom, _mm512_load_ps(v + k)), x);
        _mm512_stream_ps(v + k, x);
        if (past_w)
            _mm512_stream_ps(w + k, _mm512_sub_ps(wk, x));
        else
            _mm512_storeu_ps(w + k, _mm512_sub_ps(wk, x));
    }
}
#endif

drsch_status nn_sgd_step(nn_net *net, const nn_sgd_config *c, int64_t iter, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "SGD step: the network was created for inference, not training");
    const float lr = nn_sgd_lr(c, iter), mom = c->momentum;
    const size_t region = net->block_floats;
    double t = net->timing ? nn_clock() : 0;
#ifdef HAVE_SGD_STREAM
    /* AVX-512: whole vectors of each tensor (64-byte aligned, allocate_params) by sgd_stream, in
     * units of 64 vectors; the last few values by the loop below. drsch-mnist, batch 100, 2
     * threads, 2-core Zen 5, `drsch bench train --passes --momentum M`, medians of ten alternate
     * runs: the update 0.189 -> 0.123 ms with no momentum (the library's default), 0.196 -> 0.125
     * ms with 0.9 (drsch train's). With more than one thread the weights are stored past the
     * caches as well: both cores read every weight in the passes before, so each line the update
     * stores had first to be taken from the other core's caches; streamed, it is not (eight
     * alternate runs, no momentum: the update 0.112 -> 0.054 ms, the step -1.0%, the copies and
     * forward passes that read the weights next no slower; six with 0.9: 0.112 -> 0.071 ms). One
     * thread keeps them in its caches, where those passes read them: streamed, its update took
     * 0.105 ms against 0.080 (four alternate runs at 1 thread). */
    const bool stream = __builtin_cpu_supports("avx512f");
#else
    const bool stream = false;
#endif
    /* One parallel region for all tensors (waking threads per tensor cost more than the update). */
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel
#endif
    {
        for (int t = 0; t < net->n_tensors; t++) {
            const nn_tensor *T = &net->tensors[t];
            float *w = net->block + T->offset, *g = w + region, *v = g + region;
            const float a = lr * T->lr_mult, wd = c->weight_decay * T->decay_mult;
            const ptrdiff_t n = (ptrdiff_t)T->count, done = stream ? n / 16 * 16 : 0;
#ifdef HAVE_SGD_STREAM
            if (stream) {
                const ptrdiff_t units = (done / 16 + 63) / 64;
#ifdef DRSCH_HAVE_OPENMP
                const bool past_w = omp_get_num_threads() > 1;
#else
                const bool past_w = false;
#endif
#ifdef DRSCH_HAVE_OPENMP
#pragma omp for schedule(static) nowait
#endif
                for (ptrdiff_t u = 0; u < units; u++) {
                    const ptrdiff_t k = u * 1024, count = done - k < 1024 ? done - k : 1024;
                    sgd_stream(w + k, g + k, v + k, (size_t)count / 16, a, wd, mom, past_w);
                }
            }
#endif
#ifdef DRSCH_HAVE_OPENMP
#pragma omp for simd schedule(static) nowait
#endif
            for (ptrdiff_t k = done; k < n; k++) {
                v[k] = mom * v[k] + a * (g[k] + wd * w[k]);
                w[k] -= v[k];
            }
        }
#ifdef HAVE_SGD_STREAM
        if (stream)
            _mm_sfence(); /* the streamed history (and weights) before the region's end */
#endif
    }
    net->weights_dirty = true;
    if (net->timing) {
        nn_lap(net, &net->times.sgd_s, &t);
        net->times.sgd_steps++;
    }
    return DRSCH_OK;
}
