/* Blocks with large alignments (up to 64 MiB) under memward check: argv[1] picks what the
 * program does with them, argv[2] (where used) the alignment. A correct program must run
 * silently; each wrong one must be reported. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t aligns[] = {64, 4096, (size_t)2 << 20, (size_t)4 << 20,
                                (size_t)16 << 20, (size_t)64 << 20};

static void fail(const char *what, size_t align) {
  fprintf(stderr, "big_align: %s at alignment %zu\n", what, align);
  exit(3);
}

/* Fills the block, checks its alignment and size, reallocates it (growing, then
 * shrinking) and checks that its bytes came along, then frees it. */
static void use(char *p, size_t align, size_t size) {
  if (!p) fail("no block", align);
  if ((uintptr_t)p % align) fail("misaligned block", align);
  if (malloc_usable_size(p) < size) fail("usable size below the request", align);
  memset(p, 0x5a, size);
  char *q = realloc(p, size * 3);
  if (!q || q[0] != 0x5a || q[size - 1] != 0x5a) fail("realloc lost the bytes", align);
  q[size * 3 - 1] = 1;
  char *r = realloc(q, size / 2);
  if (!r || r[size / 2 - 1] != 0x5a) fail("shrinking realloc lost the bytes", align);
  free(r);
}

static int correct(void) {
  for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
    size_t a = aligns[i];
    void *p = NULL;
    if (posix_memalign(&p, a, 1000) != 0) fail("posix_memalign failed", a);
    use(p, a, 1000);
    use(aligned_alloc(a, 3 * 4096), a, 3 * 4096);
    use(memalign(a, 24), a, 24);
    /* A block freed without being touched. */
    free(aligned_alloc(a, a));
  }
  return 0;
}

/* Frees a pointer into the middle of a block of 3 alignments (for large alignments, more
 * than a segment of the engine past the block's start). */
static int far_interior_free(size_t a) {
  char *p = aligned_alloc(a, 3 * a);
  if (!p) fail("aligned_alloc failed", a);
  volatile size_t into = a + a / 2;
  free(p + into);
  return 0;
}

/* Reads the byte after a page-sized aligned block (with --guard all: its guard page). */
static int read_past_end(size_t a) {
  char *p = memalign(a, 4096);
  if (!p) fail("memalign failed", a);
  volatile char c = p[4096];
  (void)c;
  free(p);
  return 0;
}

/* Reads an aligned block after its free (with --guard all: a protected page). */
static int read_after_free(size_t a) {
  char *volatile p = aligned_alloc(a, 100);
  if (!p) fail("aligned_alloc failed", a);
  free(p);
  volatile char c = p[10];
  (void)c;
  return 0;
}

static size_t align_arg(int argc, char **argv) {
  return argc > 2 ? strtoull(argv[2], NULL, 0) : 4096;
}

/* Frees a pointer 16 bytes into an aligned block. */
static int interior_free(size_t a) {
  char *p = aligned_alloc(a, 100);
  if (!p) fail("aligned_alloc failed", a);
  volatile size_t into = 16;
  free(p + into);
  return 0;
}

/* Frees an aligned block twice. */
static int double_free(size_t a) {
  void *p = NULL;
  if (posix_memalign(&p, a, 100) != 0) fail("posix_memalign failed", a);
  free(p);
  free(p);
  return 0;
}

/* Writes one byte past the end of an aligned block, then frees it. */
static int overflow(size_t a) {
  char *p = memalign(a, 100);
  if (!p) fail("memalign failed", a);
  p[100] = 1;
  free(p);
  return 0;
}

/* Leaks an aligned block (the leak scan must list it). */
static int leak(size_t a) {
  static void *volatile keep;
  keep = aligned_alloc(a, 100);
  keep = NULL;
  return keep != NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t a = align_arg(argc, argv);
  if (!strcmp(argv[1], "correct")) return correct();
  if (!strcmp(argv[1], "interior_free")) return interior_free(a);
  if (!strcmp(argv[1], "far_interior_free")) return far_interior_free(a);
  if (!strcmp(argv[1], "double_free")) return double_free(a);
  if (!strcmp(argv[1], "overflow")) return overflow(a);
  if (!strcmp(argv[1], "leak")) return leak(a);
  if (!strcmp(argv[1], "read_past_end")) return read_past_end(a);
  if (!strcmp(argv[1], "read_after_free")) return read_after_free(a);
  return 2;
}
