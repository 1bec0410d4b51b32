#pragma once

#include <string>
#include <string_view>

#include "client_config.hpp"
#include "load.hpp"
#include "udp_load.hpp"

namespace tcpd {

// tcpc's JSON result, schema 1 (docs/tcpc-json.md): one object on one line, with the same
// fields whether the run succeeded, failed to start ("error" set) or was interrupted. It holds
// the full latency histograms, so that results from several generators can be merged.
std::string load_summary_json(const ClientConfig& cfg, const LoadResult& r);

// The object of a run that could not start: every field, zero or null, and "error".
std::string load_error_json(const ClientConfig& cfg, const std::string& error);

// A run read back from its JSON (what `tcpc merge` needs): the result, and in `cfg` what the
// summary is printed with (mode, concurrency, pipeline, rate, percentiles). Throws
// std::runtime_error naming what is missing or malformed.
LoadResult load_result_from_json(std::string_view text, ClientConfig& cfg);

// The UDP result (schema 1, "protocol":"udp"), and the one of a run that could not start.
std::string udp_summary_json(const ClientConfig& cfg, const UdpLoadResult& r);
std::string udp_error_json(const ClientConfig& cfg, const std::string& error);
// A UDP result read back, as load_result_from_json() does for TCP (`cfg.udp` set).
UdpLoadResult udp_result_from_json(std::string_view text, ClientConfig& cfg);

// "tcp", "udp", or "" when `text` is not a result.
std::string result_protocol(std::string_view text);

}  // namespace tcpd
