// A C++ program exercising what C++ code asks of malloc through libstdc++: containers
// of every shape, strings past the small-string buffer, threads handing ownership to
// each other, exceptions (their objects are malloc'd by __cxa_allocate_exception, and
// bad_alloc must come out of a failing operator new), and over-aligned new/delete
// (operator new(size_t, align_val_t) calls aligned_alloc).
//
// Prints deterministic results only (checksums, counts), one line per part, and exits
// non-zero if any internal check fails.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <queue>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

static int failures = 0;

static void expect(bool ok, const std::string &what) {
    if (!ok) {
        std::printf("FAIL %s\n", what.c_str());
        ++failures;
    }
}

// FNV-1a over bytes, to print one number per part.
struct Hash {
    std::uint64_t h = 1469598103934665603ull;
    void bytes(const void *p, std::size_t n) {
        auto c = static_cast<const unsigned char *>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
    }
    void str(const std::string &s) { bytes(s.data(), s.size()); }
    void num(std::uint64_t v) { bytes(&v, sizeof v); }
};

static std::uint64_t lcg(std::uint64_t &s) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 17;
}

static std::string word(std::uint64_t &s) {
    std::string w;
    std::size_t len = 1 + lcg(s) % 40;  // many longer than the 15-byte SSO buffer
    for (std::size_t i = 0; i < len; ++i) w.push_back(static_cast<char>('a' + lcg(s) % 26));
    return w;
}

static std::uint64_t containers(int seed) {
    std::uint64_t s = static_cast<std::uint64_t>(seed) * 7919 + 1;
    Hash h;
    std::vector<std::string> words;
    for (int i = 0; i < 20000; ++i) words.push_back(word(s));
    std::map<std::string, int> counts;
    std::unordered_map<std::string, std::vector<int>> positions;
    for (int i = 0; i < static_cast<int>(words.size()); ++i) {
        ++counts[words[i]];
        positions[words[i]].push_back(i);
    }
    for (auto &kv : counts) {
        h.str(kv.first);
        h.num(static_cast<std::uint64_t>(kv.second));
    }
    std::vector<std::pair<int, std::string>> by_len;
    for (auto &kv : positions) by_len.emplace_back(static_cast<int>(kv.second.size()), kv.first);
    std::sort(by_len.begin(), by_len.end());
    for (auto &p : by_len) h.str(p.second);

    std::deque<std::unique_ptr<std::string>> dq;
    std::list<std::vector<std::uint64_t>> lst;
    std::set<std::uint64_t> st;
    std::multimap<std::size_t, std::string> mm;
    for (int i = 0; i < 30000; ++i) {
        std::uint64_t r = lcg(s);
        if (r % 3 == 0) dq.push_front(std::make_unique<std::string>(r % 100, 'x'));
        else dq.push_back(std::make_unique<std::string>(words[r % words.size()]));
        if (dq.size() > 500) dq.pop_front();
        lst.emplace_back(r % 64, r);
        if (lst.size() > 300) lst.erase(lst.begin());
        st.insert(r % 50000);
        if (r % 5 == 0) st.erase(st.lower_bound(r % 50000));
        mm.emplace(r % 1000, words[r % words.size()]);
    }
    for (auto &p : dq) h.str(*p);
    for (auto &v : lst) h.num(std::accumulate(v.begin(), v.end(), std::uint64_t{0}));
    for (auto v : st) h.num(v);
    h.num(mm.size());
    h.str(mm.lower_bound(500)->second);

    std::unordered_set<std::string> uniq(words.begin(), words.end());
    h.num(uniq.size());
    std::vector<std::shared_ptr<std::vector<int>>> shared;
    for (int i = 0; i < 2000; ++i) {
        auto v = std::make_shared<std::vector<int>>(static_cast<std::size_t>(i % 300), i);
        shared.push_back(v);
        shared.push_back(v);  // two owners; freed when the last goes
    }
    shared.erase(shared.begin(), shared.begin() + 1000);
    long total = 0;
    for (auto &p : shared) total += static_cast<long>(p->size()) * p.use_count();
    h.num(static_cast<std::uint64_t>(total));
    std::ostringstream os;
    for (int i = 0; i < 5000; ++i) os << words[static_cast<std::size_t>(i)] << ':' << i << ';';
    h.str(os.str());
    std::function<std::string(int)> f = [&words](int i) { return words[static_cast<std::size_t>(i)] + "!"; };
    for (int i = 0; i < 1000; ++i) h.str(f(i));
    return h.h;
}

// Threads: each runs the container workload; results are checked against a single-thread
// run. A producer/consumer pair moves ownership of heap vectors between threads, so blocks
// are freed by threads that did not allocate them.
static void threads_part() {
    std::vector<std::uint64_t> expected;
    for (int t = 0; t < 4; ++t) expected.push_back(containers(t));

    std::vector<std::uint64_t> got(4);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) ts.emplace_back([t, &got] { got[static_cast<std::size_t>(t)] = containers(t); });
    for (auto &t : ts) t.join();
    expect(got == expected, "threaded container results match the single-threaded ones");

    std::vector<std::future<std::uint64_t>> futs;
    for (int t = 0; t < 4; ++t) futs.push_back(std::async(std::launch::async, containers, t));
    for (int t = 0; t < 4; ++t) expect(futs[static_cast<std::size_t>(t)].get() == expected[static_cast<std::size_t>(t)], "std::async result");

    std::mutex m;
    std::condition_variable cv;
    std::queue<std::unique_ptr<std::vector<std::uint64_t>>> q;
    bool done = false;
    std::uint64_t consumed = 0;
    std::thread consumer([&] {
        for (;;) {
            std::unique_lock<std::mutex> lk(m);
            cv.wait(lk, [&] { return !q.empty() || done; });
            if (q.empty()) return;
            auto v = std::move(q.front());
            q.pop();
            lk.unlock();
            consumed += std::accumulate(v->begin(), v->end(), std::uint64_t{0});
        }  // v freed here, on the consumer thread
    });
    std::uint64_t produced = 0;
    for (std::uint64_t i = 0; i < 20000; ++i) {
        auto v = std::make_unique<std::vector<std::uint64_t>>(1 + i % 700, i);
        produced += v->size() * i;
        {
            std::lock_guard<std::mutex> lk(m);
            q.push(std::move(v));
        }
        cv.notify_one();
    }
    {
        std::lock_guard<std::mutex> lk(m);
        done = true;
    }
    cv.notify_one();
    consumer.join();
    expect(consumed == produced, "producer/consumer totals");
    Hash h;
    for (auto v : expected) h.num(v);
    h.num(consumed);
    std::printf("threads %016llx\n", static_cast<unsigned long long>(h.h));
}

struct Failure : std::runtime_error {
    std::vector<int> payload;
    explicit Failure(int depth)
        : std::runtime_error("failure at depth " + std::to_string(depth) + std::string(64, '.')),
          payload(static_cast<std::size_t>(depth) * 10, depth) {}
};

static int recurse(int depth, int limit) {
    std::vector<std::string> frame(3, std::string(static_cast<std::size_t>(depth) + 20, 'f'));
    if (depth == limit) throw Failure(depth);
    return recurse(depth + 1, limit) + static_cast<int>(frame.size());
}

static void exceptions_part() {
    long caught = 0, payload = 0;
    for (int i = 0; i < 3000; ++i) {
        try {
            recurse(0, i % 40);
        } catch (const Failure &e) {
            ++caught;
            payload += std::accumulate(e.payload.begin(), e.payload.end(), 0L);
            payload += static_cast<long>(std::string(e.what()).size());
        }
    }
    expect(caught == 3000, "every exception caught");

    // Exceptions carried across threads.
    std::vector<std::exception_ptr> eps(8);
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([t, &eps] {
            try {
                recurse(0, t + 5);
            } catch (...) {
                eps[static_cast<std::size_t>(t)] = std::current_exception();
            }
        });
    for (auto &t : ts) t.join();
    int rethrown = 0;
    for (auto &ep : eps) {
        try {
            std::rethrow_exception(ep);
        } catch (const Failure &e) {
            rethrown += static_cast<int>(e.payload.size());
        }
    }
    expect(rethrown == 10 * (5 + 6 + 7 + 8 + 9 + 10 + 11 + 12), "exceptions rethrown from other threads");

    // A failing operator new must throw bad_alloc (malloc returns NULL), nothrow new NULL.
    bool bad_alloc_thrown = false;
    try {
        volatile std::size_t huge = static_cast<std::size_t>(-1) / 2;
        char *p = new char[huge];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        bad_alloc_thrown = true;
    }
    expect(bad_alloc_thrown, "new of a huge array throws bad_alloc");
    volatile std::size_t huge = static_cast<std::size_t>(-1) / 4;
    char *np = new (std::nothrow) char[huge];
    expect(np == nullptr, "nothrow new of a huge array is nullptr");
    delete[] np;
    bool length_error = false;
    try {
        std::vector<long> v;
        v.reserve(v.max_size() + 1);
    } catch (const std::length_error &) {
        length_error = true;
    }
    expect(length_error, "vector::reserve beyond max_size throws length_error");
    std::printf("exceptions caught=%ld payload=%ld rethrown=%d\n", caught, payload, rethrown);
}

struct alignas(64) CacheLine {
    std::uint64_t v[8];
};
struct alignas(256) Wide {
    char bytes[300];
};
struct alignas(4096) PageSized {
    int x;
};

template <class T>
static bool aligned(const T *p) {
    return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

static void aligned_part() {
    bool ok = true;
    std::uint64_t sum = 0;
    for (int round = 0; round < 200; ++round) {
        auto *c = new CacheLine[static_cast<std::size_t>(round % 17 + 1)];
        auto *w = new Wide();
        auto *pg = new PageSized{round};
        ok = ok && aligned(c) && aligned(w) && aligned(pg);
        c[0].v[0] = static_cast<std::uint64_t>(round);
        sum += c[0].v[0] + static_cast<std::uint64_t>(pg->x);
        delete[] c;
        delete w;
        delete pg;
    }
    std::vector<Wide> wides(100);
    ok = ok && aligned(wides.data());
    wides.resize(1000);  // reallocation keeps the alignment
    ok = ok && aligned(wides.data());
    std::vector<std::unique_ptr<CacheLine>> lines;
    for (int i = 0; i < 5000; ++i) lines.push_back(std::make_unique<CacheLine>());
    for (auto &l : lines) ok = ok && aligned(l.get());
    lines.clear();
    // Explicit alignments up to 2 MiB through the align_val_t operators, sized delete too.
    for (std::size_t a = 16; a <= (std::size_t{1} << 21); a *= 2) {
        void *p = ::operator new(a * 3, std::align_val_t(a));
        ok = ok && reinterpret_cast<std::uintptr_t>(p) % a == 0;
        static_cast<char *>(p)[a * 3 - 1] = 1;
        ::operator delete(p, a * 3, std::align_val_t(a));
        void *q = ::operator new[](a, std::align_val_t(a), std::nothrow);
        ok = ok && q && reinterpret_cast<std::uintptr_t>(q) % a == 0;
        ::operator delete[](q, std::align_val_t(a));
    }
    expect(ok, "over-aligned new honours every alignment");
    std::printf("aligned ok=%d sum=%llu\n", ok ? 1 : 0, static_cast<unsigned long long>(sum));
}

int main() {
    std::printf("containers %016llx\n", static_cast<unsigned long long>(containers(42)));
    threads_part();
    exceptions_part();
    aligned_part();
    std::printf("%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
