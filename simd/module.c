/* drsch's loadable modules (drsch-modules/NAME.so): code that needs a heavy library, loaded on
 * first use with dlopen, so that programs and commands that do not use it do not load it. */
#define _GNU_SOURCE
#include "module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The install folder, set by the build (CMAKE_INSTALL_FULL_LIBDIR/drsch-modules): found by a
 * program linked with libdrsch.a, which has no libdrsch.so to look beside. */
#ifndef DRSCH_MODULE_INSTALL_DIR
#define DRSCH_MODULE_INSTALL_DIR ""
#endif
#define MODULE_FOLDER "drsch-modules"
#define MODULE_DIRS 2

/* The folder drsch-modules beside the object this code is in: libdrsch.so, or the program that
 * linked libdrsch.a. 0 when that object's path is not known. */
static int beside_library(char *out, size_t cap)
{
    Dl_info info;
    if (!dladdr((void *)&beside_library, &info) || !info.dli_fname || !strchr(info.dli_fname, '/'))
        return 0;
    char real[PATH_MAX];
    if (!realpath(info.dli_fname, real))
        return 0;
    char *slash = strrchr(real, '/');
    *slash = '\0';
    int n = snprintf(out, cap, "%s/%s", real[0] ? real : "", MODULE_FOLDER);
    return n > 0 && (size_t)n < cap;
}

void *drsch_module_symbol(const char *module, const char *symbol, const char *about,
                          drsch_error *err)
{
    char dirs[MODULE_DIRS][DRSCH_PATH_MAX];
    int n = 0;
    const char *env = getenv("DRSCH_MODULE_DIR");
    if (env && *env) {
        snprintf(dirs[n++], sizeof dirs[0], "%s", env); /* the user's choice, alone */
    } else {
        n += beside_library(dirs[n], sizeof dirs[0]);
        if (DRSCH_MODULE_INSTALL_DIR[0] && (n == 0 || strcmp(dirs[0], DRSCH_MODULE_INSTALL_DIR)))
            snprintf(dirs[n++], sizeof dirs[0], "%s", DRSCH_MODULE_INSTALL_DIR);
    }
    char tried[2 * DRSCH_PATH_MAX + 8] = "";
    for (int i = 0; i < n; i++) {
        char path[DRSCH_PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dirs[i], module) >= (int)sizeof path ||
            access(path, F_OK) != 0) {
            size_t at = strlen(tried);
            snprintf(tried + at, sizeof tried - at, "%s%s", at ? ", " : "", dirs[i]);
            continue;
        }
        /* Present: it loads, or its error is the answer (no older copy further down is tried). */
        void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *why = dlerror();
            drsch_fail_at(err, DRSCH_ERR_IO, about, -1, "drsch's module %s cannot be loaded: %s",
                          path, why ? why : "unknown error");
            return NULL;
        }
        void *sym = dlsym(handle, symbol);
        if (!sym) {
            drsch_fail_at(err, DRSCH_ERR_VERSION, about, -1,
                          "drsch's module %s has no %s: it is of another drsch version", path,
                          symbol);
            return NULL; /* the module stays loaded, as a found one does */
        }
        return sym;
    }
    drsch_fail_at(
        err, DRSCH_ERR_IO, about, -1,
        "%sdrsch's module %s, which is not in %s (DRSCH_MODULE_DIR: the folder that holds "
        "it)",
        about ? "reading it needs " : "this needs ", module,
        n ? tried : "any folder known to this build");
    return NULL;
}
