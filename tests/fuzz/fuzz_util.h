/* Helpers shared by the libFuzzer targets of tests/fuzz/: a private scratch directory created
 * once per process and removed at exit (under /dev/shm when it exists, so files cost no disk
 * I/O), writing a file there, and cutting the fuzzer's input into several files at a
 * separator line.
 * Header-only (static inline functions) so each target stays one translation unit. Not a test
 * framework: a target only calls the reader and lets the sanitizers judge. */
#ifndef DRSCH_FUZZ_UTIL_H
#define DRSCH_FUZZ_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Separates the files packed into one fuzzer input (seed corpora use it too). */
#define FUZZ_SEP "\n--8<--\n"
#define FUZZ_SEP_LEN 8

static char fuzz_dir_path[256];

/* Removes the scratch directory (flat: targets write no subdirectories) at exit. */
static inline void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(fuzz_dir_path);
}

/* The scratch directory, created on first use and removed at exit; the process aborts if it
 * cannot be created or disappears (a broken harness, not a finding). */
static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/drsch-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir_path))
            abort();
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Writes data[0..len) to <fuzz_dir>/name; the full path goes to path (>= 512 bytes). */
static inline void fuzz_write(const char *name, const uint8_t *data, size_t len, char *path)
{
    snprintf(path, 512, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        abort();
}

/* Cuts data[0..len) at FUZZ_SEP into at most max parts: part i is data + off[i], n[i] bytes.
 * Parts not present in the input are empty. Returns the number of parts found. */
static inline int fuzz_split(const uint8_t *data, size_t len, int max, size_t *off, size_t *n)
{
    int k = 0;
    size_t start = 0;
    for (int i = 0; i < max; i++)
        off[i] = n[i] = 0;
    while (k < max) {
        size_t end = len;
        if (k < max - 1)
            for (size_t p = start; p + FUZZ_SEP_LEN <= len; p++)
                if (!memcmp(data + p, FUZZ_SEP, FUZZ_SEP_LEN)) {
                    end = p;
                    break;
                }
        off[k] = start;
        n[k] = end - start;
        k++;
        if (end == len)
            break;
        start = end + FUZZ_SEP_LEN;
    }
    return k;
}

#endif
