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

/* zlib's z_stream (zlib.h, 64-bit), declared here so no zlib headers are needed. */
typedef struct {
    const unsigned char *next_in;
    unsigned avail_in;
    unsigned long total_in;
    unsigned char *next_out;
    unsigned avail_out;
    unsigned long total_out;
    const char *msg;
    void *state;
    void *(*zalloc)(void *, unsigned, unsigned);
    void (*zfree)(void *, void *);
    void *opaque;
    int data_type;
    unsigned long adler;
    unsigned long reserved;
} z_stream;

typedef int (*deflate_init2)(z_stream *, int, int, int, int, int, const char *, int);

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
    /* Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 window bits, memLevel 8, Z_DEFAULT_STRATEGY. */
    init(&s, -1, 8, 15, 8, 0, "1.2.13", (int)sizeof s);
    return 0;
}
