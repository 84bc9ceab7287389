/* drsch's loadable modules: the parts of drsch that need a heavy library (HDF5 for CUHK03, MPI
 * under mpirun) are shared objects in a folder drsch-modules, loaded with dlopen when first
 * needed, so that a program or command that does not use them does not load those libraries. */
#ifndef DRSCH_MODULE_H
#define DRSCH_MODULE_H

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The address of `symbol` in drsch's module `module` (a file name, e.g. "cuhk03_hdf5.so"),
 * loaded on first use and kept for the life of the process. Looked for in $DRSCH_MODULE_DIR when
 * that is set (alone), otherwise in drsch-modules beside libdrsch.so (or beside the program that
 * linked libdrsch.a), then in the install folder, LIBDIR/drsch-modules. NULL with err set, naming
 * the file `about` (the input that needed the module, or NULL), when the module is missing, cannot
 * be loaded or lacks the symbol. Thread-safe. */
DRSCH_API void *drsch_module_symbol(const char *module, const char *symbol, const char *about,
                                    drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
