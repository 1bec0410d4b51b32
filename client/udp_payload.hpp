#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tcpd {

// What tcpc puts at the front of each load-mode datagram, so that an echoed reply says which
// datagram it answers and when that was due and sent: a tag, the socket's number in the run, a
// sequence number per socket, and two monotonic-clock times in ns. Host byte order: only the
// tcpc that sent it reads it back.
struct UdpStamp {
  uint32_t socket = 0;
  uint64_t seq = 0;
  int64_t due_ns = 0;   // when the schedule wanted it sent (open loop); the send time otherwise
  int64_t sent_ns = 0;  // when it was sent

  static constexpr uint32_t kTag = 0x74637075;  // "tcpu"
  static constexpr std::size_t kSize = 4 + 4 + 8 + 8 + 8;

  // Writes the stamp over the front of `datagram` (at least kSize bytes).
  void write(char* datagram) const {
    std::memcpy(datagram, &kTag, 4);
    std::memcpy(datagram + 4, &socket, 4);
    std::memcpy(datagram + 8, &seq, 8);
    std::memcpy(datagram + 16, &due_ns, 8);
    std::memcpy(datagram + 24, &sent_ns, 8);
  }
  // The stamp of an echoed datagram; nothing for any other reply (a greeting).
  static std::optional<UdpStamp> read(std::string_view datagram) {
    if (datagram.size() < kSize) return std::nullopt;
    uint32_t tag = 0;
    std::memcpy(&tag, datagram.data(), 4);
    if (tag != kTag) return std::nullopt;
    UdpStamp s;
    std::memcpy(&s.socket, datagram.data() + 4, 4);
    std::memcpy(&s.seq, datagram.data() + 8, 8);
    std::memcpy(&s.due_ns, datagram.data() + 16, 8);
    std::memcpy(&s.sent_ns, datagram.data() + 24, 8);
    return s;
  }
};

// Which sequence numbers of one socket have come back, over a window behind the highest: tells a
// duplicate from a first arrival, and a late (reordered) one from one in order. An arrival
// older than the window is counted as reordered and cannot be told from a duplicate.
class SeqWindow {
 public:
  static constexpr uint64_t kWindow = 4096;
  enum class Arrival { in_order, reordered, duplicate, too_old };

  Arrival arrive(uint64_t seq) {
    if (!any_ || seq > highest_) {
      // Clear the bits of the numbers skipped over: they are free for their own arrival.
      const uint64_t from = any_ ? highest_ + 1 : seq;
      for (uint64_t s = from; s < seq && s - from < kWindow; ++s) clear(s);
      any_ = true;
      highest_ = seq;
      set(seq);
      return Arrival::in_order;
    }
    if (highest_ - seq >= kWindow) return Arrival::too_old;
    if (test(seq)) return Arrival::duplicate;
    set(seq);
    return Arrival::reordered;
  }

 private:
  void set(uint64_t s) { bits_[(s % kWindow) / 64] |= uint64_t{1} << (s % 64); }
  void clear(uint64_t s) { bits_[(s % kWindow) / 64] &= ~(uint64_t{1} << (s % 64)); }
  [[nodiscard]] bool test(uint64_t s) const {
    return (bits_[(s % kWindow) / 64] >> (s % 64) & 1) != 0;
  }
  uint64_t bits_[kWindow / 64] = {};
  uint64_t highest_ = 0;
  bool any_ = false;
};

}  // namespace tcpd
