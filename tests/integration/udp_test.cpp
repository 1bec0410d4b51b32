// --udp: datagrams on the TCP port, against an in-process server and the real binaries.
#include <gtest/gtest.h>
#include <poll.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <regex>
#include <string>

#include "net.hpp"
#include "process.hpp"
#include "scrape.hpp"
#include "socket.hpp"
#include "tcpc_json.hpp"
#include "udp.hpp"

using namespace testing_support;
using tcpd::UdpDrop;
using Clock = std::chrono::steady_clock;

namespace {

struct Udp : ::testing::Test {
  tcpd::ServerConfig cfg = [] {
    tcpd::ServerConfig c = test_config();
    c.udp = true;
    c.workers = 2;
    return c;
  }();
};

// A connected client socket: replies from any other address than the server's are not
// received.
UdpPeer client_of(int port, const std::string& address = "127.0.0.1", int family = AF_INET) {
  UdpPeer p(family);
  EXPECT_TRUE(p.connect(address, port));
  return p;
}

tcpd::UdpSnapshot udp_stats(InProcessServer& srv) {
  return srv.server().udp_stats().value_or(tcpd::UdpSnapshot{});
}

// The counters once `received` datagrams are each sent or dropped: a reply can reach the client
// before its worker has counted it.
tcpd::UdpSnapshot settled(InProcessServer& srv, uint64_t received) {
  tcpd::UdpSnapshot s;
  EXPECT_TRUE(eventually([&] {
    s = udp_stats(srv);
    return s.received == received && s.received == s.sent + s.dropped_total();
  })) << s.format();
  return s;
}

}  // namespace

TEST_F(Udp, TheTutorialsClientGetsTheTutorialsReplyExactly) {
  InProcessServer srv(cfg);
  UdpPeer c = client_of(srv.port());
  ASSERT_TRUE(c.send("Hello from the client!"));
  EXPECT_EQ(c.receive(5s), "Hello from the server!");
  // One datagram is one request whatever it holds: newlines, nothing at all.
  ASSERT_TRUE(c.send("a\nb\n"));
  EXPECT_EQ(c.receive(5s), "Hello from the server!");
  ASSERT_TRUE(c.send(""));
  EXPECT_EQ(c.receive(5s), "Hello from the server!");
}

TEST_F(Udp, EchoIsBinarySafeUpToMaxMessageAndLongerGetsErrTooLong) {
  cfg.mode = tcpd::Mode::echo;
  cfg.max_message = 1000;
  InProcessServer srv(cfg);
  UdpPeer c = client_of(srv.port());
  std::string every;
  for (int i = 0; i < 256; ++i) every.push_back(static_cast<char>(i));
  ASSERT_TRUE(c.send(every));
  EXPECT_EQ(c.receive(5s), every);
  const std::string longest(1000, 'x');
  ASSERT_TRUE(c.send(longest));
  EXPECT_EQ(c.receive(5s), longest);
  ASSERT_TRUE(c.send(longest + "y"));
  EXPECT_EQ(c.receive(5s), "ERR too long");
  ASSERT_TRUE(c.send(std::string(60000, 'z')));  // truncated by the kernel into its slot
  EXPECT_EQ(c.receive(5s), "ERR too long");
  const auto s = settled(srv, 4);
  EXPECT_EQ(s.sent, 2u);
  EXPECT_EQ(s.of(UdpDrop::too_long), 2u);
}

TEST_F(Udp, TheLargestDatagramIsEchoedWhole) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  UdpPeer c = client_of(srv.port());
  std::string biggest(65507, 'q');
  biggest[0] = 'A';
  biggest.back() = 'Z';
  ASSERT_TRUE(c.send(biggest));
  EXPECT_EQ(c.receive(5s), biggest);
}

TEST_F(Udp, DualStackServesIPv4AndIPv6) {
  cfg.bind = "";  // [::], dual-stack
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  UdpPeer v4 = client_of(srv.port());
  ASSERT_TRUE(v4.send("four"));
  EXPECT_EQ(v4.receive(5s), "four");
  UdpPeer v6 = client_of(srv.port(), "::1", AF_INET6);
  ASSERT_TRUE(v6.send("six"));
  EXPECT_EQ(v6.receive(5s), "six");
}

// A wildcard socket answers from the address the datagram was sent to: 127.0.0.2 is the
// host's too, but the route to the client picks 127.0.0.1, and a connected client drops a reply
// from an address it did not ask.
TEST_F(Udp, TheReplyLeavesFromTheAddressTheDatagramCameTo) {
  for (const char* bind : {"", "0.0.0.0"}) {
    cfg.bind = bind;
    InProcessServer srv(cfg);
    UdpPeer c = client_of(srv.port(), "127.0.0.2");
    ASSERT_TRUE(c.send("x"));
    EXPECT_EQ(c.receive(5s), "Hello from the server!") << "bind '" << bind << "'";
    UdpPeer loose(AF_INET);
    ASSERT_TRUE(loose.send_to("127.0.0.3", srv.port(), "y"));
    std::string from;
    ASSERT_TRUE(loose.receive(5s, &from).has_value());
    EXPECT_EQ(from, "127.0.0.3:" + std::to_string(srv.port()));
  }
}

TEST_F(Udp, ReflectionPortsGetNoReplyAndAreCounted) {
  InProcessServer srv(cfg);
  int tried = 0;
  for (uint16_t port : {7, 19, 53, 123, 11211}) {
    UdpPeer service(AF_INET, "127.0.0.1", port);
    if (!service.valid()) continue;  // in use on this host, or not root
    ++tried;
    ASSERT_TRUE(service.send_to("127.0.0.1", srv.port(), "Hello from the client!"));
    EXPECT_FALSE(service.receive(300ms).has_value()) << "port " << port;
  }
  if (tried == 0) GTEST_SKIP() << "cannot bind a low port here";
  UdpPeer ordinary = client_of(srv.port());
  ASSERT_TRUE(ordinary.send("x"));
  EXPECT_TRUE(ordinary.receive(5s).has_value());
  const auto s = settled(srv, static_cast<uint64_t>(tried) + 1);
  EXPECT_EQ(s.of(UdpDrop::reflection_port), unsigned(tried));
  EXPECT_EQ(s.sent, 1u);
}

TEST_F(Udp, SourceRateCapsRepliesPerAddressNotPerSocket) {
  cfg.udp_source_rate = 5;
  InProcessServer srv(cfg);
  // Two sockets of one address share its budget: a second second's worth would take 1 s.
  UdpPeer a = client_of(srv.port());
  UdpPeer b = client_of(srv.port());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a.send("x"));
    ASSERT_TRUE(b.send("x"));
  }
  int replies = 0;
  while (a.receive(200ms)) ++replies;
  while (b.receive(200ms)) ++replies;
  EXPECT_GE(replies, 5);
  EXPECT_LE(replies, 7);  // 5, and what refills while the 20 are read
  // Another address has its own budget.
  UdpPeer other(AF_INET, "127.0.0.9", 0);
  ASSERT_TRUE(other.connect("127.0.0.1", srv.port()));
  ASSERT_TRUE(other.send("x"));
  EXPECT_TRUE(other.receive(5s).has_value());
  const auto s = settled(srv, 21);
  EXPECT_EQ(s.sent, static_cast<uint64_t>(replies) + 1);
  EXPECT_EQ(s.of(UdpDrop::rate_limited), 20u - static_cast<uint64_t>(replies));
  EXPECT_EQ(srv.server().udp_sources_tracked(), 2u);
}

TEST_F(Udp, AllowAndDenyApplyToDatagramsToo) {
  auto allow = std::make_shared<tcpd::CidrSet>();
  ASSERT_EQ(allow->add_list("127.0.0.0/8"), "");
  auto deny = std::make_shared<tcpd::CidrSet>();
  ASSERT_EQ(deny->add_list("127.0.0.5"), "");
  cfg.allow = allow;
  cfg.deny = deny;
  InProcessServer srv(cfg);
  UdpPeer ok(AF_INET, "127.0.0.4", 0);
  ASSERT_TRUE(ok.connect("127.0.0.1", srv.port()));
  ASSERT_TRUE(ok.send("x"));
  EXPECT_TRUE(ok.receive(5s).has_value());
  UdpPeer denied(AF_INET, "127.0.0.5", 0);
  ASSERT_TRUE(denied.connect("127.0.0.1", srv.port()));
  ASSERT_TRUE(denied.send("x"));
  EXPECT_FALSE(denied.receive(300ms).has_value());
  const auto s = settled(srv, 2);
  EXPECT_EQ(s.of(UdpDrop::denied), 1u);
  EXPECT_EQ(s.sent, 1u);
}

TEST_F(Udp, TcpAndUdpOnOnePortAtOnce) {
  InProcessServer srv(cfg);
  Client tcp = Client::connect(srv.port());
  UdpPeer udp = client_of(srv.port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(tcp.send("x\n"));
    ASSERT_TRUE(udp.send("x"));
    EXPECT_EQ(tcp.line(), "Hello from the server!\n");
    EXPECT_EQ(udp.receive(5s), "Hello from the server!");
  }
}

TEST_F(Udp, DrainAnswersWhatWasReadAndTheCountersAddUp) {
  cfg.delay = tcpd::Millis{300};
  cfg.workers = 1;
  InProcessServer srv(cfg);
  UdpPeer c = client_of(srv.port());
  ASSERT_TRUE(c.send("before"));
  ASSERT_TRUE(eventually([&] { return udp_stats(srv).received == 1; }));
  const auto start = Clock::now();
  srv.stop();  // the datagram is in its --delay-ms
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_EQ(c.receive(2s), "Hello from the server!");
  const auto s = udp_stats(srv);  // final: every thread has been joined
  EXPECT_EQ(s.received, s.sent + s.dropped_total());
  EXPECT_EQ(s.sent, 1u);
}

TEST_F(Udp, AReuseportGroupServesEverySourceAndDrainsAtOnce) {
  cfg.udp_shared_socket = false;
  cfg.udp_workers = 3;
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  std::vector<UdpPeer> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(client_of(srv.port()));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(clients[i].send("c" + std::to_string(i)));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(clients[i].receive(5s), "c" + std::to_string(i));
  settled(srv, 20);
  // Every thread is blocked in recvmmsg(): the drain's shutdown() must wake all three.
  const auto start = Clock::now();
  srv.stop();
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST_F(Udp, ABusyUdpSideNeitherSlowsNorStopsTcp) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  UdpPeer flood = client_of(srv.port());
  const std::string big(1400, 'f');
  for (int i = 0; i < 5000; ++i) flood.send(big);
  Client tcp = Client::connect(srv.port());
  ASSERT_TRUE(tcp.send("x\n"));
  EXPECT_EQ(tcp.line(2s), "x\n");
  // Every datagram is accounted for: answered, or dropped by the kernel with the count kept.
  ASSERT_TRUE(eventually(
      [&] {
        const auto s = udp_stats(srv);
        return s.received == s.sent + s.dropped_total() && s.received > 0;
      },
      5s));
}

// The binaries: tcpc --udp against tcpd --udp, the counters in the summary and in /metrics.
TEST(UdpBinaries, TcpcSingleAndLoadAgainstTcpdAndTheSummaryAddsUp) {
  Tcpd srv({"--quiet", "--udp", "--mode", "echo"});
  const std::string port = std::to_string(srv.port);
  auto one = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", port, "--msg", "hi"}), 20s);
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "hi\n");
  auto load = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", port, "--concurrency", "4",
                        "--count", "2000", "--json"}),
                  60s);
  ASSERT_EQ(load.exit_code, 0) << load.out << load.err;
  auto j = parse_json(load.out);
  EXPECT_EQ(j["protocol"], "udp");
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["sent"], 2000);
  EXPECT_EQ(j["received"], 2000);
  EXPECT_EQ(j["lost"], 0);
  EXPECT_EQ(j["duplicated"], 0);
  EXPECT_EQ(j["echoed"], true);
  EXPECT_GT(j["p50_us"].get<long>(), 0);
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(15s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(r.err, m, std::regex(R"(summary .*udp_received=(\d+) udp_sent=(\d+))")))
      << r.err;
  EXPECT_EQ(m[1], "2001");
  EXPECT_EQ(m[2], "2001");
}

TEST(UdpBinaries, TcpcSaysWhenNothingAnswers) {
  // A bound socket that never answers: no ICMP, only silence.
  UdpPeer silent(AF_INET, "127.0.0.1", 0);
  const int port = tcpd::local_port(silent.fd());
  const auto start = Clock::now();
  auto r = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", std::to_string(port), "--msg", "x",
                     "--timeout-ms", "200", "--retries", "2"}),
               20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_GE(Clock::now() - start, 600ms);
  EXPECT_NE(
      r.err.find("no reply from 127.0.0.1:" + std::to_string(port) + " within 200 ms (3 tries)"),
      std::string::npos)
      << r.err;
  int seen = 0;
  while (silent.receive(100ms)) ++seen;
  EXPECT_EQ(seen, 3);
  // Nobody at all: the ICMP port unreachable says so at once.
  int dead = 0;
  {
    UdpPeer probe(AF_INET, "127.0.0.1", 0);
    dead = tcpd::local_port(probe.fd());
  }
  const auto asked = Clock::now();
  auto none = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", std::to_string(dead), "--msg",
                        "x", "--timeout-ms", "10000"}),
                  20s);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_LT(Clock::now() - asked, 5s);
  EXPECT_NE(none.err.find("nothing listens for UDP at 127.0.0.1:" + std::to_string(dead)),
            std::string::npos)
      << none.err;
}

TEST(UdpBinaries, MetricsHaveTheUdpSeriesAndPromtoolAcceptsThem) {
  Tcpd srv({"--quiet", "--udp", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0) << srv.proc->err();
  UdpPeer c = client_of(srv.port);
  ASSERT_TRUE(c.send("x"));
  ASSERT_TRUE(c.receive(5s).has_value());
  const std::string body = scrape(mport);
  EXPECT_NE(body.find("tcpd_udp_datagrams_received_total 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("tcpd_udp_datagrams_sent_total 1\n"), std::string::npos);
  for (const char* reason :
       {"too_long", "rate_limited", "reflection_port", "send_error", "kernel_buffer", "denied"}) {
    EXPECT_NE(
        body.find(std::string("tcpd_udp_datagrams_dropped_total{reason=\"") + reason + "\"} 0\n"),
        std::string::npos)
        << reason;
  }
  EXPECT_NE(body.find("tcpd_udp_request_duration_seconds_count 1\n"), std::string::npos);
  for (const char* p : {"/usr/local/bin/promtool", "/usr/bin/promtool"}) {
    if (::access(p, X_OK) != 0) continue;
    auto check = run({p, "check", "metrics"}, 30s, body);
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  }
}

TEST(UdpBinaries, AnInheritedUdpSocketIsServedAndLeftUsable) {
  tcpd::Fd listener = tcpd::listen_tcp("127.0.0.1", 0, 64);
  const int port = tcpd::local_port(listener.get());
  UdpPeer udp(AF_INET, "127.0.0.1", static_cast<uint16_t>(port));
  ASSERT_TRUE(udp.valid()) << std::strerror(udp.bind_errno());
  Spawn how;
  how.listen_fd = listener.get();
  how.udp_fd = udp.fd();
  Tcpd srv({"--quiet", "--udp"}, how);
  UdpPeer c = client_of(port);
  ASSERT_TRUE(c.send("x"));
  EXPECT_EQ(c.receive(5s), "Hello from the server!");
  srv.proc->signal(SIGTERM);
  const auto start = Clock::now();
  ASSERT_EQ(srv.proc->wait(15s).exit_code, 0);
  EXPECT_LT(Clock::now() - start, 3s);
  // The socket still works for its owner (never shut down): the next datagram waits in it.
  ASSERT_TRUE(c.send("after"));
  EXPECT_EQ(udp.receive(5s), "after");
}

TEST(UdpBinaries, AnInheritedUdpSocketWithoutUdpIsRefusedInOneLine) {
  UdpPeer udp(AF_INET, "127.0.0.1", 0);
  Spawn how;
  how.udp_fd = udp.fd();
  Process p(Process::tcpd_argv({"--quiet"}), how);
  auto r = p.wait(10s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("socket activation passed a UDP socket (ListenDatagram=); serve it with "
                       "--udp"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// tcpc's loss, duplicate and reorder figures against a server that drops, duplicates and
// reorders on purpose (one of each per ten datagrams).
TEST(TcpcUdp, CountsLossDuplicatesAndReorderingExactly) {
  LossyEcho server;
  auto r = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", std::to_string(server.port()),
                     "--rate", "2000", "--count", "1000", "--timeout-ms", "500", "--json"}),
               60s);
  EXPECT_EQ(r.exit_code, 1) << r.err;  // datagrams were lost
  auto j = parse_json(r.out);
  EXPECT_EQ(j["sent"], 1000);
  EXPECT_EQ(j["received"], 900);
  EXPECT_EQ(j["lost"], 100);
  EXPECT_EQ(j["duplicated"], 100);
  EXPECT_EQ(j["reordered"], 100);
  EXPECT_NEAR(j["loss_percent"].get<double>(), 10.0, 1e-9);
  EXPECT_GT(j["jitter_us"].get<double>(), 0);
  EXPECT_EQ(j["client_drops"], 0);
}

TEST(TcpcUdp, AgainstAGreetingServerRepliesAreCounted) {
  Tcpd srv({"--quiet", "--udp"});
  auto r = run(tcpc({"--udp", "--host", "127.0.0.1", "--port", std::to_string(srv.port),
                     "--concurrency", "2", "--count", "500", "--json"}),
               60s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = parse_json(r.out);
  EXPECT_EQ(j["received"], 500);
  EXPECT_EQ(j["echoed"], false);
  EXPECT_GT(j["p50_us"].get<long>(), 0);  // closed loop: each reply answers its socket's one
}
