// free() of a pointer 8 bytes into a 40-byte block.
// expect-error: attempting free on address which was not malloc()-ed
// expect: is located 8 bytes inside of 40-byte region
// expect: allocated by thread T0 here:
// expect-summary: bad-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(40));
    free(p + 8);
    return 0;
}
