// GoogleTest for csrc/core/utf8: the strict validator agrees with Python's
// "strict" UTF-8 decoder on the classic edge cases.
#include <gtest/gtest.h>

#include <string>

#include "core/utf8.h"

namespace rk = ragkernels;

TEST(Utf8, AcceptsAsciiAndEveryLengthOfSequence) {
  EXPECT_TRUE(rk::is_valid_utf8(""));
  EXPECT_TRUE(rk::is_valid_utf8("plain"));
  EXPECT_TRUE(rk::is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_TRUE(rk::is_valid_utf8("\xF4\x8F\xBF\xBF"));                          // U+10FFFF
}

TEST(Utf8, RefusesWhatPythonsStrictDecoderRefuses) {
  EXPECT_EQ(rk::first_invalid_utf8("ab\xFF"), 2u);                 // never valid
  EXPECT_EQ(rk::first_invalid_utf8("\xC0\xAF"), 0u);               // overlong '/'
  EXPECT_EQ(rk::first_invalid_utf8("\xE0\x80\xAF"), 0u);           // overlong
  EXPECT_EQ(rk::first_invalid_utf8("x\xED\xA0\x80"), 1u);          // surrogate U+D800
  EXPECT_EQ(rk::first_invalid_utf8("\xF4\x90\x80\x80"), 0u);       // above U+10FFFF
  EXPECT_EQ(rk::first_invalid_utf8("ok\xE2\x82"), 2u);             // truncated
  EXPECT_EQ(rk::first_invalid_utf8("\x80"), 0u);                   // lone continuation
  EXPECT_EQ(rk::first_invalid_utf8(std::string("a\0b", 3)), 3u);   // NUL is valid UTF-8
}
