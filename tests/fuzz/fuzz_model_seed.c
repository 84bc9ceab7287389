/* Writes the seed of the model-file fuzzer: a tiny network (1 x 6 x 6 input, conv 2@3x3 +
 * ReLU, max pool 2x2, fc B, hash, bit weights; B = 4 bits) saved with nn_model_save, a few
 * hundred bytes instead of the megabytes of drsch-mnist. Usage: fuzz_model_seed OUT. Not a
 * fuzzer; built with the fuzz targets so the seed can be regenerated when the format changes. */
#include <stdio.h>
#include <string.h>

#include "nn.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_model_seed OUT\n");
        return 2;
    }
    drsch_error err;
    nn_config cfg;
    if (nn_config_init(&cfg, "drsch-mnist", 4, 1, 0, &err) != DRSCH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    nn_arch *a = &cfg.arch;
    snprintf(a->name, sizeof a->name, "fuzz-tiny");
    a->in_c = 1, a->in_h = 6, a->in_w = 6;
    cfg.in_c = 0, cfg.in_h = 0, cfg.in_w = 0;
    const nn_layer_spec layers[] = {
        {NN_LAYER_CONV, 2, 3, 1, 0, 1, 0.01f, 1, 1, 2, 0},
        {NN_LAYER_POOL_MAX, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0},
        {NN_LAYER_FC, 0, 0, 0, 0, 0, 0.1f, 1, 1, 2, 0},
        {NN_LAYER_HASH, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {NN_LAYER_BITW, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
    };
    a->n_layers = (int32_t)(sizeof layers / sizeof layers[0]);
    memcpy(a->layers, layers, sizeof layers);
    nn_net *net = NULL;
    if (nn_net_create(&net, &cfg, &err) != DRSCH_OK ||
        nn_model_save(net, argv[1], &err) != DRSCH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        nn_net_free(net);
        return 1;
    }
    nn_net_free(net);
    return 0;
}
