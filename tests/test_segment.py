"""ragkernels.text.split_sentences against the plain-Python reference."""
import json
import random
import unicodedata

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.text import SentenceSpans, split_sentences
from tests.reference import data_dir
from tests.reference.segment import (BULLETS, CASED_PREFIX, CLOSERS, FINAL_ABBREVIATIONS, NO_BREAK_BEFORE,
                                     OPENERS, PREFIX_ABBREVIATIONS, ROMAN, TERMINALS, WHITESPACE,
                                     split_sentences_ref)

# Case and digit tests follow the Unicode database of the C++ tables.
same_unicode = pytest.mark.skipif(
    unicodedata.unidata_version != rk.text.UNICODE_VERSION,
    reason=f"tables are Unicode {rk.text.UNICODE_VERSION}, this Python has {unicodedata.unidata_version}")


def sentences(text):
    return [text[a:b] for a, b in split_sentences(text).tolist()]


def assert_matches_reference(texts):
    batch = split_sentences(texts)
    for i, text in enumerate(texts):
        assert [tuple(s) for s in batch.of(i).tolist()] == split_sentences_ref(text), repr(text[:300])


# ---- the rules, by example ---------------------------------------------------

@pytest.mark.parametrize("text,want", [
    ("", []),
    ("   \n\t ", []),
    ("One sentence without a final period", ["One sentence without a final period"]),
    ("  Padded.  Both ends.  ", ["Padded.", "Both ends."]),
    # abbreviations: prefix ones never end a sentence
    ("See Fig. 2 and Dr. Smith, e.g. The one vs. Another.", ["See Fig. 2 and Dr. Smith, e.g. The one vs. Another."]),
    ("No. 5 is here. Eq. 3 holds.", ["No. 5 is here.", "Eq. 3 holds."]),
    ("It was approx. 5 mm, cf. Ref. 12.", ["It was approx. 5 mm, cf. Ref. 12."]),
    # two uppercase letters are an acronym, not a title
    ("A model of MS. It works.", ["A model of MS.", "It works."]),
    # final ones end a sentence only before an uppercase letter
    ("Made in the U.S. The rest was not.", ["Made in the U.S.", "The rest was not."]),
    ("Smith et al. (2005) showed it. Jones et al. Then more.", ["Smith et al. (2005) showed it.", "Jones et al.",
                                                              "Then more."]),
    ("Cats, dogs, etc. are pets.", ["Cats, dogs, etc. are pets."]),
    # initials
    ("J. R. R. Tolkien wrote it. A. B. Smith read it.", ["J. R. R. Tolkien wrote it.", "A. B. Smith read it."]),
    # ... the price: a single letter never ends a sentence
    ("We gave vitamin D. The levels rose.", ["We gave vitamin D. The levels rose."]),
    ("Grown in E. coli cells.", ["Grown in E. coli cells."]),
    # numbers and decimals never break without a space
    ("It rose 3.5 to 1,000.2 units (p < 0.05). Version 1.2.3 won.", ["It rose 3.5 to 1,000.2 units (p < 0.05).",
                                                                     "Version 1.2.3 won."]),
    ("In 1995. 2000 people came.", ["In 1995.", "2000 people came."]),
    # ellipses
    ("He paused... Then he spoke... and stopped.", ["He paused...", "Then he spoke... and stopped."]),
    ("Count 1 ... 5 now… Next.", ["Count 1 ... 5 now…", "Next."]),
    ("Contents . . . . . 12", ["Contents . . . . .", "12"]),  # leaders stay together
    # quotes and brackets close the sentence they end
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("It grew (see Fig. 2.) The end.", ["It grew (see Fig. 2.)", "The end."]),
    ("It grew (see Fig. 2.) and then shrank.", ["It grew (see Fig. 2.) and then shrank."]),
    ('A "lethal tumor. " Here we go.', ['A "lethal tumor. "', "Here we go."]),
    ("He asked 'why?' She left.", ["He asked 'why?'", "She left."]),
    ("«Non.» Puis “Yes!” ‘Ok.’ Done", ["«Non.»", "Puis “Yes!”", "‘Ok.’", "Done"]),
    # lowercase starts: symbols start sentences, words continue them
    ("Mice were injected i.p. injection was daily. p53 rose. mRNA fell. β-catenin too.",
     ["Mice were injected i.p. injection was daily.", "p53 rose.", "mRNA fell.", "β-catenin too."]),
    ("Really? yes. Wow! Ok?! Fine", ["Really? yes.", "Wow!", "Ok?!", "Fine"]),
    # line breaks
    ("A line\nwrapped here. Next.", ["A line\nwrapped here.", "Next."]),
    ("Heading\n\nBody text", ["Heading", "Body text"]),
    ("Items:\n- first\n- second\n2. third\n(b) fourth\niv) fifth", ["Items:", "- first", "- second", "2. third",
                                                                   "(b) fourth", "iv) fifth"]),
    ("Windows\r\nline\r\n\r\nNew para", ["Windows\r\nline", "New para"]),
    ("Para\u2029Next", ["Para", "Next"]),
    # unicode punctuation
    ("東京は日本の首都です。大阪も大きい！本当？はい", ["東京は日本の首都です。", "大阪も大きい！", "本当？", "はい"]),
    ("「はい。」次です。", ["「はい。」", "次です。"]),
    ("Wait‼ What⁉ Ok．Done", ["Wait‼", "What⁉", "Ok．Done"]),
])
def test_split_sentences_examples(text, want):
    assert sentences(text) == want
    assert split_sentences_ref(text) == [tuple(s) for s in split_sentences(text).tolist()]


def test_split_sentences_offsets_are_code_points():
    text = "Ünïcödé 😀 first. Then 東京. 😀 Last"
    spans = split_sentences(text)
    assert spans.dtype == np.int64 and spans.shape == (3, 2)
    assert [text[a:b] for a, b in spans.tolist()] == ["Ünïcödé 😀 first.", "Then 東京.", "😀 Last"]


def test_split_sentences_lone_surrogates_count_one_code_point():
    text = "Bad \ud800 char. Next \udfff one."
    assert sentences(text) == ["Bad \ud800 char.", "Next \udfff one."]


# ---- against the reference: real and random ---------------------------------

@pytest.fixture(scope="module")
def scifact_abstracts():
    root = data_dir()
    path = None if root is None else root / "qa" / "scifact-claims" / "corpus.jsonl"
    if path is None or not path.is_file():
        pytest.skip("qa/scifact-claims/corpus.jsonl not found (set RAGKERNELS_DATA)")
    with open(path, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    return [" ".join(d["abstract"]) for d in docs] + [d["title"] for d in docs]


@same_unicode
def test_split_sentences_matches_reference_on_every_scifact_abstract(scifact_abstracts):
    assert_matches_reference(scifact_abstracts)


def test_split_sentences_knows_every_abbreviation_of_the_reference():
    # Each word in each case, before an uppercase word, a digit and a
    # lowercase word: the C++ lists must hold exactly the reference's.
    words = sorted(PREFIX_ABBREVIATIONS | FINAL_ABBREVIATIONS | CASED_PREFIX | ROMAN | {"no", "nos", "nr"})
    texts = []
    for word in words:
        for form in {word, word.lower(), word.upper(), word.capitalize()}:
            texts += [f"Say {form}. The end", f"({form}. 5 more", f"x {form}. lower", f"A\n{form}) list",
                      f"A\n({form}) list", f"A\n{form}. list"]
    assert_matches_reference(texts)


# Characters every rule looks at, plus letters of each case, digits and
# words that are abbreviations, so random texts hit every branch.
ALPHABET = sorted(WHITESPACE | TERMINALS | CLOSERS | OPENERS | NO_BREAK_BEFORE | BULLETS) + list(
    "aAbBzZ09_ßΣβ東\ud800😀ǅ²٣")
WORDS = ["Dr", "Fig", "e.g", "i.e", "U.S", "et al", "etc", "No", "no", "MS", "p53", "mRNA", "J", "vitamin D", "iv",
         "(b)", "1", "2.", "3.5", "A", "the", "The", "vs", "Ph.D", "spp", "Jan"]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(0, 40)):
        roll = rng.random()
        if roll < 0.45:
            parts.append(rng.choice(ALPHABET))
        elif roll < 0.8:
            parts.append(rng.choice(WORDS))
        else:
            parts.append(rng.choice([" ", "\n", "  ", "\n\n", ". ", "\r\n"]))
    return "".join(parts)


@same_unicode
@pytest.mark.parametrize("seed", range(4))
def test_split_sentences_matches_reference_on_random_texts(seed):
    rng = random.Random(seed)
    assert_matches_reference([random_text(rng) for _ in range(3000)])


# ---- batch form, threads, input checks --------------------------------------

def test_split_sentences_batch_layout():
    texts = ["One. Two.", "", "Three", "   "]
    batch = split_sentences(texts)
    assert isinstance(batch, SentenceSpans)
    assert batch.spans.dtype == np.int64 and batch.offsets.dtype == np.int64
    assert batch.spans.shape == (3, 2)
    assert batch.offsets.tolist() == [0, 2, 2, 3, 3]
    assert batch.text_ids().tolist() == [0, 0, 2]
    assert batch.strings(texts) == [["One.", "Two."], [], ["Three"], []]
    empty = split_sentences([])
    assert empty.spans.shape == (0, 2) and empty.offsets.tolist() == [0]
    assert split_sentences("").shape == (0, 2)


def test_split_sentences_accepts_any_iterable_of_str():
    texts = ["A b. C d.", "E f! G"]
    want = split_sentences(texts)
    for other in (tuple(texts), ("".join(list(t)) for t in texts)):  # generator: temporaries
        got = split_sentences(other)
        np.testing.assert_array_equal(got.spans, want.spans)
        np.testing.assert_array_equal(got.offsets, want.offsets)


def test_split_sentences_does_not_depend_on_thread_count(scifact_abstracts):
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = split_sentences(scifact_abstracts)
        rk.set_num_threads(2)
        two = split_sentences(scifact_abstracts)
    finally:
        rk.set_num_threads(before)
    np.testing.assert_array_equal(one.spans, two.spans)
    np.testing.assert_array_equal(one.offsets, two.offsets)


@pytest.mark.parametrize("bad,message", [
    (None, "split_sentences: texts must be a str or an iterable of str, got NoneType"),
    (3, "split_sentences: texts must be a str or an iterable of str, got int"),
    (b"bytes. Here.", "split_sentences: texts must be str, not bytes"),
    (["ok", 7], r"split_sentences: texts\[1\] must be str, got int"),
    (["ok", b"x"], r"split_sentences: texts\[1\] must be str, got bytes"),
])
def test_split_sentences_rejects_non_str(bad, message):
    with pytest.raises(TypeError, match=message):
        split_sentences(bad)
