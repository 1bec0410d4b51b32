#include "line_framer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

using tcpd::LineFramer;
using Status = LineFramer::Status;

namespace {

std::string next_line(LineFramer& f) {
  auto n = f.next();
  EXPECT_EQ(n.status, Status::line);
  return std::string(n.line);
}

}  // namespace

TEST(LineFramer, SplitsLinesAndDropsCrBeforeNewline) {
  LineFramer f(100);
  f.append("one\ntwo\r\nthree");
  EXPECT_EQ(next_line(f), "one");
  EXPECT_EQ(next_line(f), "two");
  EXPECT_EQ(f.next().status, Status::need_more);
  EXPECT_EQ(f.pending(), "three");
  f.append("\n");
  EXPECT_EQ(next_line(f), "three");
  EXPECT_TRUE(f.empty());
}

TEST(LineFramer, KeepsLoneCrNulAndHighBytes) {
  LineFramer f(100);
  const std::string req = std::string("a\rb\0c\xff\xfe", 7);
  f.append(req + "\n");
  EXPECT_EQ(next_line(f), req);
}

TEST(LineFramer, EmptyLinesAreRequests) {
  LineFramer f(10);
  f.append("\n\r\n");
  EXPECT_EQ(next_line(f), "");
  EXPECT_EQ(next_line(f), "");
  EXPECT_EQ(f.next().status, Status::need_more);
}

TEST(LineFramer, ByteAtATime) {
  LineFramer f(100);
  const std::string text = "hello\r\nworld\n";
  std::vector<std::string> lines;
  for (char c : text) {
    f.append(std::string(1, c));
    for (auto n = f.next(); n.status == Status::line; n = f.next()) lines.emplace_back(n.line);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"hello", "world"}));
}

TEST(LineFramer, MaxMessageExcludesCrLf) {
  LineFramer f(5);
  f.append("12345\r\n");
  EXPECT_EQ(next_line(f), "12345");
  f.append("123456\n");
  EXPECT_EQ(f.next().status, Status::too_long);
}

TEST(LineFramer, TooLongBeforeTheNewlineArrives) {
  LineFramer f(5);
  f.append("12345");
  EXPECT_EQ(f.next().status, Status::need_more);
  f.append("\r");  // may still be the end of a 5-byte request
  EXPECT_EQ(f.next().status, Status::need_more);
  f.append("x");
  EXPECT_EQ(f.next().status, Status::too_long);

  LineFramer g(5);
  g.append("123456");
  EXPECT_EQ(g.next().status, Status::too_long);
}

TEST(LineFramer, LongSessionReusesItsBuffer) {
  LineFramer f(1000);
  for (int i = 0; i < 10000; ++i) {
    f.append("request number " + std::to_string(i) + "\npartial");
    EXPECT_EQ(next_line(f), "request number " + std::to_string(i));
    f.append("\n");
    EXPECT_EQ(next_line(f), "partial");
  }
  EXPECT_LT(f.capacity(), 4096u);
}

TEST(LineFramer, ReleaseFreesTheBufferOnlyWhenEmpty) {
  LineFramer f(100);
  f.append("abc");
  f.release_if_empty();
  EXPECT_EQ(f.pending(), "abc");
  f.clear();
  EXPECT_TRUE(f.empty());
  f.release_if_empty();
  EXPECT_EQ(f.capacity(), 0u);
}

TEST(LineFramer, ABorrowedBufferGoesBackWhenTheFramerIsEmpty) {
  LineFramer::Buffer worker;
  LineFramer a(100);
  a.prepare(64);  // as the server does: room for a whole read
  a.append("first\n");
  const std::size_t cap = a.capacity();
  a.give_back(worker, 1024);  // a request is pending: the framer keeps its buffer
  EXPECT_EQ(worker.bytes, nullptr);
  EXPECT_EQ(next_line(a), "first");
  a.give_back(worker, 1024);
  ASSERT_NE(worker.bytes, nullptr);
  EXPECT_EQ(worker.cap, cap);
  EXPECT_EQ(a.capacity(), 0u);

  // The next session receives into the same bytes, with no allocation.
  const char* bytes = worker.bytes.get();
  LineFramer b(100);
  b.borrow(worker);
  EXPECT_EQ(worker.bytes, nullptr);
  EXPECT_EQ(b.prepare(8), bytes);
  b.append("second\npart");
  EXPECT_EQ(next_line(b), "second");
  b.give_back(worker, 1024);  // "part" is pending: kept
  EXPECT_EQ(worker.bytes, nullptr);
  EXPECT_EQ(b.pending(), "part");

  // A framer with bytes of its own does not take the worker's.
  worker.bytes = std::make_unique<char[]>(16);
  worker.cap = 16;
  b.borrow(worker);
  EXPECT_NE(worker.bytes, nullptr);
  EXPECT_EQ(b.pending(), "part");
}

TEST(LineFramer, ABufferGrownPastTheLimitIsNotGivenBack) {
  LineFramer::Buffer worker;
  LineFramer f(1 << 20);
  f.append(std::string(100000, 'x') + "\n");
  EXPECT_EQ(next_line(f).size(), 100000u);
  f.give_back(worker, 4096);
  EXPECT_EQ(worker.bytes, nullptr);
  EXPECT_GT(f.capacity(), 4096u);  // freed with the framer (or release_if_empty), not kept
}

// A request as long as the default --max-message allows, read 16 KiB at a time, leaves a buffer
// below glibc's mmap threshold (128 KiB): freeing thousands of them at once is not thousands of
// munmap() calls.
TEST(LineFramer, BufferForTheLongestRequestStaysBelowTheMmapThreshold) {
  tcpd::LineFramer f(65536);
  std::size_t received = 0;
  while (received < 65535) {
    const std::size_t n = std::min<std::size_t>(16 * 1024, 65535 - received);
    std::memset(f.prepare(16 * 1024), 'x', n);
    f.commit(n);
    received += n;
    EXPECT_EQ(f.next().status, tcpd::LineFramer::Status::need_more);
  }
  EXPECT_EQ(f.pending().size(), 65535U);
  EXPECT_LT(f.capacity(), std::size_t{128} * 1024);
  f.prepare(16 * 1024);
  EXPECT_LT(f.capacity(), std::size_t{128} * 1024);
}
