// Which trec_eval measures to compute, parsed from trec_eval's -m syntax.
//
// Accepted requests (any number, any order; the output order is always
// trec_eval's measure order, measures.c, whatever the request order):
//   "map", "ndcg", ...                     a measure with its default parameters
//   "P.5,10", "ndcg_cut.10,20"             cutoffs, any order; sorted; atol-style
//                                          ("23.4" -> 23); must be > 0
//   "iprec_at_recall..10,.20", "Rprec_mult.5.0,0.2"
//                                          double cutoffs, sorted, named "%3.2f"
//   "utility.2,-1,0,0", "11pt_avg..25,.5", "set_F.0.5", "relstring.20"
//                                          double parameters; the output name gets
//                                          "_" + the parameter text as typed
//   "ndcg.1=3,2=9,4=4.5", "rbp.p=0.8"      name=value pairs (gains per relevance
//                                          level; "p" for rbp/rbp_resid)
//   "official", "all_trec", "set"          trec_eval's nicknames
//   "P_5", "ndcg_cut_10", "recall_100", "iprec_at_recall_0.10", "success_1"
//                                          pytrec_eval's name_param spelling
//   "judged.10" / "judged_10"              Judged@k as ir_measures defines it
//                                          (see measures_basic.cpp); printed last
// An empty request list means "official" (trec_eval's default).
// Requesting a cutoff measure several times unions the cutoffs (as
// pytrec_eval does; trec_eval keeps only the first -m's); a request without
// parameters adds nothing when another one has them. Two different parameter
// texts for a non-cutoff measure are refused.
//
// Unknown names, parameters where none are taken, and malformed parameters
// throw ValueError naming the request.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ragkernels {
namespace metrics {
namespace detail {

// One requested measure, resolved.
struct MeasureSpec {
  int def = 0;                         // index in the measure table (print order)
  std::string name;                    // root name as trec_eval spells it: "P", "ndcg_cut"
  std::vector<int64_t> long_cutoffs;   // ascending, unique
  std::vector<double> doubles;         // double cutoffs (ascending) or parameters (as given)
  std::vector<std::pair<std::string, double>> pairs;  // name=value parameters
  std::string printable;               // parameter text as typed; "" = defaults
  std::vector<std::string> names;      // output names, one per value column
  int64_t column = 0;                  // first column in MeasureSet::names()
};

}  // namespace detail

class MeasureSet {
 public:
  static MeasureSet parse(const std::vector<std::string>& requests);

  // Numeric output columns, named and ordered as trec_eval prints them
  // ("runid" and "relstring" are not columns; see below).
  const std::vector<std::string>& names() const { return names_; }
  // Per column: trec_eval prints it with %ld (num_q, num_ret, num_rel, ...).
  const std::vector<uint8_t>& is_integer() const { return is_integer_; }
  // Per column: trec_eval -q prints it per query (all but num_q, gm_map, gm_bpref).
  const std::vector<uint8_t>& per_query_printed() const { return per_query_printed_; }
  bool has_runid() const { return has_runid_; }
  // relstring: a per-query string, printed by -q before column relstring_column().
  bool has_relstring() const { return relstring_ >= 0; }
  const std::string& relstring_name() const;
  int64_t relstring_column() const { return relstring_column_; }
  int64_t relstring_length() const;

  const std::vector<detail::MeasureSpec>& specs() const { return specs_; }

 private:
  std::vector<detail::MeasureSpec> specs_;  // trec_eval order
  std::vector<std::string> names_;
  std::vector<uint8_t> is_integer_;
  std::vector<uint8_t> per_query_printed_;
  bool has_runid_ = false;
  int64_t relstring_ = -1;  // index in specs_
  int64_t relstring_column_ = 0;
};

}  // namespace metrics
}  // namespace ragkernels
