"""Follow committed changes made by any process, in commit order.

Every state change writes an audit entry (same transaction), and appends to the audit chain
are serialised, so the audit sequence number is a global, gap-free change log. A follower
remembers the last sequence it saw and asks for newer entries:

* on PostgreSQL it LISTENs on ``freezedesk_changes`` (NOTIFY is sent inside each writing
  transaction and delivered on commit) and reads as soon as it is woken, and at least once
  every ``poll_interval`` in case a notification was missed while reconnecting;
* on SQLite (one host, embedded) it polls every ``poll_interval``.

Notifications only wake the follower; the audit log is the truth, so nothing is lost if a
notification is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from freezedesk.store.tables import audit_head, audit_log
from freezedesk.store.uow import NOTIFY_CHANNEL, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Changes:
    account_ids: set[str]
    entity_types: set[str]


ChangeHandler = Callable[[Changes], None]


class ChangeFollower:
    def __init__(self, store: Store, poll_interval: float = 0.25) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._handlers: list[ChangeHandler] = []
        self._seen = self.head()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def head(self) -> int:
        with self.store.read() as uow:
            return int(uow.conn.execute(select(audit_head.c.seq)).scalar_one())

    def subscribe(self, handler: ChangeHandler) -> None:
        self._handlers.append(handler)

    def catch_up(self) -> Changes:
        """Read what was committed since the last call and tell the handlers."""
        with self._lock:
            with self.store.read() as uow:
                rows = uow.conn.execute(
                    select(audit_log.c.seq, audit_log.c.account_id, audit_log.c.entity_type)
                    .where(audit_log.c.seq > self._seen)
                    .order_by(audit_log.c.seq)
                ).all()
            if not rows:
                return Changes(set(), set())
            changes = Changes(
                {r.account_id for r in rows if r.account_id}, {r.entity_type for r in rows}
            )
            for handler in self._handlers:
                handler(changes)
            self._seen = rows[-1].seq
            return changes

    def start(self) -> None:
        target = self._run_sqlite if self.store.sqlite else self._run_postgres
        self._thread = threading.Thread(target=target, name="freezedesk-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _safe_catch_up(self) -> None:
        try:
            self.catch_up()
        except Exception:  # keep following; the next round retries from the same sequence
            log.exception("change follower could not read the audit log")

    def _run_sqlite(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self._safe_catch_up()

    def _run_postgres(self) -> None:
        import psycopg

        dsn = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._safe_catch_up()  # anything committed before LISTEN took effect
                    while not self._stop.is_set():
                        # returns on the first notification or after poll_interval
                        for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                            pass
                        self._safe_catch_up()
            except Exception:
                log.exception("change follower lost its PostgreSQL connection; reconnecting")
                self._stop.wait(1.0)
