#include "sparse/string_interner.h"

#include "core/file_format.h"

namespace ragkernels::sparse {

namespace {
uint64_t hash_of(std::string_view s) { return format::xxh64(s.data(), s.size(), 0x9E3779B97F4A7C15ull); }
}  // namespace

size_t StringInterner::slot_of(std::string_view s, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
    const uint32_t entry = slots_[slot];
    if (entry == 0 || (*this)[entry - 1] == s) return slot;
  }
}

void StringInterner::grow() {
  std::vector<uint32_t> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, 0);
  for (uint32_t entry : old) {
    if (entry != 0) slots_[slot_of((*this)[entry - 1], hash_of((*this)[entry - 1]))] = entry;
  }
}

uint32_t StringInterner::find(std::string_view s) const {
  if (slots_.empty()) return kAbsent;
  const uint32_t entry = slots_[slot_of(s, hash_of(s))];
  return entry == 0 ? kAbsent : entry - 1;
}

uint32_t StringInterner::intern(std::string_view s) {
  if (2 * (size() + 1) > slots_.size()) grow();  // load factor <= 1/2
  const size_t slot = slot_of(s, hash_of(s));
  if (slots_[slot] != 0) return slots_[slot] - 1;
  const uint32_t id = static_cast<uint32_t>(size());
  chars_.append(s);
  ends_.push_back(chars_.size());
  slots_[slot] = id + 1;
  return id;
}

}  // namespace ragkernels::sparse
