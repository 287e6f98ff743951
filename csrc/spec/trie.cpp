#include "spec/trie.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "core/parallel.h"

namespace ragkernels::spec {

namespace {

struct Sequences {
  const int32_t* values;
  const int64_t* offsets;
  const int32_t* begin(int64_t i) const { return values + offsets[i]; }
  const int32_t* end(int64_t i) const { return values + offsets[i + 1]; }
  bool less(int64_t a, int64_t b) const {
    return std::lexicographical_compare(begin(a), end(a), begin(b), end(b));
  }
  bool equal(int64_t a, int64_t b) const {
    return offsets[a + 1] - offsets[a] == offsets[b + 1] - offsets[b] && std::equal(begin(a), end(a), begin(b));
  }
};

void check_sequences(const Sequences& seqs, int64_t n, int64_t vocab_size) {
  RK_CHECK_ARG(n >= 1, "Trie.build: sequences is empty; a trie needs at least one allowed sequence");
  RK_CHECK_ARG(vocab_size >= 1 && vocab_size <= int64_t{std::numeric_limits<int32_t>::max()} + 1,
               "Trie.build: vocab_size must be in [1, 2**31], got ", vocab_size);
  for (int64_t i = 0; i < n; ++i) {
    RK_CHECK_ARG(seqs.offsets[i + 1] > seqs.offsets[i], "Trie.build: sequences[", i,
                 "] is empty; every allowed sequence has at least one token");
    for (const int32_t* t = seqs.begin(i); t != seqs.end(i); ++t) {
      RK_CHECK_ARG(*t >= 0 && *t < vocab_size, "Trie.build: sequences[", i, "][", t - seqs.begin(i), "] = ", *t,
                   " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
}

// Indices of the sequences in lexicographic order: one sorted run per
// thread, merged pairwise (the order is total up to equal sequences, which
// are then adjacent: the result does not depend on the thread count).
std::vector<int64_t> sorted_order(const Sequences& seqs, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  const auto less = [&](int64_t a, int64_t b) { return seqs.less(a, b); };
  const int64_t runs = std::max<int64_t>(1, std::min<int64_t>(num_threads(), n / 4096));
  std::vector<int64_t> bounds(static_cast<size_t>(runs) + 1);
  for (int64_t r = 0; r <= runs; ++r) bounds[static_cast<size_t>(r)] = n * r / runs;
  parallel_for(0, runs, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::sort(order.begin() + bounds[static_cast<size_t>(r)], order.begin() + bounds[static_cast<size_t>(r) + 1],
                less);
    }
  });
  for (int64_t width = 1; width < runs; width *= 2) {
    for (int64_t r = 0; r + width < runs; r += 2 * width) {
      const auto first = order.begin() + bounds[static_cast<size_t>(r)];
      const auto middle = order.begin() + bounds[static_cast<size_t>(r + width)];
      const auto last = order.begin() + bounds[static_cast<size_t>(std::min(r + 2 * width, runs))];
      std::inplace_merge(first, middle, last, less);
    }
  }
  return order;
}

}  // namespace

std::shared_ptr<Trie> Trie::build(const int32_t* values, const int64_t* offsets, int64_t num_sequences,
                                  int64_t vocab_size) {
  const Sequences seqs{values, offsets};
  check_sequences(seqs, num_sequences, vocab_size);
  const std::vector<int64_t> order = sorted_order(seqs, num_sequences);

  std::shared_ptr<Trie> out(new Trie());
  Trie& trie = *out;
  trie.vocab_size_ = vocab_size;
  trie.own_terminal_.push_back(0);  // the root
  std::vector<int32_t> edge_parent, edge_token, edge_child;
  std::vector<int32_t> path{0};  // nodes of the previous sequence, the root first
  int64_t previous = -1;
  for (const int64_t s : order) {
    if (previous >= 0 && seqs.equal(previous, s)) continue;
    const int32_t* tokens = seqs.begin(s);
    const int64_t length = seqs.end(s) - tokens;
    int64_t common = 0;
    if (previous >= 0) {
      const int32_t* before = seqs.begin(previous);
      const int64_t limit = std::min(length, seqs.end(previous) - before);
      while (common < limit && before[common] == tokens[common]) ++common;
    }
    path.resize(static_cast<size_t>(common) + 1);
    for (int64_t d = common; d < length; ++d) {
      RK_CHECK_ARG(trie.own_terminal_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                   "Trie.build: more than 2**31 - 1 nodes");
      const auto node = static_cast<int32_t>(trie.own_terminal_.size());
      trie.own_terminal_.push_back(0);
      edge_parent.push_back(path.back());
      edge_token.push_back(tokens[d]);
      edge_child.push_back(node);
      path.push_back(node);
    }
    trie.own_terminal_[static_cast<size_t>(path.back())] = 1;
    ++trie.num_sequences_;
    previous = s;
  }
  // CSR by parent. A parent's edges were made in increasing token order
  // (sorted input), and the counting placement keeps that order.
  const auto nodes = trie.own_terminal_.size();
  trie.own_row_ptr_.assign(nodes + 1, 0);
  for (const int32_t p : edge_parent) ++trie.own_row_ptr_[static_cast<size_t>(p) + 1];
  for (size_t v = 0; v < nodes; ++v) trie.own_row_ptr_[v + 1] += trie.own_row_ptr_[v];
  trie.own_tokens_.resize(edge_parent.size());
  trie.own_child_.resize(edge_parent.size());
  std::vector<int64_t> next(trie.own_row_ptr_.begin(), trie.own_row_ptr_.end() - 1);
  for (size_t e = 0; e < edge_parent.size(); ++e) {
    const auto slot = static_cast<size_t>(next[static_cast<size_t>(edge_parent[e])]++);
    trie.own_tokens_[slot] = edge_token[e];
    trie.own_child_[slot] = edge_child[e];
  }
  trie.point_at_owned();
  return out;
}

void Trie::point_at_owned() {
  num_nodes_ = static_cast<int64_t>(own_terminal_.size());
  row_ptr_ = own_row_ptr_.data();
  tokens_ = own_tokens_.data();
  child_ = own_child_.data();
  terminal_ = own_terminal_.data();
  precompute_dense_rows();
}

size_t Trie::memory_bytes() const {
  return static_cast<size_t>(num_nodes_ + 1) * sizeof(int64_t) + static_cast<size_t>(num_edges()) * 8 +
         static_cast<size_t>(num_nodes_) + (dense_nodes_.capacity() + dense_rows_.capacity()) * sizeof(int32_t);
}

namespace {

constexpr const char* kKind = "spec-trie";
constexpr int64_t kVersion = 1;   // of the sections below
constexpr int64_t kMetaSize = 4;  // meta: [version, num_nodes, num_sequences, vocab_size]

// What every load checks: with it, no step reads or writes out of bounds.
void check_bounds(const std::string& path, const Trie& trie) {
  const auto row_ptr = trie.row_ptr();
  const auto tokens = trie.tokens();
  const auto child = trie.child();
  RK_CHECK_FORMAT(row_ptr[0] == 0 && row_ptr[trie.num_nodes()] == trie.num_edges(), path,
                  ": section 'row_ptr' must start at 0 and end at the ", trie.num_edges(), " edges");
  for (int64_t v = 0; v < trie.num_nodes(); ++v) {
    RK_CHECK_FORMAT(row_ptr[v] <= row_ptr[v + 1], path, ": section 'row_ptr' decreases at node ", v);
  }
  for (int64_t e = 0; e < trie.num_edges(); ++e) {
    RK_CHECK_FORMAT(tokens[e] >= 0 && tokens[e] < trie.vocab_size(), path, ": section 'tokens' entry ", e, " holds ",
                    tokens[e], ", outside the vocabulary [0, ", trie.vocab_size(), ")");
    RK_CHECK_FORMAT(child[e] > 0 && child[e] < trie.num_nodes(), path, ": section 'child' entry ", e, " holds ",
                    child[e], ", not a node in [1, ", trie.num_nodes(), ")");
  }
}

// verify: the arrays are the trie build makes: nodes numbered depth-first
// (a depth-first walk, children in order, pops node k as the k-th), children
// in increasing token order, flags 0 or 1, the root not terminal (no empty
// sequence), every leaf terminal, num_sequences terminals. Each pop must be
// the next id, so the walk ends within num_nodes pops, whatever the file.
void check_structure(const std::string& path, const Trie& trie) {
  const auto row_ptr = trie.row_ptr();
  const auto tokens = trie.tokens();
  const auto child = trie.child();
  const auto terminal = trie.terminal();
  RK_CHECK_FORMAT(terminal[0] == 0, path, ": the root is terminal (an empty sequence)");
  int64_t expected = 0, terminals = 0;
  std::vector<int32_t> stack{0};
  while (!stack.empty()) {
    const int64_t v = stack.back();
    stack.pop_back();
    RK_CHECK_FORMAT(v == expected, path, ": node ", v, " is reached where node ", expected,
                    " should be (nodes are numbered depth-first)");
    ++expected;
    RK_CHECK_FORMAT(terminal[v] <= 1, path, ": section 'terminal' entry ", v, " holds ", int{terminal[v]},
                    ", not 0 or 1");
    RK_CHECK_FORMAT(terminal[v] == 1 || row_ptr[v] < row_ptr[v + 1], path, ": node ", v,
                    " is a leaf that ends no sequence");
    terminals += terminal[v];
    for (int64_t e = row_ptr[v] + 1; e < row_ptr[v + 1]; ++e) {
      RK_CHECK_FORMAT(tokens[e - 1] < tokens[e], path, ": the children of node ", v,
                      " are not in increasing token order");
    }
    for (int64_t e = row_ptr[v + 1]; e-- > row_ptr[v];) stack.push_back(child[e]);  // the first child on top
  }
  RK_CHECK_FORMAT(expected == trie.num_nodes(), path, ": ", trie.num_nodes() - expected,
                  " nodes are not reached from the root");
  RK_CHECK_FORMAT(terminals == trie.num_sequences(), path, ": ", terminals, " terminal nodes but meta says ",
                  trie.num_sequences(), " sequences");
}

}  // namespace

void Trie::save(const std::string& path) const {
  const int64_t meta[kMetaSize] = {kVersion, num_nodes_, num_sequences_, vocab_size_};
  format::write_file(path, kKind,
                     {{"meta", format::DType::i64, meta, sizeof(meta)},
                      {"row_ptr", format::DType::i64, row_ptr_, static_cast<uint64_t>(num_nodes_ + 1) * 8},
                      {"tokens", format::DType::i32, tokens_, static_cast<uint64_t>(num_edges()) * 4},
                      {"child", format::DType::i32, child_, static_cast<uint64_t>(num_edges()) * 4},
                      {"terminal", format::DType::u8, terminal_, static_cast<uint64_t>(num_nodes_)}});
}

std::shared_ptr<Trie> Trie::load(const std::string& path, bool verify) {
  std::shared_ptr<format::MappedFile> file = format::MappedFile::open(path, kKind, verify);
  const auto meta = file->array<int64_t>("meta");
  RK_CHECK_FORMAT(meta.size == kMetaSize, path, ": section 'meta' must hold ", kMetaSize, " int64, got ", meta.size);
  RK_CHECK_FORMAT(meta[0] == kVersion, path, ": trie version ", meta[0], " (this ragkernels reads ", kVersion, ")");
  const int64_t nodes = meta[1];
  RK_CHECK_FORMAT(nodes >= 2 && nodes <= std::numeric_limits<int32_t>::max(), path, ": meta holds ", nodes,
                  " nodes; a trie has 2 to 2**31 - 1");
  RK_CHECK_FORMAT(meta[2] >= 1 && meta[2] < nodes, path, ": meta holds ", meta[2], " sequences for ", nodes,
                  " nodes");
  RK_CHECK_FORMAT(meta[3] >= 1 && meta[3] <= int64_t{std::numeric_limits<int32_t>::max()} + 1, path,
                  ": meta holds vocab_size ", meta[3]);
  const auto row_ptr = file->array<int64_t>("row_ptr");
  const auto tokens = file->array<int32_t>("tokens");
  const auto child = file->array<int32_t>("child");
  const auto terminal = file->array<uint8_t>("terminal");
  RK_CHECK_FORMAT(row_ptr.size == nodes + 1 && terminal.size == nodes && tokens.size == nodes - 1 &&
                      child.size == nodes - 1,
                  path, ": sections 'row_ptr', 'tokens', 'child', 'terminal' must hold ", nodes + 1, ", ", nodes - 1,
                  ", ", nodes - 1, ", ", nodes, " entries");
  std::shared_ptr<Trie> trie(new Trie());
  trie->row_ptr_ = row_ptr.data;
  trie->tokens_ = tokens.data;
  trie->child_ = child.data;
  trie->terminal_ = terminal.data;
  trie->num_nodes_ = nodes;
  trie->num_sequences_ = meta[2];
  trie->vocab_size_ = meta[3];
  trie->file_ = std::move(file);
  check_bounds(path, *trie);
  if (verify) check_structure(path, *trie);
  trie->precompute_dense_rows();
  return trie;
}

int32_t Trie::step(int32_t state, int32_t token) const {
  if (state < 0) return -1;
  const int32_t* first = tokens_ + row_ptr_[state];
  const int32_t* last = tokens_ + row_ptr_[state + 1];
  const int32_t* it = std::lower_bound(first, last, token);
  return it != last && *it == token ? child_[it - tokens_] : -1;
}

void Trie::precompute_dense_rows() {
  const int64_t words = bitmask_words();
  dense_nodes_.clear();
  dense_rows_.clear();
  for (int64_t v = 0; v < num_nodes_; ++v) {
    if (row_ptr_[v + 1] - row_ptr_[v] <= words) continue;
    dense_nodes_.push_back(static_cast<int32_t>(v));
    dense_rows_.resize(dense_rows_.size() + static_cast<size_t>(words), 0);
    auto* row = reinterpret_cast<uint32_t*>(dense_rows_.data() + dense_rows_.size() - words);
    set_child_bits(static_cast<int32_t>(v), row);
  }
}

void Trie::set_child_bits(int32_t v, uint32_t* row) const {
  for (int64_t e = row_ptr_[v]; e < row_ptr_[v + 1]; ++e) {
    const auto t = static_cast<uint32_t>(tokens_[e]);
    row[t / 32] |= uint32_t{1} << (t % 32);
  }
}

void Trie::bitmask_row(int32_t s, uint32_t* row) const {
  const int64_t words = bitmask_words();
  const auto dense = std::lower_bound(dense_nodes_.begin(), dense_nodes_.end(), s);
  if (s >= 0 && dense != dense_nodes_.end() && *dense == s) {  // a wide node: its row is precomputed
    std::memcpy(row, dense_rows_.data() + (dense - dense_nodes_.begin()) * words, words * sizeof(uint32_t));
    return;
  }
  std::memset(row, 0, words * sizeof(uint32_t));
  if (s >= 0) set_child_bits(s, row);
}

void Trie::next_token_bitmask(const int32_t* states, int64_t n, int32_t* out) const {
  for (int64_t r = 0; r < n; ++r) bitmask_row(states[r], reinterpret_cast<uint32_t*>(out + r * bitmask_words()));
}

namespace {

// -inf of each logits type, as bits: the mask writes no arithmetic, so every
// allowed logit (NaN included) keeps its exact bits.
constexpr uint32_t kNegInfFloat32 = 0xFF800000u;
constexpr uint16_t kNegInfFloat16 = 0xFC00u;
constexpr uint16_t kNegInfBfloat16 = 0xFF80u;

// dst = src where the bit in `allowed` is set, else -inf, 32 logits at a
// time: a word with no bit set is a plain fill, a full word a copy (nothing
// in place), a mixed one a select the compiler vectorizes (AVX2 clone picked
// at load: core/isa.h). src may be dst.
template <typename Bits>
inline void mask_row_impl(const uint32_t* allowed, const Bits* src, Bits* dst, int64_t width, Bits neg_inf) {
  const int64_t whole_words = width / 32;
  for (int64_t w = 0; w < whole_words; ++w) {
    const uint32_t word = allowed[w];
    const Bits* x = src + w * 32;
    Bits* y = dst + w * 32;
    if (word == 0) {
      for (int j = 0; j < 32; ++j) y[j] = neg_inf;
    } else if (word == ~uint32_t{0}) {
      if (x != y) std::memcpy(y, x, 32 * sizeof(Bits));
    } else {
      for (int j = 0; j < 32; ++j) y[j] = (word >> j) & 1u ? x[j] : neg_inf;
    }
  }
  for (int64_t t = whole_words * 32; t < width; ++t) dst[t] = (allowed[t / 32] >> (t % 32)) & 1u ? src[t] : neg_inf;
}

RK_TARGET_CLONES void mask_row(const uint32_t* allowed, const uint32_t* src, uint32_t* dst, int64_t width,
                               uint32_t neg_inf) {
  mask_row_impl(allowed, src, dst, width, neg_inf);
}
RK_TARGET_CLONES void mask_row(const uint32_t* allowed, const uint16_t* src, uint16_t* dst, int64_t width,
                               uint16_t neg_inf) {
  mask_row_impl(allowed, src, dst, width, neg_inf);
}

}  // namespace

void Trie::mask_logits(const int32_t* states, int32_t eos, const Logits& logits, const Logits& source) const {
  const int64_t width_words = (logits.width + 31) / 32;
  const bool wide = logits.type == LogitsType::kFloat32;
  const int64_t item = wide ? 4 : 2;
  const uint16_t neg_inf16 = logits.type == LogitsType::kFloat16 ? kNegInfFloat16 : kNegInfBfloat16;
  // A row is some 10^5 stores: threads only for batches of many rows.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(logits.width, 1));
  parallel_for(0, logits.rows, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> allowed(static_cast<size_t>(width_words));
    for (int64_t r = begin; r < end; ++r) {
      const char* from = static_cast<const char*>(source.data) + r * source.row_stride * item;
      char* row = static_cast<char*>(logits.data) + r * logits.row_stride * item;
      const int32_t s = states[r];
      const bool has_children = s >= 0 && row_ptr_[s + 1] > row_ptr_[s];
      const bool eos_allowed = eos >= 0 && (s < 0 || terminal_[s] != 0);
      if (!has_children && !eos_allowed) {  // nothing to force it to (eos = -1): left as it is
        if (from != row) std::memcpy(row, from, static_cast<size_t>(logits.width * item));
        continue;
      }
      bitmask_row(s, allowed.data());
      std::fill(allowed.begin() + bitmask_words(), allowed.end(), 0u);
      if (eos_allowed) allowed[eos / 32] |= uint32_t{1} << (eos % 32);
      if (wide) {
        mask_row(allowed.data(), reinterpret_cast<const uint32_t*>(from), reinterpret_cast<uint32_t*>(row),
                 logits.width, kNegInfFloat32);
      } else {
        mask_row(allowed.data(), reinterpret_cast<const uint16_t*>(from), reinterpret_cast<uint16_t*>(row),
                 logits.width, neg_inf16);
      }
    }
  }, grain);
}

void Trie::advance(const int32_t* states, const int32_t* tokens, int64_t n, int32_t* out) const {
  for (int64_t r = 0; r < n; ++r) out[r] = step(states[r], tokens[r]);
}

void Trie::is_terminal(const int32_t* states, int64_t n, uint8_t* out) const {
  for (int64_t r = 0; r < n; ++r) out[r] = states[r] >= 0 && terminal_[states[r]] != 0;
}

}  // namespace ragkernels::spec
