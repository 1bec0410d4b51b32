#include "summary_json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>
#include <stdexcept>

#include "report.hpp"
#include "socket.hpp"
#include "thresholds.hpp"
#include "udp_single.hpp"
#include "version.hpp"

namespace tcpd {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kSchema = 1;
constexpr const char* kEncoding = "tcpc-sparse-1";

double rounded(double v, double scale) {
  return std::round(v * scale) / scale;
}

double rps_of(const LoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
}

std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm utc{};
  ::gmtime_r(&secs, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_seconds(double s) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(s)));
}

Json maybe(bool any, uint64_t v) {
  return any ? Json(v) : Json(nullptr);
}

// p50_us…max_us of `h` with `prefix` and `suffix` around the names; null when it is empty
// (percentiles of nothing are not 0).
void put_percentiles(Json& j, const Histogram& h, const std::string& prefix,
                     const std::string& suffix) {
  const bool any = h.count() > 0;
  j[prefix + "p50_us" + suffix] = maybe(any, h.percentile(0.50));
  j[prefix + "p90_us" + suffix] = maybe(any, h.percentile(0.90));
  j[prefix + "p99_us" + suffix] = maybe(any, h.percentile(0.99));
  j[prefix + "p999_us" + suffix] = maybe(any, h.percentile(0.999));
  j[prefix + "max_us" + suffix] = maybe(any, h.max());
}

Json histogram_json(const Histogram& h) {
  Json buckets = Json::array();
  h.for_each([&](uint64_t value, uint64_t count) {
    buckets.push_back(Json::array({value, count}));
  });
  return Json{{"count", h.count()},
              {"min", h.min()},
              {"max", h.max()},
              {"sum", h.sum()},
              {"sum_squares", h.sum_squares()},
              {"buckets", buckets}};
}

Histogram histogram_from(const Json& j) {
  Histogram h;
  for (const auto& b : j.at("buckets"))
    h.record_n(b.at(0).get<uint64_t>(), b.at(1).get<uint64_t>());
  if (h.count() != j.at("count").get<uint64_t>()) {
    throw std::runtime_error("a histogram's buckets do not add up to its count");
  }
  h.set_moments(j.at("min").get<uint64_t>(), j.at("max").get<uint64_t>(),
                j.at("sum").get<uint64_t>(), j.at("sum_squares").get<double>());
  return h;
}

void put_counts(Json& j, const LoadResult& r) {
  j["requests"] = r.requests;
  j["ok"] = r.ok;
  j["failed"] = r.failed();
  for (int k = 1; k < kFailureKinds; ++k) {
    j[std::string(failure_name(static_cast<Failure>(k)))] = r.failures[k];
  }
  j["reconnects"] = r.reconnects;
  j["unsent"] = r.unsent;
}

void put_rates(Json& j, const ClientConfig& cfg, const LoadResult& r) {
  j["seconds"] = rounded(r.seconds, 1e6);
  j["rps"] = rounded(rps_of(r), 10);
  j["target_rps"] = cfg.rate > 0 ? Json(cfg.rate) : Json(nullptr);
  j["bytes_sent"] = r.bytes_sent;
  j["bytes_received"] = r.bytes_received;
  const double s = r.seconds > 0 ? r.seconds : 1;
  j["sent_bytes_per_s"] = rounded(static_cast<double>(r.bytes_sent) / s, 10);
  j["received_bytes_per_s"] = rounded(static_cast<double>(r.bytes_received) / s, 10);
  j["client_cpu_s"] = rounded(r.client_cpu_s, 1e3);
  j["client_max_rss_kib"] = r.client_max_rss_kib;
}

void put_latency(Json& j, const ClientConfig& cfg, const LoadResult& r) {
  const Histogram& h = r.latency;
  const bool any = h.count() > 0;
  j["mean_us"] = any ? Json(rounded(h.mean(), 10)) : Json(nullptr);
  j["min_us"] = maybe(any, h.min());
  put_percentiles(j, h, "", "");
  Json pct = Json::object();
  for (double p : cfg.percentiles) pct[fmt::format("{:g}", p)] = maybe(any, h.percentile(p / 100));
  j["percentiles_us"] = pct;
  put_percentiles(j, r.latency_uncorrected ? *r.latency_uncorrected : h, "", "_uncorrected");
  put_percentiles(j, r.send_lateness ? *r.send_lateness : Histogram(), "send_lateness_", "");
}

Json thresholds_of(const ClientConfig& cfg, const LoadResult& r) {
  Json out = Json::array();
  for (const Threshold& t : check_thresholds(cfg, r)) {
    out.push_back({{"name", t.name},
                   {"limit", t.limit},
                   {"actual", t.actual ? Json(*t.actual) : Json(nullptr)},
                   {"held", t.held}});
  }
  return out;
}

Json intervals_of(const LoadResult& r) {
  Json out = Json::array();
  for (const IntervalStats& iv : r.intervals) {
    const bool any = iv.ok > 0;
    out.push_back({{"end_s", rounded(iv.end_s, 1e3)},
                   {"ok", iv.ok},
                   {"failed", iv.failed},
                   {"rps", rounded(iv.rps, 10)},
                   {"p50_us", maybe(any, iv.p50_us)},
                   {"p99_us", maybe(any, iv.p99_us)}});
  }
  return out;
}

Json targets_of(const ClientConfig& cfg, const LoadResult& r) {
  Json out = Json::array();
  if (r.targets.empty()) {
    for (const Endpoint& e : cfg.endpoints()) {
      out.push_back(
          {{"target", host_port(e.host, e.port)}, {"requests", 0}, {"ok", 0}, {"failed", 0}});
    }
  }
  for (const TargetCounts& t : r.targets) {
    out.push_back({{"target", t.name},
                   {"requests", t.requests},
                   {"ok", t.ok},
                   {"failed", t.requests - t.ok}});
  }
  return out;
}

}  // namespace

std::string load_summary_json(const ClientConfig& cfg, const LoadResult& r) {
  Json j;
  j["schema"] = kSchema;
  j["tool"] = "tcpc";
  j["version"] = kVersion;
  j["protocol"] = "tcp";
  j["mode"] = cfg.keepalive ? "keepalive" : "oneshot";
  j["error"] = r.error.empty() ? Json(nullptr) : Json(r.error);
  j["interrupted"] = r.interrupted;
  Json targets = targets_of(cfg, r);
  j["target"] = targets.at(0).at("target");
  j["targets"] = std::move(targets);
  j["start"] = rfc3339_ms(r.started_at);
  j["window_start_unix_s"] = rounded(unix_seconds(r.window_start), 1e6);
  j["runs"] = r.runs;
  j["threads"] = r.threads;
  j["concurrency"] = cfg.concurrency;
  j["pipeline"] = cfg.pipeline;
  j["rate"] = cfg.rate;
  put_counts(j, r);
  put_rates(j, cfg, r);
  put_latency(j, cfg, r);
  j["thresholds"] = thresholds_of(cfg, r);
  j["intervals"] = intervals_of(r);
  j["histograms"] = {
      {"encoding", kEncoding},
      {"unit", "us"},
      {"latency", histogram_json(r.latency)},
      {"latency_uncorrected",
       histogram_json(r.latency_uncorrected ? *r.latency_uncorrected : r.latency)},
      {"send_lateness", histogram_json(r.send_lateness ? *r.send_lateness : Histogram())}};
  // Replacement rather than an exception for bytes that are not UTF-8 (an --expect, a name).
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string load_error_json(const ClientConfig& cfg, const std::string& error) {
  LoadResult r;
  r.error = error;
  r.started_at = r.window_start = std::chrono::system_clock::now();
  return load_summary_json(cfg, r);
}

namespace {

// A result's object, checked for its schema and protocol.
Json parse_result(std::string_view text, const std::string& protocol) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("not JSON: {}", e.what()));
  }
  if (!j.is_object() || !j.contains("schema")) {
    throw std::runtime_error("not a tcpc --json result (no \"schema\")");
  }
  if (j.at("schema") != kSchema) {
    throw std::runtime_error(
        fmt::format("schema {} (this tcpc reads {})", j.at("schema").dump(), kSchema));
  }
  if (j.value("protocol", "") != protocol) {
    throw std::runtime_error(fmt::format("a {} result among {} results: merge one kind at a time",
                                         j.value("protocol", "?"), protocol));
  }
  return j;
}

// "host:port" or "[v6]:port" into cfg.host and cfg.port.
void set_endpoint(ClientConfig& cfg, const std::string& target) {
  const std::size_t colon = target.rfind(':');
  if (colon == std::string::npos) return;
  cfg.host = target.substr(0, colon);
  if (cfg.host.size() > 1 && cfg.host.front() == '[')
    cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
  cfg.port = static_cast<uint16_t>(std::stoul(target.substr(colon + 1)));
}

}  // namespace

std::string result_protocol(std::string_view text) {
  try {
    const Json j = Json::parse(text);
    return j.is_object() ? j.value("protocol", "") : "";
  } catch (const Json::exception&) {
    return "";
  }
}

std::string udp_summary_json(const ClientConfig& cfg, const UdpLoadResult& r) {
  Json j;
  j["schema"] = kSchema;
  j["tool"] = "tcpc";
  j["version"] = kVersion;
  j["protocol"] = "udp";
  j["mode"] = cfg.rate > 0 ? "open" : "closed";
  j["error"] = r.error.empty() ? Json(nullptr) : Json(r.error);
  j["interrupted"] = r.interrupted;
  j["target"] = host_port(cfg.host, cfg.port);
  j["start"] = rfc3339_ms(r.started_at);
  j["window_start_unix_s"] = rounded(unix_seconds(r.started_at), 1e6);
  j["runs"] = r.runs;
  j["threads"] = r.threads;
  j["concurrency"] = cfg.concurrency;
  j["rate"] = cfg.rate;
  j["size"] = udp_datagram_size(cfg);
  j["sent"] = r.sent;
  j["received"] = r.received;
  j["lost"] = r.lost();
  j["duplicated"] = r.duplicated;
  j["reordered"] = r.reordered;
  j["loss_percent"] = rounded(r.loss_percent(), 1e3);
  j["jitter_us"] = rounded(r.jitter_us, 10);
  j["echoed"] = r.stamped > 0;
  j["send_errors"] = r.send_errors;
  j["refused"] = r.refused;
  j["client_drops"] = r.client_drops;
  j["unsent"] = r.unsent;
  j["seconds"] = rounded(r.seconds, 1e6);
  const double secs = r.seconds > 0 ? r.seconds : 1;
  j["sent_per_s"] = rounded(r.seconds > 0 ? static_cast<double>(r.sent) / secs : 0, 10);
  j["received_per_s"] = rounded(r.seconds > 0 ? static_cast<double>(r.received) / secs : 0, 10);
  j["client_cpu_s"] = rounded(r.client_cpu_s, 1e3);
  j["client_max_rss_kib"] = r.client_max_rss_kib;
  put_percentiles(j, r.latency, "", "");
  const Histogram& u = r.latency_uncorrected ? *r.latency_uncorrected : r.latency;
  put_percentiles(j, u, "", "_uncorrected");
  j["histograms"] = {{"encoding", kEncoding},
                     {"unit", "us"},
                     {"latency", histogram_json(r.latency)},
                     {"latency_uncorrected", histogram_json(u)}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string udp_error_json(const ClientConfig& cfg, const std::string& error) {
  UdpLoadResult r;
  r.error = error;
  r.started_at = std::chrono::system_clock::now();
  return udp_summary_json(cfg, r);
}

UdpLoadResult udp_result_from_json(std::string_view text, ClientConfig& cfg) {
  const Json j = parse_result(text, "udp");
  try {
    UdpLoadResult r;
    cfg.udp = true;
    set_endpoint(cfg, j.at("target").get<std::string>());
    cfg.concurrency = j.at("concurrency").get<unsigned>();
    cfg.rate = j.at("rate").get<double>();
    cfg.size = j.at("size").get<std::size_t>();
    if (!j.at("error").is_null()) r.error = j.at("error").get<std::string>();
    r.interrupted = j.at("interrupted").get<bool>();
    r.started_at = from_unix_seconds(j.at("window_start_unix_s").get<double>());
    r.runs = j.at("runs").get<unsigned>();
    r.threads = j.at("threads").get<unsigned>();
    r.sent = j.at("sent").get<uint64_t>();
    r.received = j.at("received").get<uint64_t>();
    r.duplicated = j.at("duplicated").get<uint64_t>();
    r.reordered = j.at("reordered").get<uint64_t>();
    r.jitter_us = j.at("jitter_us").get<double>();
    r.stamped = j.at("echoed").get<bool>() ? r.received : 0;
    r.send_errors = j.at("send_errors").get<uint64_t>();
    r.refused = j.at("refused").get<uint64_t>();
    r.client_drops = j.at("client_drops").get<uint64_t>();
    r.unsent = j.at("unsent").get<uint64_t>();
    r.seconds = j.at("seconds").get<double>();
    r.client_cpu_s = j.at("client_cpu_s").get<double>();
    r.client_max_rss_kib = j.at("client_max_rss_kib").get<long>();
    const Json& h = j.at("histograms");
    if (h.at("encoding") != kEncoding) throw std::runtime_error("unknown histogram encoding");
    r.latency = histogram_from(h.at("latency"));
    r.latency_uncorrected = histogram_from(h.at("latency_uncorrected"));
    return r;
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("not a complete tcpc result: {}", e.what()));
  }
}

LoadResult load_result_from_json(std::string_view text, ClientConfig& cfg) {
  const Json j = parse_result(text, "tcp");
  try {
    LoadResult r;
    cfg.keepalive = j.at("mode") == "keepalive";
    cfg.concurrency = j.at("concurrency").get<unsigned>();
    cfg.pipeline = j.at("pipeline").get<unsigned>();
    cfg.rate = j.at("rate").get<double>();
    cfg.percentiles.clear();
    for (const auto& [key, value] : j.at("percentiles_us").items())
      cfg.percentiles.push_back(std::stod(key));
    if (!j.at("error").is_null()) r.error = j.at("error").get<std::string>();
    r.interrupted = j.at("interrupted").get<bool>();
    for (const auto& t : j.at("targets")) {
      r.targets.push_back({t.at("target").get<std::string>(), t.at("requests").get<uint64_t>(),
                           t.at("ok").get<uint64_t>()});
    }
    r.window_start = from_unix_seconds(j.at("window_start_unix_s").get<double>());
    r.started_at = r.window_start;
    r.runs = j.at("runs").get<unsigned>();
    r.threads = j.at("threads").get<unsigned>();
    r.requests = j.at("requests").get<uint64_t>();
    r.ok = j.at("ok").get<uint64_t>();
    for (int k = 1; k < kFailureKinds; ++k) {
      r.failures[k] = j.at(std::string(failure_name(static_cast<Failure>(k)))).get<uint64_t>();
    }
    r.reconnects = j.at("reconnects").get<uint64_t>();
    r.unsent = j.at("unsent").get<uint64_t>();
    r.seconds = j.at("seconds").get<double>();
    r.bytes_sent = j.at("bytes_sent").get<uint64_t>();
    r.bytes_received = j.at("bytes_received").get<uint64_t>();
    r.client_cpu_s = j.at("client_cpu_s").get<double>();
    r.client_max_rss_kib = j.at("client_max_rss_kib").get<long>();
    const Json& h = j.at("histograms");
    if (h.at("encoding") != kEncoding) throw std::runtime_error("unknown histogram encoding");
    r.latency = histogram_from(h.at("latency"));
    if (cfg.rate > 0) r.latency_uncorrected = histogram_from(h.at("latency_uncorrected"));
    if (cfg.rate > 0) r.send_lateness = histogram_from(h.at("send_lateness"));
    return r;
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("not a complete tcpc result: {}", e.what()));
  }
}

}  // namespace tcpd
