"""The in-process monitor: events posted to the API are evaluated before the response returns.

One :class:`Monitor` lives in each server process (built by :mod:`freezedesk.runtime`). It owns a
:class:`~freezedesk.monitoring.rules.StreamEngine` for the configured pack and runs every *newly
stored* event through it inside the transaction that stores the event, applying the alerts it
fires (:func:`freezedesk.monitoring.service.apply_alerts`) in that same transaction::

    POST /v1/events ─► validate ─► lock ─► BEGIN
                                            store new events (duplicates skipped)
                                            engine.process(each new event, in ts order)
                                            apply alerts: cases, restrictions, audit, outbox
                                           COMMIT ─► permission view refreshed ─► response

So when ``POST /v1/events`` returns, a freeze it caused is already enforced by the very next
permission check, and the exchange core sees the alerts in the response.

**Exactly once, in memory too.** The engine counts an event if and only if the event was stored by
this call: duplicates (already counted when first stored) are not run again. If the transaction
fails after the engine has run — a database error, a conflicting writer — the database rolls back
but the engine's memory would not; the monitor therefore discards the in-memory state of the
accounts the batch touched and rebuilds it from their stored events (cheap: one account's history),
so a retried batch is not counted twice.

**Restart.** Window state (counts, sums, distinct sets, baselines, first-use sets, dedup marks) is
memory only; :meth:`Monitor.warm` rebuilds it at start-up by replaying the ``events`` table in time
order through a fresh engine *without applying alerts* (they were applied when the events first
arrived; ``monitoring_alerts`` would skip them anyway). How far back to replay is a trade-off:

* ``lookback=None`` (the default) replays everything. Only this reproduces the stream exactly:
  ``first_use`` ("never-used address", "new device") and ``account_age`` look at the account's
  whole history, and ``since`` features can span months (``dormant_reactivation`` needs 180 days).
  Cost: one pass over the table at start-up (the engine runs at ≥ 100 k events/s; parsing the
  stored JSON dominates).
* ``FREEZEDESK_MONITOR_LOOKBACK_DAYS=N`` replays only the last N days. Windows, baselines and
  dedup are exact as long as N covers the pack's largest window plus its baseline days (31 days for
  the standard pack); but history older than N days is forgotten, so an address last used before
  it reads as *new* (``pass_through``, ``fan_out`` may fire where a full replay would not), an
  account's age starts at its first replayed event (``account_takeover`` skips accounts "younger"
  than 7 days), and dormancy longer than N days is not seen. Choose N ≥ 181 for the standard pack
  if you bound it at all.

**Threads.** The engine is not thread-safe; one lock serialises :meth:`Monitor.submit` (and
warm-up). The lock is held across the transaction, so event ingestion in one process is serial —
on SQLite writes are serial anyway; on PostgreSQL this caps one process's event throughput, and
the scale-out path is the NATS worker (``freezedesk monitor``), which partitions accounts.

**Listed addresses** (the rules' ``listed``: exact text, EVM ``0x…`` addresses without regard to
case — see ``engine.fold_listed``) are the address-list file's plus the loaded sanctions lists' —
and the lists change while the server runs (``freezedesk lists load`` in another process). Every
:meth:`Monitor.submit` therefore reads the lists' version (``list_loads``: how many loads, and the
latest one's id) in its own transaction, one small query; when it differs from the version the
engine was given, the lists' addresses are read again (only entities that list any) and handed to
the engine (``StreamEngine.replace_listed``; window state stays as it is). So the first batch
stored after a load commits is already evaluated against it, without a restart; an address taken
off the lists stops matching the same way.

**Limits.** Each server process has its own engine and sees only the events posted *to it*
(and, after a restart, everything stored). Run the API with one worker process when relying on
in-process monitoring, or use the NATS worker.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Select, func, select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.restrictions import Actor
from freezedesk.monitoring.events import Event, parse_event
from freezedesk.monitoring.ingest import IngestResult, ingest_in
from freezedesk.monitoring.rules.engine import StreamEngine, load_address_list
from freezedesk.monitoring.rules.language import Pack, load_pack
from freezedesk.monitoring.service import MONITOR_ACTOR, apply_alerts
from freezedesk.store.tables import events as events_table
from freezedesk.store.tables import list_loads, sanctions_entities
from freezedesk.store.uow import Store, utcnow

log = logging.getLogger(__name__)

#: Rows fetched per round trip while replaying the events table.
REPLAY_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :meth:`Monitor.submit` did: the ingestion counts and the alerts it applied."""

    ingest: IngestResult
    alerts: list[dict[str, Any]]


class Monitor:
    """A stream engine fed by the API, with its state rebuilt from the database at start-up."""

    def __init__(
        self,
        store: Store,
        catalogue: ReasonCatalogue,
        pack: Pack,
        listed: Iterable[str] = (),
        lookback: timedelta | None = None,
        actor: Actor = MONITOR_ACTOR,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.pack = pack
        self.lookback = lookback
        self.actor = actor
        self._static_listed = frozenset(listed)  # the address-list file: fixed for the process
        self._lists_version: ListsVersion | None = None  # the sanctions lists' the engine has; None: unread
        self._listed = self._static_listed  # what the engine matches: static plus the lists' addresses
        self._lock = threading.Lock()
        self._engine: StreamEngine | None = None
        self._stale: set[str] = set()  # accounts whose in-memory state must be rebuilt before use

    @classmethod
    def from_env(cls, store: Store, catalogue: ReasonCatalogue, rules_path: str | None = None,
                 address_list_path: str | None = None, lookback_days: float | None = None) -> Monitor:
        """The pack (``FREEZEDESK_RULES`` or the standard pack), the address list
        (``FREEZEDESK_ADDRESS_LIST``, one address a line, ``#`` comments) and the replay lookback
        (``FREEZEDESK_MONITOR_LOOKBACK_DAYS``, unset = all history). Arguments win over the
        environment. A bad pack raises :class:`~freezedesk.monitoring.rules.RuleError` naming
        the file, rule and field, so a server never starts with rules it cannot run.
        """
        rules = rules_path or os.environ.get("FREEZEDESK_RULES") or None
        addresses = address_list_path or os.environ.get("FREEZEDESK_ADDRESS_LIST") or None
        raw_days = os.environ.get("FREEZEDESK_MONITOR_LOOKBACK_DAYS")
        days = lookback_days if lookback_days is not None else (float(raw_days) if raw_days else None)
        pack = load_pack(rules, known_reasons=frozenset(reason.code for reason in catalogue))
        return cls(store, catalogue, pack, load_address_list(Path(addresses)) if addresses else (),
                   timedelta(days=days) if days is not None else None)

    @property
    def listed_count(self) -> int:
        """How many addresses the rules' ``listed`` matches now (file and lists, as given)."""
        return len(self._listed)

    # -- start-up ----------------------------------------------------------------------------------
    def warm(self, extra_listed: Iterable[str] = ()) -> int:
        """Build a fresh engine and replay stored events into it.

        The engine lists the address-list file's addresses, ``extra_listed`` (kept for the life of
        the process, like the file's) and the loaded sanctions lists' addresses as of now (read
        from the database; later loads are picked up by :meth:`submit`). Alerts fired during the
        replay are discarded: they were acted on when the events first arrived. Returns the number
        of events replayed.
        """
        with self._lock:
            self._static_listed = self._static_listed | frozenset(extra_listed)
            count = self._build()
        log.info("monitor: pack %s, %d listed addresses, %d events replayed", self.pack.name,
                 len(self._listed), count)
        return count

    def _replay(self, engine: StreamEngine, accounts: Sequence[str] | None) -> int:
        query: Select[Any] = select(events_table.c.payload).order_by(
            events_table.c.ts, events_table.c.ingested_at, events_table.c.event_id)
        if self.lookback is not None:
            query = query.where(events_table.c.ts >= utcnow() - self.lookback)
        if accounts is not None:
            query = query.where(events_table.c.account_id.in_(accounts))
        count = 0
        for event in self._stored_events(query):
            engine.process(event)
            count += 1
        return count

    def _stored_events(self, query: Select[Any]) -> Iterator[Event]:
        with self.store.read() as uow:
            result = uow.conn.execution_options(stream_results=True, yield_per=REPLAY_CHUNK).execute(query)
            for partition in result.partitions(REPLAY_CHUNK):
                for row in partition:
                    yield parse_event(json.loads(row.payload), 0)

    def _build(self) -> int:
        """A fresh engine listing the static addresses and the lists' as of now, fed every stored event."""
        with self.store.read() as uow:
            self._lists_version, from_lists = _read_lists(uow.conn, None)
        self._listed = self._static_listed | from_lists
        self._engine = StreamEngine(self.pack, self._listed)  # the engine folds EVM case itself
        self._stale.clear()
        return self._replay(self._engine, None)

    def _require_engine(self) -> StreamEngine:
        if self._engine is None:  # a runtime used without start(): build lazily
            self._build()
        assert self._engine is not None
        return self._engine

    def _follow_lists(self, conn: Connection) -> StreamEngine:
        """The engine to use, after taking on a sanctions-list load committed since the last call
        (one query when nothing changed). Called under the lock, in the submit's transaction."""
        engine = self._require_engine()
        version, from_lists = _read_lists(conn, self._lists_version)
        if version == self._lists_version:
            return engine
        listed = self._static_listed | from_lists
        if listed != self._listed:
            # Past events keep what they were counted as when they arrived (a `listed` in a window
            # filter, which the standard pack has not, would count them anew only on a replay).
            engine.replace_listed(listed)
            log.info("monitor: sanctions lists changed, %d listed addresses now (were %d)", len(listed),
                     len(self._listed))
            self._listed = listed
        self._lists_version = version  # only once taken on: a failed swap is retried next time
        return engine

    def _rebuild(self, engine: StreamEngine, accounts: set[str]) -> None:
        """Forget these accounts' in-memory state and replay their stored events."""
        self._stale |= accounts
        for account in accounts:
            engine.states.pop(account, None)
        self._replay(engine, sorted(accounts))
        self._stale -= accounts

    # -- the live path -------------------------------------------------------------------------------
    def submit(self, batch: Sequence[Event], actor: str, source: str) -> Submitted:
        """Store ``batch`` (validated events), evaluate its new events and apply their alerts —
        one transaction. Raises whatever the store raises; nothing is then stored, applied or
        counted (the touched accounts' engine state is rebuilt from the database)."""
        with self._lock:
            engine = self._require_engine()
            touched = {e.account_id for e in batch}
            if self._stale:
                self._rebuild(engine, set(self._stale))
            try:
                with self.store.unit_of_work() as uow:
                    engine = self._follow_lists(uow.conn)
                    result, stored, registered = ingest_in(uow, batch, actor, source)
                    alerts = [alert for event in _new_in_time_order(batch, stored)
                              for alert in engine.process(event)]
                    applied = apply_alerts(uow, self.catalogue, self.pack, alerts, self.actor, registered)
            except BaseException:
                try:
                    self._rebuild(engine, touched)
                except Exception:
                    log.exception("monitor: rebuilding %d account(s) failed; retried on next use", len(touched))
                raise
        return Submitted(result, applied)


def _new_in_time_order(batch: Sequence[Event], stored: frozenset[str]) -> list[Event]:
    """The events this call stored, each once, by ts (a stable sort: ties keep arrival order)."""
    seen: set[str] = set()
    fresh: list[Event] = []
    for event in batch:
        if event.event_id in stored and event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    return sorted(fresh, key=lambda e: e.ts)


#: ``(number of list loads, latest load's id)``: changes with every ``lists load``, whatever it changed.
ListsVersion = tuple[int, str | None]

#: How an entity without digital-currency addresses is stored (``screening.service.entity_to_json``:
#: compact separators, sorted keys). Only a filter to skip parsing most entities: were the format to
#: change, nothing would be skipped and the result would be the same.
_NO_ADDRESSES = '%"addresses":[]%'


def _read_lists(conn: Connection, known: ListsVersion | None) -> tuple[ListsVersion, frozenset[str]]:
    """The lists' version and, unless it is ``known``, the text of every listed address (as
    ``ScreeningService.listed_addresses`` gives them: as the lists print them)."""
    count, latest = conn.execute(select(func.count(list_loads.c.id), func.max(list_loads.c.id))).one()
    version: ListsVersion = (int(count), latest)
    if version == known:
        return version, frozenset()
    rows = conn.execute(select(sanctions_entities.c.payload).where(
        sanctions_entities.c.payload.not_like(_NO_ADDRESSES)))
    return version, frozenset(a["address"] for row in rows for a in json.loads(row.payload).get("addresses", ()))
