// Stopword lists and the set the analyzer looks tokens up in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ragkernels::text {

// bm25s's English list (bm25s.stopwords.STOPWORDS_EN, 33 words, in its
// order), which is Lucene's English stop set.
const std::vector<std::string>& english_stopwords();

// An immutable set of byte strings with allocation-free lookup by
// string_view (std::unordered_set<std::string> cannot look up a
// string_view before C++20). Owns its words, so it copies safely.
class StopwordSet {
 public:
  explicit StopwordSet(const std::vector<std::string>& words);
  bool contains(std::string_view word) const;

 private:
  std::vector<std::string> words_;  // deduplicated
  std::vector<uint32_t> slots_;     // open addressing: index into words_ + 1, or 0 when empty
  size_t max_length_ = 0;           // longer tokens skip the hash altogether
};

}  // namespace ragkernels::text
