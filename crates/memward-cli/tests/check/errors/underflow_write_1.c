// One byte written just before the start of a 16-byte block.
// expect-error: heap-buffer-overflow on address
// expect: is located 1 bytes before 16-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(16));
    p[-1] = 0;
    free(p);
    return 0;
}
