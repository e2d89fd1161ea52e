// free() of memory that malloc never handed out: a page from mmap.
// expect-error: attempting free on address which was not malloc()-ed
// expect-summary: bad-free
#include <stdlib.h>
#include <sys/mman.h>
#include "../corpus.h"

int main(void) {
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 3;
    free(opaque(page + 32));
    return 0;
}
