/* oneDNN plumbing shared by the network's files (nn_layers.c, nn_net.c, nn_forward.c,
 * nn_backward.c, nn_params.c): memory descriptors and memories, primitive creation (with the
 * message for a bf16 primitive this CPU cannot run), execution with the net's scratchpad,
 * reorders, destruction; and oneDNN's version string. */
#include <stdio.h>
#include <string.h>

#include "nn_internal.h"

float *nn_mem_ptr(const_dnnl_memory_t m)
{
    void *p = NULL;
    if (m)
        dnnl_memory_get_data_handle(m, &p);
    return (float *)p;
}

const dnnl_memory_desc_t *nn_mem_md(const_dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(m, &md);
    return md;
}

dnnl_memory_desc_t nn_md_dt(int nd, const dnnl_dim_t *dims, dnnl_data_type_t dt,
                            dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_memory_desc_init_by_tag(&md, nd, dims, dt, tag);
    return md;
}

dnnl_memory_desc_t nn_md_tag(int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag)
{
    return nn_md_dt(nd, dims, dnnl_f32, tag);
}

drsch_status nn_new_mem(nn_net *net, dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle,
                        drsch_error *err)
{
    DN(dnnl_memory_create(m, md, net->engine, handle), "buffer");
    /* Zero owned buffers: padded blocked layouts must hold zeros outside the logical tensor. */
    if (handle == DNNL_MEMORY_ALLOCATE)
        memset(nn_mem_ptr(*m), 0, dnnl_memory_desc_get_size(md));
    return DRSCH_OK;
}

static void note_scratch(nn_net *net, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = md ? dnnl_memory_desc_get_size(md) : 0;
    if (sz > net->scratch_size)
        net->scratch_size = sz;
}

/* A primitive oneDNN cannot create: in a bf16 net "unimplemented" means this CPU (or oneDNN's
 * ISA cap, ONEDNN_MAX_CPU_ISA) has no bf16 kernel for it; say so instead of falling back. */
static drsch_status prim_fail(const nn_net *net, dnnl_status_t st, const char *what,
                              drsch_error *err)
{
    if (st == dnnl_unimplemented && net->cfg.precision == NN_PRECISION_BF16) {
        const dnnl_version_t *v = dnnl_version();
        return drsch_fail(
            err, DRSCH_ERR_UNSUPPORTED,
            "bf16 %s: oneDNN %d.%d.%d has no bf16 implementation on this CPU (oneDNN ISA %s; "
            "bf16 needs avx512_core, natively avx512_core_bf16); use precision f32",
            what, v->major, v->minor, v->patch, nn_onednn_isa());
    }
    return nn_dnnl_fail(err, st, what);
}

const char *nn_onednn_version(void)
{
    static char text[600];
    const char *unloaded = dnnl_lazy_error();
    if (unloaded) {
        snprintf(text, sizeof text, "not available: %s", unloaded);
        return text;
    }
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "%d.%d.%d (%s)", v->major, v->minor, v->patch, v->hash);
    return text;
}

/* Creates pd from an op descriptor, then the primitive; *pd_out (optional) keeps the pd. */
drsch_status nn_make_prim(nn_net *net, const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                          const_dnnl_primitive_desc_t hint, dnnl_primitive_t *prim,
                          dnnl_primitive_desc_t *pd_out, const char *what, drsch_error *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t pst =
        dnnl_primitive_desc_create(&pd, desc, attr ? attr : net->attr, net->engine, hint);
    if (pst != dnnl_success)
        return prim_fail(net, pst, what, err);
    note_scratch(net, pd);
    dnnl_status_t st = prim ? dnnl_primitive_create(prim, pd) : dnnl_success;
    if (st != dnnl_success || !pd_out)
        dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return nn_dnnl_fail(err, st, what);
    if (pd_out)
        *pd_out = pd;
    return DRSCH_OK;
}

drsch_status nn_make_reorder(nn_net *net, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to, dnnl_primitive_t *prim, drsch_error *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t pst =
        dnnl_reorder_primitive_desc_create(&pd, from, net->engine, to, net->engine, net->attr);
    if (pst != dnnl_success)
        return prim_fail(net, pst, "reorder", err);
    note_scratch(net, pd);
    dnnl_status_t st = dnnl_primitive_create(prim, pd);
    dnnl_primitive_desc_destroy(pd);
    DN(st, "reorder primitive");
    return DRSCH_OK;
}

drsch_status nn_exec(nn_net *net, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args,
                     drsch_error *err)
{
    args[nargs].arg = DNNL_ARG_SCRATCHPAD;
    args[nargs].memory = net->scratch;
    DN(dnnl_primitive_execute(p, net->stream, nargs + (net->scratch ? 1 : 0), args), "execute");
    return DRSCH_OK;
}

drsch_status nn_run_reorder(nn_net *net, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to,
                            drsch_error *err)
{
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return nn_exec(net, p, 2, a, err);
}

void nn_destroy_mem(dnnl_memory_t m)
{
    if (m)
        dnnl_memory_destroy(m);
}
void nn_destroy_prim(dnnl_primitive_t p)
{
    if (p)
        dnnl_primitive_destroy(p);
}
