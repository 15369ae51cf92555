"""The stream engine: a compiled pack applied to events one at a time, per-account state in memory.

Alert semantics (shared with the SQL backtest, proven equal by the parity test):

* Events are ordered per account by the key ``k = ts_ms * 65536 + tie`` (``tie`` ranks events of the
  same millisecond: by event_id in a backtest, by arrival live; a late event is processed at the
  account's latest time). A window of length W at key k covers keys in (k - W·65536, k].
* A rule is *true* on an event when the event's type is in ``on`` and ``when`` holds.
* The rule **fires** on a true event unless it was already true on an earlier event of the same
  account less than ``dedup`` ago (by key). One burst → one alert; a burst that stays true keeps
  suppressing itself, and a new alert needs a quiet gap of ``dedup``.
* ``event_ids`` = the trigger, the events inside the rule's window features and the last event
  each ``since`` feature points at, ordered by key.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path
from typing import Any

from freezedesk.monitoring.events import Event, format_ts
from freezedesk.monitoring.rules.compile_python import HEADER, compile_python
from freezedesk.monitoring.rules.features import MONEY_SCALE
from freezedesk.monitoring.rules.language import Pack

_CTX = Context(prec=80, rounding=ROUND_HALF_UP)
_ONE = Decimal(1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    account_id: str
    rule_id: str
    reason_code: str
    ts: datetime
    event_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "rule_id": self.rule_id, "reason_code": self.reason_code,
                "ts": format_ts(self.ts), "event_ids": list(self.event_ids)}

    def to_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def load_address_list(source: str | Path | Iterable[str] | None) -> frozenset[str]:
    """A set, a text file (one address per line, ``#`` comments) or None → the listed addresses."""
    if source is None:
        return frozenset()
    if isinstance(source, str | Path):
        lines: Iterable[str] = Path(source).read_text("utf-8").splitlines()
    else:
        lines = source
    return frozenset(a for a in (line.split("#", 1)[0].strip() for line in lines) if a)


def _conv_money(value: Decimal | None) -> int | None:
    # DECIMAL(38,8) semantics: round half away from zero to 8 places, keep the scaled integer.
    if value is None:
        return None
    return int(_CTX.quantize(_CTX.scaleb(value, MONEY_SCALE), _ONE))


def _conv_str(value: object) -> str | None:
    return None if value is None else str(value)


def _conv_same(value: object) -> object:
    return value


def _evict(w: list[Any], lo: int, agg: str) -> None:
    dq = w[0]
    while dq and dq[0][0] <= lo:
        _k, v, _e = dq.popleft()
        if agg == "sum":
            w[1] -= v
        elif agg == "count":
            w[1] -= 1
        elif agg == "distinct":
            n = w[1][v] - 1
            if n:
                w[1][v] = n
            else:
                del w[1][v]


def _mk_add(agg: str) -> Any:
    def add(st: list[Any], s: int, k: int, v: Any, eid: str, lo: int) -> None:
        w = st[s]
        if w is None:
            w = st[s] = [deque(), {} if agg == "distinct" else 0]
        w[0].append((k, v, eid))
        if agg == "sum":
            w[1] += v
        elif agg == "count":
            w[1] += 1
        elif agg == "distinct":
            w[1][v] = w[1].get(v, 0) + 1
        _evict(w, lo, agg)
    return add


def _win_count(w: list[Any] | None, lo: int) -> int:
    if w is None:
        return 0
    _evict(w, lo, "count")
    return int(w[1])


def _win_sum(w: list[Any] | None, lo: int) -> int:
    if w is None:
        return 0
    _evict(w, lo, "sum")
    return int(w[1])


def _win_distinct(w: list[Any] | None, lo: int) -> int:
    if w is None:
        return 0
    _evict(w, lo, "distinct")
    return len(w[1])


def _win_min(w: list[Any] | None, lo: int) -> int:
    if w is None:
        return 0
    _evict(w, lo, "min")
    return min((e[1] for e in w[0]), default=0)


def _win_max(w: list[Any] | None, lo: int) -> int:
    if w is None:
        return 0
    _evict(w, lo, "max")
    return max((e[1] for e in w[0]), default=0)


def _add_baseline(st: list[Any], s: int, day: int, v: int, days: int) -> None:
    b = st[s]
    if b is None:
        b = st[s] = {}
    b[day] = b.get(day, 0) + v
    if len(b) > days + 1:
        for old in [d for d in b if d < day - days]:
            del b[old]


def _baseline(b: dict[int, int] | None, day: int, days: int) -> int:
    """Lower median of the daily sums on the ``days`` days before ``day``, missing days = 0."""
    if b is None:
        return 0
    values = sorted(b[d] for d in range(day - days, day) if d in b)
    zeros = days - len(values)
    m = (days + 1) // 2
    return 0 if m <= zeros else values[m - zeros - 1]


def _evidence(st: list[Any], k: int, eid: str, specs: list[tuple[int, str, int]]) -> tuple[str, ...]:
    found = {eid: k}
    for s, kind, width in specs:
        w = st[s]
        if w is None:
            continue
        if kind == "since":
            if w[1] == k:  # updated by this very event: the evidence is the match before it
                w = w[3]
            if w is not None:
                found.setdefault(w[2], w[1])
        else:
            found.update((e, ek) for ek, _v, e in w[0] if ek > k - width)
    return tuple(sorted(found, key=lambda e: (found[e], e)))


class StreamEngine:
    """Runs a compiled pack over events; ``process`` returns the alerts an event fires."""

    def __init__(self, pack: Pack, address_list: str | Path | Iterable[str] | None = None) -> None:
        self.pack = pack
        self.source = compile_python(pack)
        self.states: dict[str, list[Any]] = {}
        namespace: dict[str, Any] = {
            "STATES": self.states, "LISTED": load_address_list(address_list),
            "_EPOCH": datetime(1970, 1, 1, tzinfo=UTC), "_MS": timedelta(milliseconds=1),
            "_conv_money": _conv_money, "_conv_str": _conv_str, "_conv_bool": _conv_same,
            "_conv_count": _conv_same, "_baseline": _baseline, "_add_baseline": _add_baseline,
            "_evidence": _evidence, "_win_count": _win_count, "_win_sum": _win_sum,
            "_win_distinct": _win_distinct, "_win_min": _win_min, "_win_max": _win_max,
        }
        for agg in ("count", "sum", "distinct", "min", "max"):
            namespace[f"_add_{agg}"] = _mk_add(agg)
        exec(compile(self.source, f"<pack {pack.name}>", "exec"), namespace)  # noqa: S102 (our own generated code)
        self._process = namespace["process"]

    def process(self, event: Event) -> list[Alert]:
        fired = self._process(event)
        if not fired:
            return []
        return [Alert(event.account_id, rule_id, reason, _EPOCH + timedelta(milliseconds=ts), ids)
                for rule_id, reason, ts, ids in fired]

    # -- snapshots (added for the NATS worker, monitoring/worker.py) ------------------------------

    #: Bumped whenever the *shape* of a snapshot changes (not the pack: that is the fingerprint).
    SNAPSHOT_VERSION = 1

    def fingerprint(self) -> str:
        """A hash of the generated code: two engines with equal fingerprints lay out state identically.

        State is a list of positional slots whose meaning is fixed by the compiled pack, so a
        snapshot is only meaningful to an engine compiled from the same pack (same rules, same
        parameters, same compiler). :meth:`restore` refuses anything else rather than misreading it.
        """
        return hashlib.blake2b(self.source.encode(), digest_size=16).hexdigest()

    def snapshot(self) -> bytes:
        """All per-account state as bytes, for :meth:`restore` in a later process.

        The format is :mod:`pickle` of plain containers (lists, tuples, deques, sets, dicts of ints
        and strings): it is **trusted local state** — written by this process to its own state
        directory and read back by the same deployment. Never restore bytes from anyone else:
        unpickling runs code. A ``since`` slot links each match to the one before it
        (``(ts, k, eid, previous)``); only the newest link is ever read again (``previous`` matters
        only while the event that set it is being processed), so the chain is cut to one level
        here — otherwise it grows with every match and deep chains overflow pickle's recursion.
        """
        since = [HEADER + i for i, f in enumerate(self.pack.features()) if f.kind == "since"]
        states: dict[str, list[Any]] = {}
        for acct, st in self.states.items():
            if since:
                st = list(st)
                for s in since:
                    link = st[s]
                    if link is not None and link[3] is not None:
                        st[s] = (link[0], link[1], link[2], None)
            states[acct] = st
        return pickle.dumps((self.SNAPSHOT_VERSION, self.fingerprint(), states), protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, data: bytes) -> None:
        """Replace all state with a :meth:`snapshot` (trusted bytes only: see there).

        Raises ``ValueError`` if the snapshot was taken by a different snapshot format or pack.
        The generated code holds a reference to ``self.states``, so the dict is refilled in place.
        """
        version, fingerprint, states = pickle.loads(data)  # noqa: S301 (trusted local state, see snapshot())
        if version != self.SNAPSHOT_VERSION:
            raise ValueError(f"engine snapshot format {version} is not {self.SNAPSHOT_VERSION}")
        if fingerprint != self.fingerprint():
            raise ValueError("engine snapshot was taken with a different rule pack "
                             f"({fingerprint} vs {self.fingerprint()}); rebuild the state from the stream")
        self.states.clear()
        self.states.update(states)
