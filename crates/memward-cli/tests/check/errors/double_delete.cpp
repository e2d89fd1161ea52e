// An object deleted twice.
// expect-error: attempting double-free on
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-summary: double-free
#include "../corpus.h"

struct Point {
    long x, y, z;
};

int main() {
    Point *p = static_cast<Point *>(opaque(new Point{1, 2, 3}));
    delete p;
    delete p;
    return 0;
}
