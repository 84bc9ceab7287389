/* What core/ files share internally: the network and layer structures, error helpers, and the
 * functions the network's files (nn_net.c, nn_plan.c, nn_layers.c, nn_forward.c, nn_backward.c,
 * nn_params.c, nn_dnnl.c) call in one another. Not part of the public API. (Weights are
 * initialised from simd/rng.h.) */
#ifndef DRSCH_NN_INTERNAL_H
#define DRSCH_NN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>

#include "dnnl_lazy.h" /* oneDNN, loaded on first use */

#include "nn.h"

#define NN_RATE_THREADS 16 /* threads whose rates a pass keeps (nn_rate_share) */

typedef struct {
    nn_layer_spec spec;
    int32_t in_c, in_h, in_w;    /* input shape (in_h = in_w = 1 and 2-D md after an fc) */
    int32_t out_c, out_h, out_w; /* output shape */
    int32_t in_4d, out_4d;
    int32_t pad_r_h, pad_r_w; /* pooling: right padding that realises ceil mode */

    /* forward */
    dnnl_memory_t in;  /* not owned: previous layer's dst or the net input */
    dnnl_memory_t src; /* = in, or owned when src_reorder converts in -> src */
    dnnl_primitive_t src_reorder;
    dnnl_primitive_t fwd;
    dnnl_memory_t dst, ws; /* owned */

    /* parameters: memories over the net's single block (handles set after allocation) */
    int32_t p_w, p_b; /* parameter indices or -1 */
    dnnl_memory_t w, b, dw, db;

    /* backward */
    dnnl_memory_t diff_dst; /* owned, dst layout */
    dnnl_memory_t diff_in;  /* not owned: previous layer's diff_dst or the net's diff input */
    dnnl_memory_t diff_src; /* = diff_in, or owned when diff_src_reorder converts it */
    dnnl_primitive_t diff_src_reorder;
    dnnl_primitive_t relu_bwd, bwd_data, bwd_weights;
    dnnl_memory_t w_bwd; /* weights in the backward-data layout (owned) or = w */
    dnnl_primitive_t w_bwd_reorder;
    dnnl_memory_t dw_tmp; /* backward-weights output when its layout differs from w */
    dnnl_primitive_t dw_reorder;

    /* bf16 nets: the weights converted to bf16 in the forward primitive's layout; sgemm
     * convolutions: the weights in hwio for the forward product (owned, refreshed from w whenever
     * the parameters change) */
    dnnl_memory_t w_fwd;
    dnnl_primitive_t w_fwd_reorder;
    char impl[64]; /* what computes the forward pass: oneDNN's name, or drsch's ("drsch:...") */

    /* A convolution computed as an inner product over its unfolded input (nn_conv_as_gemm):
     * col holds every output pixel's receptive field (rows of C x KH x KW), dst2d
     * and diff_dst2d are 2-D views (pixels x channels) of dst and diff_dst (nhwc), diff_col the
     * input gradient per receptive field, summed back into diff_src (owned, all NULL else). */
    dnnl_memory_t col, diff_col, dst2d, diff_dst2d;
    /* f32 nets on AVX-512 compute that product with oneDNN's sgemm (nn_layers.c:
     * build_conv_gemm): nhwc source, weights and their gradient in ohwi (a copy in hwio for the
     * forward product, w_fwd), bias and ReLU in C, no primitives. */
    bool sgemm;
    /* an sgemm convolution whose forward pass runs on drsch's loops instead, a few whole images
     * a block (nn_direct_forward_grouped); in training the forward pass still unfolds the source
     * into col, for the gradients' products; an inference net has no col */
    bool sgemm_grouped;
    /* a convolution computed by drsch's own AVX-512 loops (nn_direct.c): weights hwio, w_bwd
     * [KW][KH][OC][IC], source and output nhwc, ReLU backward by relu_bwd, no other primitives */
    bool direct;
    bool direct_src16; /* its source (and diff_src) in oneDNN's nChw16c, not nhwc */
    /* a direct convolution with a 2 x 2 output (nn_direct_group_fits) in a training net: its
     * forward pass and input gradient a few whole images a block */
    bool direct_grouped;
    /* a fully connected layer computed by drsch's AVX-512 loops (nn_fc.c): weights oi (oihw
     * over a deep source), a copy in io for the forward pass (w_fwd) unless the source is deep,
     * source nc (nchw when deep) and output nc, no primitives */
    bool fc_own;
    /* an average pooling or a max pooling computed by drsch's loops (nn_pool.c), source and
     * output in one layout (nChw16c when pool_blocked, else nhwc), no primitives */
    bool pool_own, pool_blocked;
    /* its ReLU's gradient is applied by the next layer's backward pass (an own pooling) */
    bool relu_in_next;
    /* the first convolution on drsch's loops (nn_stem.c), which also compute the pooling after
     * it (that layer's pool_fused): hwio weights, nhwc output, no primitives */
    bool stem, pool_fused;
    /* an own pooling whose forward pass the direct convolution before it computes, two images
     * at a time (a training net's; nn_direct_forward_pooled): that convolution's output is not
     * written, and this layer's backward pass takes its ReLU's gradient from relu_mask */
    bool pool_by_direct;
    /* an own pooling whose backward pass the direct_grouped convolution after it computes with
     * its input gradient, a group of images at a time, while that gradient is in the cache (a
     * training net's; nn_direct_backward_data) */
    bool pool_bwd_by_next;
    /* the ReLU mask of a convolution whose output is not kept (the stem's; a direct
     * convolution's before a pool_by_direct layer), a bit per output value in
     * nn_pool_image_backward's layout (training), and the stem's weight and bias gradients
     * summed per group of images (owned) */
    dnnl_memory_t relu_mask, stem_part;
    /* a direct convolution's weight-gradient tasks a second on each thread in its passes so far
     * (0: not measured), which set the threads' shares of the next pass (nn_direct.c) */
    float wg_rate[NN_RATE_THREADS];
    double flops_fwd, flops_bwd; /* one pass's (nn_flops sums them, nn_pass_times) */
} nn_layer;

typedef struct {
    int32_t layer, is_bias;
    dnnl_memory_desc_t md;       /* internal layout */
    dnnl_memory_desc_t plain_md; /* canonical layout */
    size_t offset, count, plain_count;
    float lr_mult, decay_mult;
} nn_tensor;

struct nn_net {
    nn_config cfg;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_attr_t attr; /* user scratchpad */
    int32_t n_layers;
    nn_layer layers[NN_MAX_LAYERS];
    int32_t hash_layer, bitw_layer; /* indices or -1 */
    float hash_scale;
    uint32_t *bit_order; /* B entries */

    int32_t n_tensors;
    nn_tensor tensors[2 * NN_MAX_LAYERS];
    size_t block_floats; /* floats per region */
    float *block;        /* params | grads | history, one allocation */

    dnnl_memory_t in_mem;      /* plain NCHW over the caller's input */
    dnnl_memory_t diff_in_mem; /* plain NCHW input gradient (input_grad) */
    dnnl_memory_t out_mem;     /* plain N x D output (owned when out_reorder) */
    dnnl_primitive_t out_reorder;
    dnnl_memory_t dy_mem;        /* plain N x D over the caller's dy */
    dnnl_primitive_t dy_reorder; /* plain dy -> last layer's diff_dst when layouts differ */
    dnnl_memory_t scratch;
    size_t scratch_size;
    bool weights_dirty;
    bool avx512;                          /* nn_onednn_avx512() when the net was built */
    bool chain, chain_unfold, chain_conv; /* nn_forward's image-by-image start (nn_chain_decide) */
    bool timing;                          /* nn_net_time_passes */
    nn_pass_times times;                  /* its sums */
};

/* Pass timing: when the net is timed (nn_net_time_passes), waits for the stream and adds the
 * seconds since *t to *slot, then sets *t to now; else nothing. nn_clock: monotonic seconds. */
double nn_clock(void);
void nn_lap(nn_net *net, double *slot, double *t);

/* Decides, once the layers are built, whether nn_forward runs the first layers image by image. */
void nn_chain_decide(nn_net *net);

/* The forward pass up to the hash layer's input, nn_hash_input (batch x B, plain f32, valid until
 * the next forward): the encoder's path when it is asked for codes alone. A code bit is 1 iff
 * tanh(s x / 2) > 0, i.e. iff s x / 2 > 0: tanhf keeps the sign of every float (0 and the
 * subnormals included; checked for all 2^32 on glibc, and by the encoder's tests), so the codes
 * are the bits nn_forward's hash output gives, without its tanh (0.8% of an encoding's time,
 * drsch-mnist). */
drsch_status nn_forward_to_hash(nn_net *net, const float *x, drsch_error *err);
const float *nn_hash_input(const nn_net *net);

/* The values each output of a convolution computed as a product (L->sgemm) or of an fc layer
 * reads: C x KH x KW, or C x H x W. */
dnnl_dim_t nn_gemm_depth(const nn_layer *L);

/* Inside a parallel region: the calling thread's share [*lo, *hi) of n items, in thread order
 * (contiguous runs that differ in length by at most one). */
void nn_thread_share(int n, int *lo, int *hi);

/* Shares that follow the threads' speeds, for passes whose items cannot be handed out as the
 * threads free up (each item reads data a thread keeps in its caches across items): thread th of
 * nth's share [*lo, *hi) of n items, contiguous, in thread order, in proportion to rate[th] among
 * rate[0 .. nth) (items a second, as nn_rate_note keeps them; equal shares until every thread has
 * a rate, or above NN_RATE_THREADS threads; each thread at least a quarter of an equal share's
 * weight). nn_rate_note folds a thread's latest items / seconds into rate[th] (half the old rate,
 * half the new; the caller passes each thread's measurement after the parallel region, so the
 * shares stay the same through it). nn_wall: seconds (0 without OpenMP). Which thread computes an
 * item never changes its sums, so the shares change no value. */
void nn_rate_share(const float *rate, int n, int th, int nth, int *lo, int *hi);
void nn_rate_note(float *rate, int th, int items, double seconds);
double nn_wall(void);

/* Outside a parallel region: whether a pass that writes bytes, shared among the threads, stores
 * them past the caches (non-temporal stores): when each thread's share is larger than the L2
 * (sysconf's, else 1 MiB; DRSCH_L2_BYTES, a positive number of bytes, overrides it, so that tests
 * run the non-temporal stores on small layers), where the next pass would find little of it
 * anyway. Below that, the next pass reads it from the L2: drsch-mnist's pool2 input gradient
 * (1.25 MB at batch 100) and pool1 output (1.55 MB) through the caches gave training +3.0% at 1
 * thread and +1.3% at 2 (2-core Xeon, 2 MiB L2; alternate rounds of `drsch bench train`), where
 * both had been streamed (on a Zen 5 pool2's backward pass alone had measured 0.06-0.10 ms
 * streamed against 0.12-0.13 through the caches, and the convolution after it no different
 * within its noise). */
bool nn_write_past_caches(size_t bytes);

/* Whether oneDNN runs its AVX-512 kernels here (its effective ISA includes avx512_core). */
bool nn_onednn_avx512(void);

/* M(1) M(2) ... M(8), and on to M(12): a kernel's instantiations for each constant block size,
 * and their table (nn_direct.c, nn_stem.c). */
#define NN_EACH_1_TO_7(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define NN_EACH_1_TO_8(M) NN_EACH_1_TO_7(M) M(8)
#define NN_EACH_1_TO_12(M) NN_EACH_1_TO_8(M) M(9) M(10) M(11) M(12)

/* nn_fc.c: whether drsch's AVX-512 loops compute fc layer L (f32, AVX-512 on the CPU and in
 * oneDNN), whether its source is deep (more than one pixel: read in nchw order, its forward pass
 * over the plain weights, no w_fwd), and its passes over the layer's memories (forward: src ->
 * dst with bias and ReLU; backward: diff_dst after the ReLU's gradient -> dw, db, and diff_src
 * when data). */
bool nn_fc_fits(const nn_net *net, const nn_layer *L);
bool nn_fc_deep(const nn_layer *L);
void nn_fc_forward(const nn_net *net, const nn_layer *L);
void nn_fc_backward(const nn_net *net, const nn_layer *L, bool data);

/* Direct convolutions (nn_direct.c): whether layer L of net is one they compute (f32, stride 1,
 * no padding, 3x3 or 5x5 taps, output rows of at most 8, input channels a multiple of 32,
 * output channels of 64, AVX-512 on the CPU and in oneDNN), and its three passes over the
 * layer's memories (forward: src -> dst with bias and ReLU; backward: diff_dst after the ReLU's
 * gradient -> dw, db, and diff_src). */
bool nn_direct_fits(const nn_net *net, const nn_layer *L);
void nn_direct_forward(const nn_net *net, const nn_layer *L);
/* count (1 or 2) consecutive images of the forward pass: x their sources (L's source layout),
 * y their outputs (nhwc), one after the other. */
void nn_direct_forward_images(const nn_net *net, const nn_layer *L, const float *x, float *y,
                              int count);
/* P: NULL, or the own pooling before L (P->pool_bwd_by_next, L direct_grouped), whose backward
 * pass is then computed image group by image group as L's input gradient is (the same sums as
 * nn_pool_backward). */
void nn_direct_backward_data(const nn_net *net, const nn_layer *L, const nn_layer *P);
void nn_direct_backward_weights(const nn_net *net, nn_layer *L);
/* A training net's forward pass of direct convolution L (not grouped) and the own average
 * pooling P after it (P->pool_by_direct), two images at a time: the convolution's output on the
 * stack, its ReLU mask (L->relu_mask, when L has a ReLU) and P's output (P->dst) to memory.
 * The same sums as nn_direct_forward then nn_pool_forward. One image's output at most
 * NN_DIRECT_POOL_PLANE floats. */
#define NN_DIRECT_POOL_PLANE 8192
void nn_direct_forward_pooled(const nn_net *net, const nn_layer *L, const nn_layer *P);
/* The same forward loops for a convolution of a 2 x 2 output (drsch-mnist's conv3, an sgemm
 * layer otherwise): f32, stride 1, no padding, input channels a multiple of 16, output channels
 * a multiple of 32, AVX-512 (nn_direct_group_fits). Up to three whole images a block, so that each
 * weight vector loaded serves 12 output pixels; weights hwio (w_fwd of an sgemm layer). The batch
 * (_grouped: src -> dst, nhwc), or g = 1 .. NN_DIRECT_GROUP_MAX consecutive images (_group: x their
 * nhwc sources, y their outputs). Each value's sum does not depend on the grouping or the threads.
 */
#define NN_DIRECT_GROUP_MAX 3
bool nn_direct_group_fits(const nn_net *net, const nn_layer *L);
void nn_direct_forward_grouped(const nn_net *net, const nn_layer *L);
void nn_direct_forward_group(const nn_net *net, const nn_layer *L, const float *x, float *y, int g);

/* Average pooling and max pooling by drsch's loops (nn_pool.c): whether layer i of net is one
 * they compute (f32, no padding before the windows, a source of 16k channels in nhwc or nChw16c,
 * oneDNN on AVX-512; average: none after them either), the output's layout (the source's), the
 * forward pass (src -> dst) and the backward pass (diff_dst -> diff_src; a max pooling's from
 * src, its maxima found again), times (relu_dst > 0) when relu_dst is the ReLU output of the
 * layer before (a max pooling's src: only whether it is given counts), or else times the ReLU's
 * gradient given as bits (the whole batch's, nn_pool_image_backward's layout, image after image;
 * average pooling only) when relu_bits is not NULL. */
bool nn_pool_fits(const nn_net *net, int i);
void nn_pool_layout(const nn_net *net, int i, dnnl_memory_desc_t *dst, bool *blocked);
void nn_pool_forward(const nn_net *net, const nn_layer *L);
void nn_pool_backward(const nn_net *net, const nn_layer *L, const float *relu_dst,
                      const uint16_t *relu_bits);
/* The ReLU gradient's form for pooling L's backward pass: the output of the layer before
 * (relu_dst), its mask (relu_bits, after a pool_by_direct layer's convolution) or neither (no
 * ReLU there). */
void nn_pool_relu_of(const nn_net *net, const nn_layer *L, const float **relu_dst,
                     const uint16_t **relu_bits);
/* Whether the pooling L's backward pass stores its diff_src past the caches (64-byte aligned,
 * and read next by a direct convolution's weight gradient on every thread). */
bool nn_pool_backward_past(const nn_net *net, const nn_layer *L);
/* nn_pool_backward's images n0 .. n1 - 1, diff_src stored past the caches when past (the caller
 * then fences), as nn_pool_backward_past chooses for the layer. For a pass that computes the
 * pooling's output gradient a few images at a time (L->pool_bwd_by_next). */
void nn_pool_backward_images(const nn_net *net, const nn_layer *L, const float *relu_dst,
                             const uint16_t *relu_bits, int32_t n0, int32_t n1, bool past);
/* The same for an average pooling, but for the source's layout (which nn_pool_fits also
 * checks): what the first convolution's loops (nn_stem.c) check of the pooling after them,
 * before it is built. */
bool nn_pool_shape_fits(const nn_net *net, int i);
/* Whether layer i is a pooling (average or max) whose shape the loops take, its source's layout
 * and type aside: what a bf16 net's layer before it checks, before either is built, to write
 * its output in f32 for them (nn_layers.c). */
bool nn_pool_own_shape_fits(const nn_net *net, int i);
/* One image of pooling L's forward pass (x, y: the image's first values, in L's layouts; y
 * stored past the caches when past_caches and it is 64-byte aligned), and of its backward pass
 * (dy -> dx), times the ReLU's gradient given as bits when bits is not NULL: a
 * 16-bit mask for each pixel's channel block cb, pixel p's at bits[p * C / 16 + cb] (bit c set:
 * channel 16 cb + c passes). The same sums as nn_pool_forward and nn_pool_backward. */
void nn_pool_image_forward(const nn_net *net, const nn_layer *L, const float *x, float *y,
                           bool past_caches);
void nn_pool_image_backward(const nn_net *net, const nn_layer *L, const float *dy,
                            const uint16_t *bits, float *dx);

/* The first convolution with the pooling after it (nn_stem.c): whether layer i of net is one
 * they compute (the net's input of one channel, no padding, 3x3 or 5x5 taps, 32k output
 * channels, followed by a pooling nn_pool.c computes, AVX-512 on the CPU and in oneDNN, no input
 * gradient; in f32 in bf16 nets too), the forward pass (src -> the pooling layer P's dst, and in
 * training the ReLU's mask; the convolution's own dst is never written, it has no memory) and the
 * backward pass (P's diff_dst through the pooling and the ReLU -> dw, db). */
bool nn_stem_fits(const nn_net *net, int i);
#define NN_STEM_GROUP 4 /* images whose weight gradients the stem's backward pass sums together */
void nn_stem_forward(const nn_net *net, const nn_layer *L, const nn_layer *P);
/* Image n of the forward pass, without the mask (inference): its pooled output into y (P's
 * layout, one image), through the caches. */
void nn_stem_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n,
                           float *y);
void nn_stem_backward(const nn_net *net, const nn_layer *L, const nn_layer *P);
/* Inside a parallel region, shared among its threads: the weight and bias gradients (dw, the
 * first nw of a group's per values, then db) as the sums of the groups' (part, groups x per), in
 * group order: the backward passes' last step (nn_stem.c, nn_stem_rgb.c). */
void nn_stem_sum_groups(const float *part, int groups, size_t per, size_t nw, float *dw, float *db);
/* The same for a first convolution of three input channels followed by a 2x2 max pooling at
 * stride 2 (nn_stem_rgb.c: 3x3 or 5x5 taps, stride 1 or 2, zero padding, 32k output channels, an
 * output the windows tile; drsch-reid's): nn_stem_fits takes these too, and nn_stem_forward,
 * nn_stem_forward_image and nn_stem_backward call them when P is a max pooling. In training its
 * mask holds a byte per pooled value, the window's way in (the pooling's and the ReLU's gradient
 * in one). */
bool nn_stem_rgb_fits(const nn_net *net, int i);
void nn_stem_rgb_forward(const nn_net *net, const nn_layer *L, const nn_layer *P);
void nn_stem_rgb_forward_image(const nn_net *net, const nn_layer *L, const nn_layer *P, int n,
                               float *y);
void nn_stem_rgb_backward(const nn_net *net, const nn_layer *L, const nn_layer *P);

/* nn_net_create that fails with DRSCH_ERR_FORMAT, before allocating the parameters, when the
 * architecture's plain parameter count is not expect_params (SIZE_MAX: any). The model loader
 * uses it so a small file cannot make drsch build a huge network it will then reject. */
drsch_status nn_net_create_expect(nn_net **out, const nn_config *cfg, size_t expect_params,
                                  drsch_error *err);

/* What a config implies, known before anything large is allocated (nn_net_plan makes the
 * checks nn_net_create makes on the config and the shapes, and fails as it would). */
typedef struct {
    size_t params;            /* plain parameter count (nn_params_plain_size of the net) */
    double act_floats;        /* activation floats per image in the net's buffers (an estimate:
                                 input and layer outputs, 4-D channels padded to 8, x2 training) */
    int32_t in_c, in_h, in_w; /* the input, architecture defaults filled in */
} nn_net_plan_info;
drsch_status nn_net_plan(const nn_config *cfg, nn_net_plan_info *out, drsch_error *err);

/* DRSCH_ERR_NOMEM naming `what` ("a net for ... needs about 12.3 GB of memory, more than this
 * machine's 8.0 GB") when bytes exceed the machine's physical memory; DRSCH_OK otherwise. */
drsch_status nn_check_memory(double bytes, const char *what, drsch_error *err);
/* bytes as a person reads them ("600 bytes", "12.4 MB", "2.87 GB"; decimal units) in buf. */
const char *nn_bytes_str(double bytes, char buf[32]);

drsch_status nn_dnnl_fail(drsch_error *err, dnnl_status_t st, const char *what);

/* Return from the calling function (which has a drsch_error *err) when a oneDNN call fails (DN)
 * or a drsch_status call does not return DRSCH_OK (TRY). */
#define DN(call, what)                                                                             \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success)                                                                   \
            return nn_dnnl_fail(err, st_, what);                                                   \
    } while (0)
#define TRY(call)                                                                                  \
    do {                                                                                           \
        drsch_status s_ = (call);                                                                  \
        if (s_ != DRSCH_OK)                                                                        \
            return s_;                                                                             \
    } while (0)

/* oneDNN helpers (nn_dnnl.c). */
/* The data handle of m as floats (NULL for no memory), and m's descriptor. */
float *nn_mem_ptr(const_dnnl_memory_t m);
const dnnl_memory_desc_t *nn_mem_md(const_dnnl_memory_t m);
/* A descriptor of dims in a data type (nn_md_dt) or in f32 (nn_md_tag) and a layout tag. */
dnnl_memory_desc_t nn_md_dt(int nd, const dnnl_dim_t *dims, dnnl_data_type_t dt,
                            dnnl_format_tag_t tag);
dnnl_memory_desc_t nn_md_tag(int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag);
/* A memory over handle, or zeroed and owned with DNNL_MEMORY_ALLOCATE. */
drsch_status nn_new_mem(nn_net *net, dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle,
                        drsch_error *err);
/* Creates pd from an op descriptor, then the primitive; *pd_out (optional) keeps the pd. Both
 * count the primitive's scratchpad into the net's. */
drsch_status nn_make_prim(nn_net *net, const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                          const_dnnl_primitive_desc_t hint, dnnl_primitive_t *prim,
                          dnnl_primitive_desc_t *pd_out, const char *what, drsch_error *err);
drsch_status nn_make_reorder(nn_net *net, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to, dnnl_primitive_t *prim,
                             drsch_error *err);
/* Runs p on the net's stream with args[0..nargs) and the scratchpad (args has room for one more).
 */
drsch_status nn_exec(nn_net *net, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args,
                     drsch_error *err);
drsch_status nn_run_reorder(nn_net *net, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to,
                            drsch_error *err);
/* Destroy m / p when not NULL. */
void nn_destroy_mem(dnnl_memory_t m);
void nn_destroy_prim(dnnl_primitive_t p);

/* Planning (nn_plan.c). */
/* Checks cfg0 (defaults filled in) and plans the shapes in a new net that holds no oneDNN
 * object and no buffer yet. */
drsch_status nn_plan_net(nn_net **out, const nn_config *cfg0, drsch_error *err);
/* A planned net's plain parameter count, and its activation floats per image (an estimate). */
size_t nn_planned_params(const nn_net *net);
double nn_planned_act_floats(const nn_net *net);

/* Whether convolution layer L is computed as an inner product over its unfolded input (im2col):
 * a small output over an input of at least 16 channels, whose receptive fields repeat each input
 * value at most 4 times on average (nn_plan.c; the unfolded input is planned with the layer). */
bool nn_conv_as_gemm(const nn_layer *L);

/* Layers (nn_layers.c). */
/* Whether layer i computes the gradient of its input (training nets; layer 0 with input_grad). */
bool nn_need_data_grad(const nn_net *net, int i);
/* Every layer's primitives and memories, each reading the previous layer's output. */
drsch_status nn_build_layers(nn_net *net, drsch_error *err);

/* Brings derived copies of the weights (backward-data layout, forward copies: bf16, or hwio for
 * sgemm) up to date with the parameters; nn_forward / nn_backward call it when needed, the encoder
 * at creation. */
drsch_status nn_net_refresh_weights(nn_net *net, drsch_error *err);
/* The momentum history of src into dst (training nets of the same architecture; their layouts may
 * differ), as nn_net_copy_params copies the parameters. */
drsch_status nn_net_copy_history(nn_net *dst, const nn_net *src, drsch_error *err);
/* The implementation name of the first convolution or inner product oneDNN computes (as
 * ONEDNN_VERBOSE names it), or where drsch's loops compute them all, of the first layer ("" if
 * none). */
const char *nn_net_impl(const nn_net *net);

/* A tensor's parameters from a plain buffer, reordered to its internal memory (not on the hot
 * path). */
drsch_status nn_tensor_from_plain(nn_net *net, int32_t t, const float *plain, drsch_error *err);

#endif
