"""The unit of work: one transaction for a state change, its audit entries and its outbox messages.

Usage::

    with store.unit_of_work() as uow:
        restriction = uow.restrictions.get(rid, for_update=True)
        ...
        uow.audit(actor, "restriction.lifted", "restriction", rid, account_id, {...})
        uow.publish("restriction.lifted", {...})
    # committed here; on any exception nothing was written

After commit, listeners registered on the :class:`Store` learn which accounts changed (the
in-memory permission view refreshes them before the request returns).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text

from freezedesk.domain.ids import new_id
from freezedesk.store import audit as audit_chain
from freezedesk.store.db import is_sqlite, make_engine
from freezedesk.store.repositories import AccountRepository, CaseRepository, RestrictionRepository
from freezedesk.store.tables import idempotency_keys, outbox, webhook_deliveries, webhooks

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "freezedesk_changes"

ChangeListener = Callable[[set[str]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnitOfWork:
    def __init__(self, store: Store, readonly: bool = False) -> None:
        self._store = store
        self._readonly = readonly
        self._conn: Connection | None = None
        self._audit: list[audit_chain.AuditEntry] = []
        self._events: list[tuple[str, dict[str, Any]]] = []
        self.changed_accounts: set[str] = set()

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "unit of work used outside its 'with' block"
        return self._conn

    def __enter__(self) -> UnitOfWork:
        self._conn = self._store.engine.connect()
        # read by the SQLite "begin" hook: readers must not take the write lock
        self._conn.info["freezedesk_readonly"] = self._readonly
        self._conn.begin()
        self.accounts = AccountRepository(self._conn)
        self.restrictions = RestrictionRepository(self._conn)
        self.cases = CaseRepository(self._conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self.conn
        try:
            if exc_type is None and self._readonly:
                conn.rollback()
            elif exc_type is None:
                self._flush()
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()
            self._conn = None
        if exc_type is None and self.changed_accounts and not self._readonly:
            self._store.notify_local(self.changed_accounts)

    # -- what a use case records ---------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        account_id: str | None,
        data: dict[str, Any],
        at: datetime | None = None,
    ) -> None:
        self._audit.append(
            audit_chain.AuditEntry(at or utcnow(), actor, action, entity_type, entity_id, account_id, data)
        )
        if account_id is not None:
            self.changed_accounts.add(account_id)

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue a webhook event; it is written to the outbox in this transaction."""
        self._events.append((event_type, data))

    # -- commit ----------------------------------------------------------------------------
    def _flush(self) -> None:
        conn = self.conn
        now = utcnow()
        if self._events:
            # One read of the subscriptions and one multi-row insert per table for the whole unit
            # of work, however many events it published (the rows are the same as one by one).
            subscribers = [
                (hook.id, hook.events.split(","))
                for hook in conn.execute(select(webhooks.c.id, webhooks.c.events).where(webhooks.c.active.is_(True)))
            ]
            messages: list[dict[str, Any]] = []
            deliveries: list[dict[str, Any]] = []
            for event_type, data in self._events:
                event_id = new_id("evt")
                body = {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}
                messages.append({
                    "id": event_id,
                    "event_type": event_type,
                    "payload": json.dumps(body, default=str, separators=(",", ":")),
                    "created_at": now,
                })
                deliveries.extend(
                    {
                        "event_id": event_id,
                        "webhook_id": hook_id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for hook_id, wanted in subscribers
                    if event_type in wanted or "*" in wanted
                )
            conn.execute(outbox.insert(), messages)
            if deliveries:
                conn.execute(webhook_deliveries.insert(), deliveries)
        # Last, so the lock on the chain head is held as briefly as possible.
        audit_chain.append(conn, self._audit)
        if self.changed_accounts and not self._store.sqlite:
            # Delivered by PostgreSQL only if and when this transaction commits.
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def forget_idempotency_keys(store: Store, older_than: timedelta) -> int:
    """Idempotency keys are honoured for a day (like the payment APIs partners know)."""
    with store.unit_of_work() as uow:
        result = uow.conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < utcnow() - older_than)
        )
        return int(result.rowcount or 0)


class Store:
    """Owns the engine and the after-commit listeners."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(url)
        self.url = self.engine.url.render_as_string(hide_password=False)
        self.sqlite = is_sqlite(self.url)
        self._listeners: list[ChangeListener] = []

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    @contextmanager
    def read(self) -> Iterator[UnitOfWork]:
        """A unit of work for reading: rolled back at the end, never taking the write lock."""
        with UnitOfWork(self, readonly=True) as uow:
            yield uow

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def notify_local(self, account_ids: set[str]) -> None:
        for listener in self._listeners:
            try:
                listener(set(account_ids))
            except Exception:
                # The change is committed; a failed refresh must not turn it into an error for the
                # caller. The change follower re-reads these accounts from the audit sequence.
                log.exception("after-commit listener failed for %d account(s)", len(account_ids))

    def dispose(self) -> None:
        self.engine.dispose()
