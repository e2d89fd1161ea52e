// free() of a global array, with a chosen exit status.
// check-options: --exit-code 42
// expect-exit: 42
// expect-error: attempting free on address which was not malloc()-ed
// expect-summary: bad-free
#include <stdlib.h>
#include "../corpus.h"

char table[256];

int main(void) {
    free(opaque(table));
    return 0;
}
