// C++17 aligned operator new / delete (std::align_val_t) with every power-of-two
// alignment from 16 B to 1 GiB, as `new` of over-aligned types and the explicit
// operators; libstdc++ implements them with aligned_alloc, so under LD_PRELOAD they reach
// memward's. Prints key=value lines: checks, failures, max_align (largest served).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <new>

struct alignas(4 * 1024 * 1024) Page4M {
    unsigned char bytes[100];
};

int main() {
    long checks = 0, failures = 0;
    std::size_t max_align = 0;
    for (int lg = 4; lg <= 30; lg++) {
        std::size_t align = std::size_t(1) << lg;
        for (std::size_t size : {std::size_t(1), align, align + 100}) {
            checks++;
            void *p = nullptr;
            try {
                p = ::operator new(size, std::align_val_t(align));
            } catch (const std::bad_alloc &) {
                p = nullptr;
            }
            if (!p || reinterpret_cast<std::uintptr_t>(p) % align != 0) {
                failures++;
                std::fprintf(stderr, "FAIL: operator new(%zu, align %zu)\n", size, align);
                continue;
            }
            static_cast<unsigned char *>(p)[0] = 1;
            static_cast<unsigned char *>(p)[size - 1] = 2;
            ::operator delete(p, std::align_val_t(align));
            void *q = ::operator new[](size, std::align_val_t(align), std::nothrow);
            if (!q || reinterpret_cast<std::uintptr_t>(q) % align != 0) {
                failures++;
                std::fprintf(stderr, "FAIL: operator new[](%zu, align %zu, nothrow)\n", size, align);
                continue;
            }
            ::operator delete[](q, std::align_val_t(align));
            if (align > max_align)
                max_align = align;
        }
    }
    checks++;
    Page4M *page = new Page4M[3];
    if (reinterpret_cast<std::uintptr_t>(page) % alignof(Page4M) != 0) {
        failures++;
        std::fprintf(stderr, "FAIL: new Page4M[3]\n");
    }
    std::memset(page, 7, 3 * sizeof(Page4M));
    delete[] page;
    std::printf("checks=%ld\nfailures=%ld\nmax_align=%zu\n", checks, failures, max_align);
    return 0;
}
