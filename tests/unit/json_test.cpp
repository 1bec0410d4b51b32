// The one JSON string encoder: whatever the bytes, the output is one strict JSON string that
// decodes to them (with U+FFFD for bytes that are not UTF-8).
#include "json.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

TEST(Json, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(tcpd::json_string("plain"), "\"plain\"");
  EXPECT_EQ(tcpd::json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(tcpd::json_string("l1\nl2\t\x01"), "\"l1\\nl2\\t\\u0001\"");
}

TEST(Json, EveryByteStringDecodesStrictly) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (const std::string& s : {all, std::string("\xc3\xa4 ok"), std::string("\xc3"),
                               std::string("\xed\xa0\x80"), std::string("a\0b", 3)}) {
    const std::string encoded = tcpd::json_string(s);
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(encoded)) << encoded;
    EXPECT_TRUE(j.is_string());
  }
  EXPECT_EQ(nlohmann::json::parse(tcpd::json_string("\xc3\xa4")).get<std::string>(), "\xc3\xa4");
  EXPECT_EQ(nlohmann::json::parse(tcpd::json_string("a\xff")).get<std::string>(), "a\xef\xbf\xbd");
}

TEST(Json, ValidUtf8) {
  EXPECT_TRUE(tcpd::valid_utf8(""));
  EXPECT_TRUE(tcpd::valid_utf8("n\xc3\xa4me \xf0\x9f\x99\x82"));
  EXPECT_FALSE(tcpd::valid_utf8("a\xff"));
  EXPECT_FALSE(tcpd::valid_utf8("\xc3"));          // cut short
  EXPECT_FALSE(tcpd::valid_utf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(tcpd::valid_utf8("\xc0\xaf"));      // overlong
}
