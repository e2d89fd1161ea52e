/* MiB-sized allocations and realloc growth, after malloc-large (mimalloc-bench) plus the
 * growing-buffer pattern of readers, serializers and vectors.
 *
 * Part 1: a window of 4 live blocks of 1..MAX_MIB MiB (at random, not page multiples) is
 *   churned ROUNDS times; each new block gets one write per 4 KiB page, as a program
 *   filling it would. Allocators that unmap on free and map again pay page faults on
 *   every round; those that keep memory pay in RSS, which is reported next to the time.
 * Part 2: GROWTHS times, a buffer grows from 64 bytes to GROW_MIB MiB, alternately by
 *   half its size per step (a vector) and by a fixed 64 KiB per step (an append-only
 *   log); each step writes the new part, and the whole content is verified at the end,
 *   so a realloc that loses data is caught. In-place growth or mremap keeps the second
 *   pattern linear; copying makes it quadratic.
 *
 * usage: large ROUNDS MAX_MIB GROWTHS GROW_MIB */
#include "common.h"

#define MIB (1024L * 1024L)
#define PAGE 4096L

/* One byte per page, derived from the offset, so contents can be verified. */
static void fill(unsigned char *p, size_t from, size_t to) {
    for (size_t off = (from + PAGE - 1) / PAGE * PAGE; off < to; off += PAGE)
        p[off] = (unsigned char)(mix64(off) | 1);
}

static uint64_t verify(const unsigned char *p, size_t n) {
    uint64_t sum = 0;
    for (size_t off = 0; off < n; off += PAGE) {
        if (p[off] != (unsigned char)(mix64(off) | 1)) {
            fprintf(stderr, "CORRUPT: realloc lost the byte at offset %zu of %zu\n", off, n);
            exit(3);
        }
        sum += p[off];
    }
    return sum;
}

int main(int argc, char **argv) {
    const char *usage = "ROUNDS MAX_MIB GROWTHS GROW_MIB";
    long rounds = arg_long(argc, argv, 1, usage);
    long max_mib = arg_long(argc, argv, 2, usage);
    long growths = arg_long(argc, argv, 3, usage);
    long grow_mib = arg_long(argc, argv, 4, usage);
    if (max_mib < 1 || grow_mib < 1)
        die("need MAX_MIB >= 1 and GROW_MIB >= 1");

    rng_t r = rng_seeded(5);
    uint64_t sum = 0;
    void *win[4] = {0};
    size_t len[4] = {0};
    uint64_t tag[4] = {0};
    for (long i = 0; i < rounds; i++) {
        int s = (int)rng_below(&r, 4);
        if (win[s]) {
            sum += tag_check(win[s], len[s], tag[s]);
            free(win[s]);
        }
        len[s] = (size_t)MIB + rng_below(&r, (uint64_t)(max_mib - 1) * MIB + 1);
        tag[s] = rng_next(&r);
        win[s] = xmalloc(len[s]);
        fill(win[s], 0, len[s]);
        tag_put(win[s], len[s], tag[s]);
    }
    for (int s = 0; s < 4; s++) {
        if (win[s]) {
            sum += tag_check(win[s], len[s], tag[s]);
            free(win[s]);
        }
    }

    size_t limit = (size_t)grow_mib * MIB;
    for (long g = 0; g < growths; g++) {
        size_t n = 64;
        unsigned char *p = xmalloc(n);
        fill(p, 0, n);
        while (n < limit) {
            size_t m = (g & 1) ? n + 64 * 1024 : n + n / 2;
            if (m > limit)
                m = limit;
            p = realloc(p, m);
            if (!p)
                die("realloc returned NULL");
            fill(p, n, m);
            n = m;
        }
        sum += verify(p, n);
        free(p);
    }
    print_checksum(sum);
    return 0;
}
