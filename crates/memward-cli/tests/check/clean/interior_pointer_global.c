// A block reachable only through a pointer into its middle (a string view, a field
// address): reachable, as LeakSanitizer counts interior pointers.
#include <stdlib.h>
#include <string.h>
#include "../corpus.h"

const char *middle;

__attribute__((noinline)) static void keep(void) {
    char *p = opaque(malloc(128));
    strcpy(p, "header:payload");
    middle = p + 7;
}

int main(void) {
    keep();
    scrub_stack();
    return strcmp(middle, "payload") != 0;
}
