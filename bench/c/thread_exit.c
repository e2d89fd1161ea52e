/* Memory retained after many threads exit, after mleak (mimalloc-bench): programs that
 * run short-lived worker threads must not grow with the number of threads they have run.
 *
 * WAVES times, THREADS threads start together; each churns a table of 1024 small objects
 * (16..512 B) for OBJECTS steps, then exits holding KEEP of them, which the main thread
 * frees one wave later (so they outlive the thread that allocated them, and their pages
 * cannot simply be dropped with its heap). An allocator that does not reuse the memory
 * of exited threads shows a peak RSS growing with WAVES; the program also reports the
 * RSS at the end, with only the last wave's kept objects live.
 *
 * usage: thread_exit WAVES THREADS OBJECTS KEEP */
#include "common.h"

#define TABLE 1024

static long objects, keep;

typedef struct {
    long id, wave;
    void **kept; /* KEEP objects handed to the main thread */
    uint64_t *kept_tag;
    uint64_t sum;
} worker_t;

static size_t size_of(uint64_t tag) {
    return 16 + (size_t)(tag % 497);
}

static void *worker(void *arg) {
    worker_t *w = arg;
    rng_t r = rng_seeded((uint64_t)w->wave * 131u + (uint64_t)w->id);
    void *obj[TABLE] = {0};
    uint64_t tag[TABLE] = {0};
    uint64_t sum = 0;
    for (long i = 0; i < objects; i++) {
        long s = (long)rng_below(&r, TABLE);
        if (obj[s]) {
            sum += tag_check(obj[s], size_of(tag[s]), tag[s]);
            free(obj[s]);
        }
        tag[s] = rng_next(&r);
        obj[s] = xmalloc(size_of(tag[s]));
        tag_put(obj[s], size_of(tag[s]), tag[s]);
    }
    w->kept = xmalloc(sizeof(void *) * (size_t)(keep ? keep : 1));
    w->kept_tag = xmalloc(sizeof(uint64_t) * (size_t)(keep ? keep : 1));
    long k = 0;
    for (long s = 0; s < TABLE; s++) {
        if (!obj[s])
            continue;
        if (k < keep) {
            w->kept[k] = obj[s];
            w->kept_tag[k] = tag[s];
            k++;
        } else {
            sum += tag_check(obj[s], size_of(tag[s]), tag[s]);
            free(obj[s]);
        }
    }
    /* Pad with fresh objects when the table had fewer than KEEP, so that the amount kept
     * does not depend on the random sequence's collisions. */
    for (; k < keep; k++) {
        w->kept_tag[k] = rng_next(&r);
        w->kept[k] = xmalloc(size_of(w->kept_tag[k]));
        tag_put(w->kept[k], size_of(w->kept_tag[k]), w->kept_tag[k]);
    }
    w->sum = sum;
    return NULL;
}

static uint64_t release(worker_t *w) {
    uint64_t sum = 0;
    for (long k = 0; k < keep; k++) {
        sum += tag_check(w->kept[k], size_of(w->kept_tag[k]), w->kept_tag[k]);
        free(w->kept[k]);
    }
    free(w->kept);
    free(w->kept_tag);
    return sum;
}

int main(int argc, char **argv) {
    const char *usage = "WAVES THREADS OBJECTS KEEP";
    long waves = arg_long(argc, argv, 1, usage);
    long nthreads = arg_long(argc, argv, 2, usage);
    objects = arg_long(argc, argv, 3, usage);
    keep = arg_long(argc, argv, 4, usage);
    if (nthreads < 1 || waves < 1 || keep > TABLE)
        die("need WAVES >= 1, THREADS >= 1, KEEP <= 1024");

    /* Two generations of workers: the wave that just ran and the one before it, whose
     * kept objects are freed now. */
    worker_t *gen[2];
    gen[0] = calloc(nthreads, sizeof(worker_t));
    gen[1] = calloc(nthreads, sizeof(worker_t));
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (!gen[0] || !gen[1] || !th)
        die("out of memory");
    uint64_t sum = 0;
    for (long wave = 0; wave < waves; wave++) {
        worker_t *cur = gen[wave & 1], *prev = gen[(wave + 1) & 1];
        for (long i = 0; i < nthreads; i++) {
            cur[i].id = i;
            cur[i].wave = wave;
            start_thread(&th[i], worker, &cur[i]);
        }
        for (long i = 0; i < nthreads; i++) {
            join_thread(th[i]);
            sum += cur[i].sum;
        }
        if (wave > 0)
            for (long i = 0; i < nthreads; i++)
                sum += release(&prev[i]);
    }
    long live = 0;
    worker_t *last = gen[(waves - 1) & 1];
    for (long i = 0; i < nthreads; i++)
        for (long k = 0; k < keep; k++)
            live += (long)size_of(last[i].kept_tag[k]);
    printf("live_kib: %ld\n", live / 1024);
    printf("rss_end_kib: %ld\n", rss_kib());
    for (long i = 0; i < nthreads; i++)
        sum += release(&last[i]);
    free(gen[0]);
    free(gen[1]);
    free(th);
    print_checksum(sum);
    return 0;
}
