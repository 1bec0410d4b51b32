#include "line_framer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace tcpd {

char* LineFramer::prepare(std::size_t min_free) {
  if (begin_ == end_) begin_ = scanned_ = end_ = 0;
  if (cap_ - end_ < min_free) {
    // Slide the pending bytes to the front before growing: a long session then reuses one
    // buffer instead of creeping forward.
    if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      scanned_ -= begin_;
      end_ -= begin_;
      begin_ = 0;
    }
    if (cap_ - end_ < min_free) {
      // Doubling stops at what one request can need (max_ plus "\r\n", and the read under
      // way): with the default --max-message a buffer stays below glibc's mmap threshold
      // (128 KiB), so that thousands of them freed at once are not thousands of munmap()s,
      // each a TLB shootdown across the server's threads.
      const std::size_t cap = std::max(end_ + min_free, std::min(cap_ * 2, max_ + 2 + min_free));
      std::unique_ptr<char[]> bigger(new char[cap]);  // uninitialised on purpose
      if (end_ > 0) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ = cap;
    }
  }
  return buf_.get() + end_;
}

void LineFramer::append(std::string_view bytes) {
  std::memcpy(prepare(bytes.size()), bytes.data(), bytes.size());
  commit(bytes.size());
}

LineFramer::Next LineFramer::next() {
  const char* base = buf_.get();
  const void* nl = scanned_ < end_ ? std::memchr(base + scanned_, '\n', end_ - scanned_) : nullptr;
  if (nl == nullptr) {
    scanned_ = end_;
    const std::size_t pending = end_ - begin_;
    // max_ bytes plus a '\r' that may still be followed by '\n'.
    if (pending > max_ + 1 || (pending == max_ + 1 && base[end_ - 1] != '\r')) {
      return {Status::too_long, {}};
    }
    return {Status::need_more, {}};
  }
  const auto at = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
  std::size_t len = at - begin_;
  if (len > 0 && base[at - 1] == '\r') --len;
  std::string_view line(base + begin_, len);
  begin_ = scanned_ = at + 1;
  if (len > max_) return {Status::too_long, {}};
  return {Status::line, line};
}

void LineFramer::release_if_empty() {
  if (begin_ == end_) {
    buf_.reset();
    cap_ = 0;
    begin_ = scanned_ = end_ = 0;
  }
}

void LineFramer::borrow(Buffer& b) {
  if (buf_ || !b.bytes) return;
  buf_ = std::move(b.bytes);
  cap_ = std::exchange(b.cap, 0);
  begin_ = scanned_ = end_ = 0;
}

void LineFramer::give_back(Buffer& b, std::size_t max_cap) {
  if (begin_ != end_ || !buf_ || b.bytes || cap_ > max_cap) return;
  b.bytes = std::move(buf_);
  b.cap = std::exchange(cap_, 0);
  begin_ = scanned_ = end_ = 0;
}

}  // namespace tcpd
