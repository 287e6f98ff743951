// Persistence of TermMatchIndex: kind "term-match-index" (docs/formats.md).
#include <cmath>

#include "core/error.h"
#include "core/file_format.h"
#include "rerank/term_match.h"

namespace ragkernels::rerank {

namespace {

constexpr const char* kKind = "term-match-index";
constexpr int64_t kVersion = 1;  // of the sections below, independent of the container's version

// meta: [version, num_docs, num_postings, vocab_size]
constexpr int64_t kMetaSize = 4;

// The checks that keep every access inside the arrays: sizes and offsets.
void check_layout(const std::string& path, const format::MappedFile& file, const ConstView1<int64_t>& meta) {
  RK_CHECK_FORMAT(meta.size == kMetaSize, path, ": section 'meta' must hold ", kMetaSize, " int64, got ", meta.size);
  RK_CHECK_FORMAT(meta[0] == kVersion, path, ": term-match index version ", meta[0], "; this ragkernels reads version ",
                  kVersion, " (upgrade ragkernels)");
  const int64_t num_docs = meta[1], num_postings = meta[2], vocab_size = meta[3];
  RK_CHECK_FORMAT(num_docs >= 0 && num_postings >= 0 && vocab_size >= 0 &&
                      static_cast<uint64_t>(vocab_size) <= TermMatchIndex::kMaxVocabSize,
                  path, ": bad meta (num_docs ", num_docs, ", num_postings ", num_postings, ", vocab_size ",
                  vocab_size, ")");
  const auto offsets = file.array<int64_t>("offsets");
  RK_CHECK_FORMAT(offsets.size == num_docs + 1, path, ": section 'offsets' must hold num_docs + 1 = ", num_docs + 1,
                  " entries, got ", offsets.size);
  RK_CHECK_FORMAT(file.array<uint32_t>("terms").size == num_postings &&
                      file.array<float>("weights").size == num_postings,
                  path, ": sections 'terms' and 'weights' must hold num_postings = ", num_postings, " entries");
  RK_CHECK_FORMAT(offsets[0] == 0 && offsets[num_docs] == num_postings, path,
                  ": offsets must run from 0 to num_postings = ", num_postings);
  for (int64_t d = 0; d < num_docs; ++d) {
    RK_CHECK_FORMAT(offsets[d + 1] >= offsets[d], path, ": offsets decrease at document ", d);
  }
}

// The checks that keep scores right: terms ascend within a document and lie
// below vocab_size; weights are finite. They read every posting.
void check_postings(const std::string& path, const TermMatchIndex& index) {
  const int64_t* offsets = index.offsets();
  for (int64_t d = 0; d < index.num_docs(); ++d) {
    for (int64_t i = offsets[d]; i < offsets[d + 1]; ++i) {
      RK_CHECK_FORMAT(i == offsets[d] || index.terms()[i] > index.terms()[i - 1], path, ": the terms of document ",
                      d, " do not ascend strictly");
      RK_CHECK_FORMAT(index.terms()[i] < index.vocab_size(), path, ": document ", d, " holds term ",
                      index.terms()[i], " >= vocab_size = ", index.vocab_size());
      RK_CHECK_FORMAT(std::isfinite(index.weights()[i]), path, ": document ", d, " has a weight that is not finite");
    }
  }
}

}  // namespace

void TermMatchIndex::save(const std::string& path) const {
  const int64_t meta[kMetaSize] = {kVersion, num_docs_, num_postings_, static_cast<int64_t>(vocab_size_)};
  const auto postings = static_cast<uint64_t>(num_postings_);
  format::write_file(path, kKind,
                     {{"meta", format::DType::i64, meta, sizeof(meta)},
                      {"offsets", format::DType::i64, offsets_, static_cast<uint64_t>(num_docs_ + 1) * 8},
                      {"terms", format::DType::u32, postings ? terms_ : nullptr, postings * 4},
                      {"weights", format::DType::f32, postings ? weights_ : nullptr, postings * 4}});
}

std::shared_ptr<TermMatchIndex> TermMatchIndex::load(const std::string& path, bool verify) {
  std::shared_ptr<format::MappedFile> file = format::MappedFile::open(path, kKind, verify);
  const auto meta = file->array<int64_t>("meta");
  check_layout(path, *file, meta);
  std::shared_ptr<TermMatchIndex> index(new TermMatchIndex());
  index->offsets_ = file->array<int64_t>("offsets").data;
  index->terms_ = file->array<uint32_t>("terms").data;
  index->weights_ = file->array<float>("weights").data;
  index->num_docs_ = meta[1];
  index->num_postings_ = meta[2];
  index->vocab_size_ = static_cast<uint64_t>(meta[3]);
  index->file_ = std::move(file);
  if (verify) check_postings(path, *index);
  return index;
}

}  // namespace ragkernels::rerank
