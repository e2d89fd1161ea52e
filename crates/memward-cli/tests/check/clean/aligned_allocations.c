// posix_memalign, aligned_alloc, memalign, valloc and pvalloc at alignments from 16 bytes
// to 1 MiB: every byte of every block written, the alignment checked, all freed.
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../corpus.h"

static int use(void *p, size_t size, size_t align) {
    if (!p || (uintptr_t)p % align) return 1;
    memset(p, 0x5a, size);
    free(p);
    return 0;
}

int main(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int bad = 0;
    for (size_t align = 16; align <= (1u << 20); align *= 4) {
        for (size_t size = 1; size < 200000; size = size * 5 + 3) {
            void *p = NULL;
            bad |= posix_memalign(&p, align, size) ? 1 : use(p, size, align);
            bad |= use(aligned_alloc(align, (size + align - 1) / align * align), size, align);
            bad |= use(memalign(align, size), size, align);
        }
    }
    bad |= use(valloc(100), 100, page);
    bad |= use(pvalloc(100), page, page);
    return bad;
}
