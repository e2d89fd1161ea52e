// A byte written into a block after it was freed; the poison is found at exit.
// expect-error: heap-use-after-free on address
// expect: is located 5 bytes inside of 40-byte region
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-summary: heap-use-after-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(40));
    free(p);
    p[5] = 'x';
    return 0;
}
