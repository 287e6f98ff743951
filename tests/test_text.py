"""ragkernels.text against bm25s, PyStemmer and the plain-Python reference."""
import doctest
import json
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ragkernels as rk
from ragkernels.text import Analyzer, tokenize
from tests.reference import data_dir
from tests.reference.text import STOPWORDS_EN, split_ref, tokenize_ref

try:
    import bm25s
    import Stemmer
except ImportError:  # both are in the [test] extra
    bm25s = Stemmer = None

needs_peers = pytest.mark.skipif(bm25s is None, reason="bm25s and PyStemmer not installed (pip install .[test])")
# Exotic characters follow the Unicode database: the tables are exact for the
# Python that generated them, so those tests need the same version here.
same_unicode = pytest.mark.skipif(
    unicodedata.unidata_version != rk.text.UNICODE_VERSION,
    reason=f"tables are Unicode {rk.text.UNICODE_VERSION}, this Python has {unicodedata.unidata_version}")


def english_stem():
    stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord


def assert_same_tokens(got, want, texts):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"text {i}: {texts[i][:200]!r}"


# ---- real data --------------------------------------------------------------

def jsonl_texts(path, fields):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            texts.extend(record[field] for field in fields)
    return texts


def tsv_texts(path):
    # newline="": a stray "\r" stays inside its text, as it is in the file.
    with open(path, encoding="utf-8", newline="") as f:
        return [line.rstrip("\n").split("\t", 1)[1] for line in f if line.strip()]


REAL_SOURCES = {
    "scifact-corpus": ("beir/scifact/corpus.jsonl", lambda p: jsonl_texts(p, ("title", "text"))),
    "scifact-queries": ("beir/scifact/queries.jsonl", lambda p: jsonl_texts(p, ("text",))),
    "cacm-corpus": ("classic/cacm/corpus.jsonl", lambda p: jsonl_texts(p, ("title", "text"))),
    "cacm-queries": ("classic/cacm/queries.jsonl", lambda p: jsonl_texts(p, ("text",))),
    "msmarco-passages": ("msmarco-passage/collection.subset.tsv", tsv_texts),
    "msmarco-dl19": ("msmarco-passage/trec-dl-2019/topics.dl19-passage.tsv", tsv_texts),
    "msmarco-dl20": ("msmarco-passage/trec-dl-2020/topics.dl20.tsv", tsv_texts),
    "msmarco-dev-small": ("msmarco-passage/dev-small/queries.dev.small.tsv", tsv_texts),
}


@pytest.fixture(scope="module")
def real_texts():
    root = data_dir()
    if root is None:
        pytest.skip("shared data folder not found (set RAGKERNELS_DATA)")
    loaded = {}
    for name, (relative, read) in REAL_SOURCES.items():
        path = root / relative
        if not path.is_file():
            pytest.skip(f"{path} missing: see shared/data/MANIFEST.md")
        loaded[name] = read(path)
    return loaded


@needs_peers
@pytest.mark.parametrize("source", list(REAL_SOURCES))
def test_tokenize_matches_bm25s_on_real_data(real_texts, source):
    texts = real_texts[source]
    want = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False,
                          show_progress=False)
    assert_same_tokens(Analyzer().tokenize(texts), want, texts)


@needs_peers
def test_split_matches_bm25s_unstemmed_on_real_data(real_texts):
    texts = [t for source in real_texts.values() for t in source]
    want = bm25s.tokenize(texts, stopwords="en", stemmer=None, return_ids=False, show_progress=False)
    assert_same_tokens(Analyzer(stemmer=None).tokenize(texts), want, texts)


@needs_peers
def test_stem_matches_pystemmer_on_every_real_word(real_texts):
    words = sorted({w for source in real_texts.values() for doc in Analyzer(stemmer=None).tokenize(source)
                    for w in doc})
    got = Analyzer().stem(words)
    want = Stemmer.Stemmer("english").stemWords(words)
    wrong = [(w, g, s) for w, g, s in zip(words, got, want) if g != s]
    assert not wrong, f"{len(wrong)} of {len(words)} words stem differently (word, ours, PyStemmer): {wrong[:20]}"


# ---- edge cases against the reference ---------------------------------------

EDGE_TEXTS = [
    "",
    "the a of and to",                       # only stopwords
    "!!! ... --- ,,, ???",                   # only punctuation
    "a b c d e 1 2 3 _",                     # single characters
    "__init__ _ x_1 snake_case __ a_",       # underscores are word characters
    "in 2019 covid19 ran 42 km 007 3.14",    # digits
    "٣٤ ２３ ²³ ½ ⅔ ⑦ 12ab",                  # Arabic-Indic, fullwidth, superscript, fractions
    "Café NAÏVE résumé Ångström",            # accents, precomposed
    "e\u0301te\u0301 cafe\u0301s",           # combining marks split a word
    "東京は日本の首都です。中文 한국어",       # CJK runs, Hangul
    "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ΑΣ́Σ Α.Σ.Β aΣ ΣΣ Σ\u0345",  # Greek final sigma in context
    "İstanbul İİ ıI",                        # Turkish dotted / dotless i
    "ǅemal ǈubljana ß ẞ ﬁ Kelvin K Ω",      # titlecase, sharp s, ligature, signs
    "👍🏽 hi👋there 👨\u200d👩\u200d👧 a\u200db ab\u200ccd",  # emoji, ZWJ, ZWNJ
    "１２３ ＡＢＣ ｆｕｌｌ",                  # fullwidth letters and digits
    "don't can’t l'amour o'neill",           # apostrophes
    "tab\tnew\nline\r\nnul\x00byte",
    "x" * 1000 + " y",
    "ab\ud800cd \udfffΣ xΣ\ud800 ok",        # lone surrogates (non-word, uncased)
]


@same_unicode
@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("keep_numbers", [True, False])
@pytest.mark.parametrize("stopwords", ["en", None, ["cafe", "ΣΑΣ", "οδος", "x_1", ""]])
def test_split_edge_cases_match_reference(lowercase, keep_numbers, stopwords):
    analyzer = Analyzer(lowercase=lowercase, keep_numbers=keep_numbers, stopwords=stopwords, stemmer=None)
    ref_stopwords = STOPWORDS_EN if stopwords == "en" else stopwords or ()
    want = tokenize_ref(EDGE_TEXTS, lowercase=lowercase, keep_numbers=keep_numbers, stopwords=ref_stopwords)
    assert_same_tokens(analyzer.tokenize(EDGE_TEXTS), want, EDGE_TEXTS)


@needs_peers
@same_unicode
@pytest.mark.parametrize("lowercase", [True, False])
def test_stemmed_edge_cases_match_pystemmer(lowercase):
    want = tokenize_ref(EDGE_TEXTS, stem=english_stem(), lowercase=lowercase)
    assert_same_tokens(Analyzer(lowercase=lowercase).tokenize(EDGE_TEXTS), want, EDGE_TEXTS)


def test_hand_checked_examples():
    analyzer = Analyzer(stemmer=None)
    assert analyzer.tokenize("ΟΔΟΣ ΣΑ") == [["οδος", "σα"]]
    assert analyzer.tokenize("İstanbul") == [["stanbul"]]     # "i" + U+0307, a combining mark
    assert analyzer.tokenize(["", "a"]) == [[], []]
    assert analyzer.tokenize([]) == []
    assert Analyzer(stemmer=None, keep_numbers=False).tokenize("42 ４２ 4a") == [["4a"]]


# Characters that exercise every rule: case mappings (one-to-many, sigma),
# Case_Ignorable marks, digits of several scripts, joiners, surrogates.
TRICKY = list("aAzZ09_ .,:'’-\t\n") + list("ΣσςΑΩİıIßẞǅ") + [
    "\u0301", "\u0345", "\u00ad", "\u200d", "\u200b", "\u00b7", "\u02bc", "\ud800", "\udfff",
    "٣", "２", "²", "½", "東", "👍", "\x00",
]
tricky_text = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=40)


@same_unicode
@settings(max_examples=400, deadline=None)
@given(texts=st.lists(tricky_text, max_size=5), lowercase=st.booleans(), keep_numbers=st.booleans())
def test_split_random_unicode_matches_reference(texts, lowercase, keep_numbers):
    got = Analyzer(lowercase=lowercase, keep_numbers=keep_numbers, stemmer=None).tokenize(texts)
    assert got == tokenize_ref(texts, lowercase=lowercase, keep_numbers=keep_numbers)


@needs_peers
@same_unicode
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(tricky_text, max_size=5))
def test_stemmed_random_unicode_matches_pystemmer(texts):
    assert Analyzer().tokenize(texts) == tokenize_ref(texts, stem=english_stem())


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(tricky_text, max_size=6))
def test_term_ids_number_the_tokens_in_first_seen_order(texts):
    analyzer = Analyzer()
    values, offsets, terms = analyzer.term_ids(texts)
    tokens = analyzer.tokenize(texts)
    expected, _ = rk.select.term_ids(tokens)
    assert values.tolist() == expected.values.tolist() and offsets.tolist() == expected.offsets.tolist()
    assert [[terms[i] for i in values[a:b]] for a, b in zip(offsets[:-1], offsets[1:])] == tokens


# ---- threads, progress, API -------------------------------------------------

def random_documents(n, seed):
    rng = random.Random(seed)
    vocabulary = ["Running", "dogs", "the", "ΟΔΟΣ", "naïve", "42", "x_1", "東京", "generously", "İ", "of"]
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def test_results_do_not_depend_on_thread_count():
    texts = random_documents(5000, seed=7)
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = Analyzer().tokenize(texts)
        rk.set_num_threads(2)
        two = Analyzer().tokenize(texts)
        two_with_progress = Analyzer().tokenize(texts, show_progress=True)
    finally:
        rk.set_num_threads(before)
    assert one == two == two_with_progress
    assert one == [Analyzer().tokenize(t)[0] for t in texts[:50]] + one[50:]


def test_accepts_any_iterable_and_generator_temporaries():
    texts = random_documents(100, seed=3)
    want = Analyzer().tokenize(texts)
    assert Analyzer().tokenize(tuple(texts)) == want
    assert Analyzer().tokenize(t.upper().lower() for t in texts) == want  # items freed as iterated
    assert tokenize(texts) == want

    class Text(str):
        pass

    assert Analyzer().tokenize([Text(t) for t in texts]) == want
    assert Analyzer().tokenize(Text("Ωmega ΟΔΟΣ")) == Analyzer().tokenize("Ωmega ΟΔΟΣ")
    assert tokenize(texts, stemmer=None, show_progress=True) == Analyzer(stemmer=None).tokenize(texts)


def test_stem_and_config():
    analyzer = Analyzer(stopwords=["Foo", "bar"], stemmer=None, lowercase=False, keep_numbers=False)
    assert analyzer.config == {"lowercase": False, "stopwords": ["Foo", "bar"], "stemmer": None,
                               "keep_numbers": False}
    assert analyzer.stem(["running", "Cats"]) == ["running", "Cats"]
    assert Analyzer().config["stopwords"] == list(STOPWORDS_EN)
    assert Analyzer(stopwords=None).config["stopwords"] == []
    assert Analyzer(stopwords="english").config == Analyzer().config
    assert "stemmer='english'" in repr(Analyzer())


@needs_peers
def test_stopword_list_is_bm25s():
    from bm25s.stopwords import STOPWORDS_EN as BM25S_EN
    assert tuple(Analyzer().config["stopwords"]) == tuple(BM25S_EN) == STOPWORDS_EN


@needs_peers
def test_stem_matches_pystemmer_on_words():
    words = ["running", "generously", "ponies", "caresses", "skies", "dying", "news", "", "a", "ωμέγα"]
    assert Analyzer().stem(words) == Stemmer.Stemmer("english").stemWords(words)
    assert Analyzer().stem("running") == ["run"]


def test_docstring_examples():
    result = doctest.testmod(rk.text, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---- errors -----------------------------------------------------------------

@pytest.mark.parametrize("texts,message", [
    (["ok", 3], r"texts\[1\] must be str, got int"),
    ([b"bytes"], r"texts\[0\] must be str, got bytes"),
    (b"bytes", r"not bytes"),
    (5, r"texts must be a str or an iterable of str, got int"),
    (None, r"got NoneType"),
])
def test_tokenize_rejects_non_str(texts, message):
    with pytest.raises(TypeError, match=message):
        Analyzer().tokenize(texts)
    with pytest.raises(TypeError, match=message):
        Analyzer().term_ids(texts)


def test_stem_rejects_non_str():
    with pytest.raises(TypeError, match=r"words\[1\] must be str"):
        Analyzer().stem(["ok", None])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"stopwords": "french"}, ValueError, r"stopwords must be .*got \"french\""),
    ({"stopwords": ["a", 1]}, TypeError, r"stopwords\[1\] must be str, got int"),
    ({"stopwords": 3}, TypeError, r"stopwords must be a str or an iterable of str"),
    ({"stemmer": "porter"}, ValueError, r"stemmer must be \"english\" or None, got \"porter\""),
    ({"stemmer": object()}, TypeError, r"stemmer must be \"english\" or None, got object"),
    ({"lowercase": 1}, TypeError, r"lowercase must be True or False, got int"),
    ({"keep_numbers": None}, TypeError, r"keep_numbers must be True or False, got NoneType"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        Analyzer(**kwargs)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        tokenize("text", stemmer_name="english")
