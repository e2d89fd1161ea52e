/* One allocator misuse per run, chosen by argv[1], for the fast-mode hardening tests
 * (tests/hardening.rs): each must end in one `memward: ...` line on stderr and SIGABRT,
 * as glibc ends its own checks. `lookalike` is the control: a live block whose first word
 * holds exactly the bits of a free-list link must be freed normally. Pointers go through
 * `volatile` so that the compiler keeps every call as written. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static char global_buffer[64];
static void *volatile shared;

static void *free_shared(void *arg) {
    (void)arg;
    free(shared);
    return NULL;
}

static void *free_shared_interior(void *arg) {
    (void)arg;
    free((char *)shared + 16);
    return NULL;
}

static void on_thread(void *(*fn)(void *)) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0)
        exit(2);
}

/* Allocates and frees enough blocks of `size` that the calling thread's slow paths run
 * (list refills, which also apply frees queued by other threads). */
static void churn(size_t size) {
    static void *volatile keep[20000];
    for (int i = 0; i < 20000; i++)
        keep[i] = malloc(size);
    for (int i = 0; i < 20000; i++)
        free(keep[i]);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    const char *m = argv[1];
    char *volatile p = malloc(64);
    if (!strcmp(m, "double-free")) {
        free(p);
        free(p);
    } else if (!strcmp(m, "double-free-8")) {
        /* The 8-byte class: one word per block, the link word itself. */
        char *volatile q = malloc(8);
        free(q);
        free(q);
    } else if (!strcmp(m, "double-free-later")) {
        /* Other blocks of the same page come and go between the two frees. */
        void *volatile others[500];
        for (int i = 0; i < 500; i++)
            others[i] = malloc(64);
        free(p);
        for (int i = 0; i < 500; i += 2)
            free(others[i]);
        for (int i = 0; i < 500; i += 2)
            others[i] = malloc(64);
        free(p);
    } else if (!strcmp(m, "double-free-remote")) {
        /* Freed by its owner, then again by another thread: that thread cannot look at
         * the owner's lists, so it tags the block and the owner confirms. */
        free(p);
        shared = p;
        on_thread(free_shared);
        churn(64);
    } else if (!strcmp(m, "interior")) {
        free(p + 16);
    } else if (!strcmp(m, "interior-odd")) {
        free(p + 3);
    } else if (!strcmp(m, "interior-remote")) {
        shared = p;
        on_thread(free_shared_interior);
    } else if (!strcmp(m, "stack")) {
        char on_stack[32];
        free((void *volatile)on_stack);
    } else if (!strcmp(m, "global")) {
        free((void *volatile)global_buffer);
    } else if (!strcmp(m, "mmap")) {
        void *mapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED)
            return 2;
        free((void *volatile)mapped);
    } else if (!strcmp(m, "realloc-stack")) {
        char on_stack[32];
        void *volatile r = realloc((void *volatile)on_stack, 100);
        (void)r;
    } else if (!strcmp(m, "write-after-free")) {
        /* Overwrite a free block's link, then allocate until it is handed out. */
        free(p);
        memset(p, 'A', 16);
        void *volatile q;
        for (int i = 0; i < 100000; i++)
            q = malloc(64);
        (void)q;
    } else if (!strcmp(m, "lookalike")) {
        /* Copy a free block's encoded link into a live block, then free the live block:
         * the check sees a plausible link, scans, does not find the block, and frees it. */
        char *volatile a = malloc(64);
        char *volatile b = malloc(64);
        free(a);
        uint64_t link;
        memcpy(&link, a, sizeof link);
        memcpy(b, &link, sizeof link);
        free(b);
        free(p);
        churn(64);
        puts("freed normally");
        return 0;
    } else {
        return 2;
    }
    puts("not detected");
    return 0;
}
