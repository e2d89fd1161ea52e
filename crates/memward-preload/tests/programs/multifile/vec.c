#include "vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vec_init(struct vec *v, size_t elem) {
    v->data = NULL;
    v->len = v->cap = 0;
    v->elem = elem;
}

void *vec_push(struct vec *v) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        unsigned char *d = realloc(v->data, cap * v->elem);
        if (!d) {
            perror("realloc");
            exit(2);
        }
        v->data = d;
        v->cap = cap;
    }
    void *slot = v->data + v->len++ * v->elem;
    memset(slot, 0, v->elem);
    return slot;
}

void *vec_at(const struct vec *v, size_t i) { return v->data + i * v->elem; }

void vec_sort(struct vec *v, int (*cmp)(const void *, const void *)) {
    qsort(v->data, v->len, v->elem, cmp);
}

void vec_free(struct vec *v) {
    free(v->data);
    vec_init(v, v->elem);
}
