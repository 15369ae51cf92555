"""The pieces of the NATS worker that need no server: partitioning, snapshots, the alert sink, the id memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from freezedesk.monitoring.events import Event, parse_batch
from freezedesk.monitoring.jetstream import StreamLayout, owned_partitions, partition_of
from freezedesk.monitoring.rules import Alert, StreamEngine, load_pack
from freezedesk.monitoring.synth import ListedAddress, SynthConfig, generate
from freezedesk.monitoring.worker import (
    FUTURE_TOLERANCE_MS,
    ID_HASH_BYTES,
    SNAPSHOT_FORMAT,
    EventIdMemory,
    JsonlAlertSink,
    PartitionRunner,
    RefusedLog,
    SnapshotFormatError,
    SnapshotStore,
    Verdict,
    Worker,
    WorkerConfig,
    epoch_ms,
)

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
    # a login, and a credential change that the pack's "since" features count (a phone change is not one)
    templates = [next(e for e in events if e.type.value == "login"),
                 next(e for e in events if getattr(e, "change", None) == "password")]
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


# -- the event-id memory: duplicates beyond JetStream's window, late events ------------------------

H = 3_600_000  # an hour in milliseconds
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
NOW = T0 + 400 * 24 * H  # the worker's clock: well after the events (a back-fill)


def test_id_memory_skips_a_counted_id_and_refuses_what_it_cannot_prove_fresh() -> None:
    memory = EventIdMemory(horizon_hours=24)
    assert memory.admit("e1", T0, NOW) is Verdict.NEW
    assert memory.admit("e1", T0, NOW) is Verdict.DUPLICATE
    assert memory.admit("e1", T0 + 5 * H, NOW) is Verdict.DUPLICATE  # the id decides, not the time
    assert memory.refuse_before() == datetime(2024, 12, 31, tzinfo=UTC)  # nothing older was ever counted
    assert memory.admit("e2", T0 + 30 * H + 1, NOW) is Verdict.NEW  # the high-water mark moves 30 h on
    assert memory.refuse_before() == datetime(2025, 1, 1, 6, tzinfo=UTC)  # hour(mark - 24 h)
    assert memory.admit("e1", T0, NOW) is Verdict.LATE  # forgotten: it cannot be told from a new one
    assert memory.admit("never-seen", T0 + 6 * H - 1, NOW) is Verdict.LATE  # the hour before the limit
    assert memory.admit("e3", T0 + 6 * H, NOW) is Verdict.NEW  # on the limit: remembered from now on
    assert memory.admit("e3", T0 + 6 * H, NOW) is Verdict.DUPLICATE
    assert len(memory) == 2 and sorted(memory.buckets) == [(T0 + 6 * H) // H, (T0 + 30 * H) // H]


def test_id_memory_is_bounded_by_event_time_not_by_traffic() -> None:
    memory = EventIdMemory(horizon_hours=24)
    most = 0
    for i in range(10 * 24 * 60):  # ten days, one event a minute
        assert memory.admit(f"e{i}", T0 + i * 60_000, NOW) is Verdict.NEW
        most = max(most, len(memory))
    assert most <= 25 * 60  # the horizon plus the hour being filled, whatever the stream's length
    assert len(memory.buckets) <= 26
    assert sum(len(b) for b in memory.buckets.values()) == len(memory) * ID_HASH_BYTES


def test_a_mis_dated_event_cannot_make_the_partition_late() -> None:
    memory = EventIdMemory(horizon_hours=24)
    assert memory.admit("from-2099", epoch_ms(datetime(2099, 1, 1, tzinfo=UTC)), NOW) is Verdict.NEW
    assert memory.high_water_ms == NOW + FUTURE_TOLERANCE_MS  # capped at the clock (+1 h), not 2099
    assert memory.admit("honest", NOW - 2 * H, NOW) is Verdict.NEW
    assert memory.admit("from-2099", epoch_ms(datetime(2099, 1, 1, tzinfo=UTC)), NOW) is Verdict.DUPLICATE


def test_id_memory_survives_a_snapshot_and_a_changed_horizon() -> None:
    memory = EventIdMemory(horizon_hours=48)
    for i in range(100):
        memory.admit(f"e{i}", T0 + i * H, NOW)  # 100 hours: the first 51 are forgotten
    limit = memory.refuse_before_hour
    data = pickle.dumps(memory.dump())
    same = EventIdMemory.load(pickle.loads(data), 48)
    assert same.seen == memory.seen and same.refuse_before_hour == limit
    assert [same.admit(f"e{i}", T0 + i * H, NOW) for i in (10, 60, 99)] == [Verdict.LATE, Verdict.DUPLICATE,
                                                                              Verdict.DUPLICATE]
    shorter = EventIdMemory.load(pickle.loads(data), 24)  # forgets at once
    assert shorter.refuse_before_hour == limit + 24 and len(shorter) == 25
    assert shorter.admit("e60", T0 + 60 * H, NOW) is Verdict.LATE
    longer = EventIdMemory.load(pickle.loads(data), 24 * 7)  # cannot recall what was forgotten
    assert longer.refuse_before_hour == limit and longer.admit("e10", T0 + 10 * H, NOW) is Verdict.LATE
    longer.admit("e200", T0 + 200 * H, NOW)  # 200 h - a week is before the old limit: it stays...
    assert longer.refuse_before_hour == limit and longer.admit("e60", T0 + 60 * H, NOW) is Verdict.DUPLICATE
    longer.admit("e230", T0 + 230 * H, NOW)  # ...until a week behind the mark passes it
    assert longer.refuse_before_hour == limit + 11 and longer.admit("e61", T0 + 61 * H, NOW) is Verdict.LATE
    assert longer.admit("e62", T0 + 62 * H, NOW) is Verdict.DUPLICATE
    with pytest.raises(ValueError, match="at least 1 hour"):
        EventIdMemory(0)


# -- a partition runner without a server: messages as JetStream delivers them -----------------------


def _msg(seq: int, event: Event, pending: int = 0) -> SimpleNamespace:
    meta = SimpleNamespace(sequence=SimpleNamespace(stream=seq), num_pending=pending)
    return SimpleNamespace(metadata=meta, headers={}, subject="t.events.0", data=orjson.dumps(event.to_json()))


def _runner(state: Path, dedup_hours: int = 24 * 7) -> PartitionRunner:
    return PartitionRunner.open(0, StreamLayout("S", "t.events", 1), "created", load_pack(),
                                frozenset(a.address for a in LISTED), JsonlAlertSink(state / "alerts.jsonl"),
                                SnapshotStore(state), dedup_hours)


def test_runner_counts_resent_events_once_and_remembers_across_a_restart(events: list[Event], tmp_path: Path) -> None:
    clean = StreamEngine(load_pack(), [a.address for a in LISTED])
    expected = [a.to_line() for e in events for a in clean.process(e)]
    assert expected, "the data must raise alerts"
    runner = _runner(tmp_path)
    for seq, event in enumerate(events, 1):
        runner.process(_msg(seq, event))  # type: ignore[arg-type]
    runner.take_snapshot()
    runner.close()

    # the whole file again, as an exchange re-sending it after JetStream's window; from a restart
    limit = max(e.ts for e in events).replace(minute=0, second=0, microsecond=0) - timedelta(days=7)
    late = sum(1 for e in events if e.ts < limit)  # before the hour of (the newest - 7 days): late
    assert 0 < late < len(events)
    restarted = _runner(tmp_path)
    assert restarted.last_seq == len(events) and len(restarted.ids) == len(events) - late
    for seq, event in enumerate(events, len(events) + 1):
        assert restarted.process(_msg(seq, event)) == []  # type: ignore[arg-type]
    assert (restarted.events, restarted.duplicates, restarted.late) == (len(events), len(events) - late, late)
    restarted.take_snapshot()
    restarted.close()
    assert [line for line in (tmp_path / "alerts.jsonl").read_text().splitlines()] == expected
    refused = [orjson.loads(line) for line in (tmp_path / "refused" / "partition-0000.jsonl").read_bytes().splitlines()]
    assert [r["seq"] for r in refused] == [len(events) + n for n, e in enumerate(events, 1) if e.ts < limit]
    assert {r["reason"] for r in refused} == {"late"} and refused[0]["event_id"] == events[0].event_id
    status = _runner(tmp_path).status()
    assert (status["events"], status["duplicates"], status["late"]) == (len(events), len(events) - late, late)


def test_refused_log_repairs_a_torn_line_and_lists_a_replayed_event_once(events: list[Event], tmp_path: Path) -> None:
    path = tmp_path / "refused" / "partition-0000.jsonl"
    log = RefusedLog(path)
    log.record(5, "s.0", events[0], None)
    log.record(9, "s.0", events[1], None)
    log.close()
    with path.open("ab") as handle:  # kill -9 while writing the line of sequence 12
        handle.write(b'{"seq":12,"sub')
    again = RefusedLog(path)
    assert again.last_seq == 9
    for seq, event in ((9, events[1]), (12, events[2])):  # the replay after the snapshot at 5
        again.record(seq, "s.0", event, None)
    again.close()
    assert [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()] == [5, 9, 12]


def test_an_old_or_unknown_snapshot_format_is_refused_not_misread(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    fields = {"stream": "S", "stream_created": "c", "partitions": 1, "partition": 0, "last_seq": 7, "events": 7,
              "engine": StreamEngine(load_pack()).snapshot()}
    store.path(0).write_bytes(pickle.dumps((1, fields)))  # what the worker wrote before the id memory
    with pytest.raises(SnapshotFormatError, match=r"snapshot format 1 has no memory of the event ids .* delete"):
        store.load(0)
    with pytest.raises(SnapshotFormatError, match=r"format 1 has no memory"):
        _runner(tmp_path)
    store.path(0).write_bytes(pickle.dumps((SNAPSHOT_FORMAT + 1, fields)))
    with pytest.raises(SnapshotFormatError, match=rf"format {SNAPSHOT_FORMAT + 1} is not {SNAPSHOT_FORMAT}"):
        store.load(0)


def test_a_snapshot_of_another_rule_pack_is_refused_with_the_way_out(events: list[Event], tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    runner.process(_msg(1, events[0]))  # type: ignore[arg-type]
    runner.take_snapshot()
    runner.close()
    pack = load_pack()
    with pytest.raises(SnapshotFormatError, match=r"different rule pack.*delete .*partition-0000.snapshot"):
        PartitionRunner.open(0, StreamLayout("S", "t.events", 1), "created", replace(pack, rules=pack.rules[:-1]),
                             frozenset(), JsonlAlertSink(tmp_path / "a.jsonl"), SnapshotStore(tmp_path))


class _SwallowingSubscription:
    """A pull subscription whose fetch loses a cancellation, as nats-py's does on Python 3.11 when the
    cancel lands just as a message (the server's 408 at a fetch's expiry) arrives: asyncio.wait_for
    then returns the message and the CancelledError is gone."""

    def __init__(self) -> None:
        self.fetches = 0
        self.swallow = True

    async def fetch(self, batch: int, timeout: float) -> list[object]:
        self.fetches += 1
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
        raise TimeoutError


def test_a_partition_loop_stops_on_sigterm_even_when_the_fetch_swallows_the_cancel(tmp_path: Path) -> None:
    async def scenario() -> bool:
        worker = Worker(WorkerConfig("nats://unused", 0, 1, tmp_path, StreamLayout("S", "t.events", 1),
                                     idle_wait=0.01), load_pack(), frozenset())
        sub = _SwallowingSubscription()
        task = asyncio.create_task(worker._consume(_runner(tmp_path), sub))  # type: ignore[arg-type]
        while sub.fetches < 3:
            await asyncio.sleep(0.01)
        worker.stop()  # what SIGTERM does; run() then cancels the partition tasks and waits for them
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        if task not in done:  # the bug: the loop goes on forever; end it so that the test can fail
            sub.swallow = False
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return task in done

    assert asyncio.run(scenario()), "the partition loop did not stop after SIGTERM"


# -- one batch per fetch: events and alerts handed over together, before any snapshot ----------------


class _RecordingSink:
    """A sink that keeps what it is handed, batch by batch, and notes when it was made durable."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Alert], list[Event]]] = []
        self.synced_at: list[int] = []  # how many batches had been emitted at each sync

    def emit(self, alerts: Sequence[Alert], events: Sequence[Event] = ()) -> int:
        self.batches.append((list(alerts), list(events)))
        return len(alerts)

    def sync(self) -> None:
        self.synced_at.append(len(self.batches))

    def close(self) -> None:
        pass

    @property
    def events(self) -> list[str]:
        return [e.event_id for _, batch in self.batches for e in batch]

    @property
    def alerts(self) -> list[str]:
        return [a.to_line() for batch, _ in self.batches for a in batch]


def _recording_runner(state: Path, sink: _RecordingSink) -> PartitionRunner:
    return PartitionRunner.open(0, StreamLayout("S", "t.events", 1), "created", load_pack(),
                                frozenset(a.address for a in LISTED), sink, SnapshotStore(state))


def test_runner_hands_counted_events_and_their_alerts_over_as_one_batch(events: list[Event], tmp_path: Path) -> None:
    clean = StreamEngine(load_pack(), [a.address for a in LISTED])
    fires = [[a.to_line() for a in clean.process(e)] for e in events]
    expected = [line for lines in fires for line in lines]
    sink = _RecordingSink()
    runner = _recording_runner(tmp_path, sink)
    half = next(n for n, lines in enumerate(fires, 1) if lines) + 10  # a first batch with an alert in it
    fired = [a.to_line() for seq, e in enumerate(events[:half], 1)
             for a in runner.process(_msg(seq, e))]  # type: ignore[arg-type]
    assert fired and sink.batches == []  # nothing leaves before the batch is complete
    assert runner.flush() == len(fired)
    assert sink.events == [e.event_id for e in events[:half]] and sink.alerts == fired
    assert runner.flush() == 0 and len(sink.batches) == 1  # nothing pending: no call at all

    # a re-sent event (duplicate) is not handed over; the rest of the stream is, by take_snapshot itself
    runner.process(_msg(half + 1, events[0]))  # type: ignore[arg-type]
    for seq, e in enumerate(events[half:], half + 2):
        runner.process(_msg(seq, e))  # type: ignore[arg-type]
    runner.take_snapshot()
    assert len(sink.batches) == 2 and sink.synced_at == [2]  # emitted, then made durable, then snapshotted
    assert sink.events == [e.event_id for e in events] and sink.alerts == expected
    assert SnapshotStore(tmp_path).load(0).last_seq == len(events) + 1  # type: ignore[union-attr]


def test_a_caught_up_snapshot_waits_for_the_minimum_interval(events: list[Event], tmp_path: Path) -> None:
    runner = _recording_runner(tmp_path, _RecordingSink())
    assert not runner.snapshot_due(10_000, 30.0, 5.0)  # nothing processed: nothing to snapshot
    runner.process(_msg(1, events[0], pending=0))  # type: ignore[arg-type]
    runner.snapshot_at = time.monotonic()  # as if a snapshot had just been taken
    assert not runner.snapshot_due(10_000, 30.0, 5.0)  # caught up, but too soon after the last one
    assert runner.snapshot_due(10_000, 30.0, 0.0)  # without a minimum: at once (the old behaviour)
    assert runner.snapshot_due(1, 30.0, 5.0)  # the event count is not held back by the minimum
    runner.snapshot_at -= 5.0
    assert runner.snapshot_due(10_000, 30.0, 5.0)  # the interval has passed: a caught-up partition snapshots
    runner.pending = 3
    assert not runner.snapshot_due(10_000, 30.0, 5.0)  # not caught up: only the count and the period apply
    runner.snapshot_at -= 30.0
    assert runner.snapshot_due(10_000, 30.0, 5.0)


class _ScriptedSubscription:
    """A pull subscription that delivers the given batches, one per fetch, then nothing (timeouts)."""

    def __init__(self, batches: list[list[SimpleNamespace]]) -> None:
        self.batches = list(batches)
        self.fetches = 0
        self.idle = asyncio.Event()  # set at the first fetch that finds nothing

    async def fetch(self, batch: int, timeout: float) -> list[SimpleNamespace]:
        self.fetches += 1
        if self.batches:
            return self.batches.pop(0)
        self.idle.set()
        await asyncio.sleep(timeout)
        raise TimeoutError


def _consume(tmp_path: Path, batches: list[list[SimpleNamespace]], idle_fetches: int = 3,
             **config: Any) -> tuple[_RecordingSink, PartitionRunner, Worker]:
    """Run one partition loop over ``batches`` until it has idled ``idle_fetches`` times (or halted)."""
    sink = _RecordingSink()
    runner = _recording_runner(tmp_path, sink)
    worker = Worker(WorkerConfig("nats://unused", 0, 1, tmp_path, StreamLayout("S", "t.events", 1),
                                 idle_wait=0.01, **config), load_pack(), frozenset(a.address for a in LISTED))
    worker.runners[0] = runner

    async def scenario() -> None:
        sub = _ScriptedSubscription(batches)
        task = asyncio.create_task(worker._consume(runner, sub))  # type: ignore[arg-type]
        while not (worker.halted or (sub.idle.is_set() and sub.fetches >= len(batches) + idle_fetches)):
            await asyncio.sleep(0.005)
        worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    return sink, runner, worker


def _batches(events: list[Event], size: int) -> list[list[SimpleNamespace]]:
    msgs = [_msg(seq, e, pending=len(events) - seq) for seq, e in enumerate(events, 1)]
    return [msgs[i:i + size] for i in range(0, len(msgs), size)]


def test_the_loop_hands_over_one_batch_per_fetch_and_defers_a_caught_up_snapshot(events: list[Event],
                                                                                  tmp_path: Path) -> None:
    part = events[:300]
    sink, runner, _ = _consume(tmp_path / "a", _batches(part, 64), snapshot_min_seconds=3600.0)
    assert [len(batch) for _, batch in sink.batches] == [64, 64, 64, 64, 44]  # one emit per fetch
    assert sink.events == [e.event_id for e in part]
    # caught up, but the minimum interval since the partition opened has not passed: no snapshot yet,
    # however many idle fetches came after; everything processed is nevertheless in the sink
    assert runner.last_seq == 300 and runner.snapshot_seq == 0 and sink.synced_at == []
    assert SnapshotStore(tmp_path / "a").load(0) is None

    sink, runner, _ = _consume(tmp_path / "b", _batches(part, 64), snapshot_min_seconds=0.0)
    assert runner.snapshot_seq == 300 and sink.synced_at == [5]  # caught up at the last batch: snapshotted
    assert SnapshotStore(tmp_path / "b").load(0).last_seq == 300  # type: ignore[union-attr]


def test_a_halt_hands_over_the_batch_so_far_and_snapshots_nothing(events: list[Event], tmp_path: Path) -> None:
    clean = StreamEngine(load_pack(), [a.address for a in LISTED])
    fires = [[a.to_line() for a in clean.process(e)] for e in events]
    at = next(n for n, lines in enumerate(fires, 1) if lines)  # the message that fires the first alert
    sink, runner, worker = _consume(tmp_path, _batches(events, len(events)), halt_after_alerts=1)
    assert worker.halted and runner.last_seq == at
    assert sink.events == [e.event_id for e in events[:at]] and sink.alerts == fires[at - 1]
    assert runner.snapshot_seq == 0 and sink.synced_at == []  # the kill -9 that follows loses no alert
