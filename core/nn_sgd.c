/* SGD with momentum, weight decay with per-tensor multipliers and Caffe's "step" learning-rate
 * policy, applied in place over the net's single parameter | gradient | history allocation.
 * Element-wise, so it works on blocked layouts as they are (padding stays zero). */
#include <math.h>

#include "nn_internal.h"

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

drsch_status nn_sgd_step(nn_net *net, const nn_sgd_config *c, int64_t iter, drsch_error *err)
{
    if (!net->cfg.training)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "SGD step: the network was created for inference, not training");
    const float lr = nn_sgd_lr(c, iter), mom = c->momentum;
    const size_t region = net->block_floats;
    /* One parallel region for all tensors (waking threads per tensor cost more than the update). */
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel
#endif
    for (int t = 0; t < net->n_tensors; t++) {
        const nn_tensor *T = &net->tensors[t];
        float *w = net->block + T->offset, *g = w + region, *v = g + region;
        const float a = lr * T->lr_mult, wd = c->weight_decay * T->decay_mult;
        const ptrdiff_t n = (ptrdiff_t)T->count;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp for simd schedule(static) nowait
#endif
        for (ptrdiff_t k = 0; k < n; k++) {
            v[k] = mom * v[k] + a * (g[k] + wd * w[k]);
            w[k] -= v[k];
        }
    }
    net->weights_dirty = true;
    return DRSCH_OK;
}
