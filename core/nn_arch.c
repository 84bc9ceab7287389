/* Named architectures as layer tables. "drsch-mnist" follows the authors' Caffe prototxt
 * (ruixuejianfei/BitScalableDeepHash, INTERNALS.md); "drsch-cifar" and "drsch-reid" are drsch's
 * own choices in the same style (the authors ship only the MNIST network): a cifar10-quick-like
 * 3-conv network for 32x32 RGB and a 3-conv network with stride-2 stem for 160x60 person crops.
 * Multipliers are Caffe's usual ones: weights lr x1 decay x1, biases lr x2 decay x0 (drsch's
 * recipe; nn_net_set_recipe gives a net the authors' instead, nn.h: nn_recipe). */
#include <stdio.h>
#include <string.h>

#include "nn_internal.h"

#define CONV(o, k, s, p)                                                                           \
    {                                                                                              \
        NN_LAYER_CONV, o, k, s, p, 1, 0.01f, 1, 1, 2, 0                                            \
    }
#define AVE(k, s)                                                                                  \
    {                                                                                              \
        NN_LAYER_POOL_AVG, 0, k, s, 0, 0, 0, 0, 0, 0, 0                                            \
    }
#define MAX(k, s)                                                                                  \
    {                                                                                              \
        NN_LAYER_POOL_MAX, 0, k, s, 0, 0, 0, 0, 0, 0, 0                                            \
    }
#define FC(o)                                                                                      \
    {                                                                                              \
        NN_LAYER_FC, o, 0, 0, 0, 0, 0.1f, 1, 1, 2, 0                                               \
    }
#define HASH                                                                                       \
    {                                                                                              \
        NN_LAYER_HASH, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0                                                \
    }
/* Bit weights: learned by SGD like any weight, no decay (drsch's choice: the authors' layer,
 * weight_hash in prototxt/triplet/triplet_train.prototxt, has weight_decay 0.5; --recipe
 * authors). */
#define BITW                                                                                       \
    {                                                                                              \
        NN_LAYER_BITW, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0                                                \
    }

static const nn_arch ARCHS[] = {
    {"drsch-mnist",
     1,
     28,
     28,
     10,
     {CONV(32, 5, 2, 0), AVE(2, 1), CONV(64, 5, 1, 0), AVE(2, 1), CONV(128, 5, 1, 0), AVE(2, 1),
      FC(512), FC(0), HASH, BITW}},
    {"drsch-cifar",
     3,
     32,
     32,
     10,
     {CONV(32, 5, 1, 2), MAX(3, 2), CONV(32, 5, 1, 2), AVE(3, 2), CONV(64, 5, 1, 2), AVE(3, 2),
      FC(512), FC(0), HASH, BITW}},
    {"drsch-reid",
     3,
     160,
     60,
     10,
     {CONV(32, 5, 2, 2), MAX(2, 2), CONV(64, 5, 1, 2), MAX(2, 2), CONV(128, 3, 1, 1), AVE(2, 2),
      FC(512), FC(0), HASH, BITW}},
};
#define N_ARCHS (int)(sizeof ARCHS / sizeof ARCHS[0])

const char *nn_arch_name_at(int i) { return i >= 0 && i < N_ARCHS ? ARCHS[i].name : NULL; }

drsch_status nn_arch_get(const char *name, nn_arch *out, drsch_error *err)
{
    for (int i = 0; i < N_ARCHS; i++)
        if (name && !strcmp(name, ARCHS[i].name)) {
            *out = ARCHS[i];
            return DRSCH_OK;
        }
    return drsch_fail(err, DRSCH_ERR_ARG,
                      "unknown architecture '%s' (known: drsch-mnist, drsch-cifar, drsch-reid)",
                      name ? name : "(null)");
}

drsch_status nn_config_init(nn_config *cfg, const char *arch, int32_t bits, int32_t batch,
                            int32_t training, drsch_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    drsch_status s = nn_arch_get(arch, &cfg->arch, err);
    if (s != DRSCH_OK)
        return s;
    cfg->bits = bits;
    cfg->batch = batch;
    cfg->training = training;
    cfg->seed = 1;
    for (int c = 0; c < NN_MAX_IN_C; c++)
        cfg->in_scale[c] = 1.0f / 255.0f;
    return DRSCH_OK;
}

const char *nn_head_name(nn_head h)
{
    return h == NN_HEAD_HASH ? "hash" : h == NN_HEAD_SOFTMAX ? "softmax" : NULL;
}

drsch_status nn_config_classifier(nn_config *cfg, int32_t classes, drsch_error *err)
{
    if (classes < 2 || classes > HM_MAX_BITS)
        return drsch_fail(err, DRSCH_ERR_ARG, "a classifier of %d classes (2..%d are supported)",
                          classes, HM_MAX_BITS);
    nn_arch *a = &cfg->arch;
    int32_t n = a->n_layers;
    if (n > 0 && a->layers[n - 1].kind == NN_LAYER_BITW)
        n--;
    if (n > 0 && a->layers[n - 1].kind == NN_LAYER_HASH)
        n--;
    if (n < 1 || a->layers[n - 1].kind != NN_LAYER_FC || a->layers[n - 1].relu)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "architecture '%s' does not end with an fc layer without ReLU before "
                          "its hash layer: it has no classifier",
                          a->name);
    a->n_layers = n;
    cfg->bits = classes;
    cfg->head = NN_HEAD_SOFTMAX;
    return DRSCH_OK;
}
