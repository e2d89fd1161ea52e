/* Complaint 1 of ANCHORS.md (issue 8, item 2): memory not returned to the OS when the
 * program goes quiet. Two threads allocate TOTAL_MIB (1.5 GiB) in mixed sizes (a third of
 * the bytes each in small 16-512 B, medium 512 B-64 KiB and large 64 KiB-1 MiB blocks),
 * write all of it, and exit; two other threads free it all and exit. Then the program
 * idles for DURATION_MS: in mode `small` the main thread makes a few small allocations
 * every 100 ms (freeing the previous few), in mode `none` it allocates nothing at all.
 *
 * Bound (met by glibc): RSS is back within 48 MiB of its value at the start within
 * 1,500 ms of the frees, in both modes, and stays there. An allocator that purges only on
 * its allocation slow paths, or only memory of live threads, keeps the 1.5 GiB.
 *
 * usage: idle_return small|none [TOTAL_MIB=1536] [DURATION_MS=2000] [BOUND_MIB=48]
 * bench: small
 * bench: none
 * prints: rss_start_kib, rss_peak_kib (all allocated), rss_freed_kib (right after the
 *         frees), rss_t100_kib ... every 100 ms, rss_end_kib, maps_end, and settle_ms: the
 *         first sample time from which RSS stays within BOUND_MIB of the start (-1: never) */
#include "measure.h"
#include <pthread.h>

#define USAGE "small|none [TOTAL_MIB=1536] [DURATION_MS=2000] [BOUND_MIB=48]"
#define ALLOCATORS 2

typedef struct {
    uint64_t seed;
    size_t budget; /* bytes to allocate */
    unsigned char **blocks;
    size_t *sizes;
    size_t count;
} share_t;

/* Size classes by bytes: each gets a third of the budget. */
static const size_t class_lo[3] = {16, 512, 64 << 10};
static const size_t class_hi[3] = {512, 64 << 10, 1 << 20};

static void *allocate_share(void *arg) {
    share_t *s = arg;
    size_t left[3], cap = 1024;
    for (int c = 0; c < 3; c++)
        left[c] = s->budget / 3;
    s->blocks = malloc(cap * sizeof *s->blocks);
    s->sizes = malloc(cap * sizeof *s->sizes);
    if (!s->blocks || !s->sizes)
        fail("malloc of the block table");
    for (unsigned step = 0; left[0] | left[1] | left[2]; step++) {
        int c = (int)(step % 3);
        if (!left[c])
            continue;
        size_t n = class_lo[c] + next_random(&s->seed) % (class_hi[c] - class_lo[c]);
        if (n > left[c])
            n = left[c] < class_lo[c] ? class_lo[c] : left[c];
        left[c] -= n < left[c] ? n : left[c];
        if (s->count == cap) {
            cap *= 2;
            s->blocks = realloc(s->blocks, cap * sizeof *s->blocks);
            s->sizes = realloc(s->sizes, cap * sizeof *s->sizes);
            if (!s->blocks || !s->sizes)
                fail("realloc of the block table");
        }
        unsigned char *p = malloc(n);
        if (!p)
            fail("malloc");
        memset(p, (int)(s->count & 0xff), n);
        s->blocks[s->count] = p;
        s->sizes[s->count] = n;
        s->count++;
    }
    return NULL;
}

/* Runs on a thread other than the allocating one: every free is a cross-thread free into
 * the heap of a thread that has exited. */
static void *free_share(void *arg) {
    share_t *s = arg;
    for (size_t i = 0; i < s->count; i++) {
        unsigned char want = (unsigned char)(i & 0xff);
        if (s->blocks[i][0] != want || s->blocks[i][s->sizes[i] - 1] != want) {
            fprintf(stderr, "CORRUPT: block %zu\n", i);
            exit(3);
        }
        free(s->blocks[i]);
    }
    free(s->blocks);
    free(s->sizes);
    return NULL;
}

static void run_threads(void *(*fn)(void *), share_t *shares) {
    pthread_t t[ALLOCATORS];
    for (int i = 0; i < ALLOCATORS; i++)
        if ((errno = pthread_create(&t[i], NULL, fn, &shares[i])))
            fail("pthread_create");
    for (int i = 0; i < ALLOCATORS; i++)
        if ((errno = pthread_join(t[i], NULL)))
            fail("pthread_join");
}

int main(int argc, char **argv) {
    int small;
    if (argc >= 2 && !strcmp(argv[1], "small"))
        small = 1;
    else if (argc >= 2 && !strcmp(argv[1], "none"))
        small = 0;
    else {
        fprintf(stderr, "usage: %s %s\n", argv[0], USAGE);
        return 2;
    }
    long total_mib = arg_or(argc, argv, 2, 1536, USAGE);
    long duration = arg_or(argc, argv, 3, 2000, USAGE);
    long bound_kib = arg_or(argc, argv, 4, 48, USAGE) * 1024;
    long start = rss_kib();
    report("rss_start_kib", start);

    share_t shares[ALLOCATORS];
    for (int i = 0; i < ALLOCATORS; i++)
        shares[i] = (share_t){.seed = 17u + (uint64_t)i,
                              .budget = (size_t)total_mib * (1 << 20) / ALLOCATORS};
    run_threads(allocate_share, shares);
    report("rss_peak_kib", rss_kib());
    run_threads(free_share, shares);
    long t0 = now_ms();
    report("rss_freed_kib", rss_kib());

    /* The quiet phase. settle is the first sample after which no sample exceeded the
     * bound. */
    void *few[4] = {0};
    long settle = -1;
    char key[32];
    for (long t = 100; t <= duration; t += 100) {
        long wait = t0 + t - now_ms();
        if (wait > 0)
            sleep_ms(wait);
        if (small) {
            for (int i = 0; i < 4; i++) {
                free(few[i]);
                size_t n = 32u << i;
                if (!(few[i] = malloc(n)))
                    fail("malloc while idle");
                memset(few[i], i, n);
            }
        }
        long r = rss_kib();
        snprintf(key, sizeof key, "rss_t%ld_kib", t);
        report(key, r);
        if (r - start > bound_kib)
            settle = -1;
        else if (settle < 0)
            settle = t;
    }
    for (int i = 0; i < 4; i++)
        free(few[i]);
    report("rss_end_kib", rss_kib());
    report("maps_end", map_count());
    report("settle_ms", settle);
    return 0;
}
