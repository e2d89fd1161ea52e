// A member assigned through a pointer to a deleted object.
// expect-error: heap-use-after-free on address
// expect: is located 8 bytes inside of 24-byte region
// expect: freed by thread T0 here:
// expect-summary: heap-use-after-free
#include "../corpus.h"

struct Account {
    long id;
    long balance;
    long flags;
};

int main() {
    Account *a = static_cast<Account *>(opaque(new Account{1, 100, 0}));
    delete a;
    a->balance = 0;
    return 0;
}
