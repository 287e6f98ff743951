#include "text/analyzer.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/parallel.h"
#include "text/stem_english.h"
#include "text/unicode_tables.h"

namespace ragkernels::text {

namespace {

namespace uc = unicode;

constexpr char32_t kCapitalSigma = 0x3A3;
constexpr char32_t kSmallSigma = 0x3C3;
constexpr char32_t kFinalSigma = 0x3C2;

// One code point read from UTF-8; an invalid byte reads as kInvalidByte,
// length 1, with no flags (a non-word, uncased character).
constexpr char32_t kInvalidByte = 0xFFFFFFFF;
struct Decoded {
  char32_t code_point;
  size_t length;
};

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// Strict UTF-8 (RFC 3629 table 3-7): no overlong forms, no surrogates,
// nothing above U+10FFFF. A bad or truncated sequence yields its first
// byte as invalid; decoding resumes at the next byte. Reads s[i, n) only.
Decoded decode_utf8(const unsigned char* s, size_t i, size_t n) {
  const unsigned char lead = s[i];
  if (lead < 0x80) return {lead, 1};
  size_t length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return {kInvalidByte, 1};
  }
  if (n - i < length || s[i + 1] < second_min || s[i + 1] > second_max) return {kInvalidByte, 1};
  char32_t cp = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if (!is_continuation(s[i + k])) return {kInvalidByte, 1};
    cp = (cp << 6) | (s[i + k] & 0x3F);
  }
  return {cp, length};
}

uint8_t flags_of(char32_t cp) { return cp == kInvalidByte ? 0 : uc::char_flags(cp); }

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Only called for code points flagged kHasLower, so the entry exists.
const uc::LowerMapping& lower_mapping(char32_t cp) {
  const auto* end = std::end(uc::kLowerMappings);
  return *std::lower_bound(std::begin(uc::kLowerMappings), end, cp,
                           [](const uc::LowerMapping& m, char32_t c) { return m.from < c; });
}

// The forward half of CPython's Final_Sigma test (handle_capital_sigma):
// after skipping Case_Ignorable characters, is the next one Cased?
bool cased_follows(const unsigned char* s, size_t i, size_t n) {
  while (i < n) {
    const Decoded d = decode_utf8(s, i, n);
    const uint8_t flags = flags_of(d.code_point);
    if (!(flags & uc::kCaseIgnorable)) return (flags & uc::kCased) != 0;
    i += d.length;
  }
  return false;
}

// The run of word characters being read, lowercased when asked. Its buffer
// is reused from word to word, so reading allocates nothing per token.
struct WordInProgress {
  std::string chars;
  size_t code_points = 0;
  bool all_decimal = true;

  void add(char32_t cp, uint8_t flags) {
    append_utf8(chars, cp);
    ++code_points;
    all_decimal = all_decimal && (flags & uc::kDecimal);
  }
  void add_ascii(char c, uint8_t flags) {
    chars.push_back(c);
    ++code_points;
    all_decimal = all_decimal && (flags & uc::kDecimal);
  }
  void add_bytes(const unsigned char* bytes, size_t length, uint8_t flags) {
    chars.append(reinterpret_cast<const char*>(bytes), length);
    ++code_points;
    all_decimal = all_decimal && (flags & uc::kDecimal);
  }
  void reset() {
    chars.clear();
    code_points = 0;
    all_decimal = true;
  }
};

}  // namespace

std::string_view unicode_version() { return uc::kUnicodeVersion; }

Analyzer::Analyzer(AnalyzerConfig config) : config_(std::move(config)), stopwords_(config_.stopwords) {}

// Walks the text once, code point by code point, and calls emit(word) for
// every kept surface word. `after_cased` carries the backward half of the
// Final_Sigma test: whether the last character that is not Case_Ignorable
// was Cased (tracked on the original text, as CPython does).
template <typename Emit>
void Analyzer::for_each_word(std::string_view text, Emit&& emit) const {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const bool lowercase = config_.lowercase;
  WordInProgress word;
  bool after_cased = false;

  auto finish_word = [&] {
    // re's \b\w\w+\b: only runs of two or more word characters are tokens.
    if (word.code_points >= 2 && (config_.keep_numbers || !word.all_decimal) &&
        !stopwords_.contains(word.chars)) {
      emit(std::string_view(word.chars));
    }
    word.reset();
  };
  auto add_lowered = [&](char32_t cp) {
    const uint8_t flags = flags_of(cp);
    if (flags & uc::kWord) {
      word.add(cp, flags);
    } else {
      finish_word();
    }
  };

  for (size_t i = 0; i < n;) {
    if (s[i] < 0x80) {  // ASCII: one table lookup, no decoding
      const unsigned char c = s[i];
      const uint8_t flags = uc::char_flags(c);
      if (flags & uc::kWord) {
        word.add_ascii(static_cast<char>(lowercase && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c), flags);
      } else {
        finish_word();
      }
      if (!(flags & uc::kCaseIgnorable)) after_cased = (flags & uc::kCased) != 0;
      ++i;
      continue;
    }
    const Decoded d = decode_utf8(s, i, n);
    const uint8_t flags = flags_of(d.code_point);
    if (lowercase && (flags & uc::kHasLower)) {
      if (d.code_point == kCapitalSigma) {
        add_lowered(after_cased && !cased_follows(s, i + d.length, n) ? kFinalSigma : kSmallSigma);
      } else {
        const uc::LowerMapping& lower = lower_mapping(d.code_point);
        add_lowered(lower.first);
        if (lower.second != 0) add_lowered(lower.second);
      }
    } else if (flags & uc::kWord) {
      word.add_bytes(s + i, d.length, flags);
    } else {
      finish_word();
    }
    if (!(flags & uc::kCaseIgnorable)) after_cased = (flags & uc::kCased) != 0;
    i += d.length;
  }
  finish_word();
}

void Analyzer::split(std::string_view text, TokenList& out) const {
  for_each_word(text, [&](std::string_view word) { out.push_back(word); });
}

std::string Analyzer::normalize(std::string_view word) const {
  std::string term(word);
  if (config_.stem) stem_english(term);
  return term;
}

void Analyzer::analyze(std::string_view text, TokenList& out) const {
  std::string term;  // reused: one buffer per call, not per token
  for_each_word(text, [&](std::string_view word) {
    term.assign(word);
    if (config_.stem) stem_english(term);
    out.push_back(term);
  });
}

void Analyzer::analyze_batch(const std::vector<std::string_view>& texts, std::vector<TokenList>& out) const {
  out.resize(texts.size());
  constexpr int64_t kTextsPerTask = 16;  // a short text costs ~1 us: batch them
  parallel_for(
      0, static_cast<int64_t>(texts.size()),
      [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          out[i].clear();
          analyze(texts[i], out[i]);
        }
      },
      kTextsPerTask);
}

}  // namespace ragkernels::text
