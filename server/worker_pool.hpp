#pragma once

#include <functional>
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

  void start(unsigned count, const std::function<void(unsigned)>& body) {
    threads_.reserve(count);
    for (unsigned i = 0; i < count; ++i) threads_.emplace_back(body, i);
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
