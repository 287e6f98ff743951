// Internal: the TREC/BEIR readers' UTF-8 check (issue 14).
//
// Ids come back to Python as str, so a file with bytes that are not UTF-8
// used to end in a bare "'utf-8' codec can't decode byte 0xff" with no file
// and no line. The readers now check the whole text first, in parallel over
// ~1 MiB pieces cut at newlines (core/utf8.h, which skips ASCII 8 bytes at a
// time), and name file, line, column and field of the first bad byte.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace ragkernels {
namespace metrics {
namespace detail {

// Throws FormatError
//   "<name>:<line>: not valid UTF-8: byte 0xNN at column <c> (field <i>, <field>), got '<line>'"
// (1-based; the line shown with bad bytes as \xNN) unless `text` is valid
// UTF-8. `fields` names a line's fields in order; they are separated by
// tabs when `tabs`, else by runs of ' ', '\t', '\r', '\v', '\f'.
void check_utf8(std::string_view text, const std::string& name, std::initializer_list<const char*> fields,
                bool tabs);

// At most `max_bytes` of `line` for a message, cut at a code point and with
// every byte that is not UTF-8 written as \xNN, so the message is valid UTF-8.
std::string printable(std::string_view line, size_t max_bytes = 200);

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
