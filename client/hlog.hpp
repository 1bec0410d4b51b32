#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "histogram.hpp"

namespace tcpd {

// HdrHistogram's interval log (.hlog, format 1.3), as HistogramLogAnalyzer and HdrHistogram's
// own HistogramLogReader read it: a header, then one line per interval with the interval's
// histogram in HdrHistogram's compressed V2 encoding (base64). Values are microseconds.
std::string hlog_header(std::chrono::system_clock::time_point start);

// The line of the interval [start_s, start_s + length_s) after the header's start time.
std::string hlog_line(double start_s, double length_s, const Histogram& h);

// The histogram in HdrHistogram's V2 encoding, 3 significant digits, compressed as a zlib
// stream. The stream uses deflate's stored blocks: any inflater reads them, and no compression
// library is needed to write them.
std::string hdr_compressed_v2(const Histogram& h);

std::string base64(const std::string& bytes);

}  // namespace tcpd
