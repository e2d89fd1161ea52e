// An 8-byte store just past the end of a 24-byte block.
// expect-error: heap-buffer-overflow on address
// expect: is located 0 bytes after 24-byte region
// expect-summary: heap-buffer-overflow
#include <stdint.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    uint64_t *p = opaque(malloc(24));
    for (int i = 0; i <= 3; i++) p[i] = 0x1122334455667788u; /* i == 3 is past the end */
    free(p);
    return 0;
}
