#include "hlog.hpp"

#include <fmt/format.h>

#include <bit>
#include <ctime>
#include <vector>

namespace tcpd {
namespace {

constexpr uint32_t kV2Cookie = 0x1c849303 | 0x10;
constexpr uint32_t kV2CompressedCookie = 0x1c849304 | 0x10;
// 3 significant digits: 2048 sub-buckets, half of them (1024) per bucket after the first.
constexpr int kDigits = 3;
constexpr unsigned kHalfMagnitude = 10;
constexpr uint64_t kSubBucketMask = 2047;
constexpr uint64_t kHighest = uint64_t{1} << 40;  // the Histogram's own limit
constexpr std::size_t kStoredBlock = 65535;

// HdrHistogram's counts-array index of `value` (lowest discernible value 1).
std::size_t hdr_index(uint64_t value) {
  const auto bucket =
      static_cast<unsigned>(63 - std::countl_zero(value | kSubBucketMask)) - kHalfMagnitude;
  const uint64_t sub = value >> bucket;
  return (std::size_t{bucket + 1} << kHalfMagnitude) + (sub - (uint64_t{1} << kHalfMagnitude));
}

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// ZigZag, then LEB128: HdrHistogram's word encoding (for the values here, never past 9 bytes).
void put_zigzag(std::string& out, int64_t v) {
  auto u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (u >= 0x80) {
    out += static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  out += static_cast<char>(u);
}

// The counts, a run of zeros written as its negated length.
std::string payload(const Histogram& h) {
  std::vector<uint64_t> counts;
  h.for_each([&](uint64_t value, uint64_t count) {
    const std::size_t i = hdr_index(value);
    if (counts.size() <= i) counts.resize(i + 1, 0);
    counts[i] += count;
  });
  std::string out;
  for (std::size_t i = 0; i < counts.size();) {
    if (counts[i] != 0) {
      put_zigzag(out, static_cast<int64_t>(counts[i++]));
      continue;
    }
    std::size_t zeros = 0;
    while (i < counts.size() && counts[i] == 0) {
      ++zeros;
      ++i;
    }
    put_zigzag(out, zeros == 1 ? 0 : -static_cast<int64_t>(zeros));
  }
  return out;
}

std::string zlib_stored(const std::string& data) {
  std::string out = "\x78\x01";
  std::size_t at = 0;
  do {
    const std::size_t n = std::min(kStoredBlock, data.size() - at);
    out += static_cast<char>(at + n == data.size() ? 1 : 0);  // BFINAL, BTYPE 00 (stored)
    const auto len = static_cast<uint16_t>(n);
    const auto nlen = static_cast<uint16_t>(~len);
    out += static_cast<char>(len & 0xff);
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(nlen & 0xff);
    out += static_cast<char>(nlen >> 8);
    out.append(data, at, n);
    at += n;
  } while (at < data.size());
  uint32_t a = 1;
  uint32_t b = 0;
  for (unsigned char c : data) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(out, (b << 16) | a);
  return out;
}

}  // namespace

std::string base64(const std::string& bytes) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kTable[(v >> k) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (i + 1 < bytes.size()) v |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kTable[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string hdr_compressed_v2(const Histogram& h) {
  const std::string counts = payload(h);
  std::string plain;
  put_be32(plain, kV2Cookie);
  put_be32(plain, static_cast<uint32_t>(counts.size()));
  put_be32(plain, 0);  // normalizing index offset
  put_be32(plain, kDigits);
  put_be64(plain, 1);  // lowest discernible value
  put_be64(plain, kHighest);
  put_be64(plain, std::bit_cast<uint64_t>(1.0));  // integer-to-double conversion ratio
  plain += counts;
  const std::string z = zlib_stored(plain);
  std::string out;
  put_be32(out, kV2CompressedCookie);
  put_be32(out, static_cast<uint32_t>(z.size()));
  return out + z;
}

std::string hlog_header(std::chrono::system_clock::time_point start) {
  const double s = std::chrono::duration<double>(start.time_since_epoch()).count();
  const time_t secs = std::chrono::system_clock::to_time_t(start);
  tm utc{};
  ::gmtime_r(&secs, &utc);
  char when[64];
  std::strftime(when, sizeof when, "%a %b %d %H:%M:%S UTC %Y", &utc);
  return fmt::format(
      "#[Written by tcpc: latency of successful requests, values in microseconds]\n"
      "#[Histogram log format version 1.3]\n"
      "#[StartTime: {:.3f} (seconds since epoch), {}]\n"
      "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
      s, when);
}

std::string hlog_line(double start_s, double length_s, const Histogram& h) {
  // Interval_Max in milliseconds: the values (µs) over 1000, HistogramLogWriter's convention of
  // a max in the unit above the recorded one.
  return fmt::format("{:.3f},{:.3f},{:.3f},{}\n", start_s, length_s,
                     static_cast<double>(h.max()) / 1000.0, base64(hdr_compressed_v2(h)));
}

}  // namespace tcpd
