/* Pure producer/consumer: in each pair of threads one only allocates and the other only
 * frees, like the asymmetric workload that Lever & Boreham observed in servers and that
 * xmalloc-test (in mimalloc-bench) reproduces. Every free is remote, and the producer's
 * heap never gets a local free back: an allocator must route the consumer's frees back to
 * the producer efficiently, or memory piles up on the wrong side.
 *
 * Objects travel in batches of 256 pointers through a single-producer single-consumer
 * ring of 64 batches (16384 objects in flight at most), so the hand-off costs little next
 * to malloc and free. Objects arrive in order, so the consumer knows each one's tag.
 *
 * usage: prodcons PAIRS OBJECTS_PER_PAIR MIN_SIZE MAX_SIZE */
#include "common.h"
#include <sched.h>
#include <stdatomic.h>

#define BATCH 256
#define RING 64

typedef struct {
    long id;
    void *slot[RING][BATCH];
    _Alignas(64) atomic_long head; /* batches published by the producer */
    _Alignas(64) atomic_long tail; /* batches consumed */
    uint64_t sum;
} pair_t;

static long objects, min_size, max_size;

static size_t size_of(uint64_t tag) {
    return (size_t)min_size + (size_t)(tag % (uint64_t)(max_size - min_size + 1));
}

static uint64_t tag_of(long pair, long i) {
    return mix64(((uint64_t)pair << 40) | (uint64_t)i);
}

static void *producer(void *arg) {
    pair_t *p = arg;
    long nbatches = (objects + BATCH - 1) / BATCH;
    long i = 0;
    for (long b = 0; b < nbatches; b++) {
        while (b - atomic_load_explicit(&p->tail, memory_order_acquire) >= RING)
            sched_yield();
        void **batch = p->slot[b % RING];
        for (int k = 0; k < BATCH && i < objects; k++, i++) {
            uint64_t tag = tag_of(p->id, i);
            size_t n = size_of(tag);
            batch[k] = xmalloc(n);
            tag_put(batch[k], n, tag);
        }
        atomic_store_explicit(&p->head, b + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    pair_t *p = arg;
    long nbatches = (objects + BATCH - 1) / BATCH;
    long i = 0;
    uint64_t sum = 0;
    for (long b = 0; b < nbatches; b++) {
        while (atomic_load_explicit(&p->head, memory_order_acquire) <= b)
            sched_yield();
        void **batch = p->slot[b % RING];
        for (int k = 0; k < BATCH && i < objects; k++, i++) {
            uint64_t tag = tag_of(p->id, i);
            sum += tag_check(batch[k], size_of(tag), tag);
            free(batch[k]);
        }
        atomic_store_explicit(&p->tail, b + 1, memory_order_release);
    }
    p->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "PAIRS OBJECTS_PER_PAIR MIN_SIZE MAX_SIZE";
    long pairs = arg_long(argc, argv, 1, usage);
    objects = arg_long(argc, argv, 2, usage);
    min_size = arg_long(argc, argv, 3, usage);
    max_size = arg_long(argc, argv, 4, usage);
    if (pairs < 1 || min_size < 8 || max_size < min_size)
        die("need PAIRS >= 1 and 8 <= MIN_SIZE <= MAX_SIZE");

    pair_t *p = aligned_alloc(64, sizeof(pair_t) * (size_t)pairs);
    pthread_t *th = calloc(2 * (size_t)pairs, sizeof *th);
    if (!p || !th)
        die("out of memory");
    for (long k = 0; k < pairs; k++) {
        p[k].id = k;
        p[k].sum = 0;
        atomic_init(&p[k].head, 0);
        atomic_init(&p[k].tail, 0);
    }
    for (long k = 0; k < pairs; k++) {
        start_thread(&th[2 * k], producer, &p[k]);
        start_thread(&th[2 * k + 1], consumer, &p[k]);
    }
    uint64_t sum = 0;
    for (long k = 0; k < 2 * pairs; k++)
        join_thread(th[k]);
    for (long k = 0; k < pairs; k++)
        sum += p[k].sum;
    free(p);
    free(th);
    printf("objects: %ld\n", pairs * objects);
    print_checksum(sum);
    return 0;
}
