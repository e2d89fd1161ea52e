/* Complaint (issue 8, item 5): impossible sizes succeed.
 *
 * Reproduces: on a machine with less RAM plus swap than the request, malloc(32 GiB) up
 * to malloc(64 TiB), calloc(1 TiB) and realloc to 4 TiB return memory under an
 * allocator that maps with MAP_NORESERVE; glibc returns NULL with errno ENOMEM, as the
 * kernel's overcommit heuristic (vm.overcommit_memory=0) asks. Also checks that a big
 * but possible request (a quarter of RAM, untouched) still succeeds.
 * Prints one key=value line per request: 1 if it returned memory, 0 if NULL, and
 * <key>_enomem=1 when a NULL came with errno ENOMEM; plus ram_plus_swap_mib.
 *
 * Bounds the CI test applies (tests/complaints_large.rs; glibc meets them): with
 * overcommit_memory=0, every request above RAM plus swap returns NULL with ENOMEM, the
 * quarter-of-RAM request succeeds, and realloc's failure leaves the old block intact.
 *
 * usage: impossible_sizes */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static unsigned long long meminfo_kib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void report(const char *key, void *p, int err) {
    printf("%s=%d\n", key, p != NULL);
    if (!p)
        printf("%s_enomem=%d\n", key, err == ENOMEM);
}

int main(void) {
    unsigned long long ram = meminfo_kib("MemTotal") * 1024ULL;
    unsigned long long swap = meminfo_kib("SwapTotal") * 1024ULL;
    printf("ram_plus_swap_mib=%llu\n", (ram + swap) >> 20);

    static const struct {
        const char *key;
        double gib;
    } sizes[] = {{"malloc_32gib", 32},         {"malloc_64gib", 64},
                 {"malloc_1tib", 1024},        {"malloc_64tib", 64 * 1024.0},
                 {"malloc_sizemax_half", -1}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i].gib < 0 ? SIZE_MAX / 2 : (size_t)(sizes[i].gib * GIB);
        errno = 0;
        void *p = malloc(n);
        report(sizes[i].key, p, errno);
        free(p);
    }
    errno = 0;
    void *c = calloc(1 << 20, 1 << 20); /* 1 TiB */
    report("calloc_1tib", c, errno);
    free(c);

    char *small = malloc(100);
    strcpy(small, "still here");
    errno = 0;
    void *r = realloc(small, (size_t)(4096 * GIB)); /* 4 TiB */
    report("realloc_4tib", r, errno);
    printf("realloc_4tib_old_intact=%d\n", r == NULL && strcmp(small, "still here") == 0);
    free(r ? r : small);

    /* Possible: a quarter of RAM, never touched. */
    errno = 0;
    void *q = malloc((size_t)(ram / 4));
    report("malloc_quarter_ram", q, errno);
    free(q);
    return 0;
}
