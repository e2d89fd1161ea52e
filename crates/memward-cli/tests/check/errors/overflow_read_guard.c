// A byte read just past a 64-byte block, which --guard all puts against an inaccessible
// page: caught at the read.
// check-options: --guard all
// expect-error: heap-buffer-overflow on address
// expect: READ of
// expect: is located 0 bytes after 64-byte region
// expect: allocated by thread T0 here:
// expect-frame: sum
// expect-summary: heap-buffer-overflow
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

__attribute__((noinline)) static int sum(const volatile char *p, int n) {
    int s = 0;
    for (int i = 0; i <= n; i++) s += p[i]; /* i == n is past the end */
    return s;
}

int main(void) {
    char *p = opaque(malloc(64));
    memset(p, 1, 64);
    printf("%d\n", sum(p, 64));
    free(p);
    return 0;
}
