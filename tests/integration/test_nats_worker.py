"""Scale-out monitoring over NATS JetStream: a worker killed with SIGKILL loses nothing, doubles nothing.

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

from freezedesk.monitoring.events import parse_event
from freezedesk.monitoring.jetstream import StreamLayout, owned_partitions, partition_of
from freezedesk.monitoring.rules import StreamEngine, load_pack
from freezedesk.monitoring.synth import ListedAddress, SynthConfig, generate

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


def _monitor(layout: StreamLayout, state: Path, addresses: Path, worker: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_cli(
        "monitor", "--nats", NATS_URL, "--stream", layout.stream, "--subject-prefix", layout.prefix,
        "--partitions", str(layout.partitions), "--worker", str(worker), "--workers", str(WORKERS),
        "--state-dir", str(state), "--address-list", str(addresses),
        "--batch", "64", "--snapshot-every", "200", *extra), stderr=subprocess.PIPE)


def _status(state: Path, worker: int) -> dict[str, Any] | None:
    path = state / f"worker-{worker}-of-{WORKERS}.json"
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
