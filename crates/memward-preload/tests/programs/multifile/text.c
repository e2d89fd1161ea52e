#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *b) {
    b->s = NULL;
    b->len = b->cap = 0;
}

static void reserve(struct strbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->len + extra + 1) cap += cap / 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        perror("realloc");
        exit(2);
    }
    b->s = s;
    b->cap = cap;
}

void sb_append(struct strbuf *b, const char *s, size_t n) {
    reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sb_printf(struct strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_free(struct strbuf *b) {
    free(b->s);
    sb_init(b);
}

uint64_t text_rand(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

void text_generate(struct strbuf *b, uint64_t seed, size_t words) {
    static const char *syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qu", "bra", "sto"};
    uint64_t st = seed | 1;
    for (size_t i = 0; i < words; i++) {
        /* Zipf-like: small vocabulary indices are much more common. */
        uint64_t r = text_rand(&st);
        uint64_t idx = (r % 1000) * (r % 1000) / 1000 * ((r >> 20) % 64 + 1);
        char w[64];
        size_t n = 0;
        do {
            const char *syl = syllables[idx % 12];
            size_t l = strlen(syl);
            memcpy(w + n, syl, l);
            n += l;
            idx /= 12;
        } while (idx && n < 40);
        if (i) sb_append(b, " ", 1);
        sb_append(b, w, n);
    }
}
