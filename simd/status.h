/* The status and the error of every libdrsch call: one status type for all modules and one error
 * struct, with the file and record fields the readers fill. Library code never prints and never
 * exits: a call that can fail returns a drsch_status and, on failure, fills its drsch_error with
 * a complete message for a person (the file and the record included where there are some). */
#ifndef DRSCH_STATUS_H
#define DRSCH_STATUS_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libdrsch exports; everything else in the library is hidden (built with
 * -fvisibility=hidden), so the shared library's interface is exactly its installed headers. */
#if defined(__GNUC__)
#define DRSCH_API __attribute__((visibility("default")))
#else
#define DRSCH_API
#endif

typedef enum {
    DRSCH_OK = 0,
    DRSCH_ERR_ARG = -1,          /* invalid argument: sizes, names, shapes, NaN, a bad spec */
    DRSCH_ERR_NOMEM = -2,        /* an allocation failed */
    DRSCH_ERR_IO = -3,           /* a file is missing or cannot be opened, read, written, renamed */
    DRSCH_ERR_FORMAT = -4,       /* not the format expected: magic, record size, malformed text */
    DRSCH_ERR_TRUNCATED = -5,    /* a file shorter than its header says */
    DRSCH_ERR_CHECKSUM = -6,     /* a CRC-32 that does not match: a corrupt file */
    DRSCH_ERR_VERSION = -7,      /* a file of another format version */
    DRSCH_ERR_RANGE = -8,        /* a value out of range: label, index, a count too small */
    DRSCH_ERR_DECODE = -9,       /* an image could not be decoded */
    DRSCH_ERR_HDF5 = -10,        /* the HDF5 library reported an error */
    DRSCH_ERR_ISA = -11,         /* an instruction set unknown or not supported here */
    DRSCH_ERR_UNSUPPORTED = -12, /* this CPU / oneDNN build cannot run what was asked (bf16), or a
                                    library it needs cannot be loaded */
    DRSCH_ERR_DNNL = -13,        /* oneDNN refused a descriptor or an execution */
    DRSCH_ERR_COLLAPSE = -14,    /* training stopped: the codes collapsed */
    DRSCH_ERR_NUMERIC = -15,     /* NaN or Inf in training, a decomposition that failed */
    DRSCH_ERR_PEER = -16,        /* work shared between ranks: another rank failed (its error
                                    says why) */
    DRSCH_INTERRUPTED = 1,       /* asked to stop: a checkpoint was written, the work can resume */
} drsch_status;

#define DRSCH_PATH_MAX 1024
#define DRSCH_MSG_MAX 2048

typedef struct {
    drsch_status status;       /* the status the failing call returned */
    char file[DRSCH_PATH_MAX]; /* the file involved (readers), "" when none */
    int64_t record;            /* 0-based record / image / line index (readers); -1 = none */
    char msg[DRSCH_MSG_MAX];   /* the complete message, file and record included */
} drsch_error;

/* An error that says nothing yet: DRSCH_OK, no file, no record, an empty message. */
DRSCH_API void drsch_error_clear(drsch_error *err);

/* What a status means, in a few words: "out of memory", "file format error", ... */
DRSCH_API const char *drsch_strstatus(drsch_status s);

/* Fills err (when not NULL) with status s, no file or record, and the formatted message; returns
 * s, so that a failing call can end with `return drsch_fail(err, DRSCH_ERR_ARG, "...", ...)`. */
DRSCH_API drsch_status drsch_fail(drsch_error *err, drsch_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
DRSCH_API drsch_status drsch_vfail(drsch_error *err, drsch_status s, const char *fmt, va_list ap);
/* The same for a reader: the message starts with the file and, when record >= 0, the unit and
 * the record ("FILE: record 12: what", unit "record" or "line"), and err->file / err->record are
 * set. file may be NULL (no file: as drsch_fail). */
DRSCH_API drsch_status drsch_fail_at(drsch_error *err, drsch_status s, const char *file,
                                     int64_t record, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same for a line of a text file: line0 is 0-based (err->record), the message shows the
 * 1-based line number an editor shows ("FILE: line 3: what"). */
DRSCH_API drsch_status drsch_fail_line(drsch_error *err, drsch_status s, const char *file,
                                       int64_t line0, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
DRSCH_API drsch_status drsch_vfail_at(drsch_error *err, drsch_status s, const char *file,
                                      int64_t record, const char *unit, const char *fmt,
                                      va_list ap);

#ifdef __cplusplus
}
#endif

#endif
