#include "metrics/utf8_check.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/utf8.h"

namespace ragkernels {
namespace metrics {
namespace detail {
namespace {

constexpr size_t kPieceBytes = size_t(1) << 20;

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// 1-based field of the byte at the end of `prefix` (the line up to it).
size_t field_of(std::string_view prefix, bool tabs) {
  if (tabs) return 1 + static_cast<size_t>(std::count(prefix.begin(), prefix.end(), '\t'));
  size_t field = 0;
  bool in_token = false;
  for (char c : prefix) {
    if (!is_blank(c) && !in_token) ++field;
    in_token = !is_blank(c);
  }
  return in_token ? field : field + 1;
}

[[noreturn]] void throw_at(std::string_view text, size_t bad, const std::string& name,
                           std::initializer_list<const char*> fields, bool tabs) {
  const size_t begin = text.rfind('\n', bad == 0 ? std::string_view::npos : bad - 1);
  const size_t line_start = begin == std::string_view::npos ? 0 : begin + 1;
  const size_t line_end = std::min(text.find('\n', bad), text.size());
  const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(line_start), '\n');
  const size_t field = field_of(text.substr(line_start, bad - line_start), tabs);
  const char* field_name = field <= fields.size() ? fields.begin()[field - 1] : "past the last field";
  char byte[8];
  std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
  throw FormatError(ragkernels::detail::message(
      name, ":", line, ": not valid UTF-8: byte ", byte, " at column ", bad - line_start + 1, " (field ", field,
      ", ", field_name, "), got '", printable(text.substr(line_start, line_end - line_start)), "'"));
}

}  // namespace

void check_utf8(std::string_view text, const std::string& name, std::initializer_list<const char*> fields,
                bool tabs) {
  // Pieces end just after a newline, so none splits a code point.
  std::vector<size_t> starts{0};
  while (starts.back() < text.size()) {
    size_t at = std::min(starts.back() + kPieceBytes, text.size());
    const void* nl = at < text.size() ? std::memchr(text.data() + at, '\n', text.size() - at) : nullptr;
    at = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1 : text.size();
    starts.push_back(at);
  }
  const int64_t pieces = static_cast<int64_t>(starts.size()) - 1;
  std::vector<size_t> bad(static_cast<size_t>(std::max<int64_t>(pieces, 0)), text.size());
  parallel_for(0, pieces, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const std::string_view piece = text.substr(starts[p], starts[p + 1] - starts[p]);
      const size_t at = first_invalid_utf8(piece);
      if (at != piece.size()) bad[static_cast<size_t>(p)] = starts[p] + at;
    }
  });
  const size_t first = bad.empty() ? text.size() : *std::min_element(bad.begin(), bad.end());
  if (first != text.size()) throw_at(text, first, name, fields, tabs);
}

std::string printable(std::string_view line, size_t max_bytes) {
  while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string out;
  while (!line.empty() && out.size() < max_bytes) {
    const size_t bad = first_invalid_utf8(line);
    size_t keep = std::min(bad, max_bytes - out.size());
    if (keep < bad) {  // cut by the length: never split a code point in two
      while (keep > 0 && (static_cast<unsigned char>(line[keep]) & 0xC0) == 0x80) --keep;
      out.append(line.data(), keep);
      break;
    }
    out.append(line.data(), keep);
    line.remove_prefix(keep);
    if (line.empty()) break;
    char esc[8];
    std::snprintf(esc, sizeof(esc), "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(line[0])));
    out += esc;
    line.remove_prefix(1);
  }
  return out;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
