/* A server simulation in the manner of Larson & Krishnan's benchmark (larson in
 * mimalloc-bench): worker threads each churn a table of objects (free a random slot's
 * object, allocate a new one of random size in its place), and the tables move between
 * workers, so almost every free is of an object that another thread allocated. That is
 * what a server does when a request's data is created by one worker and released by
 * another.
 *
 * The original hands a table to a freshly created thread; here the workers stay alive
 * and pass the tables round-robin at a barrier after each round, so the remote frees land
 * on heaps whose owner is still running (the thread-recreation case is mstress.c's).
 * The operations on a table depend only on (table, round), never on which thread runs
 * them, so the checksum is deterministic.
 *
 * usage: larson THREADS ROUNDS STEPS_PER_ROUND SLOTS MIN_SIZE MAX_SIZE */
#include "common.h"

typedef struct {
    void **obj;
    size_t *len;
    uint64_t *tag;
} table_t;

static long nthreads, rounds, steps, slots, min_size, max_size;
static table_t *tables;
static pthread_barrier_t barrier;

typedef struct {
    long id;
    uint64_t sum;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    uint64_t sum = 0;
    for (long round = 0; round <= rounds; round++) {
        table_t *t = &tables[(w->id + round) % nthreads];
        rng_t r = rng_seeded((uint64_t)((w->id + round) % nthreads) * 1000003u + (uint64_t)round);
        /* Round 0 fills the worker's own table; later rounds churn someone else's. */
        long n = round == 0 ? slots : steps;
        for (long i = 0; i < n; i++) {
            long s = round == 0 ? i : (long)rng_below(&r, slots);
            if (t->obj[s]) {
                sum += tag_check(t->obj[s], t->len[s], t->tag[s]);
                free(t->obj[s]);
            }
            t->len[s] = (size_t)(min_size + (long)rng_below(&r, (uint64_t)(max_size - min_size + 1)));
            t->tag[s] = rng_next(&r);
            t->obj[s] = xmalloc(t->len[s]);
            tag_put(t->obj[s], t->len[s], t->tag[s]);
        }
        pthread_barrier_wait(&barrier);
    }
    /* Each worker empties the table it ended with: these frees are remote as well. */
    table_t *t = &tables[(w->id + rounds) % nthreads];
    for (long s = 0; s < slots; s++) {
        sum += tag_check(t->obj[s], t->len[s], t->tag[s]);
        free(t->obj[s]);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS ROUNDS STEPS_PER_ROUND SLOTS MIN_SIZE MAX_SIZE";
    nthreads = arg_long(argc, argv, 1, usage);
    rounds = arg_long(argc, argv, 2, usage);
    steps = arg_long(argc, argv, 3, usage);
    slots = arg_long(argc, argv, 4, usage);
    min_size = arg_long(argc, argv, 5, usage);
    max_size = arg_long(argc, argv, 6, usage);
    if (nthreads < 1 || slots < 1 || min_size < 8 || max_size < min_size)
        die("need THREADS >= 1, SLOTS >= 1, 8 <= MIN_SIZE <= MAX_SIZE");

    tables = calloc(nthreads, sizeof *tables);
    worker_t *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!tables || !w || !th)
        die("out of memory");
    for (long i = 0; i < nthreads; i++) {
        tables[i].obj = calloc(slots, sizeof(void *));
        tables[i].len = calloc(slots, sizeof(size_t));
        tables[i].tag = calloc(slots, sizeof(uint64_t));
        if (!tables[i].obj || !tables[i].len || !tables[i].tag)
            die("out of memory");
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (long i = 0; i < nthreads; i++) {
        w[i].id = i;
        start_thread(&th[i], worker, &w[i]);
    }
    uint64_t sum = 0;
    for (long i = 0; i < nthreads; i++) {
        join_thread(th[i]);
        sum += w[i].sum;
    }
    pthread_barrier_destroy(&barrier);
    for (long i = 0; i < nthreads; i++) {
        free(tables[i].obj);
        free(tables[i].len);
        free(tables[i].tag);
    }
    free(tables);
    free(w);
    free(th);
    printf("operations: %ld\n", nthreads * (slots + rounds * steps));
    print_checksum(sum);
    return 0;
}
