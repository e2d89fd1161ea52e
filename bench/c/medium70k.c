/* Many live blocks between 64 KiB and 2 MiB (issue 8, item 4; complaint 8 of ANCHORS.md:
 * address-space reservation hitting vm.max_map_count or huge VSZ). An allocator that gives
 * each such block its own large mapping runs out of mappings (after which even
 * pthread_create fails) and address space long before memory.
 *
 * BLOCKS blocks of 64-80 KB (70 KB on average) are allocated and kept live, then STEPS
 * times a random one is freed and replaced by a new one of another size. Blocks are
 * sparsely touched, as buffers sized for the worst case are: each is tagged at both ends
 * and written once per 16 KiB. Prints the RSS with everything live next to the live
 * bytes, and the number of mappings (lines of /proc/self/maps).
 *
 * usage: medium70k BLOCKS STEPS */
#include "common.h"

static size_t size_of(uint64_t tag) {
    return 64000 + (size_t)(tag % 16001);
}

static void touch(unsigned char *p, size_t n, uint64_t tag) {
    for (size_t off = 16384; off + 8 < n; off += 16384)
        p[off] = (unsigned char)tag;
    tag_put(p, n, tag);
}

static long map_count(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long lines = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

int main(int argc, char **argv) {
    const char *usage = "BLOCKS STEPS";
    long blocks = arg_long(argc, argv, 1, usage);
    long steps = arg_long(argc, argv, 2, usage);
    if (blocks < 1)
        die("BLOCKS >= 1");
    unsigned char **p = xmalloc(sizeof *p * (size_t)blocks);
    uint64_t *tag = xmalloc(sizeof *tag * (size_t)blocks);
    rng_t r = rng_seeded(70);
    long live = 0;
    for (long i = 0; i < blocks; i++) {
        tag[i] = rng_next(&r);
        p[i] = xmalloc(size_of(tag[i]));
        touch(p[i], size_of(tag[i]), tag[i]);
        live += (long)size_of(tag[i]);
    }
    uint64_t sum = 0;
    for (long s = 0; s < steps; s++) {
        long i = (long)rng_below(&r, (uint64_t)blocks);
        sum += tag_check(p[i], size_of(tag[i]), tag[i]);
        free(p[i]);
        live -= (long)size_of(tag[i]);
        tag[i] = rng_next(&r);
        p[i] = xmalloc(size_of(tag[i]));
        touch(p[i], size_of(tag[i]), tag[i]);
        live += (long)size_of(tag[i]);
    }
    printf("rss_end_kib: %ld\n", rss_kib());
    printf("live_kib: %ld\n", live / 1024);
    printf("maps_end: %ld\n", map_count());
    for (long i = 0; i < blocks; i++) {
        sum += tag_check(p[i], size_of(tag[i]), tag[i]);
        free(p[i]);
    }
    free(p);
    free(tag);
    print_checksum(sum);
    return 0;
}
