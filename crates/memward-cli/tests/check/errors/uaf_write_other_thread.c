// A block freed by another thread, then written by the main thread.
// expect-error: heap-use-after-free on address
// expect: freed by thread T1 here:
// expect: previously allocated by thread T0 here:
// expect-summary: heap-use-after-free
#include <pthread.h>
#include <stdlib.h>
#include "../corpus.h"

static void *worker(void *p) {
    free(p);
    return NULL;
}

int main(void) {
    int *p = opaque(malloc(32));
    pthread_t t;
    pthread_create(&t, NULL, worker, p);
    pthread_join(t, NULL);
    p[1] = 5;
    return 0;
}
