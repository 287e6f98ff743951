// trec_eval's text output, byte for byte (meas_print_single.c,
// meas_print_final.c, m_runid.c, m_relstring.c):
//   "%-22s\t%s\t%6.4f\n"  measure, qid or "all", value
//   "%-22s\t%s\t%ld\n"    for the counts (num_q, num_ret, ...), value cast to long
//   "%-22s\t%s\t'%s'\n"   relstring, per query only
//   "%-22s\t%s\t%s\n"     runid, summary only, first
// With per_query (-q), each query's lines come first, in query order, then
// the summary. Measures are printed in trec_eval's order (measures.c).
#pragma once

#include <string>

#include "metrics/evaluate.h"

namespace ragkernels {
namespace metrics {

std::string format_trec_eval(const Evaluation& evaluation, bool per_query);

}  // namespace metrics
}  // namespace ragkernels
