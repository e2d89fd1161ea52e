// Over-aligned C++ objects and arrays (operator new with std::align_val_t), with the
// matching aligned and sized deletes.
#include <cstdint>
#include <cstdio>
#include <new>
#include <vector>
#include "../corpus.h"

struct alignas(64) CacheLine {
    long v[8];
};

struct alignas(4096) Page {
    char bytes[4096];
};

int main() {
    int bad = 0;
    for (int round = 0; round < 100; round++) {
        CacheLine *c = new CacheLine{};
        Page *p = new Page{};
        CacheLine *arr = new CacheLine[round + 1]{};
        bad |= reinterpret_cast<std::uintptr_t>(c) % 64 != 0;
        bad |= reinterpret_cast<std::uintptr_t>(p) % 4096 != 0;
        bad |= reinterpret_cast<std::uintptr_t>(arr) % 64 != 0;
        p->bytes[4095] = 1;
        arr[round].v[7] = round;
        delete c;
        delete p;
        delete[] arr;
        void *raw = ::operator new(200, std::align_val_t(256));
        bad |= reinterpret_cast<std::uintptr_t>(raw) % 256 != 0;
        ::operator delete(raw, 200, std::align_val_t(256));
    }
    std::vector<CacheLine> v(1000);
    v.resize(5000);
    std::printf("aligned new ok: %d\n", bad);
    return bad;
}
