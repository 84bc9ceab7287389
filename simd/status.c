/* The one status type of libdrsch: its text and the filling of an error. */
#include "status.h"

#include <stdio.h>

const char *drsch_strstatus(drsch_status s)
{
    switch (s) {
    case DRSCH_OK: return "ok";
    case DRSCH_ERR_ARG: return "invalid argument";
    case DRSCH_ERR_NOMEM: return "out of memory";
    case DRSCH_ERR_IO: return "I/O error";
    case DRSCH_ERR_FORMAT: return "file format error";
    case DRSCH_ERR_TRUNCATED: return "truncated file";
    case DRSCH_ERR_CHECKSUM: return "checksum mismatch";
    case DRSCH_ERR_VERSION: return "unsupported format version";
    case DRSCH_ERR_RANGE: return "value out of range";
    case DRSCH_ERR_DECODE: return "image decoding error";
    case DRSCH_ERR_HDF5: return "HDF5 error";
    case DRSCH_ERR_ISA: return "instruction set not supported";
    case DRSCH_ERR_UNSUPPORTED: return "not supported on this CPU";
    case DRSCH_ERR_DNNL: return "oneDNN error";
    case DRSCH_ERR_COLLAPSE: return "the codes collapsed";
    case DRSCH_ERR_NUMERIC: return "numerical failure";
    case DRSCH_ERR_PEER: return "another rank failed";
    case DRSCH_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

drsch_status drsch_vfail_at(drsch_error *err, drsch_status s, const char *file, int64_t record,
                            const char *unit, const char *fmt, va_list ap)
{
    if (!err)
        return s;
    err->status = s;
    err->record = file ? record : -1;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    char what[DRSCH_MSG_MAX - DRSCH_PATH_MAX]; /* the file and the record fit beside it */
    vsnprintf(what, sizeof what, fmt, ap);
    if (file && record >= 0)
        snprintf(err->msg, sizeof err->msg, "%s: %s %lld: %s", file, unit, (long long)record, what);
    else if (file)
        snprintf(err->msg, sizeof err->msg, "%s: %s", file, what);
    else
        snprintf(err->msg, sizeof err->msg, "%s", what);
    return s;
}

drsch_status drsch_vfail(drsch_error *err, drsch_status s, const char *fmt, va_list ap)
{
    return drsch_vfail_at(err, s, NULL, -1, "", fmt, ap);
}

drsch_status drsch_fail_at(drsch_error *err, drsch_status s, const char *file, int64_t record,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    drsch_vfail_at(err, s, file, record, "record", fmt, ap);
    va_end(ap);
    return s;
}

drsch_status drsch_fail(drsch_error *err, drsch_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    drsch_vfail(err, s, fmt, ap);
    va_end(ap);
    return s;
}

drsch_status drsch_fail_line(drsch_error *err, drsch_status s, const char *file, int64_t line0,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    drsch_vfail_at(err, s, file, line0 >= 0 ? line0 + 1 : -1, "line", fmt, ap);
    va_end(ap);
    if (err)
        err->record = line0;
    return s;
}

void drsch_error_clear(drsch_error *err)
{
    if (!err)
        return;
    err->status = DRSCH_OK;
    err->file[0] = '\0';
    err->record = -1;
    err->msg[0] = '\0';
}
