/* The heap shape of examples/leak_scan_cost.rs for LeakSanitizer: N blocks of 32
 * bytes, the first half a list from a global, the rest in unreachable chains of ten.
 * Build: clang -O1 -fsanitize=leak lsan_anchor.c -o lsan_anchor; run with
 * LSAN_OPTIONS=detect_leaks=1 (or 0), exitcode=0, and compare wall times. */
#include <stdlib.h>

void *volatile head;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void **prev = 0;
    for (long i = 0; i < n; i++) {
        void **p = calloc(1, 32);
        int reachable = i < n / 2;
        int chain_start = !reachable && (i - n / 2) % 10 == 0;
        if (i == 0)
            head = p;
        else if (!chain_start)
            *prev = p;
        prev = p;
    }
    prev = 0;
    return 0;
}
