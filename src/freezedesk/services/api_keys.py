"""API keys: created by the CLI, hashed at rest, verified from a small in-memory cache.

A key is ``fd_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored: a key this random needs no slow password hash, and a constant-time comparison is
moot because the lookup is by the hash itself. Revocation reaches every process through the
change follower (it is audited like every change), which empties the cache.

A staff key belongs to a person (a ``staff`` row), named by a unique handle: an e-mail address or
a stable handle, compared case-insensitively. A second key for the same person reuses their row, so
the four-eyes rule counts people, not keys, and the audit log names one actor per human. A person's
role is changed only on purpose (``change_role``, audited); deactivating a person revokes all their
keys in one transaction, and a deactivated person's keys never authenticate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, or_, select, update

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


class InvalidStaffHandle(InvalidKeySpec):
    type = "invalid-staff-handle"
    title = "Invalid staff handle"


class StaffRoleConflict(DomainError):
    type = "staff-role-conflict"
    title = "The person already has another role"
    status = 409


class StaffDeactivated(DomainError):
    type = "staff-deactivated"
    title = "The person has been deactivated"
    status = 409


#: An e-mail address (``alice@exchange.example``) or a stable handle (``alice``, ``a.smith-2``), after
#: lower-casing: letters, digits and ``. _ + -``, starting and ending with a letter or digit.
_LOCAL = r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HANDLE = re.compile(rf"{_LOCAL}(?:@{_LABEL}(?:\.{_LABEL})+)?")
HANDLE_MAX = 254


def normalize_handle(raw: str) -> str:
    """The stored form of a person's handle (lower-case), or :class:`InvalidStaffHandle`."""
    handle = raw.strip().lower()
    if not handle or len(handle) > HANDLE_MAX or not _HANDLE.fullmatch(handle):
        raise InvalidStaffHandle(
            f"{raw!r} is not an e-mail address (alice@exchange.example) or a handle (letters, digits "
            "and . _ + -, starting and ending with a letter or digit, at most 64 characters)",
            option="staff",
        )
    return handle


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
    now: datetime | None = None, *, staff_handle: str | None = None, staff_name: str | None = None,
    change_role: bool = False,
) -> CreatedKey:
    """Create a key.

    With ``staff_handle`` (the person's e-mail address or handle) it is a staff key of that person: a new person needs
    ``role``; an existing one keeps theirs (a different ``role`` is a :class:`StaffRoleConflict`
    unless ``change_role``, which changes it for all their keys). ``role`` without a handle makes a
    new, anonymous person whose handle is their id (as rows from before handles were); the CLI
    always asks for ``--staff``.
    """
    name = name.strip()
    if not name:
        raise InvalidKeySpec("the key needs a name", option="name")
    chosen = list(scopes) if scopes else list(PARTNER_SCOPES)
    unknown = [s for s in chosen if s not in PARTNER_SCOPES]
    if unknown:
        raise InvalidKeySpec(f"unknown scope {unknown[0]!r}; expected one of {', '.join(PARTNER_SCOPES)}",
                             option="scopes")
    if role is not None and role not in STAFF_ROLES:
        raise InvalidKeySpec(f"unknown role {role!r}; expected one of {', '.join(STAFF_ROLES)}", option="role")
    handle = normalize_handle(staff_handle) if staff_handle is not None else None
    if change_role and (handle is None or role is None):
        raise InvalidKeySpec("changing a role needs the person (staff handle) and their new role",
                             option="change-role")
    if staff_name is not None and handle is None:
        raise InvalidKeySpec("a staff name needs the person's handle", option="staff-name")
    now = now or utcnow()
    key = "fd_" + secrets.token_urlsafe(32)
    key_id = new_id("key")
    staff_id: str | None = None
    with store.unit_of_work() as uow:
        if handle is not None:
            person = uow.conn.execute(
                select(staff.c.id, staff.c.role, staff.c.deactivated_at).where(staff.c.handle == handle)
            ).first()
            if person is None:
                if role is None:
                    raise InvalidKeySpec(f"{handle} is not a staff member yet: a new person needs a role",
                                         option="role")
                staff_id = new_id("stf")
                display = (staff_name or "").strip() or handle
                uow.conn.execute(insert(staff).values(id=staff_id, name=display, role=role, handle=handle,
                                                      created_at=now))
                uow.audit("cli", "staff.created", "staff", staff_id, None,
                          {"name": display, "role": role, "handle": handle}, now)
            else:
                staff_id = person.id
                if person.deactivated_at is not None:
                    raise StaffDeactivated(f"{handle} ({staff_id}) has been deactivated; no new keys for them")
                if role is None:
                    role = person.role
                elif role != person.role:
                    if not change_role:
                        raise StaffRoleConflict(
                            f"{handle} ({staff_id}) is {person.role}, not {role}; their role applies to all "
                            "their keys: confirm the change of role explicitly",
                            option="role", staff_id=staff_id, current_role=person.role, requested_role=role,
                        )
                    uow.conn.execute(update(staff).where(staff.c.id == staff_id).values(role=role))
                    uow.audit("cli", "staff.role_changed", "staff", staff_id, None,
                              {"handle": handle, "from": person.role, "to": role}, now)
        elif role is not None:
            staff_id = new_id("stf")
            uow.conn.execute(insert(staff).values(id=staff_id, name=name, role=role, handle=staff_id.lower(),
                                                  created_at=now))
            uow.audit("cli", "staff.created", "staff", staff_id, None,
                      {"name": name, "role": role, "handle": staff_id.lower()}, now)
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
                   api_keys.c.revoked_at, api_keys.c.staff_id, staff.c.role, staff.c.handle.label("staff_handle"),
                   staff.c.deactivated_at.label("staff_deactivated_at"))
            .select_from(api_keys.outerjoin(staff, staff.c.id == api_keys.c.staff_id))
            .order_by(api_keys.c.created_at, api_keys.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


def list_staff(store: Store) -> list[dict[str, object]]:
    """Every person, oldest first, with how many of their keys are not revoked."""
    active = (select(api_keys.c.staff_id, func.count().label("n")).where(api_keys.c.revoked_at.is_(None))
              .group_by(api_keys.c.staff_id).subquery())
    with store.read() as uow:
        rows = uow.conn.execute(
            select(staff.c.id, staff.c.handle, staff.c.name, staff.c.role, staff.c.created_at,
                   staff.c.deactivated_at, func.coalesce(active.c.n, 0).label("active_keys"))
            .select_from(staff.outerjoin(active, active.c.staff_id == staff.c.id))
            .order_by(staff.c.created_at, staff.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True, slots=True)
class Deactivated:
    staff_id: str
    handle: str
    revoked_keys: tuple[str, ...]


def deactivate_staff(store: Store, id_or_handle: str, now: datetime | None = None) -> Deactivated:
    """Deactivate a person (by id or handle) and revoke all their keys, in one audited transaction.

    Every server stops accepting their keys once its change follower sees the entries (the same
    path as ``revoke_key``); a deactivated person's keys are refused even if one were not revoked.
    """
    wanted = id_or_handle.strip()
    now = now or utcnow()
    with store.unit_of_work() as uow:
        person = uow.conn.execute(
            select(staff.c.id, staff.c.handle)
            .where(or_(staff.c.id == wanted, staff.c.handle == wanted.lower()), staff.c.deactivated_at.is_(None))
        ).first()
        if person is None:
            raise NotFound(f"no active staff member {wanted!r} (give their id stf_… or their handle)")
        done = uow.conn.execute(update(staff).where(staff.c.id == person.id, staff.c.deactivated_at.is_(None))
                                .values(deactivated_at=now))
        if done.rowcount != 1:
            raise NotFound(f"no active staff member {wanted!r}")
        revoked = tuple(uow.conn.execute(
            select(api_keys.c.id).where(api_keys.c.staff_id == person.id, api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.id)
        ).scalars())
        if revoked:
            uow.conn.execute(update(api_keys).where(api_keys.c.id.in_(revoked)).values(revoked_at=now))
        uow.audit("cli", "staff.deactivated", "staff", person.id, None,
                  {"handle": person.handle, "revoked_keys": list(revoked)}, now)
        for key_id in revoked:
            uow.audit("cli", "api_key.revoked", "api_key", key_id, None, {"staff_id": person.id}, now)
    return Deactivated(person.id, person.handle, revoked)


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
                       api_keys.c.revoked_at, staff.c.role, staff.c.deactivated_at)
                .select_from(api_keys.outerjoin(staff, staff.c.id == api_keys.c.staff_id))
                .where(api_keys.c.key_hash == digest)
            ).first()
        principal = None
        if row is not None and row.revoked_at is None and row.deactivated_at is None:
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
