// A block freed twice by a callback that zlib, loaded with dlopen after the checker
// started, calls as its allocator: the stacks run through a library the start-up scan of
// modules never saw, built without frame pointers.
// expect-error: attempting double-free on
// expect: freed by thread T0 here:
// expect-frame: freeing_twice
// expect-frame: deflateInit2_
// expect-frame: main
// expect-summary: double-free
#include <stdlib.h>
#include "../corpus.h"
#include "../../programs/zlib_stream.h"

__attribute__((noinline)) static void *freeing_twice(void *unused, unsigned items, unsigned size) {
    (void)unused;
    char *p = opaque(malloc(24));
    free(p);
    free(p);
    return calloc(items, size);
}

int main(void) {
    deflate_init2 init = (deflate_init2)zlib_symbol("deflateInit2_");
    z_stream s = {0};
    s.zalloc = freeing_twice;
    s.zfree = zlib_release;
    init(&s, DEFLATE_DEFAULTS(s));
    return 0;
}
