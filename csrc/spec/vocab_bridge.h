// Cross-vocabulary drafting (issue 15; the idea of OmniDraft, Ramakrishnan
// et al., arXiv 2507.02659): a drafter that works in one tokenizer's ids
// proposes for a target model with another, through the bytes both spell.
//
// Both vocabularies are given as the byte string of every token id (an empty
// string: a token never produced by the mapping, e.g. a special token). Text
// crosses from one vocabulary to the other by greedy longest match over a
// byte trie of the receiving vocabulary: exact bytes, O(bytes) per mapping
// with a hash probe per byte, no model and no Python. Greedy matching is not
// always the tokenization the tokenizer itself would produce (BPE merges in
// its own order); drafts only need to be likely, since verification decides
// what is kept, so a rare mismatch costs an accepted token, never
// correctness.
//
// A session follows one request. The target's accepted text is committed to
// the drafter's sequence up to the last word start (the last whitespace
// byte, where both tokenizers split their pre-tokens alike), so the drafter
// sees each word tokenized whole; the bytes after it stay pending (at most
// kMaxPending: past that, 8 bytes are kept, cut at a UTF-8 character start). A
// drafter tree continues the committed text: a path is kept where its bytes
// agree with the pending ones, and what goes past them is matched into
// target tokens, which form the target tree (module docs/spec.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spec/prompt_lookup.h"
#include "spec/token_tree.h"

namespace ragkernels::spec {

// A vocabulary's byte strings and a trie over them.
class ByteVocab {
 public:
  // pieces[i]: the bytes of token i. Of several ids with the same bytes the
  // lowest is matched.
  explicit ByteVocab(std::vector<std::string> pieces);

  int64_t size() const { return static_cast<int64_t>(pieces_.size()); }
  const std::string& bytes(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }

  // The longest token spelling a prefix of `text`: its id (-1 when none) and
  // length; `open` is true when the trie walk was stopped by the end of
  // `text` (more bytes might have made a longer token).
  struct Match {
    int32_t id = -1;
    int64_t length = 0;
    bool open = false;
  };
  Match longest(std::string_view text) const;

  // Greedy longest-match tokens of `text`. kCommit (text that is final):
  // bytes no token spells are skipped. kDraft (text cut at an arbitrary
  // point): the tokens stop at such a byte, and a last token whose match was
  // cut by the end of the text is left out. `ends`, when given, receives
  // each token's end offset in `text`.
  enum class Mode { kCommit, kDraft };
  std::vector<int32_t> encode(std::string_view text, Mode mode, std::vector<int64_t>* ends = nullptr) const;

  // The bytes of a token sequence (ids must be in range).
  std::string decode(const int32_t* ids, int64_t n) const;

  size_t memory_bytes() const;

 private:
  std::vector<std::string> pieces_;
  detail::EdgeMap edges_;                 // (trie node, byte) -> child node
  std::vector<int32_t> node_token_;       // the token ending at a node, or -1
  std::vector<uint8_t> node_has_child_;
};

class VocabBridge {
 public:
  VocabBridge(ByteVocab drafter, ByteVocab target) : drafter_(std::move(drafter)), target_(std::move(target)) {}
  const ByteVocab& drafter() const { return drafter_; }
  const ByteVocab& target() const { return target_; }

 private:
  ByteVocab drafter_, target_;
};

class BridgeSession {
 public:
  static constexpr int64_t kMaxPending = 16;

  explicit BridgeSession(std::shared_ptr<const VocabBridge> bridge) : bridge_(std::move(bridge)) {}

  // Appends accepted target tokens (ids checked by the caller) and returns
  // the drafter tokens newly committed, for the drafter's session.
  std::vector<int32_t> extend(const int32_t* target_ids, int64_t n);

  // Commits every pending byte (at the end of the request) and returns the
  // drafter tokens.
  std::vector<int32_t> flush();

  // The target tree of a drafter tree rooted at the last committed drafter
  // token: rooted at the last target token, at most max_nodes nodes (the
  // best-weighted, as merge_trees keeps them). Each target node's weight is
  // that of the deepest drafter node its bytes need. Requires a non-empty
  // target sequence.
  TokenTree map(const TokenTree& drafter_tree, int64_t max_nodes) const;

  int64_t size() const { return num_target_; }
  int64_t num_committed() const { return num_committed_; }  // drafter tokens handed out
  const std::string& pending() const { return pending_; }

 private:
  std::shared_ptr<const VocabBridge> bridge_;
  std::string pending_;  // target bytes after the committed text
  int32_t last_target_ = -1;
  int64_t num_target_ = 0;
  int64_t num_committed_ = 0;
};

}  // namespace ragkernels::spec
