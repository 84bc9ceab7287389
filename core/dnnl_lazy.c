/* oneDNN, loaded with dlopen by its first call in a process (dnnl_lazy.h). Each lazy function
 * looks its oneDNN function up once (dlsym) and calls it; when oneDNN cannot be loaded it returns
 * the list's failure value, and nn_dnnl_fail's message says why (dnnl_lazy_error). */
#define _GNU_SOURCE
#define DNNL_LAZY_DEFINITIONS
#include "dnnl_lazy.h"

#include <stddef.h>

#include "lazylib.h"

/* The soname of the oneDNN the build found (libdnnl.so.2 for Debian's oneDNN 2.x). */
#ifndef DRSCH_DNNL_SONAME
#define DRSCH_DNNL_SONAME "libdnnl.so.2"
#endif

const dnnl_version_t dnnl_lazy_no_version = {0, 0, 0, "not loaded", 0, 0};

static lazy_lib g_dnnl = LAZY_LIB(DRSCH_DNNL_SONAME, "oneDNN", NULL, NULL);

const char *dnnl_lazy_error(void) { return lazy_lib_load(&g_dnnl); }

/* The address of oneDNN's `name`, kept in *slot after the first lookup; NULL when oneDNN cannot
 * be loaded or lacks it. Thread-safe: a race only looks it up twice. */
static void *lazy_symbol(const char *name, void **slot)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p)
        return p;
    p = lazy_lib_symbol(&g_dnnl, name);
    if (p)
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    return p;
}

#define DNNL_LAZY_DEFINE(ret, name, params, args, fail)                                            \
    ret lazy_##name params                                                                         \
    {                                                                                              \
        static void *slot;                                                                         \
        ret(*fn) params = (ret(*) params)lazy_symbol(#name, &slot);                                \
        return fn ? fn args : (fail);                                                              \
    }
DNNL_LAZY_FUNCTIONS(DNNL_LAZY_DEFINE)
