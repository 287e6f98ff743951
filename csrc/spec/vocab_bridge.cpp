#include "spec/vocab_bridge.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace ragkernels::spec {

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Where committing may stop in `pending`: the start of its last whitespace
// run (not at 0); when that leaves more than max_pending bytes, a character
// start kKeep bytes from the end (a long word, code, or a script without
// spaces); 0 when nothing is to be committed yet.
size_t commit_point(const std::string& pending, size_t max_pending) {
  constexpr size_t kKeep = 8;
  size_t cut = 0;
  for (size_t i = pending.size(); i-- > 1;) {
    if (is_space(pending[i]) && !is_space(pending[i - 1])) {
      cut = i;
      break;
    }
  }
  if (pending.size() - cut <= max_pending) return cut;
  cut = pending.size() - kKeep;
  while (cut > 0 && is_utf8_continuation(pending[cut])) --cut;
  return cut;
}

}  // namespace

ByteVocab::ByteVocab(std::vector<std::string> pieces) : pieces_(std::move(pieces)), node_token_{-1}, node_has_child_{0} {
  for (size_t id = 0; id < pieces_.size(); ++id) {
    int32_t node = 0;
    for (const char c : pieces_[id]) {
      const auto byte = static_cast<int32_t>(static_cast<unsigned char>(c));
      int32_t child = edges_.find(node, byte);
      if (child < 0) {
        child = static_cast<int32_t>(node_token_.size());
        node_token_.push_back(-1);
        node_has_child_.push_back(0);
        edges_.insert_or_assign(node, byte, child);
        node_has_child_[static_cast<size_t>(node)] = 1;
      }
      node = child;
    }
    if (node != 0 && node_token_[static_cast<size_t>(node)] < 0) node_token_[static_cast<size_t>(node)] = static_cast<int32_t>(id);
  }
}

ByteVocab::Match ByteVocab::longest(std::string_view text) const {
  Match best;
  int32_t node = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    node = edges_.find(node, static_cast<int32_t>(static_cast<unsigned char>(text[i])));
    if (node < 0) return best;
    if (node_token_[static_cast<size_t>(node)] >= 0) {
      best.id = node_token_[static_cast<size_t>(node)];
      best.length = static_cast<int64_t>(i + 1);
    }
  }
  best.open = node_has_child_[static_cast<size_t>(node)] != 0;
  return best;
}

std::vector<int32_t> ByteVocab::encode(std::string_view text, Mode mode, std::vector<int64_t>* ends) const {
  std::vector<int32_t> ids;
  if (ends != nullptr) ends->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const Match m = longest(text.substr(pos));
    if (m.id < 0) {
      if (mode == Mode::kDraft) break;
      ++pos;  // a byte no token spells
      continue;
    }
    if (mode == Mode::kDraft && m.open) break;  // the text's end cut the match short
    pos += static_cast<size_t>(m.length);
    ids.push_back(m.id);
    if (ends != nullptr) ends->push_back(static_cast<int64_t>(pos));
  }
  return ids;
}

std::string ByteVocab::decode(const int32_t* ids, int64_t n) const {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += pieces_[static_cast<size_t>(ids[i])];
  return out;
}

size_t ByteVocab::memory_bytes() const {
  size_t bytes = edges_.memory_bytes() + node_token_.capacity() * sizeof(int32_t) + node_has_child_.capacity();
  for (const auto& piece : pieces_) bytes += sizeof(std::string) + piece.capacity();
  return bytes;
}

std::vector<int32_t> BridgeSession::extend(const int32_t* target_ids, int64_t n) {
  if (n == 0) return {};
  pending_ += bridge_->target().decode(target_ids, n);
  last_target_ = target_ids[n - 1];
  num_target_ += n;
  const size_t cut = commit_point(pending_, static_cast<size_t>(kMaxPending));
  if (cut == 0) return {};
  auto ids = bridge_->drafter().encode(std::string_view(pending_).substr(0, cut), ByteVocab::Mode::kCommit);
  pending_.erase(0, cut);
  num_committed_ += static_cast<int64_t>(ids.size());
  return ids;
}

std::vector<int32_t> BridgeSession::flush() {
  auto ids = bridge_->drafter().encode(pending_, ByteVocab::Mode::kCommit);
  pending_.clear();
  num_committed_ += static_cast<int64_t>(ids.size());
  return ids;
}

TokenTree BridgeSession::map(const TokenTree& drafter_tree, int64_t max_nodes) const {
  RK_CHECK_ARG(num_target_ > 0, "draft: the sequence is empty; extend it first");
  TokenTree out(last_target_);
  const auto n = static_cast<size_t>(drafter_tree.size());
  const auto& drafter = bridge_->drafter();
  const size_t p = pending_.size();
  for (size_t i = 1; i < n; ++i) {
    RK_CHECK_ARG(drafter_tree.tokens[i] < drafter.size(), "draft: the drafter proposed token ", drafter_tree.tokens[i],
                 ", outside its vocabulary of ", drafter.size(), " (drafter_vocab); was it made for another tokenizer?");
  }
  // Each drafter node's path bytes past the committed text, and whether
  // they agree with the pending bytes.
  std::vector<std::string> path(n);
  std::vector<uint8_t> ok(n, 0), has_ok_child(n, 0);
  ok[0] = 1;
  for (size_t i = 1; i < n; ++i) {
    const auto parent = static_cast<size_t>(drafter_tree.parents[i]);
    if (!ok[parent]) continue;
    path[i] = path[parent] + drafter.bytes(drafter_tree.tokens[i]);
    const size_t from = path[parent].size(), to = std::min(path[i].size(), p);
    ok[i] = from >= to || path[i].compare(from, to - from, pending_, from, to - from) == 0;
    if (ok[i]) has_ok_child[parent] = 1;
  }
  std::vector<std::vector<int32_t>> children(1);  // of the target tree's nodes
  std::vector<int64_t> ends;
  std::vector<size_t> line;  // the drafter path to a leaf, root first
  for (size_t leaf = 1; leaf < n; ++leaf) {
    if (!ok[leaf] || has_ok_child[leaf] || path[leaf].size() <= p) continue;
    const auto ids = bridge_->target().encode(std::string_view(path[leaf]).substr(p), ByteVocab::Mode::kDraft, &ends);
    line.clear();
    for (auto i = static_cast<int32_t>(leaf); i > 0; i = drafter_tree.parents[static_cast<size_t>(i)]) {
      line.push_back(static_cast<size_t>(i));
    }
    std::reverse(line.begin(), line.end());
    size_t cover = 0;  // the shallowest drafter node whose bytes reach the token's end
    int32_t node = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      while (path[line[cover]].size() < p + static_cast<size_t>(ends[j])) ++cover;
      const float weight = drafter_tree.weights[line[cover]];
      auto& siblings = children[static_cast<size_t>(node)];
      const auto found = std::find_if(siblings.begin(), siblings.end(), [&](int32_t c) {
        return out.tokens[static_cast<size_t>(c)] == ids[j];
      });
      if (found != siblings.end()) {
        node = *found;
        out.weights[static_cast<size_t>(node)] = std::max(out.weights[static_cast<size_t>(node)], weight);
      } else {
        const int32_t child = out.add(node, ids[j], weight);
        siblings.push_back(child);
        children.emplace_back();
        node = child;
      }
    }
  }
  return merge_trees({&out}, max_nodes);
}

}  // namespace ragkernels::spec
