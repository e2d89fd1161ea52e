// The standard library at work: strings, vectors, maps, shared and unique pointers,
// exceptions thrown and caught (their objects come from __cxa_allocate_exception),
// iostreams, std::function.
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

struct Node {
    std::string name;
    std::vector<std::shared_ptr<Node>> children;
    std::weak_ptr<Node> parent;
};

static int parse(const std::string &s) {
    if (s.empty()) throw std::invalid_argument("empty input: " + std::string(200, 'e'));
    return std::stoi(s);
}

int main() {
    std::map<std::string, std::vector<int>> index;
    std::unordered_map<int, std::unique_ptr<std::string>> names;
    for (int i = 0; i < 20000; i++) {
        index["key" + std::to_string(i % 500)].push_back(i);
        names[i % 3000] = std::make_unique<std::string>(std::to_string(i) + std::string(i % 64, 'n'));
    }
    auto root = std::make_shared<Node>();
    root->name = "root";
    for (int i = 0; i < 100; i++) {
        auto child = std::make_shared<Node>();
        child->name = "child" + std::to_string(i);
        child->parent = root;
        root->children.push_back(child);
    }
    int errors = 0;
    for (const char *s : {"1", "", "42", ""}) {
        try {
            parse(s);
        } catch (const std::exception &e) {
            errors += e.what()[0] == 'e';
        }
    }
    std::function<long(long)> f = [&](long n) { return n < 2 ? n : f(n - 1) + f(n - 2); };
    std::ostringstream out;
    out << "keys " << index.size() << " names " << names.size() << " children "
        << root->children.size() << " errors " << errors << " fib " << f(15);
    std::cout << out.str() << std::endl;
    return errors == 2 ? 0 : 1;
}
