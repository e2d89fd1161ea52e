/* One deliberate heap error per mode (argv[1]); memward check must report each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

static int double_free(void) {
  char *p = malloc(13);
  strcpy(p, "hello");
  free(p);
  free(p); /* line 12: the second free */
  return 0;
}

static int overflow_read(void) {
  char *p = malloc(32);
  memset(p, 1, 32);
  return p[32]; /* line 19: one byte past a 32-byte block */
}

static int use_after_free(void) {
  int *p = malloc(100 * sizeof(int));
  p[10] = 7;
  free(p);
  return p[10]; /* line 26: read after free */
}

static int overflow_write(void) {
  char *p = malloc(13);
  memcpy(p, "hello, world!!", 15); /* line 31: two bytes too many */
  free(p);
  return 0;
}

static int leak(void) {
  sink = malloc(100);
  sink = 0; /* the only pointer is gone */
  return 0;
}

static int correct(void) {
  char *p = malloc(64);
  for (int i = 0; i < 1000; i++) {
    p = realloc(p, 64 + i);
    p[i] = (char)i;
  }
  free(p);
  char *q = calloc(10, 10);
  int sum = q[99];
  free(q);
  return sum;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (!strcmp(argv[1], "double_free")) return double_free();
  if (!strcmp(argv[1], "overflow_read")) return overflow_read();
  if (!strcmp(argv[1], "use_after_free")) return use_after_free();
  if (!strcmp(argv[1], "overflow_write")) return overflow_write();
  if (!strcmp(argv[1], "leak")) return leak();
  if (!strcmp(argv[1], "correct")) return correct();
  return 2;
}
