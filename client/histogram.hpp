#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tcpd {

// Log-linear latency histogram in microseconds (HdrHistogram's layout, simplified): exact below
// 1024 µs, then 512 buckets per power of two, so any recorded value is off by at most 0.2%
// (three significant digits). Fixed memory (~115 KiB) whatever the number of samples.
class Histogram {
 public:
  Histogram();
  void record(uint64_t micros);
  // `n` samples of `micros` at once (reading a histogram back from its JSON buckets).
  void record_n(uint64_t micros, uint64_t n);
  void merge(const Histogram& other);
  // Replaces the exact moments, which bucket values only approximate, with ones saved with the
  // buckets: min, max, the sum and the sum of squares of the samples.
  void set_moments(uint64_t min, uint64_t max, uint64_t sum, double sum_squares);

  [[nodiscard]] uint64_t count() const { return count_; }
  [[nodiscard]] uint64_t max() const { return max_; }
  [[nodiscard]] uint64_t min() const { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] double mean() const {
    return count_ == 0 ? 0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }
  [[nodiscard]] double stddev() const;
  [[nodiscard]] uint64_t sum() const { return sum_; }
  [[nodiscard]] double sum_squares() const { return sum_squares_; }
  // The value at quantile q (0..1): the smallest bucket value with at least q of the samples at
  // or below it. 0 when empty.
  [[nodiscard]] uint64_t percentile(double q) const;

  // Calls f(value, count) for every non-empty bucket, lowest first (value: the bucket's highest).
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      if (buckets_[i] != 0) f(std::min(highest_of(i), max_), buckets_[i]);
    }
  }

  static std::size_t index_of(uint64_t micros);
  static uint64_t lowest_of(std::size_t index);
  static uint64_t highest_of(std::size_t index);

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t sum_ = 0;
  double sum_squares_ = 0;
};

}  // namespace tcpd
