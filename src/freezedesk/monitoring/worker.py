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
    3. **Alerts** are the one effect that escapes before the snapshot, so they are written
       idempotently: an alert's identity is ``(account_id, rule_id, ts)`` (the engine fires a rule
       at most once per account and instant), and a sink ignores an alert it already holds. The
       replay re-fires exactly the alerts of the replayed events, and the sink drops them.
    4. **Order of durability**: the sink is made durable (:meth:`AlertSink.sync`) *before* the
       snapshot that covers its alerts is written. Otherwise a power loss could keep a snapshot
       claiming "sequence S done" while losing an alert fired at S, and no replay would bring it back.

    The JetStream consumers are ephemeral, ``AckPolicy.NONE``: the snapshot, not the server, is
    the record of progress — two records would be two truths. A consumer abandoned by a killed
    worker is deleted by the server after ``inactive_threshold``.

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

Snapshots are taken every ``snapshot_every`` events of a partition, every ``snapshot_seconds``, when
a partition has caught up with the stream, and on a clean shutdown (SIGTERM / SIGINT). A snapshot
remembers the stream's creation time: a stream deleted and recreated under the same name restarts
its sequences, and an old snapshot must not skip the new stream's first events — the worker refuses
to start instead. It also refuses if the stream no longer holds the events right after the
snapshot (retention discarded them): the state could not be rebuilt and alerts would be missing.

Trust: snapshots are pickled engine state (:meth:`StreamEngine.snapshot`) — trusted local files;
never point ``--state-dir`` at a directory others can write.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from freezedesk.monitoring.events import EventValidationError, parse_event
from freezedesk.monitoring.jetstream import PARTITIONS_HEADER, StreamLayout, owned_partitions
from freezedesk.monitoring.rules import Alert, Pack, StreamEngine

if TYPE_CHECKING:
    from freezedesk.domain.catalogue import ReasonCatalogue
    from freezedesk.store.uow import Store

SNAPSHOT_FORMAT: Final = 1
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

    ``emit`` must be **idempotent by** :func:`alert_key`: after a crash the events since the last
    snapshot are replayed and fire their alerts again. ``sync`` must make every emitted alert
    durable; the worker calls it right before writing a snapshot.

    The database is a sink like any other: emit = one unit of work that records each alert as case
    evidence and applies its hold/freeze (``monitoring.service.apply_alerts``) and commits, with a
    UNIQUE constraint on the alert key turning a replayed alert into a no-op; sync = nothing (a
    committed transaction is durable).
    """

    def emit(self, alerts: Sequence[Alert]) -> int:
        """Record the alerts not recorded yet; return how many were new."""
        ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


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
        if path.exists():
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                with path.open("r+b") as handle:
                    handle.truncate(keep)
            for line in data[:keep].splitlines():
                if line.strip():
                    obj = orjson.loads(line)
                    self.seen.add((obj["account_id"], obj["rule_id"], obj["ts"]))
        self._handle: IO[bytes] = path.open("ab")

    def emit(self, alerts: Sequence[Alert]) -> int:
        new = 0
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
    """Alerts applied to the database: case evidence, holds and freezes (:func:`apply_alerts`).

    One unit of work per :meth:`emit` (alerts are rare, a few per thousand events): committed means
    durable, so :meth:`sync` has nothing to do, and ``monitoring_alerts``' unique key on
    ``(account_id, rule_id, ts)`` makes a replayed alert a no-op — the idempotence rule 3 needs.
    The call blocks the worker's loop for one transaction; that is the back-pressure we want (an
    alert must be applied before the partition moves on).
    """

    def __init__(self, store: Store, catalogue: ReasonCatalogue, pack: Pack) -> None:
        from freezedesk.monitoring.service import MONITOR_ACTOR  # the DB layer only when asked for

        self.store, self.catalogue, self.pack, self.actor = store, catalogue, pack, MONITOR_ACTOR

    def emit(self, alerts: Sequence[Alert]) -> int:
        from freezedesk.monitoring.service import apply_alerts

        with self.store.unit_of_work() as uow:
            return len(apply_alerts(uow, self.catalogue, self.pack, alerts, self.actor))

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class TeeAlertSink:
    """Every alert to several sinks (e.g. the database and a local JSON Lines log)."""

    def __init__(self, *sinks: AlertSink) -> None:
        self.sinks = sinks

    def emit(self, alerts: Sequence[Alert]) -> int:
        return max(sink.emit(alerts) for sink in self.sinks)

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


# -- snapshots ------------------------------------------------------------------------------------


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
        if fmt != SNAPSHOT_FORMAT:
            raise ValueError(f"{path}: snapshot format {fmt} is not {SNAPSHOT_FORMAT}")
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


class StreamMismatchError(RuntimeError):
    """The stream or its messages do not match what this worker's state was built from."""


@dataclass(slots=True)
class PartitionRunner:
    """One partition's engine, consumer position, sink and snapshot cadence (no I/O of its own but files)."""

    partition: int
    layout: StreamLayout
    stream_created: str
    engine: StreamEngine
    sink: AlertSink
    store: SnapshotStore
    last_seq: int = 0
    events: int = 0
    pending: int = -1  # messages left in the consumer after the last batch; -1 = not known yet
    snapshot_seq: int = 0
    unsnapshotted: int = 0  # events processed since the last snapshot
    snapshot_at: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, partition: int, layout: StreamLayout, stream_created: str, pack: Pack,
             address_list: frozenset[str], sink: AlertSink, store: SnapshotStore) -> PartitionRunner:
        engine = StreamEngine(pack, address_list)
        runner = cls(partition, layout, stream_created, engine, sink, store)
        snap = store.load(partition)
        if snap is not None:
            if (snap.stream, snap.stream_created, snap.partitions) != (layout.stream, stream_created,
                                                                      layout.partitions):
                raise StreamMismatchError(
                    f"partition {partition}: the snapshot belongs to stream {snap.stream} created "
                    f"{snap.stream_created} with {snap.partitions} partitions, not {layout.stream} created "
                    f"{stream_created} with {layout.partitions}; move the state directory away to rebuild")
            engine.restore(snap.engine)
            runner.last_seq = runner.snapshot_seq = snap.last_seq
            runner.events = snap.events
        return runner

    def process(self, msg: Msg) -> list[Alert]:
        """Fold one message into the state and emit its alerts; a re-delivered message is ignored."""
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
        alerts = self.engine.process(event)
        if alerts:
            self.sink.emit(alerts)
        self.last_seq = seq
        self.events += 1
        self.unsnapshotted += 1
        return alerts

    def snapshot_due(self, every: int, seconds: float) -> bool:
        if self.last_seq == self.snapshot_seq:
            return False
        return (self.unsnapshotted >= every or time.monotonic() - self.snapshot_at >= seconds
                or self.pending == 0)

    def take_snapshot(self) -> None:
        self.sink.sync()  # rule 4: alerts durable before the snapshot that covers them
        self.store.save(Snapshot(self.layout.stream, self.stream_created, self.layout.partitions, self.partition,
                                 self.last_seq, self.events, self.engine.snapshot()))
        self.snapshot_seq = self.last_seq
        self.snapshot_at = time.monotonic()
        self.unsnapshotted = 0

    def status(self) -> dict[str, Any]:
        return {"last_seq": self.last_seq, "snapshot_seq": self.snapshot_seq, "pending": self.pending,
                "events": self.events}


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
    idle_wait: float = 1.0  # how long one fetch waits for new messages when caught up
    #: Fault injection for tests: after this many alerts (worker-wide) stop dead — no snapshot, no
    #: cleanup — and wait to be killed. The alert that triggers it is emitted but never covered by a
    #: snapshot, so a restart must replay it and the sink must drop the copy.
    halt_after_alerts: int | None = None


class _Halted(Exception):
    pass


class Worker:
    """Runs the partitions of one worker until :meth:`stop` (a signal) and writes a status file.

    The status file ``<state>/worker-I-of-N.json`` (rewritten atomically after every snapshot) tells
    operators and tests where each partition stands: ``last_seq`` processed, ``snapshot_seq``
    durable, ``pending`` in the stream, and ``caught_up`` when every partition has nothing pending
    and everything processed is snapshotted.
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
        self.halted = False
        self._stop = asyncio.Event()
        self._log = log or (lambda _line: None)

    @property
    def status_path(self) -> Path:
        return self.config.state_dir / f"worker-{self.config.worker}-of-{self.config.workers}.json"

    def stop(self) -> None:
        self._stop.set()

    def write_status(self) -> None:
        runners = self.runners.values()
        caught_up = bool(runners) and all(r.pending == 0 and r.snapshot_seq == r.last_seq for r in runners)
        atomic_write(self.status_path, json.dumps({
            "worker": self.config.worker, "workers": self.config.workers, "pid": os.getpid(),
            "halted": self.halted, "caught_up": caught_up, "alerts": self.alerts,
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
                                              self.sinks(p), self.store)
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
                self.write_status()
                for sub in subs:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                        await js.delete_consumer(cfg.layout.stream, (await sub.consumer_info()).name)
        finally:
            for runner in self.runners.values():
                runner.sink.close()
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
        while True:
            if self.halted:
                await asyncio.Event().wait()  # dead in the water until kill -9
            try:
                msgs = await sub.fetch(cfg.batch, timeout=cfg.idle_wait)
            except TimeoutError:  # nothing new (nats-py raises asyncio's or its own subclass of it)
                msgs = []
                runner.pending = 0
            try:
                for msg in msgs:
                    if self.halted:
                        raise _Halted
                    fired = runner.process(msg)
                    self.alerts += len(fired)
                    if cfg.halt_after_alerts is not None and self.alerts >= cfg.halt_after_alerts:
                        self.halted = True
                        self.write_status()
                        self._log(f"worker {cfg.worker}: halted after {self.alerts} alerts (fault injection)")
                        raise _Halted
            except _Halted:
                continue
            if runner.snapshot_due(cfg.snapshot_every, cfg.snapshot_seconds):
                runner.take_snapshot()
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
