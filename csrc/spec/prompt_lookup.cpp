#include "spec/prompt_lookup.h"

#include <algorithm>

#include "core/error.h"

namespace ragkernels::spec {

namespace {
// States are int32 and a text of n tokens has up to 2n states.
constexpr int64_t kMaxTextTokens = int64_t{1} << 30;
}  // namespace

// ---- EdgeMap ---------------------------------------------------------------

namespace detail {

void EdgeMap::rehash(size_t capacity) {
  std::vector<uint64_t> old_keys = std::move(keys_);
  std::vector<int32_t> old_values = std::move(values_);
  keys_.assign(capacity, kEmpty);
  values_.assign(capacity, 0);
  mask_ = capacity - 1;
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (old_keys[i] == kEmpty) continue;
    uint64_t j = slot(old_keys[i]);
    while (keys_[j] != kEmpty) j = (j + 1) & mask_;
    keys_[j] = old_keys[i];
    values_[j] = old_values[i];
  }
}

void EdgeMap::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity * 3 < n * 4) capacity *= 2;
  if (capacity > keys_.size()) rehash(capacity);
}

void EdgeMap::insert_or_assign(int32_t node, int32_t token, int32_t value) {
  if ((size_ + 1) * 4 > keys_.size() * 3) rehash(keys_.empty() ? 16 : keys_.size() * 2);
  const uint64_t k = key(node, token);
  uint64_t i = slot(k);
  while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
  if (keys_[i] == kEmpty) {
    keys_[i] = k;
    ++size_;
  }
  values_[i] = value;
}

void EdgeMap::erase(int32_t node, int32_t token) {
  const uint64_t k = key(node, token);
  uint64_t i = slot(k);
  while (keys_[i] != k) {
    RK_DCHECK(keys_[i] != kEmpty);
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion: pull later entries of the probe run into the
  // hole unless their home slot lies cyclically in (hole, j].
  for (uint64_t j = (i + 1) & mask_; keys_[j] != kEmpty; j = (j + 1) & mask_) {
    const uint64_t home = slot(keys_[j]);
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    keys_[i] = keys_[j];
    values_[i] = values_[j];
    i = j;
  }
  keys_[i] = kEmpty;
  --size_;
  if (keys_.size() > 64 && size_ * 8 < keys_.size()) rehash(keys_.size() / 2);
}

}  // namespace detail

// ---- SuffixAutomaton -------------------------------------------------------

SuffixAutomaton::SuffixAutomaton() { states_.push_back(State{0, -1, -1, -1}); }

void SuffixAutomaton::reserve(size_t tokens) {
  text_.reserve(tokens);
  states_.reserve(2 * tokens + 1);
}

int32_t SuffixAutomaton::new_state(int32_t len, int32_t first_end) {
  states_.push_back(State{len, -1, first_end, -1});
  return static_cast<int32_t>(states_.size() - 1);
}

void SuffixAutomaton::add_edge(int32_t s, int32_t token, int32_t target) {
  next_.insert_or_assign(s, token, target);
  edges_.push_back(Edge{token, states_[static_cast<size_t>(s)].edges});
  states_[static_cast<size_t>(s)].edges = static_cast<int32_t>(edges_.size() - 1);
}

void SuffixAutomaton::append(int32_t token) {
  const auto pos = static_cast<int32_t>(text_.size());
  text_.push_back(token);
  const int32_t cur = new_state(len(last_) + 1, pos);
  int32_t p = last_;
  while (p != -1 && next_.find(p, token) < 0) {
    add_edge(p, token, cur);
    p = link(p);
  }
  if (p == -1) {
    states_[static_cast<size_t>(cur)].link = 0;
  } else {
    const int32_t q = next_.find(p, token);
    if (len(p) + 1 == len(q)) {
      states_[static_cast<size_t>(cur)].link = q;
    } else {
      // Split q: the clone takes the shorter strings (and q's first end,
      // since its end positions are q's plus the current one).
      const int32_t clone = new_state(len(p) + 1, first_end(q));
      for (int32_t e = states_[static_cast<size_t>(q)].edges; e != -1; e = edges_[static_cast<size_t>(e)].next) {
        const int32_t t = edges_[static_cast<size_t>(e)].token;
        add_edge(clone, t, next_.find(q, t));
      }
      states_[static_cast<size_t>(clone)].link = link(q);
      while (p != -1 && next_.find(p, token) == q) {
        next_.insert_or_assign(p, token, clone);
        p = link(p);
      }
      states_[static_cast<size_t>(q)].link = clone;
      states_[static_cast<size_t>(cur)].link = clone;
    }
  }
  last_ = cur;
}

size_t SuffixAutomaton::memory_bytes() const {
  return states_.capacity() * sizeof(State) + edges_.capacity() * sizeof(Edge) + next_.memory_bytes() +
         text_.capacity() * sizeof(int32_t);
}

// ---- PromptLookup ------------------------------------------------------------

void PromptLookupParams::check(const char* op) const {
  RK_CHECK_ARG(max_depth >= 1, op, ": max_depth must be >= 1, got ", max_depth);
  RK_CHECK_ARG(min_match >= 1, op, ": min_match must be >= 1, got ", min_match);
}

PromptLookup::PromptLookup(const PromptLookupParams& params, const std::vector<std::vector<int32_t>>& context,
                           const std::vector<int32_t>& prompt)
    : params_(params) {
  params_.check("PromptLookupDrafter");
  int64_t total = static_cast<int64_t>(prompt.size());
  for (const auto& piece : context) total += static_cast<int64_t>(piece.size()) + 1;
  RK_CHECK_ARG(total < kMaxTextTokens, "PromptLookupDrafter.start: prompt and context hold ", total,
               " tokens, more than the 2^30 a session can hold");
  sam_.reserve(static_cast<size_t>(total));
  int32_t separator = -1;
  for (const auto& piece : context) {
    if (piece.empty()) continue;
    for (const int32_t t : piece) sam_.append(t);
    sam_.append(separator--);  // unique: no suffix holding it occurs twice
  }
  append_all(prompt.data(), static_cast<int64_t>(prompt.size()));
}

void PromptLookup::append_all(const int32_t* tokens, int64_t n) {
  RK_CHECK_ARG(static_cast<int64_t>(sam_.text().size()) + n < kMaxTextTokens,
               "extend: the session would hold more than 2^30 tokens");
  for (int64_t i = 0; i < n; ++i) sam_.append(tokens[i]);
  size_ += n;
}

void PromptLookup::extend(const int32_t* tokens, int64_t n) {
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "extend: the session is finished");
  append_all(tokens, n);
}

void PromptLookup::finish() {
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "finish: the session is finished already");
  finished_ = true;
  sam_ = SuffixAutomaton();
}

int64_t PromptLookup::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

size_t PromptLookup::memory_bytes() const {
  std::lock_guard lock(mutex_);
  return sam_.memory_bytes();
}

int64_t PromptLookup::match_length() const {
  std::lock_guard lock(mutex_);
  return size_ == 0 || finished_ ? 0 : sam_.len(sam_.link(sam_.last()));
}

TokenTree PromptLookup::draft(int64_t max_nodes) const {
  RK_CHECK_ARG(max_nodes >= 0, "draft: max_nodes must be >= 0, got ", max_nodes);
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "draft: the session is finished");
  RK_CHECK_ARG(size_ > 0, "draft: the sequence is empty (empty prompt and nothing extended); "
               "a draft is rooted at the sequence's last token");
  const std::vector<int32_t>& text = sam_.text();
  TokenTree tree(text.back());
  const int64_t budget = std::min(max_nodes, params_.max_depth);
  const int32_t v = sam_.link(sam_.last());
  const int64_t match = sam_.len(v);
  if (budget == 0 || match < params_.min_match) return tree;
  const auto n = static_cast<int64_t>(text.size());
  const int64_t start = sam_.first_end(v) + 1;  // <= n - 1: v also ends at n - 1
  tree.tokens.reserve(static_cast<size_t>(budget + 1));
  for (int64_t k = 0; k < budget; ++k) {
    const int64_t pos = start + k;
    // Past the present, copy what the draft itself predicted (pos - n < k).
    const int32_t token = pos < n ? text[static_cast<size_t>(pos)] : tree.tokens[static_cast<size_t>(1 + pos - n)];
    if (token < 0) break;  // a context piece's end
    const double weight = static_cast<double>(match + 1) / static_cast<double>(match + 2 + k);
    tree.add(static_cast<int32_t>(k), token, static_cast<float>(weight));
  }
  return tree;
}

}  // namespace ragkernels::spec
