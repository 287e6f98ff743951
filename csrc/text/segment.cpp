#include "text/segment.h"

#include <array>
#include <cstddef>
#include <string>

#include "core/parallel.h"
#include "text/unicode_tables.h"

namespace ragkernels::text {

namespace {

namespace uc = unicode;

// An invalid UTF-8 byte: one code point with no properties at all.
constexpr char32_t kInvalid = 0xFFFFFFFF;

// Punctuation and space properties (tests/reference/segment.py's sets).
enum : uint16_t {
  kSpace = 1,           // str.isspace()
  kLineBreak = 2,       // str.splitlines() breaks
  kTerminal = 4,        // . ! ? … ‼ ⁇ ⁈ ⁉ ． and the CJK marks
  kCjk = 8,             // 。 ｡ ！ ？: end a sentence with no space after
  kPeriod = 16,         // . ．
  kCloser = 32,         // closing quotes and brackets
  kOpener = 64,         // opening quotes and brackets, ¿ ¡
  kNoBreakBefore = 128, // , ; : % closing brackets (and every terminal)
  kBullet = 256,        // list bullets
};

uint16_t non_ascii_props(char32_t c) {
  switch (c) {
    case 0x85: return kSpace | kLineBreak;
    case 0xA0: case 0x1680: case 0x202F: case 0x205F: case 0x3000: return kSpace;
    case 0x2028: case 0x2029: return kSpace | kLineBreak;
    case 0x3002: case 0xFF61: case 0xFF01: case 0xFF1F: return kTerminal | kCjk | kNoBreakBefore;
    case 0x2026: case 0x203C: case 0x2047: case 0x2048: case 0x2049: return kTerminal | kNoBreakBefore;
    case 0xFF0E: return kTerminal | kPeriod | kNoBreakBefore;
    case 0x201D: case 0x2019: case 0xBB: case 0x203A: case 0x300D: case 0x300F: case 0x3011: case 0x3015:
    case 0x3009: case 0x300B: case 0x3017: return kCloser;
    case 0xFF09: case 0xFF3D: case 0xFF5D: return kCloser | kNoBreakBefore;
    case 0xFF02: case 0xFF07: return kCloser | kOpener;
    case 0x201C: case 0x2018: case 0xAB: case 0x2039: case 0xFF08: case 0xFF3B: case 0xFF5B: case 0x300C:
    case 0x300E: case 0x3010: case 0x3014: case 0x3008: case 0x300A: case 0x3016: case 0xBF: case 0xA1:
      return kOpener;
    case 0xFF0C: case 0xFF1B: case 0xFF1A: return kNoBreakBefore;
    case 0x2022: case 0x2023: case 0x25E6: case 0x2043: case 0x25AA: case 0x25CF: case 0x25CB: case 0x25A0:
    case 0x25A1: case 0x25BA: case 0x27A2: case 0x2013: case 0x2014: return kBullet;
    default: return c >= 0x2000 && c <= 0x200A ? kSpace : 0;
  }
}

std::array<uint16_t, 128> make_ascii_props() {
  std::array<uint16_t, 128> p{};
  for (char32_t c = 0x09; c <= 0x0D; ++c) p[c] = kSpace | (c == 0x09 ? 0 : kLineBreak);
  for (char32_t c = 0x1C; c <= 0x1F; ++c) p[c] = kSpace | (c == 0x1F ? 0 : kLineBreak);
  p[' '] = kSpace;
  p['.'] = kTerminal | kPeriod | kNoBreakBefore;
  p['!'] = p['?'] = kTerminal | kNoBreakBefore;
  p[')'] = p[']'] = p['}'] = kCloser | kNoBreakBefore;
  p['"'] = p['\''] = kCloser | kOpener;
  p['('] = p['['] = p['{'] = kOpener;
  p[','] = p[';'] = p[':'] = p['%'] = kNoBreakBefore;
  p['-'] = p['*'] = kBullet;
  return p;
}

const std::array<uint16_t, 128> kAsciiProps = make_ascii_props();

uint16_t props(char32_t c) { return c < 0x80 ? kAsciiProps[c] : non_ascii_props(c); }
uint8_t flags(char32_t c) { return c > uc::kMaxCodePoint ? 0 : uc::char_flags(c); }
bool is_upper(char32_t c) { return (flags(c) & uc::kHasLower) != 0; }
bool is_digit(char32_t c) { return (flags(c) & uc::kDecimal) != 0; }
bool is_letter(char32_t c) { return (flags(c) & (uc::kWord | uc::kDecimal)) == uc::kWord && c != '_'; }
bool is_lowerish(char32_t c) {
  return (flags(c) & (uc::kWord | uc::kDecimal | uc::kHasLower)) == uc::kWord;
}
bool is_ascii_alnum(char32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

// Abbreviations without their final period, lowercase (tests/reference/segment.py).
constexpr std::string_view kPrefixAbbreviations[] = {
    "mr", "mrs", "ms", "dr", "prof", "rev", "hon", "gen", "col", "lt", "capt", "sgt", "gov", "sen", "st", "mt",
    "fig", "figs", "eq", "eqs", "ref", "refs", "tab", "tbl", "sect", "ch", "chap", "vol", "vols", "pp", "pg",
    "approx", "ca", "cf", "vs", "viz", "e.g", "i.e", "incl", "suppl", "dept", "univ", "inst", "assoc",
    "ibid"};
constexpr std::string_view kCasedPrefix[] = {"No", "Nos", "Nr"};  // matched as written
constexpr std::string_view kFinalAbbreviations[] = {
    "etc", "al", "inc", "ltd", "co", "corp", "jr", "sr", "bros", "resp", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "sp", "spp", "ssp", "subsp", "var", "cv"};
constexpr std::string_view kRomanLabels[] = {"i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"};
constexpr size_t kLongestAbbreviation = 8;

template <size_t N>
bool listed(const std::string_view (&list)[N], std::string_view word) {
  for (std::string_view entry : list) {
    if (entry == word) return true;
  }
  return false;
}

enum class Abbreviation { kNone, kPrefix, kFinal, kInitial };

// One text decoded to code points, with the byte offset of each, and the
// rules run over it index by index, as the Python reference does.
class Scanner {
 public:
  void run(std::string_view utf8, std::vector<SentenceSpan>& out) {
    decode(utf8);
    out.clear();
    int64_t start = 0;
    cuts_.clear();
    break_points();
    cuts_.push_back(n_);
    for (int64_t cut : cuts_) {
      int64_t a = start, b = cut;
      while (a < b && space(a)) ++a;
      while (b > a && space(b - 1)) --b;
      if (a < b) out.push_back({a, b, byte_at_[a], byte_at_[b]});
      if (cut > start) start = cut;
    }
  }

 private:
  // UTF-8 as CPython's "surrogatepass" writes it: strict, except that
  // ED A0..BF xx (a lone surrogate) is one code point.
  void decode(std::string_view utf8) {
    const auto* s = reinterpret_cast<const unsigned char*>(utf8.data());
    const size_t size = utf8.size();
    cps_.clear();
    byte_at_.clear();
    for (size_t i = 0; i < size;) {
      byte_at_.push_back(static_cast<int64_t>(i));
      const unsigned char lead = s[i];
      if (lead < 0x80) {
        cps_.push_back(lead);
        ++i;
        continue;
      }
      size_t length = 0;
      unsigned char lo = 0x80, hi = 0xBF;
      if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
      } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) lo = 0xA0;
      } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) lo = 0x90;
        if (lead == 0xF4) hi = 0x8F;
      }
      char32_t cp = kInvalid;
      if (length > 0 && size - i >= length && s[i + 1] >= lo && s[i + 1] <= hi) {
        cp = lead & (0x7F >> length);
        for (size_t k = 1; k < length && cp != kInvalid; ++k) {
          cp = (s[i + k] & 0xC0) == 0x80 ? (cp << 6) | (s[i + k] & 0x3F) : kInvalid;
        }
      }
      cps_.push_back(cp);
      i += cp == kInvalid ? 1 : length;
    }
    byte_at_.push_back(static_cast<int64_t>(size));
    t_ = cps_.data();
    n_ = static_cast<int64_t>(cps_.size());
  }

  bool has(int64_t i, uint16_t prop) const { return (props(t_[i]) & prop) != 0; }
  bool space(int64_t i) const { return has(i, kSpace); }

  int64_t skip_space(int64_t i) const {
    while (i < n_ && space(i)) ++i;
    return i;
  }

  // Start of the word before t[i]: back to whitespace, then past openers.
  int64_t word_before(int64_t i) const {
    int64_t start = i;
    while (start > 0 && !space(start - 1)) --start;
    while (start < i && has(start, kOpener)) ++start;
    return start;
  }

  int64_t line_breaks_in(int64_t a, int64_t b) const {
    int64_t count = 0;
    for (int64_t k = a; k < b; ++k) {
      count += has(k, kLineBreak) && !(t_[k] == '\r' && k + 1 < b && t_[k + 1] == '\n');
    }
    return count;
  }

  bool is_list_marker(int64_t i) const {
    if (i < n_ && has(i, kBullet)) return i + 1 < n_ && space(i + 1);
    const int64_t j = i < n_ && t_[i] == '(' ? i + 1 : i;
    int64_t k = j;
    while (k < n_ && k - j < 5 && is_ascii_alnum(t_[k])) ++k;
    const int64_t len = k - j;
    bool digits = len >= 1 && len <= 3, roman = len >= 1;
    std::string label;
    for (int64_t q = j; q < k; ++q) {
      digits = digits && t_[q] >= '0' && t_[q] <= '9';
      label.push_back(static_cast<char>(t_[q]));
    }
    roman = roman && listed(kRomanLabels, label);
    const bool letter = len == 1 && !(t_[j] >= '0' && t_[j] <= '9');
    return (digits || letter || roman) && k < n_ && (t_[k] == '.' || t_[k] == ')') && k + 1 < n_ && space(k + 1);
  }

  // Whether the whitespace run starting at t[i] is a hard break (rule 1).
  bool hard_break_after(int64_t i) const {
    const int64_t end = skip_space(i);
    for (int64_t k = i; k < end; ++k) {
      if (t_[k] == 0x2029) return true;
    }
    const int64_t breaks = line_breaks_in(i, end);
    return breaks >= 2 || (breaks == 1 && end < n_ && is_list_marker(end));
  }

  // Letters joined by periods, 1 or 2 per part: U.S, Ph.D, s.s.
  bool is_dotted_acronym(int64_t a, int64_t b) const {
    int64_t parts = 1, part_len = 0;
    for (int64_t k = a; k < b; ++k) {
      if (t_[k] == '.') {
        if (part_len < 1 || part_len > 2) return false;
        ++parts;
        part_len = 0;
      } else if (is_letter(t_[k])) {
        ++part_len;
      } else {
        return false;
      }
    }
    return parts >= 2 && part_len >= 1 && part_len <= 2;
  }

  Abbreviation abbreviation_kind(int64_t i) const {
    const int64_t start = word_before(i);
    const int64_t len = i - start;
    std::string word, lower;
    bool ascii = true;
    for (int64_t k = start; k < i && ascii && static_cast<size_t>(k - start) < kLongestAbbreviation; ++k) {
      ascii = t_[k] < 0x80;
      word.push_back(static_cast<char>(t_[k]));
      lower.push_back(static_cast<char>(t_[k] >= 'A' && t_[k] <= 'Z' ? t_[k] | 0x20 : t_[k]));
    }
    if (ascii && len <= static_cast<int64_t>(kLongestAbbreviation)) {
      const bool acronym = len == 2 && is_upper(t_[start]) && is_upper(t_[start + 1]);
      if (listed(kCasedPrefix, word) || (listed(kPrefixAbbreviations, lower) && !acronym)) {
        return Abbreviation::kPrefix;
      }
      if (listed(kFinalAbbreviations, lower)) return Abbreviation::kFinal;
    }
    if (is_dotted_acronym(start, i)) return Abbreviation::kFinal;
    return len == 1 && is_letter(t_[start]) ? Abbreviation::kInitial : Abbreviation::kNone;
  }

  // Rule 3: whether t[m], the next visible character, may start a sentence.
  bool next_allows_break(int64_t m, bool ellipsis) const {
    const char32_t c = t_[m];
    if (has(m, kNoBreakBefore)) return false;
    if (is_lowerish(c)) {
      if (c >= 0x3B1 && c <= 0x3C9) return true;  // small Greek: β-catenin, α-synuclein
      for (int64_t k = m; k < n_ && !space(k); ++k) {
        if (is_upper(t_[k]) || is_digit(t_[k])) return true;
      }
      return false;
    }
    return !(ellipsis && is_digit(c));
  }

  // The end of the closers after a terminal run ending at j (rule 2).
  int64_t absorb_closers(int64_t j) const {
    int64_t k = j;
    while (k < n_ && has(k, kCloser)) ++k;
    const int64_t m = skip_space(k);
    if (k < m && m < n_ && has(m, kCloser) && line_breaks_in(k, m) == 0 && (m + 1 == n_ || space(m + 1))) {
      return m + 1;
    }
    return k;
  }

  // Whether the terminal run t[i, j) with closers t[j, k) ends a sentence.
  bool ends_sentence(int64_t i, int64_t j, int64_t k) const {
    int64_t periods = 0;
    bool ellipsis = false;
    for (int64_t q = i; q < j; ++q) {
      if (has(q, kCjk)) return true;
      periods += has(q, kPeriod);
      ellipsis = ellipsis || t_[q] == 0x2026;
    }
    if (k < n_ && !space(k)) return false;
    const int64_t m = skip_space(k);
    if (m == n_ || hard_break_after(k)) return true;
    if (!next_allows_break(m, ellipsis || periods >= 2)) return false;
    if (j - i == 1 && periods == 1) {
      switch (abbreviation_kind(i)) {
        case Abbreviation::kPrefix:
        case Abbreviation::kInitial: return false;
        case Abbreviation::kFinal: return is_upper(t_[m]);
        case Abbreviation::kNone: break;
      }
    }
    return true;
  }

  void break_points() {
    for (int64_t i = 0; i < n_;) {
      if (has(i, kTerminal)) {
        int64_t j = i;
        while (j < n_ && has(j, kTerminal)) ++j;
        const int64_t k = absorb_closers(j);
        if (ends_sentence(i, j, k)) cuts_.push_back(k);
        i = k;
      } else if (space(i)) {
        if (hard_break_after(i)) cuts_.push_back(i);
        i = skip_space(i);
      } else {
        ++i;
      }
    }
  }

  std::vector<char32_t> cps_;
  std::vector<int64_t> byte_at_;  // byte offset of each code point, then the size
  std::vector<int64_t> cuts_;
  const char32_t* t_ = nullptr;
  int64_t n_ = 0;
};

// Texts per parallel_for chunk worth a thread: abstracts take ~10 us each.
constexpr int64_t kTextsPerGrain = 16;

}  // namespace

void split_sentences(std::string_view text, std::vector<SentenceSpan>& out) { Scanner().run(text, out); }

void split_sentences_batch(const std::vector<std::string_view>& texts, std::vector<std::vector<SentenceSpan>>& out) {
  out.resize(texts.size());
  parallel_for(
      0, static_cast<int64_t>(texts.size()),
      [&](int64_t lo, int64_t hi) {
        Scanner scanner;
        for (int64_t i = lo; i < hi; ++i) scanner.run(texts[static_cast<size_t>(i)], out[static_cast<size_t>(i)]);
      },
      kTextsPerGrain);
}

}  // namespace ragkernels::text
