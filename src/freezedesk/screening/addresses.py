"""Crypto addresses: per-chain normalisation, validation and an exact-match index.

A listed address must always be found, whatever case the query uses where the chain ignores
case, and a lookup must be a dictionary access. So every address gets a *canonical* form:

* ``evm`` — ``0x`` + 40 hex digits (Ethereum and every EVM chain: ETH, ETC, USDT/USDC on
  Ethereum, ARB, BSC, …). Canonical: lower case. Mixed case carries an EIP-55 checksum (keccak-256,
  from pycryptodome's ``Crypto.Hash.keccak``); a wrong checksum makes the address invalid but the
  lower-case key still finds it, because it is the same 20-byte account.
* ``bech32`` — ``bc1…``, ``tb1…``, ``ltc1…`` and other bech32/bech32m strings (BIP-173, BIP-350).
  Canonical: lower case. All-upper is valid (QR codes); mixed case is invalid.
* ``cashaddr`` — Bitcoin Cash ``bitcoincash:q…`` (prefix optional). Canonical: lower case, no prefix.
* ``base58check`` — legacy BTC ``1…``/``3…``, TRON ``T…``, LTC ``L…``/``M…``, ZEC ``t1…``, DASH,
  BTG, XVG, XRP (with Ripple's alphabet), … Case matters: canonical is the exact text; the
  4-byte double-SHA-256 checksum is verified.
* ``base58`` — Solana public keys: base58 of 32 bytes, no checksum to verify.
* ``other`` — chains this module cannot validate (XMR, …): whitespace removed, text kept as is.

Whitespace and invisible characters (zero-width space, BOM…) are removed everywhere: no chain
uses them, and a pasted address often carries them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypedDict

from Crypto.Hash import keccak

from freezedesk.screening.model import DigitalAddress, Entity

ChainFamily = Literal["evm", "bech32", "cashaddr", "base58check", "base58", "other"]

#: Families whose canonical form folds case: a query in any case finds the listed address.
CASE_INSENSITIVE: frozenset[ChainFamily] = frozenset({"evm", "bech32", "cashaddr"})


@dataclass(frozen=True, slots=True)
class NormalizedAddress:
    """``valid`` is False when a check failed (``problem`` says which); ``other`` is not checked."""

    chain_family: ChainFamily
    canonical: str
    valid: bool
    problem: str | None = None


# -- cleaning --------------------------------------------------------------------------------------

# URI schemes wallets put in front of an address (BIP-21, EIP-681); the address is the path.
_URI_SCHEMES = frozenset({"bitcoin", "litecoin", "ethereum", "tron", "dogecoin", "monero", "zcash", "dash",
                          "solana"})
_CASHADDR_PREFIXES = ("bitcoincash:", "bchtest:", "bchreg:")


def _strip(address: str) -> str:
    """Remove whitespace and invisible format characters anywhere, and a wallet URI scheme."""
    if not (address.isascii() and address.isalnum()):
        address = "".join(ch for ch in address
                          if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc"))
        scheme, sep, rest = address.partition(":")
        if sep and scheme.lower() in _URI_SCHEMES:
            address = rest.split("?", 1)[0].split("@", 1)[0]
    return address


# -- EVM -------------------------------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-fA-F]*")


def eip55(address: str) -> str:
    """The EIP-55 mixed-case checksum form of a 0x + 40-hex address."""
    body = address[2:].lower()
    digest = keccak.new(digest_bits=256, data=body.encode("ascii")).hexdigest()
    # A letter is upper case where the matching nibble of the hash of the lower-case hex is >= 8.
    return "0x" + "".join(c.upper() if c.isalpha() and int(h, 16) >= 8 else c
                          for c, h in zip(body, digest[:40], strict=True))


def _evm(text: str) -> NormalizedAddress:
    body = text[2:]
    canonical = "0x" + body.lower()
    if not _HEX.fullmatch(body):
        return NormalizedAddress("evm", canonical, False, "EVM address has characters that are not hex digits")
    if len(body) != 40:
        return NormalizedAddress("evm", canonical, False, f"EVM address needs 40 hex digits, has {len(body)}")
    if body == body.lower() or body == body.upper():
        return NormalizedAddress("evm", canonical, True)
    if eip55(canonical) != "0x" + body:
        return NormalizedAddress("evm", canonical, False, "EIP-55 checksum mismatch (mixed case)")
    return NormalizedAddress("evm", canonical, True)


# -- bech32 / bech32m (BIP-173, BIP-350) ------------------------------------------------------------

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_VALUES = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_CONST, _BECH32M_CONST = 1, 0x2BC830A3
#: Human-readable parts recognised without a currency hint. A short list on purpose: base58
#: strings can also contain "1", and only these prefixes are known to be bech32.
BECH32_HRPS = frozenset({"bc", "tb", "bcrt", "ltc", "tltc", "rltc", "zs", "bnb", "tbnb", "cosmos", "osmo",
                         "terra", "addr", "stake", "one", "inj", "sei", "celestia", "kava", "axelar"})
_SEGWIT_HRPS = frozenset({"bc", "tb", "bcrt", "ltc", "tltc", "rltc"})


def _bech32_polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: list[int], from_bits: int, to_bits: int) -> list[int] | None:
    """Regroup 5-bit words into bytes; None when the padding is not zero (BIP-173 rule)."""
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        return None
    return out


def _looks_bech32(text: str) -> bool:
    lowered = text.lower()
    hrp, sep, data = lowered.rpartition("1")
    return bool(sep) and hrp in BECH32_HRPS and len(data) >= 6 and all(c in _BECH32_VALUES for c in data)


def _bech32(text: str) -> NormalizedAddress:
    canonical = text.lower()
    if text != canonical and text != text.upper():
        return NormalizedAddress("bech32", canonical, False, "bech32 address mixes upper and lower case")
    hrp, _, data_part = canonical.rpartition("1")
    data = [_BECH32_VALUES[c] for c in data_part]
    const = _bech32_polymod(_bech32_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        return NormalizedAddress("bech32", canonical, False, "bech32 checksum mismatch")
    if hrp in _SEGWIT_HRPS:
        problem = _segwit_problem(data[:-6], const)
        if problem:
            return NormalizedAddress("bech32", canonical, False, problem)
    return NormalizedAddress("bech32", canonical, True)


def _segwit_problem(words: list[int], const: int) -> str | None:
    """BIP-173/350 rules for a segwit address: version, program length, checksum variant."""
    if not words:
        return "segwit address has no witness version"
    version = words[0]
    program = _convert_bits(words[1:], 5, 8)
    if version > 16 or program is None or not 2 <= len(program) <= 40:
        return "not a valid segwit witness program"
    if version == 0 and len(program) not in (20, 32):
        return "segwit v0 program must be 20 or 32 bytes"
    if (version == 0) != (const == _BECH32_CONST):
        return "segwit v0 needs bech32, v1+ needs bech32m (BIP-350)"
    return None


# -- cashaddr (Bitcoin Cash) -----------------------------------------------------------------------

def _cashaddr_polymod(values: Iterable[int]) -> int:
    generator = (0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)
    chk = 1
    for v in values:
        top = chk >> 35
        chk = ((chk & 0x07FFFFFFFF) << 5) ^ v
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk ^ 1


def _looks_cashaddr(text: str, currency: str | None) -> bool:
    lowered = text.lower()
    if lowered.startswith(_CASHADDR_PREFIXES):
        return True
    # Without its prefix a cashaddr is 42 characters starting q (P2PKH) or p (P2SH).
    return (currency in ("BCH", "XEC") and len(lowered) == 42 and lowered[0] in "qp"
            and all(c in _BECH32_VALUES for c in lowered))


def _cashaddr(text: str) -> NormalizedAddress:
    lowered = text.lower()
    prefix, sep, payload = lowered.partition(":")
    if not sep:
        prefix, payload = "bitcoincash", lowered
    if text != lowered and text != text.upper():
        return NormalizedAddress("cashaddr", payload, False, "cashaddr mixes upper and lower case")
    if not payload or any(c not in _BECH32_VALUES for c in payload):
        return NormalizedAddress("cashaddr", payload, False, "cashaddr has characters outside its alphabet")
    values = [ord(c) & 31 for c in prefix] + [0] + [_BECH32_VALUES[c] for c in payload]
    if _cashaddr_polymod(values) != 0:
        return NormalizedAddress("cashaddr", payload, False, "cashaddr checksum mismatch")
    return NormalizedAddress("cashaddr", payload, True)


# -- base58 ----------------------------------------------------------------------------------------

BITCOIN_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
RIPPLE_ALPHABET = "rpshnaf39wBUDNEGHJKLM4PQRST7VWXYZ2bcdeCg65jkm8oFqi1tuvAxyz"
_B58_VALUES = {alphabet: {c: i for i, c in enumerate(alphabet)} for alphabet in (BITCOIN_ALPHABET, RIPPLE_ALPHABET)}


def b58decode(text: str, alphabet: str = BITCOIN_ALPHABET) -> bytes | None:
    """Base58 text → bytes (leading zero digits become zero bytes); None for a foreign character."""
    values = _B58_VALUES[alphabet]
    number = 0
    for ch in text:
        digit = values.get(ch)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip(alphabet[0]))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def _checksum_ok(raw: bytes) -> bool:
    return len(raw) > 4 and hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4] == raw[-4:]


def _base58(text: str, currency: str | None) -> NormalizedAddress | None:
    """Base58check (or a Solana key); None when the text is not base58 at all."""
    alphabet = RIPPLE_ALPHABET if currency == "XRP" else BITCOIN_ALPHABET
    raw = b58decode(text, alphabet)
    if raw is None:
        return None
    if currency == "SOL" or (len(raw) == 32 and 32 <= len(text) <= 44 and not _checksum_ok(raw)):
        if len(raw) == 32:
            return NormalizedAddress("base58", text, True)
        return NormalizedAddress("base58", text, False, f"Solana key must be 32 bytes, has {len(raw)}")
    if not 25 <= len(text) <= 36:
        return None
    if not _checksum_ok(raw):
        return NormalizedAddress("base58check", text, False, "base58check checksum mismatch")
    return NormalizedAddress("base58check", text, True)


# -- entry point -----------------------------------------------------------------------------------

@lru_cache(maxsize=16_384)
def normalize_address(address: str, currency: str | None = None) -> NormalizedAddress:
    """Classify an address by its shape (``currency`` only settles ambiguous shapes), give its
    canonical form and say whether it passes its chain's checks.

    >>> normalize_address("0x8576ACC5C05D6CE88F4E49BF65BDF0C62F91353C").canonical
    '0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c'

    Cached: checksums cost 2–30 µs (bech32 and keccak in Python), and an exchange screens the
    same counterparty addresses again and again.
    """
    currency = currency.strip().upper() if currency else None
    text = _strip(address)
    if not text:
        return NormalizedAddress("other", "", False, "empty address")
    if text[:2] in ("0x", "0X"):
        return _evm(text)
    if _looks_cashaddr(text, currency):
        return _cashaddr(text)
    if _looks_bech32(text):
        return _bech32(text)
    result = _base58(text, currency)
    if result is not None:
        return result
    if not text.isascii() or not text.isprintable():
        return NormalizedAddress("other", text, False, "address has characters no chain uses")
    return NormalizedAddress("other", text, True)


# -- index -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ListedAddress:
    """One listing of an address: which entity, under which currency code, as the list wrote it."""

    entity_id: str
    currency: str
    address: str
    chain_family: ChainFamily


class AddressLookup(TypedDict):
    """What :meth:`AddressIndex.lookup` answers: the query's own normalisation plus the listings."""

    canonical: str
    chain_family: ChainFamily
    valid: bool
    problem: str | None
    entity_ids: list[str]
    listed_currency: str | None
    listings: list[dict[str, str]]


class AddressIndex:
    """Exact lookup of listed addresses by canonical form: two dictionaries, nothing else.

    Case-sensitive families (base58, other) are keyed by their exact text, case-insensitive ones
    (EVM, bech32, cashaddr) by lower case; a query is tried against both, so it needs no
    classification and costs two ``dict.get`` calls. Built once per list version and never
    changed, so readers need no lock."""

    __slots__ = ("_exact", "_folded", "problems")

    def __init__(self) -> None:
        self._exact: dict[str, tuple[ListedAddress, ...]] = {}
        self._folded: dict[str, tuple[ListedAddress, ...]] = {}
        #: Listed addresses that fail their chain's checks (entity id, address, problem). They are
        #: indexed all the same: a typo in the list is still what the list says.
        self.problems: list[tuple[str, str, str]] = []

    @classmethod
    def build(cls, entities: Iterable[Entity]) -> AddressIndex:
        index = cls()
        for entity in entities:
            for listed in entity.addresses:
                index._add(entity.id, listed)
        return index

    def _add(self, entity_id: str, listed: DigitalAddress) -> None:
        norm = normalize_address(listed.address, listed.currency)
        if not norm.canonical:
            return
        if not norm.valid and norm.problem:
            self.problems.append((entity_id, listed.address, norm.problem))
        entry = ListedAddress(entity_id, listed.currency, listed.address, norm.chain_family)
        table = self._folded if norm.chain_family in CASE_INSENSITIVE else self._exact
        key = norm.canonical
        if entry not in table.get(key, ()):
            table[key] = (*table.get(key, ()), entry)

    def find(self, address: str) -> tuple[ListedAddress, ...]:
        """Every listing of this address (O(1)); empty when it is not listed."""
        text = address.strip()
        if not (text.isascii() and text.isalnum()):
            text = _strip(text)
        exact = self._exact.get(text, ())
        folded_key = text.lower()
        if folded_key.startswith(_CASHADDR_PREFIXES):
            folded_key = folded_key.partition(":")[2]
        folded = self._folded.get(folded_key, ())
        if exact and folded:
            return exact + folded
        return exact or folded

    def lookup(self, address: str, currency: str | None = None) -> AddressLookup:
        """:meth:`find` plus the query's normalisation, as the API and the service report it."""
        norm = normalize_address(address, currency)
        found = self.find(address)
        return {
            "canonical": norm.canonical,
            "chain_family": norm.chain_family,
            "valid": norm.valid,
            "problem": norm.problem,
            "entity_ids": list(dict.fromkeys(hit.entity_id for hit in found)),
            "listed_currency": found[0].currency if found else None,
            "listings": [{"entity_id": h.entity_id, "currency": h.currency, "address": h.address} for h in found],
        }

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and bool(self.find(address))

    def __len__(self) -> int:
        """Distinct canonical addresses."""
        return len(self._exact) + len(self._folded)
