// reallocarray whose count * size overflows: NULL with ENOMEM, the old block untouched
// and still the program's to free.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(100));
    memset(p, 'k', 100);
    errno = 0;
    void *q = reallocarray(p, SIZE_MAX / 4, 8);
    if (q != NULL || errno != ENOMEM) return 1;
    for (int i = 0; i < 100; i++)
        if (p[i] != 'k') return 2;
    p = reallocarray(p, 50, 4);
    if (!p || p[99] != 'k') return 3;
    free(p);
    return 0;
}
