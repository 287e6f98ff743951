"""Slow, obvious reference of the sentence segmenter (csrc/text/segment.h).

The same rules as the C++ core, written for reading, over a Python str
(code points). ``split_sentences_ref(text)`` returns [(start, end), ...]
such that ``text[start:end]`` is each sentence, without its leading and
trailing whitespace; offsets are code points.

The rules (csrc/text/segment.h states them once more):

1. Hard breaks. A whitespace run holding two line breaks ("\\r\\n" is
   one), or a U+2029 paragraph separator, ends a sentence. So does a line
   break followed by a list marker: a bullet (- * • ‣ ◦ ⁃ ▪ ● ○ ■ □ ► ➢ –
   —) then whitespace, or an item label (up to three digits, one ASCII
   letter, or a roman numeral i..xii, optionally opened by "(") closed by
   "." or ")" then whitespace. A single line break elsewhere is only
   whitespace (text wrapped inside a paragraph).
2. Terminators. A run of terminal characters (. ! ? … and ！ ？ ‼ ⁇ ⁈ ⁉
   。 ｡ ．), then any closing quotes and brackets, is a candidate end.
   A run holding a CJK full stop or mark (。 ｡ ！ ？) ends the sentence
   there. Any other run ends one only when whitespace or the end of the
   text follows (so 3.5, 1,000.2, v1.2.3, e.g., U.S.A never break), and
   then only when the next visible character allows it (rule 3).
3. The next character. An uppercase letter (``c.lower() != c``) or a
   decimal digit, an opening quote or bracket, or any other symbol
   allows a break; none is allowed before , ; : % a closing bracket or
   another terminal character (". . ." leaders stay one sentence). A
   lower-case or uncased letter allows it only when its word (up to the
   next whitespace) holds an uppercase letter or a digit: a gene or
   symbol such as p53, rIL-18, mRNA starts sentences in abstracts; a
   plain lowercase word ("i.p. injection", "approx. the") continues one.
   A small Greek letter (α..ω) allows it too: β-catenin, α-synuclein.
   After an ellipsis (two or more periods, or …) a digit does not allow
   a break ("1 ... 5").
4. Abbreviations, for a run of one period only; the word before it is
   the characters back to whitespace, without its opening quotes and
   brackets:
   - a prefix abbreviation (Dr, Fig, Eq, Ref, No, vs, e.g, i.e, cf,
     approx, ca, ...: PREFIX_ABBREVIATIONS) never ends a sentence:
     "Fig. 2", "Dr. Smith", "vs. B". "No"/"Nos"/"Nr" match only as
     written; the others in any case, except that two uppercase letters
     are an acronym, not a title ("a model of MS. It" breaks).
   - a final abbreviation (etc, al, Inc, Ltd, Jr, resp, months, sp, ...:
     FINAL_ABBREVIATIONS) or a dotted acronym (letters joined by periods:
     U.S, e.g. with its last period, Ph.D, s.s) ends one only before an
     uppercase letter: "in the U.S. The" breaks, "et al. (2005)" and
     "U.S. 2010" do not. "U.S. Army" breaks too: no rule tells a proper
     name from a sentence start.
   - a single letter is an initial and never ends a sentence ("J. R. R.
     Tolkien", "A. B. Smith", "E. coli", "by S. Typhimurium"). The price:
     "vitamin D. The" and "after 24 h. The" do not break either. The
     SciFact gold treats single letters the same way; breaking after a
     single letter that follows a lowercase word or a number lowers F1
     there from 0.981 to 0.980 (145 more breaks the gold does not have,
     15 fewer misses).
5. Spans. Sentences are the stretches between breaks, trimmed of
   whitespace (WHITESPACE: exactly ``str.isspace()``); empty ones are
   dropped.
"""

WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
LINE_BREAKS = frozenset("\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029")
PARAGRAPH_SEPARATOR = "\u2029"

CJK_TERMINALS = frozenset("。｡！？")
TERMINALS = frozenset(".!?…‼⁇⁈⁉．") | CJK_TERMINALS
PERIODS = frozenset(".．")
CLOSERS = frozenset(")]}\"'”’»›）］｝」』】〕〉》〗＂＇")
OPENERS = frozenset("([{\"'“‘«‹（［｛「『【〔〈《〖＂＇¿¡")
NO_BREAK_BEFORE = frozenset(",;:%)]}）］｝，；：") | TERMINALS
GREEK_SMALL_FIRST, GREEK_SMALL_LAST = "\u03b1", "\u03c9"
BULLETS = frozenset("-*•‣◦⁃▪●○■□►➢–—")
ROMAN = frozenset("i ii iii iv v vi vii viii ix x xi xii".split())

# Abbreviations, without their final period. Lowercased, matched in any case
# unless listed in CASED_PREFIX.
PREFIX_ABBREVIATIONS = frozenset("""
mr mrs ms dr prof rev hon gen col lt capt sgt gov sen st mt
fig figs eq eqs ref refs tab tbl sect ch chap vol vols pp pg
approx ca cf vs viz e.g i.e incl suppl dept univ inst assoc ibid
""".split())
CASED_PREFIX = frozenset(["No", "Nos", "Nr"])
FINAL_ABBREVIATIONS = frozenset("""
etc al inc ltd co corp jr sr bros resp
jan feb mar apr jun jul aug sep sept oct nov dec
sp spp ssp subsp var cv
""".split())


def is_upper(c):
    return c.lower() != c


def is_digit(c):
    return c.isdecimal()


def is_lowerish(c):
    """A word character that is neither uppercase nor a decimal digit."""
    return (c.isalnum() or c == "_") and not is_digit(c) and not is_upper(c)


def is_letter(c):
    """A word character other than a decimal digit and "_" (the C++ tables' kWord)."""
    return c.isalnum() and not is_digit(c)


def skip_space(text, i):
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def word_before(text, i):
    """The characters before text[i] back to whitespace, openers stripped."""
    start = i
    while start > 0 and text[start - 1] not in WHITESPACE:
        start -= 1
    while start < i and text[start] in OPENERS:
        start += 1
    return text[start:i]


def word_at(text, i):
    end = i
    while end < len(text) and text[end] not in WHITESPACE:
        end += 1
    return text[i:end]


def line_breaks_in(space):
    """Line breaks in a whitespace run, "\\r\\n" counting once."""
    return sum(1 for k, c in enumerate(space) if c in LINE_BREAKS and not (c == "\r" and space[k + 1:k + 2] == "\n"))


def is_list_marker(text, i):
    """A bullet or an item label at text[i], followed by whitespace."""
    if i < len(text) and text[i] in BULLETS:
        return i + 1 < len(text) and text[i + 1] in WHITESPACE
    j = i + 1 if text[i:i + 1] == "(" else i
    k = j
    while k < len(text) and k - j < 5 and (text[k].isascii() and text[k].isalnum()):
        k += 1
    label = text[j:k]
    ok = (label.isdigit() and len(label) <= 3) or (len(label) == 1 and label.isalpha()) or label in ROMAN
    return ok and k < len(text) and text[k] in ".)" and k + 1 < len(text) and text[k + 1] in WHITESPACE


def hard_break_after(text, i):
    """Whether the whitespace run starting at text[i] is a hard break."""
    end = skip_space(text, i)
    space = text[i:end]
    if PARAGRAPH_SEPARATOR in space or line_breaks_in(space) >= 2:
        return True
    return line_breaks_in(space) == 1 and end < len(text) and is_list_marker(text, end)


def is_dotted_acronym(word):
    """Letters joined by periods: U.S, Ph.D, s.s, e.g (the last period is the terminal)."""
    parts = word.split(".")
    return len(parts) >= 2 and all(1 <= len(p) <= 2 and all(is_letter(c) for c in p) for p in parts)


def is_acronym(word):
    """Two uppercase letters: MS, ST, DR, CA name things here, not titles."""
    return len(word) == 2 and all(is_upper(c) for c in word)


def abbreviation_kind(text, i):
    """'prefix', 'final', 'initial' or None for the word before text[i] (a period)."""
    word = word_before(text, i)
    ascii_word = word.lower() if word.isascii() else ""
    if word in CASED_PREFIX or (ascii_word in PREFIX_ABBREVIATIONS and not is_acronym(word)):
        return "prefix"
    if ascii_word in FINAL_ABBREVIATIONS or is_dotted_acronym(word):
        return "final"
    if len(word) == 1 and is_letter(word):
        return "initial"
    return None


def next_allows_break(text, m, ellipsis):
    """Rule 3: whether text[m], the next visible character, may start a sentence."""
    c = text[m]
    if c in NO_BREAK_BEFORE:
        return False
    if is_lowerish(c):
        return GREEK_SMALL_FIRST <= c <= GREEK_SMALL_LAST or any(is_upper(x) or is_digit(x) for x in word_at(text, m))
    if ellipsis and is_digit(c):
        return False
    return True


def absorb_closers(text, j):
    """The end of the closing quotes and brackets after a terminal run at j.

    A closer detached by spaces ("allostasis. " Then) still closes the
    sentence when whitespace or the end follows it and no line break
    comes before it.
    """
    n = len(text)
    k = j
    while k < n and text[k] in CLOSERS:
        k += 1
    m = skip_space(text, k)
    if k < m < n and text[m] in CLOSERS and not any(c in LINE_BREAKS for c in text[k:m]):
        if m + 1 == n or text[m + 1] in WHITESPACE:
            return m + 1
    return k


def ends_sentence(text, i, j, k):
    """Whether the terminal run text[i:j] with closers text[j:k] ends a sentence."""
    run = text[i:j]
    if any(c in CJK_TERMINALS for c in run):
        return True
    if k < len(text) and text[k] not in WHITESPACE:
        return False
    m = skip_space(text, k)
    if m == len(text):
        return True
    if hard_break_after(text, k):
        return True
    ellipsis = "…" in run or sum(c in PERIODS for c in run) >= 2
    if not next_allows_break(text, m, ellipsis):
        return False
    if len(run) == 1 and run in PERIODS:
        kind = abbreviation_kind(text, i)
        if kind in ("prefix", "initial"):
            return False
        if kind == "final":
            return is_upper(text[m])
    return True


def break_points(text):
    """Sorted positions where a sentence ends (before trimming)."""
    cuts = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c in TERMINALS:
            j = i
            while j < n and text[j] in TERMINALS:
                j += 1
            k = absorb_closers(text, j)
            if ends_sentence(text, i, j, k):
                cuts.append(k)
            i = k
        elif c in WHITESPACE:
            end = skip_space(text, i)
            if hard_break_after(text, i):
                cuts.append(i)
            i = end
        else:
            i += 1
    return cuts


def split_sentences_ref(text):
    """[(start, end)] code-point spans of the sentences of `text`."""
    spans = []
    start = 0
    for cut in break_points(text) + [len(text)]:
        a, b = start, cut
        while a < b and text[a] in WHITESPACE:
            a += 1
        while b > a and text[b - 1] in WHITESPACE:
            b -= 1
        if a < b:
            spans.append((a, b))
        start = max(start, cut)
    return spans
