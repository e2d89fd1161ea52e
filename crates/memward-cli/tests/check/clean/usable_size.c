// Writing every byte malloc_usable_size reports is legal, however far past the requested
// size that is.
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    for (size_t n = 1; n < 100000; n = n * 3 + 1) {
        char *p = opaque(malloc(n));
        size_t usable = malloc_usable_size(p);
        if (usable < n) return 1;
        memset(p, 0x33, usable);
        p = realloc(p, usable);
        free(p);
    }
    return 0;
}
