// An array from new[] released with free.
// expect-error: alloc-dealloc-mismatch (operator new [] vs free) on
// expect: is located 0 bytes inside of 64-byte region
// expect: allocated by thread T0 here:
// expect-summary: alloc-dealloc-mismatch
#include <cstdlib>
#include "../corpus.h"

int main() {
    long *p = static_cast<long *>(opaque(new long[8]()));
    p[0] = 1;
    std::free(p);
    return 0;
}
