#pragma once

#include <string>

#include "client_config.hpp"
#include "load.hpp"

namespace tcpd {

// "host:port", "[::1]:port": the server as tcpc's messages and JSON name it.
std::string endpoint(const ClientConfig& cfg);

std::string load_summary_text(const ClientConfig& cfg, const LoadResult& r);
// With --rate, when less than 95% of the target was achieved: one line saying so and the likely
// cause (failures, too few connections for the server's latency, or the client itself).
std::string rate_warning(const ClientConfig& cfg, const LoadResult& r);
// With --rate, when sends left late waiting for a free connection (so the corrected latency
// measures tcpc's queue as much as the server): one line saying so and a --concurrency to use.
std::string concurrency_warning(const ClientConfig& cfg, const LoadResult& r);
// The full latency distribution in HdrHistogram's percentile text format (Value, Percentile,
// TotalCount, 1/(1-Percentile)), values in microseconds, for --histogram FILE.
std::string histogram_text(const Histogram& h);
// Lines naming the fix when the client itself ran out of ports or descriptors.
std::string load_hints(const LoadResult& r);

}  // namespace tcpd
