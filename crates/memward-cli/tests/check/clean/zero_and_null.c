// The edges of the C API: malloc(0) and calloc(0, n) give unique freeable pointers,
// free(NULL) does nothing, realloc(NULL, n) allocates.
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    void *a = malloc(0), *b = malloc(0), *c = calloc(0, 8);
    if (!a || !b || !c || a == b) return 1;
    free(a);
    free(b);
    free(c);
    free(NULL);
    void *d = realloc(NULL, 0);
    free(d);
    void *e = realloc(NULL, 10);
    if (!e) return 2;
    free(e);
    return 0;
}
