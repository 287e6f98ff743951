#include "metrics/trec_format.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace ragkernels {
namespace metrics {
namespace {

// What (long) v gives on x86-64 (cvttsd2si): out-of-range and NaN become
// LONG_MIN instead of undefined behaviour.
long to_long(double v) {
  if (!(v > -9.2233720368547758e18 && v < 9.2233720368547758e18))
    return std::numeric_limits<long>::min();
  return static_cast<long>(v);
}

// "%-22s\t" without a length limit on the name.
void append_name(std::string& out, const std::string& name) {
  out += name;
  if (name.size() < 22) out.append(22 - name.size(), ' ');
  out += '\t';
}

void append_line(std::string& out, const std::string& name, const std::string& qid, double value,
                 bool is_integer) {
  char buf[400];  // %6.4f of the largest double needs 316 bytes
  append_name(out, name);
  out += qid;
  if (is_integer)
    std::snprintf(buf, sizeof(buf), "\t%ld\n", to_long(value));
  else
    std::snprintf(buf, sizeof(buf), "\t%6.4f\n", value);
  out += buf;
}

void append_text(std::string& out, const std::string& name, const std::string& qid,
                 const std::string& text, bool quoted) {
  append_name(out, name);
  out += qid;
  out += quoted ? "\t'" : "\t";
  out += text;
  out += quoted ? "'\n" : "\n";
}

}  // namespace

std::string format_trec_eval(const Evaluation& ev, bool per_query) {
  std::string out;
  const size_t nm = ev.measure_names.size();
  const bool has_relstring = !ev.relstring_name.empty();
  if (per_query) {
    for (size_t t = 0; t < ev.query_ids.size(); ++t) {
      const std::string& qid = ev.query_ids[t];
      for (size_t c = 0; c <= nm; ++c) {
        if (has_relstring && static_cast<int64_t>(c) == ev.relstring_column)
          append_text(out, ev.relstring_name, qid, ev.relstrings[t], true);
        if (c < nm && ev.per_query_printed[c])
          append_line(out, ev.measure_names[c], qid, ev.per_query[t * nm + c], ev.is_integer[c]);
      }
    }
  }
  if (ev.has_runid) append_text(out, "runid", "all", ev.runid, false);
  for (size_t c = 0; c < nm; ++c)
    append_line(out, ev.measure_names[c], "all", ev.summary[c], ev.is_integer[c]);
  return out;
}

}  // namespace metrics
}  // namespace ragkernels
