"""rk.hf.TrieConstraint (issue 16) on tiny random models built from configs:
greedy and beam search equal transformers' prefix_allowed_tokens_fn with a
plain Python trie, sampling and speculative decoding never leave the trie,
and bad input."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ragkernels as rk  # noqa: E402
from ragkernels.hf import TrieConstraint  # noqa: E402

VOCAB, EOS, PAD = 64, 3, 0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(kind):
    torch.manual_seed(2)
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, bos_token_id=None,
                                          eos_token_id=EOS, pad_token_id=PAD)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, bos_token_id=None,
                                         eos_token_id=EOS, pad_token_id=PAD)
        model = transformers.GPT2LMHeadModel(config)
    model.config._attn_implementation = "sdpa"
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = PAD
    return model.eval()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request):
    return make_model(request.param)


SEQUENCES = [[10, 11, 12], [10, 11, 13, 14], [10, 20], [30], [30, 31, 32, 33, 34], [40, 41, 12, 12]]


class PythonTrie:
    """The baseline: a dict trie behind prefix_allowed_tokens_fn."""

    def __init__(self, sequences, prompt_length):
        self.root, self.prompt_length = {}, prompt_length
        for seq in sequences:
            node = self.root
            for t in seq:
                node = node.setdefault(t, {})
            node[None] = True  # terminal

    def __call__(self, batch_id, input_ids):
        node = self.root
        for t in input_ids[self.prompt_length:].tolist():
            node = node.get(t) if node is not None else None
        if node is None:
            return [EOS]
        allowed = [t for t in node if t is not None]
        return allowed + [EOS] if None in node else allowed


def generated(out, prompt_length):
    rows = []
    for row in out[:, prompt_length:].tolist():
        rows.append(row[:row.index(EOS)] if EOS in row else row)
    return rows


@pytest.mark.parametrize("num_beams", [1, 4])
def test_equals_prefix_allowed_tokens_fn(model, num_beams):
    trie = rk.spec.Trie.build(SEQUENCES, vocab_size=VOCAB)
    rng = np.random.default_rng(0)
    for _ in range(4):
        ids = torch.tensor([rng.integers(4, VOCAB, 6).tolist()])
        kwargs = dict(do_sample=False, num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=8)
        ours = model.generate(ids, logits_processor=[TrieConstraint(trie, eos_token_id=EOS)], **kwargs)
        theirs = model.generate(ids, prefix_allowed_tokens_fn=PythonTrie(SEQUENCES, ids.shape[1]), **kwargs)
        assert torch.equal(ours, theirs)
        for row in generated(ours, ids.shape[1]):
            assert row in SEQUENCES


def test_sampling_never_leaves_the_trie(model):
    trie = rk.spec.Trie.build(SEQUENCES, vocab_size=VOCAB)
    ids = torch.tensor([[5, 6, 7, 8], [9, 8, 7, 6]])
    seen = set()
    for seed in range(15):
        torch.manual_seed(seed)
        out = model.generate(ids, do_sample=True, max_new_tokens=8,
                             logits_processor=[TrieConstraint(trie, eos_token_id=EOS)])
        for row in generated(out, ids.shape[1]):
            assert row in SEQUENCES
            seen.add(tuple(row))
    assert len(seen) >= 3  # sampling does explore the allowed set


def test_speculative_decoding_keeps_to_the_trie(model):
    """The processor runs on every drafted node's path: drafts leave the trie
    only to be cut, and the output equals constrained greedy decoding."""
    trie = rk.spec.Trie.build(SEQUENCES, vocab_size=VOCAB)
    for prompt in ([10, 11, 13, 14, 30, 31], [40, 41, 12, 12, 5, 10]):
        ids = torch.tensor([prompt])
        want = model.generate(ids, do_sample=False, max_new_tokens=8,
                              logits_processor=[TrieConstraint(trie, eos_token_id=EOS)])
        out = rk.hf.speculative_generate(model, ids, rk.spec.PromptLookupDrafter(min_match=1), max_new_tokens=8,
                                         draft=4, logits_processor=[TrieConstraint(trie, eos_token_id=EOS)])
        assert torch.equal(out.sequences[:, :want.shape[1]], want)
        assert generated(out.sequences, ids.shape[1])[0] in SEQUENCES


def test_bad_input():
    trie = rk.spec.Trie.build(SEQUENCES, vocab_size=VOCAB)
    with pytest.raises(TypeError, match="ragkernels.spec.Trie"):
        TrieConstraint(SEQUENCES)
    with pytest.raises(ValueError, match="eos_token_id"):
        TrieConstraint(trie, eos_token_id=-1)
    ids = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="logits have 32 columns but the trie's vocabulary has 64"):
        TrieConstraint(trie, eos_token_id=EOS)(ids, torch.zeros(1, 32))
    with pytest.raises(ValueError, match="eos_token_id 70 is outside the 64 logits"):
        TrieConstraint(trie, eos_token_id=70)(ids, torch.zeros(1, 64))


def test_without_eos_an_ended_row_is_left_alone():
    trie = rk.spec.Trie.build([[5], [6, 7]], vocab_size=8)
    processor = TrieConstraint(trie, prompt_length=1)
    scores = processor(torch.tensor([[1, 5], [1, 4], [1, 6]]), torch.zeros(3, 8))
    assert not torch.isinf(scores[0]).any() and not torch.isinf(scores[1]).any()  # at a leaf; off the trie
    assert torch.isinf(scores[2]).sum() == 7 and scores[2, 7] == 0  # inside: only 7


def test_a_long_unseen_prefix_is_stepped_without_recursion():
    """prompt_length=0 under a 5,000-token prompt: 5,000 steps on the first call."""
    trie = rk.spec.Trie.build([[5, 6]], vocab_size=8)
    processor = TrieConstraint(trie, eos_token_id=EOS, prompt_length=0)
    scores = processor(torch.full((1, 5000), 7), torch.zeros(1, 8))
    assert torch.isinf(scores[0]).sum() == 7 and scores[0, EOS] == 0  # off the trie: only EOS


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_padded_logits_in_every_dtype_and_the_input_left_alone(dtype):
    """A model whose logits are wider than the tokenizer (padded columns are
    never allowed; a token there leaves the trie), in the dtypes models run in."""
    trie = rk.spec.Trie.build([[5, 6], [5, 7]], vocab_size=8)
    processor = TrieConstraint(trie, eos_token_id=EOS, prompt_length=1)
    scores = torch.randn(3, 12).to(dtype)
    before = scores.clone()
    out = processor(torch.tensor([[1, 5], [1, 10], [1, 0]]), scores)
    assert torch.equal(scores, before) and out.dtype == dtype
    allowed = [torch.isfinite(row).nonzero().flatten().tolist() for row in out]
    assert allowed == [[6, 7], [EOS], [EOS]]  # inside; off through a padded column; off
    assert torch.equal(out[0, 6:8], scores[0, 6:8])
