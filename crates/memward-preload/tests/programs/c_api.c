/* The C allocation API contract, checked function by function: what glibc does on
 * Debian 12 (glibc 2.36) and what POSIX/C require, so that programs written against
 * glibc behave the same with libmemward.so preloaded.
 *
 * Prints one line per check to stdout ("ok NAME" or "FAIL NAME: why"), identical under
 * any conforming allocator, and exits 1 if any check failed. Checks that depend on the
 * allocator or the C library version print to stderr instead:
 *   - free_sized / free_aligned_sized (C23) are looked up with dlsym, as glibc 2.36 lacks
 *     them; they are only checked where they exist, and must exist under memward;
 *   - with MEMWARD_EXPECT=1 (set by the test for the preloaded run): every function
 *     resolves to libmemward.so, and mallinfo2 counts a single 10 MiB block in uordblks
 *     (glibc counts mmapped blocks in hblkhd instead).
 *
 * Sizes go through opaque() so that the compiler cannot fold or warn about calls whose
 * arguments are known to overflow, and cannot elide malloc/free pairs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A failed realloc leaves the old block valid, and checking exactly that is the point of
 * some checks below; GCC 12's -Wuse-after-free cannot know the call failed. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

static int failures;

/* The first failing case of a loop, described by note(); check() prints it. */
static char detail[256];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    if (detail[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
}

static void check(int ok, const char *name, const char *why) {
    if (ok) {
        printf("ok %s\n", name);
    } else {
        printf("FAIL %s: %s\n", name, detail[0] ? detail : why);
        failures++;
    }
    detail[0] = 0;
}

/* Allocator- or version-dependent results go to stderr, outside the compared output. */
static void check_extra(int ok, const char *name, const char *why) {
    if (ok) {
        fprintf(stderr, "ok %s\n", name);
    } else {
        fprintf(stderr, "FAIL %s: %s\n", name, why);
        failures++;
    }
}

static size_t opaque(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

static int aligned_to(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Fills [p, p+n) with a pattern derived from seed; all_is checks it back. */
static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static int filled(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static size_t page;

static void test_malloc(void) {
    errno = 0;
    void *p = malloc(opaque(SIZE_MAX));
    check(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX) is NULL with ENOMEM", "wrong result");
    errno = 0;
    p = malloc(opaque((size_t)PTRDIFF_MAX + 1));
    check(p == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX+1) is NULL with ENOMEM", "wrong result");

    /* malloc(0): a unique, non-NULL pointer each time, which free accepts. */
    enum { N0 = 256 };
    void *zero[N0];
    int ok = 1;
    for (int i = 0; i < N0; i++) {
        zero[i] = malloc(opaque(0));
        if (!zero[i]) ok = 0;
        for (int j = 0; j < i && ok; j++)
            if (zero[j] == zero[i]) ok = 0;
    }
    check(ok, "malloc(0) gives distinct non-NULL pointers", "NULL or a duplicate");
    for (int i = 0; i < N0; i++) free(zero[i]);

    /* Alignment: a block must suit any object that fits in it: 16 bytes from size 16 on
     * (max_align_t), the largest power of two <= size below. */
    ok = 1;
    for (size_t n = 1; n <= 70000 && ok; n = n < 64 ? n + 1 : n * 3 / 2) {
        void *q = malloc(opaque(n));
        size_t want = n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
        if (!q || !aligned_to(q, want) || malloc_usable_size(q) < n) {
            ok = 0;
            note("malloc(%zu) = %p, usable %zu", n, q, q ? malloc_usable_size(q) : 0);
        }
        if (q) {
            /* The whole usable size may be written. */
            memset(q, 0xab, malloc_usable_size(q));
        }
        free(q);
    }
    check(ok, "malloc alignment and usable size for sizes 1..70000", "misaligned or short");

    free(NULL);
    check(1, "free(NULL) is a no-op", "");
}

static void test_calloc(void) {
    errno = 0;
    void *p = calloc(opaque(SIZE_MAX / 2 + 1), opaque(2));
    check(p == NULL && errno == ENOMEM, "calloc overflow (SIZE_MAX/2+1 x 2) is NULL with ENOMEM",
          "wrong result");
    errno = 0;
    p = calloc(opaque(2), opaque(SIZE_MAX / 2 + 1));
    check(p == NULL && errno == ENOMEM, "calloc overflow (2 x SIZE_MAX/2+1) is NULL with ENOMEM",
          "wrong result");
    errno = 0;
    p = calloc(opaque(1 << 20), opaque((size_t)1 << 44));
    check(p == NULL && errno == ENOMEM, "calloc overflow (2^20 x 2^44) is NULL with ENOMEM",
          "wrong result");
    p = calloc(opaque(0), opaque(100));
    check(p != NULL, "calloc(0, n) is non-NULL", "NULL");
    free(p);

    /* Recycled memory must come back zeroed: dirty blocks of each size, free, calloc. */
    static const size_t sizes[] = {8, 24, 100, 1000, 5000, 40000, 300000, 3 << 20};
    int ok = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        void *dirty[8];
        for (int i = 0; i < 8; i++) {
            dirty[i] = malloc(opaque(n));
            if (!dirty[i]) { ok = 0; break; }
            memset(dirty[i], 0x5a, n);
        }
        for (int i = 0; i < 8; i++) free(dirty[i]);
        for (int i = 0; i < 8 && ok; i++) {
            unsigned char *z = calloc(opaque(1), opaque(n));
            if (!z || !all_zero(z, n)) {
                ok = 0;
                note("calloc(1, %zu) = %p, not all zero", n, (void *)z);
            }
            dirty[i] = z;
        }
        for (int i = 0; i < 8; i++) free(dirty[i]);
    }
    check(ok, "calloc zeroes recycled memory (8 B .. 3 MiB)", "non-zero bytes");
}

static void test_realloc(void) {
    errno = 0;
    unsigned char *p = realloc(NULL, opaque(100));
    check(p != NULL && malloc_usable_size(p) >= 100, "realloc(NULL, n) allocates", "NULL or short");

    /* Growth through small, medium and huge sizes keeps the contents. */
    fill(p, 100, 1);
    int ok = 1;
    size_t have = 100;
    for (size_t n = 150; n <= (8u << 20) && ok; n = n * 5 / 2) {
        unsigned char *q = realloc(p, opaque(n));
        if (!q || !filled(q, have, 1)) {
            note("realloc(%zu -> %zu) = %p", have, n, (void *)q);
            ok = 0;
            free(q ? q : p);
            p = NULL;
            break;
        }
        p = q;
        fill(p, n, 1);
        have = n;
    }
    check(ok, "realloc growth to 8 MiB keeps contents", "contents lost or NULL");
    /* Shrinking keeps the prefix. */
    for (size_t n = have; n >= 10 && ok && p; n /= 3) {
        unsigned char *q = realloc(p, opaque(n));
        if (!q || !filled(q, n, 1)) {
            note("realloc(shrink to %zu) = %p", n, (void *)q);
            ok = 0;
            free(q ? q : p);
            p = NULL;
            break;
        }
        p = q;
    }
    check(ok, "realloc shrinking keeps the prefix", "contents lost or NULL");

    /* Failure leaves the block valid and unchanged. */
    if (p) {
        fill(p, 10, 9);
        errno = 0;
        void *q = realloc(p, opaque(SIZE_MAX - 4096));
        check(q == NULL && errno == ENOMEM && filled(p, 10, 9),
              "realloc to a huge size is NULL with ENOMEM and the block intact", "wrong result");
    }
    /* glibc: realloc(p, 0) frees p and returns NULL. */
    errno = 0;
    void *q = realloc(p, opaque(0));
    check(q == NULL, "realloc(p, 0) frees and returns NULL (glibc)", "non-NULL");
}

static void test_reallocarray(void) {
    unsigned char *p = reallocarray(NULL, opaque(10), opaque(10));
    check(p != NULL && malloc_usable_size(p) >= 100, "reallocarray(NULL, 10, 10) allocates",
          "NULL or short");
    if (!p) return;
    fill(p, 100, 3);
    errno = 0;
    void *q = reallocarray(p, opaque(SIZE_MAX / 2), opaque(3));
    check(q == NULL && errno == ENOMEM && filled(p, 100, 3),
          "reallocarray overflow is NULL with ENOMEM and the block intact", "wrong result");
    q = reallocarray(p, opaque(1000), opaque(8));
    check(q != NULL && filled(q, 100, 3) && malloc_usable_size(q) >= 8000,
          "reallocarray growth keeps contents", "wrong result");
    free(q ? q : p);
}

static void test_posix_memalign(void) {
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 96, 1000};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *out = (void *)0x1234;
        int rc = posix_memalign(&out, opaque(bad[i]), opaque(64));
        if (rc != EINVAL || out != (void *)0x1234) {
            ok = 0;
            note("posix_memalign(align %zu) = %d, output %p", bad[i], rc, out);
        }
    }
    check(ok, "posix_memalign: EINVAL for alignments 0,1,2,3,4,12,24,48,96,1000; output untouched",
          "wrong result");

    void *out = (void *)0x1234;
    int rc = posix_memalign(&out, opaque(64), opaque(SIZE_MAX - 4096));
    check(rc == ENOMEM && out == (void *)0x1234, "posix_memalign: ENOMEM for a huge size; output untouched",
          "wrong result");

    ok = 1;
    for (size_t a = sizeof(void *); a <= (2u << 20); a *= 2) {
        static const size_t sizes[] = {0, 1, 8, 100, 4096};
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            void *q = NULL;
            int rc = posix_memalign(&q, opaque(a), opaque(sizes[s]));
            if (rc != 0 || !q || !aligned_to(q, a) || malloc_usable_size(q) < sizes[s]) {
                ok = 0;
                note("posix_memalign(align %zu, size %zu) = %d, %p, usable %zu", a, sizes[s], rc, q,
                     q ? malloc_usable_size(q) : 0);
            }
            if (q) memset(q, 0x11, sizes[s]);
            free(q);
        }
        /* size == alignment, the case that needs a whole aligned unit. */
        void *q = NULL;
        int rc = posix_memalign(&q, opaque(a), opaque(a));
        if (rc != 0 || !q || !aligned_to(q, a) || malloc_usable_size(q) < a) {
            ok = 0;
            note("posix_memalign(align %zu, size %zu) = %d, %p", a, a, rc, q);
        }
        if (q) memset(q, 0x22, a);
        free(q);
    }
    check(ok, "posix_memalign: alignments 8 B .. 2 MiB, sizes 0..4096 and size == alignment",
          "misaligned, short or failed");
}

/* aligned_alloc, memalign: any power of two; glibc's memalign also rounds other
 * alignments up to a power of two. */
static void test_aligned(void) {
    int ok = 1;
    for (size_t a = 1; a <= (2u << 20); a *= 2) {
        /* Sizes below the alignment too: the alignment still holds (glibc; C17 DR 460). */
        const size_t sizes[] = {1, a, 2 * a, 3 * a};
        for (size_t m = 0; m < 4; m++) {
            size_t n = sizes[m];
            void *p = aligned_alloc(opaque(a), opaque(n));
            void *q = memalign(opaque(a), opaque(n));
            if (!p || !aligned_to(p, a) || malloc_usable_size(p) < n) {
                ok = 0;
                note("aligned_alloc(%zu, %zu) = %p", a, n, p);
            }
            if (!q || !aligned_to(q, a) || malloc_usable_size(q) < n) {
                ok = 0;
                note("memalign(%zu, %zu) = %p", a, n, q);
            }
            if (p) memset(p, 0x33, n);
            if (q) memset(q, 0x44, n);
            free(p);
            free(q);
        }
    }
    check(ok, "aligned_alloc/memalign: alignments 1 B .. 2 MiB, size 1 and 1..3 x alignment",
          "misaligned, short or NULL");

    /* Many live aligned blocks at once (not just one reused slot). */
    enum { LIVE = 64 };
    void *live[LIVE];
    ok = 1;
    for (int i = 0; i < LIVE; i++) {
        size_t a = (size_t)64 << (i % 8);
        live[i] = aligned_alloc(opaque(a), opaque(a + (size_t)i * 8));
        if (!live[i] || !aligned_to(live[i], a)) {
            ok = 0;
            note("aligned_alloc(%zu, %zu) = %p", a, a + (size_t)i * 8, live[i]);
        } else
            fill(live[i], a, (unsigned)i);
    }
    for (int i = 0; i < LIVE; i++) {
        size_t a = (size_t)64 << (i % 8);
        if (live[i] && !filled(live[i], a, (unsigned)i)) {
            ok = 0;
            note("block %d (alignment %zu) at %p was overwritten", i, a, live[i]);
        }
        free(live[i]);
    }
    check(ok, "64 live aligned blocks (64 B .. 8 KiB) keep their contents", "corrupted");

    void *p = memalign(opaque(24), opaque(48));
    check(p && aligned_to(p, 32), "memalign(24, 48) rounds the alignment up to 32", "wrong result");
    free(p);
    errno = 0;
    p = memalign(opaque(SIZE_MAX / 2 + 2), opaque(1));
    check(p == NULL && errno == EINVAL, "memalign with alignment > SIZE_MAX/2+1 is EINVAL", "wrong result");
    errno = 0;
    p = memalign(opaque(64), opaque(SIZE_MAX - 100));
    check(p == NULL && errno == ENOMEM, "memalign with a huge size is ENOMEM", "wrong result");
    errno = 0;
    p = aligned_alloc(opaque(64), opaque(SIZE_MAX - 100));
    check(p == NULL && errno == ENOMEM, "aligned_alloc with a huge size is ENOMEM", "wrong result");
    /* glibc up to 2.37 treats aligned_alloc like memalign (rounds 24 up); 2.38 and C17's
     * DR 460 reject it with EINVAL. Either is conforming; anything else is not. */
    errno = 0;
    p = aligned_alloc(opaque(24), opaque(48));
    check((p && aligned_to(p, 32)) || (!p && errno == EINVAL),
          "aligned_alloc(24, 48): rounded up or EINVAL", "wrong result");
    free(p);
}

static void test_page_aligned(void) {
    int ok = 1;
    static const size_t sizes[] = {0, 1, 100, 4096, 4097, 100000, 3 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        void *p = valloc(opaque(n));
        if (!p || !aligned_to(p, page) || malloc_usable_size(p) < n) {
            ok = 0;
            note("valloc(%zu) = %p, usable %zu", n, p, p ? malloc_usable_size(p) : 0);
        }
        if (p) memset(p, 0x55, n);
        free(p);
    }
    check(ok, "valloc: page-aligned, usable >= size", "wrong result");

    ok = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        size_t rounded = (n + page - 1) / page * page;
        void *p = pvalloc(opaque(n));
        if (!p || !aligned_to(p, page) || malloc_usable_size(p) < rounded) {
            ok = 0;
            note("pvalloc(%zu) = %p, usable %zu", n, p, p ? malloc_usable_size(p) : 0);
        }
        if (p) memset(p, 0x66, rounded);
        free(p);
    }
    check(ok, "pvalloc: page-aligned, usable >= size rounded up to pages", "wrong result");
    errno = 0;
    void *p = pvalloc(opaque(SIZE_MAX - 10));
    check(p == NULL && errno == ENOMEM, "pvalloc with a huge size is ENOMEM", "wrong result");
}

static void test_usable_size(void) {
    check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0", "non-zero");
    int ok = 1;
    for (size_t n = 0; n < 20000; n = n * 2 + 1) {
        void *p = malloc(opaque(n));
        size_t u = malloc_usable_size(p);
        if (u < n) {
            ok = 0;
            note("malloc_usable_size(malloc(%zu)) = %zu", n, u);
        }
        /* Growing within the usable size must not move or lose data. */
        memset(p, 0x77, u);
        free(p);
    }
    check(ok, "malloc_usable_size >= requested", "short");
}

/* Everything that could observe allocator state: malloc_trim, mallinfo2, malloc_stats. */
static void test_introspection(int expect_memward) {
    int r = malloc_trim(opaque(0));
    check(r == 0 || r == 1, "malloc_trim returns 0 or 1", "other value");

    struct mallinfo2 before = mallinfo2();
    enum { SMALL = 10240 };
    void **blocks = malloc(SMALL * sizeof(void *));
    for (int i = 0; i < SMALL; i++) {
        blocks[i] = malloc(opaque(1024));
        memset(blocks[i], 1, 1024);
    }
    struct mallinfo2 after = mallinfo2();
    check(after.uordblks >= before.uordblks + SMALL * 1024,
          "mallinfo2: uordblks grows by >= 10 MiB after 10240 x 1 KiB", "did not grow");
    check(after.arena >= after.uordblks && after.fordblks <= after.arena,
          "mallinfo2: arena >= uordblks and fordblks <= arena", "implausible");
    for (int i = 0; i < SMALL; i++) free(blocks[i]);
    free(blocks);

    before = mallinfo2();
    void *big = malloc(opaque(10u << 20));
    memset(big, 1, 10u << 20);
    after = mallinfo2();
    /* glibc counts an mmapped block in hblkhd, memward in uordblks: the sum holds for both. */
    check(after.uordblks + after.hblkhd >= before.uordblks + before.hblkhd + (10u << 20),
          "mallinfo2: uordblks + hblkhd grow by >= 10 MiB after one 10 MiB block", "did not grow");
    if (expect_memward)
        check_extra(after.uordblks >= before.uordblks + (10u << 20),
                    "memward: mallinfo2 uordblks counts a 10 MiB block", "did not grow");
    free(big);

    /* malloc_stats writes to stderr: capture it through a pipe. */
    int fds[2];
    if (pipe(fds) == 0) {
        fflush(stderr);
        int saved = dup(2);
        dup2(fds[1], 2);
        malloc_stats();
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(fds[1]);
        char buf[256];
        ssize_t n = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        buf[n > 0 ? n : 0] = 0;
        check(n > 0, "malloc_stats prints statistics to stderr", "printed nothing");
        if (expect_memward)
            check_extra(strstr(buf, "memward") != NULL, "memward: malloc_stats is memward's",
                        "not memward's output");
    } else {
        check(0, "malloc_stats prints statistics to stderr", "pipe failed");
    }
}

/* C23 free_sized / free_aligned_sized: glibc 2.36 lacks them (and its headers do not
 * declare them), so look them up at run time. */
static void test_free_sized(int expect_memward) {
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    if (expect_memward) {
        check_extra(fs != NULL, "memward: free_sized exists", "dlsym found none");
        check_extra(fas != NULL, "memward: free_aligned_sized exists", "dlsym found none");
    }
    if (fs) {
        for (size_t n = 1; n < 100000; n = n * 3 + 1) fs(malloc(opaque(n)), n);
        fs(NULL, 0);
        /* The block's memory is reusable afterwards: allocate and use again. */
        void *p = malloc(opaque(64));
        memset(p, 1, 64);
        fs(p, 64);
        check_extra(1, "free_sized frees blocks of many sizes, and NULL", "");
    } else {
        fprintf(stderr, "not available free_sized (this C library predates C23's free_sized)\n");
    }
    if (fas) {
        for (size_t a = 16; a <= (1u << 20); a *= 4) {
            void *p = aligned_alloc(opaque(a), opaque(a * 2));
            memset(p, 2, a * 2);
            fas(p, a, a * 2);
        }
        fas(NULL, 64, 0);
        check_extra(1, "free_aligned_sized frees aligned blocks, and NULL", "");
    } else {
        fprintf(stderr, "not available free_aligned_sized (this C library predates C23)\n");
    }
}

/* Under the preload, every function of the family must be memward's: one symbol left to
 * glibc would mix two allocators on the same pointers. */
static void test_resolution(void) {
    static const char *names[] = {"malloc", "free", "calloc", "realloc", "reallocarray",
                                  "posix_memalign", "aligned_alloc", "memalign", "valloc",
                                  "pvalloc", "malloc_usable_size", "free_sized",
                                  "free_aligned_sized", "malloc_trim", "mallinfo2",
                                  "malloc_stats"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char label[96];
        snprintf(label, sizeof label, "memward: %s resolves to libmemward.so", names[i]);
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        int found = sym && dladdr(sym, &info) && info.dli_fname && strstr(info.dli_fname, "libmemward");
        check_extra(found, label, sym ? "resolves elsewhere" : "not found");
    }
}

/* memward only (glibc reads a chunk header before any pointer it is given): a page the
 * program mapped right after a huge block's mapping, inside the block's 4 MiB segment
 * window, is not memward's. malloc_usable_size says 0 for it; free aborts (not tested
 * here). */
static void test_foreign_beside_huge(void) {
    size_t huge = opaque((5u << 20) / 2);
    char *big = malloc(huge);
    uintptr_t window = (uintptr_t)4 << 20;
    uintptr_t end = (uintptr_t)big + huge, limit = (end & ~(window - 1)) + window;
    void *mine = NULL;
    for (uintptr_t at = (end + page - 1) & ~(uintptr_t)(page - 1); at < limit && !mine; at += page) {
        void *p = mmap((void *)at, page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)at) mine = p;
        else if (p != MAP_FAILED) munmap(p, page);
    }
    check_extra(mine != NULL, "a page maps inside a huge block's segment window", "no room");
    if (mine) {
        check_extra(malloc_usable_size(mine) == 0,
                    "malloc_usable_size of a page beside a huge block is 0", "non-zero");
        munmap(mine, page);
    }
    free(big);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    page = (size_t)sysconf(_SC_PAGESIZE);
    const char *env = getenv("MEMWARD_EXPECT");
    int expect_memward = env && strcmp(env, "1") == 0;

    /* First, while no cached huge mapping could fill the window. */
    if (expect_memward) test_foreign_beside_huge();
    test_malloc();
    test_calloc();
    test_realloc();
    test_reallocarray();
    test_posix_memalign();
    test_aligned();
    test_page_aligned();
    test_usable_size();
    test_introspection(expect_memward);
    test_free_sized(expect_memward);
    if (expect_memward) test_resolution();

    printf("%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
