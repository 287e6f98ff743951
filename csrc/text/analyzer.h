// The text analyzer: UTF-8 text -> index terms, token for token as bm25s.
//
// bm25s.tokenize's default pipeline (bm25s 0.3.16, tokenization.py):
//   text.lower()                            Python's full Unicode lowercasing,
//                                           Final_Sigma rule included
//   re.findall(r"(?u)\b\w\w+\b")            maximal runs of >= 2 word code
//                                           points (\w: str.isalnum() or '_')
//   drop tokens in the stopword set         on the lowercase, unstemmed token
//   Snowball English stem of each token     (stem_english)
// The Unicode tables come from the Python that generated unicode_tables.h
// (its header names the version). Invalid UTF-8 bytes count as non-word
// characters, one each; nothing is read past the end of the text.
// Cost: O(bytes) per text; ASCII takes a per-byte table path, and split()
// allocates nothing per token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/stopwords.h"

namespace ragkernels::text {

// The Unicode version of the character tables: that of the Python which
// generated unicode_tables.h, whose str.lower() and \w they reproduce.
std::string_view unicode_version();

struct AnalyzerConfig {
  bool lowercase = true;
  bool keep_numbers = true;  // false: drop tokens made only of Unicode decimal digits (str.isdecimal())
  bool stem = true;          // Snowball English
  std::vector<std::string> stopwords = english_stopwords();  // matched byte for byte
};

// A flat list of tokens: one char buffer + end offsets (no per-token allocation).
class TokenList {
 public:
  void clear() {
    chars_.clear();
    ends_.clear();
  }
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::string_view operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(chars_).substr(begin, ends_[i] - begin);
  }
  void push_back(std::string_view token) {
    chars_.append(token);
    ends_.push_back(chars_.size());
  }

 private:
  std::string chars_;
  std::vector<size_t> ends_;
};

class Analyzer {
 public:
  explicit Analyzer(AnalyzerConfig config);
  const AnalyzerConfig& config() const { return config_; }

  // Lowercase, split and drop stopwords: the surface words of a UTF-8 text,
  // in order, before stemming. Appends to out.
  void split(std::string_view text, TokenList& out) const;

  // The final form of one surface word (its stem when config.stem, else itself).
  std::string normalize(std::string_view word) const;

  // split + normalize each word: what a query or document is indexed as.
  // Appends to out.
  void analyze(std::string_view text, TokenList& out) const;

  // analyze() of every text, texts in parallel (parallel_for): out[i] is
  // replaced by the terms of texts[i]; the result is the same for any
  // thread count.
  void analyze_batch(const std::vector<std::string_view>& texts, std::vector<TokenList>& out) const;

 private:
  template <typename Emit>
  void for_each_word(std::string_view text, Emit&& emit) const;

  AnalyzerConfig config_;
  StopwordSet stopwords_;
};

// The terms of every list mapped to ids by id_of(term), concatenated into
// values; offsets (lists.size() + 1 entries) gets where each list starts.
template <typename IdOf>
void flatten_term_ids(const std::vector<TokenList>& lists, IdOf&& id_of, std::vector<int64_t>& values,
                      int64_t* offsets) {
  offsets[0] = 0;
  for (size_t i = 0; i < lists.size(); ++i) {
    for (size_t t = 0; t < lists[i].size(); ++t) values.push_back(id_of(lists[i][t]));
    offsets[i + 1] = static_cast<int64_t>(values.size());
  }
}

}  // namespace ragkernels::text
