#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tcpd {

// A request with placeholders, filled in for each request sent:
//   {conn}    the connection's number, 0 to --concurrency - 1
//   {seq}     the request's number in the run, unique across connections and threads
//   {rand:N}  N random characters from [a-z0-9] (N from 1 to 65536)
//   {{ and }} a literal brace
// Any other {...} is an error, so that a typo is not sent as text.
class MessageTemplate {
 public:
  // The template, or why `text` is not one.
  static std::variant<MessageTemplate, std::string> parse(std::string_view text);

  // Appends the request for connection `conn`, request `seq`, to `out`; `rng` is the caller's
  // generator state (any non-zero seed).
  void render(uint64_t conn, uint64_t seq, uint64_t& rng, std::string& out) const;

  // True when the text has no placeholder: every request is the same.
  [[nodiscard]] bool literal() const {
    return parts_.size() <= 1 && (parts_.empty() || parts_[0].kind == Kind::text);
  }

 private:
  enum class Kind : uint8_t { text, conn, seq, rand };
  struct Part {
    Kind kind = Kind::text;
    std::string text;  // Kind::text
    uint32_t n = 0;    // Kind::rand
  };
  std::vector<Part> parts_;
};

}  // namespace tcpd
