/* A growable array of fixed-size elements (realloc doubling). */
#ifndef VEC_H
#define VEC_H
#include <stddef.h>

struct vec {
    unsigned char *data;
    size_t len, cap, elem;
};

void vec_init(struct vec *v, size_t elem);
void *vec_push(struct vec *v);
void *vec_at(const struct vec *v, size_t i);
void vec_sort(struct vec *v, int (*cmp)(const void *, const void *));
void vec_free(struct vec *v);

#endif
