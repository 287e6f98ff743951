"""ragkernels.hf.listwise: FIRST-style logits and RankGPT-style generation
on a tiny randomly initialised Llama and a byte-level BPE tokenizer built
here, all offline; the windows against the plain-Python loop; the parser."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from ragkernels.hf import ListwiseReranker, parse_permutation  # noqa: E402
from tests.reference import listwise as ref  # noqa: E402

WORDS = ("cat dog fish bird tree river stone cloud paper glass music green quiet rapid north "
         "winter garden silver copper engine signal market museum island forest").split()
CORPUS = [
    "the cat sat on the mat and the dog ran over the hill",
    "Search Query: what do cats eat. Rank the passages above based on their relevance",
    "I will provide you with 10 passages, each indicated by an identifier []. Ranking:",
    " ".join(WORDS),
] * 4
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def build_tokenizer(chat_template=None, eos=True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>",
                                                eos_token="</s>" if eos else None)
    if chat_template:
        fast.chat_template = chat_template
    return fast


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=4096, bos_token_id=0, eos_token_id=1,
                                      pad_token_id=None)
    return transformers.LlamaForCausalLM(config).eval()


def make_passages(n, seed, words=8):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) for _ in range(n)]


def direct_label_logits(model, tokenizer, lw, query, passages, special=True):
    """Label logits of one prompt by a plain forward pass, no padding."""
    ids = tokenizer.encode(lw.prompt(query, passages), add_special_tokens=special)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return np.array(ref.label_scores_ref(logits.float().numpy(), lw.label_token_ids(len(passages))))


def stable_desc(scores):
    return np.array(ref.window_permutation_ref(list(scores)), np.int64)


# ---- FIRST-style logits --------------------------------------------------------------------

def test_label_tokens_are_the_letters(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=10, stride=5)
    assert lw.label_token_ids(10).tolist() == tokenizer.convert_tokens_to_ids(list("ABCDEFGHIJ"))


def test_label_token_follows_the_answer_prefix(model):
    # Sentencepiece-style: "A" alone is the word-initial "▁A", but after "["
    # the model writes the bare "A"; that is the token to read.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(["A B C the cat", "A B C [ x ]"] * 5, trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<s>", "</s>"], show_progress=False))
    sp = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")
    assert sp.convert_ids_to_tokens(sp.encode("A", add_special_tokens=False)) == ["\u2581A"]
    lw = ListwiseReranker(model, sp, window=3, stride=1)
    assert lw.label_token_ids(3).tolist() == sp.convert_tokens_to_ids(["A", "B", "C"])
    # A prefix that merges with a label: the label's own token is used.
    merged = build_tokenizer()
    merged.add_tokens(["[B"])
    lw = ListwiseReranker(model, merged, window=3, stride=1)
    assert lw.label_token_ids(3).tolist() == merged.convert_tokens_to_ids(["A", "B", "C"])


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_logits_order_equals_direct_forward(model, tokenizer, n):
    lw = ListwiseReranker(model, tokenizer, window=10, stride=5)
    passages = make_passages(n, seed=n)
    scores = direct_label_logits(model, tokenizer, lw, "what do cats eat", passages)
    np.testing.assert_allclose(lw.window_scores("what do cats eat", passages), scores, rtol=1e-5, atol=1e-5)
    got = lw.rerank("what do cats eat", passages)
    assert got.dtype == np.int64
    assert got.tolist() == stable_desc(scores).tolist()
    assert sorted(got.tolist()) == list(range(n))


def test_chat_template_prompt_equals_direct_forward(model):
    tok = build_tokenizer(CHAT_TEMPLATE)
    lw = ListwiseReranker(model, tok, window=6, stride=3)
    assert lw.use_chat_template
    passages = make_passages(6, seed=1)
    prompt = lw.prompt("rivers", passages)
    assert prompt.startswith("<|system|>\nYou are RankLLM") and prompt.endswith("<|assistant|>\n[")
    scores = direct_label_logits(model, tok, lw, "rivers", passages, special=False)
    assert lw.rerank("rivers", passages).tolist() == stable_desc(scores).tolist()
    plain = ListwiseReranker(model, tok, window=6, stride=3, use_chat_template=False)
    assert plain.prompt("rivers", passages).endswith("\nRanking: [")


def test_chat_template_without_system_role_folds_it_into_the_user_turn(model):
    strict = ("{% for m in messages %}{% if m['role'] == 'system' %}"
              "{{ raise_exception('no system role') }}{% endif %}"
              "<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}<|assistant|>\n")
    lw = ListwiseReranker(model, build_tokenizer(strict), window=3, stride=1)
    prompt = lw.prompt("q", ["a", "b"])
    assert prompt.startswith("<|user|>\nYou are RankLLM") and "<|system|>" not in prompt


def test_sliding_windows_equal_python_reference_loop(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=10, stride=4, batch_size=4)
    passages = make_passages(37, seed=37)
    query = "forest river island"

    def scorer(items):
        return lw.window_scores(query, [passages[i] for i in items])

    expected = ref.sliding_window_rerank_ref(37, 10, 4, scorer)
    got = lw.rerank(query, passages, window=10, stride=4)
    assert got.tolist() == expected
    assert got.tolist() != list(range(37))  # the windows did move passages


def test_batch_composition_does_not_change_results(model, tokenizer):
    queries = ["cats", "music in winter", "copper engine"]
    lists = [make_passages(37, seed=5), make_passages(5, seed=6, words=20), make_passages(12, seed=7, words=3)]
    alone = ListwiseReranker(model, tokenizer, window=10, stride=4, batch_size=1)
    batched = ListwiseReranker(model, tokenizer, window=10, stride=4, batch_size=3)
    expected = [alone.rerank(q, p) for q, p in zip(queries, lists)]
    got = batched.rerank_batch(queries, lists)
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]
    # Left-padded prompts of different lengths give the scores they give alone.
    windows = [p[:10] for p in lists]
    together = batched.window_scores(queries, windows)
    for q, w, scores in zip(queries, windows, together):
        np.testing.assert_allclose(scores, alone.window_scores(q, w), rtol=1e-4, atol=1e-5)


def test_edge_lists_and_passage_forms(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=4, stride=2)
    assert lw.rerank("q", []).tolist() == []
    assert lw.rerank("q", ["only one"]).tolist() == [0]
    got = lw.rerank_batch(["a", "b"], [[], make_passages(9, seed=2)])
    assert got[0].tolist() == [] and sorted(got[1].tolist()) == list(range(9))
    docs = [{"title": "T", "text": "cat"}, ("", "dog"), "fish"]
    plain = ["T cat", "dog", "fish"]
    assert lw.rerank("pets", docs).tolist() == lw.rerank("pets", plain).tolist()


def test_passages_are_cut_to_max_passage_tokens(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=3, stride=1, max_passage_tokens=3)
    long = "cat dog fish bird tree river stone"
    cut = tokenizer.decode(tokenizer.encode(long, add_special_tokens=False)[:3])
    assert lw.window_scores("q", [long, "cat"]).tolist() == lw.window_scores("q", [cut, "cat"]).tolist()
    uncut = ListwiseReranker(model, tokenizer, window=3, stride=1, max_passage_tokens=None)
    assert long in uncut.prompt("q", [long])


def test_tokenizer_without_pad_token_is_left_unmodified(model):
    tok = build_tokenizer()
    assert tok.pad_token is None
    lw = ListwiseReranker(model, tok, window=5, stride=2, batch_size=2)
    lw.rerank_batch(["a", "b"], [make_passages(5, 1), make_passages(7, 2, words=2)])
    assert tok.pad_token is None
    no_eos = build_tokenizer(eos=False)
    lw = ListwiseReranker(model, no_eos, window=5, stride=2, batch_size=2)
    assert lw._pad_id() == 0 and len(lw.rerank("a", make_passages(6, 3))) == 6


def test_show_progress_runs(model, tokenizer, capsys):
    lw = ListwiseReranker(model, tokenizer, window=4, stride=2)
    lw.rerank("q", make_passages(9, seed=4), show_progress=True)
    assert "window" in capsys.readouterr().err


def test_window_scores_single_and_batched_forms(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=4, stride=2)
    one = lw.window_scores("q", ["a b", "c"])
    assert one.dtype == np.float32 and one.shape == (2,)
    both = lw.window_scores(["q", "r"], [["a b", "c"], ["d", "e", "f"]])
    assert [s.shape for s in both] == [(2,), (3,)]
    np.testing.assert_allclose(both[0], one, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2 queries but 1 windows"):
        lw.window_scores(["q", "r"], [["a"]])


# ---- generation ----------------------------------------------------------------------------

def test_generate_variant_end_to_end_with_repair(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=6, stride=3, method="generate")
    passages = make_passages(6, seed=9)
    text = lw.generate("cats", passages)
    assert text.startswith("[")
    expected = parse_permutation(text, lw.labels[:6], repair=True)
    got = lw.rerank("cats", passages, repair=True)
    assert got.tolist() == expected.tolist()
    # Strict mode raises exactly when the parser refuses the same answer.
    try:
        strict = parse_permutation(text, lw.labels[:6])
    except ValueError:
        with pytest.raises(ValueError, match="parse_permutation"):
            lw.rerank("cats", passages)
    else:
        assert lw.rerank("cats", passages).tolist() == strict.tolist()
    # A longer list through the windows, in a batch with another query.
    lists = [make_passages(13, seed=10), make_passages(4, seed=11)]
    out = lw.rerank_batch(["a", "b"], lists, repair=True)
    assert [sorted(o.tolist()) for o in out] == [list(range(13)), list(range(4))]


def test_generate_and_logits_take_the_same_prompt(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=5, stride=2)
    passages = make_passages(5, seed=12)
    gen = lw.rerank("q", passages, method="generate", repair=True)
    logits = lw.rerank("q", passages, method="logits")
    assert sorted(gen.tolist()) == sorted(logits.tolist()) == list(range(5))


# ---- parser --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,labels,expected", [
    ("[2] > [1] > [3]", ["1", "2", "3"], [1, 0, 2]),
    ("  [2]>[3] >[1]\n", ["1", "2", "3"], [1, 2, 0]),
    ("B > C > A", "ABC", [1, 2, 0]),
    ("[ B ] > [C] > A", "ABC", [1, 2, 0]),
    ("[10] > [9] > [1] > [2] > [3] > [4] > [5] > [6] > [7] > [8]",
     [str(i) for i in range(1, 11)], [9, 8, 0, 1, 2, 3, 4, 5, 6, 7]),
    ("[A]", "A", [0]),
])
def test_parse_permutation_strict(text, labels, expected):
    got = parse_permutation(text, labels)
    assert got.dtype == np.int64 and got.tolist() == expected


@pytest.mark.parametrize("text,match", [
    ("", "no labels in the output ''"),
    ("I cannot rank these passages.", "no labels in the output"),
    ("[B] > [D] > [A] > [C]", r"unknown label 'D' \(item 1\)"),
    ("[B] > [A] > [B]", r"label 'B' repeats \(items 0 and 2\)"),
    ("[B] > [A]", r"labels \['C'\] are missing"),
    ("[B] > > [A] > [C]", r"unknown label '' \(item 1\)"),
    ("[B] > [A] > [C] because B mentions cats", "unknown label"),
])
def test_parse_permutation_strict_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_permutation(text, "ABC")


@pytest.mark.parametrize("text,expected", [
    ("", [0, 1, 2, 3]),
    ("junk", [0, 1, 2, 3]),
    ("[C] > [C] > [A]", [2, 0, 1, 3]),
    ("The ranking is [D] > [Z] > [B]", [3, 1, 0, 2]),
    ("[B] > [A] > [C] > [D] > [B]", [1, 0, 2, 3]),
])
def test_parse_permutation_repair(text, expected):
    assert parse_permutation(text, "ABCD", repair=True).tolist() == expected


def test_parse_permutation_repair_is_rankgpts_on_numeric_labels():
    rng = np.random.default_rng(31)
    pieces = ["[", "]", " > ", ">", " ", "\n", "passage", "is", "best", ", ", "[0]", "[99]"]
    for _ in range(500):
        n = int(rng.integers(1, 21))
        parts = [pieces[i] if i < len(pieces) else f"[{int(rng.integers(1, n + 3))}]"
                 for i in rng.integers(0, len(pieces) + 8, size=int(rng.integers(0, 30)))]
        text = "".join(parts)
        labels = [str(i) for i in range(1, n + 1)]
        assert parse_permutation(text, labels, repair=True).tolist() == \
            ref.rankgpt_receive_permutation_ref(text, n), text


# ---- bad input -----------------------------------------------------------------------------

def test_rejects_models_without_causal_lm_head(tokenizer):
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16)
    for model in (transformers.BertModel(config), transformers.BertForMaskedLM(config)):
        with pytest.raises(TypeError, match="causal_lm must be a causal language model"):
            ListwiseReranker(model, tokenizer)
    with pytest.raises(TypeError, match="causal_lm"):
        ListwiseReranker(object(), tokenizer)


def test_rejects_bad_labels_and_options(model, tokenizer):
    with pytest.raises(ValueError, match="label 'ABC' encodes to .* tokens"):
        ListwiseReranker(model, tokenizer, labels=["A", "ABC", "B"], window=3, stride=1)
    # Generation does not need single-token labels.
    ListwiseReranker(model, tokenizer, labels=["A", "ABC", "B"], window=3, stride=1, method="generate")
    with pytest.raises(ValueError, match="window 5 exceeds the 3 labels"):
        ListwiseReranker(model, tokenizer, labels="XYZ", window=5, stride=1)
    lw = ListwiseReranker(model, tokenizer, labels="XYZ", window=3, stride=1)
    with pytest.raises(ValueError, match="window 4 exceeds the 3 labels"):
        lw.rerank("q", ["a"] * 6, window=4, stride=1)
    with pytest.raises(ValueError, match="must be a non-empty alphanumeric str"):
        ListwiseReranker(model, tokenizer, labels=["A", "[B]"], window=2, stride=1)
    with pytest.raises(ValueError, match="distinct"):
        ListwiseReranker(model, tokenizer, labels=["A", "A"], window=2, stride=1)
    with pytest.raises(ValueError, match="stride \\(5\\) must be <= window \\(4\\)"):
        ListwiseReranker(model, tokenizer, window=4, stride=5)
    for option in ({"window": 0}, {"batch_size": 0}, {"max_passage_tokens": 0}, {"stride": 1.5}):
        with pytest.raises(ValueError, match=f"{list(option)[0]} must be an int >= 1"):
            ListwiseReranker(model, tokenizer, **option)
    with pytest.raises(ValueError, match="method must be one of"):
        ListwiseReranker(model, tokenizer, method="beam")
    with pytest.raises(ValueError, match="no chat template"):
        ListwiseReranker(model, tokenizer, use_chat_template=True)


def test_labels_sharing_a_token_are_refused(model):
    uncased = build_tokenizer()
    uncased.backend_tokenizer.normalizer = tokenizers.normalizers.Lowercase()
    with pytest.raises(ValueError, match="labels 'A' and 'a' encode to the same token"):
        ListwiseReranker(model, uncased, labels=["A", "a"], window=2, stride=1)


def test_rejects_bad_queries_and_passages(model, tokenizer):
    lw = ListwiseReranker(model, tokenizer, window=4, stride=2)
    with pytest.raises(TypeError, match=r"passages\[0\] must be a sequence of passages"):
        lw.rerank("q", "not a list")
    with pytest.raises(TypeError, match=r"passages\[0\]\[1\] must be str"):
        lw.rerank("q", ["a", 3])
    with pytest.raises(TypeError, match=r"queries\[0\] must be str"):
        lw.rerank_batch([1], [["a"]])
    with pytest.raises(ValueError, match="2 queries but 1 passage lists"):
        lw.rerank_batch(["a", "b"], [["a"]])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_inputs_follow_the_model_to_cuda(model, tokenizer):
    import copy

    cpu = ListwiseReranker(model, tokenizer, window=10, stride=4)
    gpu = ListwiseReranker(copy.deepcopy(model).to("cuda"), tokenizer, window=10, stride=4)
    assert gpu.device.type == "cuda"
    passages = make_passages(23, seed=41)
    np.testing.assert_allclose(gpu.window_scores("q", passages[:10]), cpu.window_scores("q", passages[:10]),
                               rtol=1e-3, atol=1e-3)
    assert sorted(gpu.rerank("q", passages).tolist()) == list(range(23))
    gen = gpu.rerank("q", passages[:6], method="generate", repair=True)
    assert sorted(gen.tolist()) == list(range(6))
