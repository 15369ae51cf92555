"""The feature catalogue: every name a rule may use, with its type.

A rule sees three kinds of names:

* **event attributes** — fields of the event being evaluated (``value_usd``, ``chain``, ...), as
  listed in issue 4 and modelled by :mod:`freezedesk.monitoring.events`. An attribute that the
  event's type does not carry is *absent*: a filter on it is false, and in an expression it reads
  as the attribute type's zero (0, ``""``, false) so that both engines agree without NULL logic.
* **built-in derived features** — ``account_age`` (time since the account's first event) and
  ``listed`` (the event's address is on the operator's address list).
* **declared features** — windows, ``since``, ``first_use`` and ``baseline`` features that a rule
  declares under ``features:`` (see :mod:`.language`).

Types drive the exact arithmetic of both compilers: ``money`` is carried as an integer number of
1e-8 units (the internal representation of DuckDB's DECIMAL(38,8), so Python and SQL compare
the very same integers), ``duration`` as integer milliseconds, ``count`` as an integer.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["money", "count", "duration", "bool", "str", "num"]

#: Money is scaled by 10**MONEY_SCALE: 12.5 USD is the integer 1_250_000_000.
MONEY_SCALE: Final = 8

EVENT_TYPES: Final = frozenset({
    "deposit", "withdrawal", "trade", "transfer_in", "transfer_out", "login", "security_change",
    "account_opened", "kyc_update",
})

#: Event attributes: name → kind. ``type`` is present on every event.
ATTRIBUTES: Final[dict[str, Kind]] = {
    "type": "str",
    "asset": "str",
    "amount": "money",
    "value_usd": "money",
    "price": "money",
    "chain": "str",
    "address": "str",
    "counterparty_account_id": "str",
    "symbol": "str",
    "side": "str",
    "ip": "str",
    "country": "str",
    "device_id": "str",
    "success": "bool",
    "change": "str",
    "kyc_level": "count",
    "status": "str",
}

#: Built-in derived features: name → kind.
BUILTINS: Final[dict[str, Kind]] = {
    "account_age": "duration",  # ts - ts of the account's first event seen by the engine
    "listed": "bool",  # the event's address is on the address list
}

#: Window aggregates and the kind of their result given the kind of ``of``.
AGGREGATES: Final = frozenset({"count", "sum", "min", "max", "distinct"})

#: Zero value of each kind (absent attributes read as this in expressions).
ZERO: Final[dict[Kind, object]] = {"money": 0, "count": 0, "duration": 0, "bool": False, "str": "", "num": 0}

DURATION_UNITS: Final[dict[str, int]] = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: Ordering key: ``k = ts_ms * TIE_SLOTS + tie`` where ``tie`` ranks an account's events that share
#: one millisecond (by event_id in backtests, by arrival in the live stream). Windows are measured
#: on k, so both engines agree on which same-millisecond events are "before" an event.
TIE_SLOTS: Final = 65_536
DAY_MS: Final = 86_400_000
