// Blocks whose only pointers live in globals: a plain global, a static local, an array
// in .bss, a struct in .data, and a block reachable only through another block.
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

char *plain;
static void *in_bss[16];
struct holder {
    int tag;
    void *ptr;
} in_data = {7, NULL};

__attribute__((noinline)) static void fill(void) {
    static char *cached;
    cached = opaque(malloc(300));
    memset(cached, 1, 300);
    plain = opaque(strdup("kept in a global"));
    for (int i = 0; i < 16; i++) in_bss[i] = opaque(malloc(16 + i * 100));
    void **outer = opaque(malloc(2 * sizeof(void *)));
    outer[0] = opaque(malloc(1000));
    outer[1] = opaque(malloc(5000));
    in_data.ptr = outer;
}

int main(void) {
    fill();
    scrub_stack();
    return in_data.tag == 7 ? 0 : 1;
}
