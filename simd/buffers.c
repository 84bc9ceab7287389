/* Large buffers on transparent huge pages (hm_buffer_alloc, hamming.h). Each block starts with a
 * 64-byte header: the mapping's length (0 for a malloc block) and the address to release. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "hamming.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define BIG_HEADER 64u
#define BIG_FROM ((size_t)256 << 10)
#define BIG_PAGE ((size_t)2 << 20)

typedef struct {
    size_t mapped; /* bytes mapped at base, 0 when base came from malloc */
    void *base;
} big_header;

void *hm_buffer_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - BIG_HEADER - 2 * BIG_PAGE)
        return NULL;
    size_t need = bytes + BIG_HEADER;
    if (need < BIG_FROM) {
        void *base = aligned_alloc(BIG_HEADER, (need + 63) & ~(size_t)63);
        if (!base)
            return NULL;
        *(big_header *)base = (big_header){0, base};
        return (char *)base + BIG_HEADER;
    }
    size_t len = (need + BIG_PAGE - 1) & ~(BIG_PAGE - 1);
    /* map a huge page more, then unmap the ends so the block starts on a 2 MiB boundary */
    char *raw =
        mmap(NULL, len + BIG_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *base = (char *)(((uintptr_t)raw + BIG_PAGE - 1) & ~(uintptr_t)(BIG_PAGE - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    size_t tail = (size_t)(raw + len + BIG_PAGE - (base + len));
    if (tail)
        munmap(base + len, tail);
#ifdef MADV_HUGEPAGE
    madvise(base, len, MADV_HUGEPAGE); /* advice only: without huge pages it still works */
#endif
    *(big_header *)base = (big_header){len, base};
    return base + BIG_HEADER;
}

void hm_buffer_free(void *p)
{
    if (!p)
        return;
    big_header h = *(big_header *)((char *)p - BIG_HEADER);
    if (h.mapped)
        munmap(h.base, h.mapped);
    else
        free(h.base);
}
