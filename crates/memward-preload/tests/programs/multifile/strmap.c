#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s, size_t len) {
    size_t h = 5381;
    for (size_t i = 0; i < len; i++) h = h * 33 + (unsigned char)s[i];
    return h;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) {
        perror("calloc");
        exit(2);
    }
    return p;
}

void strmap_init(struct strmap *m) {
    m->nbuckets = 16;
    m->size = 0;
    m->buckets = xcalloc(m->nbuckets, sizeof *m->buckets);
}

static void grow(struct strmap *m) {
    size_t n = m->nbuckets * 2;
    struct strmap_entry **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            size_t j = hash(e->key, strlen(e->key)) % n;
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

long *strmap_get(struct strmap *m, const char *key, size_t len) {
    size_t i = hash(key, len) % m->nbuckets;
    for (struct strmap_entry *e = m->buckets[i]; e; e = e->next)
        if (strlen(e->key) == len && memcmp(e->key, key, len) == 0) return &e->count;
    if (m->size >= m->nbuckets * 3 / 4) {
        grow(m);
        i = hash(key, len) % m->nbuckets;
    }
    struct strmap_entry *e = xcalloc(1, sizeof *e);
    e->key = malloc(len + 1);
    if (!e->key) {
        perror("malloc");
        exit(2);
    }
    memcpy(e->key, key, len);
    e->key[len] = 0;
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->size++;
    return &e->count;
}

int strmap_remove(struct strmap *m, const char *key) {
    size_t i = hash(key, strlen(key)) % m->nbuckets;
    for (struct strmap_entry **p = &m->buckets[i]; *p; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct strmap_entry *e = *p;
            *p = e->next;
            free(e->key);
            free(e);
            m->size--;
            return 1;
        }
    }
    return 0;
}

void strmap_each(const struct strmap *m, void (*f)(const struct strmap_entry *, void *), void *arg) {
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct strmap_entry *e = m->buckets[i]; e; e = e->next) f(e, arg);
}

void strmap_free(struct strmap *m) {
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->size = 0;
}
