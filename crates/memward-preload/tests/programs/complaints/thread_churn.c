/* Complaint 3 of ANCHORS.md (issue 8, item 1): thread caches growing with many short-lived
 * threads. Short-lived threads each allocate one block that outlives them; the main thread
 * keeps the newest KEEP (1,000) blocks and frees the older ones, so live data stays at
 * KEEP * BLOCK bytes (100 KB with 100-byte blocks, 20 MB with 20 KB ones) however many
 * threads have run. At the end it frees everything and reports again.
 *
 * Bound (met by glibc): with 20,000 threads and 100-byte blocks, RSS stays under 32 MiB
 * and the process under 2,000 mappings, during the churn and after everything is freed;
 * with 20 KB blocks RSS stays under 32 MiB above the live data. An allocator that leaves
 * each exited thread's memory behind (abandoned pages or segments never reused, or not
 * released when their last block is freed by another thread) grows with the thread count.
 *
 * Threads run BATCH at a time (started together, then joined), so several heaps are live
 * at once as in a server's worker pool. RSS and mappings are sampled every 250 threads;
 * the run stops early (reporting stopped_at) once RSS passes LIMIT_MIB, so a leaking
 * allocator cannot exhaust the machine.
 *
 * usage: thread_churn THREADS BLOCK [KEEP=1000] [BATCH=4] [LIMIT_MIB=1024]
 * bench: 20000 100
 * bench: 20000 20480
 * prints: threads, block, live_kib, rss_start_kib, maps_start, rss_peak_kib, maps_peak,
 *         vm_peak_kib, rss_end_kib, maps_end (KEEP blocks live), rss_freed_kib,
 *         maps_freed (all freed), stopped_at (threads run when the limit was hit, or 0) */
#include "measure.h"
#include <pthread.h>

#define USAGE "THREADS BLOCK [KEEP=1000] [BATCH=4] [LIMIT_MIB=1024]"
#define MAX_BATCH 64

static size_t block_size;

typedef struct {
    long index;
    unsigned char *block;
} job_t;

/* Allocates the block this thread leaves behind and writes all of it, as a thread that
 * produced a result would, so its pages are resident. */
static void *worker(void *arg) {
    job_t *job = arg;
    job->block = malloc(block_size);
    if (job->block)
        memset(job->block, (int)(job->index & 0xff), block_size);
    return NULL;
}

static long rss_peak, maps_peak, vm_peak;

static void sample(void) {
    long r = rss_kib(), m = map_count(), v = vm_kib();
    if (r > rss_peak)
        rss_peak = r;
    if (m > maps_peak)
        maps_peak = m;
    if (v > vm_peak)
        vm_peak = v;
}

/* A block from the ring must still hold its thread's byte at both ends. */
static void check_and_free(unsigned char *p, long index) {
    unsigned char want = (unsigned char)(index & 0xff);
    if (p[0] != want || p[block_size - 1] != want) {
        fprintf(stderr, "CORRUPT: block of thread %ld\n", index);
        exit(3);
    }
    free(p);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s %s\n", argv[0], USAGE);
        return 2;
    }
    long threads = arg_or(argc, argv, 1, 0, USAGE);
    block_size = (size_t)arg_or(argc, argv, 2, 0, USAGE);
    long keep = arg_or(argc, argv, 3, 1000, USAGE);
    long batch = arg_or(argc, argv, 4, 4, USAGE);
    long limit_kib = arg_or(argc, argv, 5, 1024, USAGE) * 1024;
    if (block_size < 1 || keep < 1 || batch < 1 || batch > MAX_BATCH) {
        fprintf(stderr, "usage: %s %s (BLOCK, KEEP >= 1, 1 <= BATCH <= %d)\n", argv[0], USAGE,
                MAX_BATCH);
        return 2;
    }
    report("threads", threads);
    report("block", (long)block_size);
    report("live_kib", (long)(keep * (long)block_size / 1024));
    report("rss_start_kib", rss_kib());
    report("maps_start", map_count());

    unsigned char **ring = calloc((size_t)keep, sizeof *ring);
    long *ring_index = calloc((size_t)keep, sizeof *ring_index);
    if (!ring || !ring_index)
        fail("calloc of the ring");
    job_t jobs[MAX_BATCH];
    pthread_t tids[MAX_BATCH];
    long done = 0, stopped_at = 0, next_sample = 250;
    while (done < threads) {
        long n = threads - done < batch ? threads - done : batch;
        for (long i = 0; i < n; i++) {
            jobs[i] = (job_t){done + i, NULL};
            if ((errno = pthread_create(&tids[i], NULL, worker, &jobs[i])))
                fail("pthread_create");
        }
        for (long i = 0; i < n; i++) {
            if ((errno = pthread_join(tids[i], NULL)))
                fail("pthread_join");
            if (!jobs[i].block)
                fail("malloc in a worker thread");
            long slot = jobs[i].index % keep;
            if (ring[slot])
                check_and_free(ring[slot], ring_index[slot]);
            ring[slot] = jobs[i].block;
            ring_index[slot] = jobs[i].index;
        }
        done += n;
        if (done >= next_sample || done == threads) {
            next_sample += 250;
            sample();
            if (rss_peak > limit_kib) {
                stopped_at = done;
                break;
            }
        }
    }
    report("rss_peak_kib", rss_peak);
    report("maps_peak", maps_peak);
    report("vm_peak_kib", vm_peak);
    report("rss_end_kib", rss_kib());
    report("maps_end", map_count());
    for (long s = 0; s < keep; s++)
        if (ring[s])
            check_and_free(ring[s], ring_index[s]);
    free(ring);
    free(ring_index);
    report("rss_freed_kib", rss_kib());
    report("maps_freed", map_count());
    report("stopped_at", stopped_at);
    return 0;
}
