// Four producer threads hand blocks of every size through a queue to four consumers,
// which check and free them: frees from other threads, in any order.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

#define PER_PRODUCER 20000
#define SLOTS 256

static void *queue[SLOTS];
static int head, tail, count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;

static void put(void *p) {
    pthread_mutex_lock(&lock);
    while (count == SLOTS) pthread_cond_wait(&not_full, &lock);
    queue[tail] = p;
    tail = (tail + 1) % SLOTS;
    count++;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

static void *take(void) {
    pthread_mutex_lock(&lock);
    while (count == 0) pthread_cond_wait(&not_empty, &lock);
    void *p = queue[head];
    head = (head + 1) % SLOTS;
    count--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&lock);
    return p;
}

static void *producer(void *arg) {
    uintptr_t seed = (uintptr_t)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t n = 9 + (seed >> 33) % (i % 100 == 0 ? 70000 : 500);
        unsigned char *p = malloc(n);
        memcpy(p, &n, sizeof n);
        memset(p + sizeof n, (int)(n & 0xff), n - sizeof n);
        put(p);
    }
    return NULL;
}

static void *consumer(void *arg) {
    long bad = 0;
    for (int i = 0; i < PER_PRODUCER; i++) {
        unsigned char *p = take();
        size_t n;
        memcpy(&n, p, sizeof n);
        bad += p[n - 1] != (unsigned char)(n & 0xff);
        free(p);
    }
    *(long *)arg = bad;
    return NULL;
}

int main(void) {
    pthread_t t[8];
    long bad[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, producer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++) pthread_create(&t[4 + i], NULL, consumer, &bad[i]);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    return (bad[0] | bad[1] | bad[2] | bad[3]) != 0;
}
