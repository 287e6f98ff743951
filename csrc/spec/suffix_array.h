// Suffix sorting for the retrieval datastore (csrc/spec/datastore.h).
//
// sais: SA-IS (Nong, Zhang & Chan, "Two efficient algorithms for linear time
// suffix array construction", IEEE TC 2011): induced sorting of the LMS
// substrings, recursion on their names when two are equal. Linear time, and
// no worst case on repetitive input (a run of one token costs what random
// text costs), unlike comparison sorting, and no log factor, unlike prefix
// doubling.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ragkernels::spec {

// The suffix array of s[0, n): sa[r] = start of the r-th smallest suffix.
// Symbols lie in [0, k); a virtual sentinel smaller than every symbol ends
// the string (so a suffix that is a prefix of another sorts first).
// sa holds n entries. Time O(n + k); memory n bytes of types plus O(k) per
// recursion level (the names live in `sa` itself). Requires n < 2^31 - 1.
void sais(const int32_t* s, int32_t* sa, int32_t n, int32_t k);

// The sorted array of a datastore's text (layout in datastore.h: sequences
// each followed by a negative separator, token ids >= 0): the positions of
// the tokens, ordered by the backward prefix text[e], text[e - 1], ... to the
// start of e's sequence; a backward prefix that is a prefix of another sorts
// first; equal ones by position (= by sequence). sais() of the reversed text
// with each separator a distinct symbol below every token (separator j is
// symbol j: the ends of the sequences sort by sequence number); the tokens
// are ranked densely first, so ids up to 2^31 - 1 cost nothing.
std::vector<int32_t> reversed_suffix_array(const int32_t* text, int64_t size);

// "" when sa[0, n) is exactly reversed_suffix_array(text, size), else what is
// wrong, naming the first bad entry. O(size) time and 4 size bytes: every
// entry is a token position, none repeats, n = number of tokens (so a
// permutation), and each adjacent pair (a, b) is in order: text[a] < text[b],
// or equal and the backward prefixes one token further (a - 1, b - 1) in
// order, by the rank of a - 1 and b - 1 in sa itself, or by the sequence when
// both reach their sequence's start. That local rule implies the global
// order by induction on the prefix length (Burkhardt & Kärkkäinen, "Fast
// lightweight suffix array construction and checking", CPM 2003), so no
// comparison of whole prefixes: a file of one token repeated 10^6 times
// checks as fast as any other. Expects the text's ids and separators valid.
std::string check_reversed_suffix_array(const int32_t* text, int64_t size, const int32_t* sa, int64_t n);

}  // namespace ragkernels::spec
