// A block from malloc released with delete[].
// expect-error: alloc-dealloc-mismatch (malloc vs operator delete []) on
// expect: is located 0 bytes inside of 64-byte region
// expect: allocated by thread T0 here:
// expect-summary: alloc-dealloc-mismatch
#include <cstdlib>
#include "../corpus.h"

int main() {
    long *p = static_cast<long *>(opaque(std::malloc(8 * sizeof(long))));
    p[0] = 1;
    delete[] p;
    return 0;
}
