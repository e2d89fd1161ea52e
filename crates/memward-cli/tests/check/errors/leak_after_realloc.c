// A block grown by realloc, then dropped: the leak is the 200-byte block from realloc.
// expect-error: detected memory leaks
// expect: Direct leak of 200 byte(s) in 1 object(s) allocated from:
// expect-frame: grow
// expect-summary: 200 byte(s) leaked in 1 allocation(s).
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

__attribute__((noinline)) static void grow(void) {
    char *p = opaque(malloc(10));
    p = realloc(p, 200);
    memset(p, 0, 200);
    p = NULL;
}

int main(void) {
    call_deep(grow);
    scrub_stack();
    return 0;
}
