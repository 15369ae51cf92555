"""Inquiry numbers: short, readable aloud, typed back without confusion.

Alphabet: the digits 2–9 and the letters A–Z without I, L and O — 31 symbols, so no
0/O or 1/I/L mix-ups. 31 is prime, which is what makes the check character strong:
the number is valid when ``sum(position_weight * value) ≡ 0 (mod 31)`` with weights
1, 2, 3, … . A single wrong character changes the sum by ``w·d`` and an adjacent swap by
``±d`` (``d`` the difference of the two values); with ``w < 31`` and ``0 < |d| < 31``
neither is divisible by the prime 31, so every such error is caught.

Printed form: ``K7M3-Q9TR-X`` (8 random symbols, 1 check symbol).
"""

from __future__ import annotations

import secrets
import unicodedata

from freezedesk.domain.errors import InvalidInquiryNumber

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_MOD = len(ALPHABET)  # 31, prime
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
BODY_LENGTH = 8
_SEPARATORS = frozenset(" -_\u3000\u30fc\u2010\u2011\u2012\u2013\u2014\u2212")  # incl. ー ‐ – — −
assert _MOD == 31


def check_symbol(body: str) -> str:
    """The check symbol that makes ``body + symbol`` valid."""
    n = len(body) + 1
    if n >= _MOD:
        raise ValueError("inquiry numbers are shorter than 31 symbols")
    partial = sum((i + 1) * _VALUE[ch] for i, ch in enumerate(body)) % _MOD
    # solve partial + n * v ≡ 0 (mod 31) for v
    value = (-partial * pow(n, -1, _MOD)) % _MOD
    return ALPHABET[value]


def is_valid_compact(compact: str) -> bool:
    if not compact or any(ch not in _VALUE for ch in compact) or len(compact) >= _MOD:
        return False
    return sum((i + 1) * _VALUE[ch] for i, ch in enumerate(compact)) % _MOD == 0


def format_number(compact: str) -> str:
    return f"{compact[0:4]}-{compact[4:8]}-{compact[8:]}"


def generate(random_symbols: str | None = None) -> str:
    """A new inquiry number in printed form."""
    body = random_symbols or "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return format_number(body + check_symbol(body))


def normalize(text: str) -> str:
    """Parse what a person typed (any case, spaces or dashes) into the printed form.

    Raises :class:`InvalidInquiryNumber` when a symbol is outside the alphabet or the check
    symbol does not match (a typo or a swap).
    """
    # NFKC folds full-width input (common with Japanese IMEs: "ＫＡ２３－…") into ASCII.
    folded = unicodedata.normalize("NFKC", text).upper()
    compact = "".join(ch for ch in folded if ch not in _SEPARATORS)
    if len(compact) != BODY_LENGTH + 1:
        raise InvalidInquiryNumber(
            f"an inquiry number has {BODY_LENGTH + 1} symbols, like K7M3-Q9TR-X"
        )
    bad = [ch for ch in compact if ch not in _VALUE]
    if bad:
        raise InvalidInquiryNumber(
            f"{bad[0]!r} is never used in inquiry numbers (there is no 0, 1, I, L or O)"
        )
    if not is_valid_compact(compact):
        raise InvalidInquiryNumber("the inquiry number has a typo: please check it again")
    return format_number(compact)
