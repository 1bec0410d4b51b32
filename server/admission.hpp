#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "cidr.hpp"
#include "clock.hpp"
#include "server_config.hpp"
#include "socket.hpp"
#include "stats.hpp"

namespace tcpd {

struct Session;

// Who may be served, applied to the client's address (the PROXY header's when there is one):
// --deny always wins; with --allow only matching clients are served; then at most
// --max-conns-per-client open connections per client (an IPv6 client is its /64). Safe from
// any thread.
class Admission {
 public:
  explicit Admission(const ServerConfig& cfg);

  enum class Verdict { ok, denied, limited };
  // For a session whose client address is known: the lists, then its place under the limit,
  // which it holds (Session::client_counted) until release().
  Verdict admit(Session& s);
  void release(Session& s);
  // --proxy-from: whether this connection may send a PROXY header.
  [[nodiscard]] bool trusted_proxy(const PeerAddress& p) const;
  // Whether anything here applies at all (no lists, no limit: admit() is not needed).
  [[nodiscard]] bool active() const { return active_; }
  // Clients with open connections counted against the limit.
  [[nodiscard]] std::size_t tracked() const;

  // The log line for a connection turned away (bad_header, denied, limited): at info, at most
  // one a second per reason, saying how many were not logged since.
  void log_refusal(Outcome why, const PeerAddress& peer, std::string_view detail = {});

 private:
  const ServerConfig& cfg_;
  bool active_;
  mutable std::mutex mu_;
  std::unordered_map<IpKey, uint32_t, IpKeyHash> open_;
  struct Quiet {
    Clock::time_point last{};
    uint64_t unlogged = 0;
  };
  std::mutex log_mu_;
  std::array<Quiet, 3> quiet_{};
};

// The key a client's connections are counted under: its address, an IPv6 one cut to its /64.
IpKey client_group(const PeerAddress& p);

}  // namespace tcpd
