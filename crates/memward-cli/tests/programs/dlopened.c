/* Allocations made through a library loaded with dlopen after the profiler started: zlib
 * (Debian's, built without frame pointers) calls `zlib_site` as its allocator from
 * deflateInit2_, 40 times over, right after the dlopen. Their stacks must run from
 * zlib_site through zlib's frames to main, which needs zlib's .eh_frame: the profiler
 * must learn the library from the walks that meet it, not from a later module scan.
 * Every block zlib_site returns is 1,000 bytes or more (zlib's state and buffers).
 */
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

int main(void) {
    deflate_init2 init = (deflate_init2)zlib_symbol("deflateInit2_");
    deflate_end end = (deflate_end)zlib_symbol("deflateEnd");
    for (int i = 0; i < 40; i++) {
        z_stream s = {0};
        s.zalloc = zlib_site;
        s.zfree = zlib_release;
        if (init(&s, DEFLATE_DEFAULTS(s)) != 0) return 3;
        end(&s);
    }
    return 0;
}
