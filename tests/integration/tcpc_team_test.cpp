// tcpc for teams and CI: merged results from several generators, several targets, a source
// address, pipelining, request templates, the HdrHistogram log and the documented JSON schema,
// each against real servers on 127.0.0.1.

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "fake_server.hpp"
#include "process.hpp"
#include "tcpc_json.hpp"

using namespace testing_support;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::vector<std::string> at(int port, std::vector<std::string> extra) {
  std::vector<std::string> argv{TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "tcpc_team_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// The server's summary line, after SIGTERM: its counter `key`.
long server_counter(Tcpd& srv, const std::string& key) {
  srv.proc->signal(SIGTERM);
  const std::string err = srv.proc->wait(30s).err;
  std::smatch m;
  if (!std::regex_search(err, m, std::regex(" " + key + "=(\\d+)"))) return -1;
  return std::stol(m[1]);
}

// Every key of `j`, nested objects as "outer.inner" (array elements and histogram buckets
// aside: their count varies with the run).
void keys_of(const json& j, const std::string& prefix, std::set<std::string>& out) {
  for (const auto& [k, v] : j.items()) {
    out.insert(prefix + k);
    if (v.is_object() && k != "percentiles_us") keys_of(v, prefix + k + ".", out);
  }
}

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> out;
  keys_of(j, "", out);
  return out;
}

// Two tcpc processes started together with the same `load` against `port`: their results.
std::pair<RunResult, RunResult> two_generators(int port, const std::vector<std::string>& load) {
  Process a(at(port, load));
  Process b(at(port, load));
  return {a.wait(30s), b.wait(30s)};
}

}  // namespace

// Two generators started together against one server, merged: counts add up, the rate is over
// the union of their windows, and the merged percentiles lie within the two runs' own.
TEST(Merge, TwoGeneratorsAgainstOneServerAddUp) {
  Tcpd srv({"--quiet", "--workers", "4"});
  const std::vector<std::string> load{"--duration",    "1", "--rate",      "400",
                                      "--concurrency", "4", "--keepalive", "--json"};
  const auto [ra, rb] = two_generators(srv.port, load);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  const json ja = parse_json(ra.out);
  const json jb = parse_json(rb.out);
  const std::string fa = temp_path("a.json");
  const std::string fb = temp_path("b.json");
  write_file(fa, ra.out);
  write_file(fb, rb.out);
  const RunResult m = run({TCPC_BIN, "merge", fa, fb}, 30s);
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const json j = parse_json(m.out);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["runs"], 2);
  EXPECT_EQ(j["requests"], ja["requests"].get<long>() + jb["requests"].get<long>());
  EXPECT_EQ(j["ok"], 800) << m.out;
  EXPECT_EQ(j["bytes_sent"], ja["bytes_sent"].get<long>() + jb["bytes_sent"].get<long>());
  EXPECT_EQ(j["concurrency"], 8);
  EXPECT_EQ(j["target_rps"], 800);
  EXPECT_EQ(j["targets"].size(), 1u);
  EXPECT_EQ(j["targets"][0]["ok"], 800);
  // Started together, the windows overlap: the union is about one run's second, not two.
  EXPECT_GT(j["seconds"].get<double>(), 0.9) << m.out;
  EXPECT_LT(j["seconds"].get<double>(), 1.6) << m.out;
  EXPECT_GT(j["rps"].get<double>(), 500) << m.out;
  for (const char* p : {"p50_us", "p99_us", "max_us"}) {
    const long lo = std::min(ja[p].get<long>(), jb[p].get<long>());
    const long hi = std::max(ja[p].get<long>(), jb[p].get<long>());
    EXPECT_GE(j[p].get<long>(), lo) << p;
    EXPECT_LE(j[p].get<long>(), hi) << p;
  }
  EXPECT_EQ(j["max_us"], std::max(ja["max_us"].get<long>(), jb["max_us"].get<long>()));
  // The text summary of the same merge, and thresholds judged on the merged figures.
  const RunResult text = run({TCPC_BIN, "merge", "--text", fa, fb}, 30s);
  EXPECT_NE(text.out.find("800 ok"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("merged: 2 runs"), std::string::npos) << text.out;
  const RunResult strict = run({TCPC_BIN, "merge", "--min-rps", "1000000", fa, fb}, 30s);
  EXPECT_EQ(strict.exit_code, 3) << strict.err;
  EXPECT_NE(strict.err.find("--min-rps 1e+06 violated"), std::string::npos) << strict.err;
}

// Two UDP generators against one echoing tcpd, merged: datagrams add up, nothing lost.
TEST(Merge, TwoUdpGeneratorsAddUp) {
  Tcpd srv({"--quiet", "--udp", "--mode", "echo"});
  const std::vector<std::string> load{"--udp", "--count", "2000", "--concurrency", "4", "--json"};
  const auto [ra, rb] = two_generators(srv.port, load);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  const std::string both = temp_path("udp.jsonl");
  write_file(both, ra.out + rb.out);  // one file, a result per line
  const RunResult m = run({TCPC_BIN, "merge", both}, 30s);
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const json j = parse_json(m.out);
  EXPECT_EQ(j["protocol"], "udp");
  EXPECT_EQ(j["runs"], 2);
  EXPECT_EQ(j["sent"], 4000);
  EXPECT_EQ(j["received"], 4000);
  EXPECT_EQ(j["lost"], 0);
  EXPECT_EQ(j["concurrency"], 8);
  EXPECT_EQ(j["histograms"]["latency"]["count"], 4000);
  const long p99a = parse_json(ra.out)["p99_us"];
  const long p99b = parse_json(rb.out)["p99_us"];
  EXPECT_GE(j["p99_us"].get<long>(), std::min(p99a, p99b));
  EXPECT_LE(j["p99_us"].get<long>(), std::max(p99a, p99b));
  const RunResult limits = run({TCPC_BIN, "merge", "--max-p99-ms", "5", both}, 30s);
  EXPECT_EQ(limits.exit_code, 1);
  EXPECT_NE(limits.err.find("thresholds judge TCP results"), std::string::npos) << limits.err;
}

TEST(Merge, RefusesWhatIsNotAResultNamingTheFile) {
  const std::string bad = temp_path("bad.json");
  write_file(bad, "{\"hello\":1}\n");
  const RunResult r = run({TCPC_BIN, "merge", bad}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad + ": not a tcpc --json result"), std::string::npos) << r.err;
  const RunResult missing = run({TCPC_BIN, "merge", temp_path("nope.json")}, 10s);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
  const RunResult none = run({TCPC_BIN, "merge"}, 10s);
  EXPECT_EQ(none.exit_code, 2) << none.err;
  const RunResult help = run({TCPC_BIN, "merge", "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--text"), std::string::npos) << help.out;
  EXPECT_NE(run({TCPC_BIN, "--help"}, 10s).out.find("tcpc merge FILE..."), std::string::npos);
}

// Connections go round-robin over the targets; the JSON counts each, and each server saw
// exactly its share.
TEST(Targets, ConnectionsSpreadRoundRobinAndEachIsCounted) {
  Tcpd one({"--quiet"});
  Tcpd two({"--quiet"});
  const RunResult r = run({TCPC_BIN, "--target", "127.0.0.1:" + std::to_string(one.port),
                           "--target", "127.0.0.1:" + std::to_string(two.port), "--count", "400",
                           "--concurrency", "4", "--keepalive", "--json"},
                          30s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r.out);
  ASSERT_EQ(j["targets"].size(), 2u);
  const long a = j["targets"][0]["ok"];
  const long b = j["targets"][1]["ok"];
  EXPECT_EQ(a + b, 400);
  EXPECT_GT(a, 0);
  EXPECT_GT(b, 0);
  EXPECT_EQ(server_counter(one, "requests"), a);
  EXPECT_EQ(server_counter(two, "requests"), b);
  const RunResult few =
      run({TCPC_BIN, "--target", "127.0.0.1:1", "--target", "127.0.0.1:2", "--count", "10"}, 10s);
  EXPECT_EQ(few.exit_code, 2);
  EXPECT_NE(few.err.find("2 targets need --concurrency 2"), std::string::npos) << few.err;
}

// A server that admits one address only: tcpc reaches it from that address with --source, and
// is refused without.
TEST(Source, ConnectionsComeFromTheGivenAddress) {
  // Not one of the 64 loopback addresses tcpc spreads one-shot connections over by itself.
  Tcpd srv({"--quiet", "--allow", "127.0.0.200/32"});
  const RunResult with = run(
      at(srv.port, {"--source", "127.0.0.200", "--count", "50", "--concurrency", "2", "--json"}),
      30s);
  EXPECT_EQ(with.exit_code, 0) << with.err;
  EXPECT_EQ(parse_json(with.out)["ok"], 50) << with.out;
  const RunResult without = run(
      at(srv.port, {"--count", "10", "--concurrency", "2", "--timeout-ms", "2000", "--json"}), 30s);
  EXPECT_NE(without.exit_code, 0);
  EXPECT_EQ(parse_json(without.out)["ok"], 0) << without.out;
  const RunResult wrong = run(at(srv.port, {"--source", "::1", "--count", "5"}), 10s);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("--source"), std::string::npos) << wrong.err;
}

// A server that answers only once four requests are waiting: with --pipeline 4 every request
// gets its reply; one at a time, none does. The templates are filled per request.
TEST(Pipeline, RequestsInFlightTogetherAndTemplatesFilledPerRequest) {
  FakeServer fake(FakeServer::Kind::batch, "4");
  const RunResult r =
      run(at(fake.port(), {"--keepalive", "--pipeline", "4", "--concurrency", "1", "--count", "16",
                           "--timeout-ms", "3000", "--msg", "r-{conn}-{seq}-{rand:6}", "--json"}),
          30s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(parse_json(r.out)["ok"], 16) << r.out;
  const auto lines = fake.lines();
  ASSERT_EQ(lines.size(), 16u);
  std::set<long> seqs;
  const std::regex shape("r-0-(\\d+)-[a-z0-9]{6}");
  std::set<std::string> rands;
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, shape)) << line;
    seqs.insert(std::stol(m[1]));
    rands.insert(line.substr(line.size() - 6));
  }
  EXPECT_EQ(seqs.size(), 16u);
  EXPECT_EQ(*seqs.rbegin(), 15);
  EXPECT_GT(rands.size(), 12u);  // random, so nearly always all different
  FakeServer fake2(FakeServer::Kind::batch, "4");
  const RunResult single =
      run(at(fake2.port(), {"--keepalive", "--count", "4", "--timeout-ms", "500", "--json"}), 30s);
  EXPECT_EQ(single.exit_code, 1);
  EXPECT_EQ(parse_json(single.out)["timeout"], 4) << single.out;
  EXPECT_TRUE(fake2.lines().empty());
}

// With --rate, a connection reopened after the server closed it takes as many requests as the
// first one did: it is offered while it connects, not only after its first reply.
TEST(Pipeline, AReopenedConnectionIsFilledInAnOpenLoop) {
  FakeServer fake(FakeServer::Kind::batch, "4,close");
  const RunResult r =
      run(at(fake.port(), {"--keepalive", "--pipeline", "4", "--concurrency", "1", "--rate", "200",
                           "--count", "12", "--timeout-ms", "2000", "--json"}),
          30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(parse_json(r.out)["ok"], 12) << r.out;
  EXPECT_EQ(fake.accepted(), 3);
}

// Pipelined against tcpd itself (echoing): every request answered whole and counted once by
// the server, 64 in flight per connection.
TEST(Pipeline, TcpdAnswersEveryPipelinedRequest) {
  Tcpd srv({"--quiet", "--workers", "2", "--mode", "echo"});
  const RunResult r =
      run(at(srv.port, {"--keepalive", "--pipeline", "64", "--concurrency", "2", "--count", "5000",
                        "--msg", "p {seq} {rand:200}", "--json"}),
          60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r.out);
  EXPECT_EQ(j["ok"], 5000) << r.out;
  EXPECT_EQ(j["pipeline"], 64);
  EXPECT_EQ(j["bytes_received"], j["bytes_sent"]) << r.out;  // echoes, each whole
  EXPECT_EQ(server_counter(srv, "requests"), 5000);
}

// Against tcpd itself: {rand:N} makes requests of the size asked, as its --max-message sees.
TEST(Templates, FillTheRequestsARealServerJudges) {
  Tcpd srv({"--quiet", "--max-message", "40"});
  const RunResult small = run(at(srv.port, {"--count", "20", "--concurrency", "2", "--msg",
                                            "id {conn}/{seq} {rand:8}", "--json"}),
                              30s);
  EXPECT_EQ(parse_json(small.out)["ok"], 20) << small.out << small.err;
  const RunResult big = run(
      at(srv.port, {"--count", "20", "--concurrency", "2", "--msg", "{rand:64}", "--json"}), 30s);
  EXPECT_EQ(parse_json(big.out)["too_long"], 20) << big.out;
  EXPECT_EQ(parse_json(big.out)["bytes_sent"], 20 * 65) << big.out;
  const RunResult typo = run(at(srv.port, {"--msg", "{nope}"}), 10s);
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("unknown placeholder {nope}"), std::string::npos) << typo.err;
  const RunResult braces = run(at(srv.port, {"--msg", "{{literal}}"}), 10s);
  EXPECT_EQ(braces.exit_code, 0) << braces.err;
}

// --hlog writes HdrHistogram's interval log; real zlib (Python's) inflates each interval, and
// their counts add up to the run's successful requests.
TEST(Hlog, IntervalsDecodeAndAddUpToTheRun) {
  Tcpd srv({"--quiet"});
  const std::string hlog = temp_path("run.hlog");
  const RunResult r = run(at(srv.port, {"--duration", "1.5", "--rate", "200", "--concurrency", "2",
                                        "--keepalive", "--hlog", hlog, "--json"}),
                          30s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RunResult decoded =
      run({"python3", std::string(SOURCE_DIR) + "/tests/support/hlog_counts.py", hlog}, 30s);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  std::istringstream in(decoded.out);
  long intervals = 0;
  long total = 0;
  in >> intervals >> total;
  EXPECT_EQ(intervals, 2) << decoded.out;
  EXPECT_EQ(total, parse_json(r.out)["ok"].get<long>()) << decoded.out;
}

// docs/tcpc-json.md: every example parses, says schema 1, and has exactly the fields tcpc
// prints, for a run, a run that could not start, and a merge.
TEST(JsonSchema, EveryExampleInTheDocumentIsWhatTcpcPrints) {
  std::ifstream doc(std::string(SOURCE_DIR) + "/docs/tcpc-json.md");
  ASSERT_TRUE(doc);
  std::vector<json> examples;
  std::string line;
  std::string block;
  bool in_block = false;
  while (std::getline(doc, line)) {
    if (line == "```json") {
      in_block = true;
      block.clear();
    } else if (line == "```" && in_block) {
      in_block = false;
      examples.push_back(json::parse(block));
    } else if (in_block) {
      block += line + "\n";
    }
  }
  ASSERT_GE(examples.size(), 4u);
  Tcpd srv({"--quiet", "--udp", "--mode", "echo"});
  const RunResult ok = run(at(srv.port, {"--count", "50", "--rate", "500", "--concurrency", "2",
                                         "--interval", "0.05", "--max-p99-ms", "1000", "--json"}),
                           30s);
  const RunResult failed = run(at(unused_port(), {"--count", "5", "--json"}), 10s);
  EXPECT_EQ(failed.exit_code, 1);
  const std::string f = temp_path("schema.json");
  write_file(f, ok.out);
  const RunResult merged = run({TCPC_BIN, "merge", f, f}, 10s);
  const RunResult udp = run(at(srv.port, {"--udp", "--count", "20", "--json"}), 30s);
  const RunResult udp_failed =
      run({TCPC_BIN, "--udp", "--host", "no-such-host.invalid", "--count", "5", "--json"}, 30s);
  const std::set<std::string> live = keys_of(parse_json(ok.out));
  const std::set<std::string> live_udp = keys_of(parse_json(udp.out));
  EXPECT_EQ(keys_of(parse_json(failed.out)), live) << "a failure has the shape of a success";
  EXPECT_EQ(keys_of(parse_json(merged.out)), live) << "a merge has the shape of a run";
  EXPECT_EQ(keys_of(parse_json(udp_failed.out)), live_udp) << udp_failed.out;
  for (const json& e : examples) {
    EXPECT_EQ(e["schema"], 1) << e.dump();
    EXPECT_EQ(keys_of(e), e["protocol"] == "udp" ? live_udp : live) << e.dump();
  }
}

// --proxy-header on the wire: tcpd reads the client address tcpc's header carries (192.0.2.1),
// so an allow list of that address alone admits every request, and one without it none.
TEST(ProxyHeader, TcpdReadsTheClientAddressTcpcSends) {
  Tcpd admits({"--quiet", "--proxy-protocol", "--allow", "192.0.2.1/32"});
  for (const char* version : {"1", "2"}) {
    const RunResult r = run(at(admits.port, {"--proxy-header", version, "--count", "20",
                                             "--concurrency", "2", "--json"}),
                            30s);
    EXPECT_EQ(r.exit_code, 0) << version << r.err;
    EXPECT_EQ(parse_json(r.out)["ok"], 20) << version << r.out;
  }
  Tcpd refuses({"--quiet", "--proxy-protocol", "--allow", "10.0.0.0/8"});
  const RunResult r = run(at(refuses.port, {"--proxy-header", "2", "--count", "10", "--concurrency",
                                            "2", "--timeout-ms", "2000", "--json"}),
                          30s);
  const json j = parse_json(r.out);
  EXPECT_EQ(j["ok"], 0) << r.out;
  // Each request was refused; one sent on the connection tcpc found the server with is sent
  // once more on a new one (a keep-alive retry), and refused again.
  EXPECT_EQ(server_counter(refuses, "denied"), 10 + j["reconnects"].get<long>()) << r.out;
}
