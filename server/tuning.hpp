#pragma once

// tcpd's tuning constants in one place, each with the reason for its value; where two must
// agree, one is defined from the other. (Flags are in server_config.hpp; what a measurement chose
// is in docs/DESIGN.md.)

#include <cstddef>

#include "clock.hpp"

namespace tcpd {

// --- reading and writing ---

// One read of a session's requests: a few hundred typical requests; a longer one is read on.
inline constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
// Replies are written whenever this many bytes are ready, so that what a session holds in
// replies not yet written is bounded whatever the request mix (a longer reply goes out alone).
inline constexpr std::size_t kReplyBuffer = std::size_t{64} * 1024;
// A worker's receive buffer grown past this by a long request is not kept for the next session.
inline constexpr std::size_t kKeptReceiveBuffer = std::size_t{64} * 1024;
// Input one serve() call reads before it gives the worker back: far above a ping-pong or a
// short pipelined burst, small enough (a few hundred µs of requests) that others are not kept
// waiting by a client streaming requests.
inline constexpr std::size_t kTurnInput = std::size_t{128} * 1024;

// --- the parked set and the workers' batches ---

// Events one epoll_wait() on the workers' set returns; those past the first are kept for the
// next worker that looks.
inline constexpr int kEventsPerWait = 16;
// Sessions a worker reads ahead and answers together: at most what one epoll_wait() reported.
inline constexpr std::size_t kReadAhead = kEventsPerWait;
// What a read ahead asks for per session: a request, mostly; a read that fills it is not the
// last. Small because the buffers past a worker's first are freed and taken again around every
// sleep, and 16 KiB ones cost one-shot loads 11% in page faults.
inline constexpr std::size_t kReadAheadChunk = 2048;
// Connections the acceptor takes from its backlog before it wakes workers for them (never more
// than --queue): a woken worker preempts the acceptor, so fewer wake-ups pay; 32 measured 0.99x
// of 64, 256 the same as 64.
inline constexpr std::size_t kAcceptBatch = 64;
// New connections whose first bytes the acceptor looks at without sleeping, per look: one
// backlog's batch.
inline constexpr std::size_t kNewConnectionsPerLook = kAcceptBatch;

// --- closing ---

// How long a connection the server closed after its last reply may drain the client's input:
// closing with unread input makes the kernel send RST, which can destroy the reply.
inline constexpr Millis kLingerClose{2000};
inline constexpr std::size_t kMaxLingering = 4096;
// A rejected connection's linger ends once its client has been silent this long: rejections
// hold the descriptors the next rejections need.
inline constexpr Millis kRejectQuiet{100};
// Input a lingering close throws away per event, so one chatty peer cannot hog a thread.
inline constexpr std::size_t kDiscardPerEvent = std::size_t{64} * 1024;

// --- the drain ---

// During a drain, how long a connection that has sent nothing yet may take to send its first
// request: its client connected before the drain and expects an answer.
inline constexpr Millis kFirstRequestGrace{200};
// How long after the drain deadline the drain waits for its workers: every wait in a session
// ends by the deadline, so this is only their last steps on a loaded machine.
inline constexpr Millis kDrainGrace{1000};

// --- pauses and housekeeping ---

// After this long with no new connection and no event, the server is quiet: freed memory goes
// back to the system.
inline constexpr Millis kQuietAfter{1000};
// The acceptor's back-off when the kernel is out of memory for sockets (ENOBUFS/ENOMEM), and
// out of descriptors with no spare to free: long enough not to spin, short enough not to be
// noticed; stop() ends either at once.
inline constexpr Millis kNoMemoryPause{10};
inline constexpr Millis kNoSparePause{5};

// --- UDP ---

// The largest UDP payload (65,535 less the IPv4 and UDP headers): no datagram needs a bigger slot.
inline constexpr std::size_t kUdpMaxPayload = 65507;
// Source addresses --udp-source-rate remembers: 64 Ki of them take about 8 MiB.
inline constexpr std::size_t kUdpSourcesTracked = std::size_t{64} * 1024;
// How often a thread reading an inherited UDP socket (which is never shut down) looks for the
// drain.
inline constexpr Millis kUdpInheritedPoll{100};

// --- the metrics endpoint ---

// Each scrape's whole exchange, and its request's size: Prometheus's scrapes are small and fast.
inline constexpr Millis kScrapeTimeout{1000};
inline constexpr std::size_t kMaxScrapeRequest = 8192;
// Scrapers connected at once; the oldest goes when another comes.
inline constexpr std::size_t kMaxScrapers = 16;
// The metrics thread's back-off out of descriptors: the workers' clients come first.
inline constexpr Millis kMetricsNoFdPause{100};

}  // namespace tcpd
