/* Known allocation sites for `memward profile`'s exact-figure test. Built with -O2
 * -fomit-frame-pointer: stacks must come from .eh_frame. Each site is its own
 * non-inlined function, so the innermost frame of its allocations (the return address
 * after its call to malloc/realloc) lies inside it. The figures the test expects are in
 * tests/profile.rs; keep them in sync.
 *
 *   leak_site     1,000 blocks of 48 bytes, never freed
 *   big_site      64 blocks of 1 MiB held together (the peak), then freed
 *   temp_site     100,000 blocks of 32 bytes, each freed right after allocation
 *   thread_site   on a second thread: 500 blocks of 100 bytes, 250 freed
 *   grow_site     a buffer grown by realloc from 16 bytes to 64 KiB (13 calls), kept
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

__attribute__((noinline)) static void leak_site(void) {
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(48);
        p[0] = 1;
        sink = p;
    }
}

__attribute__((noinline)) static void big_site(void) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = malloc(1 << 20);
        memset(blocks[i], i, 4096);
    }
    sink = blocks[63];
    for (int i = 0; i < 64; i++) free(blocks[i]);
}

__attribute__((noinline)) static void temp_site(void) {
    for (int i = 0; i < 100000; i++) {
        char *p = malloc(32);
        p[0] = (char)i;
        sink = p;
        free(p);
    }
}

__attribute__((noinline)) static void *thread_site(void *arg) {
    (void)arg;
    static void *blocks[500];
    for (int i = 0; i < 500; i++) {
        blocks[i] = malloc(100);
        ((char *)blocks[i])[0] = 1;
    }
    for (int i = 0; i < 500; i += 2) free(blocks[i]);
    return NULL;
}

__attribute__((noinline)) static void grow_site(void) {
    char *p = NULL;
    for (size_t n = 16; n <= 65536; n *= 2) {
        p = realloc(p, n);
        p[n - 1] = 1;
    }
    sink = p;
}

int main(void) {
    leak_site();
    grow_site();
    pthread_t t;
    if (pthread_create(&t, NULL, thread_site, NULL) != 0) return 1;
    pthread_join(t, NULL);
    big_site();
    temp_site();
    return 0;
}
