// Readers for TREC qrels, BEIR qrels and TREC run files.
//
// Formats (fields separated by any run of spaces/tabs; '\r' is whitespace,
// so CRLF files read fine; blank lines and lines whose first non-blank
// character is '#' are skipped):
//   qrels, TREC : "qid iter docno rel"             exactly 4 fields, rel an integer
//   qrels, BEIR : header "query-id<TAB>corpus-id<TAB>score", then
//                 "qid<TAB>docno<TAB>rel"          exactly 3 tab-separated fields
//                 (detected by the first line's first field being "query-id";
//                 ids may contain spaces; without the header a 3-field line
//                 is refused as TREC qrels, the message naming the header)
//   run         : "qid Q0 docno rank score tag"    at least 6 fields; extra ones
//                 ignored, rank ignored, score a decimal or inf double (NaN
//                 refused, as in dicts and arrays)
// Ints may be negative and take an optional '+'. trec_eval reads numbers with
// atol/atof and silently takes a prefix ("1.5" -> 1, "x" -> 0); we refuse
// anything that is not entirely a number.
//
// Files must be UTF-8 (ids come back as Python str): the first byte that is
// not throws FormatError naming line, column and field (utf8_check.h).
// Only regular files are read (file_buffer.h).
//
// Errors: a malformed line throws FormatError
//   "<path>:<line>: <what is wrong>, got '<line text>'"
// (1-based physical line numbers); a duplicate (qid, docno) throws
// FormatError at the second occurrence naming both lines; a missing or
// unreadable file throws IOError naming the path.
//
// Speed: the file is mmap'ed (read() as fallback), cut into ~1 MiB chunks at
// newlines that are parsed in parallel (parallel_for) into string_views of
// the buffer with std::from_chars, then grouped per query (see assemble.h).
// The chunking depends only on the file size, so results never depend on
// the thread count.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "metrics/run_qrels.h"

namespace ragkernels {
namespace metrics {

Qrels read_qrels(const std::string& path);
Run read_run(const std::string& path);

// Same parsers over text in memory; `name` stands for the path in messages.
// The text is copied.
Qrels read_qrels_text(std::string_view text, const std::string& name);
Run read_run_text(std::string_view text, const std::string& name);

}  // namespace metrics
}  // namespace ragkernels
