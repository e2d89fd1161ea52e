/* Many threads each keeping a little memory once the heap is big (issue 8, item 3;
 * complaint 6 of ANCHORS.md: transparent huge pages inflating RSS). An allocator that
 * switches to huge pages once its heap is large, or gives every thread's heap a fresh
 * region, turns each thread's few KiB into a 2 MiB page or more.
 *
 * The main thread first allocates BASE_MIB of 64 KiB blocks and writes them. Then ROUNDS
 * times, THREADS threads start together; each allocates about 10 KiB in 40 blocks of
 * 16-496 B, writes them, and waits at a barrier until every thread holds its blocks; the
 * main thread then reads the RSS (printed for the last round, next to the live bytes),
 * releases them, and they check, free and exit.
 *
 * usage: keep10k BASE_MIB THREADS ROUNDS */
#include "common.h"

#define BLOCKS 40

static pthread_barrier_t held, release;
static long round_no;

typedef struct {
    long id;
    uint64_t sum;
} worker_t;

static size_t size_of(uint64_t tag) {
    return 16 + (size_t)(tag % 481);
}

static void *worker(void *arg) {
    worker_t *w = arg;
    rng_t r = rng_seeded((uint64_t)round_no * 100003u + (uint64_t)w->id);
    void *p[BLOCKS];
    uint64_t tag[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        tag[i] = rng_next(&r);
        p[i] = xmalloc(size_of(tag[i]));
        memset(p[i], 0x5a, size_of(tag[i]));
        tag_put(p[i], size_of(tag[i]), tag[i]);
    }
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&release);
    for (int i = 0; i < BLOCKS; i++) {
        w->sum += tag_check(p[i], size_of(tag[i]), tag[i]);
        free(p[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "BASE_MIB THREADS ROUNDS";
    long base_mib = arg_long(argc, argv, 1, usage);
    long threads = arg_long(argc, argv, 2, usage);
    long rounds = arg_long(argc, argv, 3, usage);
    if (threads < 1)
        die("THREADS >= 1");
    long base_blocks = base_mib * 16;
    void **base = xmalloc(sizeof(void *) * (size_t)(base_blocks ? base_blocks : 1));
    for (long i = 0; i < base_blocks; i++) {
        base[i] = xmalloc(64 << 10);
        memset(base[i], (int)(i & 0xff), 64 << 10);
        tag_put(base[i], 64 << 10, (uint64_t)i);
    }
    pthread_t *t = xmalloc(sizeof(pthread_t) * (size_t)threads);
    worker_t *w = xmalloc(sizeof(worker_t) * (size_t)threads);
    uint64_t sum = 0;
    long rss = 0;
    for (round_no = 0; round_no < rounds; round_no++) {
        pthread_barrier_init(&held, NULL, (unsigned)threads + 1);
        pthread_barrier_init(&release, NULL, (unsigned)threads + 1);
        for (long i = 0; i < threads; i++) {
            w[i] = (worker_t){.id = i};
            start_thread(&t[i], worker, &w[i]);
        }
        pthread_barrier_wait(&held);
        rss = rss_kib();
        pthread_barrier_wait(&release);
        for (long i = 0; i < threads; i++) {
            join_thread(t[i]);
            sum += w[i].sum;
        }
        pthread_barrier_destroy(&held);
        pthread_barrier_destroy(&release);
    }
    printf("rss_end_kib: %ld\n", rss);
    printf("live_kib: %ld\n", base_mib * 1024 + threads * BLOCKS * 256 / 1024);
    for (long i = 0; i < base_blocks; i++) {
        sum += tag_check(base[i], 64 << 10, (uint64_t)i);
        free(base[i]);
    }
    free(base);
    free(t);
    free(w);
    print_checksum(sum);
    return 0;
}
