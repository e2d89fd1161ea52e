/* Hundreds of threads allocating at once, for bench/profile/threads.py: `thread_churn N M`
 * starts N threads (256 KiB stacks) that wait at a barrier, then each makes M
 * malloc/free pairs of 16 to 271 bytes. Every allocation goes through the recorder's one
 * lock, with N threads runnable on however few cores there are. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink;
static pthread_barrier_t go;
static long pairs;

static void *work(void *arg) {
    long i = (long)arg;
    pthread_barrier_wait(&go);
    for (long k = 0; k < pairs; k++) {
        char *p = malloc(16 + (size_t)((k + i) % 256));
        if (!p) abort();
        p[0] = 1;
        sink = p;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: thread_churn THREADS PAIRS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    pairs = atol(argv[2]);
    pthread_t *threads = malloc(sizeof *threads * (size_t)n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (!threads || n < 1 || pthread_barrier_init(&go, NULL, (unsigned)n) != 0) return 1;
    for (long i = 0; i < n; i++)
        if (pthread_create(&threads[i], &attr, work, (void *)i) != 0) return 1;
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    free(threads);
    return 0;
}
