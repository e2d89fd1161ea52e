// free() of a local variable.
// expect-error: attempting free on address which was not malloc()-ed
// expect: in thread T0
// expect-frame: main
// expect-summary: bad-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    int local[4] = {1, 2, 3, 4};
    free(opaque(local));
    return local[0];
}
