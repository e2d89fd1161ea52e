/* Complaint 9 (issue 8, item 7): alignments above 2 MiB fail.
 *
 * Reproduces: posix_memalign, aligned_alloc and memalign with every power-of-two
 * alignment from 16 B to 1 GiB (glibc serves them all; memward used to return NULL
 * above 2 MiB), for several sizes (1 byte, the alignment, a bit more); each block is
 * checked for alignment, written at both ends, grown by realloc with its content kept,
 * and freed. Also posix_memalign's EINVAL for a non-power-of-two alignment.
 * Prints key=value lines: checks, failures, and per function the largest alignment
 * served (<fn>_max_align).
 *
 * Bounds the CI test applies (tests/complaints_large.rs; glibc meets them):
 *   failures=0, every <fn>_max_align=1073741824, einval_ok=1.
 *
 * usage: big_alignments [MAX_ALIGN_LOG2] */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long checks, failures;

static void fail(const char *what, size_t align, size_t size) {
    failures++;
    fprintf(stderr, "FAIL: %s(align %zu, size %zu)\n", what, align, size);
}

/* Checks a block: aligned, writable at both ends, content kept by realloc, freed. */
static int exercise(const char *what, char *p, size_t align, size_t size) {
    checks++;
    if (!p) {
        fail(what, align, size);
        return 0;
    }
    if ((uintptr_t)p % align != 0) {
        fail(what, align, size);
        free(p);
        return 0;
    }
    p[0] = 'a';
    p[size - 1] = 'z';
    char *q = realloc(p, size + 4096);
    if (!q || q[0] != (size == 1 ? 'z' : 'a') || q[size - 1] != 'z') {
        fail("realloc after", align, size);
        free(q ? q : p);
        return 0;
    }
    free(q);
    return 1;
}

int main(int argc, char **argv) {
    int max_log = argc > 1 ? atoi(argv[1]) : 30;
    size_t max_ok[3] = {0, 0, 0};
    const char *names[3] = {"posix_memalign", "aligned_alloc", "memalign"};
    for (int lg = 4; lg <= max_log; lg++) {
        size_t align = (size_t)1 << lg;
        size_t sizes[4] = {1, align, align + 100, 3 * align / 2};
        for (int s = 0; s < 4; s++) {
            size_t size = sizes[s];
            int ok[3];
            void *p = NULL;
            int rc = posix_memalign(&p, align, size);
            ok[0] = exercise(names[0], rc == 0 ? p : NULL, align, size);
            ok[1] = exercise(names[1], aligned_alloc(align, size), align, size);
            ok[2] = exercise(names[2], memalign(align, size), align, size);
            for (int f = 0; f < 3; f++)
                if (ok[f] && s == 3 && align > max_ok[f])
                    max_ok[f] = align;
        }
    }
    void *p = NULL;
    int einval_ok = posix_memalign(&p, 24, 100) == EINVAL &&
                    posix_memalign(&p, 4, 100) == EINVAL;
    printf("checks=%ld\n", checks);
    printf("failures=%ld\n", failures);
    for (int f = 0; f < 3; f++)
        printf("%s_max_align=%zu\n", names[f], max_ok[f]);
    printf("einval_ok=%d\n", einval_ok);
    return 0;
}
