"""Repositories: map rows to domain objects and back. They never commit; the unit of work does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from freezedesk.domain.cases import Case
from freezedesk.domain.errors import NotFound
from freezedesk.domain.restrictions import Disposition, LiftRequest, Restriction, Source, Status
from freezedesk.domain.scopes import Cause, Scope, ScopeSet
from freezedesk.store.tables import (
    accounts,
    case_events,
    cases,
    lift_approvals,
    restrictions,
)

#: Ids per ``IN (…)`` list or multi-row statement: well under SQLite's bound-parameter limit.
CHUNK = 500


class ConcurrentUpdate(Exception):
    """The row changed under us (optimistic version check failed)."""


def _restriction_from_row(row: Row[Any], approvers: Sequence[str]) -> Restriction:
    lift_request = None
    if row.lift_requested_by is not None and row.status == Status.ACTIVE.value:
        lift_request = LiftRequest(
            requested_by=row.lift_requested_by,
            reason=row.lift_reason or "",
            legal_reference=row.lift_legal_reference,
            requested_at=row.lift_requested_at,
            approvers=list(approvers),
        )
    return Restriction(
        id=row.id,
        account_id=row.account_id,
        cause=Cause(row.cause),
        reason_code=row.reason_code,
        scopes=ScopeSet(frozenset(Scope(s) for s in row.scopes.split(",")), row.close_only),
        source=Source(row.source),
        disclosure=row.disclosure,
        starts_at=row.starts_at,
        expires_at=row.expires_at,
        status=Status(row.status),
        created_by=row.created_by,
        legal_basis=row.legal_basis,
        note=row.note,
        case_id=row.case_id,
        lift_request=lift_request,
        lifted_at=row.lifted_at,
        lift_reason=row.lift_reason,
        disposition=Disposition(row.disposition) if row.disposition else None,
        version=row.version,
    )


def _restriction_values(r: Restriction) -> dict[str, Any]:
    lr = r.lift_request
    return {
        "account_id": r.account_id,
        "cause": r.cause.value,
        "reason_code": r.reason_code,
        "scopes": ",".join(r.scopes.sorted_names()),
        "close_only": r.scopes.close_only,
        "source": r.source.value,
        "disclosure": r.disclosure,
        "legal_basis": r.legal_basis,
        "note": r.note,
        "starts_at": r.starts_at,
        "expires_at": r.expires_at,
        "status": r.status.value,
        "created_by": r.created_by,
        "case_id": r.case_id,
        "lift_requested_by": lr.requested_by if lr else None,
        "lift_reason": lr.reason if lr else r.lift_reason,
        "lift_legal_reference": lr.legal_reference if lr else None,
        "lift_requested_at": lr.requested_at if lr else None,
        "lifted_at": r.lifted_at,
        "disposition": r.disposition.value if r.disposition else None,
        "version": r.version,
    }


class AccountRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def exists(self, account_id: str) -> bool:
        found = self.conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))
        return found.first() is not None

    def ensure(self, account_id: str, now: datetime) -> bool:
        """Register the account if FreezeDesk has not seen it; True when it was new.

        Insert-or-ignore, so two first freezes of one account at the same instant both succeed.
        """
        dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        result = self.conn.execute(
            dialect_insert(accounts)
            .values(id=account_id, created_at=now, locale="ja")
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(accounts.c.id)
        )
        return result.first() is not None

    def ensure_many(self, account_ids: Iterable[str], now: datetime) -> int:
        """Register every account FreezeDesk has not seen, in one statement; how many were new.

        The bulk form of :meth:`ensure` for event ingestion, where one batch may name thousands
        of accounts and a round trip per account would dominate the cost.
        """
        return len(self.register(account_ids, now))

    def register(self, account_ids: Iterable[str], now: datetime) -> set[str]:
        """:meth:`ensure_many` that says *which* accounts were new (inserted by this statement).

        An account inserted here is invisible to every other transaction until commit (one that
        tries to register it too waits on the key), so nobody else can hold its lock or have
        recorded anything that references it.
        """
        rows = [{"id": account_id, "created_at": now, "locale": "ja"} for account_id in sorted(set(account_ids))]
        if not rows:
            return set()
        dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        result = self.conn.execute(
            dialect_insert(accounts).on_conflict_do_nothing(index_elements=["id"]).returning(accounts.c.id),
            rows,
        )
        return {row.id for row in result.all()}

    def lock(self, account_id: str) -> None:
        self.conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())

    def lock_many(self, account_ids: Iterable[str]) -> None:
        """:meth:`lock` for several accounts, in id order (so two lockers never wait on each other
        in a cycle), one statement per chunk instead of one per account."""
        wanted = sorted(set(account_ids))
        for start in range(0, len(wanted), CHUNK):
            self.conn.execute(select(accounts.c.id).where(accounts.c.id.in_(wanted[start:start + CHUNK]))
                              .order_by(accounts.c.id).with_for_update()).all()

    def count_events(self, stored: Mapping[str, int]) -> dict[str, int]:
        """Add ``stored[account]`` to each account's ``events_counted``; the new totals.

        One ``WITH stored(id, n) AS (VALUES …) UPDATE … FROM stored … RETURNING`` per chunk of
        accounts (PostgreSQL; SQLite ≥ 3.33), not one statement per account. The rows are locked
        by the update (and stay locked until commit), in no particular order: a caller that may
        race another writer of the same accounts locks them first, in id order (:meth:`lock_many`).
        Accounts that do not exist are left out of the result.

        Sent as driver SQL: it is on every event batch's path, and SQLAlchemy would compile a
        ``VALUES`` construct anew on each call (its data makes it uncacheable), which costs more
        than the round trip.
        """
        wanted = sorted((account, n) for account, n in stored.items() if n)
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        row = f"(CAST({marker} AS VARCHAR), CAST({marker} AS BIGINT))"
        totals: dict[str, int] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            result = self.conn.exec_driver_sql(  # only placeholders are formatted in; values are bound
                f"WITH stored (id, n) AS (VALUES {', '.join([row] * len(chunk))}) "  # noqa: S608
                "UPDATE accounts SET events_counted = accounts.events_counted + stored.n FROM stored "
                "WHERE accounts.id = stored.id RETURNING accounts.id, accounts.events_counted",
                tuple(value for pair in chunk for value in pair))
            totals.update((account, int(total)) for account, total in result)
        return totals

    def upsert(self, account_id: str, now: datetime, **profile: Any) -> bool:
        created = self.ensure(account_id, now)
        values = {k: v for k, v in profile.items() if v is not None}
        if values:
            self.conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
        return created

    def get(self, account_id: str) -> dict[str, Any]:
        row = self.conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"account {account_id!r} is not known to FreezeDesk", account_id=account_id)
        return dict(row._mapping)


class RestrictionRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, r: Restriction) -> None:
        self.conn.execute(insert(restrictions).values(id=r.id, **_restriction_values(r)))

    def get(self, restriction_id: str, for_update: bool = False) -> Restriction:
        query = select(restrictions).where(restrictions.c.id == restriction_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            raise NotFound(f"restriction {restriction_id!r} does not exist", restriction_id=restriction_id)
        return _restriction_from_row(row, self._approvers(restriction_id))

    def get_many(self, restriction_ids: Iterable[str]) -> list[Restriction]:
        """The restrictions with these ids (those that exist), by id; two statements per chunk
        however many there are, where :meth:`get` would take two per restriction."""
        wanted = sorted(set(restriction_ids))
        found: list[Restriction] = []
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            rows = self.conn.execute(
                select(restrictions).where(restrictions.c.id.in_(chunk)).order_by(restrictions.c.id)).all()
            approvers: dict[str, list[str]] = {}
            for a in self.conn.execute(
                select(lift_approvals.c.restriction_id, lift_approvals.c.approver_id)
                .where(lift_approvals.c.restriction_id.in_(chunk))
                .order_by(lift_approvals.c.approved_at, lift_approvals.c.approver_id)
            ):
                approvers.setdefault(a.restriction_id, []).append(a.approver_id)
            found.extend(_restriction_from_row(row, approvers.get(row.id, [])) for row in rows)
        return found

    def _approvers(self, restriction_id: str) -> list[str]:
        rows = self.conn.execute(
            select(lift_approvals.c.approver_id)
            .where(lift_approvals.c.restriction_id == restriction_id)
            .order_by(lift_approvals.c.approved_at, lift_approvals.c.approver_id)
        )
        return [r.approver_id for r in rows]

    def save(self, r: Restriction, expected_version: int) -> None:
        """Write back a changed restriction; fails if someone else changed it first."""
        result = self.conn.execute(
            update(restrictions)
            .where(and_(restrictions.c.id == r.id, restrictions.c.version == expected_version))
            .values(**_restriction_values(r))
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(r.id)

    def add_approval(self, restriction_id: str, approver_id: str, role: str, at: datetime) -> None:
        self.conn.execute(
            insert(lift_approvals).values(
                restriction_id=restriction_id, approver_id=approver_id, role=role, approved_at=at
            )
        )

    def for_account(self, account_id: str, statuses: Iterable[str] | None = None) -> list[Restriction]:
        query = select(restrictions).where(restrictions.c.account_id == account_id)
        if statuses is not None:
            query = query.where(restrictions.c.status.in_(list(statuses)))
        rows = self.conn.execute(query.order_by(restrictions.c.starts_at, restrictions.c.id)).all()
        return [_restriction_from_row(row, self._approvers(row.id)) for row in rows]

    def in_force_rows(self, account_id: str | None = None) -> list[Any]:
        """Active or permanent restrictions with their inquiry numbers, for the permission view."""
        query = (
            select(
                restrictions.c.id,
                restrictions.c.account_id,
                restrictions.c.reason_code,
                restrictions.c.cause,
                restrictions.c.scopes,
                restrictions.c.close_only,
                restrictions.c.expires_at,
                cases.c.inquiry_number,
            )
            .select_from(restrictions.outerjoin(cases, cases.c.id == restrictions.c.case_id))
            .where(restrictions.c.status.in_([Status.ACTIVE.value, Status.PERMANENT.value]))
        )
        if account_id is not None:
            query = query.where(restrictions.c.account_id == account_id)
        return list(self.conn.execute(query).all())

    def due_to_expire(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self.conn.execute(
            select(restrictions.c.id)
            .where(
                and_(
                    restrictions.c.status == Status.ACTIVE.value,
                    restrictions.c.expires_at.is_not(None),
                    restrictions.c.expires_at <= now,
                )
            )
            .limit(limit)
        )
        return [r.id for r in rows]

    def for_case(self, case_id: str) -> list[Restriction]:
        rows = self.conn.execute(
            select(restrictions).where(restrictions.c.case_id == case_id).order_by(restrictions.c.id)
        ).all()
        return [_restriction_from_row(row, self._approvers(row.id)) for row in rows]


def _case_from_row(row: Row[Any], restriction_ids: list[str]) -> Case:
    return Case(
        id=row.id,
        account_id=row.account_id,
        cause=Cause(row.cause),
        state=row.state,
        opened_at=row.opened_at,
        sla_due_at=row.sla_due_at,
        inquiry_number=row.inquiry_number,
        restriction_ids=restriction_ids,
        closed_at=row.closed_at,
        version=row.version,
    )


class CaseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, case: Case) -> None:
        self.conn.execute(
            insert(cases).values(
                id=case.id,
                account_id=case.account_id,
                cause=case.cause.value,
                state=case.state,
                opened_at=case.opened_at,
                sla_due_at=case.sla_due_at,
                closed_at=case.closed_at,
                inquiry_number=case.inquiry_number,
                version=case.version,
            )
        )

    def _restriction_ids(self, case_id: str) -> list[str]:
        rows = self.conn.execute(
            select(restrictions.c.id).where(restrictions.c.case_id == case_id).order_by(restrictions.c.id)
        )
        return [r.id for r in rows]

    def get(self, case_id: str, for_update: bool = False) -> Case:
        query = select(cases).where(cases.c.id == case_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            raise NotFound(f"case {case_id!r} does not exist", case_id=case_id)
        return _case_from_row(row, self._restriction_ids(case_id))

    def inquiry_numbers(self, case_ids: Iterable[str]) -> dict[str, str]:
        """``{case id: inquiry number}`` for the cases that exist, one statement per chunk."""
        wanted = sorted(set(case_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            found.update((r.id, r.inquiry_number) for r in self.conn.execute(
                select(cases.c.id, cases.c.inquiry_number).where(cases.c.id.in_(wanted[start:start + CHUNK]))))
        return found

    def by_inquiry(self, inquiry_number: str) -> Case:
        row = self.conn.execute(select(cases).where(cases.c.inquiry_number == inquiry_number)).first()
        if row is None:
            raise NotFound(f"inquiry {inquiry_number} does not exist", inquiry_number=inquiry_number)
        return _case_from_row(row, self._restriction_ids(row.id))

    def open_for(self, account_id: str, cause: Cause, for_update: bool = False) -> Case | None:
        query = (
            select(cases)
            .where(
                and_(
                    cases.c.account_id == account_id,
                    cases.c.cause == cause.value,
                    cases.c.closed_at.is_(None),
                )
            )
            .order_by(cases.c.opened_at)
            .limit(1)
        )
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else _case_from_row(row, self._restriction_ids(row.id))

    def save(self, case: Case, expected_version: int) -> None:
        result = self.conn.execute(
            update(cases)
            .where(and_(cases.c.id == case.id, cases.c.version == expected_version))
            .values(state=case.state, closed_at=case.closed_at, version=case.version)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(case.id)

    def record_event(
        self, case_id: str, at: datetime, actor: str, event: str, before: str | None, after: str | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """One timeline entry: a state change (``before`` → ``after``), or with ``after=None`` an
        entry that changes no state (evidence such as a monitoring alert), described by ``data``."""
        self.conn.execute(
            insert(case_events).values(
                case_id=case_id, at=at, actor=actor, event=event, from_state=before, to_state=after,
                data=None if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            )
        )

    def timeline(self, case_id: str) -> list[dict[str, Any]]:
        """Every entry in the order written; ``to`` is None for entries that change no state."""
        rows = self.conn.execute(
            select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
        )
        return [
            {"at": r.at, "actor": r.actor, "event": r.event, "from": r.from_state, "to": r.to_state,
             "data": None if r.data is None else json.loads(r.data)}
            for r in rows
        ]

    def list_open(self, limit: int = 100) -> list[Case]:
        rows = self.conn.execute(
            select(cases).where(or_(cases.c.closed_at.is_(None))).order_by(cases.c.sla_due_at).limit(limit)
        ).all()
        return [_case_from_row(row, self._restriction_ids(row.id)) for row in rows]
