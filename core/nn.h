/* drsch core/: the DRSCH convolutional network on Intel oneDNN (C API, f32): layers with forward
 * and backward passes, a network described by a small table of layers, SGD with momentum,
 * versioned model files, and batched encoding to packed binary codes (simd/ layout). Inference
 * (encoding) may optionally run in bf16; nothing in core/ ever picks bf16 by itself.
 *
 * Layers: convolution (+ fused ReLU post-op), max / average pooling (Caffe ceil-mode output
 * size), inner product, the DRSCH hash layer y = tanh(s*x/2) = 2/(1+exp(-s*x)) - 1 with an
 * annealed scale s, and the bit-weight layer y = u * w (one learned weight per bit).
 * Activations stay in the layouts oneDNN chooses (format_tag_any); what crosses this API is
 * always plain row-major: inputs N x C x H x W, outputs N x D.
 *
 * What this module deliberately does not do: the DRSCH objective is in dh.h, not here; it
 * reads no datasets, and it never prints or exits: every fallible call returns a drsch_status
 * and fills a drsch_error. Not thread-safe per handle: one nn_net is used by one thread at a time
 * (oneDNN parallelises inside each primitive with OpenMP). */
#ifndef DRSCH_NN_H
#define DRSCH_NN_H

#include <stddef.h>
#include <stdint.h>

#include "hamming.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Arithmetic of the forward pass. f32 is the default everywhere. bf16 (inference only): weights
 * are converted to bf16 once (when the net's parameters change, e.g. at encoder creation),
 * convolutions and inner products take bf16 inputs and weights and accumulate in f32, hidden
 * activations are stored in bf16, the last inner product writes f32, and the hash and bit-weight
 * layers run in f32. oneDNN needs AVX-512 for bf16 primitives (avx512_bf16 runs them natively);
 * where it has none, creating a bf16 net fails with DRSCH_ERR_UNSUPPORTED, never falls back. */
typedef enum {
    NN_PRECISION_F32 = 0,
    NN_PRECISION_BF16 = 1,
} nn_precision;

DRSCH_API const char *nn_precision_name(nn_precision p); /* "f32", "bf16" */
/* "f32" or "bf16" -> *out; anything else is DRSCH_ERR_ARG with a message naming the choices. */
DRSCH_API drsch_status nn_precision_parse(const char *name, nn_precision *out, drsch_error *err);
/* oneDNN's effective CPU ISA, after ONEDNN_MAX_CPU_ISA (e.g. "avx512_core_bf16"), for reports. */
DRSCH_API const char *nn_onednn_isa(void);
/* The oneDNN library drsch runs on: "2.6.3 (git hash or N/A)". */
DRSCH_API const char *nn_onednn_version(void);
/* 1 when that ISA has bf16 instructions (avx512_bf16 or AMX). Without them oneDNN may still
 * create bf16 primitives on plain AVX-512 by emulating bf16 (same results, slower than f32). */
DRSCH_API int nn_bf16_native(void);

/* ---- architectures ---------------------------------------------------------------------- */
typedef enum {
    NN_LAYER_CONV = 0, /* out channels, kernel x kernel, stride, pad; optional fused ReLU */
    NN_LAYER_POOL_MAX, /* kernel, stride, pad; Caffe ceil-mode output size */
    NN_LAYER_POOL_AVG, /* same; averages exclude padding (Caffe's AVE on unpadded input) */
    NN_LAYER_FC,       /* inner product with bias; out = 0 means "the code length B" */
    NN_LAYER_HASH,     /* y = tanh(s*x/2), s = nn_set_hash_scale (authors: 5, x1.1 / 10k it) */
    NN_LAYER_BITW,     /* y = u * w, w: B weights initialised to 1 */
} nn_layer_kind;

typedef struct {
    nn_layer_kind kind;
    int32_t out;    /* conv: output channels; fc: outputs (0 = code length) */
    int32_t kernel; /* conv / pool: square kernel */
    int32_t stride;
    int32_t pad;
    int32_t relu;                  /* conv / fc: ReLU fused as a oneDNN post-op */
    float w_std;                   /* weights ~ N(0, w_std^2); biases 0; bit weights 1 */
    float w_lr_mult, w_decay_mult; /* per-layer multipliers of the weights (Caffe param {}) */
    float b_lr_mult, b_decay_mult; /* and of the biases */
} nn_layer_spec;

#define NN_MAX_LAYERS 24
#define NN_MAX_IN_C 4 /* input channels whose normalisation a model file records */
#define NN_ARCH_NAME_MAX 32

typedef struct {
    char name[NN_ARCH_NAME_MAX];
    int32_t in_c, in_h, in_w; /* default input shape */
    int32_t n_layers;
    nn_layer_spec layers[NN_MAX_LAYERS];
} nn_arch;

/* Named architectures: "drsch-mnist" (the authors' MNIST network, 1 x 28 x 28; 26 x 26 and
 * 30 x 30 inputs also fit), "drsch-cifar" (3 x 32 x 32), "drsch-reid" (3 x 160 x 60 person
 * crops). All end with fc B, hash, bit weights. */
DRSCH_API drsch_status nn_arch_get(const char *name, nn_arch *out, drsch_error *err);
DRSCH_API const char *nn_arch_name_at(int i); /* i-th named architecture, NULL past the end */

/* ---- the network ------------------------------------------------------------------------ */
typedef struct nn_net nn_net;

/* What the network's output is. NN_HEAD_HASH (the default, every DRSCH model): relaxed codes,
 * ending fc B -> hash -> bit weights, the code bit j = (output j > 0). NN_HEAD_SOFTMAX (the
 * classifier baseline, Sablayrolles et al., ICASSP 2017): the last fc's B = C outputs are class
 * logits (no hash, no bit-weight layer; trained with ce_loss, dh.h), and the code of an image is
 * the one-hot of its predicted class (the first largest logit), C bits. */
typedef enum {
    NN_HEAD_HASH = 0,
    NN_HEAD_SOFTMAX = 1,
} nn_head;
DRSCH_API const char *nn_head_name(nn_head h); /* "hash", "softmax"; NULL if unknown */

typedef struct {
    nn_arch arch;
    int32_t bits;             /* code length B, 1..HM_MAX_BITS */
    int32_t batch;            /* images per forward pass, fixed for the net's lifetime */
    int32_t in_c, in_h, in_w; /* 0 = the architecture's default */
    int32_t training;         /* 1: forward_training + backward + SGD; 0: inference only */
    int32_t input_grad;       /* 1: backward also computes d loss / d input (tests) */
    int32_t precision;        /* nn_precision of the forward pass; bf16 needs training = 0 */
    uint64_t seed;            /* initialisation; same seed + threads => same weights */
    /* How uint8 pixels become network inputs: x = (pixel - in_mean[c]) * in_scale[c]. The net
     * does not apply it (inputs arrive as floats); it is recorded in model files so encoding
     * prepares images exactly as training did. Default mean 0, scale 1/255. */
    float in_mean[NN_MAX_IN_C], in_scale[NN_MAX_IN_C];
    int32_t head; /* nn_head: NN_HEAD_HASH (0, nn_config_init's) or NN_HEAD_SOFTMAX */
} nn_config;

/* A config for a named architecture with its default input; *err names unknown archs. */
DRSCH_API drsch_status nn_config_init(nn_config *cfg, const char *arch, int32_t bits, int32_t batch,
                                      int32_t training, drsch_error *err);
/* Turns a config into the classifier of the same network: the hash and bit-weight layers at the
 * end of cfg->arch are dropped, so its last fc (out = 0: the code length) gives bits = classes
 * logits, and head = NN_HEAD_SOFTMAX. The other layers, their initialisation from the seed
 * included, are those of the hash network. DRSCH_ERR_ARG when classes is outside 2..HM_MAX_BITS
 * or the architecture does not end with fc [hash] [bit weights]. */
DRSCH_API drsch_status nn_config_classifier(nn_config *cfg, int32_t classes, drsch_error *err);

DRSCH_API drsch_status nn_net_create(nn_net **out, const nn_config *cfg, drsch_error *err);
DRSCH_API void nn_net_free(nn_net *net);
DRSCH_API const nn_config *nn_net_config(const nn_net *net);
DRSCH_API int32_t nn_output_dim(const nn_net *net); /* D of the final output (B for named archs) */
DRSCH_API size_t nn_input_size(const nn_net *net);  /* C * H * W of one input image */
/* What computes layer i's forward pass: oneDNN's implementation as ONEDNN_VERBOSE names it (e.g.
 * "jit:avx512_core"), "sgemm" (a convolution as oneDNN's sgemm over its unfolded input),
 * "direct:avx512" (drsch's AVX-512 convolution loops), "direct:avx512+grouped" (those loops for a
 * 2 x 2 output, a group of images at a time), "direct:avx512+sgemm" (the
 * forward pass on those loops, the gradients on sgemm), "drsch:avg" / "drsch:max" (drsch's
 * poolings), "drsch:stem" (drsch's loops for a first convolution of one input channel, which
 * also compute the average pooling after it: that layer's is then "drsch:avg+stem"; or of three
 * channels, with the 2x2 max pooling after it: "drsch:max+stem"),
 * "drsch:avg+direct" (in a training net, an average pooling whose forward pass the direct
 * convolution before it computes), "drsch:fc" (drsch's inner-product loops), "drsch" (the hash
 * and bit-weight layers, plain C), or "" for i out of range. */
DRSCH_API const char *nn_layer_impl(const nn_net *net, int32_t i);

/* x: batch x C x H x W floats (plain NCHW). The pointer is only read during the call. */
DRSCH_API drsch_status nn_forward(nn_net *net, const float *x, drsch_error *err);
/* After nn_forward: batch x D plain, valid until the next forward. */
DRSCH_API const float *nn_output(const nn_net *net);
/* After nn_forward: the hash layer's output u (batch x B, relaxed codes in (-1, 1)), or NULL if
 * the network has no hash layer. */
DRSCH_API const float *nn_hash_output(const nn_net *net);

/* dy: batch x D, d loss / d nn_output. du (may be NULL): batch x B, an extra gradient with
 * respect to the hash output u (e.g. a regulariser on the relaxed codes). Overwrites (does not
 * accumulate) every parameter gradient. Requires training nets and a preceding nn_forward. */
DRSCH_API drsch_status nn_backward(nn_net *net, const float *dy, const float *du, drsch_error *err);
/* After nn_backward on a net created with input_grad: batch x C x H x W. */
DRSCH_API const float *nn_input_grad(const nn_net *net);

/* ---- pass timing (profiling) ------------------------------------------------------------ */
/* Where a step's time goes: the wall time of each layer's forward and backward pass, of the
 * copies of the parameters a forward or backward pass refreshes after an update, and of
 * nn_sgd_step, summed over the passes since timing was turned on. A layer's pass is timed from
 * the end of the layer before it to the end of its own work (its input's reorder included, its
 * oneDNN primitives waited for); the reorder of the last layer's output or of the caller's dy to
 * the net's layouts is the last layer's. When an inference net computes its first layers image by
 * image (nn_layer_impl: a first layer "drsch:stem" followed by direct convolutions), their whole
 * time is layer 0's. In a training net whose pooling is followed by a convolution of a 2 x 2
 * output on drsch's loops (drsch-mnist's pool2 and conv3), that convolution's input-gradient
 * pass computes the pooling's backward pass: its time is the convolution's, the pooling's near 0.
 * Timing costs a clock read and a stream wait a layer. FLOPs: one pass's
 * multiply-adds x 2 of the convolutions and fc layers (0 for the other layers), as nn_flops sums
 * them; backward_flops[i] counts the input gradient only where the layer computes it. */
typedef struct {
    int64_t forwards, backwards, sgd_steps; /* passes timed */
    double refresh_s, sgd_s;                /* seconds: parameter copies, SGD steps */
    double forward_s[NN_MAX_LAYERS], backward_s[NN_MAX_LAYERS];         /* seconds, summed */
    double forward_flops[NN_MAX_LAYERS], backward_flops[NN_MAX_LAYERS]; /* of one pass */
} nn_pass_times;
/* on != 0: zeroes the sums and times every pass from now on; 0: stops timing, keeping the sums. */
DRSCH_API void nn_net_time_passes(nn_net *net, int32_t on);
DRSCH_API void nn_net_pass_times(const nn_net *net, nn_pass_times *out);

DRSCH_API void nn_set_hash_scale(nn_net *net, float s);
/* Records the input normalisation (NN_MAX_IN_C means and scales; see nn_config). */
DRSCH_API void nn_set_input_norm(nn_net *net, const float *mean, const float *scale);
DRSCH_API float nn_hash_scale(const nn_net *net);
/* The authors' annealing: s0 * mult^(iter / every) (5, 1.1, 10000 in their prototxt). */
DRSCH_API float nn_hash_scale_at(float s0, float mult, int64_t every, int64_t iter);

/* ---- parameters ------------------------------------------------------------------------- */
/* All parameters, gradients and momentum history live in one allocation carved into tensors,
 * each in the layout the forward primitive wants (possibly blocked, padded with zeros). */
typedef struct {
    int32_t layer; /* index in the layer table */
    int32_t is_bias;
    float *data;        /* internal layout, count floats */
    float *grad;        /* same layout; NULL for inference nets */
    size_t count;       /* floats in the internal layout (>= plain_count) */
    size_t plain_count; /* logical elements (O*I*K*K, O, B) */
    float lr_mult, decay_mult;
} nn_param;

DRSCH_API int32_t nn_param_count(const nn_net *net);
DRSCH_API nn_param nn_param_at(const nn_net *net, int32_t i);
/* Plain canonical layout of every parameter tensor, in table order: conv weights OIHW, fc
 * weights O x (C*H*W of its input, NCHW flattening order), biases O, bit weights B. */
DRSCH_API size_t nn_params_plain_size(const nn_net *net);
DRSCH_API drsch_status nn_params_export(const nn_net *net, float *plain, size_t n,
                                        drsch_error *err);
DRSCH_API drsch_status nn_params_import(nn_net *net, const float *plain, size_t n,
                                        drsch_error *err);
/* Copies parameters, hash scale and bit order between two nets of the same architecture and
 * code length (their batch, mode and layouts may differ). */
DRSCH_API drsch_status nn_net_copy_params(nn_net *dst, const nn_net *src, drsch_error *err);
/* Call after writing nn_param.data directly (refreshes derived copies of the weights). */
DRSCH_API void nn_params_changed(nn_net *net);

/* Bit weights (B floats, network order) or NULL if the net has no bit-weight layer. */
DRSCH_API const float *nn_bit_weights(const nn_net *net);
/* order[j] = network bit shown as bit j of a code (significance order; identity at start). */
DRSCH_API const uint32_t *nn_bit_order(const nn_net *net);
DRSCH_API drsch_status nn_set_bit_order(nn_net *net, const uint32_t *order, drsch_error *err);
/* Orders bits by |w| descending (ties by index), as INTERNALS.md's bit-scalable codes. */
DRSCH_API void nn_bit_order_by_weight(nn_net *net);
/* Orders bits by |w| discounted by redundancy, so short prefixes hold bits that tell images
 * apart rather than copies of each other: greedily, the next bit is the one with the largest
 * |w_j| * r_j, where r_j = min over the bits already chosen and a constant bit of
 * 1 - |1 - 2 h / n|, h the number of the n sample codes on which the two bits differ (so r_j is
 * 0 for a copy, a complement or a constant bit, 1 for a bit independent of all chosen ones).
 * Ties go to the larger |w|, then the lower index. codes: sample codes in network bit order
 * (bit j = network bit j), e.g. of training images, with codes->bits = B and codes->n >= 1. */
DRSCH_API drsch_status nn_bit_order_decorrelated(nn_net *net, const hm_codes *codes,
                                                 drsch_error *err);

/* FLOPs of one batch (multiply-add = 2): forward, and backward (weights + data gradients). */
DRSCH_API void nn_flops(const nn_net *net, double *forward, double *backward);

/* ---- SGD -------------------------------------------------------------------------------- */
typedef struct {
    float base_lr;      /* authors: 0.00333 */
    float momentum;     /* authors: 0 (a drsch option) */
    float weight_decay; /* authors: 0.0005, times each tensor's decay_mult */
    float gamma;        /* step policy: lr = base_lr * gamma^(iter / step); authors 1/3 */
    int64_t step;       /* authors: 50000 */
    int64_t warmup;     /* lr rises linearly over the first warmup iterations: times
                           (iter + 1) / warmup (0 = none, the authors) */
} nn_sgd_config;

DRSCH_API void nn_sgd_defaults(nn_sgd_config *c); /* the authors' solver values */
/* The momentum history of a training net (count floats in the net's internal layout; NULL and
 * 0 for inference nets). The layout is the one oneDNN picked for this build and CPU. */
DRSCH_API float *nn_sgd_history(nn_net *net, size_t *count);
/* The momentum history in the plain layout of nn_params_export (n = nn_params_plain_size),
 * the same whatever layouts oneDNN picked: checkpoints save it this way, so a run resumed by
 * another build or on another CPU continues as it would have. DRSCH_ERR_ARG for an inference
 * net or another n. */
DRSCH_API drsch_status nn_sgd_history_export(const nn_net *net, float *plain, size_t n,
                                             drsch_error *err);
DRSCH_API drsch_status nn_sgd_history_import(nn_net *net, const float *plain, size_t n,
                                             drsch_error *err);
DRSCH_API float nn_sgd_lr(const nn_sgd_config *c, int64_t iter);
/* Caffe's update: v = momentum*v + lr*lr_mult*(g + wd*decay_mult*w); w -= v. */
DRSCH_API drsch_status nn_sgd_step(nn_net *net, const nn_sgd_config *c, int64_t iter,
                                   drsch_error *err);

/* Training recipes: the multipliers of each parameter group, Caffe's per-layer blobs_lr and
 * weight_decay, which nn_sgd_step applies to the learning rate and to nn_sgd_config.weight_decay.
 * A net starts with its architecture's (for the named ones, those of NN_RECIPE_DRSCH);
 * nn_net_set_recipe replaces them in the net and in its architecture table, so a model file
 * written afterwards records the multipliers it was trained with. The hash layer and the pooling
 * layers have no parameters. */
typedef enum {
    NN_RECIPE_DRSCH = 0,  /* Caffe's usual multipliers, those of the named architectures: conv and
                             fc weights lr x1 decay x1, biases lr x2 decay 0, bit weights lr x1
                             decay 0 */
    NN_RECIPE_AUTHORS = 1 /* the authors' prototxt/triplet/triplet_train.prototxt: lr x1 for every
                             tensor; decay conv weights x0.1, fc weights x0.5, bit weights
                             (weight_hash) x0.5, biases 0 */
} nn_recipe;
typedef enum {
    NN_GROUP_CONV_W = 0, /* convolution weights */
    NN_GROUP_FC_W,       /* inner-product weights */
    NN_GROUP_BIAS,       /* convolution and inner-product biases */
    NN_GROUP_BIT_W,      /* the bit weights */
    NN_GROUPS
} nn_param_group;

DRSCH_API const char *nn_recipe_name(nn_recipe r); /* "drsch", "authors"; NULL if unknown */
/* The lr and decay multipliers of group g in recipe r; DRSCH_ERR_ARG for an unknown r or g. */
DRSCH_API drsch_status nn_recipe_mults(nn_recipe r, nn_param_group g, float *lr_mult,
                                       float *decay_mult, drsch_error *err);
/* The group of parameter tensor i (nn_param_at). */
DRSCH_API nn_param_group nn_param_group_at(const nn_net *net, int32_t i);
/* Sets every parameter tensor's multipliers (nn_param.lr_mult / decay_mult) from recipe r, and
 * the layers' multipliers in the net's architecture (nn_net_config(net)->arch) to match. */
DRSCH_API drsch_status nn_net_set_recipe(nn_net *net, nn_recipe r, drsch_error *err);

/* ---- model files ------------------------------------------------------------------------ */
/* Versioned little-endian binary: magic, version, architecture table, input shape and input
 * normalisation, code length,
 * hash scale, bit order, parameters (plain canonical layout, bit weights included), crc32 of
 * everything before it. Written to path.tmp then renamed over path. Version 3 adds the head
 * (nn_head) after the version; hash models are still written as version 2, byte for byte as
 * before (so older drsch builds read them), classifiers as version 3; both are read. */
#define NN_MODEL_VERSION 3
#define NN_MODEL_VERSION_MIN 2
/* What a model file may describe (nn_model_save refuses to write more, nn_model_load to read
 * it): input channels 1..NN_MAX_IN_C, image sides 1..NN_MODEL_MAX_SIDE, activations of at most
 * NN_MODEL_MAX_ACT_FLOATS floats per image (input and layer outputs; 256 MiB, ~300 times
 * drsch-reid's), parameters exactly as many as the file holds. */
#define NN_MODEL_MAX_SIDE 4096
#define NN_MODEL_MAX_ACT_FLOATS (1 << 26)
DRSCH_API drsch_status nn_model_save(const nn_net *net, const char *path, drsch_error *err);
/* Creates a net with the file's architecture and parameters, for the given batch and mode.
 * Every size the header implies is checked against the file's size, the limits above and (for
 * the batch's buffers) the machine's memory before anything large is allocated; errors name
 * the file and what was wrong ("header says N parameters (X MB) but the file holds Y KB"). */
DRSCH_API drsch_status nn_model_load(nn_net **out, const char *path, int32_t batch,
                                     int32_t training, drsch_error *err);

/* ---- encoding --------------------------------------------------------------------------- */
typedef struct nn_encoder nn_encoder;
/* Inference replicas of `model` (its parameters, hash scale and bit order at this moment), each
 * of `batch` images; replicas > 1 run batches in parallel (OpenMP over batches, oneDNN
 * single-threaded inside each); replicas = 1 lets oneDNN use all threads in each batch.
 * precision: NN_PRECISION_F32, or NN_PRECISION_BF16 (weights converted here, once; a CPU
 * without bf16 support gives DRSCH_ERR_UNSUPPORTED). */
DRSCH_API drsch_status nn_encoder_create(nn_encoder **out, const nn_net *model, int32_t batch,
                                         int32_t replicas, nn_precision precision,
                                         drsch_error *err);
DRSCH_API void nn_encoder_free(nn_encoder *enc);
DRSCH_API nn_precision nn_encoder_precision(const nn_encoder *enc);
/* oneDNN's implementation of the first convolution (or inner product) it computes in the
 * encoder, as ONEDNN_VERBOSE names it (e.g. "brg:avx512_core"), or where drsch's own loops compute
 * every one, the first layer's (e.g. "drsch:stem"): reports record it to show which kernels ran. */
DRSCH_API const char *nn_encoder_impl(const nn_encoder *enc);
/* nn_layer_impl of the encoder's network (inference kernels may differ from training's). */
DRSCH_API const char *nn_encoder_layer_impl(const nn_encoder *enc, int32_t i);
/* x: n x C x H x W. real (may be NULL): n x B hash outputs u in significance order (column j is
 * network bit order[j]). codes (may be NULL): allocated by the caller with hm_codes_alloc(n, B);
 * bit j of code i is 1 iff real[i][j] > 0. A classifier (NN_HEAD_SOFTMAX): real holds the
 * logits, and code i has the one bit of its first largest logit set (one-hot of the predicted
 * class, ties to the lower class). Hash codes asked for without real skip the hash layer's tanh
 * (the bits are the signs of its input times s / 2, the same bits), about 1% faster. */
DRSCH_API drsch_status nn_encode(nn_encoder *enc, const float *x, size_t n, float *real,
                                 hm_codes *codes, drsch_error *err);

/* ---- training replicas ------------------------------------------------------------------ */
/* Data-parallel training in one process: R copies of a training net share each batch, replica k
 * taking rows [k N / R, (k + 1) N / R) on its own OpenMP thread, with oneDNN planned for and run
 * on that one thread (no synchronisation inside the primitives). Their outputs are gathered for
 * a loss of the whole batch, their parameter gradients summed into the lead replica's, which
 * takes the SGD step (nn_sgd_step on nn_team_lead); the others copy its parameters and hash
 * scale at the start of the next forward. The same R gives the same bits at any thread count;
 * another R adds the gradients in another order (as another thread count does for one net). */
#define NN_TEAM_MAX 256
typedef struct nn_team nn_team;
/* Replicas of `model` (a training net of batch N >= replicas, 1..NN_TEAM_MAX): its parameters,
 * momentum history, hash scale, bit order, multipliers and input normalisation (no input
 * gradient). The model is not used afterwards: the lead (nn_team_lead) replaces it.
 * DRSCH_ERR_UNSUPPORTED when oneDNN lays out the parameters of replicas of different batches
 * differently. */
DRSCH_API drsch_status nn_team_create(nn_team **out, const nn_net *model, int32_t replicas,
                                      drsch_error *err);
DRSCH_API void nn_team_free(nn_team *team); /* frees every replica, the lead included */
DRSCH_API nn_net *nn_team_lead(nn_team *team);
DRSCH_API int32_t nn_team_replicas(const nn_team *team);
/* Rows of replica k of `replicas` sharing batches of `rows`. */
DRSCH_API int32_t nn_team_rows_of(int32_t rows, int32_t replicas, int32_t k);
/* x: N x C x H x W (the whole batch). Then nn_team_output (N x D) and nn_team_hash_output (N x B,
 * NULL without a hash layer) hold every row, valid until the next forward. */
DRSCH_API drsch_status nn_team_forward(nn_team *team, const float *x, drsch_error *err);
DRSCH_API const float *nn_team_output(const nn_team *team);
DRSCH_API const float *nn_team_hash_output(const nn_team *team);
/* dy: N x D. Leaves the sum of the replicas' parameter gradients in the lead's (nn_param_at). */
DRSCH_API drsch_status nn_team_backward(nn_team *team, const float *dy, drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
