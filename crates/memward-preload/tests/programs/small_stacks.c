// Threads created with small stacks (64 KiB): glibc carves every thread's static TLS out
// of its stack and refuses pthread_create (EINVAL) when the stack cannot hold it, so a
// preloaded library's thread-local storage must stay small.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *work(void *arg) {
    long sum = 0;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(16 + i % 200);
        memset(p, i, 16);
        sum += p[3];
        free(p);
    }
    return (void *)(sum + (long)arg);
}

int main(void) {
    size_t sizes[] = {64 << 10, 128 << 10};
    for (int s = 0; s < 2; s++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (pthread_attr_setstacksize(&attr, sizes[s]) != 0) return 2;
        pthread_t t[4];
        for (long i = 0; i < 4; i++) {
            int e = pthread_create(&t[i], &attr, work, (void *)i);
            if (e != 0) {
                printf("pthread_create with a %zu-byte stack: error %d\n", sizes[s], e);
                return 1;
            }
        }
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        pthread_attr_destroy(&attr);
        printf("%zu-byte stacks: 4 threads ran\n", sizes[s]);
    }
    return 0;
}
