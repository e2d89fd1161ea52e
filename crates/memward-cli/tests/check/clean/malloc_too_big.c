// Requests no machine can serve: NULL with ENOMEM, no report.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    errno = 0;
    if (malloc(SIZE_MAX - 4096) != NULL || errno != ENOMEM) return 1;
    errno = 0;
    void *p = opaque(malloc(16));
    if (realloc(p, SIZE_MAX / 2) != NULL || errno != ENOMEM) return 2;
    free(p);
    void *q = NULL;
    if (posix_memalign(&q, 64, SIZE_MAX - 1000) != ENOMEM) return 3;
    return 0;
}
