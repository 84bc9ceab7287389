/* Libraries loaded with dlopen on first use (lazylib.h). */
#define _GNU_SOURCE
#include "lazylib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void load_locked(lazy_lib *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(lib->error, sizeof lib->error, "%s (%s) cannot be loaded: %s", lib->what,
                 lib->soname, why ? why : "unknown error");
        __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
        return;
    }
    /* every symbol first, so that a refused library leaves no slot set */
    for (size_t i = 0; lib->symbols && lib->symbols[i]; i++) {
        if (!dlsym(h, lib->symbols[i])) {
            snprintf(lib->error, sizeof lib->error,
                     "%s (%s) cannot be used: it has no %s (another version of the library?)",
                     lib->what, lib->soname, lib->symbols[i]);
            dlclose(h);
            __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
            return;
        }
    }
    for (size_t i = 0; lib->symbols && lib->symbols[i]; i++) {
        void *p = dlsym(h, lib->symbols[i]);
        /* POSIX: dlsym's object pointer converts to a function pointer; copied, not cast, for
         * ISO C */
        memcpy(lib->slots[i], &p, sizeof p);
    }
    lib->handle = h;
    __atomic_store_n(&lib->state, 1, __ATOMIC_RELEASE);
}

const char *lazy_lib_load(lazy_lib *lib)
{
    int state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    if (state == 0) {
        pthread_mutex_lock(&g_lock);
        if (__atomic_load_n(&lib->state, __ATOMIC_ACQUIRE) == 0)
            load_locked(lib);
        pthread_mutex_unlock(&g_lock);
        state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    }
    return state > 0 ? NULL : lib->error;
}

void *lazy_lib_symbol(lazy_lib *lib, const char *name)
{
    return lazy_lib_load(lib) ? NULL : dlsym(lib->handle, name);
}
