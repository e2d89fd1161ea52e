// realloc() of a local buffer.
// expect-error: attempting free on address which was not malloc()-ed
// expect-summary: bad-free
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    char buf[32] = "hello";
    char *p = realloc(opaque(buf), 64);
    return p == NULL;
}
