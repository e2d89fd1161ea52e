// operator delete of an object on the stack.
// expect-error: attempting free on address which was not malloc()-ed
// expect-summary: bad-free
#include "../corpus.h"

struct Node {
    Node *next;
    int value;
};

int main() {
    Node n{nullptr, 7};
    Node *p = static_cast<Node *>(opaque(&n));
    delete p;
    return n.value;
}
