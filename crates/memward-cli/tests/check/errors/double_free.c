// A 13-byte block freed twice.
// expect-error: attempting double-free on
// expect: in thread T0
// expect: is located 0 bytes inside of 13-byte region
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-frame: release
// expect-summary: double-free
#include <stdlib.h>
#include "../corpus.h"

__attribute__((noinline)) static void release(char *p) { free(p); }

int main(void) {
    char *p = opaque(malloc(13));
    release(p);
    free(p);
    return 0;
}
