/* zlib's z_stream (zlib.h, 64-bit) and the entry points the dlopen tests call, declared here
 * so that no zlib headers are needed: the tests load Debian's libz.so.1 with dlopen. */
#ifndef MEMWARD_TEST_ZLIB_STREAM_H
#define MEMWARD_TEST_ZLIB_STREAM_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

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
typedef int (*deflate_end)(z_stream *);

/* deflateInit2_'s arguments for the defaults: Z_DEFAULT_COMPRESSION, Z_DEFLATED, a 15-bit
 * window, memLevel 8, Z_DEFAULT_STRATEGY, and the version and size zlib checks. */
#define DEFLATE_DEFAULTS(s) -1, 8, 15, 8, 0, "1.2.13", (int)sizeof(s)

/* `name` from libz.so.1, loaded with dlopen on first use; exits with status 2 if either
 * fails. */
static void *zlib_symbol(const char *name) {
    static void *z;
    if (!z && !(z = dlopen("libz.so.1", RTLD_NOW))) {
        fprintf(stderr, "%s\n", dlerror());
        exit(2);
    }
    void *f = dlsym(z, name);
    if (!f) {
        fprintf(stderr, "%s\n", dlerror());
        exit(2);
    }
    return f;
}

/* A zfree that gives the block back to free. */
static void zlib_release(void *unused, void *p) {
    (void)unused;
    free(p);
}

#endif
