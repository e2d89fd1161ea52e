// A thread that allocates 77 bytes and exits without freeing them.
// expect-error: detected memory leaks
// expect: Direct leak of 77 byte(s) in 1 object(s) allocated from:
// expect-frame: worker
// expect-summary: 77 byte(s) leaked in 1 allocation(s).
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

static void *worker(void *arg) {
    char *p = opaque(malloc(77));
    memset(p, 0, 77);
    p = NULL;
    return arg;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    scrub_stack();
    return 0;
}
