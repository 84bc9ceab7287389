/* What fileio.c and fileio_set.c share: not installed, not exported. */
#ifndef DRSCH_FILEIO_INTERNAL_H
#define DRSCH_FILEIO_INTERNAL_H

#include "fileio.h"

/* An I/O failure: fills err, returns DRSCH_ERR_IO. */
drsch_status fio_fail(drsch_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a then b, malloc'd (NULL when out of memory). */
char *fio_concat(const char *a, const char *b);
/* The registry of temporary files and locks a signal handler removes. */
void fio_registry_add(char *path);
void fio_registry_drop(const char *path);
/* Flush, sync when durable and close; the temporary file stays for the caller. */
drsch_status fio_out_close(fio_out *o, int durable, drsch_error *err);
/* Renames the temporary file over the output (a no-op for an output written in place). */
drsch_status fio_out_publish(fio_out *o, int durable, drsch_error *err);
/* fsync of the folder holding path, so that a rename in it is durable. */
void fio_sync_folder(const char *path);

#endif
