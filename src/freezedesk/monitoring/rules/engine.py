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
import secrets
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path
from typing import Any

from freezedesk.monitoring.events import Event, format_ts
from freezedesk.monitoring.rules.compile_python import AGG as _AGG
from freezedesk.monitoring.rules.compile_python import FIRST_USE as _FIRST_USE
from freezedesk.monitoring.rules.compile_python import LOG as _LOG
from freezedesk.monitoring.rules.compile_python import compile_python
from freezedesk.monitoring.rules.features import MONEY_SCALE
from freezedesk.monitoring.rules.features import TIE_SLOTS as _TIE_SLOTS
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


def fold_listed(addresses: Iterable[str]) -> frozenset[str]:
    """The listed set as both engines match it: as given, plus every EVM address (``0x…``) in lower
    case. EIP-55 mixed case is a checksum, not part of the address, so lists print the same
    address checksummed or not; an event's EVM address is looked up as given, then lower-cased
    (other chains — base58, cashaddr — are case-sensitive and only ever matched exactly)."""
    addresses = frozenset(addresses)
    return addresses | {a.lower() for a in addresses if a[:2] in ("0x", "0X")}


def _conv_money(value: Decimal | None) -> int | None:
    # DECIMAL(38,8) semantics: round half away from zero to 8 places, keep the scaled integer.
    if value is None:
        return None
    return int(_CTX.quantize(_CTX.scaleb(value, MONEY_SCALE), _ONE))


def _conv_str(value: object) -> str | None:
    return None if value is None else str(value)


def _conv_same(value: object) -> object:
    return value


#: Up to this many events a window log is a tuple (smallest), beyond a list (amortised appends).
_LOG_TUPLE_MAX = 4


#: From this many events in a log on, window reads keep running aggregates (``st[AGG]``).
_AGG_MIN = 48


def _log_cut(st: list[Any], log: Any, lo_m: int, stride: int) -> None:
    """Drop the log's entries below ``lo_m`` (the shifted lower bound of the pack's longest window at
    the account's current key: no window can read them again); the log is ``None`` if none is left."""
    cache = st[_AGG]
    if log[-stride] < lo_m:
        st[_LOG] = st[_AGG] = None
        return
    i = stride
    while log[i] < lo_m:
        i += stride
    if cache is not None:  # running aggregates forget the cut entries first
        base = cache[0] + i // stride
        for j, c in cache[1].items():
            if c[0] < base:
                _agg_evict(log, cache[0], c, base, 1 << j, stride)
        cache[0] = base
    if type(log) is tuple:
        st[_LOG] = log[i:]
    else:
        del log[:i]


def _log_add(st: list[Any], row: tuple[Any, ...]) -> None:
    """Append one event (``k << NB | mask, event_id, *values``) to the account's window log."""
    log = st[_LOG]
    if log is None:
        st[_LOG] = row
    elif type(log) is list:
        log += row
    elif len(log) < _LOG_TUPLE_MAX * len(row):
        st[_LOG] = log + row
    else:
        st[_LOG] = [*log, *row]


# A running aggregate of window j over a long log is ``[pos, end, agg, kind, vpos]``: ``agg`` covers
# the entries with absolute index in [pos, end) whose mask has bit j (absolute index = index in the
# log + ``cache[0]``, the number of entries ever cut). Reads come with a non-decreasing lower bound
# (the account's key never decreases), so each entry is added once and evicted once.


def _agg_evict(log: list[Any], base: int, c: list[Any], upto: int, bit: int, stride: int) -> None:
    """Remove the entries with absolute index in [pos, min(end, upto)) from the aggregate."""
    pos, end, agg, kind, vpos = c
    stop = min(end, upto)
    while pos < stop:
        i = (pos - base) * stride
        if log[i] & bit:
            if kind == "count":
                agg -= 1
            elif kind == "sum":
                agg -= log[i + vpos]
            else:
                v = log[i + vpos]
                n = agg[v] - 1
                if n:
                    agg[v] = n
                else:
                    del agg[v]
        pos += 1
    c[0], c[2] = upto, agg  # everything below ``upto`` is now out (or cut)
    if c[1] < upto:
        c[1] = upto


def _agg_read(st: list[Any], log: list[Any], lo_m: int, j: int, vpos: int, stride: int, kind: str) -> Any:
    cache = st[_AGG]
    if cache is None:
        cache = st[_AGG] = [0, {}]
    base = cache[0]
    c = cache[1].get(j)
    if c is None:
        c = cache[1][j] = [base, base, {} if kind == "distinct" else 0, kind, vpos]
    bit = 1 << j
    n = len(log) // stride
    end, agg = c[1], c[2]
    while end < base + n:  # add what was appended since the last read
        i = (end - base) * stride
        if log[i] & bit:
            if kind == "count":
                agg += 1
            elif kind == "sum":
                agg += log[i + vpos]
            else:
                v = log[i + vpos]
                agg[v] = agg.get(v, 0) + 1
        end += 1
    c[1], c[2] = end, agg
    pos = c[0]
    while pos < end and log[(pos - base) * stride] < lo_m:
        pos += 1
    if pos > c[0]:
        _agg_evict(log, base, c, pos, bit, stride)
    return len(c[2]) if kind == "distinct" else c[2]


# _win_count and _win_sum are twins on purpose: they run per event per window on the stream's hot
# path, and a shared scanner with a callback or a branch per entry costs more than the repetition.
def _win_count(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> int:
    log = st[_LOG]
    if log is None:
        return 0
    if len(log) >= _AGG_MIN * stride:
        return int(_agg_read(st, log, lo_m, j, pos, stride, "count"))
    bit = 1 << j
    n = 0
    i = len(log) - stride
    while i >= 0:
        km = log[i]
        if km < lo_m:
            break
        if km & bit:
            n += 1
        i -= stride
    return n


def _win_sum(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> int:
    log = st[_LOG]
    if log is None:
        return 0
    if len(log) >= _AGG_MIN * stride:
        return int(_agg_read(st, log, lo_m, j, pos, stride, "sum"))
    bit = 1 << j
    t = 0
    i = len(log) - stride
    while i >= 0:
        km = log[i]
        if km < lo_m:
            break
        if km & bit:
            t += log[i + pos]
        i -= stride
    return t


def _win_values(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> list[Any]:
    log = st[_LOG]
    out = []
    if log is not None:
        bit = 1 << j
        i = len(log) - stride
        while i >= 0:
            km = log[i]
            if km < lo_m:
                break
            if km & bit:
                out.append(log[i + pos])
            i -= stride
    return out


def _win_distinct(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> int:
    log = st[_LOG]
    if log is not None and len(log) >= _AGG_MIN * stride:
        return int(_agg_read(st, log, lo_m, j, pos, stride, "distinct"))
    return len(set(_win_values(st, lo_m, j, pos, stride)))


def _win_min(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> int:
    return min(_win_values(st, lo_m, j, pos, stride), default=0)


def _win_max(st: list[Any], lo_m: int, j: int, pos: int, stride: int) -> int:
    return max(_win_values(st, lo_m, j, pos, stride), default=0)


def _fu_hasher(key: bytes) -> Any:
    """Keyed 64-bit hash (8 bytes) of a first_use value, salted by the feature's index in the pack.

    Storing hashes instead of values bounds first_use state at 8 bytes per value. Two distinct values
    share a hash with probability 2**-64 per pair: among an account's n values the chance of any
    collision is about n**2 / 2**65 (1e-13 for n = 2000). A collision can only make a new value look
    already used, so it can only *suppress* a first_use alert, never create one. The key is random
    per engine (kept in its snapshots), so nobody can craft two addresses that collide on purpose.
    """
    persons = [str(i).encode() for i in range(64)]

    def fu_hash(value: str, feature: int) -> bytes:
        return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8, key=key,
                               person=persons[feature]).digest()
    return fu_hash


#: Up to this many values a first_use container is one ``bytes`` of 8-byte hashes (searched in C),
#: beyond it a set of ints (O(1) lookups, ~70 bytes a value).
_FU_BYTES_MAX = 1024


def _first_use(st: list[Any], h: bytes) -> bool:
    """True when the hash ``h`` was never recorded for this account (and records it). All first_use
    features of a pack share one container: their hashes are salted by feature."""
    s = st[_FIRST_USE]
    if s is None:
        st[_FIRST_USE] = h
        return True
    if type(s) is bytes:
        i = s.find(h)
        while i > 0 and i & 7:  # a match straddling two hashes is no match
            i = s.find(h, i + 1)
        if i >= 0:
            return False
        if len(s) < 8 * _FU_BYTES_MAX:
            st[_FIRST_USE] = s + h
        else:
            st[_FIRST_USE] = {*(int.from_bytes(s[j:j + 8], "little") for j in range(0, len(s), 8)),
                              int.from_bytes(h, "little")}
        return True
    n = int.from_bytes(h, "little")
    if n in s:
        return False
    s.add(n)
    return True


_I64 = 1 << 63


def _add_baseline(st: list[Any], s: int, day: int, v: int, days: int) -> None:
    """Daily sums as a flat ``day, sum, day, sum, ...`` sequence (days ascending): an ``array('q')``,
    or a plain list once a value no longer fits in 64 bits (money is unbounded)."""
    b = st[s]
    if b is None:
        b = st[s] = array("q")
    if b and b[-2] == day:
        total = b[-1] + v
        if type(b) is array and not -_I64 <= total < _I64:
            b = st[s] = list(b)
        b[-1] = total
    else:
        if type(b) is array and not -_I64 <= v < _I64:
            b = st[s] = list(b)
        b.append(day)
        b.append(v)
    if b[0] < day - days:
        i = 0
        while b[i] < day - days:
            i += 2
        del b[:i]


def _baseline(b: Any, day: int, days: int) -> int:
    """Lower median of the daily sums on the ``days`` days before ``day``, missing days = 0."""
    if b is None:
        return 0
    lo = day - days
    values = sorted(b[i + 1] for i in range(0, len(b), 2) if lo <= b[i] < day)
    zeros = days - len(values)
    m = (days + 1) // 2
    return 0 if m <= zeros else values[m - zeros - 1]


def _evidence(log: list[Any] | None, k: int, eid: str, windows: tuple[tuple[int, int], ...],
              sinces: tuple[Any, ...], nb: int, stride: int) -> tuple[str, ...]:
    """The trigger, the events in the rule's windows (bit, width) and the last match of each of its
    ``since`` features before this event, ordered by key."""
    found = {eid: k}
    for p in sinces:
        if p is not None:
            found.setdefault(p[2], p[0] * _TIE_SLOTS + p[1])
    if log is not None and windows:
        lo_m = (k - max(w for _b, w in windows) + 1) << nb
        i = len(log) - stride
        while i >= 0:
            km = log[i]
            if km < lo_m:
                break
            ek = km >> nb
            if any(km & bit and ek > k - width for bit, width in windows):
                found[log[i + 1]] = ek
            i -= stride
    return tuple(sorted(found, key=lambda e: (found[e], e)))


class StreamEngine:
    """Runs a compiled pack over events; ``process`` returns the alerts an event fires."""

    def __init__(self, pack: Pack, address_list: str | Path | Iterable[str] | None = None) -> None:
        self.pack = pack
        self.source = compile_python(pack)
        self.states: dict[str, list[Any]] = {}
        self._fu_key = secrets.token_bytes(16)
        namespace: dict[str, Any] = {
            "STATES": self.states, "LISTED": fold_listed(load_address_list(address_list)),
            "_EPOCH": datetime(1970, 1, 1, tzinfo=UTC), "_MS": timedelta(milliseconds=1),
            "_conv_money": _conv_money, "_conv_str": _conv_str, "_conv_bool": _conv_same,
            "_conv_count": _conv_same, "_baseline": _baseline, "_add_baseline": _add_baseline,
            "_evidence": _evidence, "_win_count": _win_count, "_win_sum": _win_sum,
            "_win_distinct": _win_distinct, "_win_min": _win_min, "_win_max": _win_max,
            "_log_add": _log_add, "_log_cut": _log_cut, "_first_use": _first_use, "_fu_hash": _fu_hasher(self._fu_key),
        }
        self._namespace = namespace
        exec(compile(self.source, f"<pack {pack.name}>", "exec"), namespace)  # noqa: S102 (our own generated code)
        self._process = namespace["process"]

    @property
    def listed(self) -> frozenset[str]:
        """The addresses ``listed`` matches now (EVM addresses folded: see :func:`fold_listed`)."""
        listed: frozenset[str] = self._namespace["LISTED"]
        return listed

    def replace_listed(self, address_list: str | Path | Iterable[str] | None) -> None:
        """Match ``listed`` against a new address list from the next event on (a list was loaded
        while running). Window state, first-use sets and dedup marks are kept as they are."""
        self._namespace["LISTED"] = fold_listed(load_address_list(address_list))

    def process(self, event: Event) -> list[Alert]:
        fired = self._process(event)
        if not fired:
            return []
        return [Alert(event.account_id, rule_id, reason, _EPOCH + timedelta(milliseconds=ts), ids)
                for rule_id, reason, ts, ids in fired]

    # -- snapshots (added for the NATS worker, monitoring/worker.py) ------------------------------

    #: Bumped whenever the *shape* of a snapshot changes (not the pack: that is the fingerprint).
    #: 2: one shared window log, hashed first_use values (+ their key), array baselines, no since chain.
    SNAPSHOT_VERSION = 2

    def fingerprint(self) -> str:
        """A hash of the generated code: two engines with equal fingerprints lay out state identically.

        State is a list of positional slots whose meaning is fixed by the compiled pack, so a
        snapshot is only meaningful to an engine compiled from the same pack (same rules, same
        parameters, same compiler). :meth:`restore` refuses anything else rather than misreading it.
        """
        return hashlib.blake2b(self.source.encode(), digest_size=16).hexdigest()

    def snapshot(self) -> bytes:
        """All per-account state as bytes, for :meth:`restore` in a later process.

        The format is :mod:`pickle` of plain containers (lists, tuples, bytes, arrays, dicts and
        sets of ints and strings) plus the key of the first_use hashes (without it the recorded hashes could not be
        matched again): it is **trusted local state** — written by this process to its own state
        directory and read back by the same deployment. Never restore bytes from anyone else:
        unpickling runs code (and the snapshot holds the first_use key).
        """
        return pickle.dumps((self.SNAPSHOT_VERSION, self.fingerprint(), self._fu_key, self.states),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, data: bytes) -> None:
        """Replace all state with a :meth:`snapshot` (trusted bytes only: see there).

        Raises ``ValueError`` if the snapshot was taken by a different snapshot format or pack.
        The generated code holds a reference to ``self.states``, so the dict is refilled in place.
        """
        loaded = pickle.loads(data)  # noqa: S301 (trusted local state, see snapshot())
        if loaded[0] != self.SNAPSHOT_VERSION:
            raise ValueError(f"engine snapshot format {loaded[0]} is not {self.SNAPSHOT_VERSION}")
        _version, fingerprint, key, states = loaded
        if fingerprint != self.fingerprint():
            raise ValueError("engine snapshot was taken with a different rule pack "
                             f"({fingerprint} vs {self.fingerprint()}); rebuild the state from the stream")
        self._fu_key = key
        self._namespace["_fu_hash"] = _fu_hasher(key)
        self.states.clear()
        self.states.update(states)
