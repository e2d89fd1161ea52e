/* Hundreds of threads for `memward profile`: two waves of 300 threads, the second
 * started after the first has exited (so thread stacks, TLS blocks and whatever the
 * recorder keeps per thread are reused), with known allocations at known sites and
 * blocks freed by threads other than the one that allocated them. The figures the test
 * expects are computed in tests/profile.rs from the same rules; keep them in sync.
 *
 * Wave 1: threads i = 0..299, all live at once (a barrier holds them).
 *   Thread i allocates from first_site_<i % 10>: 20 blocks of 16 * (i % 10 + 1) + i
 *   bytes. Then all wait at the barrier (the program's peak: every block of wave 1
 *   live), then thread i frees blocks 0..9 of its own, blocks 10..15 of thread
 *   (i + 1) % 300, and leaves blocks 16..19 of its own for wave 2.
 * Wave 2: threads i = 0..299, started after every thread of wave 1 was joined.
 *   Thread i first frees blocks 16..17 of wave-1 thread i (whose thread is gone; the
 *   new thread's first heap event is a free), then allocates from second_site_<i % 10>
 *   5 blocks of 8 * (i % 10 + 1) bytes, frees block 0 of its own, and block 1 through a
 *   thread-specific-data destructor as it exits. Blocks 2..4 go to the main thread.
 * Main, after wave 2 is joined: frees block 2 of every wave-2 thread and exits 7.
 *
 * Leaked at exit: wave 1's blocks 18..19 (2 per thread) and wave 2's blocks 3..4.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 300
#define SITES 10
#define FIRST_BLOCKS 20
#define SECOND_BLOCKS 5

static void *first[THREADS][FIRST_BLOCKS];
static void *second[THREADS][SECOND_BLOCKS];
static pthread_barrier_t all_live;
static pthread_key_t at_thread_exit;

/* One non-inlined function per site: the innermost frame of each allocation lies in it. */
#define SITE(name)                                                   \
    __attribute__((noinline)) static void name(void **out, int n, size_t size) { \
        for (int k = 0; k < n; k++) {                                \
            char *p = malloc(size);                                  \
            if (!p) abort();                                         \
            p[0] = (char)k;                                          \
            out[k] = p;                                              \
        }                                                            \
        __asm__ volatile("" ::: "memory");                           \
    }

SITE(first_site_0) SITE(first_site_1) SITE(first_site_2) SITE(first_site_3)
SITE(first_site_4) SITE(first_site_5) SITE(first_site_6) SITE(first_site_7)
SITE(first_site_8) SITE(first_site_9)
SITE(second_site_0) SITE(second_site_1) SITE(second_site_2) SITE(second_site_3)
SITE(second_site_4) SITE(second_site_5) SITE(second_site_6) SITE(second_site_7)
SITE(second_site_8) SITE(second_site_9)

typedef void (*site_fn)(void **, int, size_t);
static site_fn const first_sites[SITES] = {
    first_site_0, first_site_1, first_site_2, first_site_3, first_site_4,
    first_site_5, first_site_6, first_site_7, first_site_8, first_site_9,
};
static site_fn const second_sites[SITES] = {
    second_site_0, second_site_1, second_site_2, second_site_3, second_site_4,
    second_site_5, second_site_6, second_site_7, second_site_8, second_site_9,
};

__attribute__((noinline)) static void *first_wave(void *arg) {
    int i = (int)(long)arg;
    first_sites[i % SITES](first[i], FIRST_BLOCKS, 16 * (i % SITES + 1) + i);
    pthread_barrier_wait(&all_live);
    for (int k = 0; k < 10; k++) free(first[i][k]);
    for (int k = 10; k < 16; k++) free(first[(i + 1) % THREADS][k]);
    return NULL;
}

__attribute__((noinline)) static void *second_wave(void *arg) {
    int i = (int)(long)arg;
    for (int k = 16; k < 18; k++) free(first[i][k]);
    second_sites[i % SITES](second[i], SECOND_BLOCKS, 8 * (i % SITES + 1));
    free(second[i][0]);
    pthread_setspecific(at_thread_exit, second[i][1]);
    return NULL;
}

static int wave(void *(*body)(void *)) {
    static pthread_t threads[THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Small stacks: 300 default 8 MiB stacks would reserve 2.4 GiB of address space. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (long i = 0; i < THREADS; i++) {
        if (pthread_create(&threads[i], &attr, body, (void *)i) != 0) {
            fprintf(stderr, "pthread_create %ld failed\n", i);
            return 1;
        }
    }
    pthread_attr_destroy(&attr);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    return 0;
}

int main(void) {
    if (pthread_barrier_init(&all_live, NULL, THREADS) != 0) return 1;
    if (pthread_key_create(&at_thread_exit, free) != 0) return 1;
    if (wave(first_wave) != 0) return 1;
    if (wave(second_wave) != 0) return 1;
    for (int i = 0; i < THREADS; i++) free(second[i][2]);
    pthread_barrier_destroy(&all_live);
    printf("%d threads done\n", 2 * THREADS);
    return 7;
}
