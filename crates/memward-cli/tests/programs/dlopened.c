/* Allocations made through a library loaded with dlopen after the profiler started: zlib
 * (Debian's, built without frame pointers) calls `zlib_site` as its allocator from
 * deflateInit2_, 40 times over, right after the dlopen. Their stacks must run from
 * zlib_site through zlib's frames to main, which needs zlib's .eh_frame: the profiler
 * must learn the library from the walks that meet it, not from a later module scan.
 * Every block zlib_site returns is 1,000 bytes or more (zlib's state and buffers).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "zlib_stream.h"

static void *volatile last;

__attribute__((noinline)) static void *zlib_site(void *unused, unsigned items, unsigned size) {
    (void)unused;
    size_t n = (size_t)items * size;
    /* Through `last`, so the call to malloc is not a tail call (it would leave no frame). */
    last = malloc(n < 1000 ? 1000 : n);
    return last;
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
    deflate_end end = (deflate_end)dlsym(z, "deflateEnd");
    if (!init || !end) return 2;
    for (int i = 0; i < 40; i++) {
        z_stream s = {0};
        s.zalloc = zlib_site;
        s.zfree = release;
        if (init(&s, DEFLATE_DEFAULTS(s)) != 0) return 3;
        end(&s);
    }
    return 0;
}
