/* Word statistics over generated text, plus matrix products: a small multi-file C
 * program whose every data structure lives on the heap. Output is deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matrix.h"
#include "strmap.h"
#include "text.h"
#include "vec.h"

struct item {
    const char *word;
    long count;
};

static void collect(const struct strmap_entry *e, void *arg) {
    struct item *it = vec_push(arg);
    it->word = e->key;
    it->count = e->count;
}

static int by_count(const void *a, const void *b) {
    const struct item *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

int main(void) {
    uint64_t digest = 1469598103934665603ull;
    for (int doc = 0; doc < 6; doc++) {
        struct strbuf text;
        sb_init(&text);
        text_generate(&text, 1000 + (uint64_t)doc * 77, 60000);

        struct strmap counts;
        strmap_init(&counts);
        for (char *w = strtok(text.s, " "); w; w = strtok(NULL, " ")) ++*strmap_get(&counts, w, strlen(w));

        /* Drop rare words, then rank the rest. */
        struct vec items;
        vec_init(&items, sizeof(struct item));
        strmap_each(&counts, collect, &items);
        size_t removed = 0;
        for (size_t i = 0; i < items.len; i++) {
            struct item *it = vec_at(&items, i);
            if (it->count == 1) removed++;
        }
        vec_sort(&items, by_count);

        struct strbuf report;
        sb_init(&report);
        for (size_t i = 0; i < items.len && i < 5; i++) {
            struct item *it = vec_at(&items, i);
            sb_printf(&report, "%s%s=%ld", i ? " " : "", it->word, it->count);
        }
        printf("doc %d: %zu words distinct, %zu once; top: %s\n", doc, counts.size, removed, report.s);
        for (size_t i = 0; i < items.len; i++) {
            struct item *it = vec_at(&items, i);
            digest = fnv(digest, it->word, strlen(it->word));
            digest = fnv(digest, &it->count, sizeof it->count);
        }
        /* Remove the rare words from the map (frees inside a live structure). */
        struct vec rare;
        vec_init(&rare, sizeof(char *));
        for (size_t i = 0; i < items.len; i++) {
            struct item *it = vec_at(&items, i);
            if (it->count == 1) *(char **)vec_push(&rare) = strdup(it->word);
        }
        for (size_t i = 0; i < rare.len; i++) {
            char *w = *(char **)vec_at(&rare, i);
            if (!strmap_remove(&counts, w)) {
                printf("FAIL: %s vanished\n", w);
                return 1;
            }
            free(w);
        }
        if (counts.size != items.len - removed) {
            printf("FAIL: map size %zu, expected %zu\n", counts.size, items.len - removed);
            return 1;
        }
        vec_free(&rare);
        vec_free(&items);
        strmap_free(&counts);
        sb_free(&report);
        sb_free(&text);
    }
    printf("word digest %016llx\n", (unsigned long long)digest);

    struct matrix *a = matrix_new(120), *b = matrix_new(120);
    for (size_t i = 0; i < 120; i++)
        for (size_t j = 0; j < 120; j++) {
            a->rows[i][j] = (double)((i * 7 + j * 3) % 11) - 5;
            b->rows[i][j] = (double)((i + 2 * j) % 13) - 6;
        }
    struct matrix *c = matrix_mul(a, b);
    for (int k = 0; k < 3; k++) {
        struct matrix *d = matrix_mul(c, a);
        matrix_free(c);
        c = d;
    }
    printf("matrix trace %.1f\n", matrix_trace(c));
    matrix_free(a);
    matrix_free(b);
    matrix_free(c);
    return 0;
}
