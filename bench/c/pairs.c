/* The fixed single-thread small-object workload that bench/run counts instructions of
 * under callgrind. After a warm-up of 10000 pairs (so first-use initialisation falls
 * outside the difference that the runner takes), it performs PAIRS malloc+free pairs:
 *
 * fixed: malloc(64) then free of it, the tightest possible loop: pure fast paths.
 * mixed: a ring of 64 live objects whose sizes cycle through 64 values from 8 to 1024
 *   bytes; each pair frees the oldest object and allocates a new one. The size classes
 *   change at every call and blocks are not reused in LIFO order, as in real programs.
 *
 * Each block's address goes to a volatile sink so that no compiler may drop a pair.
 * bench/run runs this with PAIRS = N and PAIRS = 0 and divides the difference in
 * instructions by N.
 *
 * usage: pairs fixed|mixed PAIRS */
#include "common.h"

#define RING 64

void *volatile sink;

static size_t ring_size(long i) {
    /* 64 sizes spread over 8..1024, visited in a scrambled order (stride 23). */
    long k = (i * 23) % RING;
    return 8 + (size_t)k * 16 + (size_t)(k & 7);
}

static void run_fixed(long pairs) {
    for (long i = 0; i < pairs; i++) {
        void *p = malloc(64);
        if (!p)
            die("malloc returned NULL");
        sink = p;
        free(p);
    }
}

static void *ring[RING];

static void run_mixed(long start, long pairs) {
    for (long i = start; i < start + pairs; i++) {
        long s = i % RING;
        free(ring[s]);
        ring[s] = malloc(ring_size(i));
        if (!ring[s])
            die("malloc returned NULL");
        sink = ring[s];
    }
}

int main(int argc, char **argv) {
    const char *usage = "fixed|mixed PAIRS";
    if (argc < 2 || (strcmp(argv[1], "fixed") && strcmp(argv[1], "mixed"))) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        return 2;
    }
    int mixed = strcmp(argv[1], "mixed") == 0;
    long pairs = arg_long(argc, argv, 2, usage);
    const long warmup = 10000;
    if (mixed) {
        run_mixed(0, warmup);
        run_mixed(warmup, pairs);
        for (int s = 0; s < RING; s++)
            free(ring[s]);
    } else {
        run_fixed(warmup);
        run_fixed(pairs);
    }
    printf("pairs: %ld\n", pairs);
    print_checksum((uint64_t)pairs);
    return 0;
}
