"""Words as the grounding checks compare them: stemmed key terms, the kind of answer a question asks for.

Citation checks, the relevance gate and the extractive generator all ask "does
this passage say what the question is about?". Comparing surface words misses
"replans"/"replan" and "reimbursed"/"reimburses", so terms are stemmed (NLTK's
Snowball stemmer: pure Python, no data download). What a question asks for
(an amount of money, a count, a date...) is read from its wording, and what a
figure in an answer is (money, a percentage, a measure with a unit) from the
words around it, so a question about revenue is not taken as answered by a
tonnage.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

from nltk.stem.snowball import EnglishStemmer  # type: ignore[import-untyped]  # no stubs; pure Python

_STEMMER = EnglishStemmer()


_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_STOPWORDS = frozenset(
    (
        "a an and are as at be by can could did do does for from had has have how i if in is it its may "
        "me my of on or our should so than that the their them there these they this to was we were "
        "what when where which who whom why will with would you your about into any all also get got "
        "tell please much many "
        # Modal and time-relation words: "how soon after a trip must ..." is about the trip, not "after" or "must".
        "must shall might after before within during until since soon then just very "
    ).split()
)


# A fiscal or calendar year written as one word ("FY2026", "CY2025") also names the year itself,
# so "the end of 2026" and "FY2026 budget" share a term.
_PERIOD_YEAR = re.compile(r"^(?:fy|cy)(\d{4})$")


def content_words(text: str) -> set[str]:
    """Lower-case words and numbers that carry meaning (no stop words, no single letters)."""
    words = {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}
    return words | {m.group(1) for w in words if (m := _PERIOD_YEAR.match(w))}


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of one lower-case word; words with digits are kept as they are (codes, versions)."""
    if any(ch.isdigit() for ch in word):
        return word
    return str(_STEMMER.stem(word.split("'")[0]))


def key_terms(text: str) -> set[str]:
    """Stemmed content words (no stop words, no single letters)."""
    return {stem(word) for word in content_words(text)}


# Words about where an answer comes from, not about what it says: "X comes from the passage [1]",
# "according to the document", "the information is provided in the source".
META_TERMS = frozenset(
    stem(w)
    for w in (
        "passage passages document documents source sources text context information info mention mentioned "
        "mentions state states stated according provide provided provides found find see refer refers "
        "reference come comes given answer answers question questions detail details describe described "
        "include includes included contain contains section page"
    ).split()
)


class AnswerKind(StrEnum):
    """What a question asks for, as far as the checks can tell from its wording."""

    MONEY = "money"  # revenue, a price, a salary, a fee
    COUNT = "count"  # how many
    AMOUNT = "amount"  # how much / how large, without a money word: a figure of some kind
    DURATION = "duration"  # how long, how soon, how quickly
    WHEN = "when"  # when, which date, what time
    OPEN = "open"  # anything else: who, which, what


# Words that make "how much" (or "what is the X") a question about money.
_MONEY_WORDS = frozenset(
    stem(w)
    for w in (
        "revenue revenues price prices cost costs salary salaries budget fee fees pay paid payment stipend "
        "allowance bonus retainer income cash earnings capex expenditure spend spending diem reimburse "
        "reimbursed reimbursement wage wages compensation profit"
    ).split()
)
_UNIT_KINDS: dict[str, str] = {}
for _kind, _words in (
    ("money", "usd eur gbp cad chf dollar dollars euro euros pound pounds million billion thousand"),
    ("percent", "percent percentage pct"),
    ("mass", "tonne tonnes ton tons kg kilogram kilograms lb lbs pound"),
    ("length", "km kilometre kilometres kilometer kilometers mile miles mm cm metre metres meter meters m"),
    ("time", "ms millisecond milliseconds second seconds minute minutes hour hours day days week weeks "
     "month months year years"),
    ("items", "robot robots unit units people person employees pallet pallets picks claims"),
    # "13 March": a day of a month is a date, whatever its digits look like.
    ("date", "jan january feb february mar march apr april jun june jul july aug august sep sept "
     "september oct october nov november dec december"),
):  # fmt: skip
    for _word in _words.split():
        _UNIT_KINDS.setdefault(_word, _kind)
_CURRENCY = re.compile(r"[$€£]\s?\d|\b(?:USD|EUR|GBP|CAD|CHF)\s?\d", re.IGNORECASE)
# Not after a letter or digit: "Q3", "L5" and "H2" are names, not figures.
_FIGURE_WITH_UNIT = re.compile(r"(?<![A-Za-z\d.,])(\d[\d,.]*)\s*(%|[a-z]+)?", re.IGNORECASE)
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_MONTHS_AND_DAYS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)days?\b"
    r"|\b(?:quarter|half|q[1-4]|h[12]|noon|midnight|weekly|daily|monthly|annually)\b",
    re.IGNORECASE,
)


def expected_kind(question: str) -> AnswerKind:
    """What kind of answer ``question`` asks for."""
    lower = " ".join(question.lower().split())
    terms = key_terms(lower)
    if re.search(r"\bhow many\b", lower):
        return AnswerKind.COUNT
    if re.search(r"\bhow (?:long|soon|quickly|fast|often)\b|\bafter how long\b", lower):
        return AnswerKind.DURATION
    if re.search(r"^(?:and )?when\b|\bwhich (?:date|day|days)\b|\bwhat (?:date|time)\b|\bby when\b", lower):
        return AnswerKind.WHEN
    if terms & _MONEY_WORDS and re.search(r"\b(?:what|how much|how large|how big)\b", lower):
        return AnswerKind.MONEY
    if re.search(r"\bhow (?:much|large|big)\b", lower):
        return AnswerKind.AMOUNT
    return AnswerKind.OPEN


def figure_kinds(text: str) -> list[str]:
    """The kind of each figure in ``text``: money, percent, mass, length, time, items, date, year, or bare (no unit)."""
    return [kind for _, kind in figures(text)]


def figures(text: str) -> list[tuple[str, str]]:
    """Each figure in ``text`` (its digits, without a trailing full stop or comma) with its kind."""
    kinds: list[tuple[str, str]] = []
    for match in _FIGURE_WITH_UNIT.finditer(text):
        start = match.start()
        before = text[max(0, start - 4) : start]
        unit = (match.group(2) or "").lower()
        number = match.group(1).rstrip(".,")
        if _CURRENCY.search(before + match.group(1)) or re.search(r"[$€£]\s?$", before):
            kind = "money"
        elif unit == "%":
            kind = "percent"
        elif _YEAR.match(number) and unit not in _UNIT_KINDS:
            kind = "year"
        else:
            kind = _UNIT_KINDS.get(unit, "bare")
        kinds.append((number, kind))
    return kinds


def mentions_time(text: str) -> bool:
    """A month, weekday, quarter or similar word: an answer to "when" need not hold a figure."""
    return bool(_MONTHS_AND_DAYS.search(text))


# Kinds of figure that cannot answer a question of this kind.
CONFLICTS: dict[AnswerKind, frozenset[str]] = {
    AnswerKind.MONEY: frozenset({"mass", "length", "time", "items", "year", "date"}),
    AnswerKind.COUNT: frozenset({"money", "percent", "year", "date"}),
    AnswerKind.DURATION: frozenset({"money", "percent", "mass", "year"}),
    AnswerKind.WHEN: frozenset({"money", "percent", "mass", "length"}),
    AnswerKind.AMOUNT: frozenset({"year", "date"}),
    AnswerKind.OPEN: frozenset(),
}
