/* CUHK03 (cuhk-03.mat, MATLAB v7.3): the library's side of the reader. The reading itself, through
 * HDF5, is drsch's HDF5 module (cuhk03_hdf5.c), loaded here on first use. */
#include "cuhk03_module.h"
#include "datasets_internal.h"
#include "module.h"

#include <stdlib.h>

drsch_status ds_load_cuhk03(const char *mat, int detected, const ds_load_opts *opts,
                            ds_dataset **out, drsch_error *err)
{
    drsch_error_clear(err);
    *out = NULL;
    drsch_status s = ds_check_file(mat, err);
    if (s)
        return s;
    ds_cuhk03_read_fn read =
        (ds_cuhk03_read_fn)drsch_module_symbol(DS_CUHK03_MODULE, DS_CUHK03_ENTRY, mat, err);
    if (!read)
        return err ? err->status : DRSCH_ERR_IO;
    ds_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return drsch_fail_at(err, DRSCH_ERR_NOMEM, mat, -1, "out of memory");
    s = read(DS_CUHK03_ABI, sizeof *d, sizeof(drsch_error), mat, detected, opts ? opts->out_h : 0,
             opts ? opts->out_w : 0, d, err);
    if (s == DRSCH_ERR_VERSION && (!err || !err->msg[0]))
        s = drsch_fail_at(err, s, mat, -1,
                          "drsch's HDF5 module (%s) is of another drsch version than this "
                          "library: install both from one build",
                          DS_CUHK03_MODULE);
    if (s) {
        ds_dataset_free(d);
        return s;
    }
    *out = d;
    return DRSCH_OK;
}
