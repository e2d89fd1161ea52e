// A write 3 bytes past the end of a 1 MiB block.
// expect-error: heap-buffer-overflow on address
// expect: is located 3 bytes after 1048576-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    size_t n = 1 << 20;
    char *p = opaque(malloc(n));
    memset(p, 1, n);
    p[n + 3] = 2;
    free(p);
    return 0;
}
