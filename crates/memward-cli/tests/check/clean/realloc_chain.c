// A buffer grown by realloc from 1 byte to 4 MiB and shrunk back, its contents checked at
// every step, and blocks moved between sizes classes, large and huge sizes.
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    unsigned char *p = NULL;
    size_t n = 0;
    for (size_t next = 1; next <= (4u << 20); next = next * 3 / 2 + 1) {
        p = realloc(p, next);
        if (!p) return 2;
        for (size_t i = 0; i < n && i < next; i++)
            if (p[i] != (unsigned char)(i * 7)) return 3;
        for (size_t i = n; i < next; i++) p[i] = (unsigned char)(i * 7);
        n = next;
    }
    while (n > 1) {
        n /= 3;
        p = realloc(p, n);
        for (size_t i = 0; i < n; i++)
            if (p[i] != (unsigned char)(i * 7)) return 4;
    }
    free(p);
    /* realloc(NULL, n) is malloc. */
    char *q = realloc(NULL, 40);
    q[39] = 0;
    free(q);
    puts("realloc chain ok");
    return 0;
}
