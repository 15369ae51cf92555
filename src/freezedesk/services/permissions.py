"""The permission check: the exchange's hot path.

Served from an in-memory view of the restrictions in force, keyed by account. A warm check
is a dict lookup and a loop over that account's few restrictions: no database, no lock.

The view never allows what a committed restriction forbids:
* changes made by this process refresh the touched accounts right after commit, before the
  API call that made them returns;
* changes made by other processes arrive through :class:`ChangeFollower` (PostgreSQL
  LISTEN/NOTIFY, or polling on SQLite) within milliseconds;
* expiry is evaluated at check time against the clock, so no sweeper is needed for correctness.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from freezedesk.domain.scopes import Scope
from freezedesk.store.follower import Changes
from freezedesk.store.uow import Store

_BIT = {scope: 1 << i for i, scope in enumerate(Scope)}


@dataclass(frozen=True, slots=True)
class ViewEntry:
    bits: int
    close_only: bool
    expires: float  # epoch seconds; inf when open-ended
    public: dict[str, Any]  # {restriction_id, reason_code, cause, inquiry_number}


def _entry(row: Row[Any]) -> ViewEntry:
    bits = 0
    for name in row.scopes.split(","):
        bits |= _BIT[Scope(name)]
    return ViewEntry(
        bits=bits,
        close_only=bool(row.close_only),
        expires=row.expires_at.timestamp() if row.expires_at is not None else math.inf,
        public={
            "restriction_id": row.id,
            "reason_code": row.reason_code,
            "cause": row.cause,
            "inquiry_number": row.inquiry_number,
        },
    )


class PermissionView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._entries: dict[str, tuple[ViewEntry, ...]] = {}
        self._lock = threading.Lock()  # serialises refreshes, never checks

    # -- loading ---------------------------------------------------------------------------
    def warm(self) -> int:
        """Load every restriction in force. Returns how many accounts are restricted."""
        with self._lock:
            with self.store.read() as uow:
                rows = uow.restrictions.in_force_rows()
            entries: dict[str, list[ViewEntry]] = {}
            for row in rows:
                entries.setdefault(row.account_id, []).append(_entry(row))
            self._entries = {k: tuple(v) for k, v in entries.items()}
            return len(self._entries)

    def refresh(self, account_ids: Iterable[str]) -> None:
        """Reload the given accounts from the database (the truth)."""
        ids = set(account_ids)
        if not ids:
            return
        with self._lock:
            with self.store.read() as uow:
                fresh: dict[str, list[ViewEntry]] = {a: [] for a in ids}
                for account_id in ids:
                    for row in uow.restrictions.in_force_rows(account_id):
                        fresh[account_id].append(_entry(row))
            for account_id, items in fresh.items():
                if items:
                    self._entries[account_id] = tuple(items)
                else:
                    self._entries.pop(account_id, None)

    def on_changes(self, changes: Changes) -> None:
        self.refresh(changes.account_ids)

    def load(self, entries: dict[str, tuple[ViewEntry, ...]]) -> None:
        """Replace the view wholesale (benchmarks build it without a database)."""
        self._entries = entries

    # -- checking --------------------------------------------------------------------------
    def blocking(
        self, account_id: str, action: Scope, reduce_only: bool = False, now: float | None = None
    ) -> list[dict[str, Any]]:
        """The restrictions that block ``action`` now; empty means allowed."""
        entries = self._entries.get(account_id)
        if not entries:
            return []
        bit = _BIT[action]
        t = time.time() if now is None else now
        lets_reduce = reduce_only and action is Scope.TRADE
        return [
            e.public
            for e in entries
            if e.bits & bit and t < e.expires and not (lets_reduce and e.close_only)
        ]

    def check(self, account_id: str, action: Scope, reduce_only: bool = False) -> dict[str, Any]:
        blocking = self.blocking(account_id, action, reduce_only)
        return {
            "account_id": account_id,
            "action": action.value,
            "reduce_only": reduce_only,
            "allowed": not blocking,
            "blocking": blocking,
        }

    def restricted_accounts(self) -> int:
        return len(self._entries)
