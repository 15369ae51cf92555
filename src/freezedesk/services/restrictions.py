"""Freeze, lift (with approvals), make permanent, expire."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from freezedesk.domain.cases import Case
from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import NotFound
from freezedesk.domain.playbooks import PLAYBOOKS
from freezedesk.domain.restrictions import (
    Actor,
    Disposition,
    LiftOutcome,
    Restriction,
    Source,
    Status,
)
from freezedesk.domain.scopes import resolve_scopes
from freezedesk.services import cases as case_service
from freezedesk.services.views import restriction_view
from freezedesk.store.uow import Store, UnitOfWork, utcnow


@dataclass(frozen=True, slots=True)
class Frozen:
    restriction: Restriction
    case: Case
    case_opened: bool


def _inquiry_for(uow: UnitOfWork, r: Restriction) -> str | None:
    return uow.cases.get(r.case_id).inquiry_number if r.case_id else None


def freeze(
    store: Store,
    catalogue: ReasonCatalogue,
    *,
    account_id: str,
    reason_code: str,
    actor: Actor,
    source: Source,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    legal_basis: str | None = None,
    note: str | None = None,
) -> Frozen:
    """Restrict an account: one restriction, attached to the account's open case for this cause
    (or a new case with its own inquiry number), audited and announced in one transaction."""
    with store.unit_of_work() as uow:
        return freeze_in(uow, catalogue, account_id=account_id, reason_code=reason_code, actor=actor,
                         source=source, scopes=scopes, expires_at=expires_at, legal_basis=legal_basis,
                         note=note)


def freeze_in(
    uow: UnitOfWork,
    catalogue: ReasonCatalogue,
    *,
    account_id: str,
    reason_code: str,
    actor: Actor,
    source: Source,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    legal_basis: str | None = None,
    note: str | None = None,
    account_locked: bool = False,
    no_open_case: bool = False,
) -> Frozen:
    """:func:`freeze` inside a unit of work the caller owns (so evidence commits with it).

    ``account_locked=True``: the caller has registered the account and holds its row lock in this
    unit of work already; ``no_open_case=True``: it knows the account has no open case for the
    reason's cause (both: see :func:`~freezedesk.services.cases.open_or_attach_case`)."""
    reason = catalogue.get(reason_code)
    scope_set = resolve_scopes(scopes) if scopes is not None else None
    now = utcnow()
    restriction = Restriction.impose(
        account_id=account_id,
        reason=reason,
        scopes=scope_set,
        source=source,
        actor=actor,
        now=now,
        expires_at=expires_at,
        legal_basis=legal_basis,
        note=note,
    )
    case, case_opened = case_service.open_or_attach_case(uow, account_id, reason, actor, now,
                                                         account_locked=account_locked, no_open_case=no_open_case)
    restriction.case_id = case.id
    case.restriction_ids.append(restriction.id)
    uow.restrictions.add(restriction)
    view = restriction_view(restriction, case.inquiry_number, now)
    uow.audit(actor.id, "restriction.created", "restriction", restriction.id, account_id,
              {**view, "note": note}, now)
    uow.publish("restriction.created", view)
    return Frozen(restriction, case, case_opened)


def _close_case_if_done(uow: UnitOfWork, case_id: str | None, actor: Actor, now: datetime) -> None:
    if case_id is None:
        return
    case = uow.cases.get(case_id, for_update=True)
    if not case.is_open:
        return
    remaining = [
        r for r in uow.restrictions.for_case(case_id) if r.effective_status(now) in (Status.ACTIVE, Status.PERMANENT)
    ]
    if remaining:
        return
    version = case.version
    before, after = case.apply("resolve", now)
    uow.cases.save(case, version)
    uow.cases.record_event(case.id, now, actor.id, "resolve", before, after)
    uow.audit(actor.id, "case.transition", "case", case.id, case.account_id,
              {"event": "resolve", "from": before, "to": after}, now)


def _after_lift_step(
    uow: UnitOfWork, catalogue: ReasonCatalogue, r: Restriction, outcome: LiftOutcome,
    actor: Actor, now: datetime, action: str, extra: dict[str, object],
) -> dict[str, object]:
    inquiry = _inquiry_for(uow, r)
    view = restriction_view(r, inquiry, now)
    uow.audit(actor.id, action, "restriction", r.id, r.account_id,
              {**extra, "approvers": list(outcome.approvers), "lifted": outcome.lifted}, now)
    if outcome.lifted:
        uow.audit(actor.id, "restriction.lifted", "restriction", r.id, r.account_id,
                  {"approvers": list(outcome.approvers), "reason": r.lift_reason}, now)
        uow.publish("restriction.lifted", view)
        _close_case_if_done(uow, r.case_id, actor, now)
    else:
        uow.publish(
            "restriction.approval_required",
            {**view, "approvals_needed": outcome.approvals_needed,
             "roles": sorted(catalogue.get(r.reason_code).lift.roles)},
        )
    return view


def request_lift(
    store: Store,
    catalogue: ReasonCatalogue,
    restriction_id: str,
    actor: Actor,
    reason: str,
    legal_reference: str | None = None,
) -> tuple[dict[str, object], LiftOutcome]:
    with store.unit_of_work() as uow:
        return request_lift_in(uow, catalogue, restriction_id, actor, reason, legal_reference)


def request_lift_in(
    uow: UnitOfWork,
    catalogue: ReasonCatalogue,
    restriction_id: str,
    actor: Actor,
    reason: str,
    legal_reference: str | None = None,
) -> tuple[dict[str, object], LiftOutcome]:
    """:func:`request_lift` inside a unit of work the caller owns."""
    now = utcnow()
    r = uow.restrictions.get(restriction_id, for_update=True)
    version = r.version
    entry = catalogue.get(r.reason_code)
    outcome = r.request_lift(entry, actor, reason, legal_reference, now)
    uow.restrictions.save(r, version)
    uow.restrictions.add_approval(r.id, actor.id, actor.role or "", now)
    view = _after_lift_step(uow, catalogue, r, outcome, actor, now, "restriction.lift_requested",
                            {"reason": reason, "legal_reference": legal_reference})
    return view, outcome


def approve_lift(
    store: Store, catalogue: ReasonCatalogue, restriction_id: str, actor: Actor
) -> tuple[dict[str, object], LiftOutcome]:
    now = utcnow()
    with store.unit_of_work() as uow:
        r = uow.restrictions.get(restriction_id, for_update=True)
        version = r.version
        outcome = r.approve(catalogue.get(r.reason_code), actor, now)
        uow.restrictions.save(r, version)
        uow.restrictions.add_approval(r.id, actor.id, actor.role or "", now)
        view = _after_lift_step(uow, catalogue, r, outcome, actor, now, "restriction.lift_approved", {})
    return view, outcome


def make_permanent(
    store: Store, catalogue: ReasonCatalogue, restriction_id: str, actor: Actor,
    disposition: Disposition, note: str,
) -> dict[str, object]:
    now = utcnow()
    with store.unit_of_work() as uow:
        r = uow.restrictions.get(restriction_id, for_update=True)
        version = r.version
        r.make_permanent(catalogue.get(r.reason_code), actor, disposition, now)
        uow.restrictions.save(r, version)
        view = restriction_view(r, _inquiry_for(uow, r), now)
        uow.audit(actor.id, "restriction.made_permanent", "restriction", r.id, r.account_id,
                  {"disposition": disposition.value, "note": note}, now)
        if r.case_id:
            case = uow.cases.get(r.case_id, for_update=True)
            if case.is_open and "make_permanent" in PLAYBOOKS[case.cause].get(case.state, {}):
                case_version = case.version
                before, after = case.apply("make_permanent", now)
                uow.cases.save(case, case_version)
                uow.cases.record_event(case.id, now, actor.id, "make_permanent", before, after)
                uow.audit(actor.id, "case.transition", "case", case.id, case.account_id,
                          {"event": "make_permanent", "from": before, "to": after}, now)
    return view


def expire_due(store: Store, limit: int = 500) -> int:
    """Mark restrictions past their expiry as expired and announce it. Checks never wait for
    this (expiry is honoured at check time); it keeps statuses and webhooks truthful."""
    system = Actor("system:expiry")
    count = 0
    with store.read() as uow:
        due = uow.restrictions.due_to_expire(utcnow(), limit)
    for rid in due:
        now = utcnow()
        with store.unit_of_work() as uow:
            r = uow.restrictions.get(rid, for_update=True)
            version = r.version
            if not r.expire(now):
                continue
            uow.restrictions.save(r, version)
            view = restriction_view(r, _inquiry_for(uow, r), now)
            uow.audit(system.id, "restriction.expired", "restriction", r.id, r.account_id,
                      {"expires_at": view["expires_at"]}, now)
            uow.publish("restriction.expired", view)
            _close_case_if_done(uow, r.case_id, system, now)
            count += 1
    return count


def get_restriction(store: Store, restriction_id: str) -> dict[str, object]:
    with store.read() as uow:
        r = uow.restrictions.get(restriction_id)
        return restriction_view(r, _inquiry_for(uow, r), utcnow())


def list_for_account(store: Store, account_id: str, status: str | None) -> list[dict[str, object]]:
    now = utcnow()
    with store.read() as uow:
        if not uow.accounts.exists(account_id):
            raise NotFound(f"account {account_id!r} is not known to FreezeDesk", account_id=account_id)
        items = [restriction_view(r, _inquiry_for(uow, r), now) for r in uow.restrictions.for_account(account_id)]
    if status is not None:
        items = [i for i in items if i["status"] == status]
    return items
