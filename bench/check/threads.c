/* Threads that allocate heavily: each of N threads (argv[1], default 8) keeps 64 blocks
 * of 16-215 bytes and replaces one per iteration, 200,000 times, writing the start of
 * each new block. The checker's per-operation locks and shared counters show here. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void *work(void *arg) {
    (void)arg;
    void *keep[64] = {0};
    for (int i = 0; i < 200000; i++) {
        int k = i & 63;
        free(keep[k]);
        keep[k] = malloc(16 + (size_t)(i % 200));
        if (!keep[k])
            abort();
        memset(keep[k], 1, 16);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (n < 1 || n > 256)
        return 2;
    pthread_t t[256];
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], 0, work, 0) != 0)
            return 1;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], 0);
    return 0;
}
