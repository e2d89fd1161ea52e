// A block freed twice by an optimised program without frame pointers, linked so that its
// segments lie 2 MiB apart: the loader describes each segment of such an executable on its
// own, and the stacks must still be walked through all of it (to `main`).
// build-options: -O2 -fomit-frame-pointer -fno-optimize-sibling-calls -Wl,-z,max-page-size=0x200000
// expect-error: attempting double-free on
// expect: is located 0 bytes inside of 24-byte region
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-frame: release
// expect-frame: make
// expect-frame: main
// expect-summary: double-free
#include <stdlib.h>
#include "../corpus.h"

__attribute__((noinline)) static char *make(void) {
    char *p = opaque(malloc(24));
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) static void release(char *p) {
    free(p);
    __asm__ volatile("" ::: "memory");
}

int main(void) {
    char *p = make();
    p[0] = 1;
    release(p);
    release(p);
    return 0;
}
