"""Storing a validated batch of events: once, atomically, audited.

The exchange core may send the same events again (a retry after a timeout, a replayed export):
an ``event_id`` already stored is skipped and counted as a duplicate, so replaying a batch
changes nothing. What *is* new is written in the same transaction as the registration of the
accounts it names and one audit entry for the batch — the entry records counts, never payloads,
because the audit chain is kept for years and event payloads hold addresses and IPs.

Each account also counts its stored events (``accounts.events_counted``), raised in the same
transaction under the account's row lock: a monitor that knows how many events it has counted can
tell whether another process stored some since (:mod:`freezedesk.monitoring.live`).

Validation is not done here: callers pass events that :mod:`freezedesk.monitoring.events` has
already accepted, so a bad batch never reaches the database at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from freezedesk.domain.ids import new_id
from freezedesk.monitoring.events import Event
from freezedesk.store.tables import events as events_table
from freezedesk.store.uow import Store, UnitOfWork, utcnow

#: Rows per INSERT statement: well under SQLite's 32,766 bound parameters (6 columns a row).
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class IngestResult:
    batch_id: str | None  # the audit entity id; None when nothing new was stored (nothing audited)
    accepted: int  # events stored by this call
    duplicates: int  # events whose id was already stored (left untouched)
    accounts_registered: int  # accounts FreezeDesk had not seen before


@dataclass(frozen=True, slots=True)
class Registered:
    """The accounts a unit of work has registered: ``accounts`` are known to exist, ``created``
    (a subset) were inserted by it — so no other transaction can see them, lock them or have
    recorded anything about them (alerts, cases and restrictions reference accounts by key).
    Whoever passes ``created`` on (to :func:`~freezedesk.monitoring.service.apply_alerts`) vouches
    that nothing in the unit of work has referenced them since: no case, restriction or alert.

    ``counted`` is each account's ``events_counted`` including this unit of work's events: how
    many events of the account are stored once it commits. The accounts are locked until then, so
    nobody else stores events for them in between."""

    accounts: frozenset[str]
    created: frozenset[str]
    counted: Mapping[str, int] = field(default_factory=dict)


def ingest(store: Store, batch: Sequence[Event], actor: str, source: str, now: datetime | None = None
           ) -> IngestResult:
    """Store every event whose id is new, in one transaction; report what happened.

    Duplicates are detected by the database itself (insert … on conflict do nothing … returning),
    not by a prior SELECT, so two processes ingesting overlapping batches at once still store
    each event exactly once and each count only what they wrote.

    A replay that adds nothing writes nothing — not even an audit entry, since no state changed.
    """
    with store.unit_of_work() as uow:
        result, _stored, _accounts = ingest_in(uow, batch, actor, source, now)
    return result


def ingest_in(uow: UnitOfWork, batch: Sequence[Event], actor: str, source: str, now: datetime | None = None
              ) -> tuple[IngestResult, frozenset[str], Registered]:
    """:func:`ingest` inside a unit of work the caller owns; also returns the ids stored by this call
    and the accounts they name (all registered in this unit of work by now, some by it).

    The ids are what a caller evaluates next: the live monitor runs exactly the events this call
    wrote through the rules, in the same transaction, so an event is counted by the engine if and
    only if it is stored — a duplicate (already counted when it was first stored) is never
    counted twice. The accounts let the caller skip registering them again (one round trip each).

    The accounts of the stored events are then locked (in id order, those this call did not
    create; SQLite's writer lock already excludes everyone) and their ``events_counted`` raised by
    the events stored for each, the new totals returned in ``Registered.counted``: two statements
    per 500 accounts. The locks are held to commit, so whoever stores events of an account next
    waits for this transaction and then sees its events and its total together.
    """
    at = now or utcnow()
    # Inserted in event_id order: two writers storing overlapping batches take the ids' index
    # locks in one order and wait for each other instead of deadlocking.
    rows = [
        {"event_id": e.event_id, "account_id": e.account_id, "type": e.type.value, "ts": e.ts,
         "payload": json.dumps(e.to_json(), separators=(",", ":"), ensure_ascii=False), "ingested_at": at}
        for e in sorted(batch, key=lambda e: e.event_id)
    ]
    dialect_insert = pg_insert if uow.conn.dialect.name == "postgresql" else sqlite_insert
    statement = (dialect_insert(events_table)
                 .on_conflict_do_nothing(index_elements=["event_id"])
                 .returning(events_table.c.event_id, events_table.c.account_id))
    stored: list[tuple[str, str]] = []
    for start in range(0, len(rows), CHUNK):
        stored.extend((r.event_id, r.account_id) for r in uow.conn.execute(statement, rows[start:start + CHUNK]))
    if not stored:
        return IngestResult(None, 0, len(rows), 0), frozenset(), Registered(frozenset(), frozenset())
    accounts = frozenset(account for _, account in stored)
    created = frozenset(uow.accounts.register(accounts, at))
    if uow.conn.dialect.name != "sqlite":  # SQLite has no row locks; BEGIN IMMEDIATE serialises writers
        uow.accounts.lock_many(accounts - created)  # created ones: invisible to others until commit
    counted = uow.accounts.count_events(Counter(account for _, account in stored))
    registered = len(created)
    batch_id = new_id("evb")
    uow.audit(actor, "events.ingested", "event_batch", batch_id, None, {
        "source": source, "received": len(rows), "accepted": len(stored),
        "duplicates": len(rows) - len(stored), "accounts_registered": registered,
        "first_ts": min(e.ts for e in batch).isoformat(), "last_ts": max(e.ts for e in batch).isoformat(),
    }, at)
    return (IngestResult(batch_id, len(stored), len(rows) - len(stored), registered),
            frozenset(event_id for event_id, _ in stored), Registered(accounts, created, counted))
