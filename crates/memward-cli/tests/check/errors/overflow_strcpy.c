// strcpy of a 12-byte string (with its NUL) into an 8-byte block.
// expect-error: heap-buffer-overflow on address
// expect: is located 0 bytes after 8-byte region
// expect-summary: heap-buffer-overflow
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(int argc, char **argv) {
    (void)argv;
    char *p = opaque(malloc(8));
    strcpy(p, argc > 5 ? "x" : "hello world");
    free(p);
    return 0;
}
