// Running tcpd as a service: metrics, logs, systemd readiness and socket activation.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "net.hpp"
#include "process.hpp"
#include "scrape.hpp"
#include "socket.hpp"
#include "version.hpp"

using namespace testing_support;

namespace {

long json_number(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\": ?(\\d+)"))) return -1;
  return std::stol(m[1]);
}

std::string promtool() {
  for (const char* p : {"/usr/local/bin/promtool", "/usr/bin/promtool"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

}  // namespace

TEST(Metrics, NumbersAreTrueAfterAStressRunAndPromtoolAcceptsThem) {
  Tcpd srv({"--quiet", "--metrics", "127.0.0.1:0", "--workers", "4"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0) << srv.proc->err();
  // Every outcome series exists from the start, at 0.
  auto before = samples(scrape(mport));
  for (const char* o : {"served", "no_request", "busy", "shed", "idle_timeout", "io_timeout",
                        "too_long", "reset", "shutdown", "error"}) {
    EXPECT_EQ(before.count(std::string("tcpd_connections_closed_total{outcome=\"") + o + "\"}"), 1u)
        << o;
  }
  const std::string port = std::to_string(srv.port);
  auto oneshot =
      run({TCPC_BIN, "--port", port, "--count", "3000", "--concurrency", "8", "--json"}, 60s);
  auto keepalive = run(
      {TCPC_BIN, "--port", port, "--count", "3000", "--concurrency", "8", "--keepalive", "--json"},
      60s);
  ASSERT_EQ(oneshot.exit_code, 0) << oneshot.err;
  ASSERT_EQ(keepalive.exit_code, 0) << keepalive.err;
  const long replies = json_number(oneshot.out, "ok") + json_number(keepalive.out, "ok");
  ASSERT_EQ(replies, 6000);
  // Scrapes taken while the clients' last connections are still being closed: accepted always
  // equals closed + open; once every connection has ended, the totals match the clients'.
  std::map<std::string, double> m;
  bool settled = eventually(
      [&] {
        m = samples(scrape(mport));
        EXPECT_EQ(m["tcpd_connections_accepted_total"], closed_sum(m) + m["tcpd_connections_open"]);
        return m["tcpd_connections_open"] == 0;
      },
      10s);
  ASSERT_TRUE(settled);
  EXPECT_EQ(m["tcpd_requests_total"], static_cast<double>(replies));
  EXPECT_EQ(m["tcpd_request_duration_seconds_count"], m["tcpd_requests_total"]);
  EXPECT_EQ(m["tcpd_request_duration_seconds_bucket{le=\"+Inf\"}"], m["tcpd_requests_total"]);
  EXPECT_GE(m["tcpd_queue_wait_seconds_count"], m["tcpd_connections_accepted_total"]);
  EXPECT_EQ(m["tcpd_workers"], 4);
  EXPECT_EQ(m["tcpd_queue_capacity"], 1024);
  // "Hello from the server!\n" per reply; each request is "ping\n"-sized or larger.
  EXPECT_EQ(m["tcpd_bytes_sent_total"], 23.0 * replies);
  EXPECT_GT(m["tcpd_bytes_received_total"], 0);
  EXPECT_GT(m["process_resident_memory_bytes"], 0);
  EXPECT_GT(m["process_open_fds"], 0);
  EXPECT_GT(m["process_max_fds"], 0);
  EXPECT_GT(m["process_start_time_seconds"], 1.7e9);
  EXPECT_EQ(m.count("tcpd_build_info{version=\"" + std::string(tcpd::kVersion) + "\"}"), 1u);

  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << "promtool is installed by scripts/deps.sh";
  auto check = run({tool, "check", "metrics"}, 30s, scrape(mport));
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST(Metrics, HttpDetailsOtherPathsAndBadRequests) {
  Tcpd srv({"--quiet", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0);
  auto ok = http(mport, "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(ok.status, "200 OK");
  EXPECT_NE(ok.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(ok.headers.find("HTTP/1.0 200 OK"), std::string::npos);
  EXPECT_EQ(http(mport, "GET / HTTP/1.1\r\n\r\n").status, "404 Not Found");
  EXPECT_EQ(http(mport, "GET /metricsx HTTP/1.1\r\n\r\n").status, "404 Not Found");
  EXPECT_EQ(http(mport, "hello\r\n\r\n").status, "400 Bad Request");
  EXPECT_EQ(http(mport, "POST /metrics HTTP/1.1\r\n\r\n").status, "405 Method Not Allowed");
  // A request that never ends is cut at 8 KiB or a second, without an answer.
  Client huge = Client::connect(mport);
  huge.send("GET /" + std::string(20000, 'a'), 2s);
  EXPECT_TRUE(huge.closed_within(5s));
}

TEST(Metrics, SilentScraperDelaysNeitherServiceNorTheNextScrape) {
  Tcpd srv({"--quiet", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0);
  std::vector<Client> silent;
  for (int i = 0; i < 3; ++i) silent.push_back(Client::connect(mport));
  // The service does not wait for the metrics thread at all.
  auto start = std::chrono::steady_clock::now();
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("hi\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  // Silent scrapers cost a real scrape nothing.
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(scrape(mport).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// However many scrapers hang, a real scrape is answered within a second: the oldest silent
// connection goes when the cap is reached.
TEST(Metrics, ManySilentScrapersNeitherDelayAScrapeNorHoldDescriptors) {
  Tcpd srv({"--quiet", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*srv.proc);
  ASSERT_GT(mport, 0);
  std::vector<Client> silent;
  for (int i = 0; i < 40; ++i) silent.push_back(Client::connect(mport));
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_NE(scrape(mport).find("tcpd_connections_accepted_total"), std::string::npos);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  }
  // The oldest silent ones were let go already (beyond the cap), the rest at their deadline.
  int closed = 0;
  for (auto& c : silent) closed += c.closed_within(3s) ? 1 : 0;
  EXPECT_EQ(closed, 40);
}

TEST(Metrics, UnusableMetricsAddressIsAStartupError) {
  Tcpd first({"--quiet", "--metrics", "127.0.0.1:0"});
  const int mport = metrics_port(*first.proc);
  ASSERT_GT(mport, 0);
  auto in_use = run(Process::tcpd_argv({"--metrics", "127.0.0.1:" + std::to_string(mport)}), 20s);
  EXPECT_EQ(in_use.exit_code, 1);
  EXPECT_NE(in_use.err.find("--metrics: cannot bind to 127.0.0.1:" + std::to_string(mport) +
                            ": Address already in use"),
            std::string::npos)
      << in_use.err;
  EXPECT_EQ(in_use.out, "");
  // A malformed value is a bad flag (exit 2, before anything starts), not a startup error.
  auto bad = run(Process::tcpd_argv({"--metrics", "localhost"}), 20s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "tcpd: --metrics: localhost: expected ADDR:PORT (see tcpd --help)\n");
}

TEST(Logs, JsonLinesAreObjectsWithTheConnectionAsFields) {
  Tcpd srv({"--log-format", "json", "--name", "edge-1"});
  {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.send("x\n"));
    ASSERT_TRUE(c.line());
  }
  ASSERT_TRUE(srv.proc->wait_stderr("\"msg\":\"connection closed\"", 10s)) << srv.proc->err();
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(15s);
  ASSERT_EQ(r.exit_code, 0);
  // Every line is one JSON object with ts, level and msg; the connection's facts are fields.
  auto check = run({"python3", "-c",
                    "import sys, json\n"
                    "lines = [json.loads(l) for l in sys.stdin]\n"
                    "assert lines and all({'ts','level','msg'} <= set(l) for l in lines)\n"
                    "assert all(l['instance'] == 'edge-1' for l in lines)\n"
                    "c = [l for l in lines if l['msg'] == 'connection closed'][0]\n"
                    "assert c['outcome'] == 'served' and c['requests'] == 1, c\n"
                    "assert c['bytes_in'] == 2 and c['bytes_out'] == 23, c\n"
                    "assert c['peer'].startswith('127.0.0.1:') and c['duration_ms'] >= 0, c\n"
                    "assert c['ts'].endswith('Z') and len(c['ts']) == 24, c\n"
                    "s = [l for l in lines if l['msg'] == 'summary'][0]\n"
                    "assert s['accepted'] == 1 and s['open'] == 0 and s['served'] == 1, s\n"},
                   20s, r.err);
  EXPECT_EQ(check.exit_code, 0) << check.err << r.err;
}

TEST(Logs, LevelsFilterConnectionLinesButNeverTheSummary) {
  Tcpd srv({"--log-level", "warn"});
  {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.send("x\n"));
    ASSERT_TRUE(c.line());
  }
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(15s);
  EXPECT_EQ(r.err.find("closed:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("info tcpd: summary accepted=1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warn tcpd: Terminated: stopping"), std::string::npos) << r.err;
}

TEST(Logs, DebugAddsALinePerAcceptedConnection) {
  Tcpd srv({"--log-level", "debug"});
  Client c = Client::connect(srv.port);
  const uint16_t port = tcpd::local_port(c.fd());
  EXPECT_TRUE(
      srv.proc->wait_stderr("debug tcpd: 127.0.0.1:" + std::to_string(port) + " accepted", 10s))
      << srv.proc->err();
}

TEST(Logs, PeerIsNamedEvenWhenTheClientIsAlreadyGone) {
  // Regression: the peer was looked up when the line was written, and a client that had reset
  // the connection by then was logged as "?".
  Tcpd srv({"--workers", "1", "--delay-ms", "200"});
  Client busy = Client::connect(srv.port);
  ASSERT_TRUE(busy.send("slow\n"));
  Client gone = Client::connect(srv.port);
  const uint16_t gone_port = tcpd::local_port(gone.fd());
  gone.reset();  // waits in the queue behind the slow request, then meets the RST
  ASSERT_TRUE(busy.line());
  ASSERT_TRUE(srv.proc->wait_stderr("127.0.0.1:" + std::to_string(gone_port) + " closed:", 10s))
      << srv.proc->err();
}

namespace {

// A notify socket like systemd's: a datagram socket at a temporary path.
struct FakeNotifySocket {
  FakeNotifySocket() {
    path = "/tmp/tcpd-notify-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    ::unlink(path.c_str());
    fd = tcpd::Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    ok = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~FakeNotifySocket() { ::unlink(path.c_str()); }
  // The next datagram, or "" after the timeout.
  std::string next(Ms timeout) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
    char buf[4096];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  // Waits for a datagram containing `needle`.
  bool expect(const std::string& needle, Ms timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (next(100ms).find(needle) != std::string::npos) return true;
    }
    return false;
  }
  static inline int counter = 0;
  std::string path;
  tcpd::Fd fd;
  bool ok = false;
};

}  // namespace

TEST(Systemd, NotifiesReadyStatusAndStopping) {
  FakeNotifySocket notify;
  ASSERT_TRUE(notify.ok);
  Spawn how;
  how.env = {"NOTIFY_SOCKET=" + notify.path};
  Tcpd srv({"--quiet"}, how);  // returns once "listening on" is read
  const std::string first = notify.next(10s);
  EXPECT_EQ(first.rfind("READY=1\n", 0), 0u) << first;
  EXPECT_NE(first.find("STATUS=open=0 accepted=0"), std::string::npos) << first;
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("x\n"));
  ASSERT_TRUE(c.line());
  EXPECT_TRUE(notify.expect("STATUS=open=1 accepted=1 requests=1", 5s));
  srv.proc->signal(SIGTERM);
  EXPECT_TRUE(notify.expect("STOPPING=1", 10s));
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}

TEST(Systemd, InheritedListenerIsServedAndNeverShutDown) {
  // The trap: shutdown() on a listening socket that a parent (systemd) still holds would break
  // it for the next instance. The parent here keeps the socket, and accepts on it afterwards.
  tcpd::Fd listener = tcpd::listen_tcp("127.0.0.1", 0, 64);
  const int port = tcpd::local_port(listener.get());
  Spawn how;
  how.listen_fd = listener.get();
  Tcpd srv({"--quiet", "--port", "1"}, how);  // --port is ignored, with a warning
  EXPECT_EQ(srv.port, port);
  EXPECT_TRUE(srv.proc->wait_stderr("socket activation: serving the inherited socket", 10s))
      << srv.proc->err();
  {
    Client c = Client::connect(port);
    ASSERT_TRUE(c.send("x\n"));
    EXPECT_EQ(c.line(), "Hello from the server!\n");
  }
  srv.proc->signal(SIGTERM);
  ASSERT_EQ(srv.proc->wait(15s).exit_code, 0);
  // The socket still works for its owner: a new client connects and is accepted.
  Client after = Client::connect(port, 2s);
  ASSERT_TRUE(after.valid());
  pollfd p{listener.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  tcpd::Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(accepted.valid()) << std::strerror(errno);
}

TEST(Systemd, AnUnusableInheritedDescriptorIsNamedInOneLine) {
  tcpd::Fd unix_socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Spawn how;
  how.listen_fd = unix_socket.get();
  Process p(Process::tcpd_argv({"--quiet"}), how);
  auto r = p.wait(10s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("descriptor 3 is a Unix-domain socket (ListenStream=/path); tcpd needs a "
                       "listening TCP socket"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Systemd, RunsUnderSystemdSocketActivate) {
  const char* activate = "/usr/bin/systemd-socket-activate";
  if (::access(activate, X_OK) != 0) GTEST_SKIP() << activate << " is not installed";
  // A free port: bind port 0, read it, close, let systemd-socket-activate bind it.
  int port = 0;
  {
    tcpd::Fd probe = tcpd::listen_tcp("127.0.0.1", 0, 1);
    port = tcpd::local_port(probe.get());
  }
  Process p({activate, "-l", "127.0.0.1:" + std::to_string(port), TCPD_BIN, "--quiet"});
  ASSERT_TRUE(p.wait_stderr("Listening on", 10s)) << p.err();
  // Like systemd, it starts tcpd when the first client connects; that client is served.
  Client c = Client::connect(port);
  ASSERT_TRUE(c.send("x\n"));
  auto line = p.read_line(20s);
  ASSERT_TRUE(line) << p.err();
  EXPECT_EQ(*line, "listening on 127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(15s).exit_code, 0);
}

TEST(HealthChecks, LineReplyThenResetCountsAsServedAndAHalfRequestResetAsReset) {
  // A load balancer's check: connect, one line, read the reply, close with RST (HAProxy does).
  // That client was served; a reset in the middle of a request is still a reset.
  auto cfg = test_config();
  InProcessServer srv(cfg);
  {
    Client check = Client::connect(srv.port());
    ASSERT_TRUE(check.send("health\n"));
    ASSERT_EQ(check.line(), "Hello from the server!\n");
    check.reset();
  }
  {
    Client half = Client::connect(srv.port());
    ASSERT_TRUE(half.send("x\n"));
    ASSERT_TRUE(half.line());
    ASSERT_TRUE(half.send("half a req"));
    // The partial request reaches the server before the reset does.
    ASSERT_TRUE(eventually([&] { return srv.server().stats().bytes_in == 19; }));  // 7 + 2 + 10
    half.reset();
  }
  ASSERT_TRUE(eventually([&] { return srv.server().stats().ended() == 2; }));
  const auto st = srv.server().stats();
  EXPECT_EQ(st.of(tcpd::Outcome::served), 1u);
  EXPECT_EQ(st.of(tcpd::Outcome::reset), 1u);
}
