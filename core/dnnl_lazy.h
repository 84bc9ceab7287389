/* oneDNN, loaded on first use: libdrsch does not link libdnnl (and the C++ runtime it pulls in),
 * which cost every drsch process 7.5 ms of its start, search and evaluation included; the first
 * oneDNN call of a process loads it with dlopen (dnnl_lazy.c). Every oneDNN function drsch calls
 * is listed once below, with the value it returns when oneDNN cannot be loaded; the defines after
 * the list point drsch's calls at the lazy versions, so the code calls oneDNN's API as usual.
 * Include this header instead of <oneapi/dnnl/dnnl.h>. Not part of the public API. */
#ifndef DRSCH_DNNL_LAZY_H
#define DRSCH_DNNL_LAZY_H

#include <oneapi/dnnl/dnnl.h>

typedef const dnnl_memory_desc_t *dnnl_lazy_md;
typedef const dnnl_version_t *dnnl_lazy_version;

/* The version drsch reports when oneDNN cannot be loaded (0.0.0, hash "not loaded"). */
extern const dnnl_version_t dnnl_lazy_no_version;

/* X(return type, name, parameters, arguments, value when oneDNN cannot be loaded) */
#define DNNL_LAZY_FUNCTIONS(X)                                                                     \
    X(dnnl_status_t, dnnl_convolution_backward_data_desc_init,                                     \
      (dnnl_convolution_desc_t * a, dnnl_alg_kind_t b, dnnl_lazy_md c, dnnl_lazy_md d,             \
       dnnl_lazy_md e, const dnnl_dims_t f, const dnnl_dims_t g, const dnnl_dims_t h),             \
      (a, b, c, d, e, f, g, h), dnnl_runtime_error)                                                \
    X(dnnl_status_t, dnnl_convolution_backward_weights_desc_init,                                  \
      (dnnl_convolution_desc_t * a, dnnl_alg_kind_t b, dnnl_lazy_md c, dnnl_lazy_md d,             \
       dnnl_lazy_md e, dnnl_lazy_md f, const dnnl_dims_t g, const dnnl_dims_t h,                   \
       const dnnl_dims_t i),                                                                       \
      (a, b, c, d, e, f, g, h, i), dnnl_runtime_error)                                             \
    X(dnnl_status_t, dnnl_convolution_forward_desc_init,                                           \
      (dnnl_convolution_desc_t * a, dnnl_prop_kind_t b, dnnl_alg_kind_t c, dnnl_lazy_md d,         \
       dnnl_lazy_md e, dnnl_lazy_md f, dnnl_lazy_md g, const dnnl_dims_t h, const dnnl_dims_t i,   \
       const dnnl_dims_t j),                                                                       \
      (a, b, c, d, e, f, g, h, i, j), dnnl_runtime_error)                                          \
    X(dnnl_status_t, dnnl_eltwise_backward_desc_init,                                              \
      (dnnl_eltwise_desc_t * a, dnnl_alg_kind_t b, dnnl_lazy_md c, dnnl_lazy_md d, float e,        \
       float f),                                                                                   \
      (a, b, c, d, e, f), dnnl_runtime_error)                                                      \
    X(dnnl_status_t, dnnl_eltwise_forward_desc_init,                                               \
      (dnnl_eltwise_desc_t * a, dnnl_prop_kind_t b, dnnl_alg_kind_t c, dnnl_lazy_md d, float e,    \
       float f),                                                                                   \
      (a, b, c, d, e, f), dnnl_runtime_error)                                                      \
    X(dnnl_status_t, dnnl_engine_create, (dnnl_engine_t * a, dnnl_engine_kind_t b, size_t c),      \
      (a, b, c), dnnl_runtime_error)                                                               \
    X(dnnl_status_t, dnnl_engine_destroy, (dnnl_engine_t a), (a), dnnl_runtime_error)              \
    X(dnnl_cpu_isa_t, dnnl_get_effective_cpu_isa, (void), (), dnnl_cpu_isa_all)                    \
    X(dnnl_status_t, dnnl_inner_product_backward_data_desc_init,                                   \
      (dnnl_inner_product_desc_t * a, dnnl_lazy_md b, dnnl_lazy_md c, dnnl_lazy_md d),             \
      (a, b, c, d), dnnl_runtime_error)                                                            \
    X(dnnl_status_t, dnnl_inner_product_backward_weights_desc_init,                                \
      (dnnl_inner_product_desc_t * a, dnnl_lazy_md b, dnnl_lazy_md c, dnnl_lazy_md d,              \
       dnnl_lazy_md e),                                                                            \
      (a, b, c, d, e), dnnl_runtime_error)                                                         \
    X(dnnl_status_t, dnnl_inner_product_forward_desc_init,                                         \
      (dnnl_inner_product_desc_t * a, dnnl_prop_kind_t b, dnnl_lazy_md c, dnnl_lazy_md d,          \
       dnnl_lazy_md e, dnnl_lazy_md f),                                                            \
      (a, b, c, d, e, f), dnnl_runtime_error)                                                      \
    X(dnnl_status_t, dnnl_memory_create,                                                           \
      (dnnl_memory_t * a, dnnl_lazy_md b, dnnl_engine_t c, void *d), (a, b, c, d),                 \
      dnnl_runtime_error)                                                                          \
    X(int, dnnl_memory_desc_equal, (dnnl_lazy_md a, dnnl_lazy_md b), (a, b), 0)                    \
    X(size_t, dnnl_memory_desc_get_size, (dnnl_lazy_md a), (a), 0)                                 \
    X(dnnl_status_t, dnnl_memory_desc_init_by_tag,                                                 \
      (dnnl_memory_desc_t * a, int b, const dnnl_dims_t c, dnnl_data_type_t d,                     \
       dnnl_format_tag_t e),                                                                       \
      (a, b, c, d, e), dnnl_runtime_error)                                                         \
    X(dnnl_status_t, dnnl_memory_destroy, (dnnl_memory_t a), (a), dnnl_runtime_error)              \
    X(dnnl_status_t, dnnl_memory_get_data_handle, (const_dnnl_memory_t a, void **b), (a, b),       \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_memory_get_memory_desc, (const_dnnl_memory_t a, dnnl_lazy_md * b),       \
      (a, b), dnnl_runtime_error)                                                                  \
    X(dnnl_status_t, dnnl_memory_set_data_handle, (dnnl_memory_t a, void *b), (a, b),              \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_pooling_backward_desc_init,                                              \
      (dnnl_pooling_desc_t * a, dnnl_alg_kind_t b, dnnl_lazy_md c, dnnl_lazy_md d,                 \
       const dnnl_dims_t e, const dnnl_dims_t f, const dnnl_dims_t g, const dnnl_dims_t h),        \
      (a, b, c, d, e, f, g, h), dnnl_runtime_error)                                                \
    X(dnnl_status_t, dnnl_pooling_forward_desc_init,                                               \
      (dnnl_pooling_desc_t * a, dnnl_prop_kind_t b, dnnl_alg_kind_t c, dnnl_lazy_md d,             \
       dnnl_lazy_md e, const dnnl_dims_t f, const dnnl_dims_t g, const dnnl_dims_t h,              \
       const dnnl_dims_t i),                                                                       \
      (a, b, c, d, e, f, g, h, i), dnnl_runtime_error)                                             \
    X(dnnl_status_t, dnnl_post_ops_append_eltwise,                                                 \
      (dnnl_post_ops_t a, float b, dnnl_alg_kind_t c, float d, float e), (a, b, c, d, e),          \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_post_ops_create, (dnnl_post_ops_t * a), (a), dnnl_runtime_error)         \
    X(dnnl_status_t, dnnl_post_ops_destroy, (dnnl_post_ops_t a), (a), dnnl_runtime_error)          \
    X(dnnl_status_t, dnnl_primitive_attr_create, (dnnl_primitive_attr_t * a), (a),                 \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_primitive_attr_destroy, (dnnl_primitive_attr_t a), (a),                  \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_primitive_attr_set_post_ops,                                             \
      (dnnl_primitive_attr_t a, const_dnnl_post_ops_t b), (a, b), dnnl_runtime_error)              \
    X(dnnl_status_t, dnnl_primitive_attr_set_scratchpad_mode,                                      \
      (dnnl_primitive_attr_t a, dnnl_scratchpad_mode_t b), (a, b), dnnl_runtime_error)             \
    X(dnnl_status_t, dnnl_primitive_create, (dnnl_primitive_t * a, const_dnnl_primitive_desc_t b), \
      (a, b), dnnl_runtime_error)                                                                  \
    X(dnnl_status_t, dnnl_primitive_desc_create,                                                   \
      (dnnl_primitive_desc_t * a, const_dnnl_op_desc_t b, const_dnnl_primitive_attr_t c,           \
       dnnl_engine_t d, const_dnnl_primitive_desc_t e),                                            \
      (a, b, c, d, e), dnnl_runtime_error)                                                         \
    X(dnnl_status_t, dnnl_primitive_desc_destroy, (dnnl_primitive_desc_t a), (a),                  \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_primitive_desc_query,                                                    \
      (const_dnnl_primitive_desc_t a, dnnl_query_t b, int c, void *d), (a, b, c, d),               \
      dnnl_runtime_error)                                                                          \
    X(dnnl_lazy_md, dnnl_primitive_desc_query_md,                                                  \
      (const_dnnl_primitive_desc_t a, dnnl_query_t b, int c), (a, b, c), NULL)                     \
    X(dnnl_status_t, dnnl_primitive_destroy, (dnnl_primitive_t a), (a), dnnl_runtime_error)        \
    X(dnnl_status_t, dnnl_primitive_execute,                                                       \
      (const_dnnl_primitive_t a, dnnl_stream_t b, int c, const dnnl_exec_arg_t *d), (a, b, c, d),  \
      dnnl_runtime_error)                                                                          \
    X(dnnl_status_t, dnnl_reorder_primitive_desc_create,                                           \
      (dnnl_primitive_desc_t * a, dnnl_lazy_md b, dnnl_engine_t c, dnnl_lazy_md d,                 \
       dnnl_engine_t e, const_dnnl_primitive_attr_t f),                                            \
      (a, b, c, d, e, f), dnnl_runtime_error)                                                      \
    X(dnnl_status_t, dnnl_sgemm,                                                                   \
      (char a, char b, dnnl_dim_t c, dnnl_dim_t d, dnnl_dim_t e, float f, const float *g,          \
       dnnl_dim_t h, const float *i, dnnl_dim_t j, float k, float *l, dnnl_dim_t m),               \
      (a, b, c, d, e, f, g, h, i, j, k, l, m), dnnl_runtime_error)                                 \
    X(dnnl_status_t, dnnl_stream_create, (dnnl_stream_t * a, dnnl_engine_t b, unsigned c),         \
      (a, b, c), dnnl_runtime_error)                                                               \
    X(dnnl_status_t, dnnl_stream_destroy, (dnnl_stream_t a), (a), dnnl_runtime_error)              \
    X(dnnl_status_t, dnnl_stream_wait, (dnnl_stream_t a), (a), dnnl_runtime_error)                 \
    X(dnnl_lazy_version, dnnl_version, (void), (), &dnnl_lazy_no_version)

#define DNNL_LAZY_DECLARE(ret, name, params, args, fail) ret lazy_##name params;
DNNL_LAZY_FUNCTIONS(DNNL_LAZY_DECLARE)
#undef DNNL_LAZY_DECLARE

/* NULL once oneDNN is loaded; otherwise why it could not be (loading it if it was not tried). */
const char *dnnl_lazy_error(void);

#ifndef DNNL_LAZY_DEFINITIONS /* dnnl_lazy.c defines the lazy versions under their own names */
#define dnnl_convolution_backward_data_desc_init lazy_dnnl_convolution_backward_data_desc_init
#define dnnl_convolution_backward_weights_desc_init lazy_dnnl_convolution_backward_weights_desc_init
#define dnnl_convolution_forward_desc_init lazy_dnnl_convolution_forward_desc_init
#define dnnl_eltwise_backward_desc_init lazy_dnnl_eltwise_backward_desc_init
#define dnnl_eltwise_forward_desc_init lazy_dnnl_eltwise_forward_desc_init
#define dnnl_engine_create lazy_dnnl_engine_create
#define dnnl_engine_destroy lazy_dnnl_engine_destroy
#define dnnl_get_effective_cpu_isa lazy_dnnl_get_effective_cpu_isa
#define dnnl_inner_product_backward_data_desc_init lazy_dnnl_inner_product_backward_data_desc_init
#define dnnl_inner_product_backward_weights_desc_init                                              \
    lazy_dnnl_inner_product_backward_weights_desc_init
#define dnnl_inner_product_forward_desc_init lazy_dnnl_inner_product_forward_desc_init
#define dnnl_memory_create lazy_dnnl_memory_create
#define dnnl_memory_desc_equal lazy_dnnl_memory_desc_equal
#define dnnl_memory_desc_get_size lazy_dnnl_memory_desc_get_size
#define dnnl_memory_desc_init_by_tag lazy_dnnl_memory_desc_init_by_tag
#define dnnl_memory_destroy lazy_dnnl_memory_destroy
#define dnnl_memory_get_data_handle lazy_dnnl_memory_get_data_handle
#define dnnl_memory_get_memory_desc lazy_dnnl_memory_get_memory_desc
#define dnnl_memory_set_data_handle lazy_dnnl_memory_set_data_handle
#define dnnl_pooling_backward_desc_init lazy_dnnl_pooling_backward_desc_init
#define dnnl_pooling_forward_desc_init lazy_dnnl_pooling_forward_desc_init
#define dnnl_post_ops_append_eltwise lazy_dnnl_post_ops_append_eltwise
#define dnnl_post_ops_create lazy_dnnl_post_ops_create
#define dnnl_post_ops_destroy lazy_dnnl_post_ops_destroy
#define dnnl_primitive_attr_create lazy_dnnl_primitive_attr_create
#define dnnl_primitive_attr_destroy lazy_dnnl_primitive_attr_destroy
#define dnnl_primitive_attr_set_post_ops lazy_dnnl_primitive_attr_set_post_ops
#define dnnl_primitive_attr_set_scratchpad_mode lazy_dnnl_primitive_attr_set_scratchpad_mode
#define dnnl_primitive_create lazy_dnnl_primitive_create
#define dnnl_primitive_desc_create lazy_dnnl_primitive_desc_create
#define dnnl_primitive_desc_destroy lazy_dnnl_primitive_desc_destroy
#define dnnl_primitive_desc_query lazy_dnnl_primitive_desc_query
#define dnnl_primitive_desc_query_md lazy_dnnl_primitive_desc_query_md
#define dnnl_primitive_destroy lazy_dnnl_primitive_destroy
#define dnnl_primitive_execute lazy_dnnl_primitive_execute
#define dnnl_reorder_primitive_desc_create lazy_dnnl_reorder_primitive_desc_create
#define dnnl_sgemm lazy_dnnl_sgemm
#define dnnl_stream_create lazy_dnnl_stream_create
#define dnnl_stream_destroy lazy_dnnl_stream_destroy
#define dnnl_stream_wait lazy_dnnl_stream_wait
#define dnnl_version lazy_dnnl_version
#endif

#endif
