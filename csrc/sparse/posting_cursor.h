// Posting lists in blocks, and the cursor every query algorithm walks them with.
//
// Each term's postings (doc ids ascending, one value each: a term frequency or
// a quantized impact, always >= 1) are cut into blocks of kBlockSize. Per block
// the index keeps its last doc id, its byte offset and the largest base score
// of its postings (the block max of Block-Max WAND). A block's bytes are
//   [u8 gap width][u8 value width][packed gaps][packed values - 1]
// with gaps and widths as described in block_codec.h.
#pragma once

#include <cstdint>
#include <limits>

#include "sparse/block_codec.h"

namespace ragkernels::sparse {

inline constexpr uint32_t kEndDoc = std::numeric_limits<uint32_t>::max();

// Non-owning views of an index's posting arrays (owned vectors after a build,
// or sections of an mmapped file after a load), plus the base score of every
// posting, which the index computes once when it is built or loaded.
struct PostingArrays {
  const uint64_t* term_first_block = nullptr;  // [num_terms + 1]
  const uint32_t* term_df = nullptr;           // [num_terms]
  const float* term_max = nullptr;             // [num_terms] largest base score
  const uint32_t* block_last_doc = nullptr;    // [num_blocks]
  const float* block_max = nullptr;            // [num_blocks]
  const uint64_t* block_offset = nullptr;      // [num_blocks] into data
  const uint8_t* data = nullptr;               // packed blocks + kReadPadding
  const uint64_t* term_first_posting = nullptr;  // [num_terms + 1]
  const float* posting_scores = nullptr;       // term-major, in doc order
  uint64_t num_terms = 0;
  uint64_t num_blocks = 0;
};

// A forward-only cursor over one term's postings. doc() is kEndDoc once the
// list is exhausted. value() decodes the block's values on first use; score()
// reads the precomputed base score.
class PostingCursor {
 public:
  void open(const PostingArrays& index, uint32_t term);

  uint32_t doc() const { return doc_; }
  uint32_t size() const { return df_; }  // postings in the whole list
  uint32_t value() {
    if (!values_decoded_) decode_values();
    return values_[pos_];
  }
  float score() const { return scores_[pos_]; }
  void next() {
    if (++pos_ < block_size_) {
      doc_ = docs_[pos_];
    } else if (block_ + 1 < end_block_) {
      decode_block(block_ + 1);
    } else {
      doc_ = kEndDoc;
    }
  }
  // Calls visit(doc, score) for every posting from here with doc < limit,
  // block by block (faster than next()); leaves the cursor at the first doc
  // >= limit. limit = kEndDoc visits the rest of the list.
  template <typename Visit>
  void for_each_below(uint32_t limit, Visit&& visit) {
    while (doc_ < limit) {
      uint32_t i = pos_;
      for (; i < block_size_ && docs_[i] < limit; ++i) visit(docs_[i], scores_[i]);
      if (i < block_size_) {
        pos_ = i;
        doc_ = docs_[i];
        return;
      }
      if (block_ + 1 == end_block_) {
        doc_ = kEndDoc;
        return;
      }
      decode_block(block_ + 1);
    }
  }

  // Moves to the first posting with doc >= target (never backwards).
  void next_geq(uint32_t target);

  // The block max of the block that holds `target` if present (the first
  // block whose last doc is >= target), without decoding it; 0 past the end.
  // Moves a separate shallow pointer, never backwards.
  float block_max_at(uint32_t target);
  // Last doc of the block block_max_at() stopped at (kEndDoc past the end).
  uint32_t shallow_last_doc() const {
    return shallow_ < end_block_ ? index_->block_last_doc[shallow_] : kEndDoc;
  }

 private:
  void decode_block(uint64_t block);
  void decode_values();

  const PostingArrays* index_ = nullptr;
  uint64_t first_block_ = 0, end_block_ = 0, block_ = 0, shallow_ = 0, term_first_posting_ = 0;
  uint32_t df_ = 0, block_size_ = 0, pos_ = 0, doc_ = kEndDoc;
  bool values_decoded_ = false;
  const float* scores_ = nullptr;  // of the current block
  const uint8_t* values_bytes_ = nullptr;
  uint32_t value_width_ = 0;
  uint32_t docs_[kBlockSize];
  uint32_t values_[kBlockSize];
};

}  // namespace ragkernels::sparse
