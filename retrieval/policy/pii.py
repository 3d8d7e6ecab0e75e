"""Personal data in free text: a documented rule set of patterns confirmed by checksums and context.

Why rules and not Presidio: Presidio's analyzer needs a spaCy language model
(``en_core_web_lg`` by default) that is not published on PyPI, and no package
registry reachable here carries it, so it cannot run offline. For the kinds
below, Presidio's own recognizers are also patterns plus checksums; the NER
model adds person names and places, which this rule set does not detect.

Kinds, and what confirms a candidate:

=============  ===============================================================
EMAIL          local@domain.tld, a letters-only TLD that is not a file extension
PHONE          ``+``/``00`` international form (8-15 digits); North American
               ``(415) 555-0132`` / ``415-555-0132`` (NANP area and exchange
               rules); trunk-prefix national form ``020 7946 0958``,
               ``06 12 34 56 78`` (10-11 digits, separated); or any 7-15 digit
               number right after "phone", "tel", "mobile", "cell", "fax"
IBAN           country code, check digits, groups of four; ISO 13616 mod-97
               and the country's length where known
CREDIT_CARD    13-19 digits (optionally in groups), a card network's prefix and
               length, and the Luhn checksum
US_SSN         ``123-45-6789`` with SSA validity rules (no 000/666/9xx area,
               no 00 group, no 0000 serial); undashed only after "SSN"
UK_NINO        two prefix letters from the allowed set, six digits, suffix A-D
IP_ADDRESS     IPv4 (each part <= 255, not 0.x or a 255.x netmask, not after
               "version", "v", "section") and IPv6
               (validated by :mod:`ipaddress`, at least four hex digits)
=============  ===============================================================

Hard negatives it is built to leave alone: order and invoice numbers, dates,
times, version strings, amounts, postcodes, ISBN-like numbers without a card
prefix or checksum. Precision and recall on a labelled sample:
``python -m retrieval.policy.measure samples/policy/pii_labelled.jsonl``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class PiiKind(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    IBAN = "IBAN"
    CREDIT_CARD = "CREDIT_CARD"
    US_SSN = "US_SSN"
    UK_NINO = "UK_NINO"
    IP_ADDRESS = "IP_ADDRESS"


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: PiiKind
    start: int
    end: int


_FILE_EXTENSIONS = frozenset("png jpg jpeg gif svg webp bmp pdf doc docx xls xlsx ppt pptx txt csv js css".split())
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"([A-Za-z]{2,24})(?![\w-])"
)

_INTERNATIONAL_PHONE = re.compile(r"(?<![\w+\-])(?:\+|00)[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,5}\)?){2,6}(?![\w-])")
_NANP_PHONE = re.compile(
    r"(?<![\w+.\-])(?:1[ .\-])?(?:\(([2-9]\d{2})\) ?|([2-9]\d{2})([ .\-]))[2-9]\d{2}[ .\-]\d{4}(?![\w\-]|\.\d)"
)
_GROUP_BEFORE = re.compile(r"\d[ .\-]?$")
_TRUNK_PHONE = re.compile(
    r"(?<![\w+./\-])(?:0\d{1,4}(?:[ \-]\d{2,4}){2,4}|0\d{3,4}[ \-]\d{6,7}|0\d(?:\.\d{2}){4})(?![\w\-]|\.\d)"
)
_KEYWORD_PHONE = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|fax|call me at|ph)\.?(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*"
    r"(\+?\(?\d[\d ().\-]{5,20}\d)",
    re.IGNORECASE,
)

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])")
# ISO 13616 lengths of the countries most often seen; others are checked by mod-97 and 15-34 characters.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22,
    "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip

_CARD = re.compile(r"(?<![\d\-.])\d(?:[ \-]?\d){12,18}(?![\d\-]|\.\d)")
_SSN = re.compile(r"(?<![\w\-])(\d{3})-(\d{2})-(\d{4})(?![\w\-])")
_KEYWORD_SSN = re.compile(r"\b(?:ssn|social security(?: number| no\.?)?)\s*[:#]?\s*(\d{3} ?\d{2} ?\d{4})\b", re.I)
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    r"(?![A-Za-z0-9])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CONTEXT = re.compile(r"(?:version|release|build|firmware|ver\.?|v|section|clause|chapter|§)\s*$", re.I)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def luhn_valid(number: str) -> bool:
    total = 0
    for position, ch in enumerate(reversed(number)):
        digit = int(ch)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _card_network_length_ok(number: str) -> bool:
    """A prefix a card network issues under, with one of its lengths (Visa, Mastercard, Amex, Discover, ...)."""
    length, two, four = len(number), int(number[:2]), int(number[:4])
    if number[0] == "4":
        return length in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16  # Mastercard
    if two in (34, 37):
        return length == 15  # American Express
    if four == 6011 or two == 65 or 644 <= int(number[:3]) <= 649:
        return 16 <= length <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= length <= 19  # JCB
    if two in (36, 38, 39) or 300 <= int(number[:3]) <= 305:
        return 14 <= length <= 16  # Diners Club
    if two == 62:
        return 16 <= length <= 19  # UnionPay
    return False


def iban_valid(compact: str) -> bool:
    if not 15 <= len(compact) <= 34 or _IBAN_LENGTHS.get(compact[:2], len(compact)) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _emails(text: str) -> Iterable[PiiMatch]:
    for match in _EMAIL.finditer(text):
        if match.group(1).lower() not in _FILE_EXTENSIONS:
            yield PiiMatch(PiiKind.EMAIL, match.start(), match.end())


def _phones(text: str) -> Iterable[PiiMatch]:
    for match in _INTERNATIONAL_PHONE.finditer(text):
        if match.group().startswith("00") and _GROUP_BEFORE.search(text, 0, match.start()):
            continue  # "00.." inside a longer run of groups (an IBAN, a reference) is no dialling prefix
        if 8 <= len(_digits(match.group())) <= 15:
            yield PiiMatch(PiiKind.PHONE, match.start(), match.end())
    for match in _NANP_PHONE.finditer(text):
        yield PiiMatch(PiiKind.PHONE, match.start(), match.end())
    for match in _TRUNK_PHONE.finditer(text):
        if 10 <= len(_digits(match.group())) <= 11:
            yield PiiMatch(PiiKind.PHONE, match.start(), match.end())
    for match in _KEYWORD_PHONE.finditer(text):
        if 7 <= len(_digits(match.group(1))) <= 15:
            yield PiiMatch(PiiKind.PHONE, match.start(1), match.end(1))


def _ibans(text: str) -> Iterable[PiiMatch]:
    for match in _IBAN.finditer(text):
        raw = match.group()
        compact = raw.replace(" ", "").upper()
        expected = _IBAN_LENGTHS.get(compact[:2])
        if expected is not None and len(compact) > expected:
            # The pattern may have run into a following word or number: keep the country's length.
            kept, end = 0, match.start()
            for ch in raw:
                end += 1
                kept += ch != " "
                if kept == expected:
                    break
            compact, raw = compact[:expected], text[match.start() : end]
        if iban_valid(compact):
            yield PiiMatch(PiiKind.IBAN, match.start(), match.start() + len(raw))


def _cards(text: str) -> Iterable[PiiMatch]:
    for match in _CARD.finditer(text):
        raw = match.group()
        if " " in raw and "-" in raw:
            continue  # mixed separators: a reference, not a card number
        number = _digits(raw)
        if _card_network_length_ok(number) and luhn_valid(number):
            yield PiiMatch(PiiKind.CREDIT_CARD, match.start(), match.end())


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssns(text: str) -> Iterable[PiiMatch]:
    for match in _SSN.finditer(text):
        if _ssn_valid(*match.groups()):
            yield PiiMatch(PiiKind.US_SSN, match.start(), match.end())
    for match in _KEYWORD_SSN.finditer(text):
        number = _digits(match.group(1))
        if _ssn_valid(number[:3], number[3:5], number[5:]):
            yield PiiMatch(PiiKind.US_SSN, match.start(1), match.end(1))


def _ninos(text: str) -> Iterable[PiiMatch]:
    for match in _NINO.finditer(text):
        yield PiiMatch(PiiKind.UK_NINO, match.start(), match.end())


def _ips(text: str) -> Iterable[PiiMatch]:
    for match in _IPV4.finditer(text):
        parts = match.group().split(".")
        if any(int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts) or parts[0] in ("0", "255", "127"):
            continue  # not an address, "unset", a netmask or this machine: nothing that points at a person
        if _VERSION_CONTEXT.search(text[max(0, match.start() - 12) : match.start()]):
            continue
        yield PiiMatch(PiiKind.IP_ADDRESS, match.start(), match.end())
    for match in _IPV6.finditer(text):
        candidate = match.group()
        if sum(ch not in ":" for ch in candidate) < 4:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield PiiMatch(PiiKind.IP_ADDRESS, match.start(), match.end())


_FINDERS: dict[PiiKind, Callable[[str], Iterable[PiiMatch]]] = {
    PiiKind.EMAIL: _emails,
    PiiKind.PHONE: _phones,
    PiiKind.IBAN: _ibans,
    PiiKind.CREDIT_CARD: _cards,
    PiiKind.US_SSN: _ssns,
    PiiKind.UK_NINO: _ninos,
    PiiKind.IP_ADDRESS: _ips,
}
# Where candidates overlap, the kind confirmed by the stronger evidence wins (a checksum over a shape).
_PRIORITY = [
    PiiKind.EMAIL,
    PiiKind.IBAN,
    PiiKind.CREDIT_CARD,
    PiiKind.US_SSN,
    PiiKind.UK_NINO,
    PiiKind.IP_ADDRESS,
    PiiKind.PHONE,
]


class PiiDetector:
    """Finds and redacts the personal data kinds it is given (all by default)."""

    def __init__(self, *, kinds: Iterable[PiiKind] = tuple(PiiKind)) -> None:
        self.kinds = frozenset(kinds)

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches in text order."""
        found: list[PiiMatch] = []
        for kind in _PRIORITY:
            if kind not in self.kinds:
                continue
            for match in _FINDERS[kind](text):
                if not any(match.start < other.end and other.start < match.end for other in found):
                    found.append(match)
        return sorted(found, key=lambda m: m.start)

    def redact(self, text: str) -> str:
        """``text`` with each match replaced by ``[KIND]``."""
        return replace_spans(text, [(m.start, m.end, f"[{m.kind.value}]") for m in self.find(text)])


def replace_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with non-overlapping ``(start, end, replacement)`` spans replaced; overlaps merge into the first."""
    out: list[str] = []
    position = 0
    for start, end, replacement in sorted(spans):
        if end <= position:
            continue
        if start < position:
            start = position  # overlapping the previous span: only the rest is replaced
            replacement = ""
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)
