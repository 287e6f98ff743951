// GoogleTest: the readers' bit-mask tokenizer (metrics/line_masks.h) against
// their byte loop. A line followed by 64 more readable bytes takes the mask
// path; the same line at the very end of the text takes the byte loop. Both
// must give the same Run/Qrels, or the same error message.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "metrics/run_qrels.h"
#include "metrics/trec_io.h"
#include "metrics/utf8_check.h"

namespace m = ragkernels::metrics;

namespace {

// A comment line long enough that the line before it has 64 readable bytes.
const std::string kPad = "#" + std::string(80, ' ') + "\n";

template <typename Read>
std::string describe(Read read, const std::string& text) {
  try {
    return read(text);
  } catch (const ragkernels::FormatError& e) {
    return std::string("error: ") + e.what();
  }
}

std::string run_text(const std::string& text) {
  const m::Run r = m::read_run_text(text, "run");
  std::string out = r.runid;
  for (int64_t q = 0; q < r.num_queries(); ++q) {
    out += "|" + std::string(r.qids[q]);
    for (int64_t i = r.offsets[q]; i < r.offsets[q + 1]; ++i) {
      uint64_t bits;
      std::memcpy(&bits, &r.scores[i], sizeof(bits));
      out += " " + std::string(r.docnos[i]) + "=" + std::to_string(bits);
    }
  }
  return out;
}

std::string qrels_text(const std::string& text) {
  const m::Qrels qr = m::read_qrels_text(text, "qrels");
  std::string out;
  for (int64_t q = 0; q < qr.num_queries(); ++q) {
    out += "|" + std::string(qr.qids[q]);
    for (int64_t i = qr.offsets[q]; i < qr.offsets[q + 1]; ++i)
      out += " " + std::string(qr.docnos[i]) + "=" + std::to_string(qr.rels[i]);
  }
  return out;
}

}  // namespace

TEST(MetricsLines, RunMaskPathEqualsByteLoop) {
  const std::vector<std::string> lines = {
      "q1 Q0 d1 1 0.5 tag",
      "q1\tQ0\td1\t1\t0.999955\ttag\r",
      "   q1  Q0 d1 1 -3.25 tag extra fields here",
      "q1 Q0 d1 1 +2 t",
      "q1 Q0 d1 1 1e-3 t",
      "q1 Q0 d1 1 -inf t",
      "q1 Q0 d1 1 0.12345678901234567890 t",
      "q1 Q0 d1 1 123456789012345678 t",
      "q1\vQ0\fd\xC3\xA9 1 7. t",
      "q1 Q0 d1 1 .5 t",
      "q1 Q0 d1 1 nan t",
      "q1 Q0 d1 1 0x10 t",
      "q1 Q0 d1 1 - t",
      "q1 Q0 d1 1 1.2.3 t",
      "q1 Q0 d1 1 0.5",
      "",
      "   \t",
      "  # a comment",
      "#q1 Q0 d1 1 0.5 tag",
      "q1 Q0 " + std::string(40, 'd') + " 1 0.5 tag",  // 62 bytes
      "q1 Q0 " + std::string(41, 'd') + " 1 0.5 tag",  // 63
      "q1 Q0 " + std::string(42, 'd') + " 1 0.5 tag",  // 64: byte loop either way
  };
  for (const std::string& line : lines) {
    const std::string expected = describe(run_text, line + "\n");
    EXPECT_EQ(describe(run_text, line + "\n" + kPad), expected) << line;
    EXPECT_EQ(describe(run_text, "q0 Q0 x 1 1 t\n" + line + "\n" + kPad + kPad),
              describe(run_text, "q0 Q0 x 1 1 t\n" + line + "\n"))
        << line;
  }
}

TEST(MetricsLines, QrelsMaskPathEqualsByteLoop) {
  const std::vector<std::string> lines = {
      "q1 0 d1 1",        "q1\t0\td1\t+2\r", "  q1 0 d1 -1  ",   "q1 0 d1 1 5",
      "q1 0 d1",          "q1 0 d1 1.5",     "q1 0 d1 +-1",      "# q1 0 d1 1",
      "",                 "q1 0 d1 99999999999999999999",
  };
  for (const std::string& line : lines) {
    const std::string expected = describe(qrels_text, line + "\n");
    EXPECT_EQ(describe(qrels_text, line + "\n" + kPad), expected) << line;
  }
}

// Issue 14: bytes that are not UTF-8 are named by file, line, column and
// field, wherever they fall among the ~1 MiB pieces checked in parallel.
TEST(MetricsUtf8, NamesLineColumnAndFieldPastTheFirstPiece) {
  std::string text;
  for (int i = 0; i < 60000; ++i) text += "q" + std::to_string(i % 7) + " Q0 dé" + std::to_string(i) + " 1 0.5 t\n";
  ASSERT_GT(text.size(), size_t(1) << 20);
  text += "q1 Q0 x 1 0.5 t\xC3\n";  // a truncated sequence at the end of the tag
  const std::string e = describe(run_text, text);
  EXPECT_EQ(e, "error: run:60001: not valid UTF-8: byte 0xc3 at column 16 (field 6, tag), got 'q1 Q0 x 1 0.5 t\\xc3'");
}

TEST(MetricsUtf8, PrintableEscapesBadBytesAndCutsWholeCodePoints) {
  using m::detail::printable;
  EXPECT_EQ(printable("a\xFF" "b\xED\xA0\x80"), "a\\xffb\\xed\\xa0\\x80");  // a surrogate is invalid too
  EXPECT_EQ(printable("x\xC3\xA9\xC3\xA9", 4), "x\xC3\xA9");  // never half an é
  EXPECT_EQ(printable("\x80\x80", 1), "\\x80");
  EXPECT_EQ(printable("ok\r"), "ok");
}
