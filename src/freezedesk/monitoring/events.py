"""The event model of transaction monitoring, and its pure parser.

The exchange core reports what happens on an account — deposits, withdrawals, trades, transfers,
logins, security changes, onboarding and KYC results — as JSON objects, one event per object,
either as JSON Lines or as one JSON array. This module turns such objects into frozen,
fully-validated :class:`Event` values and does nothing else: no I/O, no clock, no database. The
API, the CLI, the synthetic generator and (later) the rule engines all share it, so an event
that one of them accepts is accepted by all.

Validation is exhaustive rather than fail-fast: :func:`parse_event` checks every field and
raises one :class:`EventValidationError` listing *every* problem as ``(line, field, message)``,
so an operator fixes a bad export in one pass instead of one error per run. :func:`parse_batch`
goes further: a batch is accepted whole or rejected whole, with every problem of every event.

Money is exact. Amounts, prices and USD values must be JSON *strings* holding a plain decimal
(``"0.015"``, not ``0.015``): a JSON number is read as a binary float by most JSON libraries on
the way in, and ``0.1 + 0.2`` is not ``0.3``. A float amount is therefore rejected, not rounded.

Times are RFC 3339 with an explicit offset. ``2025-03-01T09:00:00+09:00`` is accepted and
becomes ``2025-03-01T00:00:00Z``; a time without an offset is rejected because nobody can tell
which instant it means.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Final

from freezedesk.domain.errors import DomainError

# -- vocabularies ---------------------------------------------------------------------------------


class EventType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRADE = "trade"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    LOGIN = "login"
    SECURITY_CHANGE = "security_change"
    ACCOUNT_OPENED = "account_opened"
    KYC_UPDATE = "kyc_update"


class SecurityChangeKind(StrEnum):
    PASSWORD = "password"  # noqa: S105 (a change kind, not a secret)
    TWO_FA_ENABLED = "2fa_enabled"
    TWO_FA_DISABLED = "2fa_disabled"
    EMAIL = "email"
    PHONE = "phone"
    WITHDRAW_ADDRESS_ADDED = "withdraw_address_added"
    API_KEY_CREATED = "api_key_created"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class KycStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


#: The chain of a bank transfer; any other chain is a crypto network code such as BTC, ETH, TRON.
FIAT: Final = "FIAT"

#: Largest number of integer and fractional digits a decimal field may carry. 18 fractional digits
#: is the smallest unit of ETH (wei); 24 integer digits covers any supply of any token in USD.
MAX_INTEGER_DIGITS: Final = 24
MAX_FRACTION_DIGITS: Final = 18

#: Highest KYC level an exchange may report (levels are small integers: 0 = none, 1 = basic, ...).
MAX_KYC_LEVEL: Final = 9

# The same shape as the partner API's account ids (web.api.schemas.ACCOUNT_ID_PATTERN), repeated
# here because this module must not import the web edge.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
_ASSET = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,19}")
_CHAIN = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,15}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}(?:[-/_][A-Z0-9]{1,20})?")
_OPAQUE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII without spaces: addresses, device ids
_DECIMAL = re.compile(rf"(\d{{1,{MAX_INTEGER_DIGITS}}})(?:\.(\d{{1,{MAX_FRACTION_DIGITS}}}))?")
# RFC 3339 date-time; the offset group is mandatory. fromisoformat() alone would also take
# "2025-03-01" or "2025-03-01T09:00" and guess midnight or local time.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)


@cache
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, plus XK (Kosovo), which exchanges and the lists use."""
    import pycountry  # packaged data; imported lazily so importing this module stays cheap

    return frozenset({c.alpha_2 for c in pycountry.countries} | {"XK"})


# -- the events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries. ``type`` is fixed by the subclass, never stored twice."""

    type: ClassVar[EventType]

    event_id: str
    ts: datetime  # timezone-aware, UTC
    account_id: str

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON object: what :func:`parse_event` reads back to an equal event.

        Decimals are written as strings (exact), times as ``...Z``; the result is what the
        ``events`` table stores and what the synthetic generator writes.
        """
        out: dict[str, Any] = {"event_id": self.event_id, "ts": format_ts(self.ts),
                               "account_id": self.account_id, "type": self.type.value}
        for name in _TYPE_FIELDS[self.type]:
            value = getattr(self, name)
            out[name] = format_decimal(value) if isinstance(value, Decimal) else (
                value.value if isinstance(value, StrEnum) else value)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class _ChainMovement(Event):
    asset: str
    amount: Decimal
    value_usd: Decimal
    chain: str  # a network code, or FIAT for a bank transfer
    address: str  # a crypto address, or the bank account id when chain is FIAT


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(_ChainMovement):
    type: ClassVar[EventType] = EventType.DEPOSIT


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal(_ChainMovement):
    type: ClassVar[EventType] = EventType.WITHDRAWAL


@dataclass(frozen=True, slots=True, kw_only=True)
class _Transfer(Event):
    asset: str
    amount: Decimal
    value_usd: Decimal
    counterparty_account_id: str  # the other account on this exchange


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferIn(_Transfer):
    type: ClassVar[EventType] = EventType.TRANSFER_IN


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferOut(_Transfer):
    type: ClassVar[EventType] = EventType.TRANSFER_OUT


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade(Event):
    type: ClassVar[EventType] = EventType.TRADE
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    value_usd: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Login(Event):
    type: ClassVar[EventType] = EventType.LOGIN
    ip: str  # canonical text form (IPv6 compressed, lower case)
    country: str  # ISO 3166-1 alpha-2
    device_id: str
    success: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityChange(Event):
    type: ClassVar[EventType] = EventType.SECURITY_CHANGE
    change: SecurityChangeKind


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    type: ClassVar[EventType] = EventType.ACCOUNT_OPENED
    country: str
    kyc_level: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KycUpdate(Event):
    type: ClassVar[EventType] = EventType.KYC_UPDATE
    kyc_level: int
    status: KycStatus


EVENT_CLASSES: Final[Mapping[EventType, type[Event]]] = {
    cls.type: cls
    for cls in (Deposit, Withdrawal, TransferIn, TransferOut, Trade, Login, SecurityChange, AccountOpened,
                KycUpdate)
}
_COMMON: Final = ("event_id", "ts", "account_id", "type")


# -- errors ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one event. ``line`` is the file line (or the array index for the API);
    ``field`` is empty when the problem is the whole object (not JSON, not an object)."""

    line: int
    field: str
    message: str

    def render(self, source: str, position: str = "line") -> str:
        """``FILE:LINE: field 'x': message``, or ``events[INDEX]: ...`` for an API batch."""
        where = f"{source}[{self.line}]: " if position == "index" else f"{source}:{self.line}: "
        return where + (f"field {self.field!r}: {self.message}" if self.field else self.message)


class EventValidationError(DomainError):
    """One or more events are invalid; nothing of their batch has been stored."""

    type = "invalid-events"
    title = "One or more events are invalid"

    def __init__(self, problems: Sequence[Problem], source: str = "<events>", position: str = "line") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        self.position = position  # what Problem.line counts: "line" of a file or "index" in an array
        first = self.problems[0].render(source, position) if self.problems else "no problems"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        # The machine-readable list: the API returns it as the problem document's ``errors``.
        super().__init__(first + more, errors=[{position: p.line, "field": p.field, "message": p.message}
                                               for p in self.problems])

    def lines(self) -> list[str]:
        """Every problem as ``SOURCE:LINE: field 'x': message`` — the CLI prints these."""
        return [p.render(self.source, self.position) for p in self.problems]


# -- formatting -----------------------------------------------------------------------------------


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only when present (so whole seconds stay short)."""
    utc = ts.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def format_decimal(value: Decimal) -> str:
    """A plain decimal string, never scientific notation (``Decimal('1E+3')`` → ``"1000"``)."""
    return format(value, "f")


# -- parsing one event ----------------------------------------------------------------------------


class _Checker:
    """Collects every problem of one object while pulling its fields out."""

    def __init__(self, obj: Mapping[str, Any], line: int) -> None:
        self.obj = obj
        self.line = line
        self.problems: list[Problem] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.line, field, message))

    def _present(self, name: str) -> Any:
        if name not in self.obj or self.obj[name] is None:
            self.fail(name, "is required")
            return None
        return self.obj[name]

    def string(self, name: str, pattern: re.Pattern[str], shape: str) -> str | None:
        value = self._present(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"must be a string ({shape}), not {_json_kind(value)}")
            return None
        if not pattern.fullmatch(value):
            self.fail(name, f"{_quote(value)} is not {shape}")
            return None
        return value

    def choice(self, name: str, enum: type[StrEnum]) -> Any:
        value = self._present(name)
        if value is None:
            return None
        allowed = [m.value for m in enum]
        if not isinstance(value, str) or value not in allowed:
            self.fail(name, f"{_quote(value)} is not one of {', '.join(allowed)}")
            return None
        return enum(value)

    def decimal(self, name: str) -> Decimal | None:
        value = self._present(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str):
            if isinstance(value, int | float) and not isinstance(value, bool):
                # The reason money must travel as text: a JSON number has usually become a binary
                # float before anyone could look at it.
                self.fail(name, f"must be a decimal string such as \"{value}\", not a JSON number "
                                "(numbers lose precision)")
            else:
                self.fail(name, f"must be a decimal string, not {_json_kind(value)}")
            return None
        match = _DECIMAL.fullmatch(value)
        if match is None:
            self.fail(name, f"{_quote(value)} is not a non-negative decimal with at most {MAX_INTEGER_DIGITS} "
                            f"integer and {MAX_FRACTION_DIGITS} fractional digits (e.g. \"1250.50\")")
            return None
        return Decimal(value)

    def timestamp(self, name: str) -> datetime | None:
        value = self._present(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"must be an RFC 3339 time string, not {_json_kind(value)}")
            return None
        match = _RFC3339.fullmatch(value)
        if match is None:
            self.fail(name, f"{_quote(value)} is not an RFC 3339 time such as \"2025-03-01T09:30:00Z\"")
            return None
        if match.group("offset") is None:
            self.fail(name, f"{_quote(value)} has no UTC offset; add 'Z' (or +HH:MM) so the instant is unambiguous")
            return None
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:  # the shape was right but e.g. the 31st of February
            self.fail(name, f"{_quote(value)} is not a real date and time")
            return None
        return parsed.astimezone(UTC)

    def boolean(self, name: str) -> bool | None:
        value = self._present(name)
        if value is None:
            return None
        if not isinstance(value, bool):  # 0/1 and "true" are refused: a typo must not become "success"
            self.fail(name, f"must be true or false, not {_json_kind(value)}")
            return None
        return value

    def level(self, name: str) -> int | None:
        value = self._present(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KYC_LEVEL:
            self.fail(name, f"must be an integer from 0 to {MAX_KYC_LEVEL}, not {_quote(value)}")
            return None
        return value

    def country(self, name: str) -> str | None:
        value = self.string(name, re.compile(r"[A-Z]{2}"), "an upper-case ISO 3166-1 alpha-2 code such as \"JP\"")
        if value is not None and value not in iso_countries():
            self.fail(name, f"{_quote(value)} is not an ISO 3166-1 alpha-2 country code")
            return None
        return value

    def ip(self, name: str) -> str | None:
        value = self._present(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"must be an IP address string, not {_json_kind(value)}")
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            self.fail(name, f"{_quote(value)} is not an IPv4 or IPv6 address")
            return None


def _json_kind(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _quote(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Per-type fields, in the order they are checked (and written by Event.to_json()).
_TYPE_FIELDS: Final[Mapping[EventType, tuple[str, ...]]] = {
    t: tuple(f.name for f in fields(cls) if f.name not in _COMMON) for t, cls in EVENT_CLASSES.items()
}


def _type_fields(kind: EventType, c: _Checker) -> dict[str, Any]:
    if kind in (EventType.DEPOSIT, EventType.WITHDRAWAL):
        return {"asset": c.string("asset", _ASSET, "an upper-case asset code such as \"BTC\""),
                "amount": c.decimal("amount"), "value_usd": c.decimal("value_usd"),
                "chain": c.string("chain", _CHAIN, f"a network code such as \"ETH\" or \"{FIAT}\""),
                "address": c.string("address", _OPAQUE, "an address of 1-200 printable characters without spaces")}
    if kind in (EventType.TRANSFER_IN, EventType.TRANSFER_OUT):
        fields_ = {"asset": c.string("asset", _ASSET, "an upper-case asset code such as \"BTC\""),
                   "amount": c.decimal("amount"), "value_usd": c.decimal("value_usd"),
                   "counterparty_account_id": c.string("counterparty_account_id", _ID, "an account id")}
        if fields_["counterparty_account_id"] is not None and fields_["counterparty_account_id"] == c.obj.get(
                "account_id"):
            c.fail("counterparty_account_id", "is the account itself")
        return fields_
    if kind is EventType.TRADE:
        return {"symbol": c.string("symbol", _SYMBOL, "a market symbol such as \"BTC-USDT\""),
                "side": c.choice("side", Side), "amount": c.decimal("amount"), "price": c.decimal("price"),
                "value_usd": c.decimal("value_usd")}
    if kind is EventType.LOGIN:
        return {"ip": c.ip("ip"), "country": c.country("country"),
                "device_id": c.string("device_id", _OPAQUE, "a device id of 1-200 printable characters"),
                "success": c.boolean("success")}
    if kind is EventType.SECURITY_CHANGE:
        return {"change": c.choice("change", SecurityChangeKind)}
    if kind is EventType.ACCOUNT_OPENED:
        return {"country": c.country("country"), "kyc_level": c.level("kyc_level")}
    return {"kyc_level": c.level("kyc_level"), "status": c.choice("status", KycStatus)}


def check_event(obj: object, line: int) -> tuple[Event | None, list[Problem]]:
    """Like :func:`parse_event` but returns the problems instead of raising (for batch callers)."""
    if not isinstance(obj, dict):
        return None, [Problem(line, "", f"an event must be a JSON object, not {_json_kind(obj)}")]
    c = _Checker(obj, line)
    event_id = c.string("event_id", _ID, "an id of 1-128 letters, digits and _ . : @ -")
    ts = c.timestamp("ts")
    account_id = c.string("account_id", _ID, "an account id of 1-128 letters, digits and _ . : @ -")
    kind: EventType | None = c.choice("type", EventType)
    if kind is None:
        return None, c.problems
    values = _type_fields(kind, c)
    known = set(_COMMON) | set(_TYPE_FIELDS[kind])
    # Unknown fields are errors, not noise: "amout" silently ignored is an amount silently missing.
    for name in sorted(k for k in obj if k not in known):
        c.fail(name, f"is not a field of a {kind.value} event (its fields: {', '.join(_TYPE_FIELDS[kind])})")
    if c.problems or event_id is None or ts is None or account_id is None:  # no problems ⇒ all present
        return None, c.problems
    return EVENT_CLASSES[kind](event_id=event_id, ts=ts, account_id=account_id, **values), []


def parse_event(obj: object, line: int) -> Event:
    """Validate one decoded JSON value; raise :class:`EventValidationError` with every problem.

    >>> parse_event({"event_id": "e1", "ts": "2025-03-01T09:00:00+09:00", "account_id": "a1",
    ...              "type": "security_change", "change": "password"}, 1).ts.isoformat()
    '2025-03-01T00:00:00+00:00'
    """
    event, problems = check_event(obj, line)
    if event is None:
        raise EventValidationError(problems)
    return event


# -- batches --------------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; {"amount": "1", "amount": "1000"} must not pass.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys)
_WS = re.compile(r"[ \t\n\r]*")


def _error_text(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    return f"not valid JSON: {exc}"


def decode_lines(lines: Iterable[str], first_line: int = 1) -> Iterator[tuple[int, object | Problem]]:
    """JSON Lines → ``(line number, value or Problem)``; blank lines are skipped."""
    for number, text in enumerate(lines, start=first_line):
        if not text.strip():
            continue
        try:
            yield number, _DECODER.decode(text)
        except ValueError as exc:
            yield number, Problem(number, "", _error_text(exc))


def decode_array(text: str) -> Iterator[tuple[int, object | Problem]]:
    """A JSON array → ``(line where each element starts, value)``.

    Elements are decoded one at a time with ``raw_decode`` so each event keeps the line it was
    written on — error messages can then point into the file, as they do for JSON Lines. A
    syntax error ends the array (there is no reliable way to resynchronise inside one).
    """
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]  # [ \t\n\r]* always matches
    assert text[pos] == "["
    line, counted = 1, 0

    def line_at(offset: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, offset)
        counted = offset
        return line

    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if pos != len(text):
            yield line_at(pos), Problem(line_at(pos), "", "not valid JSON: text after the closing ']'")
        return
    while True:
        at = line_at(pos)
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            yield at, Problem(at, "", _error_text(exc))
            return
        yield at, value
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            continue
        if text.startswith("]", pos):
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            if pos != len(text):
                yield line_at(pos), Problem(line_at(pos), "", "not valid JSON: text after the closing ']'")
            return
        yield line_at(pos), Problem(line_at(pos), "", "not valid JSON: expected ',' or ']' after an event")
        return


def validate_values(values: Iterable[tuple[int, object | Problem]], source: str = "<events>",
                    position: str = "line") -> list[Event]:
    """Validate decoded values as one batch: all events, or :class:`EventValidationError` with all problems.

    A duplicate ``event_id`` inside the batch is a problem of the later occurrence (a batch that
    contradicts itself cannot be replayed meaningfully); ids already *stored* are not checked
    here — that is ingestion's job, and it skips them.
    """
    events: list[Event] = []
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for line, value in values:
        if isinstance(value, Problem):
            problems.append(value)
            continue
        event, found = check_event(value, line)
        problems.extend(found)
        # Check ids even of otherwise invalid events, so one pass reports the duplicates too.
        event_id = event.event_id if event is not None else (
            value.get("event_id") if isinstance(value, dict) and isinstance(value.get("event_id"), str) else None)
        if event_id is not None:
            if event_id in first_seen:
                problems.append(Problem(line, "event_id", f"{_quote(event_id)} repeats the event at "
                                                          f"{first_seen[event_id]}; event ids must be unique"))
                continue
            first_seen[event_id] = line
        if event is not None:
            events.append(event)
    if problems:
        raise EventValidationError(problems, source, position)
    return events


def parse_batch(text_or_lines: str | Iterable[str], source: str = "<events>") -> list[Event]:
    """Parse a whole batch — JSON Lines or a JSON array — and validate every event in it.

    A string whose first non-blank character is ``[`` is read as a JSON array; any other string,
    or an iterable of lines (an open file), as JSON Lines. Either every event is valid and unique
    and the list is returned in input order, or :class:`EventValidationError` lists every problem
    with its line and field; ``source`` (a file name) prefixes each rendered problem.
    """
    if isinstance(text_or_lines, str):
        if text_or_lines.lstrip(" \t\r\n").startswith("["):
            return validate_values(decode_array(text_or_lines), source)
        return validate_values(decode_lines(text_or_lines.splitlines()), source)
    return validate_values(decode_lines(text_or_lines), source)
