// Ten objects from new, never deleted.
// expect-error: detected memory leaks
// expect: Direct leak of 480 byte(s) in 10 object(s) allocated from:
// expect-frame: make_record
// expect-summary: 480 byte(s) leaked in 10 allocation(s).
#include "../corpus.h"

struct Record {
    long fields[6];
};

__attribute__((noinline)) static Record *make_record(long i) {
    return static_cast<Record *>(opaque(new Record{{i, i, i, i, i, i}}));
}

static long sum;

__attribute__((noinline)) static void make_many() {
    for (long i = 0; i < 10; i++) sum += make_record(i)->fields[0];
}

int main() {
    call_deep(make_many);
    scrub_stack();
    return sum == 45 ? 0 : 3;
}
