#include "scrape.hpp"

#include <regex>
#include <sstream>

namespace testing_support {

int metrics_port(Process& p) {
  if (!p.wait_stderr("/metrics", 20s)) return -1;
  std::smatch m;
  const std::string& err = p.err();
  if (!std::regex_search(err, m, std::regex(R"(metrics on http://[^ ]+:(\d+)/metrics)"))) return -1;
  return std::stoi(m[1]);
}

HttpReply http(int port, const std::string& request, Ms timeout) {
  Client c = Client::connect(port, timeout);
  HttpReply r;
  if (!c.valid() || !c.send(request, timeout)) return r;
  auto all = c.until_eof(timeout);
  if (!all) return r;
  const auto head_end = all->find("\r\n\r\n");
  const auto first = all->find("\r\n");
  if (head_end == std::string::npos || first == std::string::npos) return r;
  r.status = all->substr(all->find(' ') + 1, first - all->find(' ') - 1);
  r.headers = all->substr(0, head_end);
  r.body = all->substr(head_end + 4);
  return r;
}

std::string scrape(int port) {
  return http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body;
}

std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

double closed_sum(const std::map<std::string, double>& m) {
  double sum = 0;
  for (const auto& [k, v] : m) {
    if (k.rfind("tcpd_connections_closed_total{", 0) == 0) sum += v;
  }
  return sum;
}

}  // namespace testing_support
