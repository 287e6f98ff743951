#include "metrics/trec_io.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/assemble.h"
#include "metrics/file_buffer.h"
#include "metrics/line_masks.h"
#include "metrics/utf8_check.h"

namespace ragkernels {
namespace metrics {
namespace {

using detail::Buffer;
using detail::for_each_line;
using detail::for_each_line_tokens;
using detail::LineTokens;
using detail::skip_tokens;

// ------------------------------------------------------------ tokenizing

// A table lookup instead of five compares: tokenizing is most of the parse.
struct BlankTable {
  bool blank[256] = {};
  constexpr BlankTable() {
    for (unsigned char c : {' ', '\t', '\r', '\v', '\f'}) blank[c] = true;
  }
};
inline constexpr BlankTable kBlank{};

inline bool is_blank(char c) { return kBlank.blank[static_cast<unsigned char>(c)]; }

inline std::string_view next_token(const char*& p, const char* e) {
  while (p < e && is_blank(*p)) ++p;
  const char* s = p;
  while (p < e && !is_blank(*p)) ++p;
  return std::string_view(s, static_cast<size_t>(p - s));
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

inline bool parse_int(std::string_view s, int64_t* out) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Clinger's fast path: up to 15 digits with at most 22 after the point is
// m / 10^k with m and 10^k exact, so one IEEE division rounds correctly and
// gives the same double as strtod. Anything else goes to from_chars.
inline bool parse_simple_decimal(std::string_view s, double* out) {
  static const double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  size_t i = 0;
  const bool neg = !s.empty() && s[0] == '-';
  if (neg) ++i;
  uint64_t m = 0;
  int digits = 0, frac = -1;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      m = m * 10 + static_cast<uint64_t>(c - '0');
      if (++digits > 15) return false;
      if (frac >= 0) ++frac;
    } else if (c == '.' && frac < 0) {
      frac = 0;
    } else {
      return false;
    }
  }
  if (digits == 0 || frac > 22) return false;
  double v = static_cast<double>(m);
  if (frac > 0) v /= kPow10[frac];
  *out = neg ? -v : v;
  return true;
}

inline bool parse_double(std::string_view s, double* out) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  if (parse_simple_decimal(s, out)) return true;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, std::chars_format::general);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A content line split into fields, or why it could not be.
enum class Kind { kRun, kTrecQrels, kBeirQrels };

struct Fields {
  std::string_view qid, docno, tag;
  double score = 0;
  int64_t rel = 0;
};

// Returns "" on success, else what is wrong with the line.
// A TREC qrels line with BEIR's three tab-separated fields: most likely a
// BEIR TSV without its header line, which is what tells the formats apart.
std::string beir_hint(const char* p, const char* e) {
  if (std::count(p, e, '\t') != 2) return "";
  return "; a BEIR qrels TSV must start with the header line 'query-id<TAB>corpus-id<TAB>score'";
}

std::string parse_fields(Kind kind, const char* p, const char* e, Fields* f) {
  const char* const p0 = p;
  if (kind == Kind::kBeirQrels) {
    std::string_view cols[4];
    int n = 0;
    const char* s = p;
    for (const char* q = p;; ++q) {
      if (q == e || *q == '\t') {
        if (n < 4) cols[n] = trim(std::string_view(s, static_cast<size_t>(q - s)));
        ++n;
        s = q + 1;
        if (q == e) break;
      }
    }
    if (n != 3)
      return ragkernels::detail::message("expected 3 tab-separated fields (query-id, corpus-id, score), found ", n);
    if (cols[0].empty() || cols[1].empty()) return "empty query-id or corpus-id";
    if (!parse_int(cols[2], &f->rel))
      return ragkernels::detail::message("score '", cols[2], "' is not an integer");
    f->qid = cols[0];
    f->docno = cols[1];
    return "";
  }
  std::string_view t[6];
  const int want = kind == Kind::kRun ? 6 : 4;
  int n = 0;
  for (; n < want; ++n) {
    t[n] = next_token(p, e);
    if (t[n].empty()) break;
  }
  if (kind == Kind::kRun) {
    if (n < 6)
      return ragkernels::detail::message("expected 6 whitespace-separated fields (qid Q0 docno rank score tag), found ", n);
    if (!parse_double(t[4], &f->score)) return ragkernels::detail::message("score '", t[4], "' is not a number");
    // Dicts and arrays with NaN are refused; a file is no different (issue 14).
    if (std::isnan(f->score)) return ragkernels::detail::message("score '", t[4], "' is NaN");
    f->tag = t[5];
  } else {
    if (n == 4 && !next_token(p, e).empty())
      return "expected 4 whitespace-separated fields (qid iter docno rel), found more";
    if (n != 4)
      return ragkernels::detail::message("expected 4 whitespace-separated fields (qid iter docno rel), found ", n,
                                         beir_hint(p0, e));
    if (!parse_int(t[3], &f->rel)) return ragkernels::detail::message("relevance '", t[3], "' is not an integer");
  }
  f->qid = t[0];
  f->docno = t[2];
  return "";
}

inline bool skip_line(const char* p, const char* e) {
  while (p < e && is_blank(*p)) ++p;
  return p == e || *p == '#';
}

// parse_fields for a TREC (non-BEIR) line given as tokens, when the line is
// well formed; false sends it to parse_fields, which says what is wrong.
inline bool parse_tokens(Kind kind, const char* lb, LineTokens tok, Fields* f) {
  if (kind == Kind::kRun ? !tok.at_least(6) : !tok.at_least(4) || tok.at_least(5)) return false;
  f->qid = tok.pop(lb);
  tok.pop(lb);
  f->docno = tok.pop(lb);
  if (kind == Kind::kTrecQrels) return parse_int(tok.pop(lb), &f->rel);
  tok.pop(lb);
  if (!parse_double(tok.pop(lb), &f->score) || std::isnan(f->score)) return false;
  f->tag = tok.pop(lb);
  return true;
}

std::string_view shown(const char* p, const char* e) {
  std::string_view s(p, static_cast<size_t>(e - p));
  while (!s.empty() && (s.back() == '\r')) s.remove_suffix(1);
  size_t cut = std::min<size_t>(s.size(), 200);
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole code points
  return s.substr(0, cut);
}

// ------------------------------------------------------------ parallel parse

constexpr size_t kChunkBytes = size_t(1) << 20;

// Chunk boundaries sit just after a newline and depend only on the text.
std::vector<size_t> chunk_starts(std::string_view text, size_t begin) {
  const size_t size = text.size();
  const size_t n = std::max<size_t>(1, (size - begin) / kChunkBytes);
  std::vector<size_t> starts{begin};
  for (size_t i = 1; i < n; ++i) {
    size_t at = begin + (size - begin) / n * i;
    const void* nl = std::memchr(text.data() + at - 1, '\n', size - at + 1);
    at = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1 : size;
    starts.push_back(std::max(at, starts.back()));
  }
  starts.push_back(size);
  return starts;
}

// The qid of a content line, as parse_fields will see it.
inline std::string_view line_qid(Kind kind, const char* p, const char* e) {
  if (kind != Kind::kBeirQrels) return next_token(p, e);
  const char* tab = static_cast<const char*>(std::memchr(p, '\t', static_cast<size_t>(e - p)));
  return trim(std::string_view(p, static_cast<size_t>((tab ? tab : e) - p)));
}

struct ChunkResult {
  int64_t lines = 0;  // physical lines read
  bool failed = false;
  int64_t error_line = 0;  // local, 0-based
  std::string error;
  std::string_view error_text;
  std::string_view last_tag;
};

// Pass 1: the segments (runs of one qid) of each chunk, concatenated in
// file order; first_seg[c] is chunk c's first segment.
std::vector<detail::SegmentInfo> scan_segments(Kind kind, std::string_view text,
                                               const std::vector<size_t>& starts,
                                               std::vector<int64_t>* first_seg) {
  const int64_t nchunks = static_cast<int64_t>(starts.size()) - 1;
  std::vector<std::vector<detail::SegmentInfo>> per_chunk(nchunks);
  parallel_for(0, nchunks, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      auto& segs = per_chunk[c];
      const char* end = text.data() + text.size();
      for_each_line_tokens(text.data() + starts[c], text.data() + starts[c + 1], end,
                           [&](const char* lb, const char* le, const LineTokens* tok) {
        std::string_view qid;
        if (tok && kind != Kind::kBeirQrels) {
          if (skip_tokens(lb, *tok)) return true;
          qid = LineTokens(*tok).pop(lb);
        } else {
          if (skip_line(lb, le)) return true;
          qid = line_qid(kind, lb, le);
        }
        if (segs.empty() || !detail::same_text(segs.back().qid, qid)) segs.push_back({qid, 0});
        ++segs.back().count;
        return true;
      });
    }
  });
  std::vector<detail::SegmentInfo> all;
  first_seg->assign(nchunks + 1, 0);
  for (int64_t c = 0; c < nchunks; ++c) {
    all.insert(all.end(), per_chunk[c].begin(), per_chunk[c].end());
    (*first_seg)[c + 1] = static_cast<int64_t>(all.size());
  }
  return all;
}

// Pass 2: full parse; each line is written once, to its final slot.
template <typename T>
void fill_lines(Kind kind, std::string_view text, const std::vector<size_t>& starts,
                const std::vector<detail::SegmentInfo>& segs, const std::vector<int64_t>& first_seg,
                const detail::Plan& plan, std::vector<ChunkResult>& chunks,
                detail::BigVector<std::string_view>& docnos, detail::BigVector<T>& values) {
  parallel_for(0, static_cast<int64_t>(chunks.size()), [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      ChunkResult& ch = chunks[c];
      int64_t seg = first_seg[c], left = 0, slot = 0;
      Fields f;
      const char* end = text.data() + text.size();
      for_each_line_tokens(text.data() + starts[c], text.data() + starts[c + 1], end,
                           [&](const char* lb, const char* le, const LineTokens* tok) {
        const bool fast = tok && kind != Kind::kBeirQrels;
        if (fast ? !skip_tokens(lb, *tok) : !skip_line(lb, le)) {
          std::string err;
          if (!fast || !parse_tokens(kind, lb, *tok, &f)) err = parse_fields(kind, lb, le, &f);
          if (!err.empty()) {
            ch.failed = true;
            ch.error_line = ch.lines;
            ch.error = std::move(err);
            ch.error_text = shown(lb, le);
            return false;
          }
          if (left == 0) slot = plan.dest[seg], left = segs[seg].count, ++seg;
          docnos[slot] = f.docno;
          if constexpr (std::is_same_v<T, double>) {
            values[slot] = f.score;
            ch.last_tag = f.tag;
          } else {
            values[slot] = f.rel;
          }
          ++slot;
          --left;
        }
        ++ch.lines;
        return true;
      });
    }
  });
}

// Two parallel passes over ~1 MiB chunks: qids only, to size and place every
// query, then the full parse straight into the final arrays. No per-line
// allocation, no intermediate copy of the lines.
template <typename T>
std::vector<ChunkResult> parse_into(Kind kind, std::string_view text, size_t begin,
                                    std::vector<std::string_view>& qids, std::vector<int64_t>& offsets,
                                    detail::BigVector<std::string_view>& docnos, detail::BigVector<T>& values) {
  const std::vector<size_t> starts = chunk_starts(text, begin);
  std::vector<int64_t> first_seg;
  const std::vector<detail::SegmentInfo> segs = scan_segments(kind, text, starts, &first_seg);
  detail::Plan plan = detail::plan_segments(segs);
  docnos.resize(plan.offsets.back());
  values.resize(plan.offsets.back());
  std::vector<ChunkResult> chunks(starts.size() - 1);
  fill_lines(kind, text, starts, segs, first_seg, plan, chunks, docnos, values);
  qids = std::move(plan.qids);
  offsets = std::move(plan.offsets);
  return chunks;
}

// The first error by chunk order; earlier chunks were read to their end.
void throw_first_error(const std::vector<ChunkResult>& chunks, const std::string& name,
                       int64_t first_line) {
  int64_t line = first_line;
  for (const ChunkResult& ch : chunks) {
    if (ch.failed)
      throw FormatError(ragkernels::detail::message(name, ":", line + ch.error_line + 1, ": ", ch.error,
                                                    ", got '", ch.error_text, "'"));
    line += ch.lines;
  }
}

// Error path only: finds the two lines holding the duplicate pair.
[[noreturn]] void throw_duplicate(Kind kind, std::string_view text, size_t begin,
                                  int64_t first_line, const detail::Duplicate& dup,
                                  const std::string& name) {
  int64_t line = first_line, first = -1;
  std::string msg;
  for_each_line(text.data() + begin, text.data() + text.size(), [&](const char* lb, const char* le) {
    ++line;
    Fields f;
    if (skip_line(lb, le) || !parse_fields(kind, lb, le, &f).empty()) return true;
    if (f.qid != dup.qid || f.docno != dup.docno) return true;
    if (first < 0) {
      first = line;
      return true;
    }
    msg = ragkernels::detail::message(name, ":", line, ": duplicate document '", dup.docno, "' for query '",
                          dup.qid, "' (first at line ", first, "; trec_eval refuses duplicate docs), got '",
                          shown(lb, le), "'");
    return false;
  });
  throw FormatError(msg);
}

bool is_beir_header(std::string_view text, size_t* header_end) {
  size_t skip = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  const size_t nl = text.find('\n');
  std::string_view first = text.substr(skip, nl == std::string_view::npos ? std::string_view::npos : nl - skip);
  const char* p = first.data();
  if (next_token(p, first.data() + first.size()) != "query-id") return false;
  *header_end = nl == std::string_view::npos ? text.size() : nl + 1;
  return true;
}

Qrels parse_qrels(std::shared_ptr<Buffer> buf, const std::string& name) {
  const std::string_view text = buf->view();
  size_t begin = 0;
  const Kind kind = is_beir_header(text, &begin) ? Kind::kBeirQrels : Kind::kTrecQrels;
  if (kind == Kind::kBeirQrels)
    detail::check_utf8(text, name, {"query-id", "corpus-id", "score"}, true);
  else
    detail::check_utf8(text, name, {"qid", "iter", "docno", "rel"}, false);
  const int64_t first_line = begin > 0 ? 1 : 0;
  Qrels qrels;
  auto chunks = parse_into(kind, text, begin, qrels.qids, qrels.offsets, qrels.docnos, qrels.rels);
  throw_first_error(chunks, name, first_line);
  qrels.storage = buf;
  detail::Duplicate dup;
  detail::finish_qrels(qrels, &dup);
  if (dup.found) throw_duplicate(kind, text, begin, first_line, dup, name);
  return qrels;
}

Run parse_run(std::shared_ptr<Buffer> buf, const std::string& name) {
  const std::string_view text = buf->view();
  detail::check_utf8(text, name, {"qid", "Q0", "docno", "rank", "score", "tag"}, false);
  Run run;
  auto chunks = parse_into(Kind::kRun, text, 0, run.qids, run.offsets, run.docnos, run.scores);
  throw_first_error(chunks, name, 0);
  for (const auto& ch : chunks)
    if (!ch.last_tag.empty()) run.runid = std::string(ch.last_tag);
  run.storage = buf;
  detail::Duplicate dup;
  detail::finish_run(run, &dup);
  if (dup.found) throw_duplicate(Kind::kRun, text, 0, 0, dup, name);
  return run;
}

}  // namespace

Qrels read_qrels(const std::string& path) { return parse_qrels(Buffer::load(path, "read_qrels"), path); }

Run read_run(const std::string& path) { return parse_run(Buffer::load(path, "read_run"), path); }

Qrels read_qrels_text(std::string_view text, const std::string& name) {
  return parse_qrels(Buffer::copy(text), name);
}

Run read_run_text(std::string_view text, const std::string& name) {
  return parse_run(Buffer::copy(text), name);
}

}  // namespace metrics
}  // namespace ragkernels
