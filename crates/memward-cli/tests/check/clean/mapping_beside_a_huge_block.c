// A block whose only pointer lives in a page the program mapped itself, right after a
// huge block's mapping. memward gives a block of 2-4 MiB a mapping shorter than its 4 MiB
// segment window, and the kernel may place anything in the rest of that window (CPython's
// readline put libtinfo's data there); that memory is the program's, a root to scan.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../corpus.h"

#define WINDOW ((uintptr_t)4 << 20)

/* The page's address, inverted: not a pointer to a conservative scan, so only the page
 * itself keeps the blocks it holds. */
static uintptr_t page_bits;

/* Maps one page as close after `end` as possible within `end`'s 4 MiB window (where
 * memward leaves the address space free); anywhere if none is free there (other
 * allocators place blocks differently). */
static void **map_after(uintptr_t end) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t limit = (end & ~(WINDOW - 1)) + WINDOW;
    for (uintptr_t at = (end + page - 1) & ~(page - 1); at < limit; at += page) {
        void *p = mmap((void *)at, page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)at) return p;
        if (p != MAP_FAILED) munmap(p, page);
    }
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

__attribute__((noinline)) static void fill(void) {
    size_t huge = (5u << 20) / 2;
    char *big = opaque(malloc(huge));
    memset(big, 3, huge);
    void **page = map_after((uintptr_t)big + huge);
    if (!page) exit(2);
    page[0] = opaque(strdup("only in a mapping beside a huge block"));
    page[1] = big;
    page_bits = ~(uintptr_t)opaque(page);
}

int main(void) {
    call_deep(fill);
    scrub_stack();
    void **page = (void **)~page_bits;
    return strcmp(page[0], "only in a mapping beside a huge block") == 0 ? 0 : 1;
}
