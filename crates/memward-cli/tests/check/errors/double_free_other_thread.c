// A block freed by a second thread, then again by the main thread: the report names the
// thread of the first free.
// expect-error: attempting double-free on
// expect: freed by thread T1 here:
// expect: previously allocated by thread T0 here:
// expect-frame: worker
// expect-summary: double-free
#include <pthread.h>
#include <stdlib.h>
#include "../corpus.h"

static void *worker(void *p) {
    free(p);
    return NULL;
}

int main(void) {
    void *p = opaque(malloc(64));
    pthread_t t;
    pthread_create(&t, NULL, worker, p);
    pthread_join(t, NULL);
    free(p);
    return 0;
}
