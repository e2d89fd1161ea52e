/* Many small, short-lived objects of mixed sizes on one thread: the allocation pattern of
 * interpreters, compilers and string-heavy code (the classic single-thread benchmarks
 * cfrac, espresso and glibc's bench-malloc-simple stress the same paths).
 *
 * A table of `slots` live objects is churned: each step frees a random slot's object and
 * allocates a new one of a random size there, so object lifetimes are random with a mean of
 * `slots` steps. Every 64 steps a burst of 1-16 temporaries is allocated and freed in
 * reverse order, the way nested temporaries die. Sizes: 60% 8-64 B, 30% 65-256 B,
 * 8% 257-1024 B, 2% 1-4 KiB.
 *
 * usage: small_mixed STEPS SLOTS */
#include "common.h"

static size_t mixed_size(rng_t *r) {
    uint64_t u = rng_below(r, 100);
    if (u < 60)
        return 8 + rng_below(r, 57);
    if (u < 90)
        return 65 + rng_below(r, 192);
    if (u < 98)
        return 257 + rng_below(r, 768);
    return 1025 + rng_below(r, 3072);
}

int main(int argc, char **argv) {
    const char *usage = "STEPS SLOTS";
    long steps = arg_long(argc, argv, 1, usage);
    long slots = arg_long(argc, argv, 2, usage);
    if (slots < 1)
        die("SLOTS must be at least 1");

    /* The bookkeeping arrays come from calloc too: they are part of the program's heap
     * like any other, and allocated once. */
    void **obj = calloc(slots, sizeof *obj);
    size_t *len = calloc(slots, sizeof *len);
    uint64_t *tag = calloc(slots, sizeof *tag);
    if (!obj || !len || !tag)
        die("out of memory");

    rng_t r = rng_seeded(1);
    uint64_t sum = 0, count = 0;
    void *burst[16];
    size_t burst_len[16];

    for (long i = 0; i < steps; i++) {
        long s = (long)rng_below(&r, slots);
        if (obj[s]) {
            sum += tag_check(obj[s], len[s], tag[s]);
            free(obj[s]);
        }
        len[s] = mixed_size(&r);
        tag[s] = mix64((uint64_t)i);
        obj[s] = xmalloc(len[s]);
        tag_put(obj[s], len[s], tag[s]);
        count++;

        if ((i & 63) == 63) {
            int k = 1 + (int)rng_below(&r, 16);
            for (int j = 0; j < k; j++) {
                burst_len[j] = mixed_size(&r);
                burst[j] = xmalloc(burst_len[j]);
                tag_put(burst[j], burst_len[j], (uint64_t)j + (uint64_t)i);
            }
            for (int j = k - 1; j >= 0; j--) {
                sum += tag_check(burst[j], burst_len[j], (uint64_t)j + (uint64_t)i);
                free(burst[j]);
            }
            count += (uint64_t)k;
        }
    }
    for (long s = 0; s < slots; s++) {
        if (obj[s]) {
            sum += tag_check(obj[s], len[s], tag[s]);
            free(obj[s]);
        }
    }
    free(obj);
    free(len);
    free(tag);
    printf("allocations: %llu\n", (unsigned long long)count);
    print_checksum(sum ^ count);
    return 0;
}
