#include "text/stopwords.h"

namespace ragkernels::text {

namespace {

// FNV-1a: stopwords are short, so a byte-at-a-time hash is fast enough.
uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

const std::vector<std::string>& english_stopwords() {
  // Copied from bm25s 0.3.16, bm25s/stopwords.py (STOPWORDS_EN), which
  // credits NLTK; the list itself is Lucene's EnglishAnalyzer stop set.
  static const std::vector<std::string> words = {
      "a",    "an",   "and",  "are",   "as",    "at",   "be",   "but",  "by",
      "for",  "if",   "in",   "into",  "is",    "it",   "no",   "not",  "of",
      "on",   "or",   "such", "that",  "the",   "their", "then", "there", "these",
      "they", "this", "to",   "was",   "will",  "with"};
  return words;
}

StopwordSet::StopwordSet(const std::vector<std::string>& words) {
  size_t capacity = 8;
  while (capacity < 2 * words.size()) capacity *= 2;  // load factor <= 1/2
  slots_.assign(capacity, 0);
  for (const auto& word : words) {
    if (contains(word)) continue;
    words_.push_back(word);
    if (word.size() > max_length_) max_length_ = word.size();
    size_t slot = hash_bytes(word) & (capacity - 1);
    while (slots_[slot] != 0) slot = (slot + 1) & (capacity - 1);
    slots_[slot] = static_cast<uint32_t>(words_.size());
  }
}

bool StopwordSet::contains(std::string_view word) const {
  if (word.size() > max_length_ || words_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  for (size_t slot = hash_bytes(word) & mask; slots_[slot] != 0; slot = (slot + 1) & mask) {
    if (words_[slots_[slot] - 1] == word) return true;
  }
  return false;
}

}  // namespace ragkernels::text
