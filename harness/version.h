/* Build identity shown by `drsch --version` and recorded in every report. */
#ifndef DRSCH_VERSION_H
#define DRSCH_VERSION_H

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

DRSCH_API const char *drsch_version(void);        /* "0.1.0" */
DRSCH_API const char *drsch_git_commit(void);     /* short hash at configure time */
DRSCH_API const char *drsch_compiler(void);       /* "gcc 12.2.0" */
DRSCH_API const char *drsch_compiler_flags(void); /* CMAKE_C_FLAGS + build type flags */
DRSCH_API const char *drsch_build_type(void);

#ifdef __cplusplus
}
#endif

#endif
