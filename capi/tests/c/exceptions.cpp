/* C++ exceptions under pinalloc: the library links its own unwinder statically (see
 * capi/build.rs), hidden, so the program's exceptions must still go through libgcc_s's.
 * Two threads throw through frames that own allocations (strings, vectors), catch, and
 * hand exceptions to each other with exception_ptr. Prints "ok" and exits 0. */
#include <dlfcn.h>

#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::size_t depth_sum(int depth, std::size_t length) {
    std::vector<std::string> owned(4, std::string(length, 'p'));
    if (depth == 0) throw std::runtime_error(std::string(length, 'x'));
    return depth_sum(depth - 1, length + 1) + owned.size();
}

int main() {
    if (dlsym(RTLD_DEFAULT, "pinalloc_stats") == nullptr) {
        std::fprintf(stderr, "pinalloc is not loaded\n");
        return 1;
    }
    std::mutex lock;
    std::vector<std::exception_ptr> handed;
    long caught[2] = {0, 0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; t++) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; i++) {
                try {
                    depth_sum(1 + i % 24, 16 + i % 300);
                } catch (const std::runtime_error &e) {
                    std::string what = e.what();
                    if (what.size() >= 16 && what.find_first_not_of('x') == std::string::npos) caught[t]++;
                    if (i % 100 == 0) {
                        std::lock_guard<std::mutex> guard(lock);
                        handed.push_back(std::current_exception());
                    }
                }
            }
        });
    }
    for (auto &thread : threads) thread.join();
    std::size_t rethrown = 0;
    for (auto &exception : handed) {
        try {
            std::rethrow_exception(exception);
        } catch (const std::runtime_error &) {
            rethrown++;
        }
    }
    if (caught[0] != 2000 || caught[1] != 2000 || rethrown != handed.size() || rethrown != 40) {
        std::fprintf(stderr, "caught %ld and %ld, rethrown %zu of %zu\n", caught[0], caught[1], rethrown,
                     handed.size());
        return 1;
    }
    std::puts("ok");
    return 0;
}
