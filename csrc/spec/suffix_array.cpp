// SA-IS: see suffix_array.h. Terms: a suffix is S-type when it is smaller
// than the suffix after it, L-type when larger (the last one is L-type: the
// virtual sentinel after it is the smallest). An LMS position is an S-type
// position whose left neighbour is L-type; the LMS substring at i runs from i
// to the next LMS position (inclusive), or to the sentinel.
#include "spec/suffix_array.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace ragkernels::spec {

namespace {

struct Types {
  std::vector<uint8_t> is_s;  // 1: S-type
  bool lms(int32_t i) const { return i > 0 && is_s[static_cast<size_t>(i)] && !is_s[static_cast<size_t>(i) - 1]; }
};

Types classify(const int32_t* s, int32_t n) {
  Types t;
  t.is_s.assign(static_cast<size_t>(n), 0);
  for (int32_t i = n - 2; i >= 0; --i) {
    t.is_s[static_cast<size_t>(i)] =
        s[i] < s[i + 1] || (s[i] == s[i + 1] && t.is_s[static_cast<size_t>(i) + 1]) ? 1 : 0;
  }
  return t;
}

// Bucket c holds the suffixes that start with symbol c: heads (first slot)
// or tails (one past the last slot).
void bucket_bounds(const std::vector<int32_t>& count, std::vector<int32_t>& bound, bool tails) {
  int32_t sum = 0;
  for (size_t c = 0; c < count.size(); ++c) {
    sum += count[c];
    bound[c] = tails ? sum : sum - count[c];
  }
}

// Given the LMS suffixes placed at the tails of their buckets (in their
// sorted order, or in any order for the first pass), induces the L-type
// suffixes left to right, then the S-type ones right to left.
void induce(const int32_t* s, int32_t* sa, int32_t n, const Types& t, const std::vector<int32_t>& count,
            std::vector<int32_t>& bound) {
  bucket_bounds(count, bound, false);
  sa[bound[static_cast<size_t>(s[n - 1])]++] = n - 1;  // after the sentinel: the last suffix, L-type
  for (int32_t r = 0; r < n; ++r) {
    const int32_t j = sa[r] - 1;
    if (sa[r] > 0 && !t.is_s[static_cast<size_t>(j)]) sa[bound[static_cast<size_t>(s[j])]++] = j;
  }
  bucket_bounds(count, bound, true);
  for (int32_t r = n - 1; r >= 0; --r) {
    const int32_t j = sa[r] - 1;
    if (sa[r] > 0 && t.is_s[static_cast<size_t>(j)]) sa[--bound[static_cast<size_t>(s[j])]] = j;
  }
}

// Whether the LMS substrings at a != b are equal (symbols and types). The one
// that reaches the sentinel is unique.
bool same_lms_substring(const int32_t* s, int32_t n, const Types& t, int32_t a, int32_t b) {
  for (int32_t d = 0;; ++d) {
    if (a + d == n || b + d == n) return false;
    if (s[a + d] != s[b + d] || t.is_s[static_cast<size_t>(a + d)] != t.is_s[static_cast<size_t>(b + d)]) {
      return false;
    }
    // Equal types up to here, so both are LMS at d or neither is.
    if (d > 0 && t.lms(a + d)) return true;
  }
}

}  // namespace

void sais(const int32_t* s, int32_t* sa, int32_t n, int32_t k) {
  RK_CHECK_ARG(n >= 0 && n < INT32_MAX && k >= 0, "sais: bad sizes n = ", n, ", k = ", k);
  if (n == 0) return;
  if (n == 1) {
    sa[0] = 0;
    return;
  }
  const Types t = classify(s, n);
  std::vector<int32_t> count(static_cast<size_t>(k), 0);
  for (int32_t i = 0; i < n; ++i) ++count[static_cast<size_t>(s[i])];
  std::vector<int32_t> bound(static_cast<size_t>(k));

  // 1. Sort the LMS substrings: seed their positions, induce.
  std::fill(sa, sa + n, -1);
  bucket_bounds(count, bound, true);
  for (int32_t i = n - 1; i >= 1; --i) {
    if (t.lms(i)) sa[--bound[static_cast<size_t>(s[i])]] = i;
  }
  induce(s, sa, n, t, count, bound);

  // 2. Name them: sorted LMS positions to sa[0, m), names at sa[m + pos / 2]
  // (LMS positions are at least 2 apart, and m <= n / 2, so these slots are
  // distinct and inside sa).
  int32_t m = 0;
  for (int32_t r = 0; r < n; ++r) {
    if (t.lms(sa[r])) sa[m++] = sa[r];
  }
  std::fill(sa + m, sa + n, -1);
  int32_t names = 0;
  for (int32_t r = 0; r < m; ++r) {
    if (r == 0 || !same_lms_substring(s, n, t, sa[r - 1], sa[r])) ++names;
    sa[m + sa[r] / 2] = names - 1;
  }
  // The names in text order, packed at the end: the reduced string s1.
  for (int32_t r = n - 1, w = n - 1; r >= m; --r) {
    if (sa[r] >= 0) sa[w--] = sa[r];
  }
  int32_t* s1 = sa + n - m;
  int32_t* sa1 = sa;

  // 3. Order of the LMS suffixes: directly when every name is unique, else by
  // recursion on s1 (its own virtual sentinel stands for ours).
  if (names < m) {
    sais(s1, sa1, m, names);
  } else {
    for (int32_t i = 0; i < m; ++i) sa1[s1[i]] = i;
  }

  // 4. LMS positions in sorted order, seeded at their bucket tails (largest
  // first, so each lands at or after its current slot), then induce.
  for (int32_t i = 1, j = 0; i < n; ++i) {
    if (t.lms(i)) s1[j++] = i;
  }
  for (int32_t r = 0; r < m; ++r) sa1[r] = s1[sa1[r]];
  std::fill(sa + m, sa + n, -1);
  bucket_bounds(count, bound, true);
  for (int32_t r = m - 1; r >= 0; --r) {
    const int32_t j = sa[r];
    sa[r] = -1;
    sa[--bound[static_cast<size_t>(s[j])]] = j;
  }
  induce(s, sa, n, t, count, bound);
}

namespace {

// Dense ranks of the token ids of `text` (separators skipped): rank[i] in
// [0, distinct). A lookup table when the ids are small, else sort + search.
std::vector<int32_t> token_ranks(const int32_t* text, int64_t size, int32_t& distinct) {
  int32_t max_id = -1;
  for (int64_t i = 0; i < size; ++i) max_id = std::max(max_id, text[i]);
  std::vector<int32_t> rank(static_cast<size_t>(size), -1);
  if (int64_t{max_id} < 4 * size + (int64_t{1} << 20)) {
    std::vector<int32_t> table(static_cast<size_t>(max_id) + 1, 0);
    for (int64_t i = 0; i < size; ++i) {
      if (text[i] >= 0) table[static_cast<size_t>(text[i])] = 1;
    }
    distinct = 0;
    for (int32_t& v : table) v = v ? distinct++ : -1;
    for (int64_t i = 0; i < size; ++i) {
      if (text[i] >= 0) rank[static_cast<size_t>(i)] = table[static_cast<size_t>(text[i])];
    }
    return rank;
  }
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < size; ++i) {
    if (text[i] >= 0) ids.push_back(text[i]);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  distinct = static_cast<int32_t>(ids.size());
  for (int64_t i = 0; i < size; ++i) {
    if (text[i] >= 0) {
      rank[static_cast<size_t>(i)] = static_cast<int32_t>(std::lower_bound(ids.begin(), ids.end(), text[i]) - ids.begin());
    }
  }
  return rank;
}

}  // namespace

std::vector<int32_t> reversed_suffix_array(const int32_t* text, int64_t size) {
  RK_CHECK_ARG(size >= 0 && size < INT32_MAX, "reversed_suffix_array: text of ", size,
               " entries; at most 2^31 - 2");
  if (size == 0) return {};
  int32_t distinct = 0;
  std::vector<int32_t> u = token_ranks(text, size, distinct);
  // u = the text reversed, separator j -> symbol j, token -> S + its rank.
  int32_t separators = 0;
  for (int64_t i = 0; i < size; ++i) {
    if (text[i] < 0) u[static_cast<size_t>(i)] = -1 - separators++;  // temporarily -1 - j
  }
  std::reverse(u.begin(), u.end());
  for (int32_t& v : u) v = v < 0 ? -1 - v : v + separators;
  std::vector<int32_t> sa(static_cast<size_t>(size));
  sais(u.data(), sa.data(), static_cast<int32_t>(size), separators + distinct);
  // The separators sort first (symbols 0 .. S-1); the rest, mapped back to
  // text positions, is the array.
  const auto last = static_cast<int32_t>(size - 1);
  int64_t w = 0;
  for (int64_t r = separators; r < size; ++r) sa[static_cast<size_t>(w++)] = last - sa[static_cast<size_t>(r)];
  sa.resize(static_cast<size_t>(w));
  sa.shrink_to_fit();
  return sa;
}

std::string check_reversed_suffix_array(const int32_t* text, int64_t size, const int32_t* sa, int64_t n) {
  auto entry = [&](int64_t r) { return "entry " + std::to_string(r) + " (position " + std::to_string(sa[r]) + ")"; };
  std::vector<int32_t> rank(static_cast<size_t>(size), -1);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t e = sa[r];
    if (e < 0 || e >= size) return entry(r) + " lies outside the text of " + std::to_string(size) + " entries";
    if (text[e] < 0) return entry(r) + " points at a separator, not a token";
    if (rank[static_cast<size_t>(e)] >= 0) {
      return entry(r) + " repeats entry " + std::to_string(rank[static_cast<size_t>(e)]);
    }
    rank[static_cast<size_t>(e)] = static_cast<int32_t>(r);
  }
  for (int64_t i = 0; i < size; ++i) {
    if (text[i] >= 0 && rank[static_cast<size_t>(i)] < 0) {
      return "token position " + std::to_string(i) + " is missing from the array";
    }
  }
  for (int64_t r = 1; r < n; ++r) {
    const int64_t a = sa[r - 1], b = sa[r];
    bool ordered = text[a] < text[b];
    if (text[a] == text[b]) {
      const bool a_starts = a == 0 || text[a - 1] < 0;  // a's backward prefix ends here
      const bool b_starts = b == 0 || text[b - 1] < 0;
      if (a_starts || b_starts) {
        ordered = a_starts && (!b_starts || a < b);
      } else {
        ordered = rank[static_cast<size_t>(a - 1)] < rank[static_cast<size_t>(b - 1)];
      }
    }
    if (!ordered) return entry(r - 1) + " and " + entry(r) + " are out of order";
  }
  return "";
}

}  // namespace ragkernels::spec
