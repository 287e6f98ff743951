"""Slow, obvious reference of the text analyzer: bm25s's pipeline in plain Python.

bm25s 0.3.16 (bm25s/tokenization.py, ``tokenize``) lowercases with
``str.lower()``, splits with ``re.findall(r"(?u)\\b\\w\\w+\\b")``, drops
stopwords on the unstemmed token, then stems each token.
"""
import re

# bm25s/stopwords.py STOPWORDS_EN, written out so the reference stands alone.
STOPWORDS_EN = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with",
)

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")


def split_ref(text, lowercase=True, stopwords=STOPWORDS_EN, keep_numbers=True):
    """Surface words of one text: lowercase, regex split, stopwords, numbers."""
    if lowercase:
        text = text.lower()
    stop = set(stopwords)
    return [t for t in TOKEN_PATTERN.findall(text) if t not in stop and (keep_numbers or not t.isdecimal())]


def tokenize_ref(texts, stem=None, **split_kwargs):
    """split_ref of each text, then ``stem(word)`` of each word when given."""
    out = []
    for text in texts:
        words = split_ref(text, **split_kwargs)
        out.append([stem(w) for w in words] if stem is not None else words)
    return out
