// GoogleTest for csrc/text: TokenList, the analyzer's split/analyze on
// hand-checked cases, and invalid UTF-8 (never a crash, never a read past
// the end; run under RAGKERNELS_SANITIZE to check the latter).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/parallel.h"
#include "text/analyzer.h"
#include "text/stopwords.h"

namespace rt = ragkernels::text;

namespace {

std::vector<std::string> to_vector(const rt::TokenList& tokens) {
  std::vector<std::string> out;
  for (size_t i = 0; i < tokens.size(); ++i) out.emplace_back(tokens[i]);
  return out;
}

// The text is copied into a buffer of exactly its size, so a read past the
// end is a heap overflow that AddressSanitizer reports.
std::vector<std::string> split(const rt::Analyzer& analyzer, std::string_view text) {
  std::vector<char> exact(text.begin(), text.end());
  rt::TokenList tokens;
  analyzer.split(std::string_view(exact.data(), exact.size()), tokens);
  return to_vector(tokens);
}

rt::Analyzer unstemmed(bool lowercase = true, bool keep_numbers = true) {
  rt::AnalyzerConfig config;
  config.stem = false;
  config.lowercase = lowercase;
  config.keep_numbers = keep_numbers;
  return rt::Analyzer(config);
}

using Words = std::vector<std::string>;

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t length = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (length == 0 || i + length > s.size()) return false;
    for (size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += length;
  }
  return true;
}

}  // namespace

TEST(TokenList, PushBackIndexAndClear) {
  rt::TokenList tokens;
  EXPECT_TRUE(tokens.empty());
  tokens.push_back("alpha");
  tokens.push_back("");
  tokens.push_back("γ");
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[0], "alpha");
  EXPECT_EQ(tokens[1], "");
  EXPECT_EQ(tokens[2], "γ");
  tokens.clear();
  EXPECT_TRUE(tokens.empty());
  tokens.push_back("again");
  EXPECT_EQ(to_vector(tokens), Words{"again"});
}

TEST(EnglishStopwords, IsBm25sList) {
  const auto& words = rt::english_stopwords();
  ASSERT_EQ(words.size(), 33u);
  EXPECT_EQ(words.front(), "a");
  EXPECT_EQ(words.back(), "with");
  rt::StopwordSet set(words);
  EXPECT_TRUE(set.contains("there"));
  EXPECT_FALSE(set.contains("thereafter"));
  EXPECT_FALSE(set.contains(""));
}

TEST(Analyzer, SplitsLowercasesAndDropsStopwords) {
  const auto analyzer = unstemmed();
  EXPECT_EQ(split(analyzer, "The quick brown Fox is in THE box."), (Words{"quick", "brown", "fox", "box"}));
  EXPECT_EQ(split(analyzer, ""), Words{});
  EXPECT_EQ(split(analyzer, "a b c d e"), Words{});        // single characters are never tokens
  EXPECT_EQ(split(analyzer, "!!! ... --- ,,,"), Words{});
  EXPECT_EQ(split(analyzer, "__init__ _ x_1 a1"), (Words{"__init__", "x_1", "a1"}));
  EXPECT_EQ(split(analyzer, "don't stop"), (Words{"don", "stop"}));
}

TEST(Analyzer, KeepNumbersFalseDropsDigitOnlyTokens) {
  EXPECT_EQ(split(unstemmed(true, false), "in 2019 covid19 ran 42 km \xD9\xA3\xD9\xA4 \xEF\xBC\x91\xEF\xBC\x92"),
            (Words{"covid19", "ran", "km"}));
  EXPECT_EQ(split(unstemmed(true, true), "42 km"), (Words{"42", "km"}));
}

TEST(Analyzer, UnicodeLowercasingAsPython) {
  const auto analyzer = unstemmed();
  EXPECT_EQ(split(analyzer, "Caf\xC3\x89 NA\xC3\x8FVE"), (Words{"caf\xC3\xA9", "na\xC3\xafve"}));
  // Final sigma: "ΟΔΟΣ ΣΑ" -> "οδος σα" (ς only at the end of a cased run).
  EXPECT_EQ(split(analyzer, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3\xCE\x91"),
            (Words{"\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82", "\xCF\x83\xCE\xB1"}));
  // "İstanbul" -> "i" U+0307 "stanbul": the combining dot is not a word character.
  EXPECT_EQ(split(analyzer, "\xC4\xB0stanbul"), (Words{"stanbul"}));
  // CJK runs are one token; emoji and ZWJ split.
  EXPECT_EQ(split(analyzer, "\xE6\x9D\xB1\xE4\xBA\xAC ab\xE2\x80\x8D" "cd"), (Words{"\xE6\x9D\xB1\xE4\xBA\xAC", "ab", "cd"}));
}

TEST(Analyzer, LowercaseFalseKeepsCaseAndStopwordsMatchExactly) {
  EXPECT_EQ(split(unstemmed(false), "The cat THE the"), (Words{"The", "cat", "THE"}));
}

TEST(Analyzer, CustomAndEmptyStopwords) {
  rt::AnalyzerConfig config;
  config.stem = false;
  config.stopwords = {"cat", "σα", "cat"};
  EXPECT_EQ(split(rt::Analyzer(config), "the cat \xCE\xA3\xCE\x91 sat"), (Words{"the", "sat"}));
  config.stopwords.clear();
  EXPECT_EQ(split(rt::Analyzer(config), "the cat"), (Words{"the", "cat"}));
}

TEST(Analyzer, AnalyzeIsSplitThenNormalize) {
  const rt::Analyzer analyzer{rt::AnalyzerConfig{}};
  const std::string text = "Runners were running quickly; generously connected ponies.";
  rt::TokenList words, terms;
  analyzer.split(text, words);
  analyzer.analyze(text, terms);
  ASSERT_EQ(words.size(), terms.size());
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(terms[i], analyzer.normalize(words[i]));
  EXPECT_EQ(unstemmed().normalize("running"), "running");
}

TEST(Analyzer, SplitAppends) {
  const auto analyzer = unstemmed();
  rt::TokenList tokens;
  analyzer.split("one two", tokens);
  analyzer.split("three", tokens);
  EXPECT_EQ(to_vector(tokens), (Words{"one", "two", "three"}));
}

TEST(Analyzer, InvalidUtf8BytesAreNonWordCharacters) {
  const auto analyzer = unstemmed();
  EXPECT_EQ(split(analyzer, "ab\xFF" "cd"), (Words{"ab", "cd"}));
  EXPECT_EQ(split(analyzer, "ab\x80\x80" "cd"), (Words{"ab", "cd"}));            // stray continuations
  EXPECT_EQ(split(analyzer, "ab\xC0\xAF" "cd"), (Words{"ab", "cd"}));            // overlong '/'
  EXPECT_EQ(split(analyzer, "ab\xED\xA0\x80" "cd"), (Words{"ab", "cd"}));        // surrogate
  EXPECT_EQ(split(analyzer, "ab\xF4\x90\x80\x80" "cd"), (Words{"ab", "cd"}));    // above U+10FFFF
  EXPECT_EQ(split(analyzer, "ab\xC3"), (Words{"ab"}));                             // truncated at the end
  EXPECT_EQ(split(analyzer, "ab\xE6\x9D"), (Words{"ab"}));
  EXPECT_EQ(split(analyzer, "\xCE\xA3\xCE"), Words{});                             // sigma, then a cut sequence
  EXPECT_EQ(split(analyzer, "\xF0\x9F\x98"), Words{});
}

TEST(Analyzer, RandomBytesNeverCrashAndGiveValidUtf8) {
  std::mt19937 rng(12345);
  const std::string alphabet = "aZ9_ \xCE\xA3\xC4\xB0\xC3\xA9\xE2\x80\x8D\xED\xA0\x80\xF0\x9F\x98\x80\xFF\xC0\x80";
  for (bool lowercase : {true, false}) {
    const auto analyzer = unstemmed(lowercase);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string text(rng() % 48, '\0');
      for (auto& c : text) c = rng() % 3 == 0 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
      for (const auto& token : split(analyzer, text)) EXPECT_TRUE(is_valid_utf8(token)) << token;
    }
  }
}

TEST(Analyzer, BatchEqualsOneByOneForAnyThreadCount) {
  const rt::Analyzer analyzer{rt::AnalyzerConfig{}};
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back("Document " + std::to_string(i) + " talks about running dogs and cats");
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  const int before = ragkernels::num_threads();
  std::vector<std::vector<Words>> results;
  for (int threads : {1, 3}) {
    ragkernels::set_num_threads(threads);
    std::vector<rt::TokenList> out(5);  // stale content must be replaced
    out[0].push_back("stale");
    analyzer.analyze_batch(views, out);
    ASSERT_EQ(out.size(), texts.size());
    std::vector<Words> as_words;
    for (size_t i = 0; i < out.size(); ++i) {
      rt::TokenList one;
      analyzer.analyze(texts[i], one);
      EXPECT_EQ(to_vector(out[i]), to_vector(one));
      as_words.push_back(to_vector(out[i]));
    }
    results.push_back(as_words);
  }
  ragkernels::set_num_threads(before);
  EXPECT_EQ(results[0], results[1]);
}
