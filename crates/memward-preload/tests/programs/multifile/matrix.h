/* Dense matrices of doubles, heap-allocated rows. */
#ifndef MATRIX_H
#define MATRIX_H
#include <stddef.h>

struct matrix {
    size_t n;
    double **rows;
};

struct matrix *matrix_new(size_t n);
struct matrix *matrix_mul(const struct matrix *a, const struct matrix *b);
double matrix_trace(const struct matrix *m);
void matrix_free(struct matrix *m);

#endif
