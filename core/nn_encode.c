/* Batched encoding: images -> hash outputs -> packed codes (simd/ layout: bit j of a code in
 * word j/64 at bit j%64, bits in significance order given by the net's bit order). Inference
 * replicas of the model run whole batches in parallel (OpenMP over batches); inside a parallel
 * region oneDNN runs each primitive single-threaded. The last, partial batch is zero-padded.
 * The replicas run in the precision asked for (f32 or bf16, see nn.h); bf16 replicas convert
 * their weights once, here at creation. Asked for codes alone, a batch stops at the hash layer's
 * input (nn_forward_to_hash): the signs are the codes, no tanh needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

struct nn_encoder {
    int32_t replicas, batch, bits;
    int32_t softmax; /* a classifier: one-hot codes of the first largest logit */
    nn_precision precision;
    size_t in_size;
    nn_net **nets;
    float **pad; /* per replica: batch x in_size staging for the last partial batch */
    uint32_t *order;
};

void nn_encoder_free(nn_encoder *enc)
{
    if (!enc)
        return;
    for (int r = 0; r < enc->replicas; r++) {
        if (enc->nets)
            nn_net_free(enc->nets[r]);
        if (enc->pad)
            free(enc->pad[r]);
    }
    free(enc->nets);
    free(enc->pad);
    free(enc->order);
    free(enc);
}

drsch_status nn_encoder_create(nn_encoder **out, const nn_net *model, int32_t batch,
                               int32_t replicas, nn_precision precision, drsch_error *err)
{
    *out = NULL;
    if (batch < 1 || replicas < 1 || replicas > 1024)
        return drsch_fail(err, DRSCH_ERR_ARG, "encoder: batch %d and replicas %d must be positive",
                          batch, replicas);
    if (precision != NN_PRECISION_F32 && precision != NN_PRECISION_BF16)
        return drsch_fail(err, DRSCH_ERR_ARG, "encoder: unknown precision %d", (int)precision);
    nn_config cfg = model->cfg;
    cfg.batch = batch;
    cfg.training = 0;
    cfg.input_grad = 0;
    cfg.precision = precision;
    nn_net_plan_info plan;
    drsch_status ps = nn_net_plan(&cfg, &plan, err);
    if (ps != DRSCH_OK)
        return ps;
    char what[160];
    snprintf(what, sizeof what, "an encoder of %d replicas x batches of %d images of %dx%dx%d",
             replicas, batch, plan.in_c, plan.in_h, plan.in_w);
    /* each replica: its net and the staging of a partial batch (one more input per image) */
    const double in_floats = (double)plan.in_c * plan.in_h * plan.in_w;
    ps = nn_check_memory(4.0 * replicas *
                             ((double)batch * (plan.act_floats + in_floats) + (double)plan.params),
                         what, err);
    if (ps != DRSCH_OK)
        return ps;
    nn_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    enc->replicas = replicas;
    enc->batch = batch;
    enc->precision = precision;
    enc->bits = model->cfg.bits;
    enc->softmax = model->cfg.head == NN_HEAD_SOFTMAX;
    enc->in_size = nn_input_size(model);
    enc->nets = calloc((size_t)replicas, sizeof *enc->nets);
    enc->pad = calloc((size_t)replicas, sizeof *enc->pad);
    enc->order = malloc(sizeof(uint32_t) * (size_t)enc->bits);
    if (!enc->nets || !enc->pad || !enc->order) {
        nn_encoder_free(enc);
        return drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
    }
    memcpy(enc->order, model->bit_order, sizeof(uint32_t) * (size_t)enc->bits);
    for (int r = 0; r < replicas; r++) {
        drsch_status s = nn_net_create(&enc->nets[r], &cfg, err);
        if (s == DRSCH_OK)
            s = nn_net_copy_params(enc->nets[r], model, err);
        if (s == DRSCH_OK) /* bf16: the one conversion of the weights */
            s = nn_net_refresh_weights(enc->nets[r], err);
        if (s == DRSCH_OK && !(enc->pad[r] = calloc((size_t)batch * enc->in_size, sizeof(float))))
            s = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory");
        if (s != DRSCH_OK) {
            nn_encoder_free(enc);
            return s;
        }
    }
    *out = enc;
    return DRSCH_OK;
}

nn_precision nn_encoder_precision(const nn_encoder *enc) { return enc->precision; }

const char *nn_encoder_impl(const nn_encoder *enc) { return nn_net_impl(enc->nets[0]); }

const char *nn_encoder_layer_impl(const nn_encoder *enc, int32_t i)
{
    return nn_layer_impl(enc->nets[0], i);
}

static drsch_status encode_chunk(nn_encoder *enc, int r, const float *x, size_t n, size_t c,
                                 float *real, hm_codes *codes, drsch_error *err)
{
    nn_net *net = enc->nets[r];
    const size_t first = c * (size_t)enc->batch;
    const size_t rows = n - first < (size_t)enc->batch ? n - first : (size_t)enc->batch;
    const float *in = x + first * enc->in_size;
    if (rows < (size_t)enc->batch) {
        memcpy(enc->pad[r], in, rows * enc->in_size * sizeof(float));
        in = enc->pad[r];
    }
    const int32_t B = enc->bits;
    /* codes alone: the signs of the hash layer's input times s / 2 (nn_forward_to_hash) */
    if (codes && !real && net->hash_layer >= 0) {
        drsch_status s = nn_forward_to_hash(net, in, err);
        if (s != DRSCH_OK)
            return s;
        const float *v = nn_hash_input(net), half_s = 0.5f * net->hash_scale;
        for (size_t i = 0; i < rows; i++) {
            const float *vi = v + i * (size_t)B;
            uint64_t *row = codes->data + (first + i) * codes->words;
            memset(row, 0, codes->words * sizeof(uint64_t));
            for (int32_t j = 0; j < B; j++)
                if (half_s * vi[enc->order[j]] > 0.0f)
                    row[j / 64] |= (uint64_t)1 << (j % 64);
        }
        return DRSCH_OK;
    }
    drsch_status s = nn_forward(net, in, err);
    if (s != DRSCH_OK)
        return s;
    const float *u = nn_hash_output(net);
    if (!u)
        u = nn_output(net);
    for (size_t i = 0; i < rows; i++) {
        const float *ui = u + i * (size_t)B;
        if (real) {
            float *ri = real + (first + i) * (size_t)B;
            for (int32_t j = 0; j < B; j++)
                ri[j] = ui[enc->order[j]];
        }
        if (codes) {
            uint64_t *row = codes->data + (first + i) * codes->words;
            memset(row, 0, codes->words * sizeof(uint64_t));
            if (enc->softmax) { /* the predicted class: the first largest logit */
                int32_t top = 0;
                for (int32_t k = 1; k < B; k++)
                    if (ui[k] > ui[top])
                        top = k;
                for (int32_t j = 0; j < B; j++)
                    if (enc->order[j] == (uint32_t)top)
                        row[j / 64] |= (uint64_t)1 << (j % 64);
                continue;
            }
            for (int32_t j = 0; j < B; j++)
                if (ui[enc->order[j]] > 0.0f)
                    row[j / 64] |= (uint64_t)1 << (j % 64);
        }
    }
    return DRSCH_OK;
}

drsch_status nn_encode(nn_encoder *enc, const float *x, size_t n, float *real, hm_codes *codes,
                       drsch_error *err)
{
    if (codes && (codes->bits != (uint32_t)enc->bits || codes->n < n || !codes->data))
        return drsch_fail(err, DRSCH_ERR_ARG, "encode: codes hold %zu x %u bits, need %zu x %d",
                          codes->n, codes->bits, n, enc->bits);
    if (n == 0)
        return DRSCH_OK;
    const size_t chunks = (n + (size_t)enc->batch - 1) / (size_t)enc->batch;
    if (enc->replicas == 1 || chunks == 1) {
        for (size_t c = 0; c < chunks; c++) {
            drsch_status s = encode_chunk(enc, 0, x, n, c, real, codes, err);
            if (s != DRSCH_OK)
                return s;
        }
        return DRSCH_OK;
    }
    drsch_status status = DRSCH_OK;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp parallel for num_threads(enc->replicas) schedule(dynamic, 1)
#endif
    for (size_t c = 0; c < chunks; c++) {
        int r = 0;
#ifdef DRSCH_HAVE_OPENMP
        r = omp_get_thread_num();
#endif
        drsch_status s;
        drsch_error e;
#ifdef DRSCH_HAVE_OPENMP
#pragma omp atomic read
#endif
        s = status;
        if (s != DRSCH_OK)
            continue;
        s = encode_chunk(enc, r, x, n, c, real, codes, &e);
        if (s != DRSCH_OK) {
#ifdef DRSCH_HAVE_OPENMP
#pragma omp critical(nn_encode_error)
#endif
            {
                if (status == DRSCH_OK) {
                    status = s;
                    if (err)
                        *err = e;
                }
            }
        }
    }
    return status;
}
