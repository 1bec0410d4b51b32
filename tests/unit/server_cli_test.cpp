#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

#include "tcpd_cli.hpp"

using tcpd::CliExit;
using tcpd::ServerConfig;

namespace {

std::variant<ServerConfig, CliExit> parse(const std::vector<const char*>& args) {
  std::vector<const char*> argv{"tcpd"};
  argv.insert(argv.end(), args.begin(), args.end());
  return tcpd::parse_server_cli(static_cast<int>(argv.size()), argv.data());
}

ServerConfig ok(const std::vector<const char*>& args) {
  auto r = parse(args);
  if (auto* e = std::get_if<CliExit>(&r)) ADD_FAILURE() << e->text;
  return std::get<ServerConfig>(r);
}

CliExit bad(const std::vector<const char*>& args) {
  auto r = parse(args);
  EXPECT_TRUE(std::holds_alternative<CliExit>(r));
  return std::get<CliExit>(r);
}

}  // namespace

TEST(ServerCli, Defaults) {
  ServerConfig c = ok({});
  EXPECT_EQ(c.bind, "");
  EXPECT_EQ(c.port, 12345);
  EXPECT_EQ(c.workers, 8u);
  EXPECT_EQ(c.queue, 1024u);
  EXPECT_EQ(c.mode, tcpd::Mode::greet);
  EXPECT_EQ(c.reply, "Hello from the server!");
  EXPECT_EQ(c.delay.count(), 0);
  EXPECT_EQ(c.max_message, 65536u);
  EXPECT_EQ(c.idle_timeout.count(), 10000);
  EXPECT_EQ(c.io_timeout.count(), 5000);
  EXPECT_EQ(c.drain_timeout.count(), 5000);
  EXPECT_EQ(c.log_level, tcpd::LogLevel::info);
  EXPECT_EQ(c.log_format, tcpd::LogFormat::text);
  EXPECT_EQ(c.metrics, "");
}

TEST(ServerCli, EveryFlag) {
  ServerConfig c = ok({"--bind",
                       "::1",
                       "--port",
                       "0",
                       "--workers",
                       "3",
                       "--queue",
                       "1",
                       "--mode",
                       "echo",
                       "--reply",
                       "hi there",
                       "--delay-ms",
                       "25",
                       "--max-message",
                       "10",
                       "--idle-timeout-ms",
                       "100",
                       "--io-timeout-ms",
                       "200",
                       "--drain-timeout-ms",
                       "300",
                       "--quiet"});
  EXPECT_EQ(c.bind, "::1");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.queue, 1u);
  EXPECT_EQ(c.mode, tcpd::Mode::echo);
  EXPECT_EQ(c.reply, "hi there");
  EXPECT_EQ(c.delay.count(), 25);
  EXPECT_EQ(c.max_message, 10u);
  EXPECT_EQ(c.idle_timeout.count(), 100);
  EXPECT_EQ(c.io_timeout.count(), 200);
  EXPECT_EQ(c.drain_timeout.count(), 300);
  EXPECT_EQ(c.log_level, tcpd::LogLevel::warn);
}

TEST(ServerCli, BadValuesExitTwoWithOneLineNamingTheFlag) {
  struct Case {
    std::vector<const char*> args;
    const char* mentions;
  };
  for (const Case& c : std::vector<Case>{{{"--port", "70000"}, "--port"},
                                         {{"--port", "-1"}, "--port"},
                                         {{"--workers", "0"}, "--workers"},
                                         {{"--workers", "many"}, "--workers"},
                                         {{"--queue", "0"}, "--queue"},
                                         {{"--mode", "shout"}, "--mode"},
                                         {{"--reply", "two\nlines"}, "newline"},
                                         {{"--max-message", "0"}, "--max-message"},
                                         {{"--idle-timeout-ms", "0"}, "--idle-timeout-ms"},
                                         {{"--metrics", "127.0.0.1"}, "--metrics"},
                                         {{"--metrics", "127.0.0.1:99999"}, "--metrics"},
                                         {{"--frobnicate"}, "--frobnicate"},
                                         {{"stray"}, "stray"}}) {
    CliExit e = bad(c.args);
    EXPECT_EQ(e.code, 2);
    EXPECT_NE(e.text.find(c.mentions), std::string::npos) << e.text;
    EXPECT_EQ(e.text.rfind("tcpd: ", 0), 0u) << e.text;
    EXPECT_EQ(e.text.find('\n'), e.text.size() - 1) << "one line: " << e.text;
  }
}

TEST(ServerCli, HelpAndVersionExitZero) {
  CliExit h = bad({"--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.text.find("--workers"), std::string::npos);
  CliExit v = bad({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.text.find("tcpd "), std::string::npos);
}

TEST(ServerCli, MessagesSayWhatIsWrongWithTheValue) {
  EXPECT_EQ(bad({"--port", "abc"}).text, "tcpd: --port: abc is not an integer (see tcpd --help)\n");
  EXPECT_EQ(bad({"--port", "70000"}).text,
            "tcpd: --port: 70000 is not between 0 and 65535 (see tcpd --help)\n");
  EXPECT_EQ(bad({"--port"}).text, "tcpd: --port: needs a value (see tcpd --help)\n");
  EXPECT_EQ(bad({"--metrics", "[::1]:http"}).text,
            "tcpd: --metrics: [::1]:http: port http is not an integer (see tcpd --help)\n");
  EXPECT_EQ(bad({"--metrics", "127.0.0.1:70000"}).text,
            "tcpd: --metrics: 127.0.0.1:70000: port 70000 is not between 0 and 65535 (see tcpd "
            "--help)\n");
  EXPECT_EQ(ok({"--metrics", "[::1]:0"}).metrics, "[::1]:0");
  const std::string help = std::get<CliExit>(parse({"--help"})).text;
  EXPECT_NE(help.find("--port N=12345"), std::string::npos) << help;
  EXPECT_NE(help.find("--idle-timeout-ms MS=10000"), std::string::npos) << help;
  EXPECT_EQ(help.find("INT:INT"), std::string::npos) << help;
  EXPECT_EQ(help.find("TEXT:TEXT"), std::string::npos) << help;
}

// A newline in --name would forge log lines, and bytes that are not UTF-8 would break JSON logs:
// both are refused at start-up, naming the flag.
TEST(ServerCli, NameMustBePrintableUtf8) {
  EXPECT_EQ(ok({"--name", "edge-1"}).name, "edge-1");
  EXPECT_EQ(ok({"--name", "n\xc3\xa4me"}).name, "n\xc3\xa4me");
  CliExit nl = bad({"--name", "a\nforged line"});
  EXPECT_EQ(nl.code, 2);
  EXPECT_EQ(nl.text, "tcpd: --name: contains a control character (0x0a) (see tcpd --help)\n");
  CliExit esc = bad({"--name", "a\x1b[31m"});
  EXPECT_EQ(esc.code, 2);
  EXPECT_NE(esc.text.find("control character (0x1b)"), std::string::npos) << esc.text;
  CliExit utf = bad({"--name", "a\xff"});
  EXPECT_EQ(utf.code, 2);
  EXPECT_EQ(utf.text, "tcpd: --name: is not valid UTF-8 (see tcpd --help)\n");
}

TEST(ServerCli, OneShotWait) {
  EXPECT_EQ(ok({}).oneshot_wait, std::chrono::milliseconds(20));
  EXPECT_EQ(ok({"--oneshot-wait-ms", "0"}).oneshot_wait, std::chrono::milliseconds(0));
  EXPECT_EQ(ok({"--oneshot-wait-ms", "250"}).oneshot_wait, std::chrono::milliseconds(250));
  EXPECT_EQ(bad({"--oneshot-wait-ms", "-1"}).code, 2);
  EXPECT_EQ(bad({"--oneshot-wait-ms", "60001"}).code, 2);
}

TEST(ServerCli, UdpFlags) {
  ServerConfig off = ok({});
  EXPECT_FALSE(off.udp);
  EXPECT_EQ(off.udp_source_rate, 0u);
  EXPECT_TRUE(off.udp_shared_socket);
  EXPECT_EQ(off.udp_batch, 16u);
  EXPECT_EQ(off.udp_workers, 0u);
  ServerConfig on = ok({"--udp", "--udp-source-rate", "100", "--udp-socket", "reuseport",
                        "--udp-batch", "32", "--udp-workers", "3"});
  EXPECT_TRUE(on.udp);
  EXPECT_EQ(on.udp_source_rate, 100u);
  EXPECT_FALSE(on.udp_shared_socket);
  EXPECT_EQ(on.udp_workers, 3u);
  EXPECT_EQ(on.udp_batch, 32u);
  EXPECT_EQ(bad({"--udp-batch", "0"}).code, 2);
  EXPECT_EQ(bad({"--udp-batch", "65"}).code, 2);
  EXPECT_EQ(bad({"--udp-socket", "many"}).code, 2);
  EXPECT_EQ(bad({"--udp-source-rate", "-1"}).code, 2);
}

TEST(ServerCli, FrontDoorFlags) {
  ServerConfig off = ok({});
  EXPECT_FALSE(off.proxy_protocol);
  EXPECT_EQ(off.proxy_timeout, tcpd::Millis{3000});
  ASSERT_TRUE(off.proxy_from);
  EXPECT_EQ(off.proxy_from->size(), 2u);  // 127.0.0.0/8 and ::1/128
  EXPECT_FALSE(off.allow);
  EXPECT_FALSE(off.deny);
  EXPECT_EQ(off.max_conns_per_client, 0u);
  ServerConfig on = ok({"--proxy-protocol", "--proxy-timeout-ms", "500", "--proxy-from", "10.0.0.1",
                        "--allow", "10.0.0.0/8,192.0.2.0/24", "--allow", "2001:db8::/32", "--deny",
                        "10.9.0.0/16", "--max-conns-per-client", "4"});
  EXPECT_TRUE(on.proxy_protocol);
  EXPECT_EQ(on.proxy_timeout, tcpd::Millis{500});
  EXPECT_EQ(on.proxy_from->size(), 1u);
  EXPECT_EQ(on.allow->size(), 3u);
  EXPECT_EQ(on.deny->size(), 1u);
  EXPECT_EQ(on.max_conns_per_client, 4u);
  CliExit e = bad({"--allow", "10.0.0.0/33"});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.text.find("10.0.0.0/33: the prefix length must be 0 to 32"), std::string::npos)
      << e.text;
  EXPECT_EQ(bad({"--deny", "bogus"}).code, 2);
  EXPECT_EQ(bad({"--proxy-from", "1.2.3.4,"}).code, 2);
  EXPECT_EQ(bad({"--max-conns-per-client", "-1"}).code, 2);
}
