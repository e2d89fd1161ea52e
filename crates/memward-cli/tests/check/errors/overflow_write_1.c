// One byte written just past the end of a 13-byte block (the classic off-by-one), found
// when the block is freed.
// expect-error: heap-buffer-overflow on address
// expect: is located 0 bytes after 13-byte region
// expect: allocated by thread T0 here:
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(13));
    memcpy(p, "hello, world", 13);
    p[13] = '!';
    free(p);
    return 0;
}
