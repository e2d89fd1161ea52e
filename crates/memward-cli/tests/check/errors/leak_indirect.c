// A three-node list whose head is dropped: the head leaks directly, the two nodes it
// points to indirectly.
// expect-error: detected memory leaks
// expect: Direct leak of 32 byte(s) in 1 object(s) allocated from:
// expect: Indirect leak of 64 byte(s) in 2 object(s) allocated from:
// expect-frame: push
// expect-summary: 96 byte(s) leaked in 3 allocation(s).
#include <stdlib.h>
#include "../corpus.h"

struct node {
    struct node *next;
    char payload[24];
};

__attribute__((noinline)) static struct node *push(struct node *head) {
    struct node *n = calloc(1, sizeof *n);
    n->next = head;
    return opaque(n);
}

__attribute__((noinline)) static void build_and_drop(void) {
    struct node *head = NULL;
    for (int i = 0; i < 3; i++) head = push(head);
    head = NULL;
}

int main(void) {
    call_deep(build_and_drop);
    scrub_stack();
    return 0;
}
