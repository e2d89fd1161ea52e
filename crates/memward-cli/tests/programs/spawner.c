/* A main thread that creates 400 threads while they allocate, for
 * tests/profile_threads.rs. `spawner CAP`: each thread makes malloc/free pairs at
 * worker_site until main says stop (or it has made CAP pairs); main creates them one by
 * one (pthread_create allocates), makes 1,000 calloc/free pairs of its own at main_site, says stop,
 * joins them all and prints the workers' pair count and how many of them made any. A recorder that lets the workers
 * starve main lets them run to CAP: 400 * CAP pairs.
 * Built with -O2 -fomit-frame-pointer. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 400

static atomic_int stop;
static atomic_long pairs, active;
static long cap;
static void *volatile sink;

__attribute__((noinline)) static void worker_site(size_t n) {
    char *p = malloc(n);
    if (!p) abort();
    p[0] = 1;
    sink = p;
    free(p);
}

/* calloc, so that the compiler does not fold it into worker_site. */
__attribute__((noinline)) static void main_site(size_t n) {
    char *p = calloc(1, n);
    if (!p) abort();
    sink = p;
    free(p);
}

static void *work(void *arg) {
    long i = (long)arg, done = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed) && done < cap) {
        worker_site(16 + (size_t)((done + i) % 200));
        done++;
    }
    atomic_fetch_add(&pairs, done);
    if (done) atomic_fetch_add(&active, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: spawner CAP\n");
        return 2;
    }
    cap = atol(argv[1]);
    static pthread_t threads[THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], &attr, work, (void *)i) != 0) return 1;
    for (int k = 0; k < 1000; k++) main_site(24);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    printf("%ld %ld\n", atomic_load(&pairs), atomic_load(&active));
    return 0;
}
