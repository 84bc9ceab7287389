/* Test helpers shared by the suites that drive the built drsch binary (harness, train and
 * reproduce): a per-suite temp directory under /tmp and paths inside it, running a shell
 * command with its output captured, the binary under test (DRSCH_EXE, set by CTest), and
 * whole-file reading and writing. They use Criterion and assert on failure, so they are for
 * Criterion suites only (fixture_cuhk03.{c,h} is the Criterion-free fixture). */
#ifndef DRSCH_TEST_UTIL_H
#define DRSCH_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The suite's temp directory, /tmp/drsch-test-<suite_tag>-XXXXXX once made. */
extern char tu_tmpdir[256];

/* Makes tu_tmpdir (mkdtemp) for the suite named suite_tag; for TestSuite .init. */
void tu_tmpdir_make(const char *suite_tag);

/* Removes tu_tmpdir and everything in it (rm -rf); for TestSuite .fini. */
void tu_tmpdir_remove(void);

/* tu_tmpdir/name in one of 8 rotating static buffers: valid until 8 further calls. */
const char *tu_path(const char *name);

/* Runs the printf-formatted shell command with stderr joined to stdout ("... 2>&1"), puts the
 * first cap - 1 bytes of the output NUL-terminated in out, reads and drops the rest (so the
 * command never blocks on a full pipe), and returns its exit status (-1 if it did not exit). */
int tu_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The drsch binary under test (environment variable DRSCH_EXE, set by CTest); asserts it is set. */
const char *tu_exe(void);

/* The whole file at path in a malloc'd buffer with a NUL appended (callers may search it as
 * text); its length without the NUL in *len unless len is NULL. Asserts the file exists. */
char *tu_slurp(const char *path, size_t *len);

/* Writes len bytes of data to path (created or truncated). */
void tu_write_file(const char *path, const void *data, size_t len);

/* An MNIST-style IDX pair <dir>/<stem>-images-idx3-ubyte and <stem>-labels-idx1-ubyte of n 28x28
 * images, label i % 10: a bright bar whose row depends on the class, over a texture
 * (x * 7 + y * 3 + i * step) & mask. */
void tu_write_idx_split(const char *dir, const char *stem, int n, int step, int mask);

/* Virtual memory of this process in bytes (VmSize of /proc/self/status), 0 if unknown: the base
 * of the address-space limits under which tests load crafted files (a loader that allocates what
 * a header declares then fails instead of taking gigabytes). */
size_t tu_vm_size(void);

/* A .npy image in out: a version 1.0 header holding `dict` (padded to 64 bytes), then the
 * payload; returns its length. For tests of malformed headers. */
size_t tu_npy_image(uint8_t *out, const char *dict, const void *payload, size_t plen);

#endif
