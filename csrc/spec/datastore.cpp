// The retrieval datastore and its drafter: see datastore.h. File layout:
// docs/formats.md, kind "spec-datastore".
#include "spec/datastore.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "spec/suffix_array.h"

namespace ragkernels::spec {

namespace {

constexpr const char* kKind = "spec-datastore";
constexpr int64_t kVersion = 1;  // of the sections below, independent of the container's version
constexpr int64_t kMetaSize = 4;  // meta: [version, num_tokens, num_sequences, vocab_size (-1: none)]
constexpr const char* kText = "text";
constexpr const char* kArray = "reversed_suffix_array";
constexpr const char* kTable = "token_start";

// Ids a draft may propose: [0, limit) as unsigned, so a negative entry (a
// separator, or junk in a file loaded without verify) is out too.
uint32_t id_limit(int64_t vocab_size) {
  return vocab_size == Datastore::kNoVocab ? uint32_t{1} << 31 : static_cast<uint32_t>(vocab_size);
}

bool valid_vocab(int64_t vocab_size) {
  return vocab_size == Datastore::kNoVocab || (vocab_size >= 1 && vocab_size <= Datastore::kMaxVocabSize);
}

// What every load checks, verify or not: with these, no draft reads outside
// the arrays (datastore reads are bounds-checked against text_size, and the
// text ends with a separator).
void check_layout(const std::string& path, const format::MappedFile& file, ConstView1<int64_t> meta) {
  RK_CHECK_FORMAT(meta.size == kMetaSize, path, ": section 'meta' must hold ", kMetaSize, " int64, got ", meta.size);
  RK_CHECK_FORMAT(meta[0] == kVersion, path, ": datastore version ", meta[0], "; this ragkernels reads version ",
                  kVersion, " (upgrade ragkernels)");
  const int64_t tokens = meta[1], sequences = meta[2], vocab = meta[3];
  RK_CHECK_FORMAT(tokens >= 0 && sequences >= 0 && tokens <= Datastore::kMaxTextSize - sequences, path,
                  ": bad meta: num_tokens ", tokens, ", num_sequences ", sequences, " (each >= 0, sum <= 2^31 - 2)");
  RK_CHECK_FORMAT(tokens >= 1, path, ": the datastore holds no tokens (an empty datastore cannot draft)");
  RK_CHECK_FORMAT(valid_vocab(vocab), path, ": bad meta: vocab_size ", vocab, " (-1 or in [1, 2^31])");
  const auto text = file.array<int32_t>(kText);
  RK_CHECK_FORMAT(text.size == tokens + sequences, path, ": section '", kText,
                  "' must hold num_tokens + num_sequences = ", tokens + sequences, " int32, got ", text.size);
  RK_CHECK_FORMAT(file.array<int32_t>(kArray).size == tokens, path, ": section '", kArray,
                  "' must hold num_tokens = ", tokens, " int32, got ", file.array<int32_t>(kArray).size);
  RK_CHECK_FORMAT(text[text.size - 1] == Datastore::kSeparator, path, ": section '", kText,
                  "' must end with the separator -1, got ", text[text.size - 1]);
  const auto table = file.array<int32_t>(kTable);
  if (table.size == 0) return;  // no table: the first token is searched
  const int64_t ids = table.size - 1;
  RK_CHECK_FORMAT(ids >= 1 && ids <= Datastore::kMaxTableIds, path, ": section '", kTable,
                  "' must hold 0 or 2 .. 2^22 + 1 int32, got ", table.size);
  RK_CHECK_FORMAT(table[0] == 0 && table[ids] == tokens, path, ": section '", kTable,
                  "' must run from 0 to num_tokens = ", tokens, ", got ", table[0], " .. ", table[ids]);
  for (int64_t t = 0; t < ids; ++t) {
    RK_CHECK_FORMAT(table[t + 1] >= table[t], path, ": section '", kTable, "' decreases at token ", t);
  }
}

// verify=true: every id, the separators, and the array itself.
void check_contents(const std::string& path, const Datastore& ds, int64_t sequences) {
  const int32_t* text = ds.text();
  const int64_t size = ds.text_size(), vocab = ds.vocab_size(), tokens = ds.num_tokens();
  const int32_t* sa = ds.suffix_array();
  const uint32_t limit = id_limit(vocab);
  int64_t separators = 0;
  for (int64_t i = 0; i < size; ++i) {
    if (text[i] == Datastore::kSeparator) {
      ++separators;
      continue;
    }
    RK_CHECK_FORMAT(static_cast<uint32_t>(text[i]) < limit, path, ": section '", kText, "' entry ", i, " holds ",
                    text[i], ", not a token id", vocab == Datastore::kNoVocab ? " (>= 0)" : " in [0, vocab_size = ",
                    vocab == Datastore::kNoVocab ? "" : std::to_string(vocab) + ")", " nor the separator -1");
  }
  RK_CHECK_FORMAT(separators == sequences, path, ": section '", kText, "' holds ", separators,
                  " separators, meta says num_sequences = ", sequences);
  const std::string problem = check_reversed_suffix_array(text, size, sa, tokens);
  RK_CHECK_FORMAT(problem.empty(), path, ": section '", kArray, "' is not the sorted array of the text: ", problem,
                  " (file corrupt)");
  if (ds.table_ids() == 0) return;
  const int32_t* start = ds.token_start();
  for (int64_t r = 0; r < tokens; ++r) {
    const int64_t t = text[sa[r]];
    RK_CHECK_FORMAT(t < ds.table_ids() && start[t] <= r && r < start[t + 1], path, ": section '", kTable,
                    "' does not match the array: entry ", r, " holds token ", t, " (file corrupt)");
  }
}

// token_start of a text (see Datastore::token_start): 0 ids when too many.
std::vector<int32_t> token_table(const std::vector<int32_t>& text, int64_t vocab_size) {
  int64_t ids = vocab_size;
  if (ids == Datastore::kNoVocab || ids > Datastore::kMaxTableIds) {
    int32_t max_id = -1;
    for (const int32_t t : text) max_id = std::max(max_id, t);
    ids = int64_t{max_id} + 1;
  }
  if (ids > Datastore::kMaxTableIds) return {};
  std::vector<int32_t> start(static_cast<size_t>(ids) + 1, 0);
  for (const int32_t t : text) {
    if (t >= 0) ++start[static_cast<size_t>(t) + 1];
  }
  for (size_t t = 1; t < start.size(); ++t) start[t] += start[t - 1];
  return start;
}

}  // namespace

// ---- Datastore ------------------------------------------------------------------------------

std::shared_ptr<Datastore> Datastore::from_text(std::vector<int32_t> text, int64_t vocab_size) {
  RK_CHECK_ARG(static_cast<int64_t>(text.size()) <= kMaxTextSize, "Datastore.build: ", text.size(),
               " tokens + sequences; at most 2^31 - 2");
  RK_CHECK_ARG(valid_vocab(vocab_size), "Datastore.build: vocab_size must be in [1, 2^31], got ", vocab_size);
  std::shared_ptr<Datastore> ds(new Datastore());
  ds->own_suffix_array_ = reversed_suffix_array(text.data(), static_cast<int64_t>(text.size()));
  ds->own_token_start_ = token_table(text, vocab_size);
  ds->own_text_ = std::move(text);
  ds->text_ = ds->own_text_.data();
  ds->token_start_ = ds->own_token_start_.empty() ? nullptr : ds->own_token_start_.data();
  ds->table_ids_ = std::max<int64_t>(0, static_cast<int64_t>(ds->own_token_start_.size()) - 1);
  ds->suffix_array_ = ds->own_suffix_array_.data();
  ds->text_size_ = static_cast<int64_t>(ds->own_text_.size());
  ds->num_tokens_ = static_cast<int64_t>(ds->own_suffix_array_.size());
  ds->vocab_size_ = vocab_size;
  RK_CHECK_ARG(ds->num_tokens_ >= 1, "Datastore.build: the sequences hold no tokens; an empty datastore cannot draft");
  return ds;
}

void Datastore::save(const std::string& path) const {
  const int64_t meta[kMetaSize] = {kVersion, num_tokens_, num_sequences(), vocab_size_};
  format::write_file(path, kKind,
                     {{"meta", format::DType::i64, meta, sizeof(meta)},
                      {kText, format::DType::i32, text_, static_cast<uint64_t>(text_size_) * 4},
                      {kArray, format::DType::i32, suffix_array_, static_cast<uint64_t>(num_tokens_) * 4},
                      {kTable, format::DType::i32, token_start_,
                       table_ids_ ? static_cast<uint64_t>(table_ids_ + 1) * 4 : 0}});
}

std::shared_ptr<Datastore> Datastore::load(const std::string& path, bool verify) {
  std::shared_ptr<format::MappedFile> file = format::MappedFile::open(path, kKind, verify);
  const auto meta = file->array<int64_t>("meta");
  check_layout(path, *file, meta);
  std::shared_ptr<Datastore> ds(new Datastore());
  ds->text_ = file->array<int32_t>(kText).data;
  ds->suffix_array_ = file->array<int32_t>(kArray).data;
  const auto table = file->array<int32_t>(kTable);
  ds->token_start_ = table.size ? table.data : nullptr;
  ds->table_ids_ = table.size ? table.size - 1 : 0;
  ds->num_tokens_ = meta[1];
  ds->text_size_ = meta[1] + meta[2];
  ds->vocab_size_ = meta[3];
  ds->file_ = std::move(file);
  if (verify) check_contents(path, *ds, meta[2]);
  return ds;
}

Datastore::Match Datastore::longest_match(const int32_t* context, int64_t n, int32_t max_match) const {
  Match best;
  int64_t lo = 0, hi = num_tokens_;
  const int64_t depth = std::min<int64_t>(n, max_match);
  int64_t k = 0;
  if (token_start_ != nullptr && depth > 0) {  // the first token: its bucket
    const int32_t want = context[n - 1];
    if (want < 0 || want >= table_ids_ || token_start_[want] == token_start_[want + 1]) return best;
    lo = token_start_[want];
    hi = token_start_[want + 1];
    best = Match{1, lo, hi};
    k = 1;
  }
  for (; k < depth; ++k) {
    const int32_t want = context[n - 1 - k];
    // The token k places before entry r's position (-1 past its sequence's
    // start). Entries are bounds-checked: a file loaded without verify may
    // hold any value (then matches may be wrong, never out of bounds).
    auto symbol = [&](int64_t r) -> int32_t {
      const int64_t q = static_cast<int64_t>(suffix_array_[r]) - k;
      return q >= 0 && q < text_size_ ? text_[q] : kSeparator;
    };
    int64_t a = lo, b = hi;  // first entry whose symbol is >= want
    while (a < b) {
      const int64_t mid = a + (b - a) / 2;
      if (symbol(mid) < want) a = mid + 1;
      else b = mid;
    }
    if (a == hi || symbol(a) != want) break;
    const int64_t first = a;
    // Last entry with symbol == want: gallop from first (the new interval is
    // usually small), then bisect.
    int64_t good = first, bad = hi, step = 1;
    while (good + step < hi) {
      if (symbol(good + step) <= want) {
        good += step;
        step *= 2;
      } else {
        bad = good + step;
        break;
      }
    }
    a = good + 1;
    b = bad;
    while (a < b) {
      const int64_t mid = a + (b - a) / 2;
      if (symbol(mid) <= want) a = mid + 1;
      else b = mid;
    }
    lo = first;
    hi = a;
    best = Match{static_cast<int32_t>(k + 1), lo, hi};
  }
  return best;
}

// ---- DatastoreBuilder -----------------------------------------------------------------------

DatastoreBuilder::DatastoreBuilder(int64_t vocab_size) : vocab_size_(vocab_size) {
  RK_CHECK_ARG(valid_vocab(vocab_size), "Datastore.build: vocab_size must be in [1, 2^31], got ", vocab_size);
}

template <typename Id>
void DatastoreBuilder::add(ConstView1<Id> ids, ConstView1<int64_t> offsets) {
  const char* op = "Datastore.build";
  RK_CHECK_ARG(offsets.size >= 1 && offsets[0] == 0 && offsets[offsets.size - 1] == ids.size, op,
               ": offsets must run from 0 to the number of ids (", ids.size, ")");
  const int64_t batch = offsets.size - 1;
  for (int64_t i = 0; i < batch; ++i) {
    RK_CHECK_ARG(offsets[i + 1] >= offsets[i], op, ": offsets decrease at sequence ", num_sequences_ + i);
  }
  const int64_t total = static_cast<int64_t>(text_.size()) + ids.size + batch;
  RK_CHECK_ARG(total <= Datastore::kMaxTextSize, op, ": more than 2^31 - 2 tokens + sequences (", total,
               "); split the corpus into several datastores");
  const int64_t limit = vocab_size_ == Datastore::kNoVocab ? int64_t{INT32_MAX} + 1 : vocab_size_;
  const size_t start = text_.size();
  text_.reserve(static_cast<size_t>(total));
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t j = offsets[i]; j < offsets[i + 1]; ++j) {
      const auto id = static_cast<int64_t>(ids[j]);
      if (id < 0 || id >= limit) {
        text_.resize(start);  // the batch is refused whole
        RK_CHECK_ARG(id >= 0, op, ": sequences[", num_sequences_ + i, "][", j - offsets[i], "] = ", id,
                     " is negative; token ids are >= 0");
        RK_CHECK_ARG(vocab_size_ != Datastore::kNoVocab, op, ": sequences[", num_sequences_ + i, "][",
                     j - offsets[i], "] = ", id, " does not fit int32 (token ids are < 2^31)");
        RK_CHECK_ARG(false, op, ": sequences[", num_sequences_ + i, "][", j - offsets[i], "] = ", id,
                     " is outside [0, vocab_size = ", vocab_size_, ")");
      }
      text_.push_back(static_cast<int32_t>(id));
    }
    text_.push_back(Datastore::kSeparator);
  }
  num_sequences_ += batch;
}

template void DatastoreBuilder::add<int32_t>(ConstView1<int32_t>, ConstView1<int64_t>);
template void DatastoreBuilder::add<int64_t>(ConstView1<int64_t>, ConstView1<int64_t>);

std::shared_ptr<Datastore> DatastoreBuilder::finish() {
  RK_CHECK_ARG(num_sequences_ >= 1, "Datastore.build: sequences is empty; a datastore needs at least one token");
  RK_CHECK_ARG(num_tokens() >= 1, "Datastore.build: the ", num_sequences_,
               " sequences are all empty; a datastore needs at least one token");
  std::vector<int32_t> text = std::move(text_);
  text_ = {};
  return Datastore::from_text(std::move(text), vocab_size_);
}

// ---- RetrievalSession -----------------------------------------------------------------------

void check_params(const RetrievalParams& p, const char* op) {
  RK_CHECK_ARG(p.max_match >= 1, op, ": max_match must be >= 1, got ", p.max_match);
  RK_CHECK_ARG(p.min_match >= 1 && p.min_match <= p.max_match, op, ": min_match must be in [1, max_match = ",
               p.max_match, "], got ", p.min_match);
  RK_CHECK_ARG(p.max_depth >= 1 && p.max_depth < (1 << 20), op, ": max_depth must be in [1, 2^20 - 1], got ",
               p.max_depth);
  RK_CHECK_ARG(p.max_candidates >= 1 && p.max_candidates <= (1 << 20), op,
               ": max_candidates must be in [1, 2^20], got ", p.max_candidates);
  RK_CHECK_ARG(p.min_weight >= 0.0f && p.min_weight <= 1.0f, op, ": min_weight must be in [0, 1], got ",
               p.min_weight);
  RK_CHECK_ARG(int64_t{p.max_candidates} * p.max_depth <= (int64_t{1} << 26), op,
               ": max_candidates * max_depth must be <= 2^26, got ", p.max_candidates, " * ", p.max_depth);
}

RetrievalSession::RetrievalSession(std::shared_ptr<const Datastore> datastore, const RetrievalParams& params)
    : datastore_(std::move(datastore)), params_(params) {
  check_params(params_, "RetrievalDrafter");
  tail_.reserve(2 * static_cast<size_t>(params_.max_match));
}

template <typename Id>
void RetrievalSession::extend(ConstView1<Id> tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto keep = static_cast<size_t>(params_.max_match);
  const int64_t skip = std::max<int64_t>(0, tokens.size - params_.max_match);  // older ones never matter
  for (int64_t i = skip; i < tokens.size; ++i) {
    if (tail_.size() == 2 * keep) tail_.erase(tail_.begin(), tail_.begin() + static_cast<int64_t>(keep));
    tail_.push_back(static_cast<int32_t>(tokens[i]));
  }
  length_ += tokens.size;
}

template void RetrievalSession::extend<int32_t>(ConstView1<int32_t>);
template void RetrievalSession::extend<int64_t>(ConstView1<int64_t>);

int64_t RetrievalSession::length() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return length_;
}
int32_t RetrievalSession::match_length() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return match_length_;
}
int64_t RetrievalSession::match_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return match_count_;
}

// The continuations of the occurrences in suffix_array[lo, hi): all of them,
// or max_candidates evenly spaced ones (entry lo + floor(j count / m)).
void RetrievalSession::collect(const Datastore::Match& match) {
  const Datastore& ds = *datastore_;
  const int64_t count = match.hi - match.lo;
  const auto m = static_cast<int32_t>(std::min<int64_t>(count, params_.max_candidates));
  const int32_t depth = params_.max_depth;
  const uint32_t limit = id_limit(ds.vocab_size());
  items_ = m;
  continuation_.resize(static_cast<size_t>(m) * static_cast<size_t>(depth));
  item_length_.resize(static_cast<size_t>(m));
  order_.resize(static_cast<size_t>(m));
  // First the positions, prefetching their text (the reads below then overlap).
  for (int32_t j = 0; j < m; ++j) {
    const int64_t r = match.lo + j * count / m;
    const int32_t e = ds.suffix_array()[r];
    item_length_[static_cast<size_t>(j)] = e;
    if (e >= 0 && e < ds.text_size() - 1) __builtin_prefetch(ds.text() + e + 1);
  }
  for (int32_t j = 0; j < m; ++j) {
    const int64_t e = item_length_[static_cast<size_t>(j)];
    int32_t* out = continuation_.data() + static_cast<size_t>(j) * static_cast<size_t>(depth);
    int32_t d = 0;
    // Bounds-checked: e comes from the file (see longest_match).
    for (int64_t q = e + 1; d < depth && q >= 1 && q < ds.text_size(); ++q, ++d) {
      const int32_t token = ds.text()[q];
      if (static_cast<uint32_t>(token) >= limit) break;  // a separator (or an id a corrupt file holds)
      out[d] = token;
    }
    item_length_[static_cast<size_t>(j)] = d;
    order_[static_cast<size_t>(j)] = j;
  }
  std::sort(order_.begin(), order_.end(), [&](int32_t x, int32_t y) {
    const int32_t* a = continuation_.data() + static_cast<size_t>(x) * static_cast<size_t>(depth);
    const int32_t* b = continuation_.data() + static_cast<size_t>(y) * static_cast<size_t>(depth);
    return std::lexicographical_compare(a, a + item_length_[static_cast<size_t>(x)], b,
                                        b + item_length_[static_cast<size_t>(y)]);
  });
  // The continuations in sorted order, so that select() reads them in place.
  sorted_.resize(continuation_.size());
  sorted_length_.resize(static_cast<size_t>(m));
  for (int32_t i = 0; i < m; ++i) {
    const auto j = static_cast<size_t>(order_[static_cast<size_t>(i)]);
    std::copy_n(continuation_.data() + j * static_cast<size_t>(depth), depth,
                sorted_.data() + static_cast<size_t>(i) * static_cast<size_t>(depth));
    sorted_length_[static_cast<size_t>(i)] = item_length_[j];
  }
}

namespace {

// A pending node's heap key: count, then depth (inverted), then the first
// item of its run (inverted: an earlier run is a smaller path), so that the
// largest key is the best node. Fields: count <= 2^20 (bits 40..60), depth <
// 2^20 (bits 20..39), first < 2^20 (bits 0..19); check_params bounds them.
constexpr uint64_t kField = (uint64_t{1} << 20) - 1;
uint64_t pack(int32_t count, int32_t depth, int32_t first) {
  return (static_cast<uint64_t>(count) << 40) | ((kField - static_cast<uint64_t>(depth)) << 20) |
         (kField - static_cast<uint64_t>(first));
}

}  // namespace

// Best-first over the trie of the sorted continuations: a node is a run of
// sorted items sharing a prefix; its count is the run's length. Ties:
// shallower, then earlier run (= smaller path).
void RetrievalSession::select(int64_t max_nodes) {
  const auto width = static_cast<size_t>(params_.max_depth);
  const float total = static_cast<float>(items_);
  pending_parent_.resize(static_cast<size_t>(items_));
  pending_last_.resize(static_cast<size_t>(items_));
  // Pushes the children of the node (run [first, last) at `depth`).
  auto expand = [&](int32_t parent, int32_t depth, int32_t first, int32_t last) {
    if (depth >= params_.max_depth) return;
    int32_t r = first;
    while (r < last && sorted_length_[static_cast<size_t>(r)] <= depth) ++r;
    const int32_t* column = sorted_.data() + static_cast<size_t>(depth);
    while (r < last) {
      const int32_t token = column[static_cast<size_t>(r) * width], start = r;
      while (r < last && column[static_cast<size_t>(r) * width] == token) ++r;
      if (static_cast<float>(r - start) / total < params_.min_weight) continue;
      pending_parent_[static_cast<size_t>(start)] = parent;
      pending_last_[static_cast<size_t>(start)] = r;
      heap_.push_back(pack(r - start, depth + 1, start));
      std::push_heap(heap_.begin(), heap_.end());
    }
  };
  heap_.clear();
  chosen_.clear();
  expand(-1, 0, 0, items_);
  while (static_cast<int64_t>(chosen_.size()) < max_nodes && !heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end());
    const uint64_t key = heap_.back();
    heap_.pop_back();
    const auto first = static_cast<int32_t>(kField - (key & kField));
    const auto depth = static_cast<int32_t>(kField - ((key >> 20) & kField));
    const auto count = static_cast<int32_t>(key >> 40);
    const int32_t parent = pending_parent_[static_cast<size_t>(first)];
    const int32_t token = sorted_[static_cast<size_t>(first) * width + static_cast<size_t>(depth - 1)];
    const auto index = static_cast<int32_t>(chosen_.size());
    chosen_.push_back(Chosen{parent, token, count, -1, -1, -1});
    if (parent >= 0) {  // append to the parent's children: they come out best-first
      Chosen& p = chosen_[static_cast<size_t>(parent)];
      if (p.last_child < 0) p.first_child = index;
      else chosen_[static_cast<size_t>(p.last_child)].next_sibling = index;
      p.last_child = index;
    }
    expand(index, depth, first, pending_last_[static_cast<size_t>(first)]);
  }
}

// The chosen nodes depth first (children best-first), as a TokenTree.
TokenTree RetrievalSession::emit(int32_t root) {
  TokenTree tree(root);
  tree.tokens.reserve(chosen_.size() + 1);
  tree.parents.reserve(chosen_.size() + 1);
  tree.weights.reserve(chosen_.size() + 1);
  const float total = static_cast<float>(items_);
  std::vector<std::pair<int32_t, int32_t>>& stack = stack_;  // (chosen index, tree index of its parent)
  stack.clear();
  for (int32_t i = static_cast<int32_t>(chosen_.size()) - 1; i >= 0; --i) {
    if (chosen_[static_cast<size_t>(i)].parent < 0) stack.emplace_back(i, 0);
  }
  while (!stack.empty()) {
    const auto [i, parent] = stack.back();
    stack.pop_back();
    const Chosen& c = chosen_[static_cast<size_t>(i)];
    const int32_t node = tree.add(parent, c.token, static_cast<float>(c.count) / total);
    // Children pushed last-first, so the best is emitted next.
    const size_t mark = stack.size();
    for (int32_t k = c.first_child; k >= 0; k = chosen_[static_cast<size_t>(k)].next_sibling) stack.emplace_back(k, node);
    std::reverse(stack.begin() + static_cast<int64_t>(mark), stack.end());
  }
  return tree;
}

TokenTree RetrievalSession::draft(int64_t max_nodes) {
  RK_CHECK_ARG(max_nodes >= 0, "draft: max_nodes must be >= 0, got ", max_nodes);
  std::lock_guard<std::mutex> lock(mutex_);
  RK_CHECK_ARG(length_ > 0, "draft: the sequence is empty, so there is no root token; start with a non-empty "
               "prompt or extend the session first");
  match_length_ = 0;
  match_count_ = 0;
  chosen_.clear();
  items_ = 0;
  if (max_nodes > 0) {
    const Datastore::Match match =
        datastore_->longest_match(tail_.data(), static_cast<int64_t>(tail_.size()), params_.max_match);
    match_length_ = match.length;
    match_count_ = match.hi - match.lo;
    if (match.length >= params_.min_match) {
      collect(match);
      select(max_nodes);
    }
  }
  return emit(tail_.back());
}

}  // namespace ragkernels::spec
