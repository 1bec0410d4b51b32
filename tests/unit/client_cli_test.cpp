#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "tcpc_cli.hpp"

using tcpd::ClientCliExit;
using tcpd::ClientConfig;

namespace {

std::variant<ClientConfig, ClientCliExit> parse(const std::vector<const char*>& args) {
  std::vector<const char*> argv{"tcpc"};
  argv.insert(argv.end(), args.begin(), args.end());
  return tcpd::parse_client_cli(static_cast<int>(argv.size()), argv.data());
}

ClientConfig ok(const std::vector<const char*>& args) {
  auto r = parse(args);
  if (auto* e = std::get_if<ClientCliExit>(&r)) ADD_FAILURE() << e->text;
  return std::get<ClientConfig>(r);
}

}  // namespace

TEST(ClientCli, DefaultsAreOneRequest) {
  ClientConfig c = ok({});
  EXPECT_EQ(c.host, "localhost");
  EXPECT_EQ(c.port, 12345);
  EXPECT_EQ(c.msg, "Hello from the client!");
  EXPECT_EQ(c.timeout.count(), 5000);
  EXPECT_FALSE(c.load_mode());
  EXPECT_FALSE(c.stdin_mode());
}

TEST(ClientCli, LoadModeSwitches) {
  EXPECT_TRUE(ok({"--count", "2"}).load_mode());
  EXPECT_FALSE(ok({"--count", "1"}).load_mode());
  EXPECT_TRUE(ok({"--duration", "0.5"}).load_mode());
  EXPECT_TRUE(ok({"--concurrency", "4"}).load_mode());
  EXPECT_TRUE(ok({"--rate", "100", "--count", "10"}).load_mode());
  ClientConfig c = ok({"--count", "10", "--keepalive", "--expect", "x", "--json"});
  EXPECT_TRUE(c.keepalive);
  EXPECT_EQ(c.expect, "x");
  EXPECT_TRUE(c.json);
}

TEST(ClientCli, BadFlagsExitTwo) {
  for (const auto& args : std::vector<std::vector<const char*>>{{"--port", "0"},
                                                                {"--port", "99999"},
                                                                {"--timeout-ms", "0"},
                                                                {"--count", "0"},
                                                                {"--count", "5", "--duration", "1"},
                                                                {"--msg", "-", "--count", "5"},
                                                                {"--msg", "a\nb"},
                                                                {"--bogus"}}) {
    auto r = parse(args);
    ASSERT_TRUE(std::holds_alternative<ClientCliExit>(r));
    const auto& e = std::get<ClientCliExit>(r);
    EXPECT_EQ(e.code, 2);
    EXPECT_EQ(e.text.rfind("tcpc: ", 0), 0u) << e.text;
  }
}

TEST(ClientCli, MessagesAndValueNamesReadLikeAUnixTool) {
  auto text = [](std::vector<const char*> args) {
    args.insert(args.begin(), "tcpc");
    auto r = tcpd::parse_client_cli(static_cast<int>(args.size()), args.data());
    return std::get<tcpd::ClientCliExit>(r).text;
  };
  EXPECT_EQ(text({"--port", "abc"}), "tcpc: --port: abc is not an integer (see tcpc --help)\n");
  EXPECT_EQ(text({"--rate"}), "tcpc: --rate: needs a value (see tcpc --help)\n");
  EXPECT_EQ(text({"--duration", "0"}),
            "tcpc: --duration: 0 is not between 0.001 and 86400 (see tcpc --help)\n");
  const std::string help = text({"--help"});
  EXPECT_EQ(help.find("FLOAT:FLOAT"), std::string::npos) << help;
  EXPECT_EQ(help.find("000000"), std::string::npos) << help;  // no "0.001000 to 86400.000000"
  EXPECT_NE(help.find("--duration SECONDS"), std::string::npos) << help;
}

TEST(ClientCli, BracketedIpv6HostIsAccepted) {
  std::vector<const char*> args{"tcpc", "--host", "[::1]"};
  auto r = tcpd::parse_client_cli(static_cast<int>(args.size()), args.data());
  ASSERT_TRUE(std::holds_alternative<tcpd::ClientConfig>(r));
  EXPECT_EQ(std::get<tcpd::ClientConfig>(r).host, "::1");
}

TEST(ClientCli, MaxReply) {
  EXPECT_EQ(ok({}).max_reply, std::size_t{1} << 20);
  EXPECT_EQ(ok({"--max-reply", "65536"}).max_reply, 65536U);
  auto r = parse({"--max-reply", "0"});
  ASSERT_TRUE(std::holds_alternative<ClientCliExit>(r));
  EXPECT_EQ(std::get<ClientCliExit>(r).code, 2);
}

TEST(ClientCli, UdpFlagsAndWhatTheyCannotBeCombinedWith) {
  ClientConfig single = ok({"--udp", "--msg", "x", "--retries", "3"});
  EXPECT_TRUE(single.udp);
  EXPECT_EQ(single.retries, 3u);
  EXPECT_FALSE(single.load_mode());
  ClientConfig load =
      ok({"--udp", "--rate", "1000", "--duration", "2", "--size", "200", "--rcvbuf", "1048576"});
  EXPECT_TRUE(load.load_mode());
  EXPECT_EQ(load.size, 200u);
  EXPECT_EQ(load.rcvbuf, 1048576u);
  auto refused = [](const std::vector<const char*>& args, const std::string& why) {
    auto r = parse(args);
    ASSERT_TRUE(std::holds_alternative<ClientCliExit>(r));
    const auto& e = std::get<ClientCliExit>(r);
    EXPECT_EQ(e.code, 2);
    EXPECT_NE(e.text.find(why), std::string::npos) << e.text;
  };
  refused({"--retries", "1"}, "--retries requires --udp");
  refused({"--udp", "--keepalive", "--count", "5"}, "--keepalive has no meaning with --udp");
  refused({"--udp", "--duration", "1", "--interval", "0.5"}, "TCP load options");
  refused({"--udp", "--size", "70000", "--count", "2"}, "at most 65507 bytes");
}

TEST(ClientCli, ThresholdsTakeTheStrictestAndNeedTcpLoadMode) {
  ClientConfig c = ok({"--count", "10", "--max-p99-ms", "5", "--max-p99-ms", "3", "--min-rps",
                       "100", "--min-rps", "200", "--max-failed", "4", "--max-p999-ms", "9"});
  EXPECT_EQ(c.max_p99_ms, 3.0);
  EXPECT_EQ(c.max_p999_ms, 9.0);
  EXPECT_EQ(c.min_rps, 200.0);
  EXPECT_EQ(c.max_failed, 4u);
  for (const std::vector<const char*>& args :
       {std::vector<const char*>{"--max-p99-ms", "5"},
        std::vector<const char*>{"--udp", "--count", "5", "--min-rps", "1"}}) {
    auto r = parse(args);
    ASSERT_TRUE(std::holds_alternative<ClientCliExit>(r));
    EXPECT_EQ(std::get<ClientCliExit>(r).code, 2);
    EXPECT_NE(std::get<ClientCliExit>(r).text.find("go with TCP load mode"), std::string::npos);
  }
}
