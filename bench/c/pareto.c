/* Pareto-distributed sizes up to 1 KiB on every core, after alloc-test (OLogN
 * Technologies' allocator test, in mimalloc-bench): real programs allocate many tiny
 * objects and a long tail of larger ones. Each thread churns its own table of objects
 * (free a random slot's object, allocate a new one there), so this measures the
 * thread-local fast paths under full parallelism, where any shared state shows.
 *
 * Sizes follow a Pareto law with scale 8 bytes and shape 1.0 (half the objects are at
 * most 16 bytes, one in eight is over 64), capped at 1024. They are drawn from a
 * 65536-entry inverse-CDF table so that no floating point runs on the hot path.
 *
 * usage: pareto THREADS STEPS_PER_THREAD SLOTS_PER_THREAD */
#include "common.h"
#include <math.h>

#define TABLE 65536
static uint16_t size_table[TABLE];
static long steps, slots;

typedef struct {
    long id;
    uint64_t sum;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    void **obj = calloc(slots, sizeof *obj);
    uint64_t *tag = calloc(slots, sizeof *tag);
    if (!obj || !tag)
        die("out of memory");
    rng_t r = rng_seeded((uint64_t)w->id + 17);
    uint64_t sum = 0;
    for (long i = 0; i < steps; i++) {
        long s = (long)rng_below(&r, (uint64_t)slots);
        if (obj[s]) {
            sum += tag_check(obj[s], size_table[tag[s] % TABLE], tag[s]);
            free(obj[s]);
        }
        /* The tag also encodes the size (its low bits index the size table), so the
         * table needs no length column. */
        tag[s] = rng_next(&r);
        size_t n = size_table[tag[s] % TABLE];
        obj[s] = xmalloc(n);
        tag_put(obj[s], n, tag[s]);
    }
    for (long s = 0; s < slots; s++) {
        if (obj[s]) {
            sum += tag_check(obj[s], size_table[tag[s] % TABLE], tag[s]);
            free(obj[s]);
        }
    }
    free(obj);
    free(tag);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS STEPS_PER_THREAD SLOTS_PER_THREAD";
    long nthreads = arg_long(argc, argv, 1, usage);
    steps = arg_long(argc, argv, 2, usage);
    slots = arg_long(argc, argv, 3, usage);
    if (nthreads < 1 || slots < 1)
        die("need THREADS >= 1 and SLOTS >= 1");

    for (int i = 0; i < TABLE; i++) {
        double u = 1.0 - (i + 0.5) / TABLE; /* upper tail probability */
        double x = 8.0 / u;                 /* Pareto(scale 8, shape 1) quantile */
        size_table[i] = (uint16_t)(x > 1024.0 ? 1024.0 : floor(x));
    }

    worker_t *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!w || !th)
        die("out of memory");
    for (long i = 0; i < nthreads; i++) {
        w[i].id = i;
        start_thread(&th[i], worker, &w[i]);
    }
    uint64_t sum = 0;
    for (long i = 0; i < nthreads; i++) {
        join_thread(th[i]);
        sum += w[i].sum;
    }
    free(w);
    free(th);
    print_checksum(sum);
    return 0;
}
