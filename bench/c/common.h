/* Shared helpers for the C workloads: argument parsing, a fast deterministic PRNG,
 * object tagging (so an allocator that hands out overlapping or clobbered blocks is
 * caught), RSS readout and the checksum line that bench/run compares across allocators.
 *
 * Every workload is deterministic in its *result*: the checksum depends only on argv,
 * never on thread scheduling or on the allocator, so any allocator whose checksum differs
 * from the others' has corrupted memory. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void die(const char *what) {
    fprintf(stderr, "error: %s\n", what);
    exit(2);
}

/* argv[i] as a positive integer, or the usage message and exit 2. */
static inline long arg_long(int argc, char **argv, int i, const char *usage) {
    if (i >= argc) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        exit(2);
    }
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "usage: %s %s\n(bad number: %s)\n", argv[0], usage, argv[i]);
        exit(2);
    }
    return v;
}

/* splitmix64: tiny state, good enough statistics for choosing sizes and slots, and
 * seedable per thread so every thread's sequence is reproducible. */
typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without a division on the hot path (Lemire's multiply-shift; the
 * tiny bias is irrelevant here). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static inline rng_t rng_seeded(uint64_t seed) {
    rng_t r = {seed * 0x2545f4914f6cdd1dULL + 1};
    rng_next(&r);
    return r;
}

static inline uint64_t mix64(uint64_t x) {
    rng_t r = {x};
    return rng_next(&r);
}

/* Tagging. An object of n >= 8 bytes carries its tag in its first word and, when there is
 * room, the tag's complement in its last word: a block handed out twice, or overlapping a
 * neighbour, loses one of them. Writing both ends also touches the memory the way a real
 * program would, so untouched-page tricks cannot make an allocator look faster. */
static inline void tag_put(void *p, size_t n, uint64_t tag) {
    memcpy(p, &tag, 8);
    if (n >= 16) {
        uint64_t inv = ~tag;
        memcpy((char *)p + n - 8, &inv, 8);
    }
}

/* Returns the tag after checking both ends; a mismatch is reported and ends the program,
 * since everything measured after a corruption is meaningless. */
static inline uint64_t tag_check(const void *p, size_t n, uint64_t expect) {
    uint64_t got, inv = ~expect;
    memcpy(&got, p, 8);
    if (n >= 16)
        memcpy(&inv, (const char *)p + n - 8, 8);
    if (got != expect || inv != ~expect) {
        fprintf(stderr, "CORRUPT: block %p (%zu bytes) tag %016llx, expected %016llx\n", p,
                n, (unsigned long long)got, (unsigned long long)expect);
        exit(3);
    }
    return got;
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        die("malloc returned NULL");
    return p;
}

/* Resident set size now, in KiB, from /proc/self/statm (field 2, in pages). */
static inline long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The line bench/run compares across allocators. */
static inline void print_checksum(uint64_t sum) {
    printf("checksum: %016llx\n", (unsigned long long)sum);
}

static inline void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
    if (pthread_create(t, NULL, fn, arg))
        die("pthread_create failed");
}

static inline void join_thread(pthread_t t) {
    if (pthread_join(t, NULL))
        die("pthread_join failed");
}

#endif
