// Strict UTF-8 validation, as Python's decoder applies it ("strict" errors):
// no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF,
// no truncated sequence. Every string a loaded file hands to Python goes
// through it, so a corrupt file raises FormatError naming the file instead of
// a bare UnicodeDecodeError (issue 14).
#pragma once

#include <cstddef>
#include <string_view>

namespace ragkernels {

// Byte offset of the first invalid byte of `s`, or s.size() when valid.
size_t first_invalid_utf8(std::string_view s);

inline bool is_valid_utf8(std::string_view s) { return first_invalid_utf8(s) == s.size(); }

}  // namespace ragkernels
