"""The in-process monitor: events posted to the API are evaluated before the response returns.

One :class:`Monitor` lives in each server process (built by :mod:`freezedesk.runtime`). It owns a
:class:`~freezedesk.monitoring.rules.StreamEngine` for the configured pack and runs every *newly
stored* event through it inside the transaction that stores the event, applying the alerts it
fires (:func:`freezedesk.monitoring.service.apply_alerts`) in that same transaction::

    POST /v1/events ─► validate ─► lock ─► BEGIN
                                            store new events (duplicates skipped)
                                            lock their accounts, count them (accounts.events_counted)
                                            catch up on accounts another process wrote (rare)
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
so a retried batch is not counted twice — and re-reads how many events of theirs are stored
(below: what it had counted in the failed transaction was never committed).

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

**Several processes, one database** (an HA pair behind a load balancer, ``freezedesk serve``
twice — and the NATS worker with ``--apply`` or ``freezedesk events ingest`` storing events too).
Each engine sees only the events posted to its own process; the database says what it missed.
:func:`~freezedesk.monitoring.ingest.ingest_in` counts every account's stored events
(``accounts.events_counted``) in the transaction that stores them, with the account's row locked
until commit (PostgreSQL: ``SELECT … FOR UPDATE`` in id order; SQLite's writer lock serialises
everything anyway), and returns the new totals; the monitor remembers per account how many
stored events its engine has counted (from the replay, then after each commit — only after it).
When a batch's total for an account differs from that plus what this call stored, another process
stored events for the account in between, and before this call's events are evaluated the account
is rebuilt from its stored events — read in this transaction, after the lock, so exactly those
committed before it, *without* this call's (visible here, but evaluated next as new) — with the
alerts discarded (whoever stored those events applied them). So an account's events are
evaluated in the order their transactions commit, whichever process received them: a structuring
burst split across two processes alerts once, on the process that receives the deposit completing
it; a rule's dedup holds across processes; a duplicate sent to the other process changes nothing.
A rebuilt account is as after a restart (replayed in ``ts`` order; equal to the live state when
events arrive in time order). Cost: for accounts only this process writes, the counting update
(and, on PostgreSQL, the ``SELECT … FOR UPDATE`` of accounts already known), one or two round
trips per 500 accounts of a batch; an account written by both processes in turn is rebuilt from
its history (within the lookback) at each switch — route by account at the load balancer (sticky
sessions) if that history is long.

**Threads.** The engine is not thread-safe; one lock serialises :meth:`Monitor.submit` (and
warm-up). The lock is held across the transaction, so event ingestion in one process is serial —
on SQLite writes are serial anyway; on PostgreSQL this caps one process's event throughput.
Processes on one database serialise per account only (the row locks above): batches for disjoint
accounts commit in parallel, batches sharing an account queue for it. The scale-out path for
throughput remains the NATS worker (``freezedesk monitor``), which partitions accounts.

**Listed addresses** (the rules' ``listed``: exact text, EVM ``0x…`` addresses without regard to
case — see ``engine.fold_listed``) are the address-list file's plus the loaded sanctions lists' —
and the lists change while the server runs (``freezedesk lists load`` in another process). Every
:meth:`Monitor.submit` therefore reads the lists' version (``list_loads``: how many loads, and the
latest one's id) in its own transaction, one small query; when it differs from the version the
engine was given, the lists' addresses are read again (only entities that list any) and handed to
the engine (``StreamEngine.replace_listed``; window state stays as it is). So the first batch
stored after a load commits is already evaluated against it, without a restart; an address taken
off the lists stops matching the same way.

**Limits.** A process learns of another's events for an account only when it next stores an
event of that account itself (lazily, never pushed; until then it evaluates nothing for the account,
so being behind costs nothing). Events stored without being evaluated (``freezedesk events
ingest``) are counted and caught up on like any others, but nobody applies their alerts — as after
a restart. Every writer of ``events`` must go through ``ingest_in``: rows inserted or deleted any
other way change no count, and no monitor can tell.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
from freezedesk.store.tables import accounts as accounts_table
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
        # Per account: how many of its stored events the engine has counted (accounts.events_counted
        # as of the last commit or replay that fed them). Missing = unknown: caught up at next use.
        self._counted: dict[str, int] = {}
        self.caught_up = 0  # accounts rebuilt because another process had stored events for them

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

    def _replay(self, engine: StreamEngine, conn: Connection, accounts: Sequence[str] | None,
                skip: frozenset[str] = frozenset()) -> int:
        """Feed the stored events (of ``accounts``; all if None; within the lookback; but not the
        ids in ``skip``) to ``engine`` in time order, discarding the alerts. Returns how many."""
        query: Select[Any] = select(events_table.c.event_id, events_table.c.payload).order_by(
            events_table.c.ts, events_table.c.ingested_at, events_table.c.event_id)
        if self.lookback is not None:
            query = query.where(events_table.c.ts >= utcnow() - self.lookback)
        if accounts is not None:
            query = query.where(events_table.c.account_id.in_(accounts))
        count = 0
        # Options on the statement, not the connection: they would stick to the submit's connection.
        result = conn.execute(query, execution_options={"stream_results": True, "yield_per": REPLAY_CHUNK})
        for partition in result.partitions(REPLAY_CHUNK):
            for row in partition:
                if row.event_id not in skip:
                    engine.process(parse_event(json.loads(row.payload), 0))
                    count += 1
        return count

    def _build(self) -> int:
        """A fresh engine listing the static addresses and the lists' as of now, fed every stored event."""
        with self.store.read() as uow:
            self._lists_version, from_lists = _read_lists(uow.conn, None)
            self._listed = self._static_listed | from_lists
            self._engine = StreamEngine(self.pack, self._listed)  # the engine folds EVM case itself
            self._stale.clear()
            self._counted.clear()
            # The counts before the events: on PostgreSQL each statement sees what had committed
            # when it began, so the replay may include events committed after the counts were read
            # (the account is then only rebuilt once more, needlessly), never the other way round.
            counted = _read_counted(uow.conn, None)
            count = self._replay(self._engine, uow.conn, None)
        # Accounts without replayed events (none within the lookback) are left out: they cost a
        # catch-up (a query that finds nothing) at their next event rather than memory until then.
        states = self._engine.states
        self._counted.update((account, n) for account, n in counted.items() if account in states)
        return count

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
        """Forget these accounts' in-memory state and replay their stored events (committed ones:
        a transaction of its own), with their stored-event counts."""
        self._stale |= accounts
        for account in accounts:
            engine.states.pop(account, None)
            self._counted.pop(account, None)  # unknown until re-read: a later submit catches up
        wanted = sorted(accounts)
        with self.store.read() as uow:
            counted = _read_counted(uow.conn, wanted)  # before the events: see _build
            self._replay(engine, uow.conn, wanted)
        self._counted.update(counted)
        self._stale -= accounts

    def _catch_up(self, engine: StreamEngine, conn: Connection, fresh: Sequence[Event], stored: frozenset[str],
                  counted: Mapping[str, int]) -> list[str]:
        """Rebuild the accounts another process stored events for since this engine last counted
        theirs, inside the submit's transaction (after ``ingest_in`` locked the accounts and
        returned their totals): their stored events *except* this call's (``stored``: visible here,
        but processed next, as new), alerts discarded — whoever stored those events applied them.
        Returns the accounts rebuilt."""
        new = Counter(event.account_id for event in fresh)
        behind = sorted(account for account, total in counted.items()
                        if self._counted.get(account, 0) + new[account] != total)
        if behind:
            for account in behind:
                engine.states.pop(account, None)
            replayed = self._replay(engine, conn, behind, skip=stored)
            self.caught_up += len(behind)
            log.debug("monitor: %d account(s) had events stored by another process; %d events replayed",
                      len(behind), replayed)
        return behind

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
                    fresh = _new_in_time_order(batch, stored)
                    self._catch_up(engine, uow.conn, fresh, stored, registered.counted)
                    alerts = [alert for event in fresh for alert in engine.process(event)]
                    applied = apply_alerts(uow, self.catalogue, self.pack, alerts, self.actor, registered)
            except BaseException:
                try:
                    self._rebuild(engine, touched)
                except Exception:
                    log.exception("monitor: rebuilding %d account(s) failed; retried on next use", len(touched))
                raise
            # Committed: the engine has now counted every stored event of these accounts.
            self._counted.update(registered.counted)
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


def _read_counted(conn: Connection, accounts: Sequence[str] | None) -> dict[str, int]:
    """``accounts.events_counted`` of these accounts (all if None) that have stored events."""
    query = select(accounts_table.c.id, accounts_table.c.events_counted).where(accounts_table.c.events_counted > 0)
    if accounts is not None:
        query = query.where(accounts_table.c.id.in_(accounts))
    return {row.id: int(row.events_counted) for row in conn.execute(query)}


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
