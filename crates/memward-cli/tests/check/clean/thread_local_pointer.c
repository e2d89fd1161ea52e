// Blocks held only in thread-local variables: the main thread's (static TLS, set up by
// the loader) and another, blocked thread's.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../corpus.h"

static __thread char *tls_block;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready;

__attribute__((noinline)) static void set_tls(size_t n) {
    tls_block = opaque(malloc(n));
    memset(tls_block, 't', n);
}

static void *worker(void *arg) {
    (void)arg;
    set_tls(700);
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    scrub_stack();
    for (;;) pause();
    return NULL;
}

int main(void) {
    set_tls(900);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_mutex_lock(&lock);
    while (!ready) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    scrub_stack();
    exit(tls_block[0] == 't' ? 0 : 1);
}
