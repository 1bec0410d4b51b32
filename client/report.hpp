#pragma once

#include <string>

#include "client_config.hpp"
#include "load.hpp"

namespace tcpd {

std::string load_summary_text(const ClientConfig& cfg, const LoadResult& r);
// One JSON object on one line: mode, concurrency, requests, ok, failed, each failure kind,
// seconds, rps, p50_us, p90_us, p99_us, p999_us, max_us.
std::string load_summary_json(const ClientConfig& cfg, const LoadResult& r);
// Lines naming the fix when the client itself ran out of ports or descriptors.
std::string load_hints(const LoadResult& r);

}  // namespace tcpd
