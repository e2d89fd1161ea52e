// Two errors in a row, a double free and then a free of a global, for --keep-going:
// both are reported and the program runs to its end.
// expect-error: attempting double-free on
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

static char global[64];

int main(void) {
    char *p = opaque(malloc(24));
    free(p);
    free(p);
    free(opaque(global));
    puts("reached the end");
    return 0;
}
