// A long stored just before a 256 KiB block.
// expect-error: heap-buffer-overflow on address
// expect: is located 8 bytes before 262144-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    long *p = opaque(malloc(256 * 1024));
    p[-1] = 42;
    free(p);
    return 0;
}
