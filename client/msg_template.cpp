#include "msg_template.hpp"

#include <fmt/format.h>

#include <charconv>

namespace tcpd {
namespace {

constexpr uint32_t kMaxRand = 65536;

// splitmix64: fast, and statistically good enough for filler bytes.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::variant<MessageTemplate, std::string> MessageTemplate::parse(std::string_view text) {
  MessageTemplate t;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back({Kind::text, std::move(literal), 0});
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      literal += c;
      ++i;
      continue;
    }
    if (c == '}') return std::string("a lone '}' (write }} for a literal brace)");
    if (c != '{') {
      literal += c;
      continue;
    }
    const std::size_t close = text.find('}', i);
    if (close == std::string_view::npos) {
      return std::string("a '{' without its '}' (write {{ for a literal brace)");
    }
    const std::string_view name = text.substr(i + 1, close - i - 1);
    Part p;
    if (name == "conn") {
      p.kind = Kind::conn;
    } else if (name == "seq") {
      p.kind = Kind::seq;
    } else if (name.substr(0, 5) == "rand:") {
      const std::string_view digits = name.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p.n);
      if (ec != std::errc() || end != digits.data() + digits.size() || p.n < 1 || p.n > kMaxRand) {
        return fmt::format("{{{}}}: N in {{rand:N}} must be from 1 to {}", name, kMaxRand);
      }
      p.kind = Kind::rand;
    } else {
      return fmt::format(
          "unknown placeholder {{{}}} (known: {{conn}}, {{seq}}, {{rand:N}}; "
          "{{{{ for a literal brace)",
          name);
    }
    flush();
    t.parts_.push_back(std::move(p));
    i = close;
  }
  flush();
  return t;
}

void MessageTemplate::render(uint64_t conn, uint64_t seq, uint64_t& rng, std::string& out) const {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (const Part& p : parts_) {
    switch (p.kind) {
      case Kind::text: out += p.text; break;
      case Kind::conn: fmt::format_to(std::back_inserter(out), "{}", conn); break;
      case Kind::seq: fmt::format_to(std::back_inserter(out), "{}", seq); break;
      case Kind::rand:
        for (uint32_t k = 0; k < p.n; ++k) out += kAlphabet[next_random(rng) % 36];
        break;
    }
  }
}

}  // namespace tcpd
