/* oneDNN, loaded with dlopen by its first call in a process (dnnl_lazy.h). Each lazy function
 * looks its oneDNN function up once (dlsym) and calls it; when oneDNN cannot be loaded it returns
 * the list's failure value, and nn_dnnl_fail's message says why (dnnl_lazy_error). */
#define _GNU_SOURCE
#define DNNL_LAZY_DEFINITIONS
#include "dnnl_lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

/* The soname of the oneDNN the build found (libdnnl.so.2 for Debian's oneDNN 2.x). */
#ifndef DRSCH_DNNL_SONAME
#define DRSCH_DNNL_SONAME "libdnnl.so.2"
#endif

const dnnl_version_t dnnl_lazy_no_version = {0, 0, 0, "not loaded", 0, 0};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void *g_dnnl;
static char g_error[512];

static void load(void)
{
    g_dnnl = dlopen(DRSCH_DNNL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!g_dnnl) {
        const char *why = dlerror();
        snprintf(g_error, sizeof g_error, "oneDNN (%s) cannot be loaded: %s", DRSCH_DNNL_SONAME,
                 why ? why : "unknown error");
    }
}

const char *dnnl_lazy_error(void)
{
    pthread_once(&g_once, load);
    return g_dnnl ? NULL : g_error;
}

/* The address of oneDNN's `name`, kept in *slot after the first lookup; NULL when oneDNN cannot
 * be loaded or lacks it. Thread-safe: a race only looks it up twice. */
static void *lazy_symbol(const char *name, void **slot)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p)
        return p;
    pthread_once(&g_once, load);
    p = g_dnnl ? dlsym(g_dnnl, name) : NULL;
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
