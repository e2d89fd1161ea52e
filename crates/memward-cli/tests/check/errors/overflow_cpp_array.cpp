// a[10] written in an int[10] from new[].
// expect-error: heap-buffer-overflow on address
// expect: is located 0 bytes after 40-byte region
// expect-summary: heap-buffer-overflow
#include "../corpus.h"

int main() {
    int *a = static_cast<int *>(opaque(new int[10]));
    for (int i = 0; i <= 10; i++) a[i] = i;
    delete[] a;
    return 0;
}
