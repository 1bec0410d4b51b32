#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tcpd {
namespace {

constexpr unsigned kLinearBits = 10;  // values below 1024 are exact
constexpr unsigned kSubBits = 9;      // 512 buckets per octave above that
constexpr unsigned kMaxExp = 40;      // up to 2^40 µs (12 days): anything longer saturates
constexpr std::size_t kLinear = std::size_t{1} << kLinearBits;
constexpr std::size_t kPerOctave = std::size_t{1} << kSubBits;
constexpr std::size_t kBuckets = kLinear + (kMaxExp - kLinearBits) * kPerOctave;

}  // namespace

Histogram::Histogram() : buckets_(kBuckets, 0) {}

std::size_t Histogram::index_of(uint64_t v) {
  if (v < kLinear) return static_cast<std::size_t>(v);
  const unsigned e =
      std::min<unsigned>(63U - static_cast<unsigned>(std::countl_zero(v)), kMaxExp - 1);
  const uint64_t clamped = std::min<uint64_t>(v, (uint64_t{1} << (e + 1)) - 1);
  const auto sub = static_cast<std::size_t>(clamped >> (e - kSubBits)) - kPerOctave;
  return kLinear + (e - kLinearBits) * kPerOctave + sub;
}

uint64_t Histogram::lowest_of(std::size_t index) {
  if (index < kLinear) return index;
  const std::size_t k = index - kLinear;
  const unsigned e = static_cast<unsigned>(k / kPerOctave) + kLinearBits;
  const uint64_t sub = (k % kPerOctave) + kPerOctave;
  return sub << (e - kSubBits);
}

uint64_t Histogram::highest_of(std::size_t index) {
  if (index < kLinear) return index;
  const std::size_t k = index - kLinear;
  const unsigned e = static_cast<unsigned>(k / kPerOctave) + kLinearBits;
  return lowest_of(index) + (uint64_t{1} << (e - kSubBits)) - 1;
}

void Histogram::record(uint64_t micros) {
  ++buckets_[index_of(micros)];
  ++count_;
  max_ = std::max(max_, micros);
  min_ = std::min(min_, micros);
  sum_ += micros;
  sum_squares_ += static_cast<double>(micros) * static_cast<double>(micros);
}

void Histogram::record_n(uint64_t micros, uint64_t n) {
  if (n == 0) return;
  buckets_[index_of(micros)] += n;
  count_ += n;
  max_ = std::max(max_, micros);
  min_ = std::min(min_, micros);
  sum_ += micros * n;
  sum_squares_ +=
      static_cast<double>(micros) * static_cast<double>(micros) * static_cast<double>(n);
}

void Histogram::set_moments(uint64_t min, uint64_t max, uint64_t sum, double sum_squares) {
  if (count_ == 0) return;
  min_ = min;
  max_ = max;
  sum_ = sum;
  sum_squares_ = sum_squares;
}

double Histogram::stddev() const {
  if (count_ == 0) return 0;
  const double m = mean();
  return std::sqrt(std::max(0.0, sum_squares_ / static_cast<double>(count_) - m * m));
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
  sum_ += other.sum_;
  sum_squares_ += other.sum_squares_;
}

uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The small allowance keeps q = 99.9 / 100 (0.99900000000000011) from asking for one sample
  // more than q = 0.999 does.
  const auto rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_) - 1e-9)));
  uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    // Report the bucket's top, but never more than the largest value actually seen.
    if (seen >= rank) return std::min(highest_of(i), max_);
  }
  return max_;
}

}  // namespace tcpd
