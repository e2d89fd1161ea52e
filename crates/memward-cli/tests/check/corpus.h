/* Helpers shared by the corpus programs (C and C++).
 *
 * The programs are compiled at -O0, but even there a compiler may drop a store to memory
 * it knows is dead, or warn its way around an obviously wrong pointer. `opaque` launders a
 * pointer through an empty asm so nothing about it is known. The leak programs leak in a
 * function run by `call_deep`, then `scrub_stack` overwrites the dead stack below the
 * caller, where a stale copy of a leaked pointer would make the block look reachable to a
 * conservative leak scan (memcheck's, LeakSanitizer's and memward's alike). */
#ifndef MEMWARD_CHECK_CORPUS_H
#define MEMWARD_CHECK_CORPUS_H

#include <string.h>

static inline void *opaque(void *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* Runs f in frames at least 1 KiB below the caller's, so that scrub_stack, called by the
 * same caller afterwards, overwrites every slot f and its callees used (even at -O0, where
 * temporaries are spilled to the caller's own frame, and under ASan, whose stack red zones
 * scrub_stack's loop does not write). */
__attribute__((noinline)) static void call_deep(void (*f)(void)) {
    volatile char pad[1024];
    pad[0] = 0;
    f();
    pad[1] = pad[0];
}

__attribute__((noinline)) static void scrub_stack(void) {
    volatile char buf[32768];
    for (unsigned i = 0; i < sizeof buf; i++) buf[i] = 0;
}

#endif
