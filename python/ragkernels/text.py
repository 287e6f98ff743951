"""Text analysis: the terms a document or query is indexed as.

The default analyzer reproduces ``bm25s.tokenize(texts, stopwords="en",
stemmer=Stemmer.Stemmer("english"))`` token for token: Python's
``str.lower()``, the regex ``(?u)\\b\\w\\w+\\b``, bm25s's English stopword
list, then the Snowball English stemmer. It runs in C++, over texts in
parallel, without the GIL.
"""
from __future__ import annotations

from collections.abc import Sized
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Union

import numpy as np

from ragkernels import _core
from ragkernels._progress import ProgressBar

__all__ = ["UNICODE_VERSION", "Analyzer", "SentenceSpans", "split_sentences", "tokenize"]

#: Unicode version of the analyzer's character tables: that of the Python
#: which generated them (bm25s parity is exact under that version).
UNICODE_VERSION: str = _core.text_unicode_version

Texts = Union[str, Iterable[str]]


class Analyzer:
    """Lowercase, split, drop stopwords and stem, as bm25s does.

    Parameters
    ----------
    lowercase : bool, default True
        Apply Python's ``str.lower()`` (full Unicode mapping, final
        sigma included) before splitting.
    stopwords : {"en", "english"}, None or iterable of str, default "en"
        ``"en"``/``"english"``: bm25s's English list (33 words). None or
        False: keep every word. An iterable: these exact strings. Words
        are compared after lowercasing and before stemming.
    stemmer : {"english"} or None, default "english"
        ``"english"``: the Snowball English (Porter2) stemmer, as
        PyStemmer's ``Stemmer.Stemmer("english")``. None: no stemming.
    keep_numbers : bool, default True
        False drops tokens made only of decimal digits (``str.isdecimal``,
        any script).

    Raises
    ------
    TypeError
        An argument of the wrong type (e.g. a stopword that is not str).
    ValueError
        An unknown stopword list or stemmer name.

    Notes
    -----
    A token is a maximal run of two or more word characters
    (``str.isalnum()`` or ``"_"``) of the lowercased text, exactly what
    ``re.findall(r"(?u)\\b\\w\\w+\\b", text.lower())`` returns, under
    the Unicode version `UNICODE_VERSION` (Python 3.11's).

    Examples
    --------
    >>> from ragkernels.text import Analyzer
    >>> Analyzer().tokenize("The cats are running, aren't they?")
    [['cat', 'run', 'aren']]
    >>> Analyzer(stemmer=None, stopwords=None).tokenize(["ΟΔΟΣ X_1 a"])
    [['οδος', 'x_1']]
    """

    def __init__(self, *, lowercase: bool = True, stopwords: Any = "en", stemmer: Optional[str] = "english",
                 keep_numbers: bool = True) -> None:
        self._analyzer = _core.Analyzer(lowercase, stopwords, stemmer, keep_numbers)

    @property
    def config(self) -> Dict[str, Any]:
        """dict: ``lowercase``, ``stopwords`` (list), ``stemmer``, ``keep_numbers``."""
        return self._analyzer.config

    def tokenize(self, texts: Texts, *, show_progress: bool = False) -> List[List[str]]:
        """Turn texts into lists of terms.

        Parameters
        ----------
        texts : str or iterable of str
            One text or many; a single str is one text.
        show_progress : bool, default False
            Show a tqdm bar over texts.

        Returns
        -------
        list of list of str
            The terms of each text, in text order; a text with no terms
            gives an empty list.

        Raises
        ------
        TypeError
            An item of `texts` is not str (the message gives its index).

        Notes
        -----
        Texts are analyzed in parallel (``ragkernels.set_num_threads``);
        the result does not depend on the thread count.
        """
        if not show_progress:
            return self._analyzer.tokenize(texts)
        total = 1 if isinstance(texts, str) else len(texts) if isinstance(texts, Sized) else None
        with ProgressBar(total, True, "Tokenize", unit="text") as bar:
            return self._analyzer.tokenize(texts, bar.update)

    def term_ids(self, texts: Texts) -> "tuple[np.ndarray, np.ndarray, List[str]]":
        """Turn texts into term ids: `tokenize` with each distinct term
        numbered in order of first occurrence, without a Python str per token.

        Parameters
        ----------
        texts : str or iterable of str

        Returns
        -------
        values : ndarray of int64
            The term ids of every text, concatenated.
        offsets : ndarray of int64, shape (number of texts + 1,)
            Text i's ids are ``values[offsets[i]:offsets[i + 1]]`` (one str
            is one text).
        terms : list of str
            The term of each id.

        Examples
        --------
        >>> from ragkernels.text import Analyzer
        >>> values, offsets, terms = Analyzer().term_ids(["cats sat", "a cat"])
        >>> values.tolist(), offsets.tolist(), terms
        ([0, 1, 0], [0, 2, 3], ['cat', 'sat'])
        """
        return self._analyzer.term_ids(texts)

    def stem(self, words: Union[str, Iterable[str]]) -> List[str]:
        """Give the final form of each surface word (its stem, if stemming).

        Parameters
        ----------
        words : str or iterable of str
            Words as `tokenize` would see them (lowercase, no stopwords);
            they are not split or lowercased here.

        Returns
        -------
        list of str
            One term per word; the words themselves when ``stemmer=None``.

        Raises
        ------
        TypeError
            An item of `words` is not str.

        Examples
        --------
        >>> from ragkernels.text import Analyzer
        >>> Analyzer().stem(["running", "generously"])
        ['run', 'generous']
        """
        return self._analyzer.stem(words)

    def __repr__(self) -> str:
        c = self.config
        return (f"Analyzer(lowercase={c['lowercase']}, stopwords=<{len(c['stopwords'])} words>, "
                f"stemmer={c['stemmer']!r}, keep_numbers={c['keep_numbers']})")


def tokenize(texts: Texts, *, show_progress: bool = False, **analyzer_kwargs: Any) -> List[List[str]]:
    """Tokenize texts with a one-off `Analyzer`.

    Parameters
    ----------
    texts : str or iterable of str
        One text or many.
    show_progress : bool, default False
        Show a tqdm bar over texts.
    **analyzer_kwargs
        ``lowercase``, ``stopwords``, ``stemmer``, ``keep_numbers`` of
        `Analyzer`.

    Returns
    -------
    list of list of str
        The terms of each text.

    Examples
    --------
    >>> from ragkernels.text import tokenize
    >>> tokenize(["Running dogs", "A cat"], stemmer=None)
    [['running', 'dogs'], ['cat']]
    """
    return Analyzer(**analyzer_kwargs).tokenize(texts, show_progress=show_progress)


class SentenceSpans(NamedTuple):
    """Sentences of many texts, flattened: one row per sentence.

    Attributes
    ----------
    spans : ndarray of int64, shape (n_sentences, 2)
        ``[start, end)`` code-point offsets into the sentence's own text.
    offsets : ndarray of int64, shape (n_texts + 1,)
        Text ``i`` owns rows ``offsets[i]:offsets[i + 1]`` of `spans`.
    """

    spans: np.ndarray
    offsets: np.ndarray

    def text_ids(self) -> np.ndarray:
        """ndarray of int64, shape (n_sentences,): the text of each sentence."""
        return np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))

    def of(self, i: int) -> np.ndarray:
        """ndarray of int64, shape (n_i, 2): the spans of text `i`."""
        return self.spans[self.offsets[i]:self.offsets[i + 1]]

    def strings(self, texts: List[str]) -> List[List[str]]:
        """The sentences as str, per text (`texts` as segmented)."""
        return [[text[a:b] for a, b in self.of(i).tolist()] for i, text in enumerate(texts)]


def split_sentences(texts: Texts) -> Union[np.ndarray, SentenceSpans]:
    """Split text into sentences, by rules, as code-point spans.

    Parameters
    ----------
    texts : str or iterable of str
        One text, or many.

    Returns
    -------
    ndarray of int64, shape (n_sentences, 2), for one str
        ``[start, end)`` so that ``text[start:end]`` is a sentence.
    SentenceSpans, for an iterable of str
        All sentences in one (n_sentences, 2) array plus per-text
        `offsets` (n_texts + 1,); ``text_ids()`` gives each sentence's
        text, ``strings(texts)`` the sentences as str.

    Raises
    ------
    TypeError
        `texts`, or one of its items, is not str (bytes included).

    Notes
    -----
    Offsets count code points, as Python slices do (the C++ core also
    keeps UTF-8 byte offsets). Sentences exclude their leading and
    trailing whitespace; a text of whitespace has none. The rules
    (csrc/text/segment.h): a run of . ! ? … (and CJK/full-width marks),
    with its closing quotes and brackets, ends a sentence before
    whitespace and an uppercase letter, a digit, an opener or a symbol,
    or a lowercase word holding a capital or digit (p53, mRNA); not
    after a prefix abbreviation (Dr., Fig., e.g., vs.) or an initial
    (J. R. R. Tolkien; any single letter, so "vitamin D. The" does not
    break); after etc., et al., U.S. and other final
    abbreviations only before an uppercase letter ("in the U.S. The"
    breaks). Decimals, versions and "e.g." never break (no space after
    the period). A blank line, or a line break before a list marker,
    always breaks; a lone line break is whitespace. Texts run in
    parallel (``ragkernels.set_num_threads``) without the GIL; the
    result does not depend on the thread count.

    Examples
    --------
    >>> from ragkernels.text import split_sentences
    >>> text = 'Dr. Smith saw 3.5 mm (see Fig. 2.) in the U.S. He said "stop." Then'
    >>> [text[a:b] for a, b in split_sentences(text).tolist()]
    ['Dr. Smith saw 3.5 mm (see Fig. 2.) in the U.S.', 'He said "stop."', 'Then']
    >>> batch = split_sentences(["One. Two.", "", "Three"])
    >>> batch.offsets.tolist(), batch.text_ids().tolist()
    ([0, 2, 2, 3], [0, 0, 2])
    """
    spans, offsets = _core.split_sentences(texts)
    if isinstance(texts, str):
        return spans
    return SentenceSpans(spans, offsets)
