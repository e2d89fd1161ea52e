/* Frees pointers that malloc never returned: a stack address, a global, and a page from
 * mmap. glibc aborts on these ("free(): invalid pointer"); memward's fast mode finds them
 * outside its segments, reports each on stderr, leaves it alone, and the program goes on
 * allocating normally. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static char global_buffer[64];

int main(void) {
    char on_stack[32];
    void *mapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED)
        return 2;
    free(on_stack);
    free(global_buffer);
    free(mapped);
    strcpy(mapped, "still mapped and writable");
    /* The allocator still works, and its own blocks are unaffected. */
    char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(16 + i);
        memset(blocks[i], i & 0xff, 16 + i);
    }
    for (int i = 0; i < 1000; i++) {
        if ((unsigned char)blocks[i][15 + i] != (i & 0xff))
            return 3;
        free(blocks[i]);
    }
    printf("%s\n", (char *)mapped);
    return 0;
}
