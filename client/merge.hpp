#pragma once

#include <string>
#include <utility>
#include <vector>

#include "client_config.hpp"
#include "load.hpp"
#include "udp_load.hpp"

namespace tcpd {

// A --json result to merge, and where it came from (for error messages).
struct RunText {
  std::string origin;  // "FILE" or "FILE:LINE"
  std::string json;
};

// Combines results from several generators into one, as if one generator had made them all:
// counts and bytes summed; latency from the merged histograms; rates over the union of the
// measured windows (time covered by at least one). `cfg` receives what the summary is printed
// with: the first run's mode and percentiles, concurrency and rate summed. Intervals are not
// merged (generators' intervals do not line up). Throws std::runtime_error naming the run.
LoadResult merge_runs(const std::vector<RunText>& runs, ClientConfig& cfg);

// The same for --udp results: datagrams sent, received, duplicated and reordered summed (lost
// follows), the jitter averaged over the replies, latency from the merged histograms.
UdpLoadResult merge_udp_runs(const std::vector<RunText>& runs, ClientConfig& cfg);

// The length of the union of [start, end) windows.
double union_seconds(std::vector<std::pair<double, double>> windows);

}  // namespace tcpd
