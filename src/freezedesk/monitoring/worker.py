"""A monitoring worker: consumes its partitions of the JetStream event stream, exactly-once in effect.

``freezedesk monitor --nats URL --worker I --workers N --state-dir DIR`` runs one of N workers.
Worker ``I`` owns the partitions ``p % N == I`` of the stream (see
:mod:`freezedesk.monitoring.jetstream`) and runs one :class:`PartitionRunner` per partition: its own
:class:`StreamEngine`, its own JetStream consumer, its own snapshot and its own alert sink.

Exactly-once *effect* from at-least-once delivery
    A crash (``kill -9``, power loss) can strike between any two instructions, so the worker does
    not try to never see an event twice; it makes seeing one twice harmless. Per partition:

    1. **Snapshot** = engine state + the stream sequence of the last event folded into it, written
       atomically (temp file, fsync, rename, fsync of the directory). A snapshot is consistent by
       construction: it is taken between two events, never inside one.
    2. **Restart** = load the snapshot, create a consumer that starts at ``last_seq + 1`` of the
       partition's subject, and replay. Events after the snapshot are processed again — *nothing is
       lost*; the engine state they update is the snapshot's, which had not seen them — *nothing is
       counted twice*.
    3. **Alerts** (and, with ``--apply``, the events themselves) are the one effect that escapes
       before the snapshot, so they are written idempotently: an alert's identity is
       ``(account_id, rule_id, ts)`` (the engine fires a rule at most once per account and instant),
       and a sink ignores an alert it already holds; an event's is its ``event_id``, and the
       database skips an id it already stores. The replay re-fires exactly the alerts of the
       replayed events, and the sink drops them.
    4. **Order of durability**: the sink is made durable (:meth:`AlertSink.sync`) *before* the
       snapshot that covers its alerts is written. Otherwise a power loss could keep a snapshot
       claiming "sequence S done" while losing an alert fired at S, and no replay would bring it back.
       A partition hands its sink one **batch** per fetch — the events it counted and the alerts
       they fired — after the last message of the fetch and before any snapshot (a snapshot first
       hands over what is pending), so no snapshot ever covers an event still in memory only.

    The JetStream consumers are ephemeral, ``AckPolicy.NONE``: the snapshot, not the server, is
    the record of progress — two records would be two truths. A consumer abandoned by a killed
    worker is deleted by the server after ``inactive_threshold``.

Each event id counted once, for as long as it matters
    JetStream drops a re-published event only within the stream's duplicate window (two minutes by
    default, ``freezedesk events publish --duplicate-window``): an exchange that re-sends an event an
    hour later — a retry after an outage, a replayed export — would reach the engine twice, and two
    deposits where there was one can fabricate a structuring pattern and hold an innocent customer's
    withdrawals. So every partition also remembers the ids it has counted (:class:`EventIdMemory`);
    an id it remembers is a **duplicate**: not folded into the engine, only counted in the status.

    The memory is bounded by *event time*, not by a count that a burst could overflow: it holds the
    ids of the events within ``dedup_hours`` (``--dedup-hours``, default 168 = 7 days) of the
    partition's high-water mark — the latest event time it has counted — in hourly buckets that are
    dropped whole as the mark moves on. An event older than that (its hour before the memory's
    *refuse-before* hour) cannot be proven fresh, since its id may have been forgotten, so it is
    refused as **late**: not counted; listed in ``<state>/refused/partition-PPPP.jsonl`` (stream
    sequence, event id, account, event time — for a person to review; as private as the alert
    files) and summed in the status file and the log (counts and stream sequences only, never ids).
    Refusing is the safe side for a system that restricts accounts by itself: an event counted twice
    can freeze a customer on a pattern that never happened, and nobody would notice; a refused event
    is listed, and one that arrives a week behind its partition is a back-fill, which belongs to
    ``freezedesk backtest`` and a person's review rather than to an automatic hold.

    Seven days because re-sends come from outages and re-exports, which are resolved within hours
    or, over a long weekend, days; a week covers them with margin at ~100 bytes of memory per
    remembered id (a 128-bit hash in a set plus 16 bytes in its bucket): 1 M events a day is
    ~0.7 GB across all workers, and 16 bytes per id in the snapshots. Heavier streams lower
    ``--dedup-hours``; it must stay well above the longest delay of an honest event.

    The memory is part of the partition snapshot, so a restart (kill -9 included) remembers exactly
    what the snapshot had counted, and the replay of the events after it decides them again the same
    way. Two guards: the high-water mark moves at most to the worker's clock plus one hour (one event
    mis-dated 2099 must not make a whole partition late), and the refuse-before hour never moves back
    (a larger ``--dedup-hours`` lengthens the memory as new events arrive; forgotten ids stay
    forgotten, so events behind the old limit stay late).

The events an alert rests on (``--apply``)
    An investigator reads an alert with the transactions that fired it (``GET
    /v1/monitoring/alerts/{id}``, the staff case view), and those are read from the ``events``
    table. So :class:`DatabaseAlertSink` stores **every event the partition counted**, not only
    those an alert cites: an alert cites events of earlier fetches (a window of days), whose
    payloads the worker no longer holds, and the full history is what an investigator wants
    anyway. Each fetch's counted events and its alerts go into the database in **one unit of
    work** (:func:`~freezedesk.monitoring.ingest.ingest_in` then
    :func:`~freezedesk.monitoring.service.apply_alerts`, one ``events.ingested`` audit entry per
    batch that stored anything): an applied alert's events are committed with it or before it,
    never after. Events skipped as duplicates or refused as late are not stored (nothing counted
    them; late ones are listed in ``refused/``). A replay after a crash hands the same events
    again and ``ingest_in`` skips the ids already stored (``INSERT … ON CONFLICT DO NOTHING``), so
    an event is stored once however often it is delivered or published. Events the worker counted
    before it ran with ``--apply`` are not back-filled (``freezedesk events ingest`` can).

    Cost (one partition, one process, 28 k synthetic events, local PostgreSQL): ~41 k events/s
    when only alerts were written, ~13 k/s storing every event in 256-message fetches (9 k/s in
    64-message ones; SQLite 21 k/s), the time going to the transaction and the multi-row INSERT.
    A trickle fetches one message at a time and commits per event (~440/s on PostgreSQL) — far
    above a trickle's rate; as the rate rises the backlog makes fetches full and commits rare.

Why snapshot files and not a JetStream KV bucket
    The alert sink (JSON Lines, or the database via :func:`apply_alerts`-style callbacks) is local
    to the worker's deployment, and rule 4 orders *its* durability before the snapshot's: two
    writes to one file system are simple to order. A snapshot is also large — hundreds of bytes per
    account, megabytes per partition — while NATS caps a message (hence a KV value) at 1 MB by
    default. Files in ``--state-dir`` (a persistent volume) avoid both problems. The cost: a worker
    that moves to another machine must take its state directory along (or rebuild it from the
    stream, which is always possible while the stream retains the events).

Ownership and rebalancing
    Snapshots and sinks are per *partition*, not per worker, so changing N (2 workers → 4) needs no
    migration: each worker loads the snapshots of the partitions it now owns from the shared state
    directory. A per-partition ``flock`` makes two live workers claiming one partition impossible
    (the second fails loudly); the kernel drops the lock when a process dies, even by ``kill -9``.

Snapshots are taken every ``snapshot_every`` events of a partition, every ``snapshot_seconds``, on a
clean shutdown (SIGTERM / SIGINT), and when a partition has caught up with the stream — but then at
most once per ``snapshot_min_seconds`` (``--snapshot-min-seconds``, default 5): under a trickle of
events every fetch catches up, and a snapshot is the whole engine state, fsynced (~500 bytes per
account: 1 MB and 6 ms for 2,000 accounts, so ~50 MB for a partition of 100 k) — per fetch, that
would cost far more than the events. A caught-up partition whose last events are not snapshotted
yet takes the snapshot at its first idle fetch after the interval. A snapshot
remembers the stream's creation time: a stream deleted and recreated under the same name restarts
its sequences, and an old snapshot must not skip the new stream's first events — the worker refuses
to start instead. It also refuses if the stream no longer holds the events right after the
snapshot (retention discarded them): the state could not be rebuilt and alerts would be missing.

Snapshot format 2 (this module's :data:`SNAPSHOT_FORMAT`) adds the event-id memory and the
duplicate/late counters to format 1. A format-1 snapshot cannot say which events it counted, so the
worker refuses it, naming the file: delete the partition's snapshot to rebuild it from the stream
(the alerts already written are not written again).

Trust: snapshots are pickled engine state (:meth:`StreamEngine.snapshot`) — trusted local files;
never point ``--state-dir`` at a directory others can write.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from freezedesk.monitoring.events import Event, EventValidationError, format_ts, parse_event
from freezedesk.monitoring.jetstream import PARTITIONS_HEADER, StreamLayout, owned_partitions
from freezedesk.monitoring.rules import Alert, Pack, StreamEngine

if TYPE_CHECKING:
    from freezedesk.domain.catalogue import ReasonCatalogue
    from freezedesk.store.uow import Store

#: 2: + the event-id memory (``ids``) and the ``duplicates`` / ``late`` counters. Format 1 is refused.
SNAPSHOT_FORMAT: Final = 2
#: Seconds after which the server deletes a consumer nobody fetches from (a killed worker's).
CONSUMER_INACTIVE_THRESHOLD: Final = 30.0

AlertKey = tuple[str, str, str]


def alert_key(alert: Alert) -> AlertKey:
    """An alert's identity: the engine fires a rule at most once per account and instant."""
    line = alert.to_json()
    return (alert.account_id, alert.rule_id, line["ts"])


# -- alert sinks ----------------------------------------------------------------------------------


class AlertSink(Protocol):
    """Where a partition's alerts go. Both methods are called from the worker's event loop.

    ``emit`` is called once per fetched batch with the alerts the batch fired and the events it
    counted (in stream order; the events of the alerts among them). It must be **idempotent by**
    :func:`alert_key` — and, for a sink that keeps events, by ``event_id``: after a crash the
    events since the last snapshot are replayed and handed over again with their alerts. ``sync``
    must make everything emitted durable; the worker calls it right before writing a snapshot.

    The database is a sink like any other: emit = one unit of work that stores the events
    (``monitoring.ingest.ingest_in``, known ids skipped), records each alert as case evidence and
    applies its hold/freeze (``monitoring.service.apply_alerts``) and commits, with a UNIQUE
    constraint on the alert key turning a replayed alert into a no-op; sync = nothing (a committed
    transaction is durable).
    """

    def emit(self, alerts: Sequence[Alert], events: Sequence[Event] = ()) -> int:
        """Record the alerts not recorded yet (and the events, if this sink keeps them); return how
        many alerts were new."""
        ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


def whole_lines(path: Path) -> list[bytes]:
    """The complete lines of a JSON Lines file this worker appends to (none if it does not exist);
    a last line cut short by a crash mid-write (no final newline) is truncated away for good."""
    if not path.exists():
        return []
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return data[:keep].splitlines()


class JsonlAlertSink:
    """Alerts as JSON Lines (the ``backtest`` format) in one file per partition, deduplicated.

    The keys of the file's alerts are loaded at open. A line cut short by a crash mid-write (no
    final newline) is truncated away: its alert was not covered by any snapshot (rule 4 of the
    module docstring), so the replay writes it again, whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.seen: set[AlertKey] = set()
        for line in whole_lines(path):
            if line.strip():
                obj = orjson.loads(line)
                self.seen.add((obj["account_id"], obj["rule_id"], obj["ts"]))
        self._handle: IO[bytes] = path.open("ab")

    def emit(self, alerts: Sequence[Alert], events: Sequence[Event] = ()) -> int:
        new = 0  # the events are in the stream and the database: the alert line names their ids
        for alert in alerts:
            key = alert_key(alert)
            if key in self.seen:
                continue
            self.seen.add(key)
            self._handle.write(alert.to_line().encode() + b"\n")
            new += 1
        if new:
            self._handle.flush()  # to the kernel: survives kill -9 (power loss needs sync())
        return new

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


class DatabaseAlertSink:
    """Events stored and alerts applied to the database: case evidence, holds and freezes.

    One unit of work per :meth:`emit`, i.e. per fetched batch that counted any event: the batch's
    events (:func:`~freezedesk.monitoring.ingest.ingest_in`: ids already stored are skipped, one
    ``events.ingested`` audit entry by ``source`` when anything was new) and then its alerts
    (:func:`~freezedesk.monitoring.service.apply_alerts`), committed together. Committed means
    durable, so :meth:`sync` has nothing to do; the ``events`` primary key and
    ``monitoring_alerts``' unique key on ``(account_id, rule_id, ts)`` make a replayed batch a
    no-op — the idempotence rule 3 needs. The call blocks the worker's loop for one transaction;
    that is the back-pressure we want (a batch is stored and its alerts applied before the
    partition fetches the next one).
    """

    def __init__(self, store: Store, catalogue: ReasonCatalogue, pack: Pack, source: str = "nats") -> None:
        from freezedesk.monitoring.service import MONITOR_ACTOR  # the DB layer only when asked for

        self.store, self.catalogue, self.pack, self.actor = store, catalogue, pack, MONITOR_ACTOR
        self.source = source  # the audit entry's "source" (the CLI: nats:STREAM/partition-PPPP)

    def check_schema(self) -> None:
        """Fail now, not at the first alert hours into the stream, if the database is unreachable or
        its schema is not the one this version writes (``freezedesk migrate``). Raises ``RuntimeError``."""
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from sqlalchemy.exc import SQLAlchemyError

        from freezedesk.store.migrate import alembic_config

        where = self.store.engine.url.render_as_string(hide_password=True)
        try:
            with self.store.engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        except SQLAlchemyError as exc:
            raise RuntimeError(f"database at {where} is unreachable: {type(exc).__name__}: "
                               f"{getattr(exc, 'orig', None) or exc}") from None
        wanted = set(ScriptDirectory.from_config(alembic_config(self.store.engine)).get_heads())
        if current != wanted:
            raise RuntimeError(f"database at {where} has schema revision {', '.join(sorted(current)) or 'none'}, "
                               f"not {', '.join(sorted(wanted))}: run freezedesk migrate first")

    def emit(self, alerts: Sequence[Alert], events: Sequence[Event] = ()) -> int:
        from freezedesk.monitoring.ingest import ingest_in
        from freezedesk.monitoring.service import apply_alerts

        if not alerts and not events:
            return 0
        with self.store.unit_of_work() as uow:
            registered = None
            if events:
                # The worker, not the table, decides what is counted: after a crash the replayed
                # events are stored already (skipped here) yet must be counted again by the engine.
                _result, _stored, registered = ingest_in(uow, events, self.actor.id, self.source)
            return len(apply_alerts(uow, self.catalogue, self.pack, alerts, self.actor, registered))

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class TeeAlertSink:
    """Every alert to several sinks (e.g. the database and a local JSON Lines log)."""

    def __init__(self, *sinks: AlertSink) -> None:
        self.sinks = sinks

    def emit(self, alerts: Sequence[Alert], events: Sequence[Event] = ()) -> int:
        return max(sink.emit(alerts, events) for sink in self.sinks)

    def sync(self) -> None:
        for sink in self.sinks:
            sink.sync()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


#: Builds the sink of one partition (the worker calls it once per owned partition).
SinkFactory = Callable[[int], AlertSink]


def jsonl_sinks(directory: Path) -> SinkFactory:
    """``<directory>/partition-PPP.jsonl`` per partition: concatenate them for all alerts."""
    return lambda partition: JsonlAlertSink(directory / f"partition-{partition:04d}.jsonl")


# -- the event-id memory --------------------------------------------------------------------------

HOUR_MS: Final = 3_600_000
#: Hours of event time a partition remembers the ids it counted (see the module docstring).
DEFAULT_DEDUP_HOURS: Final = 7 * 24
#: The high-water mark never runs further ahead of the worker's clock than this (milliseconds).
FUTURE_TOLERANCE_MS: Final = HOUR_MS
#: Bytes of the BLAKE2b hash an id is remembered by: 128 bits, so two different ids are never
#: taken for one in any realistic lifetime (p ≈ remembered / 2^128 per event).
ID_HASH_BYTES: Final = 16
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (ts - _EPOCH) // _MS


class Verdict(Enum):
    """What :meth:`EventIdMemory.admit` says about an event."""

    NEW = "new"  # never counted: fold it into the engine
    DUPLICATE = "duplicate"  # its id was counted already: skip it
    LATE = "late"  # older than the memory reaches: cannot be proven fresh, refuse it


class EventIdMemory:
    """The ids of the events a partition counted, for ``horizon_hours`` of event time behind its high-water mark.

    Ids are kept as 128-bit BLAKE2b hashes: in a set (the look-up) and, as 16 raw bytes, in the
    bucket of their event's hour (the eviction, and the snapshot: :meth:`dump` copies bytes, it does
    not walk a set). When the high-water mark moves, every bucket of an hour before
    ``hour(mark - horizon)`` is dropped and that hour becomes :attr:`refuse_before_hour`: from then
    on, an event of an earlier hour is :attr:`Verdict.LATE`. Memory is therefore complete exactly
    where it answers, which is what makes "duplicate or not" a proof rather than a guess.
    """

    __slots__ = ("buckets", "high_water_ms", "horizon_hours", "refuse_before_hour", "seen")

    def __init__(self, horizon_hours: int = DEFAULT_DEDUP_HOURS) -> None:
        if horizon_hours < 1:
            raise ValueError(f"the event-id memory needs a horizon of at least 1 hour, not {horizon_hours}")
        self.horizon_hours = horizon_hours
        self.seen: set[int] = set()
        self.buckets: dict[int, bytearray] = {}  # hour since the epoch -> hashes, ID_HASH_BYTES each
        self.high_water_ms: int | None = None  # latest event time counted (capped, see admit)
        self.refuse_before_hour: int | None = None  # events of an earlier hour are late; never decreases

    def __len__(self) -> int:
        return len(self.seen)

    def admit(self, event_id: str, ts_ms: int, now_ms: int) -> Verdict:
        """Decide about one event and, when it is new, remember it (``now_ms``: the worker's clock)."""
        hour = ts_ms // HOUR_MS
        if self.refuse_before_hour is not None and hour < self.refuse_before_hour:
            return Verdict.LATE
        digest = hashlib.blake2b(event_id.encode(), digest_size=ID_HASH_BYTES).digest()
        ident = int.from_bytes(digest, "little")
        if ident in self.seen:
            return Verdict.DUPLICATE
        self.seen.add(ident)
        bucket = self.buckets.get(hour)
        if bucket is None:
            bucket = self.buckets[hour] = bytearray()
        bucket += digest
        mark = min(ts_ms, now_ms + FUTURE_TOLERANCE_MS)  # a mis-dated event cannot push the whole partition late
        if self.high_water_ms is None or mark > self.high_water_ms:
            self.high_water_ms = mark
            self._forget()
        return Verdict.NEW

    def _forget(self) -> None:
        assert self.high_water_ms is not None
        limit = (self.high_water_ms - self.horizon_hours * HOUR_MS) // HOUR_MS
        if self.refuse_before_hour is not None and limit <= self.refuse_before_hour:
            return
        self.refuse_before_hour = limit
        for hour in [h for h in self.buckets if h < limit]:
            bucket = self.buckets.pop(hour)
            for i in range(0, len(bucket), ID_HASH_BYTES):
                self.seen.discard(int.from_bytes(bucket[i:i + ID_HASH_BYTES], "little"))

    def refuse_before(self) -> datetime | None:
        """Events before this time are late (``None``: nothing is, yet)."""
        return None if self.refuse_before_hour is None else _EPOCH + timedelta(hours=self.refuse_before_hour)

    def dump(self) -> dict[str, Any]:
        """Plain containers for the partition snapshot (the buckets are shared, not copied)."""
        return {"horizon_hours": self.horizon_hours, "high_water_ms": self.high_water_ms,
                "refuse_before_hour": self.refuse_before_hour, "buckets": self.buckets}

    @classmethod
    def load(cls, dumped: dict[str, Any], horizon_hours: int) -> EventIdMemory:
        """The memory of a snapshot, under this run's horizon.

        A shorter horizon than the snapshot's takes effect at once (ids are forgotten); a longer one
        as the high-water mark moves on (ids already forgotten cannot come back, so the refuse-before
        hour stays where it was).
        """
        memory = cls(horizon_hours)
        memory.high_water_ms = dumped["high_water_ms"]
        memory.refuse_before_hour = dumped["refuse_before_hour"]
        memory.buckets = dumped["buckets"]
        memory.seen = {int.from_bytes(bucket[i:i + ID_HASH_BYTES], "little")
                       for bucket in memory.buckets.values() for i in range(0, len(bucket), ID_HASH_BYTES)}
        if memory.high_water_ms is not None:
            memory._forget()
        return memory


class RefusedLog:
    """``<state>/refused/partition-PPPP.jsonl``: one line per late event, for a person to review.

    Like :class:`JsonlAlertSink`: a torn last line is cut away at open, and a replay after a crash
    does not list an event twice (stream sequences only grow within a partition, so a line whose
    sequence is not above the last one written is already there). Opened at the first refusal.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_seq = 0
        self._handle: IO[bytes] | None = None
        lines = whole_lines(path)
        if lines:
            self.last_seq = int(orjson.loads(lines[-1])["seq"])

    def record(self, seq: int, subject: str, event: Event, refuse_before: datetime | None) -> None:
        if seq <= self.last_seq:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
        self._handle.write(orjson.dumps({
            "seq": seq, "subject": subject, "reason": Verdict.LATE.value, "event_id": event.event_id,
            "account_id": event.account_id, "ts": format_ts(event.ts),
            "refuse_before": None if refuse_before is None else format_ts(refuse_before),
        }) + b"\n")
        self._handle.flush()
        self.last_seq = seq

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


# -- snapshots ------------------------------------------------------------------------------------


class StreamMismatchError(RuntimeError):
    """The stream or its messages do not match what this worker's state was built from."""


class SnapshotFormatError(StreamMismatchError):
    """A snapshot this version cannot read without misreading it."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A partition's progress: engine state after the event at ``last_seq`` (0 = nothing yet)."""

    stream: str
    stream_created: str  # ISO time the stream was created: a recreated stream restarts its sequences
    partitions: int
    partition: int
    last_seq: int
    events: int  # events folded in so far (for status and sanity, not for correctness)
    engine: bytes
    ids: dict[str, Any]  # EventIdMemory.dump()
    duplicates: int  # events skipped because their id was counted already
    late: int  # events refused as older than the id memory reaches


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class SnapshotStore:
    """``<state>/partitions/partition-PPP.snapshot`` (pickle: trusted local state) and its lock file."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "partitions"
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition:04d}.snapshot"

    def load(self, partition: int) -> Snapshot | None:
        path = self.path(partition)
        if not path.exists():
            return None
        fmt, fields = pickle.loads(path.read_bytes())  # noqa: S301 (our own state dir: see the module docstring)
        if fmt == 1:
            raise SnapshotFormatError(
                f"{path}: snapshot format 1 has no memory of the event ids it counted (format {SNAPSHOT_FORMAT} "
                "has), so re-sent events could be counted twice; delete this snapshot to rebuild the partition "
                "from the stream (alerts already written are not written again)")
        if fmt != SNAPSHOT_FORMAT:
            raise SnapshotFormatError(f"{path}: snapshot format {fmt} is not {SNAPSHOT_FORMAT} "
                                      "(written by another version of FreezeDesk)")
        return Snapshot(**fields)

    def save(self, snapshot: Snapshot) -> None:
        fields = {name: getattr(snapshot, name) for name in Snapshot.__slots__}
        atomic_write(self.path(snapshot.partition), pickle.dumps((SNAPSHOT_FORMAT, fields)))

    def lock(self, partition: int) -> IO[bytes]:
        """Hold the partition exclusively for this process's lifetime (released by the kernel on exit)."""
        handle = (self.directory / f"partition-{partition:04d}.lock").open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"partition {partition} is held by another live worker "
                               f"(lock {self.directory}/partition-{partition:04d}.lock)") from None
        return handle


# -- one partition --------------------------------------------------------------------------------


@dataclass(slots=True)
class PartitionRunner:
    """One partition's engine, id memory, consumer position, sink and snapshot cadence (no I/O of its own but files)."""

    partition: int
    layout: StreamLayout
    stream_created: str
    engine: StreamEngine
    ids: EventIdMemory
    sink: AlertSink
    store: SnapshotStore
    refused: RefusedLog
    last_seq: int = 0
    events: int = 0
    duplicates: int = 0
    late: int = 0
    pending: int = -1  # messages left in the consumer after the last batch; -1 = not known yet
    snapshot_seq: int = 0
    unsnapshotted: int = 0  # events processed since the last snapshot
    snapshot_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.time  # the worker's clock (seconds), for the high-water guard only
    # what the log has been told (counts and stream sequences, never ids): see Worker._report_refusals
    reported_duplicates: int = 0
    reported_late: int = 0
    late_seqs: tuple[int, int] | None = None  # first and last late sequence since the last report
    # counted since the last flush: handed to the sink once per fetch (see flush)
    unflushed_events: list[Event] = field(default_factory=list)
    unflushed_alerts: list[Alert] = field(default_factory=list)

    @classmethod
    def open(cls, partition: int, layout: StreamLayout, stream_created: str, pack: Pack,
             address_list: frozenset[str], sink: AlertSink, store: SnapshotStore,
             dedup_hours: int = DEFAULT_DEDUP_HOURS, refused: RefusedLog | None = None) -> PartitionRunner:
        engine = StreamEngine(pack, address_list)
        refused = refused or RefusedLog(store.directory.parent / "refused" / f"partition-{partition:04d}.jsonl")
        runner = cls(partition, layout, stream_created, engine, EventIdMemory(dedup_hours), sink, store, refused)
        snap = store.load(partition)
        if snap is not None:
            if (snap.stream, snap.stream_created, snap.partitions) != (layout.stream, stream_created,
                                                                      layout.partitions):
                raise StreamMismatchError(
                    f"partition {partition}: the snapshot belongs to stream {snap.stream} created "
                    f"{snap.stream_created} with {snap.partitions} partitions, not {layout.stream} created "
                    f"{stream_created} with {layout.partitions}; move the state directory away to rebuild")
            try:
                engine.restore(snap.engine)
            except ValueError as exc:  # another rule pack or engine version: its slots would be misread
                raise SnapshotFormatError(f"partition {partition}: {exc} (delete {store.path(partition)} to "
                                          "rebuild the partition from the stream)") from None
            runner.ids = EventIdMemory.load(snap.ids, dedup_hours)
            runner.last_seq = runner.snapshot_seq = snap.last_seq
            runner.events, runner.duplicates, runner.late = snap.events, snap.duplicates, snap.late
            runner.reported_duplicates, runner.reported_late = snap.duplicates, snap.late
        return runner

    def process(self, msg: Msg) -> list[Alert]:
        """Fold one message into the state and return its alerts; a re-delivered message is ignored.

        The event (when counted) and its alerts wait for :meth:`flush`, which hands the batch to
        the sink; :meth:`take_snapshot` flushes first, so a snapshot never covers unflushed work.

        An event whose id this partition has counted already (a re-send after JetStream's duplicate
        window) is skipped, and one older than the id memory reaches is refused as late and listed
        (see the module docstring); both still advance the partition's position.
        """
        meta = msg.metadata
        seq = meta.sequence.stream
        self.pending = meta.num_pending
        if seq <= self.last_seq:
            return []
        declared = (msg.headers or {}).get(PARTITIONS_HEADER)
        if declared is not None and declared != str(self.layout.partitions):
            raise StreamMismatchError(f"message {seq} on {msg.subject} was published for {declared} "
                                      f"partitions; this worker hashes with {self.layout.partitions}")
        try:
            event = parse_event(orjson.loads(msg.data), seq)
        except (orjson.JSONDecodeError, EventValidationError) as exc:
            # Never skip: a skipped event is a silently missing alert. Publishers validate first.
            raise StreamMismatchError(f"message {seq} on {msg.subject} is not a valid event: {exc}") from exc
        alerts: list[Alert] = []
        verdict = self.ids.admit(event.event_id, epoch_ms(event.ts), int(self.clock() * 1000))
        if verdict is Verdict.NEW:
            alerts = self.engine.process(event)
            self.unflushed_events.append(event)
            self.unflushed_alerts.extend(alerts)
            self.events += 1
        elif verdict is Verdict.DUPLICATE:
            self.duplicates += 1
        else:
            self.late += 1
            self.refused.record(seq, msg.subject, event, self.ids.refuse_before())
            self.late_seqs = (self.late_seqs[0] if self.late_seqs else seq, seq)
        self.last_seq = seq
        self.unsnapshotted += 1
        return alerts

    def flush(self) -> int:
        """Hand the events counted since the last flush and their alerts to the sink, as one batch
        (with ``--apply``: one unit of work); the number of new alerts. Nothing pending: no call."""
        if not self.unflushed_events:  # an alert comes with the event that fired it
            return 0
        new = self.sink.emit(self.unflushed_alerts, self.unflushed_events)
        self.unflushed_events, self.unflushed_alerts = [], []  # only once emitted: a failure keeps them
        return new

    def snapshot_due(self, every: int, seconds: float, min_seconds: float = 0.0) -> bool:
        """Whether to snapshot now: ``every`` events since the last one, or ``seconds`` since it, or
        the partition has caught up (nothing pending) and ``min_seconds`` have passed since it."""
        if self.last_seq == self.snapshot_seq:
            return False
        since = time.monotonic() - self.snapshot_at
        return self.unsnapshotted >= every or since >= seconds or (self.pending == 0 and since >= min_seconds)

    def take_snapshot(self) -> None:
        self.flush()  # what the snapshot covers is handed over first...
        self.sink.sync()  # ...and durable (rule 4: alerts durable before the snapshot that covers them)
        self.refused.sync()  # and so is the list of refused events
        self.store.save(Snapshot(self.layout.stream, self.stream_created, self.layout.partitions, self.partition,
                                 self.last_seq, self.events, self.engine.snapshot(), self.ids.dump(),
                                 self.duplicates, self.late))
        self.snapshot_seq = self.last_seq
        self.snapshot_at = time.monotonic()
        self.unsnapshotted = 0

    def status(self) -> dict[str, Any]:
        high_water = self.ids.high_water_ms
        refuse_before = self.ids.refuse_before()
        return {"last_seq": self.last_seq, "snapshot_seq": self.snapshot_seq, "pending": self.pending,
                "events": self.events, "duplicates": self.duplicates, "late": self.late,
                "remembered_ids": len(self.ids),
                "high_water": None if high_water is None else format_ts(_EPOCH + high_water * _MS),
                "refuse_before": None if refuse_before is None else format_ts(refuse_before)}

    def close(self) -> None:
        self.sink.close()
        self.refused.close()


# -- the worker -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything ``freezedesk monitor`` takes; the defaults suit production."""

    url: str
    worker: int
    workers: int
    state_dir: Path
    layout: StreamLayout = field(default_factory=StreamLayout)
    batch: int = 256  # messages per fetch
    snapshot_every: int = 10_000  # events of one partition between snapshots
    snapshot_seconds: float = 30.0  # at most this long between snapshots of a busy partition
    #: At least this long between the snapshots a partition takes because it caught up (a trickle of
    #: events catches up at every fetch); snapshot_every and snapshot_seconds are not held back.
    snapshot_min_seconds: float = 5.0
    idle_wait: float = 1.0  # how long one fetch waits for new messages when caught up
    #: Hours of event time each partition remembers counted event ids (``--dedup-hours``); older
    #: events are refused as late. See "Each event id counted once" in the module docstring.
    dedup_hours: int = DEFAULT_DEDUP_HOURS
    #: Fault injection for tests: after this many alerts (worker-wide) stop dead — no snapshot, no
    #: cleanup — and wait to be killed. The alert that triggers it is emitted but never covered by a
    #: snapshot, so a restart must replay it and the sink must drop the copy.
    halt_after_alerts: int | None = None
    #: The same after this many messages (worker-wide, this run): a kill at a chosen point of a stream
    #: that raises no alerts (re-sent events).
    halt_after_events: int | None = None


class _Halted(Exception):
    pass


class Worker:
    """Runs the partitions of one worker until :meth:`stop` (a signal) and writes a status file.

    The status file ``<state>/worker-I-of-N.json`` (rewritten atomically after every snapshot) tells
    operators and tests where each partition stands: ``last_seq`` processed, ``snapshot_seq``
    durable, ``pending`` in the stream, ``events`` counted, ``duplicates`` skipped, ``late`` refused
    (with ``refuse_before``, the memory's limit, and ``remembered_ids``), and ``caught_up`` when every
    partition has nothing pending and everything processed is snapshotted. The worker-wide
    ``duplicates`` and ``late`` are the sums over its partitions (since the partitions' first run).
    """

    def __init__(self, config: WorkerConfig, pack: Pack, address_list: frozenset[str],
                 sinks: SinkFactory | None = None, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.pack = pack
        self.address_list = address_list
        self.sinks = sinks or jsonl_sinks(config.state_dir / "alerts")
        self.partitions = owned_partitions(config.worker, config.workers, config.layout.partitions)
        self.store = SnapshotStore(config.state_dir)
        self.runners: dict[int, PartitionRunner] = {}
        self.alerts = 0
        self.processed = 0  # messages this run (for fault injection)
        self.halted = False
        self._stop = asyncio.Event()
        self._log = log or (lambda _line: None)

    @property
    def status_path(self) -> Path:
        return self.config.state_dir / f"worker-{self.config.worker}-of-{self.config.workers}.json"

    def stop(self) -> None:
        self._stop.set()

    def _report_refusals(self, runner: PartitionRunner) -> None:
        """Tell the log what was skipped or refused since the last report: counts and stream sequences only."""
        duplicates, late = runner.duplicates - runner.reported_duplicates, runner.late - runner.reported_late
        if not duplicates and not late:
            return
        parts = []
        if duplicates:
            parts.append(f"{duplicates} re-sent event(s) skipped (event id already counted)")
        if late and runner.late_seqs is not None:
            first, last = runner.late_seqs
            limit = runner.ids.refuse_before()
            parts.append(f"{late} late event(s) refused, older than {format_ts(limit) if limit else '?'} "
                         f"(stream sequences {first}..{last}; listed in {runner.refused.path})")
        self._log(f"worker {self.config.worker}: partition {runner.partition}: " + "; ".join(parts))
        runner.reported_duplicates, runner.reported_late, runner.late_seqs = runner.duplicates, runner.late, None

    def write_status(self) -> None:
        runners = self.runners.values()
        caught_up = bool(runners) and all(r.pending == 0 and r.snapshot_seq == r.last_seq for r in runners)
        atomic_write(self.status_path, json.dumps({
            "worker": self.config.worker, "workers": self.config.workers, "pid": os.getpid(),
            "halted": self.halted, "caught_up": caught_up, "alerts": self.alerts,
            "duplicates": sum(r.duplicates for r in runners), "late": sum(r.late for r in runners),
            "dedup_hours": self.config.dedup_hours,
            "partitions": {str(p): r.status() for p, r in self.runners.items()},
        }, indent=1).encode())

    async def run(self) -> None:
        cfg = self.config
        # Bounded: nats-py retries a refused *first* connection forever; a worker must fail loudly
        # at start (after that, reconnects are unlimited: the consumers resume where they were).
        nc = await asyncio.wait_for(nats.connect(cfg.url, connect_timeout=5, max_reconnect_attempts=-1), 15)
        locks: list[IO[bytes]] = []
        subs: list[JetStreamContext.PullSubscription] = []
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(cfg.layout.stream)
            except NotFoundError:
                raise StreamMismatchError(f"stream {cfg.layout.stream} does not exist at {cfg.url} "
                                          "(publish events first: freezedesk events publish)") from None
            created = info.created.isoformat() if isinstance(info.created, datetime) else str(info.created)
            first_seq = info.state.first_seq
            for p in self.partitions:
                locks.append(self.store.lock(p))
                runner = PartitionRunner.open(p, cfg.layout, created, self.pack, self.address_list,
                                              self.sinks(p), self.store, cfg.dedup_hours)
                if runner.last_seq + 1 < first_seq and info.state.messages:
                    raise StreamMismatchError(
                        f"partition {p}: the snapshot ends at sequence {runner.last_seq} but the stream now starts "
                        f"at {first_seq}; the events in between are gone and the state cannot be rebuilt")
                self.runners[p] = runner
                subs.append(await self._subscribe(js, runner))
            self._log(f"worker {cfg.worker}/{cfg.workers}: partitions {self.partitions}, resuming at "
                      + ", ".join(f"{p}:{r.last_seq + 1}" for p, r in self.runners.items()))
            self.write_status()
            tasks = [asyncio.create_task(self._consume(self.runners[p], sub))
                     for p, sub in zip(self.partitions, subs, strict=True)]
            stopper = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for task in done:  # a partition failed: stop everything, keep the last good snapshots
                error = None if task is stopper or task.cancelled() else task.exception()
                if error is not None:
                    raise error
            if not self.halted:  # clean shutdown: everything processed becomes durable
                for runner in self.runners.values():
                    if runner.last_seq != runner.snapshot_seq:
                        runner.take_snapshot()
                    self._report_refusals(runner)
                self.write_status()
                for sub in subs:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                        await js.delete_consumer(cfg.layout.stream, (await sub.consumer_info()).name)
        finally:
            for runner in self.runners.values():
                runner.close()
            for lock in locks:
                lock.close()
            with contextlib.suppress(Exception):
                await nc.close()

    async def _subscribe(self, js: JetStreamContext, runner: PartitionRunner) -> JetStreamContext.PullSubscription:
        start = runner.last_seq + 1
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
            opt_start_seq=start if start > 1 else None,
            inactive_threshold=CONSUMER_INACTIVE_THRESHOLD,
        )
        return await js.pull_subscribe(self.config.layout.subject(runner.partition), stream=self.config.layout.stream,
                                       config=config)

    async def _consume(self, runner: PartitionRunner, sub: JetStreamContext.PullSubscription) -> None:
        cfg = self.config
        # Not only cancellation ends the loop: on Python 3.11 a cancel that lands as a fetch receives
        # its message is swallowed by asyncio.wait_for inside nats-py, and the worker would never stop.
        while not self._stop.is_set():
            if self.halted:
                await asyncio.Event().wait()  # dead in the water until kill -9
            was_pending = runner.pending
            try:
                msgs = await sub.fetch(cfg.batch, timeout=cfg.idle_wait)
            except TimeoutError:  # nothing new (nats-py raises asyncio's or its own subclass of it)
                msgs = []
                runner.pending = 0
            try:
                for msg in msgs:
                    if self.halted:  # another partition halted: stop dead, its batch never handed over
                        raise _Halted
                    fired = runner.process(msg)
                    self.alerts += len(fired)
                    self.processed += 1
                    if ((cfg.halt_after_alerts is not None and self.alerts >= cfg.halt_after_alerts)
                            or (cfg.halt_after_events is not None and self.processed >= cfg.halt_after_events)):
                        # The batch so far (with the alert that triggered the halt) reaches the sink,
                        # and no snapshot covers it: the restart must replay it, the sink drop the copies.
                        runner.flush()
                        self.halted = True
                        self.write_status()
                        self._log(f"worker {cfg.worker}: halted after {self.alerts} alerts, {self.processed} "
                                  "messages (fault injection)")
                        raise _Halted
            except _Halted:
                continue
            except StreamMismatchError:
                runner.flush()  # the events before the bad message are counted: store them, apply their alerts
                raise
            runner.flush()  # one batch per fetch: stored and applied before the next fetch or any snapshot
            if runner.snapshot_due(cfg.snapshot_every, cfg.snapshot_seconds, cfg.snapshot_min_seconds):
                runner.take_snapshot()
                self._report_refusals(runner)
                self.write_status()
            elif runner.pending == 0 and was_pending != 0 and not self.halted:
                # Caught up with nothing to snapshot (e.g. a partition the restart had nothing to replay
                # for): the status must say so, or "caught_up" would wait for another partition's snapshot.
                self.write_status()
            await asyncio.sleep(0)  # let the other partitions in between batches


def run_worker(config: WorkerConfig, pack: Pack, address_list: frozenset[str],
               sinks: SinkFactory | None = None, log: Callable[[str], None] | None = None) -> None:
    """Run a worker in a fresh event loop until SIGTERM or SIGINT, then snapshot and return."""

    async def main() -> None:
        worker = Worker(config, pack, address_list, sinks, log)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(main())
