/* The shared helpers of the test suites (see test_util.h). */
#include "test_util.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char tu_tmpdir[256];

void tu_tmpdir_make(const char *suite_tag)
{
    snprintf(tu_tmpdir, sizeof tu_tmpdir, "/tmp/drsch-test-%s-XXXXXX", suite_tag);
    cr_assert_not_null(mkdtemp(tu_tmpdir));
}

void tu_tmpdir_remove(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir);
    cr_assert_eq(system(cmd), 0);
}

const char *tu_path(const char *name)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tu_tmpdir, name);
    return buf[i];
}

int tu_run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096], full[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = 0, got;
    while (n + 1 < cap && (got = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *tu_exe(void)
{
    const char *e = getenv("DRSCH_EXE");
    cr_assert_not_null(e, "DRSCH_EXE must point at build/drsch (set by CTest)");
    return e;
}

char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s missing (was not written)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    cr_assert_geq(n, 0, "%s: cannot tell its size", path);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0'; /* callers search it as text */
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

size_t tu_vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

size_t tu_npy_image(uint8_t *out, const char *dict, const void *payload, size_t plen)
{
    size_t dl = strlen(dict);
    size_t hlen = (10 + dl + 1 + 63) / 64 * 64 - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)hlen;
    out[9] = (uint8_t)(hlen >> 8);
    memcpy(out + 10, dict, dl);
    memset(out + 10 + dl, ' ', hlen - dl - 1);
    out[10 + hlen - 1] = '\n';
    memcpy(out + 10 + hlen, payload, plen);
    return 10 + hlen + plen;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

void tu_write_idx_split(const char *dir, const char *stem, int n, int step, int mask)
{
    char path[1200];
    size_t isz = 16 + (size_t)n * 28 * 28;
    uint8_t *ib = malloc(isz), *lb = malloc(8 + (size_t)n);
    cr_assert(ib && lb);
    put_be32(ib, 0x803), put_be32(ib + 4, (uint32_t)n), put_be32(ib + 8, 28), put_be32(ib + 12, 28);
    put_be32(lb, 0x801), put_be32(lb + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int c = i % 10;
        lb[8 + i] = (uint8_t)c;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
                ib[16 + ((size_t)i * 28 + y) * 28 + x] =
                    (uint8_t)((y / 2 == c + 2 ? 200 : 0) + ((x * 7 + y * 3 + i * step) & mask));
    }
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, stem);
    tu_write_file(path, ib, isz);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, stem);
    tu_write_file(path, lb, 8 + (size_t)n);
    free(ib);
    free(lb);
}
