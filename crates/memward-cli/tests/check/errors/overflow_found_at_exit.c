// An overflow of a block that is never freed (still reachable from a global): no free
// ever looks at its red zone, so the check at exit must.
// check-options: --no-leaks
// expect-error: heap-buffer-overflow on address
// expect: is located 2 bytes after 50-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include "../corpus.h"

char *keep;

int main(void) {
    keep = opaque(malloc(50));
    keep[52] = 'x';
    return 0;
}
