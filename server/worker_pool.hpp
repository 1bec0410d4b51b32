#pragma once

#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace tcpd {

// A fixed set of std::threads, each running `body(index)` until it returns. Sized once; never
// grows. join() waits for all of them.
class WorkerPool {
 public:
  WorkerPool() = default;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() { join(); }

  // Starts `count` threads. When one cannot be created (RLIMIT_NPROC, RLIMIT_AS), calls
  // `release` — which must make the bodies already running return — joins them, and throws
  // std::system_error "cannot start <count> workers: <errno text>". Joining a body that never
  // returns would hang the caller for good, which is why `release` is not optional.
  void start(unsigned count, const std::function<void(unsigned)>& body,
             const std::function<void()>& release) {
    threads_.reserve(count);
    try {
      for (unsigned i = 0; i < count; ++i) threads_.emplace_back(body, i);
    } catch (const std::system_error& e) {
      release();
      join();
      throw std::system_error(e.code(), "cannot start " + std::to_string(count) + " workers");
    }
  }

  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  [[nodiscard]] std::size_t size() const { return threads_.size(); }

 private:
  std::vector<std::thread> threads_;
};

}  // namespace tcpd
