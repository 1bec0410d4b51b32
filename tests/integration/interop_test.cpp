// The tutorial's own Python server and client, and standard tools, against ours.
#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "net.hpp"
#include "process.hpp"

using namespace testing_support;

namespace {

std::string interop(const char* script) {
  return std::string(INTEROP_DIR) + "/" + script;
}

bool have(const char* tool) {
  return run({"sh", "-c", std::string("command -v ") + tool}, 10s).exit_code == 0;
}

}  // namespace

TEST(Interop, TcpcAgainstTheTutorialServer) {
  const int port = unused_port();
  // -u: unbuffered, so its prints reach us as they happen (the script itself is unchanged).
  Process server(
      {"python3", "-u", interop("tutorial_server.py"), "127.0.0.1", std::to_string(port)});
  auto line = server.read_line(20s);
  ASSERT_TRUE(line && line->find("Server is listening") != std::string::npos) << server.err();
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(port)}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\n");
  // tcpc sends a line; the tutorial server receives it as its one message.
  bool received = false;
  for (int i = 0; i < 5 && !received; ++i) {
    auto got = server.read_line(5s);
    received = got && got->find("Received message from client: Hello from the client!") !=
                          std::string::npos;
  }
  EXPECT_TRUE(received) << server.out();
}

TEST(Interop, TutorialClientAgainstTcpdPromptly) {
  Tcpd srv({"--quiet"});
  const auto start = std::chrono::steady_clock::now();
  auto r =
      run({"python3", interop("tutorial_client.py"), "127.0.0.1", std::to_string(srv.port)}, 20s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Received response from server: Hello from the server!\n"),
            std::string::npos)
      << r.out;
  EXPECT_LT(took, 5s);  // the interpreter's start dominates; the server adds its 20 ms pause
}

TEST(Interop, SocatLineSession) {
  ASSERT_TRUE(have("socat")) << "scripts/test.sh installs socat";
  Tcpd srv({"--quiet"});
  auto r = run(
      {"sh", "-c", "printf 'a\\nb\\n' | socat -t 2 - TCP:127.0.0.1:" + std::to_string(srv.port)},
      20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\nHello from the server!\n");
}

TEST(Interop, NetcatLineSession) {
  ASSERT_TRUE(have("nc")) << "scripts/test.sh installs netcat-openbsd";
  Tcpd srv({"--quiet"});
  auto r =
      run({"sh", "-c", "printf 'a\\nb\\n' | nc -N 127.0.0.1 " + std::to_string(srv.port)}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello from the server!\nHello from the server!\n");
}
