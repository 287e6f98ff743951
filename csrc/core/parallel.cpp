#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace ragkernels {
namespace {

int default_threads() {
  if (const char* env = std::getenv("RAGKERNELS_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{default_threads()};
  return n;
}

}  // namespace

int num_threads() { return thread_setting().load(); }

void set_num_threads(int n) {
  RK_CHECK_ARG(n >= 1, "set_num_threads: n must be >= 1, got ", n);
  thread_setting().store(n);
}

void parallel_for(int64_t begin, int64_t end,
                  const std::function<void(int64_t, int64_t)>& body, int64_t grain) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (chunks <= 1) {
    body(begin, end);
    return;
  }
  std::vector<std::exception_ptr> errors(chunks);
  std::vector<std::thread> workers;
  workers.reserve(chunks - 1);
  auto run_chunk = [&](int64_t c) {
    const int64_t lo = begin + n * c / chunks;
    const int64_t hi = begin + n * (c + 1) / chunks;
    try {
      body(lo, hi);
    } catch (...) {
      errors[c] = std::current_exception();
    }
  };
  for (int64_t c = 1; c < chunks; ++c) workers.emplace_back(run_chunk, c);
  run_chunk(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace ragkernels
