// The front door: PROXY protocol headers from a trusted balancer, --allow/--deny, and
// --max-conns-per-client, against real sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "net.hpp"
#include "proc_stat.hpp"
#include "process.hpp"
#include "scrape.hpp"
#include "socket.hpp"

using namespace testing_support;
using tcpd::Outcome;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(unsigned v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
}

std::string v1(const std::string& src, unsigned port = 5555) {
  const bool six = src.find(':') != std::string::npos;
  return "PROXY " + std::string(six ? "TCP6 " : "TCP4 ") + src + (six ? " ::1 " : " 127.0.0.1 ") +
         std::to_string(port) + " 12345\r\n";
}

std::string v2(const std::string& src, unsigned port = 4444) {
  if (src.find(':') == std::string::npos) {
    std::string b(8, '\0');
    ::inet_pton(AF_INET, src.c_str(), b.data());
    ::inet_pton(AF_INET, "127.0.0.1", b.data() + 4);
    b += be16(port) + be16(12345);
    return kSig + "\x21\x11" + be16(b.size()) + b;
  }
  std::string b(32, '\0');
  ::inet_pton(AF_INET6, src.c_str(), b.data());
  ::inet_pton(AF_INET6, "::1", b.data() + 16);
  b += be16(port) + be16(12345);
  return kSig + "\x21\x21" + be16(b.size()) + b;
}

const std::string kLocal = kSig + std::string("\x20\x00\x00\x00", 4);

std::shared_ptr<const tcpd::CidrSet> cidrs(const std::string& list) {
  auto s = std::make_shared<tcpd::CidrSet>();
  EXPECT_EQ(s->add_list(list), "");
  return s;
}

struct FrontDoor : ::testing::Test {
  tcpd::ServerConfig cfg = [] {
    tcpd::ServerConfig c = test_config();
    c.workers = 2;
    c.proxy_from = cidrs("127.0.0.0/8,::1/128");
    return c;
  }();
};

// Connected from `source` (a 127/8 address) to the server on 127.0.0.1.
Client connect_from(const std::string& source, int port) {
  tcpd::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &a.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Client();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return Client();
  return Client(std::move(fd));
}

// Served: a request gets its reply on a connection kept open.
bool served(Client& c, const std::string& first = "") {
  return c.valid() && c.send(first + "x\n") && c.line(5s) == "Hello from the server!\n";
}

// Closed without a byte of reply.
bool turned_away_silently(Client& c, const std::string& first) {
  if (!c.valid()) return false;
  c.send(first + "x\n");
  return c.closed_within(5s) && c.rest().empty();
}

tcpd::StatsSnapshot settled(InProcessServer& srv) {
  tcpd::StatsSnapshot s;
  EXPECT_TRUE(eventually([&] {
    s = srv.server().stats();
    return s.open() == 0;
  }));
  return s;
}

}  // namespace

TEST(ProxyProtocol, V1AndV2GiveTheRealClientInTheLogAndTheJsonLog) {
  for (const char* format : {"text", "json"}) {
    Tcpd srv({"--proxy-protocol", "--log-format", format});
    Client a = Client::connect(srv.port);
    ASSERT_TRUE(served(a, v1("192.0.2.7", 5555)));
    Client b = Client::connect(srv.port);
    ASSERT_TRUE(served(b, v2("2001:db8::1", 4444)));
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(served(c, v2("198.51.100.3", 7777)));
    a = Client();
    b = Client();
    c = Client();
    srv.proc->signal(SIGTERM);
    auto r = srv.proc->wait(15s);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (std::string(format) == "text") {
      EXPECT_NE(r.err.find("192.0.2.7:5555 closed: served"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("[2001:db8::1]:4444 closed: served"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("198.51.100.3:7777 closed: served"), std::string::npos) << r.err;
      continue;
    }
    std::vector<std::string> peers;
    nlohmann::json summary;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("peer")) peers.push_back(j["peer"]);
      if (j["msg"] == "summary") summary = j;
    }
    // The summary's counters are fields, named as the metrics name them.
    EXPECT_EQ(summary["accepted"], 3) << r.err;
    EXPECT_EQ(summary["open"], 0) << r.err;
    EXPECT_EQ(summary["served"], 3) << r.err;
    EXPECT_EQ(summary["bad_header"], 0) << r.err;
    std::sort(peers.begin(), peers.end());  // the three close in any order
    EXPECT_EQ(peers, (std::vector<std::string>{"192.0.2.7:5555", "198.51.100.3:7777",
                                               "[2001:db8::1]:4444"}))
        << r.err;
  }
}

TEST_F(FrontDoor, NoHeaderGarbageOrOneTrickledPastTheTimeoutIsClosedAsBadHeader) {
  cfg.proxy_protocol = true;
  cfg.proxy_timeout = tcpd::Millis{300};
  InProcessServer srv(cfg);
  Client plain = Client::connect(srv.port());
  EXPECT_TRUE(turned_away_silently(plain, ""));
  Client garbage = Client::connect(srv.port());
  EXPECT_TRUE(turned_away_silently(garbage, "PROXY TCP9 1 2 3 4\r\n"));
  Client slow = Client::connect(srv.port());
  ASSERT_TRUE(slow.send("PROXY TCP4 192.0.2."));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(slow.send("1 127.0.0.1"));  // still short of the whole header at 300 ms
  EXPECT_TRUE(slow.closed_within(3s));
  EXPECT_TRUE(slow.rest().empty());
  Client silent = Client::connect(srv.port());
  EXPECT_TRUE(silent.closed_within(3s));
  // A header split across reads is fine when it is whole in time.
  Client split = Client::connect(srv.port());
  const std::string h = v2("203.0.113.5");
  ASSERT_TRUE(split.send(h.substr(0, 7)));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(served(split, h.substr(7)));
  split = Client();
  const auto s = settled(srv);
  EXPECT_EQ(s.of(Outcome::bad_header), 4u);
  EXPECT_EQ(s.of(Outcome::served), 1u);
  EXPECT_EQ(s.accepted, s.ended());
}

TEST_F(FrontDoor, WithoutTheFlagAHeaderIsAnOrdinaryRequest) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\r\n"));
  EXPECT_EQ(c.line(), "PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\n");
}

TEST_F(FrontDoor, AnUntrustedSenderIsDeniedAndLocalHealthChecksAreServed) {
  cfg.proxy_protocol = true;
  cfg.proxy_from = cidrs("127.0.0.2");
  InProcessServer srv(cfg);
  Client untrusted = connect_from("127.0.0.1", srv.port());
  EXPECT_TRUE(turned_away_silently(untrusted, v1("192.0.2.1")));
  Client balancer = connect_from("127.0.0.2", srv.port());
  EXPECT_TRUE(served(balancer, v1("192.0.2.1")));
  Client check = connect_from("127.0.0.2", srv.port());
  EXPECT_TRUE(served(check, kLocal));  // v2 LOCAL: HAProxy's health check
  Client unknown = connect_from("127.0.0.2", srv.port());
  EXPECT_TRUE(served(unknown, "PROXY UNKNOWN\r\n"));
  balancer = Client();
  check = Client();
  unknown = Client();
  const auto s = settled(srv);
  EXPECT_EQ(s.of(Outcome::denied), 1u);
  EXPECT_EQ(s.of(Outcome::served), 3u);
}

TEST_F(FrontDoor, AllowAndDenyForIpv4Ipv6AndMappedPeers) {
  cfg.bind = "";  // dual-stack: IPv4 clients arrive as ::ffff:127.0.0.x
  cfg.allow = cidrs("127.0.0.0/8");
  cfg.deny = cidrs("127.0.0.3");
  InProcessServer srv(cfg);
  Client ok = connect_from("127.0.0.1", srv.port());
  EXPECT_TRUE(served(ok));
  Client denied = connect_from("127.0.0.3", srv.port());
  EXPECT_TRUE(turned_away_silently(denied, ""));
  // ::1 is in no --allow network.
  tcpd::ConnectResult v6 =
      tcpd::connect_tcp("::1", static_cast<uint16_t>(srv.port()), tcpd::Clock::now() + 5s);
  ASSERT_TRUE(v6.fd.valid());
  Client six(std::move(v6.fd));
  EXPECT_TRUE(turned_away_silently(six, ""));
  ok = Client();
  const auto s = settled(srv);
  EXPECT_EQ(s.of(Outcome::denied), 2u);
  EXPECT_EQ(s.of(Outcome::served), 1u);
}

TEST_F(FrontDoor, WithProxyProtocolTheRulesApplyToTheHeadersAddress) {
  cfg.proxy_protocol = true;
  cfg.allow = cidrs("192.0.2.0/24,2001:db8::/32");
  cfg.deny = cidrs("192.0.2.66,2001:db8:bad::/48");
  InProcessServer srv(cfg);
  Client a = Client::connect(srv.port());
  EXPECT_TRUE(served(a, v2("192.0.2.5")));
  Client b = Client::connect(srv.port());
  EXPECT_TRUE(turned_away_silently(b, v1("198.51.100.1")));  // not allowed
  Client c = Client::connect(srv.port());
  EXPECT_TRUE(turned_away_silently(c, v2("192.0.2.66")));  // denied
  Client d = Client::connect(srv.port());
  EXPECT_TRUE(served(d, v1("2001:db8::9")));
  Client e = Client::connect(srv.port());
  EXPECT_TRUE(turned_away_silently(e, v2("2001:db8:bad::1")));
  a = Client();
  d = Client();
  const auto s = settled(srv);
  EXPECT_EQ(s.of(Outcome::denied), 3u);
  EXPECT_EQ(s.of(Outcome::served), 2u);
}

TEST_F(FrontDoor, PerClientLimitTurnsTheNextAwayUntilOneCloses) {
  cfg.max_conns_per_client = 2;
  InProcessServer srv(cfg);
  Client a = connect_from("127.0.0.1", srv.port());
  Client b = connect_from("127.0.0.1", srv.port());
  ASSERT_TRUE(served(a));
  ASSERT_TRUE(served(b));
  Client over = connect_from("127.0.0.1", srv.port());
  ASSERT_TRUE(over.valid());
  EXPECT_EQ(over.line(5s), "ERR busy\n");
  EXPECT_TRUE(over.closed_within(5s));
  // Another address has its own quota.
  Client other = connect_from("127.0.0.2", srv.port());
  EXPECT_TRUE(served(other));
  EXPECT_EQ(srv.server().gauges().clients_tracked, 2u);
  a = Client();
  ASSERT_TRUE(eventually([&] { return srv.server().stats().of(Outcome::served) == 1; }));
  Client next = connect_from("127.0.0.1", srv.port());
  EXPECT_TRUE(served(next));
  b = Client();
  next = Client();
  other = Client();
  const auto s = settled(srv);
  EXPECT_EQ(s.of(Outcome::limited), 1u);
  EXPECT_EQ(s.of(Outcome::served), 4u);
  EXPECT_EQ(srv.server().gauges().clients_tracked, 0u);
}

TEST_F(FrontDoor, PerClientLimitCountsHeaderAddressesAndIpv6Slash64s) {
  cfg.proxy_protocol = true;
  cfg.max_conns_per_client = 1;
  InProcessServer srv(cfg);
  Client a = Client::connect(srv.port());
  ASSERT_TRUE(served(a, v1("192.0.2.1")));
  Client b = Client::connect(srv.port());
  ASSERT_TRUE(served(b, v1("192.0.2.2")));  // the same balancer, another client
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send(v2("192.0.2.1") + "x\n"));
  EXPECT_EQ(c.line(5s), "ERR busy\n");
  Client d = Client::connect(srv.port());
  ASSERT_TRUE(served(d, v2("2001:db8:1:2::1")));
  Client e = Client::connect(srv.port());
  ASSERT_TRUE(e.send(v2("2001:db8:1:2:ffff::9") + "x\n"));  // the same /64
  EXPECT_EQ(e.line(5s), "ERR busy\n");
  Client f = Client::connect(srv.port());
  EXPECT_TRUE(served(f, v2("2001:db8:1:3::1")));  // the next /64
  EXPECT_EQ(srv.server().gauges().clients_tracked, 4u);
}

TEST(FrontDoorLog, RefusalsAreLoggedAtMostOnceASecondWithACountOfTheRest) {
  Tcpd srv({"--allow", "10.0.0.0/8"});
  for (int i = 0; i < 50; ++i) {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.closed_within(5s));
  }
  ASSERT_TRUE(srv.proc->wait_stderr("denied", 5s));
  std::this_thread::sleep_for(1100ms);
  Client last = Client::connect(srv.port);
  ASSERT_TRUE(last.closed_within(5s));
  ASSERT_TRUE(srv.proc->wait_stderr("more denied since the last line", 5s)) << srv.proc->err();
  const std::string& err = srv.proc->err();
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = err.find(" denied: ", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 2u) << err;  // not one per connection
  EXPECT_NE(err.find("(49 more denied since the last line)"), std::string::npos) << err;
  EXPECT_EQ(err.find("closed: denied"), std::string::npos) << err;
}

TEST(FrontDoorScale, TenThousandDistinctAddressesThroughProxyHeadersAreTrackedAndForgotten) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < 10300) GTEST_SKIP() << "needs 10,300 descriptors";
  rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, 10300);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  Tcpd srv(
      {"--quiet", "--proxy-protocol", "--max-conns-per-client", "1", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0);
  const long before = proc_status_kib(srv.proc->pid(), "VmRSS:");
  std::vector<Client> clients;
  clients.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    const std::string src = "10." + std::to_string(i / 65536) + "." +
                            std::to_string(i / 256 % 256) + "." + std::to_string(i % 256);
    clients.push_back(Client::connect(srv.port));
    ASSERT_TRUE(served(clients.back(), v1(src))) << i;
  }
  auto m = samples(scrape(mport));
  EXPECT_EQ(m["tcpd_clients_tracked"], 10000);
  EXPECT_EQ(m["tcpd_connections_closed_total{outcome=\"limited\"}"], 0);
  const long held = proc_status_kib(srv.proc->pid(), "VmRSS:");
  clients.clear();
  ASSERT_TRUE(eventually([&] { return samples(scrape(mport))["tcpd_clients_tracked"] == 0; }, 20s));
  // The table follows open connections: 10,000 clients cost memory while they are connected
  // (sessions and the table), bounded by the connections, and nothing once they are gone.
  if (!kSanitized) EXPECT_LT(held - before, 40 * 1024) << before << " -> " << held;
}
