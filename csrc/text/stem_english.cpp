// The Snowball English ("Porter2") stemmer, written from the algorithm at
// snowballstem.org/algorithms/english/stemmer.html as it stands in Snowball 3.1
// (the version PyStemmer 3.1.0 ships), checked word for word against it.
//
// The word is UTF-8. Every vowel and every suffix the algorithm names is ASCII,
// so most tests look at single bytes: a byte that is not a vowel is either an
// ASCII non-vowel or part of a multi-byte character, and both are non-vowels.
// Only where the algorithm counts characters ("at least 3 letters", "hop 2",
// "the letter before is the first one") do we step over whole code points.
//
// The stem is never longer than the word, so every step rewrites the bytes of
// the caller's string in place and one resize at the end gives it its length.
#include "text/stem_english.h"

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <string_view>

namespace ragkernels::text {
namespace {

constexpr bool is_vowel(char c) {
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

// Snowball's v_WXY: the vowels plus w, x and the 'Y' that marks a consonant y.
constexpr bool is_vowel_wxy(char c) { return is_vowel(c) || c == 'w' || c == 'x' || c == 'Y'; }

constexpr bool is_valid_li_ending(char c) {
  return std::string_view("cdeghkmnrt").find(c) != std::string_view::npos;
}

constexpr bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

constexpr bool is_double(char a, char b) {
  return a == b && std::string_view("bdfgmnprt").find(a) != std::string_view::npos;
}

// The word being stemmed: the caller's bytes and the current length.
class Word {
 public:
  explicit Word(std::string& text) : bytes_(text.data()), size_(text.size()) {}

  size_t size() const { return size_; }
  char operator[](size_t i) const { return bytes_[i]; }
  void set(size_t i, char c) { bytes_[i] = c; }
  std::string_view view() const { return {bytes_, size_}; }

  // Start of the code point that ends just before byte `pos` (pos > 0).
  size_t char_start_before(size_t pos) const {
    do --pos;
    while (pos > 0 && is_utf8_continuation(bytes_[pos]));
    return pos;
  }

  // End of the code point that starts at byte `pos` (pos < size).
  size_t char_end_after(size_t pos) const {
    do ++pos;
    while (pos < size_ && is_utf8_continuation(bytes_[pos]));
    return pos;
  }

  bool has_vowel_before(size_t end) const {
    for (size_t i = 0; i < end; ++i)
      if (is_vowel(bytes_[i])) return true;
    return false;
  }

  // Whether bytes [0, end) end with `text`.
  bool ends_with_at(size_t end, std::string_view text) const {
    return end >= text.size() && std::memcmp(bytes_ + end - text.size(), text.data(), text.size()) == 0;
  }
  bool ends_with(std::string_view suffix) const { return ends_with_at(size_, suffix); }

  void truncate(size_t new_size) { size_ = new_size; }

  // Replaces the last `suffix_size` bytes by `replacement`. Never grows the
  // word past the caller's original length (see the file comment).
  void replace_suffix(size_t suffix_size, std::string_view replacement) {
    size_ -= suffix_size;
    std::memcpy(bytes_ + size_, replacement.data(), replacement.size());
    size_ += replacement.size();
  }

 private:
  char* bytes_;
  size_t size_;
};

// R1 and R2 as byte offsets: a suffix starting at or after r1 lies in R1.
struct Regions {
  size_t r1;
  size_t r2;
};

// A suffix and what replaces it. The tables list suffixes longest first, so the
// first one that matches is the longest, which is the one Snowball's `among`
// takes, even when its condition then fails.
struct SuffixRule {
  std::string_view suffix;
  std::string_view replacement;
};

template <typename Rule, size_t N>
const Rule* longest_matching_suffix(const Word& word, const Rule (&rules)[N]) {
  if (word.size() == 0) return nullptr;
  const char last = word[word.size() - 1];
  for (const Rule& rule : rules)
    if (rule.suffix.back() == last && word.ends_with(rule.suffix)) return &rule;
  return nullptr;
}

// Whole words the algorithm stems by a fixed table before any step runs.
bool apply_exception(std::string& text) {
  static constexpr SuffixRule kExceptions[] = {
      {"skis", "ski"},  {"skies", "sky"},   {"idly", "idl"},      {"gently", "gentl"}, {"ugly", "ugli"},
      {"early", "earli"}, {"only", "onli"}, {"singly", "singl"},  {"sky", "sky"},      {"news", "news"},
      {"howe", "howe"}, {"atlas", "atlas"}, {"cosmos", "cosmos"}, {"bias", "bias"},    {"andes", "andes"},
  };
  for (const SuffixRule& entry : kExceptions) {
    if (text == entry.suffix) {
      text.resize(entry.replacement.size());  // never longer than the word
      std::memcpy(text.data(), entry.replacement.data(), entry.replacement.size());
      return true;
    }
  }
  return false;
}

// Letters, not bytes: each code point starts with a byte that is no UTF-8
// continuation byte.
bool has_fewer_letters_than(std::string_view text, size_t count) {
  size_t letters = 0;
  for (char c : text)
    if (!is_utf8_continuation(c) && ++letters == count) return false;
  return true;
}

// Marks each consonant y (initial, or after a vowel) as 'Y'. Returns whether
// any y was marked, so that the final pass turns back only the Y it made.
bool mark_consonant_y(Word& word) {
  bool marked = false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (word[i] == 'y' && (i == 0 || is_vowel(word[i - 1]))) {
      word.set(i, 'Y');
      marked = true;
    }
  }
  return marked;
}

// Position just past the first non-vowel that follows a vowel at or after
// `from`; the word's end when there is none.
size_t past_vowel_then_non_vowel(const Word& word, size_t from) {
  const size_t n = word.size();
  size_t i = from;
  while (i < n && !is_vowel(word[i])) i = word.char_end_after(i);
  while (i < n && is_vowel(word[i])) ++i;
  return i < n ? word.char_end_after(i) : n;
}

// Prefixes after which R1 starts, so that e.g. "general" and "generous" keep
// apart; 0 when the word starts with none of them.
size_t r1_prefix_size(const Word& word) {
  static constexpr std::string_view kR1Prefixes[] = {
      "gener", "commun", "arsen", "past", "univers", "later", "emerg", "organ", "inter"};
  for (std::string_view prefix : kR1Prefixes)
    if (word.view().substr(0, prefix.size()) == prefix) return prefix.size();
  return 0;
}

// R1 is the region after the first non-vowel that follows a vowel (or after one
// of the R1 prefixes); R2 is the same rule applied again inside R1.
Regions mark_regions(const Word& word) {
  const size_t prefix = r1_prefix_size(word);
  const size_t r1 = prefix > 0 ? prefix : past_vowel_then_non_vowel(word, 0);
  return {r1, past_vowel_then_non_vowel(word, r1)};
}

// Snowball's `shortv` on bytes [0, end): the word there ends in a short
// syllable, i.e. non-vowel (not w, x, Y) + vowel + non-vowel, or vowel +
// non-vowel at the very start, or (an exception) "past".
bool ends_in_short_syllable(const Word& word, size_t end) {
  if (end > 0) {
    const size_t last = word.char_start_before(end);
    if (last > 0 && is_vowel(word[last - 1])) {
      const size_t vowel = last - 1;  // vowels are single bytes
      if (vowel == 0 && !is_vowel(word[last])) return true;
      if (vowel > 0 && !is_vowel_wxy(word[last]) && !is_vowel(word[vowel - 1])) return true;
    }
  }
  return word.ends_with_at(end, "past");
}

// Possessives and plurals: 's, sses, ies/ied, s.
void step_1a(Word& word) {
  for (std::string_view apostrophe : {"'s'", "'s", "'"}) {
    if (word.ends_with(apostrophe)) {
      word.truncate(word.size() - apostrophe.size());
      break;
    }
  }
  if (word.ends_with("sses")) {
    word.replace_suffix(4, "ss");
  } else if (word.ends_with("ied") || word.ends_with("ies")) {
    // "ties" -> "tie" but "cries" -> "cri": two letters must precede.
    const size_t start = word.size() - 3;
    const bool two_letters_before = start > 0 && word.char_start_before(start) > 0;
    word.replace_suffix(3, two_letters_before ? "i" : "ie");
  } else if (word.ends_with("us") || word.ends_with("ss")) {
    // "bus" and "kiss" keep their s.
  } else if (word.ends_with("s")) {
    // Delete if a vowel occurs before the letter that precedes the s: "gaps"
    // -> "gap" but "gas" stays. Bytes of a multi-byte letter are no vowels.
    const size_t start = word.size() - 1;
    if (start > 0 && word.has_vowel_before(start - 1)) word.truncate(start);
  }
}

bool is_word_before(const Word& word, size_t end, std::initializer_list<std::string_view> words) {
  for (std::string_view w : words)
    if (end == w.size() && word.ends_with_at(end, w)) return true;
  return false;
}

// After -ed/-ing has gone: restore an e (hop(e)), undouble (hopp), or restore
// the e of a short word (hop -> hope).
void tidy_after_removing_ed_ing(Word& word, const Regions& regions) {
  const size_t n = word.size();
  if (word.ends_with("at") || word.ends_with("bl") || word.ends_with("iz")) {
    word.replace_suffix(0, "e");
  } else if (n >= 2 && is_double(word[n - 2], word[n - 1])) {
    const bool short_aeo_word = n == 3 && (word[0] == 'a' || word[0] == 'e' || word[0] == 'o');
    if (!short_aeo_word) word.truncate(n - 1);  // "add", "egg", "off" keep theirs
  } else if (n == regions.r1 && ends_in_short_syllable(word, n)) {
    word.replace_suffix(0, "e");
  }
}

// -eed, -eedly, -ed, -edly, -ing, -ingly.
void step_1b(Word& word, const Regions& regions) {
  static constexpr std::string_view kSuffixes[] = {"eedly", "ingly", "edly", "eed", "ing", "ed"};
  std::string_view suffix;
  for (std::string_view candidate : kSuffixes) {
    if (word.ends_with(candidate)) {
      suffix = candidate;
      break;
    }
  }
  if (suffix.empty()) return;
  const size_t start = word.size() - suffix.size();
  if (suffix == "eed" || suffix == "eedly") {
    if (start >= regions.r1 && !is_word_before(word, start, {"proc", "exc", "succ"}))
      word.replace_suffix(suffix.size(), "ee");
    return;
  }
  if (suffix == "ing") {
    // dying -> die, lying -> lie: y + ing after a single non-vowel letter.
    if (start > 0 && word[start - 1] == 'y') {
      const size_t y = start - 1;
      if (y > 0 && word.char_start_before(y) == 0 && !is_vowel(word[0])) {
        word.replace_suffix(suffix.size() + 1, "ie");
        return;
      }
    } else if (is_word_before(word, start, {"inn", "out", "cann", "herr", "earr", "even"})) {
      return;
    }
  }
  if (!word.has_vowel_before(start)) return;
  word.truncate(start);
  tidy_after_removing_ed_ing(word, regions);
}

// y/Y -> i after a non-vowel that is not the first letter: cry -> cri.
void step_1c(Word& word) {
  const size_t n = word.size();
  if (n < 2 || (word[n - 1] != 'y' && word[n - 1] != 'Y')) return;
  const size_t before = word.char_start_before(n - 1);
  if (before > 0 && !is_vowel(word[before])) word.set(n - 1, 'i');
}

void step_2(Word& word, const Regions& regions) {
  static constexpr SuffixRule kRules[] = {
      {"ization", "ize"}, {"ational", "ate"}, {"fulness", "ful"}, {"ousness", "ous"}, {"iveness", "ive"},
      {"tional", "tion"}, {"biliti", "ble"},  {"lessli", "less"}, {"entli", "ent"},   {"ation", "ate"},
      {"alism", "al"},    {"aliti", "al"},    {"ousli", "ous"},   {"iviti", "ive"},   {"fulli", "ful"},
      {"ogist", "og"},    {"enci", "ence"},   {"anci", "ance"},   {"abli", "able"},   {"izer", "ize"},
      {"ator", "ate"},    {"alli", "al"},     {"bli", "ble"},     {"ogi", "og"},      {"li", ""},
  };
  const SuffixRule* rule = longest_matching_suffix(word, kRules);
  if (rule == nullptr) return;
  const size_t start = word.size() - rule->suffix.size();
  if (start < regions.r1) return;
  const char before = start > 0 ? word[start - 1] : '\0';
  if (rule->suffix == "ogi" && before != 'l') return;  // only -logi
  if (rule->suffix == "li" && !is_valid_li_ending(before)) return;
  word.replace_suffix(rule->suffix.size(), rule->replacement);
}

void step_3(Word& word, const Regions& regions) {
  static constexpr SuffixRule kRules[] = {
      {"ational", "ate"}, {"tional", "tion"}, {"alize", "al"}, {"icate", "ic"}, {"iciti", "ic"},
      {"ative", ""},      {"ical", "ic"},     {"ness", ""},    {"ful", ""},
  };
  const SuffixRule* rule = longest_matching_suffix(word, kRules);
  if (rule == nullptr) return;
  const size_t start = word.size() - rule->suffix.size();
  if (start < regions.r1) return;
  if (rule->suffix == "ative" && start < regions.r2) return;
  word.replace_suffix(rule->suffix.size(), rule->replacement);
}

// Deletes a suffix lying in R2; -ion only after s or t.
void step_4(Word& word, const Regions& regions) {
  static constexpr SuffixRule kRules[] = {
      {"ement", ""}, {"ance", ""}, {"ence", ""}, {"able", ""}, {"ible", ""}, {"ment", ""},
      {"ant", ""},   {"ent", ""},  {"ism", ""},  {"ate", ""},  {"iti", ""},  {"ous", ""},
      {"ive", ""},   {"ize", ""},  {"ion", ""},  {"al", ""},   {"er", ""},   {"ic", ""},
  };
  const SuffixRule* rule = longest_matching_suffix(word, kRules);
  if (rule == nullptr) return;
  const size_t start = word.size() - rule->suffix.size();
  if (start < regions.r2) return;
  if (rule->suffix == "ion" && !(start > 0 && (word[start - 1] == 's' || word[start - 1] == 't'))) return;
  word.truncate(start);
}

// A final e in R2, or in R1 unless it closes a short syllable; ll in R2 -> l.
void step_5(Word& word, const Regions& regions) {
  const size_t n = word.size();
  if (n == 0) return;
  const size_t last = n - 1;
  if (word[last] == 'e') {
    const bool removable = last >= regions.r2 || (last >= regions.r1 && !ends_in_short_syllable(word, last));
    if (removable) word.truncate(last);
  } else if (word[last] == 'l') {
    if (last >= regions.r2 && last > 0 && word[last - 1] == 'l') word.truncate(last);
  }
}

}  // namespace

void stem_english(std::string& text) {
  if (apply_exception(text) || has_fewer_letters_than(text, 3)) return;
  if (text[0] == '\'') text.erase(0, 1);  // shifts the bytes, keeps the buffer
  Word word(text);
  const bool marked_y = mark_consonant_y(word);
  const Regions regions = mark_regions(word);
  step_1a(word);
  step_1b(word, regions);
  step_1c(word);
  step_2(word, regions);
  step_3(word, regions);
  step_4(word, regions);
  step_5(word, regions);
  text.resize(word.size());
  if (marked_y)
    for (char& c : text)
      if (c == 'Y') c = 'y';
}

}  // namespace ragkernels::text
