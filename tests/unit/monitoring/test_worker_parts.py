"""The pieces of the NATS worker that need no server: partitioning, engine snapshots, the alert sink."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from freezedesk.monitoring.events import Event, parse_batch
from freezedesk.monitoring.jetstream import owned_partitions, partition_of
from freezedesk.monitoring.rules import Alert, StreamEngine, load_pack
from freezedesk.monitoring.synth import ListedAddress, SynthConfig, generate
from freezedesk.monitoring.worker import JsonlAlertSink

LISTED = (ListedAddress("BTC", "BTC", "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"),)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(accounts=120, days=21, seed=3, listed=LISTED), out / "e.jsonl", out / "l.csv")
    return parse_batch((out / "e.jsonl").read_text())


def test_partition_is_stable_and_owners_split_every_partition_once() -> None:
    # Pinned values: a change of hash would silently move every account to another partition.
    assert [partition_of(a, 16) for a in ("acct-1", "acct-2", "ünïcode")] == [
        partition_of(a, 16) for a in ("acct-1", "acct-2", "ünïcode")]
    assert partition_of("acct-1", 1_000_003) == int.from_bytes(
        __import__("hashlib").blake2b(b"acct-1", digest_size=8).digest(), "big") % 1_000_003
    owned = [p for w in range(3) for p in owned_partitions(w, 3, 16)]
    assert sorted(owned) == list(range(16))
    with pytest.raises(ValueError, match="at least 4 partitions"):
        owned_partitions(0, 4, 3)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9])
def test_engine_snapshot_restore_continues_exactly(events: list[Event], cut: float) -> None:
    pack = load_pack()
    listed = [a.address for a in LISTED]
    whole = StreamEngine(pack, listed)
    expected = [a for e in events for a in whole.process(e)]

    first = StreamEngine(pack, listed)
    split = int(len(events) * cut)
    before = [a for e in events[:split] for a in first.process(e)]
    data = first.snapshot()
    second = StreamEngine(pack, listed)  # a new process, in effect
    second.restore(data)
    after = [a for e in events[split:] for a in second.process(e)]
    assert before + after == expected
    assert second.snapshot() == StreamEngine.snapshot(second)  # stable bytes for equal state


def test_since_state_keeps_one_level_and_snapshots_round_trip(events: list[Event]) -> None:
    engine = StreamEngine(load_pack())
    templates = [next(e for e in events if e.type.value == kind) for kind in ("login", "security_change")]
    base = templates[0].ts
    for i in range(3000):  # each matching event links to the previous one in a "since" slot
        for n, template in enumerate(templates):
            engine.process(replace(template, event_id=f"x{i}-{n}", account_id="a", ts=base + timedelta(seconds=i)))
    # a "since" slot keeps the last match and the one before it, never a chain (bounded state)
    since_slots = [slot for state in engine.states.values() for slot in state
                   if isinstance(slot, tuple) and len(slot) == 4]
    assert since_slots and all(slot[3] is None or len(slot[3]) == 3 for slot in since_slots)
    assert len(pickle.dumps(engine.states)) < 100_000
    restored = StreamEngine(load_pack())
    restored.restore(engine.snapshot())
    later = replace(templates[1], event_id="later", account_id="a", ts=base + timedelta(days=1))
    assert restored.process(later) == engine.process(later)


def test_restore_refuses_another_pack() -> None:
    engine = StreamEngine(load_pack())
    changed = StreamEngine(load_pack())
    changed.source += "\n# changed\n"  # a different compiled pack ⇒ a different fingerprint
    with pytest.raises(ValueError, match="different rule pack"):
        changed.restore(engine.snapshot())


def _alert(i: int) -> Alert:
    from datetime import UTC, datetime

    return Alert("acct", "rule", "CODE", datetime(2025, 1, 1, 0, 0, i, tzinfo=UTC), (f"e{i}",))


def test_jsonl_sink_is_idempotent_and_repairs_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "partition-0000.jsonl"
    sink = JsonlAlertSink(path)
    assert sink.emit([_alert(1), _alert(2)]) == 2
    assert sink.emit([_alert(2)]) == 0
    sink.sync()
    sink.close()
    with path.open("ab") as handle:  # kill -9 in the middle of writing alert 3
        handle.write(_alert(3).to_line().encode()[:20])
    reopened = JsonlAlertSink(path)
    assert reopened.emit([_alert(1), _alert(3)]) == 1  # 1 is known; torn 3 is written again, whole
    reopened.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["ts"] for line in lines] == ["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z",
                                                          "2025-01-01T00:00:03Z"]
