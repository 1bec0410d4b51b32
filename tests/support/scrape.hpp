#pragma once

// Reading tcpd's /metrics in tests: the port from its log line, a scrape, the samples by series.

#include <map>
#include <string>

#include "net.hpp"
#include "process.hpp"

namespace testing_support {

// The metrics port, from tcpd's "metrics on http://ADDR:PORT/metrics" line; -1 when not seen.
int metrics_port(Process& p);

struct HttpReply {
  std::string status;  // "200 OK"
  std::string headers;
  std::string body;
};
HttpReply http(int port, const std::string& request, Ms timeout = 5s);
std::string scrape(int port);

// Sample values by series ("tcpd_requests_total",
// "tcpd_connections_closed_total{outcome=\"served\"}").
std::map<std::string, double> samples(const std::string& text);
// The sum of tcpd_connections_closed_total over its outcomes.
double closed_sum(const std::map<std::string, double>& m);

}  // namespace testing_support
