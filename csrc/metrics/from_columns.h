// Qrels and Run straight from columns of integer ids (numpy arrays), in one
// call: the bulk counterpart of QrelsBuilder/RunBuilder::add(int64...).
//
// Same result, bit for bit, as adding every row to a builder (ids become
// their decimal text, see run_qrels.h for the ordering contract), and the
// same ValueError messages on duplicates. Faster because ids stay integers
// while grouping, sorting and checking duplicates (decimal.h gives their
// text order), queries are sorted in parallel, and each docno's text is
// written once, already in rank order, into one buffer.
#pragma once

#include <cstdint>

#include "core/array_view.h"
#include "metrics/run_qrels.h"

namespace ragkernels {
namespace metrics {

// An int32 or int64 column, read as int64. Exactly one view is set.
struct IdColumn {
  View1<const int64_t> i64;
  View1<const int32_t> i32;

  int64_t size() const { return i64.data != nullptr ? i64.size : i32.size; }
  int64_t operator[](int64_t i) const { return i64.data != nullptr ? i64[i] : int64_t{i32[i]}; }
};

// Columns of one length. NaN scores are accepted and ranked as run_qrels.h
// says (the bindings refuse them before).
Run run_from_columns(const IdColumn& qids, const IdColumn& docnos, View1<const double> scores);
Run run_from_columns(const IdColumn& qids, const IdColumn& docnos, View1<const float> scores);
Qrels qrels_from_columns(const IdColumn& qids, const IdColumn& docnos, const IdColumn& rels);

}  // namespace metrics
}  // namespace ragkernels
