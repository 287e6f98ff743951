#include "sparse/posting_cursor.h"

namespace ragkernels::sparse {

void PostingCursor::open(const PostingArrays& index, uint32_t term) {
  index_ = &index;
  first_block_ = index.term_first_block[term];
  end_block_ = index.term_first_block[term + 1];
  shallow_ = first_block_;
  df_ = index.term_df[term];
  term_first_posting_ = index.term_first_posting ? index.term_first_posting[term] : 0;
  if (first_block_ == end_block_) {
    doc_ = kEndDoc;
    return;
  }
  decode_block(first_block_);
}

void PostingCursor::decode_block(uint64_t block) {
  block_ = block;
  const uint64_t index_in_term = block - first_block_;
  const uint64_t before = index_in_term * kBlockSize;
  block_size_ = static_cast<uint32_t>(df_ - before < kBlockSize ? df_ - before : kBlockSize);
  const uint8_t* bytes = index_->data + index_->block_offset[block];
  const uint32_t gap_width = bytes[0];
  value_width_ = bytes[1];
  unpack(bytes + 2, block_size_, gap_width, docs_);
  values_bytes_ = bytes + 2 + packed_bytes(block_size_, gap_width);
  if (index_->posting_scores != nullptr) scores_ = index_->posting_scores + term_first_posting_ + before;
  values_decoded_ = false;
  // Gaps are d[i] - d[i-1] - 1; the first is relative to the previous block.
  uint32_t doc = block == first_block_ ? docs_[0] : index_->block_last_doc[block - 1] + 1 + docs_[0];
  docs_[0] = doc;
  for (uint32_t i = 1; i < block_size_; ++i) {
    doc += docs_[i] + 1;
    docs_[i] = doc;
  }
  pos_ = 0;
  doc_ = docs_[0];
}

void PostingCursor::decode_values() {
  unpack(values_bytes_, block_size_, value_width_, values_);
  for (uint32_t i = 0; i < block_size_; ++i) values_[i] += 1;
  values_decoded_ = true;
}

void PostingCursor::next_geq(uint32_t target) {
  if (doc_ >= target) return;
  if (index_->block_last_doc[block_] < target) {
    uint64_t block = block_ + 1;
    while (block < end_block_ && index_->block_last_doc[block] < target) ++block;
    if (block == end_block_) {
      doc_ = kEndDoc;
      return;
    }
    decode_block(block);
  }
  while (docs_[pos_] < target) ++pos_;  // the block's last doc is >= target
  doc_ = docs_[pos_];
}

float PostingCursor::block_max_at(uint32_t target) {
  if (shallow_ < block_) shallow_ = block_;
  while (shallow_ < end_block_ && index_->block_last_doc[shallow_] < target) ++shallow_;
  return shallow_ < end_block_ ? index_->block_max[shallow_] : 0.0f;
}

}  // namespace ragkernels::sparse
