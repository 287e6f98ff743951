// Strings to dense ids, in first-seen order: the vocabulary of an index build.
// Open addressing over one character arena, looked up by string_view, so
// interning a token that is already known allocates nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ragkernels::sparse {

class StringInterner {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  // The id of s, adding it (id = size() before the call) when new.
  uint32_t intern(std::string_view s);
  // The id of s, or kAbsent.
  uint32_t find(std::string_view s) const;

  size_t size() const { return ends_.size(); }
  std::string_view operator[](size_t id) const {
    const uint64_t begin = id == 0 ? 0 : ends_[id - 1];
    return std::string_view(chars_).substr(begin, ends_[id] - begin);
  }
  const std::string& chars() const { return chars_; }  // all strings, concatenated in id order
  const std::vector<uint64_t>& ends() const { return ends_; }

 private:
  size_t slot_of(std::string_view s, uint64_t hash) const;
  void grow();

  std::string chars_;
  std::vector<uint64_t> ends_;
  std::vector<uint32_t> slots_;  // id + 1; 0 = empty
};

}  // namespace ragkernels::sparse
