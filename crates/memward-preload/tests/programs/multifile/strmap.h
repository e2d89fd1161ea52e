/* A chained hash map from strings (copied) to counters, resized as it fills. */
#ifndef STRMAP_H
#define STRMAP_H
#include <stddef.h>

struct strmap_entry {
    char *key;
    long count;
    struct strmap_entry *next;
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets, size;
};

void strmap_init(struct strmap *m);
long *strmap_get(struct strmap *m, const char *key, size_t len);
int strmap_remove(struct strmap *m, const char *key);
/* Calls f for each entry in unspecified order. */
void strmap_each(const struct strmap *m, void (*f)(const struct strmap_entry *, void *), void *arg);
void strmap_free(struct strmap *m);

#endif
