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
