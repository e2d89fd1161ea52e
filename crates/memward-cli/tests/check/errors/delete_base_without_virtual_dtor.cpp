// A derived object deleted through a base pointer whose destructor is not virtual: the
// compiler passes the base's size to sized delete.
// expect-error: new-delete-type-mismatch on
// expect: size of the allocated type:   64 bytes;
// expect: size of the deallocated type: 16 bytes.
// expect-summary: new-delete-type-mismatch
#include "../corpus.h"

struct Base {
    long a = 1, b = 2;
};

struct Derived : Base {
    long extra[6] = {};
};

int main() {
    Base *b = static_cast<Base *>(opaque(new Derived));
    delete b;
    return 0;
}
