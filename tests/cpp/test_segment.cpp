// GoogleTest for csrc/text/segment: hand-checked cases, code-point and byte
// offsets, the batch form against one text at a time, and invalid UTF-8
// (never a crash, never a read past the end; run under RAGKERNELS_SANITIZE
// to check the latter).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/parallel.h"
#include "text/segment.h"

namespace rt = ragkernels::text;

namespace {

// The text is copied into a buffer of exactly its size, so a read past the
// end is a heap overflow that AddressSanitizer reports.
std::vector<rt::SentenceSpan> spans_of(std::string_view text) {
  std::vector<char> exact(text.begin(), text.end());
  std::vector<rt::SentenceSpan> spans;
  rt::split_sentences(std::string_view(exact.data(), exact.size()), spans);
  return spans;
}

// The sentences as UTF-8 strings, cut at the byte offsets.
std::vector<std::string> sentences(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& s : spans_of(text)) {
    out.emplace_back(text.substr(static_cast<size_t>(s.byte_begin), static_cast<size_t>(s.byte_end - s.byte_begin)));
  }
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST(SegmentSentences, EmptyAndWhitespaceHaveNoSentences) {
  EXPECT_TRUE(spans_of("").empty());
  EXPECT_TRUE(spans_of(" \t\n\r\n  ").empty());
  EXPECT_EQ(sentences("  no final period  "), Strings({"no final period"}));
}

TEST(SegmentSentences, AbbreviationsNumbersAndInitials) {
  EXPECT_EQ(sentences("See Fig. 2 and Dr. Smith, e.g. The one. Next."),
            Strings({"See Fig. 2 and Dr. Smith, e.g. The one.", "Next."}));
  EXPECT_EQ(sentences("Made in the U.S. The end. Smith et al. (2005) agree."),
            Strings({"Made in the U.S.", "The end.", "Smith et al. (2005) agree."}));
  EXPECT_EQ(sentences("It rose 3.5 to 1,000.2 (p < 0.05). Version 1.2.3 won."),
            Strings({"It rose 3.5 to 1,000.2 (p < 0.05).", "Version 1.2.3 won."}));
  EXPECT_EQ(sentences("J. R. R. Tolkien wrote. A model of MS. It works."),
            Strings({"J. R. R. Tolkien wrote.", "A model of MS.", "It works."}));
}

TEST(SegmentSentences, QuotesBracketsEllipsesAndLowercase) {
  EXPECT_EQ(sentences("He said \"stop.\" Then (see Fig. 2.) it ended... And more... and more."),
            Strings({"He said \"stop.\"", "Then (see Fig. 2.) it ended...", "And more... and more."}));
  EXPECT_EQ(sentences("Given i.p. daily. p53 rose. mRNA fell. it went on."),
            Strings({"Given i.p. daily.", "p53 rose.", "mRNA fell. it went on."}));
}

TEST(SegmentSentences, LineBreaksAndLists) {
  EXPECT_EQ(sentences("wrapped\nline. Next\n\nPara\n- item one\n2) item two"),
            Strings({"wrapped\nline.", "Next", "Para", "- item one", "2) item two"}));
}

TEST(SegmentSentences, UnicodeOffsetsCountCodePoints) {
  // "Ünï 東京。" then "😀 Ok": Ü, ï are 2 bytes, 東, 京, 。 3, 😀 4.
  const std::string text = "\xC3\x9Cn\xC3\xAF \xE6\x9D\xB1\xE4\xBA\xAC\xE3\x80\x82\xF0\x9F\x98\x80 Ok";
  const auto spans = spans_of(text);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].begin, 0);
  EXPECT_EQ(spans[0].end, 7);
  EXPECT_EQ(spans[0].byte_begin, 0);
  EXPECT_EQ(spans[0].byte_end, 15);
  EXPECT_EQ(spans[1].begin, 7);
  EXPECT_EQ(spans[1].end, 11);
  EXPECT_EQ(spans[1].byte_begin, 15);
  EXPECT_EQ(spans[1].byte_end, static_cast<int64_t>(text.size()));
}

TEST(SegmentSentences, SurrogatepassBytesAreOneCodePoint) {
  // U+D800 as Python's "surrogatepass" writes it.
  const auto spans = spans_of("a\xED\xA0\x80. Next");
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].end, 3);
  EXPECT_EQ(spans[1].begin, 4);
}

TEST(SegmentSentences, InvalidUtf8NeverCrashesAndCoversTheText) {
  std::mt19937 rng(11);
  const std::string pieces[] = {".", " ", "\n", "A", "e.g", "\xE3\x80", "\xF0\x9F", "\xFF", "\xC3", "\x80",
                                "\xED\xA0", "\"", ")", "(", "\xE2\x80\xA6", "\xE3\x80\x82", "Dr", "1"};
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int n = static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) text += pieces[rng() % std::size(pieces)];
    const auto spans = spans_of(text);
    int64_t last_byte = 0, last_cp = 0;
    for (const auto& s : spans) {
      ASSERT_LE(last_byte, s.byte_begin);
      ASSERT_LT(s.byte_begin, s.byte_end);
      ASSERT_LE(s.byte_end, static_cast<int64_t>(text.size()));
      ASSERT_LE(last_cp, s.begin);
      ASSERT_LT(s.begin, s.end);
      ASSERT_LE(s.end - s.begin, s.byte_end - s.byte_begin);
      last_byte = s.byte_end;
      last_cp = s.end;
    }
  }
}

TEST(SegmentSentences, BatchEqualsOneAtATimeForAnyThreadCount) {
  std::vector<std::string> owned;
  std::mt19937 rng(5);
  const std::string words[] = {"Dr.", "Smith", "said", "\"no.\"", "Then", "3.5", "U.S.", "The", "p53", "\n\n", "-"};
  for (int i = 0; i < 500; ++i) {
    std::string text;
    for (int k = 0, n = static_cast<int>(rng() % 40); k < n; ++k) text += words[rng() % std::size(words)] + " ";
    owned.push_back(text);
  }
  const std::vector<std::string_view> texts(owned.begin(), owned.end());
  const int before = ragkernels::num_threads();
  std::vector<std::vector<rt::SentenceSpan>> one, two;
  ragkernels::set_num_threads(1);
  rt::split_sentences_batch(texts, one);
  ragkernels::set_num_threads(2);
  rt::split_sentences_batch(texts, two);
  ragkernels::set_num_threads(before);
  ASSERT_EQ(one.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto single = spans_of(texts[i]);
    ASSERT_EQ(one[i].size(), single.size());
    ASSERT_EQ(two[i].size(), single.size());
    for (size_t k = 0; k < single.size(); ++k) {
      EXPECT_EQ(one[i][k].begin, single[k].begin);
      EXPECT_EQ(two[i][k].end, single[k].end);
      EXPECT_EQ(two[i][k].byte_begin, single[k].byte_begin);
    }
  }
}
