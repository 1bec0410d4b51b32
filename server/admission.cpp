#include "admission.hpp"

#include "log.hpp"
#include "session.hpp"

namespace tcpd {
namespace {

bool v4_mapped(const IpKey& k) {
  for (int i = 0; i < 10; ++i) {
    if (k[i] != 0) return false;
  }
  return k[10] == 0xff && k[11] == 0xff;
}

std::size_t quiet_slot(Outcome why) {
  return why == Outcome::bad_header ? 0 : why == Outcome::denied ? 1 : 2;
}

}  // namespace

IpKey client_group(const PeerAddress& p) {
  const IpKey k = ip_key(&p.addr.sa);
  // Providers hand a customer a /64: one client's addresses differ only in the last 64 bits.
  return v4_mapped(k) ? k : masked(k, 64);
}

Admission::Admission(const ServerConfig& cfg)
    : cfg_(cfg),
      active_((cfg.allow && !cfg.allow->empty()) || (cfg.deny && !cfg.deny->empty()) ||
              cfg.max_conns_per_client > 0) {}

bool Admission::trusted_proxy(const PeerAddress& p) const {
  return cfg_.proxy_from && cfg_.proxy_from->contains(&p.addr.sa);
}

Admission::Verdict Admission::admit(Session& s) {
  if (!active_) return Verdict::ok;
  const IpKey k = ip_key(&s.peer.addr.sa);
  if (cfg_.deny && cfg_.deny->contains(k)) return Verdict::denied;
  if (cfg_.allow && !cfg_.allow->empty() && !cfg_.allow->contains(k)) return Verdict::denied;
  if (cfg_.max_conns_per_client == 0) return Verdict::ok;
  const IpKey group = client_group(s.peer);
  const std::lock_guard lock(mu_);
  uint32_t& n = open_[group];
  if (n >= cfg_.max_conns_per_client) {
    if (n == 0) open_.erase(group);
    return Verdict::limited;
  }
  ++n;
  s.client_counted = true;
  return Verdict::ok;
}

void Admission::release(Session& s) {
  if (!s.client_counted) return;
  s.client_counted = false;
  const IpKey group = client_group(s.peer);
  const std::lock_guard lock(mu_);
  auto it = open_.find(group);
  if (it == open_.end()) return;
  // The table holds only clients with open connections: memory follows open connections.
  if (--it->second == 0) open_.erase(it);
}

std::size_t Admission::tracked() const {
  const std::lock_guard lock(mu_);
  return open_.size();
}

void Admission::log_refusal(Outcome why, const PeerAddress& peer, std::string_view detail) {
  if (cfg_.log_level < LogLevel::info || !log_enabled(LogLevel::info)) return;
  uint64_t unlogged = 0;
  {
    const std::lock_guard lock(log_mu_);
    Quiet& q = quiet_[quiet_slot(why)];
    const auto now = Clock::now();
    if (now - q.last < std::chrono::seconds(1)) {
      ++q.unlogged;
      return;
    }
    q.last = now;
    unlogged = std::exchange(q.unlogged, 0);
  }
  const std::string more =
      unlogged > 0 ? fmt::format(" ({} more {} since the last line)", unlogged, outcome_name(why))
                   : std::string();
  log_at(LogLevel::info, "{} {}{}{}{}", peer.str(), outcome_name(why), detail.empty() ? "" : ": ",
         detail, more);
}

}  // namespace tcpd
