// The real binaries: flags, exit codes and the messages a user sees.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>

#include "fake_server.hpp"
#include "net.hpp"
#include "process.hpp"
#include "socket.hpp"

using namespace testing_support;

namespace {

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST(Binaries, TcpdBadFlagsExitTwoWithOneLine) {
  for (auto flags : std::vector<std::vector<std::string>>{
           {"--port", "70000"}, {"--workers", "0"}, {"--bogus"}, {"--reply", "a\nb"}}) {
    std::vector<std::string> argv{TCPD_BIN};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto r = run(argv, 10s);
    EXPECT_EQ(r.exit_code, 2) << flags[0];
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(flags[0]), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(Binaries, TcpdPortInUseExitsOneNamingTheAddress) {
  Tcpd first({"--quiet"});
  auto r = run({TCPD_BIN, "--bind", "127.0.0.1", "--port", std::to_string(first.port)}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:" + std::to_string(first.port)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Address already in use"), std::string::npos) << r.err;
}

TEST(Binaries, TcpdBadBindAddressExitsOne) {
  auto r = run({TCPD_BIN, "--bind", "192.0.2.1", "--port", "0"}, 10s);  // not ours
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot bind to 192.0.2.1"), std::string::npos) << r.err;
}

TEST(Binaries, TcpdDefaultListensOnAllInterfacesAndSaysSo) {
  Process p({TCPD_BIN, "--port", "0", "--quiet"});
  auto line = p.read_line(20s);
  ASSERT_TRUE(line);
  // [::] where the host has IPv6 (dual-stack), else 0.0.0.0.
  EXPECT_TRUE(line->rfind("listening on [::]:", 0) == 0 ||
              line->rfind("listening on 0.0.0.0:", 0) == 0)
      << *line;
  const int port = std::stoi(line->substr(line->rfind(':') + 1));
  Client c = Client::connect(port);  // IPv4 reaches the dual-stack socket
  ASSERT_TRUE(c.send("hi\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
}

TEST(Binaries, TcpcPrintsTheReply) {
  Tcpd srv({"--quiet"});
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(srv.port)}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\n");
}

TEST(Binaries, TcpcLocalhostDefaultHost) {
  Tcpd srv({"--quiet"});
  auto r = run({TCPC_BIN, "--port", std::to_string(srv.port), "--msg", "x"}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\n");
}

TEST(Binaries, TcpcStdinLinesAreRequestsOnOneConnection) {
  Tcpd srv({"--quiet", "--mode", "echo"});
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(srv.port), "--msg", "-"},
               20s, "one\ntwo\r\nthree\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntwo\nthree\n");
}

TEST(Binaries, TcpcRefusedNamesTheCause) {
  const int port = unused_port();
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(port)}, 20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "tcpc: cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
}

TEST(Binaries, TcpcBusyReplyIsAFailureOnStderr) {
  FakeServer busy(FakeServer::Kind::reply, "ERR busy\n");
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(busy.port())}, 20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("ERR busy"), std::string::npos) << r.err;
}

TEST(Binaries, TcpcTooLongReplyIsAFailure) {
  Tcpd srv({"--quiet", "--max-message", "4"});
  auto r = run(
      {TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(srv.port), "--msg", "12345"}, 20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ERR too long"), std::string::npos) << r.err;
}

TEST(Binaries, TcpcExpectMismatchFails) {
  Tcpd srv({"--quiet"});
  auto r =
      run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(srv.port), "--expect", "nope"},
          20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unexpected reply"), std::string::npos) << r.err;
}

TEST(Binaries, TcpcBadFlagsExitTwo) {
  auto r = run({TCPC_BIN, "--port", "nope"}, 10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  auto h = run({TCPC_BIN, "--help"}, 10s);
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("--concurrency"), std::string::npos);
}

TEST(Binaries, TcpcQuietPrintsNothingButStillFails) {
  Tcpd srv({"--quiet"});
  auto ok =
      run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(srv.port), "--quiet"}, 20s);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "");
  auto bad = run(
      {TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(unused_port()), "--quiet"}, 20s);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("Connection refused"), std::string::npos) << bad.err;
}

TEST(Binaries, Ipv6LoopbackBindAndConnect) {
  // Only where the host has IPv6 on loopback (a container may not).
  try {
    tcpd::listen_tcp("::1", 0, 1);
  } catch (const std::system_error&) {
    GTEST_SKIP() << "no IPv6 loopback on this host";
  }
  Process p({TCPD_BIN, "--bind", "::1", "--port", "0", "--quiet"});
  auto line = p.read_line(20s);
  ASSERT_TRUE(line);
  ASSERT_EQ(line->rfind("listening on [::1]:", 0), 0u) << *line;
  const std::string port = line->substr(line->rfind(':') + 1);
  auto r = run({TCPC_BIN, "--host", "::1", "--port", port}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\n");
  auto refused = run({TCPC_BIN, "--host", "::1", "--port", std::to_string(unused_port())}, 20s);
  EXPECT_NE(refused.err.find("cannot connect to [::1]:"), std::string::npos) << refused.err;
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(15s).exit_code, 0);
}

namespace {

// Long options listed by --help ("  --port N ...", "  -h,--help ...").
std::set<std::string> help_options(const std::string& help) {
  std::set<std::string> out;
  std::istringstream in(help);
  std::string line;
  std::regex opt(R"(^  (?:-\w,)?(--[a-z][a-z-]*))");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.find("Signals:") == 0) break;
    if (std::regex_search(line, m, opt)) out.insert(m[1]);
  }
  return out;
}

// Long options the man page documents: the tag line after each .TP in OPTIONS.
std::set<std::string> man_options(const std::string& path) {
  std::ifstream f(path);
  std::set<std::string> out;
  std::string line;
  bool in_options = false, tag = false;
  while (std::getline(f, line)) {
    if (line.rfind(".SH", 0) == 0) in_options = line == ".SH OPTIONS";
    if (!in_options) continue;
    if (line == ".TP") {
      tag = true;
      continue;
    }
    if (!tag) continue;
    tag = false;
    std::string plain;
    for (char c : line) {
      if (c != '\\') plain += c;
    }
    std::smatch m;
    if (std::regex_search(plain, m, std::regex(R"((--[a-z][a-z-]*))"))) out.insert(m[1]);
  }
  return out;
}

}  // namespace

TEST(Binaries, ManPagesListExactlyTheOptionsOfHelp) {
  for (std::string name : {"tcpd", "tcpc"}) {
    auto help = run({name == "tcpd" ? TCPD_BIN : TCPC_BIN, "--help"}, 10s);
    ASSERT_EQ(help.exit_code, 0);
    const auto from_help = help_options(help.out);
    const auto from_man = man_options(std::string(SOURCE_DIR) + "/docs/man/" + name + ".1");
    EXPECT_GT(from_help.size(), 5u) << help.out;
    EXPECT_EQ(from_help, from_man) << name << ": docs/man/" << name << ".1 and --help differ";
  }
}

TEST(Binaries, VersionIsTheProjectVersion) {
  auto d = run({TCPD_BIN, "--version"}, 10s);
  EXPECT_EQ(d.out, std::string("tcpd ") + TCPD_PROJECT_VERSION + "\n");
  auto c = run({TCPC_BIN, "--version"}, 10s);
  EXPECT_EQ(c.out, std::string("tcpc ") + TCPD_PROJECT_VERSION + "\n");
}
