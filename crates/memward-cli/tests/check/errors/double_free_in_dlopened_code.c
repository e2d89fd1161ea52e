// A block freed twice by a callback that zlib, loaded with dlopen after the checker
// started, calls as its allocator: the stacks run through a library the start-up scan of
// modules never saw, built without frame pointers.
// expect-error: attempting double-free on
// expect: freed by thread T0 here:
// expect-frame: freeing_twice
// expect-frame: deflateInit2_
// expect-frame: main
// expect-summary: double-free
#include <dlfcn.h>
#include <stdio.h>
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

static void release(void *unused, void *p) {
    (void)unused;
    free(p);
}

int main(void) {
    void *z = dlopen("libz.so.1", RTLD_NOW);
    if (!z) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    deflate_init2 init = (deflate_init2)dlsym(z, "deflateInit2_");
    if (!init) return 2;
    z_stream s = {0};
    s.zalloc = freeing_twice;
    s.zfree = release;
    init(&s, DEFLATE_DEFAULTS(s));
    return 0;
}
