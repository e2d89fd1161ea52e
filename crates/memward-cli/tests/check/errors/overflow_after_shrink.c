// A block shrunk by realloc to 10 bytes, then written at its old size's offsets.
// expect-error: heap-buffer-overflow on address
// expect: is located 0 bytes after 10-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(100));
    memset(p, 'a', 100);
    p = realloc(p, 10);
    p[10] = 'b';
    free(p);
    return 0;
}
