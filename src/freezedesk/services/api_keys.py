"""API keys: created by the CLI, hashed at rest, verified from a small in-memory cache.

A key is ``fd_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored: a key this random needs no slow password hash, and a constant-time comparison is
moot because the lookup is by the hash itself. Revocation reaches every process through the
change follower (it is audited like every change), which empties the cache.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from freezedesk.domain.catalogue import STAFF_ROLES
from freezedesk.domain.errors import DomainError, NotFound
from freezedesk.domain.ids import new_id
from freezedesk.domain.restrictions import Actor
from freezedesk.store.follower import Changes
from freezedesk.store.tables import api_keys, staff
from freezedesk.store.uow import Store, utcnow

PARTNER_SCOPES: tuple[str, ...] = (
    "restrictions:read",
    "restrictions:write",
    "permissions:read",
    "cases:read",
    "cases:write",
    "accounts:write",
    "webhooks:write",
    "reasons:read",
    "screening:read",
    "screening:write",
    "events:write",
)


class InvalidKeySpec(DomainError):
    type = "invalid-api-key-spec"
    title = "Invalid API key settings"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]
    staff_id: str | None
    role: str | None

    @property
    def actor(self) -> Actor:
        if self.staff_id is not None:
            return Actor(self.staff_id, self.role)
        return Actor(f"key:{self.key_id}")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str
    key_id: str
    staff_id: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    store: Store, name: str, scopes: list[str] | None = None, role: str | None = None,
    now: datetime | None = None,
) -> CreatedKey:
    """Create a key. With ``role`` it is a staff key owned by a new staff member of that role."""
    name = name.strip()
    if not name:
        raise InvalidKeySpec("the key needs a name")
    chosen = list(scopes) if scopes else list(PARTNER_SCOPES)
    unknown = [s for s in chosen if s not in PARTNER_SCOPES]
    if unknown:
        raise InvalidKeySpec(f"unknown scope {unknown[0]!r}; expected one of {', '.join(PARTNER_SCOPES)}")
    if role is not None and role not in STAFF_ROLES:
        raise InvalidKeySpec(f"unknown role {role!r}; expected one of {', '.join(STAFF_ROLES)}")
    now = now or utcnow()
    key = "fd_" + secrets.token_urlsafe(32)
    key_id = new_id("key")
    staff_id = new_id("stf") if role else None
    with store.unit_of_work() as uow:
        if staff_id:
            uow.conn.execute(insert(staff).values(id=staff_id, name=name, role=role, created_at=now))
            uow.audit("cli", "staff.created", "staff", staff_id, None, {"name": name, "role": role}, now)
        uow.conn.execute(
            insert(api_keys).values(
                id=key_id, name=name, key_hash=hash_key(key), scopes=",".join(chosen),
                staff_id=staff_id, created_at=now,
            )
        )
        uow.audit("cli", "api_key.created", "api_key", key_id, None,
                  {"name": name, "scopes": chosen, "staff_id": staff_id, "role": role}, now)
    return CreatedKey(key, key_id, staff_id)


def revoke_key(store: Store, key_id: str) -> None:
    now = utcnow()
    with store.unit_of_work() as uow:
        result = uow.conn.execute(
            update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        if result.rowcount != 1:
            raise NotFound(f"no active API key {key_id!r}")
        uow.audit("cli", "api_key.revoked", "api_key", key_id, None, {}, now)


def list_keys(store: Store) -> list[dict[str, object]]:
    with store.read() as uow:
        rows = uow.conn.execute(
            select(api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at,
                   api_keys.c.revoked_at, staff.c.role)
            .select_from(api_keys.outerjoin(staff, staff.c.id == api_keys.c.staff_id))
            .order_by(api_keys.c.created_at)
        ).all()
    return [dict(r._mapping) for r in rows]


class KeyRing:
    """Verifies presented keys; answers from memory for ``ttl`` seconds at most."""

    def __init__(self, store: Store, ttl: float = 30.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()
        # Bumped by every key change: a database read that started before a revocation must not
        # write its (now stale) answer back into the cache.
        self._generation = 0

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """``(True, principal-or-None)`` when memory knows the answer, else ``(False, None)``."""
        hit = self._cache.get(hash_key(key))
        if hit is not None and hit[1] > time.monotonic():
            return True, hit[0]
        return False, None

    def authenticate(self, key: str) -> Principal | None:
        known, principal = self.cached(key)
        if known:
            return principal
        digest = hash_key(key)
        now = time.monotonic()
        generation = self._generation
        with self.store.read() as uow:
            row = uow.conn.execute(
                select(api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.staff_id,
                       api_keys.c.revoked_at, staff.c.role)
                .select_from(api_keys.outerjoin(staff, staff.c.id == api_keys.c.staff_id))
                .where(api_keys.c.key_hash == digest)
            ).first()
        principal = None
        if row is not None and row.revoked_at is None:
            principal = Principal(row.id, row.name, frozenset(row.scopes.split(",")), row.staff_id, row.role)
        with self._lock:
            if generation != self._generation:
                return principal  # answered from before a key change: do not cache it
            if len(self._cache) > 10_000:  # unknown keys must not grow memory without bound
                self._cache.clear()
            self._cache[digest] = (principal, now + self.ttl)
        return principal

    def on_changes(self, changes: Changes) -> None:
        if changes.entity_types & {"api_key", "staff"}:
            with self._lock:
                self._generation += 1
                self._cache.clear()
