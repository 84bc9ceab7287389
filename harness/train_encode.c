/* Encoding images to packed codes with a trained model (tr_encode, tr_encode_precision): the
 * model's centre crop and normalisation, whole batches in parallel over chunks of images. */
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef DRSCH_HAVE_OPENMP
#include <omp.h>
#endif

drsch_status tr_encode(const nn_net *model, const ds_dataset *d, const int64_t *idx, int64_t n,
                       hm_codes *out, drsch_error *err)
{
    return tr_encode_precision(model, d, idx, n, NN_PRECISION_F32, out, err);
}

drsch_status tr_encode_precision(const nn_net *model, const ds_dataset *d, const int64_t *idx,
                                 int64_t n, nn_precision precision, hm_codes *out, drsch_error *err)
{
    memset(out, 0, sizeof *out);
    const nn_config *mc = nn_net_config(model);
    if (mc->in_c != d->c || mc->in_h > d->h || mc->in_w > d->w)
        return drsch_fail(
            err, DRSCH_ERR_ARG,
            "the model takes %dx%dx%d input (channels x height x width) but the dataset "
            "'%s' has %dx%dx%d images",
            mc->in_c, mc->in_h, mc->in_w, d->name, d->c, d->h, d->w);
    if (n <= 0)
        return drsch_fail(err, DRSCH_ERR_ARG, "nothing to encode (empty image set)");
    drsch_status st = hm_codes_alloc(out, (size_t)n, (uint32_t)mc->bits, err);
    if (st != DRSCH_OK)
        return st;
    ds_augment aug;
    ds_augment_default(&aug);
    aug.out_h = mc->in_h;
    aug.out_w = mc->in_w;
    for (int ch = 0; ch < DS_MAX_CHANNELS && ch < NN_MAX_IN_C; ch++) {
        aug.mean[ch] = mc->in_mean[ch];
        aug.scale[ch] = mc->in_scale[ch];
    }
    int threads = 1;
#ifdef DRSCH_HAVE_OPENMP
    threads = omp_get_max_threads();
#endif
    /* Whole batches in parallel (one replica per thread) over chunks of a few thousand images. */
    const int32_t batch = 100;
    const int64_t chunk = 4000;
    nn_encoder *enc = NULL;
    float *x = malloc(sizeof(float) * (size_t)chunk * nn_input_size(model));
    hm_codes part = {0};
    if (!x || hm_codes_alloc(&part, (size_t)chunk, (uint32_t)mc->bits, err) != DRSCH_OK) {
        st = drsch_fail(err, DRSCH_ERR_NOMEM, "out of memory for encoding");
        goto done;
    }
    if ((st = nn_encoder_create(&enc, model, batch, threads, precision, err)) != DRSCH_OK)
        goto done;
    for (int64_t s = 0; s < n; s += chunk) {
        int64_t m = n - s < chunk ? n - s : chunk;
        if ((st = ds_batch_build(d, idx + s, m, &aug, 0, x, err)) != DRSCH_OK)
            goto done;
        part.n = (size_t)m;
        if ((st = nn_encode(enc, x, (size_t)m, NULL, &part, err)) != DRSCH_OK)
            goto done;
        memcpy(out->data + (size_t)s * out->words, part.data,
               (size_t)m * part.words * sizeof(uint64_t));
    }
done:
    nn_encoder_free(enc);
    free(x);
    part.n = (size_t)chunk;
    hm_codes_free(&part);
    if (st != DRSCH_OK)
        hm_codes_free(out);
    return st;
}
