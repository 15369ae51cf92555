"""Scale-out monitoring over NATS JetStream: a worker killed with SIGKILL loses nothing, doubles nothing.

Three stories: alerts to JSON Lines across a kill (two workers); events re-sent after JetStream's
duplicate window, skipped by the workers' event-id memory across a restart and a kill; and ``--apply``
to a real database (SQLite and PostgreSQL) across a kill — restrictions, case evidence, audit chain,
and every counted event stored once, so that an investigator reads each alert with its events.

Needs the NATS server with JetStream at FREEZEDESK_TEST_NATS_URL (default nats://127.0.0.1:4222). An
unreachable server **fails** the test — it is never skipped. Each test publishes to its own stream
and subject prefix, and deletes the stream (and so its consumers) afterwards.

The kill is made deterministic with the worker's hidden fault-injection switch
``--halt-after-alerts M``: after its M-th alert the worker stops dead *before* any snapshot could
cover that alert, so the restart must replay it and the sink must drop the copy. Snapshots every 200
events of a partition make sure the restart also restores state rather than starting from zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamInfo
from sqlalchemy import func, select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.scopes import Scope
from freezedesk.monitoring.events import Event, parse_batch, parse_event
from freezedesk.monitoring.jetstream import StreamLayout, owned_partitions, partition_of
from freezedesk.monitoring.rules import Alert, StreamEngine, load_pack
from freezedesk.monitoring.service import get_alert
from freezedesk.monitoring.synth import ListedAddress, SynthConfig, generate
from freezedesk.monitoring.worker import SNAPSHOT_FORMAT, DatabaseAlertSink, epoch_ms
from freezedesk.services.cases import get_case
from freezedesk.services.permissions import PermissionView
from freezedesk.store.tables import audit_log, monitoring_alerts, outbox, restrictions
from freezedesk.store.tables import events as events_table
from freezedesk.store.uow import Store

NATS_URL = os.environ.get("FREEZEDESK_TEST_NATS_URL", "nats://127.0.0.1:4222")
START_HINT = ("start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
              "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log")
LISTED = (ListedAddress("BTC", "BTC", "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"),
          ListedAddress("ETH", "ETH", "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"))
PARTITIONS = 16
WORKERS = 2
DEADLINE = 45.0  # seconds for any one wait; the whole test takes a few seconds


async def _jetstream_ok() -> None:
    # wait_for: nats-py keeps retrying a refused first connection even with allow_reconnect=False
    nc = await asyncio.wait_for(nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0,
                                             allow_reconnect=False), 5)
    try:
        await nc.jetstream().account_info()  # fails unless JetStream is enabled
    finally:
        await nc.close()


async def _delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def layout() -> Iterator[StreamLayout]:
    """A fresh stream and subject prefix for this test; fails loudly when NATS is not there."""
    try:
        asyncio.run(_jetstream_ok())
    except Exception as exc:
        pytest.fail(f"NATS JetStream is required and unreachable at {NATS_URL} ({type(exc).__name__}: {exc}); "
                    f"{START_HINT}", pytrace=False)
    tag = uuid.uuid4().hex[:12]
    made = StreamLayout(f"FD_TEST_{tag}", f"fdtest.{tag}.events", PARTITIONS)
    yield made
    with contextlib.suppress(nats.js.errors.NotFoundError):  # the test may have failed before publishing
        asyncio.run(_delete_stream(made.stream))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "freezedesk.cli", *args]


def _monitor_args(layout: StreamLayout, state: Path, addresses: Path, worker: int = 0, workers: int = 1,
                  *extra: str) -> list[str]:
    return _cli(
        "monitor", "--nats", NATS_URL, "--stream", layout.stream, "--subject-prefix", layout.prefix,
        "--partitions", str(layout.partitions), "--worker", str(worker), "--workers", str(workers),
        "--state-dir", str(state), "--address-list", str(addresses),
        "--batch", "64", "--snapshot-every", "200", *extra)


def _monitor(layout: StreamLayout, state: Path, addresses: Path, worker: int, *extra: str,
             workers: int = WORKERS) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_monitor_args(layout, state, addresses, worker, workers, *extra), stderr=subprocess.PIPE)


def _status(state: Path, worker: int, workers: int = WORKERS) -> dict[str, Any] | None:
    path = state / f"worker-{worker}-of-{workers}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _wait_for(what: str, check: Any, procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited with {proc.returncode} while waiting for {what}: "
                                     f"{proc.stderr.read().decode() if proc.stderr else ''}")
        found = check()
        if found:
            return found  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _alert_lines(state: Path, partitions: list[int] | None = None) -> list[str]:
    files = sorted((state / "alerts").glob("partition-*.jsonl"))
    if partitions is not None:
        files = [f for f in files if int(f.stem.split("-")[1]) in partitions]
    return [line for f in files for line in f.read_text().splitlines() if line]


def test_killed_worker_loses_nothing_and_doubles_nothing(tmp_path: Path, layout: StreamLayout) -> None:
    events_file, labels = tmp_path / "events.jsonl", tmp_path / "labels.csv"
    generate(SynthConfig(accounts=150, days=30, seed=11, listed=LISTED), events_file, labels)
    addresses = tmp_path / "listed.txt"
    addresses.write_text("".join(f"{a.address}\n" for a in LISTED))
    events = [parse_event(json.loads(line), n) for n, line in enumerate(events_file.read_text().splitlines(), 1)]

    # The truth: one in-process engine over the file in order (= per-account stream order).
    clean = StreamEngine(load_pack(), [a.address for a in LISTED])
    expected = [alert.to_line() for event in events for alert in clean.process(event)]
    assert len(expected) >= 4, "the dataset must raise a few alerts to make the test meaningful"

    # Publish through the CLI; publishing again is dropped by JetStream's msg-id dedup.
    publish = _cli("events", "publish", str(events_file), "--nats", NATS_URL, "--stream", layout.stream,
                   "--subject-prefix", layout.prefix, "--partitions", str(layout.partitions))
    first = subprocess.run(publish, capture_output=True, text=True, check=True)
    assert first.stdout.startswith(f"{len(events)} events published"), first.stdout
    again = subprocess.run(publish, capture_output=True, text=True, check=True)
    assert again.stdout.startswith(f"0 events published to {layout.stream}, {len(events)} duplicates"), again.stdout
    seq_of = {event.event_id: n for n, event in enumerate(events, 1)}  # a fresh stream: seq = file position

    # The victim is the worker with more alerts to raise; it halts half-way through them.
    def owner(account_id: str) -> int:
        return partition_of(account_id, PARTITIONS) % WORKERS

    per_worker = Counter(owner(json.loads(line)["account_id"]) for line in expected)
    victim = max(range(WORKERS), key=lambda w: per_worker[w])
    halt_at = max(1, per_worker[victim] // 2)
    victim_partitions = owned_partitions(victim, WORKERS, PARTITIONS)
    victim_events = sum(1 for e in events if owner(e.account_id) == victim)

    state = tmp_path / "state"
    started = time.monotonic()
    procs = {w: _monitor(layout, state, addresses, w, *(("--halt-after-alerts", str(halt_at)) if w == victim else ()))
             for w in range(WORKERS)}
    try:
        halted = _wait_for("the victim to halt", lambda: (s := _status(state, victim)) and s["halted"] and s,
                           list(procs.values()))
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(timeout=10)
        assert procs[victim].returncode == -signal.SIGKILL

        # Mid-stream: it had processed some of its events, but not all; some state was snapshotted...
        parts = halted["partitions"]
        assert 0 < sum(p["events"] for p in parts.values()) < victim_events, parts
        assert any(p["snapshot_seq"] > 0 for p in parts.values()), "no snapshot to restore from"
        # ...and at least one alert it wrote is *not* covered by its partition's snapshot: the
        # restart replays its event, fires it again, and only the sink's dedup keeps it single.
        written = [json.loads(line) for line in _alert_lines(state, victim_partitions)]
        snapshot_seq = {int(p): v["snapshot_seq"] for p, v in parts.items()}
        uncovered = [a for a in written
                     if seq_of[a["event_ids"][-1]] > snapshot_seq[partition_of(a["account_id"], PARTITIONS)]]
        assert uncovered, (written, parts)

        procs[victim] = _monitor(layout, state, addresses, victim)
        pids = {w: p.pid for w, p in procs.items()}
        _wait_for("both workers to catch up",
                  lambda: all((s := _status(state, w)) and s["pid"] == pids[w] and s["caught_up"]
                              for w in range(WORKERS)),
                  list(procs.values()))
        caught_up = time.monotonic() - started
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for w, proc in procs.items():
        assert proc.returncode == 0, f"worker {w}: {proc.stderr.read().decode() if proc.stderr else ''}"

    got = _alert_lines(state)
    assert Counter(got) == Counter(expected), {"missing": list((Counter(expected) - Counter(got)).elements()),
                                                "extra": list((Counter(got) - Counter(expected)).elements())}
    assert caught_up < DEADLINE


# -- shared by the stories below: one worker owning every partition ---------------------------------

HOUR_MS = 3_600_000


def _dataset(tmp_path: Path, accounts: int, days: int, seed: int) -> tuple[Path, list[Event], Path]:
    events_file = tmp_path / "events.jsonl"
    generate(SynthConfig(accounts=accounts, days=days, seed=seed, listed=LISTED), events_file,
             tmp_path / "labels.csv")
    addresses = tmp_path / "listed.txt"
    addresses.write_text("".join(f"{a.address}\n" for a in LISTED))
    return events_file, parse_batch(events_file.read_text()), addresses


def _publish(layout: StreamLayout, events_file: Path, *extra: str) -> str:
    return subprocess.run(_cli("events", "publish", str(events_file), "--nats", NATS_URL, "--stream", layout.stream,
                               "--subject-prefix", layout.prefix, "--partitions", str(layout.partitions), *extra),
                          capture_output=True, text=True, check=True).stdout


def _processed(status: dict[str, Any]) -> int:
    return sum(p["events"] + p["duplicates"] + p["late"] for p in status["partitions"].values())


def _totals(status: dict[str, Any]) -> tuple[int, int, int]:
    parts = status["partitions"].values()
    return (sum(p["events"] for p in parts), sum(p["duplicates"] for p in parts), sum(p["late"] for p in parts))


class _Solo:
    """Worker 0 of 1 (all partitions), started and stopped as an operator would; never outlives the test."""

    def __init__(self, layout: StreamLayout, state: Path, addresses: Path) -> None:
        self.layout, self.state, self.addresses = layout, state, addresses
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        self.proc = _monitor(self.layout, self.state, self.addresses, 0, *extra, workers=1)

    def wait(self, what: str, ok: Any) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None
        try:
            return _wait_for(what, lambda: (s := _status(self.state, 0, 1)) and s["pid"] == proc.pid and ok(s) and s,
                             [proc])
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the last status: {_status(self.state, 0, 1)}") from None

    def stop(self) -> None:  # SIGTERM: final snapshot, exit 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)
        assert self.proc.returncode == 0, self.proc.stderr.read().decode() if self.proc.stderr else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def _stream_info(name: str) -> StreamInfo:
    nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        return await nc.jetstream().stream_info(name)
    finally:
        await nc.close()


# -- events re-sent after JetStream's duplicate window ----------------------------------------------


def test_events_resent_after_the_duplicate_window_are_counted_once(tmp_path: Path, layout: StreamLayout) -> None:
    events_file, events, addresses = _dataset(tmp_path, accounts=60, days=14, seed=7)
    n = len(events)
    clean = StreamEngine(load_pack(), [a.address for a in LISTED])
    expected = [alert.to_line() for event in events for alert in clean.process(event)]
    assert expected, "the dataset must raise alerts"

    # The oracle: with the default 7-day memory, an event is late when its hour is before the hour
    # of (its partition's latest event - 168 h) — all of the copy's first week; the rest are duplicates.
    newest: dict[int, int] = {}
    for e in events:
        p = partition_of(e.account_id, PARTITIONS)
        newest[p] = max(newest.get(p, 0), epoch_ms(e.ts))

    def late(e: Event) -> bool:
        return epoch_ms(e.ts) // HOUR_MS < (newest[partition_of(e.account_id, PARTITIONS)] - 168 * HOUR_MS) // HOUR_MS

    late_positions = [i for i, e in enumerate(events, 1) if late(e)]
    n_late = len(late_positions)
    n_dup = n - n_late
    assert 0 < n_late < n
    third = events[::3]  # the third re-send: a sample across the whole period
    third_file = tmp_path / "third.jsonl"
    third_file.write_text("".join(json.dumps(e.to_json()) + "\n" for e in third))
    third_late = [i for i, e in enumerate(third, 1) if late(e)]

    # A duplicate window of a quarter second, and three times that between the copies (the server
    # purges expired ids on a timer): the stream stores every copy, exactly what an exchange
    # re-sending after an outage does to a 2-minute window.
    assert _publish(layout, events_file, "--duplicate-window", "0.25").startswith(f"{n} events published")
    assert asyncio.run(_stream_info(layout.stream)).config.duplicate_window == 0.25
    time.sleep(0.75)
    assert _publish(layout, events_file).startswith(f"{n} events published to {layout.stream}, 0 duplicates")
    time.sleep(0.75)
    assert _publish(layout, third_file).startswith(f"{len(third)} events published to {layout.stream}, 0 dup")
    total = 2 * n + len(third)

    state = tmp_path / "state"
    solo = _Solo(layout, state, addresses)
    try:
        # Killed in the middle of the re-sends, with progress no snapshot covers; the restart takes
        # the id memory from the snapshots and decides the replayed events as the first run did.
        solo.start("--halt-after-events", str(2 * n + len(third) // 2))
        halted = solo.wait("the worker to halt", lambda s: s["halted"])
        assert n < _processed(halted) < total
        assert any(p["last_seq"] > p["snapshot_seq"] > 0 for p in halted["partitions"].values()), halted
        solo.kill()
        solo.start()
        status = solo.wait("all copies", lambda s: s["caught_up"] and _processed(s) == total)
        solo.stop()
    finally:
        solo.close()

    # nothing counted twice, by the engine or by the counters
    assert _totals(status) == (n, n_dup + len(third) - len(third_late), n_late + len(third_late))
    assert (status["duplicates"], status["late"]) == _totals(status)[1:]
    assert sum(p["remembered_ids"] for p in status["partitions"].values()) == n_dup  # the last 7 days of ids
    assert Counter(_alert_lines(state)) == Counter(expected)  # the alerts of one clean run, once each
    refused = [json.loads(line) for f in sorted((state / "refused").glob("partition-*.jsonl"))
               for line in f.read_text().splitlines()]
    assert sorted(r["seq"] for r in refused) == sorted([n + i for i in late_positions]
                                                       + [2 * n + i for i in third_late])
    assert {r["reason"] for r in refused} == {"late"}
    assert {r["event_id"] for r in refused} == {events[i - 1].event_id for i in late_positions}

    # A snapshot of the format before the id memory is refused by name, not misread.
    victim = sorted((state / "partitions").glob("partition-*.snapshot"))[0]
    fmt, fields = pickle.loads(victim.read_bytes())
    assert fmt == SNAPSHOT_FORMAT
    old = {k: fields[k] for k in ("stream", "stream_created", "partitions", "partition", "last_seq", "events",
                                  "engine")}
    victim.write_bytes(pickle.dumps((1, old)))
    refusal = subprocess.run(_monitor_args(layout, state, addresses), capture_output=True, text=True, timeout=60)
    assert refusal.returncode == 2, refusal.stderr
    assert f"{victim}: snapshot format 1 has no memory of the event ids" in refusal.stderr
    assert "Traceback" not in refusal.stderr


# -- --apply: the worker acting on a real database ---------------------------------------------------


def test_applied_alerts_restrict_once_across_a_kill(tmp_path: Path, layout: StreamLayout, db_url: str,
                                                   catalogue: ReasonCatalogue) -> None:
    events_file, events, addresses = _dataset(tmp_path, accounts=60, days=14, seed=7)
    pack = load_pack(known_reasons=frozenset(reason.code for reason in catalogue))
    action = {rule.id: rule.action for rule in pack.rules}
    clean = StreamEngine(pack, [a.address for a in LISTED])
    expected = [alert for event in events for alert in clean.process(event)]
    assert {"hold", "freeze"} <= {action[a.rule_id] for a in expected}, "the data must hold and freeze accounts"
    restricting = {(a.account_id, a.rule_id, a.reason_code) for a in expected if action[a.rule_id] != "alert"}
    seq_of = {event.event_id: n for n, event in enumerate(events, 1)}
    assert _publish(layout, events_file).startswith(f"{len(events)} events published")

    store = Store(db_url)
    state = tmp_path / "state"
    solo = _Solo(layout, state, addresses)
    apply = ("--apply", "--database-url", db_url)

    def recorded() -> list[Any]:
        with store.read() as uow:
            return list(uow.conn.execute(select(monitoring_alerts)))

    def stored_ids() -> list[str]:
        with store.read() as uow:
            return list(uow.conn.execute(select(events_table.c.event_id)).scalars())

    try:
        solo.start(*apply, "--halt-after-alerts", str(len(expected) // 2))
        halted = solo.wait("the worker to halt", lambda s: s["halted"])
        # Mid-stream, and at least one applied alert is not covered by its partition's snapshot: the
        # restart replays its event, the engine fires it again, and only the database's key keeps it single.
        rows = recorded()
        assert 0 < len(rows) < len(expected)
        covered = {int(p): v["snapshot_seq"] for p, v in halted["partitions"].items()}
        assert any(seq_of[json.loads(r.event_ids)[-1]] > covered[partition_of(r.account_id, PARTITIONS)]
                   for r in rows), (rows, covered)
        # An applied alert's events were committed with it (or before it), never after; and events no
        # snapshot covers are stored already, so the restart hands them to the database a second time.
        stored = stored_ids()
        assert {e for r in rows for e in json.loads(r.event_ids)} <= set(stored)
        assert 0 < len(stored) < len(events)
        assert any(seq_of[e] > covered[partition_of(events[seq_of[e] - 1].account_id, PARTITIONS)] for e in stored)
        solo.kill()
        solo.start(*apply)
        solo.wait("the worker to catch up", lambda s: s["caught_up"] and _processed(s) == len(events))
        solo.stop()
    finally:
        solo.close()

    try:
        rows = recorded()
        # every alert applied, none twice (the table's key would refuse a second copy; the count shows none is missing)
        assert sorted((r.account_id, r.rule_id, r.ts) for r in rows) == sorted(
            (a.account_id, a.rule_id, a.ts) for a in expected)
        with store.read() as uow:
            audited = uow.conn.execute(select(func.count()).select_from(audit_log)
                                       .where(audit_log.c.action == "monitoring.alert")).scalar_one()
            made = list(uow.conn.execute(select(restrictions)))
            announced = uow.conn.execute(select(func.count()).select_from(outbox)
                                         .where(outbox.c.event_type == "restriction.created")).scalar_one()
        assert audited == len(expected)
        # one restriction per (account, rule) that holds or freezes, in force, made by the rule; announced once
        assert sorted((r.account_id, r.reason_code) for r in made) == sorted((a, code) for a, _, code in restricting)
        assert {(r.status, r.source, r.created_by) for r in made} == {("active", "rule", "system:monitoring")}
        assert {r.restriction_id for r in rows if r.restriction_id} == {r.id for r in made}
        assert announced == len(made)
        # every counted event stored, once: the replay's copies were skipped by id (the batches' audit
        # entries account for each event exactly once), and only counted events (the stream holds no others)
        stored = stored_ids()
        assert sorted(stored) == sorted(seq_of)
        with store.read() as uow:
            batches = [json.loads(d) for d in uow.conn.execute(
                select(audit_log.c.data).where(audit_log.c.action == "events.ingested")).scalars()]
        assert sum(b["accepted"] for b in batches) == len(events)
        assert {b["source"] for b in batches} <= {f"nats:{layout.stream}/partition-{p:04d}" for p in range(PARTITIONS)}
        # each alert is evidence on its case with the events that fired it, and the restriction it made
        # belongs to that case; the alert as an investigator reads it carries every event it cites
        payload = {e.event_id: e.to_json() for e in events}
        for row in rows:
            cited = json.loads(row.event_ids)
            case = get_case(store, row.case_id)
            evidence = {e["id"]: e for e in case["evidence"]["monitoring_alerts"]}
            assert [e["event_id"] for e in evidence[row.id]["events"]] == cited
            read = get_alert(store, pack, row.id)
            assert read["event_ids"] == cited
            assert read["events"] == [payload[e] for e in cited]
        assert all(r.case_id == next(a.case_id for a in rows if a.restriction_id == r.id) for r in made)
        # enforced: the permission check blocks withdrawals of every held or frozen account, by that reason
        view = PermissionView(store)
        view.warm()
        for account_id, _rule, code in restricting:
            assert code in {b["reason_code"] for b in view.blocking(account_id, Scope.WITHDRAW)}, account_id
        froze = {r.restriction_id for r in rows if r.action == "freeze" and r.restriction_id}
        held = {r.restriction_id for r in rows if r.action == "hold" and r.restriction_id}
        assert froze and held
        for r in made:  # a hold stops withdrawals and leaves the API; a freeze (reason defaults) stops more
            assert bool(view.blocking(r.account_id, Scope.API)) is (r.id in froze), (r.reason_code, r.scopes)
    finally:
        store.dispose()
    verify = subprocess.run(_cli("audit", "verify", "--database-url", db_url), capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and "chain intact" in verify.stdout, verify.stdout + verify.stderr
    assert Counter(_alert_lines(state)) == Counter(a.to_line() for a in expected)  # the local log agrees


def test_database_sink_stores_a_batch_once_with_its_alerts_or_not_at_all(tmp_path: Path, db_url: str,
                                                                         catalogue: ReasonCatalogue) -> None:
    _file, events, _addresses = _dataset(tmp_path, accounts=60, days=14, seed=7)
    pack = load_pack(known_reasons=frozenset(reason.code for reason in catalogue))
    engine = StreamEngine(pack, [a.address for a in LISTED])
    batches = [events[i:i + 256] for i in range(0, len(events), 256)]
    fired = [[alert for e in batch for alert in engine.process(e)] for batch in batches]
    total = sum(len(f) for f in fired)
    assert total, "the data must raise alerts"
    store = Store(db_url)
    sink = DatabaseAlertSink(store, catalogue, pack, source="nats:TEST/partition-0000")

    def counts() -> tuple[int, int, int]:
        with store.read() as uow:
            return tuple(uow.conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                         for table, where in ((events_table, ()), (monitoring_alerts, ()),
                                              (audit_log, (audit_log.c.action == "events.ingested",))))

    try:
        # one unit of work: a batch whose alerts cannot be applied (a rule the pack lacks) stores none of its events
        first = batches[0][0]
        with pytest.raises(KeyError):
            sink.emit([Alert(first.account_id, "no_such_rule", "X", first.ts, (first.event_id,))], batches[0])
        assert counts() == (0, 0, 0)
        assert [sink.emit(a, b) for a, b in zip(fired, batches, strict=True)] == [len(a) for a in fired]
        assert counts() == (len(events), total, len(batches))
        # a replay — the same events and alerts again, in batches cut elsewhere — stores and audits nothing
        shifted = [events[i:i + 100] for i in range(0, len(events), 100)]
        again = StreamEngine(pack, [a.address for a in LISTED])
        assert [sink.emit([alert for e in b for alert in again.process(e)], b) for b in shifted] == [0] * len(shifted)
        assert counts() == (len(events), total, len(batches))
        assert sink.emit([], []) == 0 and counts() == (len(events), total, len(batches))  # nothing: no transaction
    finally:
        store.dispose()


def test_apply_refuses_a_database_without_the_schema_before_consuming(tmp_path: Path, layout: StreamLayout) -> None:
    events_file, addresses = tmp_path / "events.jsonl", tmp_path / "listed.txt"
    events_file.write_text('{"event_id": "e1", "ts": "2025-01-01T00:00:00Z", "account_id": "a1", "type": "login", '
                           '"ip": "192.0.2.1", "country": "JP", "device_id": "d1", "success": true}\n')
    addresses.write_text("")
    assert _publish(layout, events_file).startswith("1 events published")
    state = tmp_path / "state"
    run = subprocess.run(_monitor_args(layout, state, addresses, 0, 1, "--apply", "--database-url",
                                       f"sqlite:///{tmp_path / 'never-migrated.db'}"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "has schema revision none" in run.stderr and "run freezedesk migrate first" in run.stderr
    assert "Traceback" not in run.stderr and not (state / "partitions").exists()
