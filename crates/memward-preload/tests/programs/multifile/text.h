/* Deterministic pseudo-random text, and a growable string buffer. */
#ifndef TEXT_H
#define TEXT_H
#include <stddef.h>
#include <stdint.h>

struct strbuf {
    char *s;
    size_t len, cap;
};

void sb_init(struct strbuf *b);
void sb_append(struct strbuf *b, const char *s, size_t n);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(struct strbuf *b);

/* Appends `words` space-separated words from a Zipf-like vocabulary to b. */
void text_generate(struct strbuf *b, uint64_t seed, size_t words);
uint64_t text_rand(uint64_t *state);

#endif
