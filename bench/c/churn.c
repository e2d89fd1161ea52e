/* Thread churn with blocks that outlive their threads (issue 8, item 1; complaint 3 of
 * ANCHORS.md): a server that runs each request on a short-lived thread whose result is
 * kept for a while by the rest of the program.
 *
 * THREADS short-lived threads run BATCH at a time; each allocates one block (100 B, or
 * 20 KB for one thread in 8), writes it and exits; the main thread keeps the newest KEEP
 * blocks and frees the older ones, checking their tags. Live data stays near
 * KEEP * 2.6 KB however many threads have run, so an allocator that leaves the memory of
 * exited threads behind (pages or segments not reused, or not released when another
 * thread frees their last block) shows a peak RSS growing with THREADS. The RSS with the
 * newest KEEP blocks live is printed before the final frees.
 *
 * usage: churn THREADS KEEP BATCH */
#include "common.h"

#define MAX_BATCH 64

typedef struct {
    uint64_t tag;
    size_t size;
    void *block;
} job_t;

static size_t size_of(uint64_t tag) {
    return tag % 8 == 0 ? 20000 : 100;
}

static void *worker(void *arg) {
    job_t *j = arg;
    j->size = size_of(j->tag);
    j->block = xmalloc(j->size);
    memset(j->block, (int)(j->tag & 0xff), j->size);
    tag_put(j->block, j->size, j->tag);
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS KEEP BATCH";
    long threads = arg_long(argc, argv, 1, usage);
    long keep = arg_long(argc, argv, 2, usage);
    long batch = arg_long(argc, argv, 3, usage);
    if (keep < 1 || batch < 1 || batch > MAX_BATCH)
        die("KEEP >= 1 and 1 <= BATCH <= 64");
    job_t *ring = calloc((size_t)keep, sizeof *ring);
    if (!ring)
        die("calloc");
    rng_t r = rng_seeded(7);
    uint64_t sum = 0;
    long live = 0;
    job_t jobs[MAX_BATCH];
    pthread_t t[MAX_BATCH];
    for (long done = 0; done < threads;) {
        long n = threads - done < batch ? threads - done : batch;
        for (long i = 0; i < n; i++) {
            jobs[i] = (job_t){.tag = rng_next(&r)};
            start_thread(&t[i], worker, &jobs[i]);
        }
        for (long i = 0; i < n; i++) {
            join_thread(t[i]);
            job_t *slot = &ring[(done + i) % keep];
            if (slot->block) {
                sum += tag_check(slot->block, slot->size, slot->tag);
                free(slot->block);
                live -= (long)slot->size;
            }
            *slot = jobs[i];
            live += (long)slot->size;
        }
        done += n;
    }
    printf("rss_end_kib: %ld\n", rss_kib());
    printf("live_kib: %ld\n", live / 1024);
    for (long s = 0; s < keep; s++)
        if (ring[s].block) {
            sum += tag_check(ring[s].block, ring[s].size, ring[s].tag);
            free(ring[s].block);
        }
    free(ring);
    print_checksum(sum);
    return 0;
}
