/* Files read whole and written whole: the one place drsch opens an input, replaces an output,
 * publishes a set of outputs together and keeps a second writer off an output.
 *
 * Inputs: only regular files are read. A FIFO would block the reader forever and a device such
 * as /dev/zero never ends, so both are refused before the first read.
 *
 * Outputs: a regular file (or a new path) is written to a temporary file in the same folder,
 * PATH.tmp.PID, and renamed over PATH when complete, so a reader sees the old file or the new
 * one, never a mix. A symbolic link is followed: its target is replaced, the link stays. Any
 * other existing file (/dev/null, /dev/stdout, a FIFO) is written in place; a directory is
 * refused. Temporary files are registered so that a signal handler can remove them
 * (fio_remove_temporaries).
 *
 * Sets: outputs that belong together (the codes, labels and weights of one `encode`) are written
 * as temporaries, then a manifest PREFIX.manifest listing each member's size and CRC-32 is
 * renamed into place first and the members after it. A reader of a member checks it against the
 * manifest next to it (fio_set_verify): a member left over from an earlier run, or written by a
 * concurrent one, no longer matches and is refused.
 *
 * Locks: fio_lock takes PATH.lock with flock(2); a second process asking for it is refused at
 * once, naming the holder. The kernel releases the lock when its holder dies, however it dies.
 *
 * Every function that can fail returns a drsch_status (DRSCH_ERR_IO unless said otherwise) and
 * fills err with "PATH: what went wrong: cause". Library code: no printing, no exiting. */
#ifndef DRSCH_FILEIO_H
#define DRSCH_FILEIO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens PATH ("rb") for reading after checking that it is a regular file. `what` names the
 * expected content in messages ("model file", "codes"). NULL and err (DRSCH_ERR_IO) on failure. */
DRSCH_API FILE *fio_open_read(const char *path, const char *what, drsch_error *err);

/* The check of fio_open_read for readers that open by name (zlib, HDF5). */
DRSCH_API drsch_status fio_check_regular(const char *path, const char *what, drsch_error *err);

/* Reads a regular file whole: *data (malloc'd, a NUL after the last byte, not counted in *len).
 * The size comes from the open file; a file that shrinks while it is read is an error.
 * DRSCH_ERR_NOMEM when memory runs out, DRSCH_ERR_IO for the rest. */
DRSCH_API drsch_status fio_read_file(const char *path, const char *what, uint8_t **data,
                                     size_t *len, drsch_error *err);

typedef struct {
    char *path;  /* where the content goes: PATH, or the target of the link PATH names */
    char *shown; /* PATH as the caller gave it, for messages */
    char *tmp;   /* the temporary file; NULL when written in place */
    FILE *f;
    int err; /* errno of the first failed write, 0 if none */
    /* A set's member (fio_set_add sets `summed`): CRC-32 (zlib's) and count of the bytes
     * fio_out_write has written, for the set's manifest; other outputs skip the CRC. */
    int summed;
    uint32_t crc;
    uint64_t bytes;
} fio_out;

/* Opens an output as described above. */
DRSCH_API drsch_status fio_out_begin(fio_out *o, const char *path, drsch_error *err);

/* fwrite that remembers the first failure (reported by fio_out_commit). */
DRSCH_API void fio_out_write(fio_out *o, const void *p, size_t len);

/* Flushes, syncs when `durable` (models, checkpoints), closes and renames into place. On any
 * failure removes the temporary file and leaves what PATH held untouched. Always releases o. */
DRSCH_API drsch_status fio_out_commit(fio_out *o, int durable, drsch_error *err);

/* Closes and removes the temporary file; PATH keeps what it held. Releases o. */
DRSCH_API void fio_out_abort(fio_out *o);

/* Writes `len` bytes to PATH as one fio_out. */
DRSCH_API drsch_status fio_write_file(const char *path, const void *data, size_t len, int durable,
                                      drsch_error *err);

typedef struct {
    int fd;
    char *path; /* PATH.lock */
} fio_lock;

/* Takes PATH.lock or fails: "PATH: another drsch run (process N) is writing it". */
DRSCH_API drsch_status fio_lock_take(fio_lock *l, const char *path, drsch_error *err);

/* Removes and releases the lock (a no-op on a lock never taken). */
DRSCH_API void fio_lock_release(fio_lock *l);

#define FIO_SET_MAX 8

typedef struct {
    char *prefix;
    fio_lock lock;
    /* 1 (fio_set_begin's default): the commit syncs every member, the manifest and the folder to
     * the disk before returning, so the set survives a crash of the machine. 0: it does not (the
     * files are complete for every process once the commit returns; after a crash of the machine
     * a member that did not reach the disk no longer matches the manifest's CRC-32 and is
     * refused, never read as results). For outputs that are quicker to make again than to sync. */
    int durable;
    int count;
    char *suffix[FIO_SET_MAX];
    fio_out member[FIO_SET_MAX];
} fio_set;

/* Takes the lock on PREFIX and starts an empty set. */
DRSCH_API drsch_status fio_set_begin(fio_set *s, const char *prefix, drsch_error *err);

/* Opens member PREFIX.SUFFIX (e.g. "codes.npy"); write it through the returned fio_out, then
 * leave it to fio_set_commit. NULL and err on failure (the set stays valid for abort). */
DRSCH_API fio_out *fio_set_add(fio_set *s, const char *suffix, drsch_error *err);

/* Closes every member, writes PREFIX.manifest, renames it and then the members into place, and
 * releases the lock. On failure nothing is renamed (or, if renaming itself fails midway, the
 * manifest no longer matches the members left behind) and every temporary file is removed. */
DRSCH_API drsch_status fio_set_commit(fio_set *s, drsch_error *err);

/* Removes every temporary file of the set and releases its lock. */
DRSCH_API void fio_set_abort(fio_set *s);

/* For a reader of PATH = PREFIX.NAME.EXT: when PREFIX.manifest exists, PATH must be the member
 * NAME.EXT it lists, with that size and CRC-32: DRSCH_OK when it is (or when PATH is not in a
 * set), DRSCH_ERR_CHECKSUM when it is not, DRSCH_ERR_FORMAT for a manifest that is not one. */
DRSCH_API drsch_status fio_set_verify(const char *path, drsch_error *err);

/* Removes every registered temporary file and lock; async-signal-safe (unlink only), for the
 * handlers of SIGINT and SIGTERM. */
DRSCH_API void fio_remove_temporaries(void);

/* SIGINT, SIGTERM and SIGHUP (those the process does not ignore) remove the temporary files and
 * locks, then take their default action (the exit status says which signal). Call it before the
 * process starts any thread: it blocks the three in the calling thread, so in every thread
 * started after it (OpenMP's, oneDNN's, MPI's), and takes them in a thread of its own with
 * sigwait. A handler that does the same stays installed for any thread that unblocks them.
 *
 * Why no handler runs in the computing threads: oneDNN 2.6's f32 gemm kernel for AVX-512
 * (jit_avx512_common_gemm_f32, behind dnnl_sgemm and the convolutions unfolded into products)
 * points the stack pointer at its heap workspace while it runs. A signal handled in a thread
 * inside that kernel has its frame (several KiB with the AVX-512 state) written below the
 * workspace, over other heap blocks: interrupted training runs ended in "corrupted size vs.
 * prev_size" and "unaligned tcache chunk" aborts, about one run in ten. */
DRSCH_API void fio_cleanup_on_signals(void);

/* system(3) with the signals fio_cleanup_on_signals blocks unblocked in the calling thread while
 * it runs, so that the command (which inherits the mask) can be interrupted as usual. */
DRSCH_API int fio_system(const char *cmd);

/* While flag and sig are set (non-NULL), the first of those signals sets *sig to its number and
 * *flag to 1 (atomic stores, from the signal thread) instead of ending the process; one after it
 * ends the process as above. NULL, NULL disarms. For drsch train, which stops at the end of its
 * iteration. */
DRSCH_API void fio_stop_on_signals(volatile sig_atomic_t *flag, volatile sig_atomic_t *sig);

#ifdef __cplusplus
}
#endif

#endif
