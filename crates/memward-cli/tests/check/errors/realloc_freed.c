// realloc() of a block already freed (AddressSanitizer calls this a double free).
// expect-error: attempting double-free on
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-summary: double-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char *p = opaque(malloc(32));
    free(p);
    p = realloc(p, 64);
    return p == NULL;
}
