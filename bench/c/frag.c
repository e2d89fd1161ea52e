/* Fragmentation: allocate, free a random half, allocate different sizes; then report the
 * RSS against the bytes live. This is the scenario of Johnstone & Wilson's fragmentation
 * studies reduced to its core: after a phase change, freed memory is scattered in holes
 * of the old sizes, and the new sizes can only use it if the allocator can return or
 * repurpose partly empty pages.
 *
 * OBJECTS objects of 16..128 B are allocated. Then, ROUNDS times, a random half of the
 * live objects is freed and new objects are allocated, of the next size range in the
 * cycle 129..512 B, 513..2048 B, 2..8 KiB, 16..128 B, until as many bytes as were freed
 * are live again; live bytes therefore stay about constant while the size mix changes.
 * The program prints the bytes live and the RSS at the end of the last round; the
 * runner records the peak RSS as well.
 *
 * usage: frag OBJECTS ROUNDS */
#include "common.h"

static const size_t ranges[4][2] = {{129, 512}, {513, 2048}, {2049, 8192}, {16, 128}};

typedef struct {
    void *p;
    size_t len;
    uint64_t tag;
} obj_t;

static obj_t *objs;
static size_t count, cap;
static uint64_t next_tag = 1;

static size_t add(rng_t *r, size_t lo, size_t hi) {
    if (count == cap) {
        cap = cap ? cap * 2 : 1024;
        objs = realloc(objs, cap * sizeof *objs);
        if (!objs)
            die("out of memory");
    }
    obj_t *o = &objs[count++];
    o->len = lo + (size_t)rng_below(r, hi - lo + 1);
    o->tag = mix64(next_tag++);
    o->p = xmalloc(o->len);
    /* Fill the whole object: the RSS comparison is about memory a program really uses. */
    memset(o->p, (int)(o->tag & 0xff), o->len);
    tag_put(o->p, o->len, o->tag);
    return o->len;
}

int main(int argc, char **argv) {
    const char *usage = "OBJECTS ROUNDS";
    long objects = arg_long(argc, argv, 1, usage);
    long rounds = arg_long(argc, argv, 2, usage);

    rng_t r = rng_seeded(9);
    uint64_t sum = 0;
    size_t live = 0;
    for (long i = 0; i < objects; i++)
        live += add(&r, 16, 128);

    for (long round = 0; round < rounds; round++) {
        size_t freed = 0, kept = 0;
        for (size_t i = 0; i < count; i++) {
            obj_t o = objs[i];
            if (rng_next(&r) & 1) {
                sum += tag_check(o.p, o.len, o.tag);
                free(o.p);
                freed += o.len;
            } else {
                objs[kept++] = o;
            }
        }
        count = kept;
        live -= freed;
        const size_t *range = ranges[round % 4];
        size_t added = 0;
        while (added < freed)
            added += add(&r, range[0], range[1]);
        live += added;
    }

    printf("objects_live: %zu\n", count);
    printf("live_kib: %zu\n", live / 1024);
    printf("rss_end_kib: %ld\n", rss_kib());
    for (size_t i = 0; i < count; i++) {
        sum += tag_check(objs[i].p, objs[i].len, objs[i].tag);
        free(objs[i].p);
    }
    free(objs);
    print_checksum(sum);
    return 0;
}
