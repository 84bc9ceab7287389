/* The interface between libdrsch and drsch's HDF5 module, drsch-modules/cuhk03_hdf5.so (built from
 * cuhk03_hdf5.c): the CUHK03 reader lives in the module so that HDF5, and the 35 libraries it
 * links, are loaded only by a process that reads a CUHK03 file. Not part of the public API. */
#ifndef DRSCH_CUHK03_MODULE_H
#define DRSCH_CUHK03_MODULE_H

#include <stddef.h>

#include "datasets.h"

#define DS_CUHK03_MODULE "cuhk03_hdf5.so"
#define DS_CUHK03_ENTRY "drsch_cuhk03_hdf5_read"
/* Raised whenever the entry's arguments or ds_dataset / drsch_error change meaning: a module of
 * another version refuses to run (DRSCH_ERR_VERSION) rather than fill a struct it misreads. */
#define DS_CUHK03_ABI 1

/* Reads the `detected` (1) or `labeled` (0) images of cuhk-03.mat, resized to out_h x out_w
 * (0: 160 x 60), and its testsets into *d, which the caller allocated zeroed. On an error, err
 * says what (naming mat) and the caller frees what d holds with ds_dataset_free. */
typedef drsch_status (*ds_cuhk03_read_fn)(int abi, size_t dataset_size, size_t error_size,
                                          const char *mat, int detected, int out_h, int out_w,
                                          ds_dataset *d, drsch_error *err);
/* The module's entry (cuhk03_hdf5.c), of that type, its one exported symbol; called directly
 * only by the fuzz target. */
__attribute__((visibility("default"))) drsch_status
drsch_cuhk03_hdf5_read(int abi, size_t dataset_size, size_t error_size, const char *mat,
                       int detected, int out_h, int out_w, ds_dataset *d, drsch_error *err);

#endif
