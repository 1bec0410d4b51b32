#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "clock.hpp"
#include "fd.hpp"
#include "line_framer.hpp"
#include "server_config.hpp"
#include "socket.hpp"
#include "stats.hpp"
#include "tuning.hpp"

namespace tcpd {

inline constexpr std::string_view kErrBusy = "ERR busy\n";
inline constexpr std::string_view kErrTooLong = "ERR too long\n";

// What a session keeps while its client is not reading its replies: made when a write first
// finds the socket full, gone once everything is out. Nothing more is read meanwhile.
struct Unsent {
  std::string bytes;     // at most one reply buffer, or one long reply
  uint64_t replies = 0;  // counted once they are out
  Clock::time_point started{};
  Clock::time_point deadline{};  // the io timeout from the first write that found no room
  bool one_shot = false;
  // Once out, close gracefully with `close_outcome`: an ERR too long, a one-shot reply.
  bool close_after = false;
  Outcome close_outcome = Outcome::served;
};

// One client connection and what has been received on it so far.
struct Session {
  Session(Fd f, std::size_t max_message, Clock::time_point accepted_, Millis idle_timeout)
      : fd(std::move(f)),
        framer(max_message),
        accepted(accepted_),
        idle_deadline(accepted_ + idle_timeout) {}

  Fd fd;
  LineFramer framer;
  PeerAddress peer;  // captured at accept
  Clock::time_point accepted;
  Clock::time_point queued{};           // when it entered the work queue
  Clock::time_point request_started{};  // first byte of the request under way
  Clock::time_point idle_deadline;      // closed if no request has begun by then
  Clock::time_point request_deadline = Clock::time_point::max();  // the pending one must end by
  Clock::time_point last_byte{};
  // A client that has not sent a newline yet and has paused: its one-shot reply is due then,
  // unless more bytes come first (max: none due).
  Clock::time_point oneshot_due = Clock::time_point::max();
  bool line_client = false;  // has sent a newline: no more one-shot pause rule
  bool registered = false;   // its descriptor is in the workers' epoll set (see Parked)
  bool watch_write = false;  // that registration also asks for room to write
  // The client's end of the stream has been read: no request follows what is already here.
  bool input_ended = false;
  // The event that handed it out said the peer has closed its side (EPOLLRDHUP/HUP): read to the
  // end before parking, since no further event comes for that end.
  bool hup_seen = false;
  // --proxy-protocol: its PROXY header has not been read yet.
  bool awaiting_proxy = false;
  // Holds a place under --max-conns-per-client, given back when it ends (Admission).
  bool client_counted = false;
  std::string_view refusal;  // why it was turned away, for the log (a string literal)

  // The last read filled all it asked for: more may wait in the socket, and edge-triggered
  // registration (Parked) sends no new event for bytes that were there before that read.
  bool read_full = false;
  // How a read ahead of serve() (read_ahead) found the stream ended (closed, reset, error): the
  // next read reports it instead of a system call (a reset is reported by the kernel only once).
  IoStatus ended_ahead = IoStatus::ok;
  uint64_t replies = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Replies its client's socket had no room for: null unless a write found the socket full.
  std::unique_ptr<Unsent> unsent;
};

// Nothing has been asked of it yet: a new connection, whose first bytes must meet the queue's
// bound like any new connection's.
inline bool sent_nothing(const Session& s) {
  return s.replies == 0 && s.framer.empty() && !s.unsent;
}

// What the worker does with a session once serve() returns.
struct Verdict {
  // park: wait for the client's bytes (or room to write `unsent`) without a thread. again: more
  // input is waiting but this turn has used its share; serve it after others.
  enum class Kind { close, park, again };
  Kind kind;
  Outcome outcome = Outcome::served;  // for close
  bool linger = false;                // close gracefully: input is discarded until the peer closes
};

// Everything a worker needs from the server while it serves a session.
struct SessionEnv {
  const ServerConfig& config;
  Stats& stats;  // connections and outcomes
  Recorder rec;  // what happens per request: the serving thread's own slot
  int stop_fd;   // readable once the drain has begun
  const std::atomic<bool>& draining;
  const std::atomic<Clock::rep>& drain_deadline;  // time_since_epoch, valid once draining
  class Admission* admission = nullptr;           // who may be served; null: everyone
};

// What a worker reuses from one session to the next: its reply buffer, and its receive buffer,
// lent to each session while the worker has it (an idle session holds no buffer, and a request
// costs no allocation).
struct Scratch {
  // A receive buffer per session of a batch read ahead (see read_ahead()); in[0] also serves
  // a session alone. Those past in[0] stay small (kReadAheadChunk): a worker lets go of every
  // buffer before it sleeps, and 15 large ones freed and taken again for each batch cost page
  // faults (one-shot loads, where workers sleep often, lost 11%).
  std::string out;
  std::array<LineFramer::Buffer, kReadAhead> in;
};

// Serves `s` with blocking I/O while its client's bytes are there: answers every complete
// request, then returns park once the next bytes are not there yet (between requests, or part-way
// through a line client's request), or close. `scratch` is the worker's reply buffer, reused
// across sessions.
Verdict serve(Session& s, const SessionEnv& env, std::string& scratch);

// One non-blocking read into `s`, into `buffer` unless its framer has a buffer of its own, for a
// session served later in a batch: a worker reads every session of a batch before it answers
// any, so that the replies leave back to back (docs/DESIGN.md, "Read ahead"). What it read
// waits in the framer; the end of the stream waits for serve()'s first read.
void read_ahead(Session& s, LineFramer::Buffer& buffer, const SessionEnv& env);

// The outcome of a session the drain closes between requests: served if it was answered.
Outcome drained(const Session& s);

// How a parked session whose deadline passed ended: idle, a request or a reply that did not
// finish in time, or (`draining`) the drain deadline.
Outcome expired_outcome(const Session& s, bool draining);

// When a parked session's wait ends: `at`, and whether a worker must then serve it (`wake`: its
// one-shot reply is due) rather than the session closing.
struct ParkDeadline {
  Clock::time_point at;
  bool wake = false;
};
ParkDeadline park_deadline(const Session& s);

// Counts the outcome and logs the connection's one info line.
// Gives back its place under --max-conns-per-client.
void finish(Session& s, Outcome outcome, const SessionEnv& env);

}  // namespace tcpd
