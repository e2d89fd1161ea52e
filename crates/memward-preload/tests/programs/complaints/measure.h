/* Shared by the complaint programs (tests/complaints_*.rs, bench/complaints): what the
 * kernel says a process costs, and the `key=value` lines both consumers parse.
 *
 * Every figure comes from /proc, never from the allocator, so the same program measures
 * glibc, memward and the anchors alike: resident memory from /proc/self/statm (KiB), the
 * number of mappings as the number of lines of /proc/self/maps (what vm.max_map_count
 * limits), the virtual size from statm too. */
#ifndef COMPLAINTS_MEASURE_H
#define COMPLAINTS_MEASURE_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void fail(const char *what) {
    fprintf(stderr, "error: %s (errno %d: %s)\n", what, errno, strerror(errno));
    exit(2);
}

/* argv[i] as a non-negative integer, `fallback` when absent; bad input is a usage error. */
static inline long arg_or(int argc, char **argv, int i, long fallback, const char *usage) {
    if (i >= argc)
        return fallback;
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (errno || *end || v < 0 || end == argv[i]) {
        fprintf(stderr, "usage: %s %s\n(bad number: %s)\n", argv[0], usage, argv[i]);
        exit(2);
    }
    return v;
}

/* Field `field` (0: size, 1: resident) of /proc/self/statm, in KiB. */
static inline long statm_kib(int field) {
    FILE *f = fopen("/proc/self/statm", "r");
    long v[2] = {-1, -1};
    if (!f)
        fail("cannot open /proc/self/statm");
    if (fscanf(f, "%ld %ld", &v[0], &v[1]) != 2)
        fail("cannot parse /proc/self/statm");
    fclose(f);
    return v[field] * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline long rss_kib(void) { return statm_kib(1); }
static inline long vm_kib(void) { return statm_kib(0); }

/* Lines of /proc/self/maps: one per mapping. Read with read(2) into a stack buffer so
 * that counting allocates nothing. */
static inline long map_count(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        fail("cannot open /proc/self/maps");
    char buf[1 << 14];
    long lines = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    fclose(f);
    return lines;
}

/* Monotonic milliseconds. */
static inline long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) && errno == EINTR) {
    }
}

/* One measurement, `key=value`, flushed at once so a program killed later still reports. */
static inline void report(const char *key, long value) {
    printf("%s=%ld\n", key, value);
    fflush(stdout);
}

/* splitmix64: reproducible sizes and choices. */
static inline uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
