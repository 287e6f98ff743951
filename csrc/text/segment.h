// Rule-based sentence segmentation: UTF-8 text -> sentence spans.
//
// The rules, in the order they are applied (tests/reference/segment.py is the
// same rules in plain Python, and the oracle of the tests):
//  1. Hard breaks: a whitespace run holding two line breaks ("\r\n" is one)
//     or U+2029; a line break followed by a list marker (a bullet - * • ‣ ◦ ⁃
//     ▪ ● ○ ■ □ ► ➢ – —, or a label of <= 3 digits, one ASCII letter or a
//     roman numeral i..xii, optionally after "(", closed by "." or ")"),
//     then whitespace. A single line break elsewhere is whitespace.
//  2. Terminators: a run of . ! ? … ‼ ⁇ ⁈ ⁉ 。 ｡ ！ ？ ．, then closing quotes
//     and brackets (and one closer detached by spaces: `"word. " Next`). A
//     run with a CJK mark (。 ｡ ！ ？) always ends a sentence; any other ends
//     one only before whitespace or the end (3.5, 1,000.2, v1.2.3, U.S.A do
//     not break) and only when rule 3 and rule 4 allow.
//  3. The next visible character: uppercase (Python's c.lower() != c),
//     digit, opener or symbol allow a break; , ; : % closing brackets and
//     terminal characters do not; a lowercase or uncased letter only when
//     it is a small Greek letter or its word holds an uppercase letter or a
//     digit (p53, mRNA, rIL-18 start sentences in abstracts). After an
//     ellipsis, a digit does not allow a break.
//  4. After a single period, the word before it (back to whitespace, without
//     leading openers): a prefix abbreviation (Dr, Fig, Eq, Ref, vs, e.g,
//     i.e, cf, approx, ...; two-letter all-caps words excluded: MS, ST)
//     never ends a sentence; a final abbreviation (etc, al, Inc, months, sp,
//     ...) or a dotted acronym (U.S, Ph.D) ends one only before an uppercase
//     letter ("in the U.S. The" breaks, "et al. (2005)" does not); a single
//     letter is an initial and never ends a sentence ("J. R. R. Tolkien",
//     "by S. Typhimurium"; also "vitamin D. The", the price of the rule).
//  5. Sentences are the text between breaks without leading and trailing
//     whitespace (exactly Python's str.isspace()); empty ones are dropped.
//
// Offsets: both code points (what Python slices with: text[begin:end]) and
// UTF-8 bytes (zero-copy views into the input). Every code point counts one;
// a lone surrogate encoded as "surrogatepass" bytes (ED A0..BF xx) is one
// code point, as it is in a Python str; an invalid byte counts as one code
// point that is neither whitespace nor a letter. Nothing is read outside
// the text. Cost: O(bytes) per text, plus O(word) per candidate terminator.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ragkernels::text {

struct SentenceSpan {
  int64_t begin = 0;       // code points, inclusive
  int64_t end = 0;         // code points, exclusive
  int64_t byte_begin = 0;  // UTF-8 bytes, inclusive
  int64_t byte_end = 0;    // UTF-8 bytes, exclusive
};

// The sentences of one UTF-8 text, in order; out is replaced.
void split_sentences(std::string_view text, std::vector<SentenceSpan>& out);

// split_sentences of every text, texts in parallel (parallel_for); out[i]
// holds the sentences of texts[i]. The same for any thread count.
void split_sentences_batch(const std::vector<std::string_view>& texts, std::vector<std::vector<SentenceSpan>>& out);

}  // namespace ragkernels::text
