// realloc() of a pointer into the middle of a block.
// expect-error: attempting free on address which was not malloc()-ed
// expect: is located 16 bytes inside of 100-byte region
// expect-summary: bad-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(100));
    char *q = realloc(p + 16, 200);
    return q == NULL;
}
