// An array from new[] released with delete (not delete[]).
// expect-error: alloc-dealloc-mismatch (operator new [] vs operator delete) on
// expect: is located 0 bytes inside of 64-byte region
// expect: allocated by thread T0 here:
// expect-summary: alloc-dealloc-mismatch
#include <cstdlib>
#include "../corpus.h"

int main() {
    long *p = static_cast<long *>(opaque(new long[8]()));
    p[0] = 1;
    delete p;
    return 0;
}
