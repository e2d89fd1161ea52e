// A write one int past an 8 KiB block, caught at the write by the guard page.
// check-options: --guard all
// expect-error: heap-buffer-overflow on address
// expect: WRITE of
// expect: is located 0 bytes after 8192-byte region
// expect-frame: fill
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include "../corpus.h"

__attribute__((noinline)) static void fill(volatile int *p, int n) {
    for (int i = 0; i <= n; i++) p[i] = i; /* i == n is past the end */
}

int main(void) {
    int *p = opaque(malloc(8192));
    fill(p, 2048);
    free(p);
    return 0;
}
