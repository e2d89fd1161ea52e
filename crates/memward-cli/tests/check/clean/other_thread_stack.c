// At exit, a block is held only by a local variable of another thread that is still
// blocked: thread stacks (and registers) are roots.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../corpus.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready;

static void *holder(void *arg) {
    (void)arg;
    char *mine = opaque(malloc(4000));
    memset(mine, 'h', 4000);
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    for (;;) pause(); /* never returns; `mine` stays on this stack */
    return mine;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    pthread_mutex_lock(&lock);
    while (!ready) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    scrub_stack();
    exit(0); /* the holder thread is still running */
}
