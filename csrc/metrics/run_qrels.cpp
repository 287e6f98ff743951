#include "metrics/run_qrels.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "metrics/assemble.h"

namespace ragkernels {
namespace metrics {
namespace {

int64_t find_sorted(const std::vector<std::string_view>& qids, std::string_view qid) {
  auto it = std::lower_bound(qids.begin(), qids.end(), qid);
  if (it == qids.end() || *it != qid) return -1;
  return static_cast<int64_t>(it - qids.begin());
}

// Decimal text of an integer id: what str(id) gives in Python.
struct IdText {
  char buf[24];
  std::string_view view;
  explicit IdText(int64_t v) {
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    view = std::string_view(buf, static_cast<size_t>(res.ptr - buf));
  }
};

// Qids are interned so that a builder fed query by query stores each once.
struct Interner {
  std::unordered_map<std::string_view, std::string_view, detail::StringViewHash> seen;
  std::string_view intern(detail::Arena& arena, std::string_view s) {
    auto it = seen.find(s);
    if (it != seen.end()) return it->second;
    std::string_view stored = arena.store(s);
    seen.emplace(stored, stored);
    return stored;
  }
};

// What both builders keep: the text arena, interned qids, and the lines in
// input order.
template <typename T>
struct LineStore {
  std::shared_ptr<detail::Arena> arena = std::make_shared<detail::Arena>();
  Interner qids;
  detail::Lines<T> lines;

  void add(std::string_view qid, std::string_view docno, T value) {
    // A builder fed query by query repeats the qid: skip the hash lookup.
    std::string_view q = lines.segments.empty() || !detail::same_text(lines.segments.back().qid, qid)
                             ? qids.intern(*arena, qid)
                             : lines.segments.back().qid;
    lines.push(q, arena->store(docno), value);
  }

  void reserve(int64_t n, const char* op) {
    RK_CHECK_ARG(n >= 0, op, ": n must be >= 0, got ", n);
    lines.docnos.reserve(n);
    lines.values.reserve(n);
  }
};

}  // namespace

int64_t Qrels::find_query(std::string_view qid) const { return find_sorted(qids, qid); }

int64_t Run::find_query(std::string_view qid) const { return find_sorted(qids, qid); }

// ---------------------------------------------------------------- builders

struct QrelsBuilder::State : LineStore<int64_t> {};
struct RunBuilder::State : LineStore<double> {};

QrelsBuilder::QrelsBuilder() : state_(new State) {}
QrelsBuilder::~QrelsBuilder() = default;
QrelsBuilder::QrelsBuilder(QrelsBuilder&&) noexcept = default;
QrelsBuilder& QrelsBuilder::operator=(QrelsBuilder&&) noexcept = default;

void QrelsBuilder::add(std::string_view qid, std::string_view docno, int64_t rel) { state_->add(qid, docno, rel); }

void QrelsBuilder::add(int64_t qid, int64_t docno, int64_t rel) {
  state_->add(IdText(qid).view, IdText(docno).view, rel);
}

void QrelsBuilder::reserve(int64_t n) { state_->reserve(n, "QrelsBuilder.reserve"); }

Qrels QrelsBuilder::finish() {
  std::unique_ptr<State> s(std::move(state_));
  state_.reset(new State);
  detail::Duplicate dup;
  Qrels qrels = detail::assemble_qrels(std::move(s->lines), s->arena, &dup);
  RK_CHECK_ARG(!dup.found, "QrelsBuilder.finish: duplicate judgment for query '", dup.qid,
               "' and document '", dup.docno, "'");
  return qrels;
}

RunBuilder::RunBuilder() : state_(new State) {}
RunBuilder::~RunBuilder() = default;
RunBuilder::RunBuilder(RunBuilder&&) noexcept = default;
RunBuilder& RunBuilder::operator=(RunBuilder&&) noexcept = default;

void RunBuilder::add(std::string_view qid, std::string_view docno, double score) { state_->add(qid, docno, score); }

void RunBuilder::add(int64_t qid, int64_t docno, double score) {
  state_->add(IdText(qid).view, IdText(docno).view, score);
}

void RunBuilder::reserve(int64_t n) { state_->reserve(n, "RunBuilder.reserve"); }

Run RunBuilder::finish(std::string runid) {
  std::unique_ptr<State> s(std::move(state_));
  state_.reset(new State);
  detail::Duplicate dup;
  Run run = detail::assemble_run(std::move(s->lines), s->arena, std::move(runid), &dup);
  RK_CHECK_ARG(!dup.found, "RunBuilder.finish: document '", dup.docno,
               "' retrieved twice for query '", dup.qid,
               "' (trec_eval refuses duplicate docs)");
  return run;
}

}  // namespace metrics
}  // namespace ragkernels
