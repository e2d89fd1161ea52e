// 100 bytes allocated and the only pointer to them dropped.
// expect-error: detected memory leaks
// expect: Direct leak of 100 byte(s) in 1 object(s) allocated from:
// expect-frame: make_buffer
// expect-summary: 100 byte(s) leaked in 1 allocation(s).
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

__attribute__((noinline)) static char *make_buffer(void) {
    char *p = malloc(100);
    memset(p, 'x', 100);
    return opaque(p);
}

__attribute__((noinline)) static void use_and_drop(void) {
    char *p = make_buffer();
    p[0] = 'y';
}

int main(void) {
    call_deep(use_and_drop);
    scrub_stack();
    return 0;
}
