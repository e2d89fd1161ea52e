#include "matrix.h"

#include <stdio.h>
#include <stdlib.h>

struct matrix *matrix_new(size_t n) {
    struct matrix *m = malloc(sizeof *m);
    if (!m) exit(2);
    m->n = n;
    m->rows = calloc(n, sizeof *m->rows);
    if (!m->rows) exit(2);
    for (size_t i = 0; i < n; i++) {
        m->rows[i] = calloc(n, sizeof **m->rows);
        if (!m->rows[i]) exit(2);
    }
    return m;
}

struct matrix *matrix_mul(const struct matrix *a, const struct matrix *b) {
    struct matrix *c = matrix_new(a->n);
    for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < a->n; k++) {
            double x = a->rows[i][k];
            for (size_t j = 0; j < a->n; j++) c->rows[i][j] += x * b->rows[k][j];
        }
    return c;
}

double matrix_trace(const struct matrix *m) {
    double t = 0;
    for (size_t i = 0; i < m->n; i++) t += m->rows[i][i];
    return t;
}

void matrix_free(struct matrix *m) {
    for (size_t i = 0; i < m->n; i++) free(m->rows[i]);
    free(m->rows);
    free(m);
}
