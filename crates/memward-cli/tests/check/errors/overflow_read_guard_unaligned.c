// A read 3 bytes past a 13-byte block: blocks are 16-byte aligned, so the guard page
// starts 3 bytes after the end and the read at offset 16 faults.
// check-options: --guard all
// expect-error: heap-buffer-overflow on address
// expect: READ of
// expect: is located 3 bytes after 13-byte region
// expect-summary: heap-buffer-overflow
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(13));
    memset(p, 'a', 13);
    printf("%d\n", ((volatile char *)p)[16]);
    free(p);
    return 0;
}
