#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <optional>

#include "work_queue.hpp"

namespace tcpd::test {

// A worker's wait for the queue alone (no parked set): the leader sleeps on the queue's wake
// fd where the server's sleeps in epoll_wait() on the parked set. Nothing once finished.
template <typename T>
std::optional<T> take(WorkQueue<T>& q) {
  for (;;) {
    auto turn = q.wait_turn();
    if (turn.item) return std::move(turn.item);
    if (!turn.lead) return std::nullopt;
    pollfd p{q.wake_fd(), POLLIN, 0};
    ::poll(&p, 1, -1);
    uint64_t v;
    [[maybe_unused]] auto rc = ::read(q.wake_fd(), &v, sizeof v);
    q.end_lead();
    q.woken();
  }
}

}  // namespace tcpd::test
