// Sized operator delete given a size other than the one allocated.
// expect-error: new-delete-type-mismatch on
// expect: object passed to delete has wrong type:
// expect: size of the allocated type:   48 bytes;
// expect: size of the deallocated type: 32 bytes.
// expect-summary: new-delete-type-mismatch
#include <new>
#include "../corpus.h"

int main() {
    void *p = opaque(::operator new(48));
    ::operator delete(p, 32);
    return 0;
}
