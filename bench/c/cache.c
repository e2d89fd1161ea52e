/* False sharing between threads, after Hoard's cache-thrash and cache-scratch (Berger et
 * al., 2000; both in mimalloc-bench). Each thread repeatedly allocates a small object,
 * writes every byte of it REPETITIONS times, and frees it. The writes are all the work;
 * the allocator's only influence is whether objects used by different threads share a
 * cache line, in which case every write bounces that line between cores.
 *
 * thrash (active false sharing): the threads allocate their objects themselves; an
 *   allocator that serves concurrent threads from the same cache lines is slow.
 * scratch (passive false sharing): the main thread allocates one object per thread
 *   back to back (so they share cache lines) and hands them out; each thread writes to
 *   its inherited object, frees it, and then runs the thrash loop. An allocator that
 *   gives the freed block back to the thread that freed it, rather than to its owner,
 *   keeps the threads on the main thread's shared cache lines.
 *
 * usage: cache thrash|scratch THREADS ITERATIONS OBJ_SIZE REPETITIONS */
#include "common.h"

static long iterations, obj_size, repetitions;

typedef struct {
    char *inherited; /* scratch: the object the main thread allocated for this thread */
    uint64_t sum;
} worker_t;

/* Writes through a volatile pointer so that every store reaches memory (the cache line),
 * as it would in a program where another function reads the object. */
static uint64_t hammer(char *obj) {
    volatile char *v = obj;
    for (long r = 0; r < repetitions; r++)
        for (long k = 0; k < obj_size; k++)
            v[k] = (char)(v[k] + 1);
    uint64_t s = 0;
    for (long k = 0; k < obj_size; k++)
        s += (unsigned char)v[k];
    return s;
}

static void *worker(void *arg) {
    worker_t *w = arg;
    uint64_t sum = 0;
    if (w->inherited) {
        memset(w->inherited, 0, (size_t)obj_size);
        sum += hammer(w->inherited);
        free(w->inherited);
    }
    for (long i = 0; i < iterations; i++) {
        char *obj = xmalloc((size_t)obj_size);
        memset(obj, 0, (size_t)obj_size);
        sum += hammer(obj);
        free(obj);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "thrash|scratch THREADS ITERATIONS OBJ_SIZE REPETITIONS";
    if (argc < 2 || (strcmp(argv[1], "thrash") && strcmp(argv[1], "scratch"))) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        return 2;
    }
    int scratch = strcmp(argv[1], "scratch") == 0;
    long nthreads = arg_long(argc, argv, 2, usage);
    iterations = arg_long(argc, argv, 3, usage);
    obj_size = arg_long(argc, argv, 4, usage);
    repetitions = arg_long(argc, argv, 5, usage);
    if (nthreads < 1 || obj_size < 1)
        die("need THREADS >= 1 and OBJ_SIZE >= 1");

    worker_t *w = calloc(nthreads, sizeof *w);
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!w || !th)
        die("out of memory");
    if (scratch)
        for (long i = 0; i < nthreads; i++)
            w[i].inherited = xmalloc((size_t)obj_size);
    for (long i = 0; i < nthreads; i++)
        start_thread(&th[i], worker, &w[i]);
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
