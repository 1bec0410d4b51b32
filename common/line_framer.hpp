#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace tcpd {

// Splits a byte stream into requests: the bytes up to each '\n', with one '\r' just before it
// dropped. Binary-safe: NUL and any other byte are ordinary request bytes.
class LineFramer {
 public:
  enum class Status { need_more, line, too_long };
  struct Next {
    Status status;
    std::string_view line;  // valid until the next call that changes the framer
  };

  explicit LineFramer(std::size_t max_message) : max_(max_message) {}

  // Room for at least `min_free` bytes to be received into; follow with commit().
  char* prepare(std::size_t min_free);
  void commit(std::size_t n) { end_ += n; }
  void append(std::string_view bytes);

  // The next complete request, if any. too_long once the pending request can no longer fit in
  // max_message bytes (the '\r\n' does not count), even before its newline arrives.
  Next next();

  // Bytes received that do not yet end in a newline.
  [[nodiscard]] std::string_view pending() const { return {buf_.get() + begin_, end_ - begin_}; }
  [[nodiscard]] bool empty() const { return begin_ == end_; }
  [[nodiscard]] std::size_t capacity() const { return cap_; }
  // Drops the pending bytes (they were answered some other way); the buffer stays.
  void clear() { begin_ = scanned_ = end_ = 0; }
  // Drops the first `n` pending bytes (a PROXY header read from the front of the stream).
  void consume(std::size_t n) {
    begin_ += n;
    scanned_ = begin_;
    if (begin_ == end_) clear();
  }
  void release_if_empty();

  // A receive buffer that outlives the framers it serves: a worker's, lent to each session it
  // serves so that a request costs no allocation while idle sessions hold no buffer.
  struct Buffer {
    std::unique_ptr<char[]> bytes;
    std::size_t cap = 0;
  };
  // A framer with no buffer of its own takes `b`'s (when it has one).
  void borrow(Buffer& b);
  // An empty framer gives its buffer to `b` (when `b` has none and it is at most `max_cap`
  // bytes: one long request must not leave its worker holding that much); else it keeps it.
  void give_back(Buffer& b, std::size_t max_cap);

 private:
  std::size_t max_;
  // Not a vector: growing one zero-fills, a cost paid on every connection for bytes recv()
  // overwrites anyway.
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;    // first byte of the pending request
  std::size_t scanned_ = 0;  // bytes before this are known to hold no '\n'
  std::size_t end_ = 0;      // one past the last received byte
};

}  // namespace tcpd
