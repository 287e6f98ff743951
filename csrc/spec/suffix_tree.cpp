#include "spec/suffix_tree.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "core/error.h"

namespace ragkernels::spec {

namespace {
// Positions are int32; keep room for max_depth past a document's end.
constexpr int64_t kMaxDocumentTokens = (int64_t{1} << 31) - (int64_t{1} << 20);
}  // namespace

SuffixTree::SuffixTree(int32_t max_depth) : max_depth_(max_depth) {
  RK_CHECK_ARG(max_depth >= 2, "SuffixDrafter: max_depth must be >= 2, got ", max_depth);
  nodes_.emplace_back();
}

// ---- nodes -------------------------------------------------------------------

namespace {
// Nodes with more children keep them sorted by count; smaller lists are
// read whole (cheaper than maintaining an order).
constexpr int32_t kSortAbove = 8;
}  // namespace

void SuffixTree::link_before(int32_t x, int32_t next) {
  Node& n = nodes_[static_cast<size_t>(x)];
  Node& p = nodes_[static_cast<size_t>(n.parent)];
  n.next_sibling = next;
  n.prev_sibling = next >= 0 ? nodes_[static_cast<size_t>(next)].prev_sibling : p.last_child;
  if (n.prev_sibling >= 0) {
    nodes_[static_cast<size_t>(n.prev_sibling)].next_sibling = x;
  } else {
    p.first_child = x;
  }
  if (next >= 0) {
    nodes_[static_cast<size_t>(next)].prev_sibling = x;
  } else {
    p.last_child = x;
  }
}

void SuffixTree::unlink(int32_t x) {
  Node& n = nodes_[static_cast<size_t>(x)];
  Node& p = nodes_[static_cast<size_t>(n.parent)];
  if (n.prev_sibling >= 0) {
    nodes_[static_cast<size_t>(n.prev_sibling)].next_sibling = n.next_sibling;
  } else {
    p.first_child = n.next_sibling;
  }
  if (n.next_sibling >= 0) {
    nodes_[static_cast<size_t>(n.next_sibling)].prev_sibling = n.prev_sibling;
  } else {
    p.last_child = n.prev_sibling;
  }
  n.next_sibling = n.prev_sibling = -1;
}

void SuffixTree::leave_block(int32_t x) {
  const Node& n = nodes_[static_cast<size_t>(x)];
  const int32_t first = block_first_.find(n.parent, n.count);
  const int32_t last = block_last_.find(n.parent, n.count);
  if (first == x && last == x) {
    block_first_.erase(n.parent, n.count);
    block_last_.erase(n.parent, n.count);
  } else if (first == x) {
    block_first_.insert_or_assign(n.parent, n.count, n.next_sibling);
  } else if (last == x) {
    block_last_.insert_or_assign(n.parent, n.count, n.prev_sibling);
  }
}

// x sits right after the block of its (new) count, or right before it.
void SuffixTree::join_block(int32_t x, bool at_front) {
  const Node& n = nodes_[static_cast<size_t>(x)];
  if (block_first_.find(n.parent, n.count) < 0) {
    block_first_.insert_or_assign(n.parent, n.count, x);
    block_last_.insert_or_assign(n.parent, n.count, x);
  } else if (at_front) {
    block_first_.insert_or_assign(n.parent, n.count, x);
  } else {
    block_last_.insert_or_assign(n.parent, n.count, x);
  }
}

void SuffixTree::increment(int32_t x) {
  Node& n = nodes_[static_cast<size_t>(x)];
  if (!nodes_[static_cast<size_t>(n.parent)].sorted) {
    n.count += 1;
    return;
  }
  const int32_t first = block_first_.find(n.parent, n.count);
  leave_block(x);
  if (first != x) {  // to the front of its block: right after the block count + 1
    unlink(x);
    link_before(x, first);
  }
  n.count += 1;
  join_block(x, false);
}

void SuffixTree::decrement(int32_t x) {
  Node& n = nodes_[static_cast<size_t>(x)];
  if (!nodes_[static_cast<size_t>(n.parent)].sorted) {
    n.count -= 1;
    return;
  }
  const int32_t last = block_last_.find(n.parent, n.count);
  leave_block(x);
  if (last != x) {  // to the back of its block: right before the block count - 1
    unlink(x);
    link_before(x, nodes_[static_cast<size_t>(last)].next_sibling);
  }
  n.count -= 1;
  join_block(x, true);
}

void SuffixTree::sort_children(int32_t p) {
  std::vector<std::pair<int32_t, int32_t>> order;  // (-count, node)
  for (int32_t c = nodes_[static_cast<size_t>(p)].first_child; c >= 0; c = nodes_[static_cast<size_t>(c)].next_sibling) {
    order.emplace_back(-nodes_[static_cast<size_t>(c)].count, c);
  }
  std::sort(order.begin(), order.end());
  for (const auto& [neg, c] : order) unlink(c);
  nodes_[static_cast<size_t>(p)].sorted = true;
  for (const auto& [neg, c] : order) {
    link_before(c, -1);
    join_block(c, false);
  }
}

int32_t SuffixTree::new_node(int32_t parent, int32_t token, int32_t count, int64_t doc, int32_t pos, int32_t end) {
  int32_t x;
  if (!free_.empty()) {
    x = free_.back();
    free_.pop_back();
  } else {
    RK_CHECK_ARG(nodes_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                 "SuffixDrafter: the suffix tree is full (2^31 nodes); lower max_answers or max_tokens");
    x = static_cast<int32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& n = nodes_[static_cast<size_t>(x)];
  n = Node{};
  n.ref_doc = doc;
  n.count = count;
  n.token = token;
  n.parent = parent;
  n.depth = nodes_[static_cast<size_t>(parent)].depth + 1;
  n.ref_pos = pos;
  n.ref_end = end;
  children_.insert_or_assign(parent, token, x);
  Node& p = nodes_[static_cast<size_t>(parent)];
  p.num_children += 1;
  if (p.sorted) {  // a new child is never more frequent than its siblings
    RK_DCHECK(p.last_child < 0 || nodes_[static_cast<size_t>(p.last_child)].count >= count);
    link_before(x, -1);
    join_block(x, false);
  } else {
    link_before(x, p.first_child);
    if (parent != 0 && p.num_children > kSortAbove) sort_children(parent);
  }
  return x;
}

void SuffixTree::free_node(int32_t x) {
  Node& n = nodes_[static_cast<size_t>(x)];
  RK_DCHECK(n.first_child < 0);
  children_.erase(n.parent, n.token);
  if (nodes_[static_cast<size_t>(n.parent)].sorted) leave_block(x);
  unlink(x);
  nodes_[static_cast<size_t>(n.parent)].num_children -= 1;
  n = Node{};
  free_.push_back(x);
}

// ---- insertion ------------------------------------------------------------------

void SuffixTree::insert_suffix(int64_t doc, int32_t start, int32_t end) {
  const std::vector<int32_t>& tokens = document(doc);
  total_suffixes_ += 1;
  int32_t x = 0;
  for (int32_t i = start; i < end; ++i) {
    const int32_t c = children_.find(x, tokens[static_cast<size_t>(i)]);
    if (c < 0) {
      new_node(x, tokens[static_cast<size_t>(i)], 1, doc, i + 1, end);
      return;
    }
    if (is_tail(c)) {
      split_tail(c, doc, i + 1, end);
      return;
    }
    increment(c);
    Node& n = nodes_[static_cast<size_t>(c)];
    n.ref_doc = doc;  // the most recent occurrence (see the header)
    n.ref_pos = i + 1;
    n.ref_end = end;
    x = c;
  }
}

// Tail x (one occurrence) meets a second occurrence continuing with
// document(doc)[pos, end): the common part becomes nodes of count 2, then
// each occurrence that goes on gets a tail of its own.
void SuffixTree::split_tail(int32_t x, int64_t doc, int32_t pos, int32_t end) {
  increment(x);
  Node& n = nodes_[static_cast<size_t>(x)];
  const int64_t old_doc = n.ref_doc;
  int32_t old_pos = n.ref_pos;
  const int32_t old_end = n.ref_end;
  n.ref_doc = doc;
  n.ref_pos = pos;
  n.ref_end = end;
  while (old_pos < old_end && pos < end && token_at(old_doc, old_pos) == token_at(doc, pos)) {
    x = new_node(x, token_at(doc, pos), 2, doc, pos + 1, end);
    ++old_pos;
    ++pos;
  }
  if (old_pos < old_end) new_node(x, token_at(old_doc, old_pos), 1, old_doc, old_pos + 1, old_end);
  if (pos < end) new_node(x, token_at(doc, pos), 1, doc, pos + 1, end);
}

int64_t SuffixTree::add_document(std::vector<int32_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  RK_CHECK_ARG(n < kMaxDocumentTokens && num_tokens_ + n < kMaxDocumentTokens, "SuffixDrafter: ", n,
               " more tokens would make the tree hold more than 2^31 - 2^20");
  docs_.push_back(std::move(tokens));
  num_tokens_ += n;
  const int64_t doc = first_doc_ + static_cast<int64_t>(docs_.size()) - 1;
  for (int64_t s = 0; s < n; ++s) {
    insert_suffix(doc, static_cast<int32_t>(s), static_cast<int32_t>(std::min(n, s + max_depth_)));
  }
  return doc;
}

int64_t SuffixTree::open_document() {
  RK_CHECK_ARG(open_doc_ < 0, "SuffixTree: a document is open already");
  docs_.emplace_back();
  open_doc_ = first_doc_ + static_cast<int64_t>(docs_.size()) - 1;
  open_inserted_ = 0;
  return open_doc_;
}

void SuffixTree::append(int64_t doc, const int32_t* tokens, int64_t n) {
  RK_CHECK_ARG(doc == open_doc_ && doc >= 0, "SuffixTree: document ", doc, " is not open");
  RK_CHECK_ARG(num_tokens_ + n < kMaxDocumentTokens, "extend: the sequence would hold more than 2^31 - 2^20 tokens");
  std::vector<int32_t>& d = docs_[static_cast<size_t>(doc - first_doc_)];
  d.insert(d.end(), tokens, tokens + n);
  num_tokens_ += n;
  // A suffix goes in once it is max_depth tokens long (complete).
  const int64_t complete = static_cast<int64_t>(d.size()) - max_depth_ + 1;
  for (; open_inserted_ < complete; ++open_inserted_) {
    const auto s = static_cast<int32_t>(open_inserted_);
    insert_suffix(doc, s, s + max_depth_);
  }
}

// ---- eviction ------------------------------------------------------------------

void SuffixTree::remove_suffix(int64_t doc, int32_t start, int32_t end, std::vector<int32_t>& path) {
  const std::vector<int32_t>& tokens = document(doc);
  total_suffixes_ -= 1;
  path.clear();
  int32_t x = 0;
  for (int32_t i = start; i < end; ++i) {
    const int32_t c = children_.find(x, tokens[static_cast<size_t>(i)]);
    RK_DCHECK(c >= 0);
    if (is_tail(c)) {  // this occurrence's own tail
      RK_DCHECK(nodes_[static_cast<size_t>(c)].ref_doc == doc);
      free_node(c);
      break;
    }
    decrement(c);
    path.push_back(c);
    x = c;
  }
  // Nodes left with one occurrence fold back into tails, deepest first. The
  // occurrence left is their most recent one (documents leave oldest first,
  // suffixes in the order they came), so their reference already holds it.
  for (auto it = path.rbegin(); it != path.rend() && nodes_[static_cast<size_t>(*it)].count == 1; ++it) {
    const int32_t child = nodes_[static_cast<size_t>(*it)].first_child;
    if (child >= 0) {
      RK_DCHECK(is_tail(child) && nodes_[static_cast<size_t>(child)].next_sibling < 0);
      free_node(child);
    }
  }
}

void SuffixTree::evict_oldest() {
  RK_DCHECK(!docs_.empty() && first_doc_ != open_doc_);
  const auto n = static_cast<int64_t>(docs_.front().size());
  std::vector<int32_t> path;
  for (int64_t s = 0; s < n; ++s) {
    remove_suffix(first_doc_, static_cast<int32_t>(s), static_cast<int32_t>(std::min(n, s + max_depth_)), path);
  }
  docs_.pop_front();
  ++first_doc_;
  num_tokens_ -= n;
  maybe_compact();
}

// Renumbers the live nodes breadth-first when over half the slots are free,
// so memory follows evictions down (amortized O(1) per freed node).
void SuffixTree::maybe_compact() {
  if (nodes_.size() < 256 || free_.size() * 2 < nodes_.size()) return;
  const auto live = static_cast<size_t>(num_nodes());
  std::vector<Node> fresh;
  std::vector<int32_t> old_id;
  fresh.reserve(live);
  old_id.reserve(live);
  detail::EdgeMap map;
  map.reserve(live);
  fresh.push_back(nodes_[0]);
  old_id.push_back(0);
  for (size_t k = 0; k < old_id.size(); ++k) {
    fresh[k].first_child = fresh[k].last_child = -1;
    for (int32_t c = nodes_[static_cast<size_t>(old_id[k])].first_child; c >= 0;
         c = nodes_[static_cast<size_t>(c)].next_sibling) {
      const auto id = static_cast<int32_t>(fresh.size());
      Node n = nodes_[static_cast<size_t>(c)];
      n.parent = static_cast<int32_t>(k);
      n.next_sibling = -1;
      n.prev_sibling = fresh[k].last_child;  // same order: sorted lists stay sorted
      if (n.prev_sibling >= 0) {
        fresh[static_cast<size_t>(n.prev_sibling)].next_sibling = id;
      } else {
        fresh[k].first_child = id;
      }
      fresh[k].last_child = id;
      fresh.push_back(n);
      old_id.push_back(c);
      map.insert_or_assign(static_cast<int32_t>(k), n.token, id);
    }
  }
  nodes_ = std::move(fresh);
  free_ = std::vector<int32_t>();
  children_ = std::move(map);
  rebuild_blocks();
}

void SuffixTree::rebuild_blocks() {
  block_first_.clear();
  block_last_.clear();
  for (size_t p = 0; p < nodes_.size(); ++p) {
    if (!nodes_[p].sorted) continue;
    for (int32_t c = nodes_[p].first_child; c >= 0; c = nodes_[static_cast<size_t>(c)].next_sibling) {
      join_block(c, false);
    }
  }
}

// ---- drafting ----------------------------------------------------------------------

bool SuffixTree::walk(const int32_t* tokens, int64_t n, Cursor& at) const {
  Cursor c{0, 0};
  for (int64_t i = 0; i < n; ++i) {
    if (is_tail(c.node)) {
      const Node& x = nodes_[static_cast<size_t>(c.node)];
      const int32_t pos = x.ref_pos + c.offset;
      if (pos >= x.ref_end || token_at(x.ref_doc, pos) != tokens[i]) return false;
      ++c.offset;
    } else {
      const int32_t child = children_.find(c.node, tokens[i]);
      if (child < 0) return false;
      c = Cursor{child, 0};
    }
  }
  at = c;
  return true;
}

bool SuffixTree::has_continuation(const Cursor& at) const {
  const Node& x = nodes_[static_cast<size_t>(at.node)];
  return is_tail(at.node) ? x.ref_pos + at.offset < x.ref_end : x.first_child >= 0;
}

// The largest L <= min(n, max_match, max_depth - 1) whose suffix occurs with
// a continuation. With every document complete, "the last L tokens occur
// with a continuation" holds for every length below one for which it holds
// (the same occurrence, one token later; L + 1 <= max_depth keeps it within
// the truncated paths), so L is found by binary search. An open document (a
// request's own sequence) enters max_depth tokens late, which can make a
// shorter suffix miss where a longer one matches: then lengths are tried from
// the longest (each failed try usually stops after a few tokens).
int64_t SuffixTree::longest_match(const int32_t* pattern, int64_t n, int64_t max_match, Cursor& at) const {
  const int64_t longest = std::min({n, max_match, static_cast<int64_t>(max_depth_) - 1});
  auto matches = [&](int64_t len, Cursor& c) { return walk(pattern + n - len, len, c) && has_continuation(c); };
  if (open_doc_ >= 0) {
    for (int64_t len = longest; len >= 1; --len) {
      if (matches(len, at)) return len;
    }
    return 0;
  }
  int64_t lo = 0, hi = longest;  // matches(lo) (or lo == 0); hi bounds the answer
  Cursor c{0, 0};
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (matches(mid, c)) {
      lo = mid;
      at = c;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

namespace {
struct Candidate {
  int64_t count;
  int32_t depth;
  int32_t token;
  int32_t parent;  // index in the draft tree
  int32_t node;
  int32_t offset;
};
// Heap order: the top is the best (most frequent; then shallower, lower
// token id, earlier parent: a total order, so drafts are deterministic).
struct Worse {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.count != b.count) return a.count < b.count;
    if (a.depth != b.depth) return a.depth > b.depth;
    if (a.token != b.token) return a.token > b.token;
    return a.parent > b.parent;
  }
};
}  // namespace

SuffixDraft SuffixTree::draft(const int32_t* pattern, int64_t n, int32_t root, int64_t max_nodes,
                              const SuffixDraftParams& params) const {
  Cursor m{0, 0};
  const int64_t match = max_nodes > 0 ? longest_match(pattern, n, params.max_match, m) : 0;
  if (match == 0) return SuffixDraft{TokenTree(root)};
  const double cap = std::floor(params.max_spec_factor * static_cast<double>(match));
  const int64_t budget = cap >= static_cast<double>(max_nodes) ? max_nodes : static_cast<int64_t>(cap);
  SuffixDraft out{TokenTree(root, static_cast<size_t>(budget) + 1)};
  out.match_length = match;
  out.match_count = count_of(m.node);
  const auto total = static_cast<double>(out.match_count);
  int64_t remaining = budget;  // nodes still to draft
  // The candidates' heap reuses this thread's buffer: a draft is a few
  // microseconds, in which an allocation per call would show.
  thread_local std::vector<Candidate> heap;
  heap.clear();
  auto push = [&](const Candidate& c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), Worse{});
  };
  auto expand = [&](const Cursor& c, int32_t index, int32_t depth) {
    const Node& x = nodes_[static_cast<size_t>(c.node)];
    if (is_tail(c.node)) {
      const int32_t pos = x.ref_pos + c.offset;
      if (pos < x.ref_end && 1.0 / total >= params.min_probability) {
        push(Candidate{1, depth + 1, token_at(x.ref_doc, pos), index, c.node, c.offset + 1});
      }
      return;
    }
    // A sorted list is read down to the floor, and past `remaining`
    // children only while counts tie (a child after `remaining` strictly
    // more frequent siblings can never be drafted).
    int64_t pushed = 0;
    int32_t last = -1;
    for (int32_t child = x.first_child; child >= 0; child = nodes_[static_cast<size_t>(child)].next_sibling) {
      const Node& y = nodes_[static_cast<size_t>(child)];
      if (static_cast<double>(y.count) / total < params.min_probability) {
        if (x.sorted) break;
        continue;
      }
      if (x.sorted && pushed >= remaining && y.count != last) break;
      push(Candidate{y.count, depth + 1, y.token, index, child, 0});
      ++pushed;
      last = y.count;
    }
  };
  expand(m, 0, 0);
  while (out.tree.size() - 1 < budget && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Worse{});
    const Candidate c = heap.back();
    heap.pop_back();
    const float weight = static_cast<float>(static_cast<double>(c.count) / total);
    const int32_t index = out.tree.add(c.parent, c.token, weight);
    out.count_sum += c.count;
    --remaining;
    expand(Cursor{c.node, c.offset}, index, c.depth);
  }
  return out;
}

// ---- inspection ------------------------------------------------------------------

size_t SuffixTree::memory_bytes() const {
  size_t bytes = nodes_.capacity() * sizeof(Node) + free_.capacity() * sizeof(int32_t) + children_.memory_bytes();
  for (const auto& d : docs_) bytes += d.capacity() * sizeof(int32_t);
  return bytes;
}

void SuffixTree::export_trie(std::vector<int32_t>& tokens, std::vector<int32_t>& parents,
                             std::vector<int64_t>& counts) const {
  tokens.assign(1, -1);
  parents.assign(1, -1);
  counts.assign(1, total_suffixes_);
  std::vector<Cursor> queue{Cursor{0, 0}};
  std::vector<std::pair<int32_t, int32_t>> children;  // (token, node)
  for (size_t k = 0; k < queue.size(); ++k) {
    const Cursor c = queue[k];
    const Node& x = nodes_[static_cast<size_t>(c.node)];
    if (is_tail(c.node)) {
      const int32_t pos = x.ref_pos + c.offset;
      if (pos < x.ref_end) {
        tokens.push_back(token_at(x.ref_doc, pos));
        parents.push_back(static_cast<int32_t>(k));
        counts.push_back(1);
        queue.push_back(Cursor{c.node, c.offset + 1});
      }
      continue;
    }
    children.clear();
    for (int32_t ch = x.first_child; ch >= 0; ch = nodes_[static_cast<size_t>(ch)].next_sibling) {
      children.emplace_back(nodes_[static_cast<size_t>(ch)].token, ch);
    }
    std::sort(children.begin(), children.end());
    for (const auto& [token, ch] : children) {
      tokens.push_back(token);
      parents.push_back(static_cast<int32_t>(k));
      counts.push_back(nodes_[static_cast<size_t>(ch)].count);
      queue.push_back(Cursor{ch, 0});
    }
  }
}

std::string SuffixTree::check() const {
  std::ostringstream err;
  std::vector<bool> is_free(nodes_.size(), false);
  for (const int32_t x : free_) is_free[static_cast<size_t>(x)] = true;
  if (static_cast<int64_t>(children_.size()) != num_nodes() - 1) return "edge map size differs from node count";
  size_t blocks = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (is_free[i]) continue;
    const Node& x = nodes_[i];
    const auto id = static_cast<int32_t>(i);
    // Its children: a well-linked list, sorted in blocks when x is sorted.
    int64_t below = 0;
    int32_t n = 0, prev = -1;
    for (int32_t c = x.first_child; c >= 0; prev = c, c = nodes_[static_cast<size_t>(c)].next_sibling, ++n) {
      const Node& y = nodes_[static_cast<size_t>(c)];
      if (is_free[static_cast<size_t>(c)] || y.parent != id || y.prev_sibling != prev) return "broken sibling list";
      below += y.count;
      if (!x.sorted || (prev >= 0 && nodes_[static_cast<size_t>(prev)].count == y.count)) continue;
      if (prev >= 0 && nodes_[static_cast<size_t>(prev)].count < y.count) err << "children of " << i << " unsorted; ";
      ++blocks;  // c starts a block
      int32_t end = c;
      while (nodes_[static_cast<size_t>(end)].next_sibling >= 0 &&
             nodes_[static_cast<size_t>(nodes_[static_cast<size_t>(end)].next_sibling)].count == y.count) {
        end = nodes_[static_cast<size_t>(end)].next_sibling;
      }
      if (block_first_.find(id, y.count) != c || block_last_.find(id, y.count) != end) {
        err << "block " << i << "/" << y.count << " misplaced; ";
      }
    }
    if (x.last_child != prev || x.num_children != n) err << "node " << i << " miscounts its children; ";
    if (below > count_of(id)) err << "node " << i << " has children counting more than itself; ";
    if (i == 0) continue;
    if (x.parent < 0 || is_free[static_cast<size_t>(x.parent)]) return "node with a dead parent";
    const Node& p = nodes_[static_cast<size_t>(x.parent)];
    if (children_.find(x.parent, x.token) != id) err << "node " << i << " missing from its parent's edges; ";
    if (x.depth != p.depth + 1 || x.depth > max_depth_) err << "node " << i << " has a bad depth; ";
    if (x.count < 1 || x.count > count_of(x.parent)) err << "node " << i << " has a bad count; ";
    if (is_tail(id) && x.first_child >= 0) err << "tail " << i << " has children; ";
    if (x.ref_doc < first_doc_ || x.ref_doc >= first_doc_ + num_documents()) return "reference to a dead document";
    const std::vector<int32_t>& d = document(x.ref_doc);
    if (x.ref_pos < x.depth || x.ref_end > static_cast<int32_t>(d.size()) || x.ref_pos > x.ref_end ||
        x.ref_end - (x.ref_pos - x.depth) > max_depth_) {
      return "reference out of its document";
    }
    int32_t y = id;  // the path to the root spells the referenced tokens
    for (int32_t pos = x.ref_pos - 1; y != 0; y = nodes_[static_cast<size_t>(y)].parent, --pos) {
      if (nodes_[static_cast<size_t>(y)].token != d[static_cast<size_t>(pos)]) return "path differs from its reference";
    }
  }
  if (block_first_.size() != blocks || block_last_.size() != blocks) err << "stale blocks; ";
  return err.str();
}

// ---- the drafter and its sessions --------------------------------------------------

void SuffixDrafterParams::check(const char* op) const {
  RK_CHECK_ARG(max_depth >= 2 && max_depth <= (int64_t{1} << 20), op, ": max_depth must be in [2, 2**20], got ",
               max_depth);
  RK_CHECK_ARG(draft.max_match >= 1, op, ": max_match must be >= 1, got ", draft.max_match);
  RK_CHECK_ARG(std::isfinite(draft.max_spec_factor) && draft.max_spec_factor > 0, op,
               ": max_spec_factor must be a finite number > 0, got ", draft.max_spec_factor);
  RK_CHECK_ARG(draft.min_probability >= 0 && draft.min_probability <= 1, op,
               ": min_probability must be in [0, 1], got ", draft.min_probability);
  RK_CHECK_ARG(max_answers >= -1, op, ": max_answers must be >= 0 (or None), got ", max_answers);
  RK_CHECK_ARG(max_tokens >= -1, op, ": max_tokens must be >= 0 (or None), got ", max_tokens);
}

SuffixDrafter::SuffixDrafter(const SuffixDrafterParams& params)
    : params_((params.check("SuffixDrafter"), params)), tree_(static_cast<int32_t>(params.max_depth)) {}

void SuffixDrafter::add(std::vector<int32_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0 || params_.max_answers == 0 || (params_.max_tokens >= 0 && n > params_.max_tokens)) return;
  std::unique_lock lock(mutex_);
  while (params_.max_answers >= 0 && tree_.num_documents() >= params_.max_answers) tree_.evict_oldest();
  while (params_.max_tokens >= 0 && tree_.num_tokens() + n > params_.max_tokens) tree_.evict_oldest();
  tree_.add_document(std::move(tokens));
}

SuffixDraft SuffixDrafter::draft(const int32_t* pattern, int64_t n, int32_t root, int64_t max_nodes) const {
  std::shared_lock lock(mutex_);
  return tree_.draft(pattern, n, root, max_nodes, params_.draft);
}

int64_t SuffixDrafter::num_documents() const {
  std::shared_lock lock(mutex_);
  return tree_.num_documents();
}

int64_t SuffixDrafter::num_tokens() const {
  std::shared_lock lock(mutex_);
  return tree_.num_tokens();
}

int64_t SuffixDrafter::num_nodes() const {
  std::shared_lock lock(mutex_);
  return tree_.num_nodes();
}

size_t SuffixDrafter::memory_bytes() const {
  std::shared_lock lock(mutex_);
  return tree_.memory_bytes();
}

void SuffixDrafter::export_trie(std::vector<int32_t>& tokens, std::vector<int32_t>& parents,
                                std::vector<int64_t>& counts) const {
  std::shared_lock lock(mutex_);
  tree_.export_trie(tokens, parents, counts);
}

std::string SuffixDrafter::check() const {
  std::shared_lock lock(mutex_);
  return tree_.check();
}

SuffixSession::SuffixSession(std::shared_ptr<SuffixDrafter> drafter, const std::vector<std::vector<int32_t>>& context,
                             const std::vector<int32_t>& prompt)
    : drafter_(std::move(drafter)), request_(static_cast<int32_t>(drafter_->params().max_depth)) {
  for (const auto& piece : context) {
    if (!piece.empty()) request_.add_document(piece);
  }
  doc_ = request_.open_document();
  request_.append(doc_, prompt.data(), static_cast<int64_t>(prompt.size()));
  prompt_size_ = static_cast<int64_t>(prompt.size());
}

void SuffixSession::extend(const int32_t* tokens, int64_t n) {
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "extend: the session is finished");
  request_.append(doc_, tokens, n);
}

int64_t SuffixSession::size() const {
  std::lock_guard lock(mutex_);
  return finished_ ? 0 : static_cast<int64_t>(request_.document(doc_).size());
}

int64_t SuffixSession::request_num_nodes() const {
  std::lock_guard lock(mutex_);
  return request_.num_nodes();
}

TokenTree SuffixSession::draft(int64_t max_nodes) const {
  RK_CHECK_ARG(max_nodes >= 0, "draft: max_nodes must be >= 0, got ", max_nodes);
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "draft: the session is finished");
  const std::vector<int32_t>& sequence = request_.document(doc_);
  RK_CHECK_ARG(!sequence.empty(), "draft: the sequence is empty (empty prompt and nothing extended); "
               "a draft is rooted at the sequence's last token");
  const auto n = static_cast<int64_t>(sequence.size());
  SuffixDraft own = request_.draft(sequence.data(), n, sequence.back(), max_nodes, drafter_->params().draft);
  SuffixDraft shared = drafter_->draft(sequence.data(), n, sequence.back(), max_nodes);
  return own.score() >= shared.score() ? std::move(own.tree) : std::move(shared.tree);
}

void SuffixSession::finish() {
  std::lock_guard lock(mutex_);
  RK_CHECK_ARG(!finished_, "finish: the session is finished already");
  const std::vector<int32_t>& sequence = request_.document(doc_);
  std::vector<int32_t> answer(sequence.begin() + prompt_size_, sequence.end());
  finished_ = true;
  request_ = SuffixTree(static_cast<int32_t>(drafter_->params().max_depth));  // frees the request's memory
  drafter_->add(std::move(answer));
}

}  // namespace ragkernels::spec
