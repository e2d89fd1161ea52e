// calloc whose count * size overflows: NULL with ENOMEM, and no report (the program is
// right to check, not wrong to ask).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    errno = 0;
    void *p = calloc(SIZE_MAX / 2, 3);
    if (p != NULL || errno != ENOMEM) return 1;
    errno = 0;
    p = calloc((size_t)1 << 33, (size_t)1 << 33);
    if (p != NULL || errno != ENOMEM) return 2;
    char *ok = calloc(1000, 10);
    for (int i = 0; i < 10000; i++)
        if (ok[i]) return 3;
    free(ok);
    puts("calloc overflow refused");
    return 0;
}
