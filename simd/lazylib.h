/* A system library drsch needs only for some work (oneDNN for the networks, libjpeg and libpng
 * for image files, libRmath for drsch compare's test, LAPACK for ITQ), loaded with dlopen by the
 * first call that needs it, so that a process that never does that work does not map and relocate
 * it: a search or an evaluation starts without them. Not part of the public API. */
#ifndef DRSCH_LAZYLIB_H
#define DRSCH_LAZYLIB_H

#include <stddef.h>

/* One such library. Define it static with LAZY_LIB; the rest is lazylib.c's. */
typedef struct lazy_lib {
    const char *soname;         /* what dlopen loads, e.g. "libjpeg.so.62" */
    const char *what;           /* its name in messages, e.g. "libjpeg" */
    const char *const *symbols; /* resolved when it loads: NULL-terminated names, or NULL */
    void *const *slots;         /* where each goes: the address of a function pointer of its type */
    int state;                  /* 0 not tried, 1 loaded, -1 failed: written once, under a lock */
    void *handle;
    char error[480];
} lazy_lib;

/* LAZY_LIB(soname, what, symbols, slots): a lazy_lib not yet loaded. */
#define LAZY_LIB(soname, what, symbols, slots)                                                     \
    {                                                                                              \
        (soname), (what), (symbols), (slots), 0, NULL, ""                                          \
    }

/* The functions a file calls from a library: given LIST(X, s), which expands X(s, f) for each
 * function f of the library's header, LAZY_FUNCTIONS(s, LIST) defines the static struct s of
 * pointers named as the functions and typed as the header declares them, and s_names and s_slots
 * for LAZY_LIB, so that a call reads s.f(...). */
#define LAZY_FN_POINTER(s, f) __typeof__(&f) f;
#define LAZY_FN_NAME(s, f) #f,
#define LAZY_FN_SLOT(s, f) &s.f,
#define LAZY_FUNCTIONS(s, LIST)                                                                    \
    static struct {                                                                                \
        LIST(LAZY_FN_POINTER, s)                                                                   \
    } s;                                                                                           \
    static const char *const s##_names[] = {LIST(LAZY_FN_NAME, s) NULL};                           \
    static void *const s##_slots[] = {LIST(LAZY_FN_SLOT, s)}

/* Loads lib, once per process (thread-safe; later calls only read its state), and stores the
 * address of each of its symbols in its slot. NULL once loaded; otherwise why not, naming the
 * library, its file and the cause (not found, or which symbol it lacks), for every call after. */
const char *lazy_lib_load(lazy_lib *lib);

/* The address of `name` in lib, which this loads first; NULL when it cannot be loaded or has no
 * such symbol. */
void *lazy_lib_symbol(lazy_lib *lib, const char *name);

#endif
