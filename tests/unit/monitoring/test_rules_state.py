"""The stream engine's compact state: every storage path (tuple/list window log, bytes/set first_use
hashes, 64-bit/unbounded baselines) must keep exact parity with the DuckDB batch engine.

The size thresholds are shrunk here so that small hypothesis streams walk through every switch from
one representation to the other, which the standard-size thresholds only reach on busy accounts.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from freezedesk.monitoring.events import parse_batch
from freezedesk.monitoring.rules import StreamEngine, backtest, engine, load_pack
from freezedesk.monitoring.rules.compile_python import FIRST_USE, LOG, layout
from tests.unit.monitoring.test_rules_parity import LISTED, streams

PACK = load_pack(None)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _write(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _both(path: Path) -> tuple[list[Any], list[Any]]:
    batch = [a.to_json() for a in backtest(path, PACK, LISTED, engine="batch")]
    stream = [a.to_json() for a in backtest(path, PACK, LISTED, engine="stream")]
    return batch, stream


@pytest.fixture
def tiny_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_FU_BYTES_MAX", 2)  # first_use: bytes → set after 2 values
    monkeypatch.setattr(engine, "_LOG_TUPLE_MAX", 1)  # window log: tuple → list after 1 event
    monkeypatch.setattr(engine, "_AGG_MIN", 1)  # window reads: running aggregates from 1 event on


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams())
def test_parity_holds_on_every_state_representation(events: list[dict[str, Any]], tmp_path: Path,
                                                     tiny_thresholds: None) -> None:
    batch, stream = _both(_write(tmp_path, events))
    assert batch == stream


def _money(i: int, when: timedelta, kind: str, usd: str, address: str, acct: str = "busy") -> dict[str, Any]:
    return {"event_id": f"{acct}-{i:05d}", "account_id": acct, "type": kind,
            "ts": (T0 + when).isoformat().replace("+00:00", "Z"), "asset": "USDT", "amount": usd,
            "value_usd": usd, "chain": "TRON", "address": address}


@pytest.mark.parametrize("tiny", [False, True])
def test_busy_account_with_huge_amounts_keeps_parity(tmp_path: Path, tiny: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of window events a day (long logs, trimming), sums beyond 64 bits (baseline falls
    back to a list), many addresses (first_use beyond the bytes container), same-ms ties, and
    running window aggregates (the log is long)."""
    if tiny:
        monkeypatch.setattr(engine, "_FU_BYTES_MAX", 3)
        monkeypatch.setattr(engine, "_LOG_TUPLE_MAX", 2)
        monkeypatch.setattr(engine, "_AGG_MIN", 2)
    events = []
    for i in range(900):
        when = timedelta(minutes=7 * i // 3)  # three events per 7 minutes: ties within a millisecond too
        kind = ("deposit", "withdrawal", "withdrawal")[i % 3]
        usd = ("9500", "100000000000.5", "60000", "0.00000001", "123456789012345678.12345678")[i % 5]
        events.append(_money(i, when, kind, usd, f"addr-{i % 41 if i % 7 else i}"))
    batch, stream = _both(_write(tmp_path, events))
    assert batch == stream
    assert {a["rule_id"] for a in batch} >= {"high_volume", "structuring", "fan_out"}


def test_state_is_compact_and_bounded_by_the_longest_window() -> None:
    eng = StreamEngine(PACK)
    events = parse_batch(json.dumps([_money(i, timedelta(minutes=10 * i), "deposit", "100", f"a{i % 3}")
                                     for i in range(2000)]))
    for e in events:
        eng.process(e)
    st = eng.states["busy"]
    assert st[FIRST_USE] is not None and len(st[FIRST_USE]) == 3 * 8  # three 8-byte hashes
    assert len(st[LOG]) // layout(PACK).stride == 48 * 6  # the longest (48 h) window's events, no more
    assert sys.getsizeof(st) < 200


def test_first_use_hash_is_only_found_at_hash_boundaries() -> None:
    st: list[Any] = [None] * 8
    first, second = b"\x01" * 4 + b"\x02" * 4, b"\x03" * 8
    assert engine._first_use(st, first)
    assert engine._first_use(st, second)
    straddling = b"\x02" * 4 + b"\x03" * 4  # bytes 4..11 of the container: not a recorded hash
    assert engine._first_use(st, straddling)
    assert not engine._first_use(st, straddling)
    assert not engine._first_use(st, first)


def test_restore_keeps_the_first_use_key(tmp_path: Path) -> None:
    """Hashes are keyed per engine: a restored engine must still recognise addresses used before."""
    events = parse_batch(json.dumps([
        _money(0, timedelta(0), "deposit", "20000", "src"),
        _money(1, timedelta(minutes=5), "withdrawal", "100", "used-before"),
        _money(2, timedelta(minutes=9), "withdrawal", "17000", "used-before"),  # known: no pass-through
        _money(3, timedelta(minutes=11), "withdrawal", "16000", "fresh"),  # new: pass-through
    ]))
    whole = StreamEngine(PACK)
    expected = [a for e in events for a in whole.process(e)]
    first = StreamEngine(PACK)
    for e in events[:2]:
        first.process(e)
    second = StreamEngine(PACK)
    second.restore(first.snapshot())
    assert [a for e in events[2:] for a in second.process(e)] == expected
    # Only the fresh address is pass-through (33,100 out within minutes is also high_volume).
    assert [a.rule_id for a in expected if a.rule_id == "pass_through"] == ["pass_through"]
