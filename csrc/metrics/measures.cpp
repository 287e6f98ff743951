#include "metrics/measures.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"
#include "metrics/measure_impl.h"

namespace ragkernels {
namespace metrics {
namespace detail {

const std::vector<MeasureDef>& measure_table() {
  using P = ParamKind;
  using A = AccKind;
  static const std::vector<int64_t> kCuts = {5, 10, 15, 20, 30, 100, 200, 500, 1000};
  static const std::vector<double> kRecallPts = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  static const std::vector<double> kRprecMult = {0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0};
  // name, params, default long, default double, acc, %ld, printed by -q, calc
  static const std::vector<MeasureDef> table = {
      {"runid", P::kNone, {}, {}, A::kNone, false, false, nullptr},
      {"num_q", P::kNone, {}, {}, A::kNumQ, true, false, calc_num_q},
      {"num_ret", P::kNone, {}, {}, A::kSum, true, true, calc_num_ret},
      {"num_rel", P::kNone, {}, {}, A::kNumRel, true, true, calc_num_rel},
      {"num_rel_ret", P::kNone, {}, {}, A::kSum, true, true, calc_num_rel_ret},
      {"map", P::kNone, {}, {}, A::kMean, false, true, calc_map},
      {"gm_map", P::kNone, {}, {}, A::kGeoMean, false, false, calc_gm_map},
      {"Rprec", P::kNone, {}, {}, A::kMean, false, true, calc_Rprec},
      {"bpref", P::kNone, {}, {}, A::kMean, false, true, calc_bpref},
      {"recip_rank", P::kNone, {}, {}, A::kMean, false, true, calc_recip_rank},
      {"iprec_at_recall", P::kDoubleCutoffs, {}, kRecallPts, A::kMean, false, true, calc_iprec_at_recall},
      {"P", P::kLongCutoffs, kCuts, {}, A::kMean, false, true, calc_P},
      {"relstring", P::kDoubleParams, {}, {10.0}, A::kNone, false, true, nullptr},
      {"recall", P::kLongCutoffs, kCuts, {}, A::kMean, false, true, calc_recall},
      {"infAP", P::kNone, {}, {}, A::kMean, false, true, calc_infAP},
      {"gm_bpref", P::kNone, {}, {}, A::kGeoMean, false, false, calc_gm_bpref},
      {"Rprec_mult", P::kDoubleCutoffs, {}, kRprecMult, A::kMean, false, true, calc_Rprec_mult},
      {"utility", P::kDoubleParams, {}, {1.0, -1.0, 0.0, 0.0}, A::kMean, false, true, calc_utility},
      {"11pt_avg", P::kDoubleParams, {}, kRecallPts, A::kMean, false, true, calc_11pt_avg},
      {"binG", P::kNone, {}, {}, A::kMean, false, true, calc_binG},
      {"G", P::kPairParams, {}, {}, A::kMean, false, true, calc_G},
      {"dcg", P::kPairParams, {}, {}, A::kMean, false, true, calc_dcg},
      {"ideal_dcg", P::kPairParams, {}, {}, A::kMean, false, true, calc_ideal_dcg},
      {"ndcg", P::kPairParams, {}, {}, A::kMean, false, true, calc_ndcg},
      {"ndcg_rel", P::kPairParams, {}, {}, A::kMean, false, true, calc_ndcg_rel},
      {"Rndcg", P::kPairParams, {}, {}, A::kMean, false, true, calc_Rndcg},
      {"ndcg_cut", P::kLongCutoffs, kCuts, {}, A::kMean, false, true, calc_ndcg_cut},
      {"map_cut", P::kLongCutoffs, kCuts, {}, A::kMean, false, true, calc_map_cut},
      {"relative_P", P::kLongCutoffs, kCuts, {}, A::kMean, false, true, calc_relative_P},
      {"success", P::kLongCutoffs, {1, 5, 10}, {}, A::kMean, false, true, calc_success},
      {"set_P", P::kNone, {}, {}, A::kMean, false, true, calc_set_P},
      {"set_relative_P", P::kNone, {}, {}, A::kMean, false, true, calc_set_relative_P},
      {"set_recall", P::kNone, {}, {}, A::kMean, false, true, calc_set_recall},
      {"set_map", P::kNone, {}, {}, A::kMean, false, true, calc_set_map},
      {"set_F", P::kDoubleParams, {}, {1.0}, A::kMean, false, true, calc_set_F},
      {"num_nonrel_judged_ret", P::kNone, {}, {}, A::kSum, true, true, calc_num_nonrel_judged_ret},
      {"yaap", P::kNone, {}, {}, A::kMean, false, true, calc_yaap},
      {"rbp", P::kPairParams, {}, {}, A::kMean, false, true, calc_rbp},
      {"rbp_resid", P::kPairParams, {}, {}, A::kMean, false, true, calc_rbp_resid},
      {"unj", P::kLongCutoffs, {5, 10, 20}, {}, A::kMean, false, true, calc_unj},
      {"judged", P::kLongCutoffs, {}, {}, A::kMean, false, true, calc_judged},
  };
  return table;
}

int64_t QueryData::level_count(int64_t level) const {
  const auto* end = levels + num_levels;
  const auto* it = std::lower_bound(levels, end, std::make_pair(level, int64_t(0)));
  return it != end && it->first == level ? it->second : 0;
}

}  // namespace detail

namespace {

using detail::MeasureDef;
using detail::MeasureSpec;
using detail::ParamKind;

const std::map<std::string, std::vector<std::string>>& nicknames() {
  static const std::map<std::string, std::vector<std::string>> nick = {
      {"official", {"runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec",
                    "bpref", "recip_rank", "iprec_at_recall", "P"}},
      {"all_trec", {"runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec",
                    "bpref", "recip_rank", "iprec_at_recall", "P", "relstring", "recall", "unj",
                    "rbp", "rbp_resid", "infAP", "gm_bpref", "utility", "11pt_avg", "ndcg",
                    "relative_P", "Rprec_mult", "success", "map_cut", "ndcg_cut", "ndcg_rel",
                    "Rndcg", "binG", "G", "set_P", "set_recall", "set_relative_P", "set_map",
                    "set_F", "num_nonrel_judged_ret"}},
      {"set", {"runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "utility", "set_P",
               "set_recall", "set_relative_P", "set_map", "set_F"}},
  };
  return nick;
}

int find_def(const std::string& name) {
  const auto& table = detail::measure_table();
  for (size_t i = 0; i < table.size(); ++i)
    if (name == table[i].name) return static_cast<int>(i);
  return -1;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ',') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// atol semantics (a numeric prefix; "23.4" -> 23), but an empty prefix is refused.
int64_t parse_long_prefix(const std::string& tok, const std::string& req) {
  const char* s = tok.c_str();
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  RK_CHECK_ARG(end != s, "measure '", req, "': parameter '", tok, "' is not an integer");
  return static_cast<int64_t>(v);
}

// atof semantics (a numeric prefix), an empty prefix refused.
double parse_double_prefix(const std::string& tok, const std::string& req) {
  const char* s = tok.c_str();
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  RK_CHECK_ARG(end != s, "measure '", req, "': parameter '", tok, "' is not a number");
  return v;
}

// get_param_pairs (meas_init.c): "n=v,n=v,...", separators strictly alternating.
std::vector<std::pair<std::string, double>> parse_pairs(const std::string& text,
                                                        const std::string& req) {
  std::vector<std::pair<std::string, double>> pairs;
  for (const std::string& item : split_commas(text)) {
    const size_t eq = item.find('=');
    RK_CHECK_ARG(eq != std::string::npos && item.find('=', eq + 1) == std::string::npos,
                 "measure '", req, "': parameters must be name=value pairs separated by ',', got '",
                 text, "'");
    pairs.emplace_back(item.substr(0, eq), std::atof(item.c_str() + eq + 1));
  }
  return pairs;
}

// "P_5" -> ("P", "5"): a known name, '_', then something that looks like parameters.
bool split_name_param(const std::string& req, std::string* name, std::string* params) {
  int best = -1;
  size_t best_len = 0;
  const auto& table = detail::measure_table();
  for (size_t i = 0; i < table.size(); ++i) {
    const std::string n = table[i].name;
    if (table[i].params == ParamKind::kNone || req.size() <= n.size() + 1) continue;
    if (req.compare(0, n.size(), n) != 0 || req[n.size()] != '_') continue;
    const std::string rest = req.substr(n.size() + 1);
    const char c = rest[0];
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) continue;
    if (rest.find_first_not_of("0123456789.,=+-eE") != std::string::npos) continue;
    if (n.size() > best_len) best = static_cast<int>(i), best_len = n.size();
  }
  if (best < 0) return false;
  *name = table[best].name;
  *params = req.substr(best_len + 1);
  return true;
}

[[noreturn]] void unknown_measure(const std::string& req) {
  std::string known;
  for (const auto& d : detail::measure_table()) known += std::string(known.empty() ? "" : ", ") + d.name;
  for (const auto& kv : nicknames()) known += ", " + kv.first;
  throw ValueError(ragkernels::detail::message("unknown measure '", req, "'; known: ", known));
}

std::string cutoff_name(const std::string& root, double v) {
  // append_double (meas_init.c) prints into strlen(name) + 10 bytes: keep its truncation.
  std::vector<char> buf(root.size() + 10);
  std::snprintf(buf.data(), buf.size(), "%s_%3.2f", root.c_str(), v);
  return std::string(buf.data());
}

MeasureSpec resolve(int def, const std::vector<std::string>& texts, const std::string& first_req) {
  const MeasureDef& d = detail::measure_table()[def];
  MeasureSpec spec;
  spec.def = def;
  spec.name = d.name;
  std::set<std::string> distinct(texts.begin(), texts.end());
  switch (d.params) {
    case ParamKind::kNone:
      RK_CHECK_ARG(texts.empty(), "measure '", first_req, "': ", d.name, " takes no parameters");
      spec.names = {d.name};
      break;
    case ParamKind::kLongCutoffs: {
      std::set<int64_t> cuts;
      for (const auto& t : texts)
        for (const auto& tok : split_commas(t)) {
          const int64_t c = parse_long_prefix(tok, first_req);
          RK_CHECK_ARG(c > 0, "measure '", first_req, "': cutoffs must be > 0, got ", c);
          cuts.insert(c);
        }
      RK_CHECK_ARG(!texts.empty() || !d.default_long.empty(), "measure '", first_req,
                   "' needs cutoffs, e.g. '", d.name, ".10'");
      spec.long_cutoffs = texts.empty() ? d.default_long : std::vector<int64_t>(cuts.begin(), cuts.end());
      for (int64_t c : spec.long_cutoffs) spec.names.push_back(std::string(d.name) + "_" + std::to_string(c));
      break;
    }
    case ParamKind::kDoubleCutoffs: {
      std::set<double> cuts;
      for (const auto& t : texts)
        for (const auto& tok : split_commas(t)) cuts.insert(parse_double_prefix(tok, first_req));
      spec.doubles = texts.empty() ? d.default_double : std::vector<double>(cuts.begin(), cuts.end());
      for (double c : spec.doubles) spec.names.push_back(cutoff_name(d.name, c));
      break;
    }
    case ParamKind::kDoubleParams:
    case ParamKind::kPairParams: {
      RK_CHECK_ARG(distinct.size() <= 1, "measure '", first_req, "': conflicting parameters '",
                   *distinct.begin(), "' and '", *std::next(distinct.begin()), "' for ", d.name);
      if (distinct.empty()) {
        spec.doubles = d.default_double;
      } else {
        spec.printable = *distinct.begin();
        if (d.params == ParamKind::kPairParams) {
          spec.pairs = parse_pairs(spec.printable, first_req);
        } else {
          for (const auto& tok : split_commas(spec.printable))
            spec.doubles.push_back(parse_double_prefix(tok, first_req));
        }
      }
      RK_CHECK_ARG(spec.name != "utility" || spec.doubles.size() == 4, "measure '", first_req,
                   "': utility takes 4 coefficients, got ", spec.doubles.size());
      spec.names = {spec.printable.empty() ? spec.name : spec.name + "_" + spec.printable};
      break;
    }
  }
  return spec;
}

}  // namespace

MeasureSet MeasureSet::parse(const std::vector<std::string>& requests) {
  const auto& table = detail::measure_table();
  std::vector<uint8_t> marked(table.size(), 0);
  std::vector<std::vector<std::string>> texts(table.size());
  std::vector<std::string> first_req(table.size());
  auto mark = [&](int def, const std::string& req) {
    if (!marked[def]) first_req[def] = req;
    marked[def] = 1;
  };
  const std::vector<std::string> defaults = {"official"};
  for (const std::string& req : requests.empty() ? defaults : requests) {
    RK_CHECK_ARG(!req.empty(), "MeasureSet.parse: empty measure name");
    std::string name = req, params;
    bool has_params = false;
    const size_t dot = req.find('.');
    if (dot != std::string::npos) {
      name = req.substr(0, dot);
      params = req.substr(dot + 1);
      has_params = true;
      RK_CHECK_ARG(!params.empty(), "measure '", req, "': empty parameter list after '.'");
    }
    auto nick = nicknames().find(name);
    if (nick != nicknames().end()) {
      RK_CHECK_ARG(!has_params, "measure '", req, "': nickname '", name, "' takes no parameters");
      for (const auto& n : nick->second) mark(find_def(n), req);
      continue;
    }
    int def = find_def(name);
    // pytrec_eval spelling; its parameters may hold a '.' ("iprec_at_recall_0.10").
    if (def < 0 && split_name_param(req, &name, &params)) {
      def = find_def(name);
      has_params = true;
    }
    if (def < 0) unknown_measure(req);
    mark(def, req);
    if (has_params) texts[def].push_back(params);
  }
  MeasureSet ms;
  for (size_t def = 0; def < table.size(); ++def) {
    if (!marked[def]) continue;
    MeasureSpec spec = resolve(static_cast<int>(def), texts[def], first_req[def]);
    const MeasureDef& d = table[def];
    if (d.acc == detail::AccKind::kNone) {
      if (spec.name == "runid") ms.has_runid_ = true;
      if (spec.name == "relstring") {
        ms.relstring_ = static_cast<int64_t>(ms.specs_.size());
        ms.relstring_column_ = static_cast<int64_t>(ms.names_.size());
      }
      spec.column = static_cast<int64_t>(ms.names_.size());
      ms.specs_.push_back(std::move(spec));
      continue;
    }
    spec.column = static_cast<int64_t>(ms.names_.size());
    for (const auto& n : spec.names) {
      ms.names_.push_back(n);
      ms.is_integer_.push_back(d.is_integer);
      ms.per_query_printed_.push_back(d.per_query_printed);
    }
    ms.specs_.push_back(std::move(spec));
  }
  return ms;
}

const std::string& MeasureSet::relstring_name() const {
  static const std::string kEmpty;
  return relstring_ >= 0 ? specs_[relstring_].names[0] : kEmpty;
}

int64_t MeasureSet::relstring_length() const {
  // m_relstring.c: (long) params[0], at least 0.
  if (relstring_ < 0) return 0;
  const double v = specs_[relstring_].doubles.empty() ? 0.0 : specs_[relstring_].doubles[0];
  if (!(v > 0)) return 0;
  return v < 9.2e18 ? static_cast<int64_t>(v) : std::numeric_limits<int64_t>::max();
}

}  // namespace metrics
}  // namespace ragkernels
