// A virtual call on a deleted object reads its vtable pointer from freed memory.
// check-options: --guard all
// expect-error: heap-use-after-free on address
// expect: READ of
// expect: is located 0 bytes inside of 16-byte region
// expect: freed by thread T0 here:
// expect-summary: heap-use-after-free
#include <cstdio>
#include "../corpus.h"

struct Shape {
    virtual ~Shape() {}
    virtual int sides() const { return 0; }
    long tag = 1;
};

int main() {
    Shape *s = static_cast<Shape *>(opaque(new Shape));
    delete s;
    std::printf("%d\n", s->sides());
    return 0;
}
