/* Objects of power-of-two sizes that migrate between threads, with the threads destroyed
 * and recreated every phase, after mstress (mimalloc's stress test, in mimalloc-bench).
 * Threads have unequal amounts of work (thread i of T does (i+1)/T of twice the average),
 * so some exit while others still run, and objects outlive the threads that allocated
 * them: an allocator must hand the memory of exited threads to new ones.
 *
 * Each step allocates an object of 8 B..4 KiB (exponent uniform), or 1 time in 64 of
 * 8..64 KiB. Half the objects stay in the thread's own table of 256 (freed when replaced:
 * short-lived, local); the other half are swapped into a random slot of a shared table,
 * and the object that comes out, usually allocated by another thread, possibly in an
 * earlier phase, is freed. At exit a thread pushes its local survivors into the shared
 * table too, so some objects live for several phases.
 *
 * An object's tag encodes its size, and every allocated tag is freed exactly once, so the
 * sum of tags at free is the same whatever the interleaving.
 *
 * usage: mstress THREADS PHASES STEPS_PER_THREAD SHARED_SLOTS */
#include "common.h"
#include <stdatomic.h>

#define LOCAL 256

static long nthreads, phases, steps, shared_slots;
static _Atomic(void *) *shared;

static size_t size_of(uint64_t tag) {
    return (size_t)8 << (tag & 15);
}

static uint64_t new_tag(rng_t *r) {
    uint64_t k = rng_below(r, 64) == 0 ? 10 + rng_below(r, 4) : rng_below(r, 10);
    return (rng_next(r) & ~(uint64_t)15) | k;
}

static uint64_t check_free(void *p) {
    uint64_t tag;
    memcpy(&tag, p, 8);
    uint64_t sum = tag_check(p, size_of(tag), tag);
    free(p);
    return sum;
}

/* Swaps p into a random shared slot and frees what was there. */
static uint64_t migrate(rng_t *r, void *p) {
    void *old = atomic_exchange(&shared[rng_below(r, (uint64_t)shared_slots)], p);
    return old ? check_free(old) : 0;
}

typedef struct {
    long id, phase;
    uint64_t sum;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    rng_t r = rng_seeded((uint64_t)w->phase * 7919u + (uint64_t)w->id);
    void *local[LOCAL] = {0};
    uint64_t sum = 0;
    long n = steps * 2 * (w->id + 1) / (nthreads + 1);
    for (long i = 0; i < n; i++) {
        uint64_t tag = new_tag(&r);
        size_t len = size_of(tag);
        void *p = xmalloc(len);
        tag_put(p, len, tag);
        if (rng_next(&r) & 1) {
            long s = (long)rng_below(&r, LOCAL);
            if (local[s])
                sum += check_free(local[s]);
            local[s] = p;
        } else {
            sum += migrate(&r, p);
        }
    }
    for (long s = 0; s < LOCAL; s++)
        if (local[s])
            sum += migrate(&r, local[s]);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS PHASES STEPS_PER_THREAD SHARED_SLOTS";
    nthreads = arg_long(argc, argv, 1, usage);
    phases = arg_long(argc, argv, 2, usage);
    steps = arg_long(argc, argv, 3, usage);
    shared_slots = arg_long(argc, argv, 4, usage);
    if (nthreads < 1 || shared_slots < 1)
        die("need THREADS >= 1 and SHARED_SLOTS >= 1");

    shared = calloc((size_t)shared_slots, sizeof *shared);
    worker_t *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!shared || !w || !th)
        die("out of memory");
    uint64_t sum = 0;
    for (long ph = 0; ph < phases; ph++) {
        for (long i = 0; i < nthreads; i++) {
            w[i].id = i;
            w[i].phase = ph;
            start_thread(&th[i], worker, &w[i]);
        }
        for (long i = 0; i < nthreads; i++) {
            join_thread(th[i]);
            sum += w[i].sum;
        }
    }
    for (long s = 0; s < shared_slots; s++) {
        void *p = atomic_load(&shared[s]);
        if (p)
            sum += check_free(p);
    }
    free(shared);
    free(w);
    free(th);
    print_checksum(sum);
    return 0;
}
