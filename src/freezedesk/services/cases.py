"""Cases and inquiries: playbook transitions, the staff view and the customer view."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from freezedesk.domain import inquiry as inquiry_numbers
from freezedesk.domain.cases import Case
from freezedesk.domain.catalogue import Disclosure, ReasonCatalogue, ReasonCode
from freezedesk.domain.errors import NotFound
from freezedesk.domain.playbooks import authorize_event
from freezedesk.domain.restrictions import Actor, Status
from freezedesk.domain.scopes import Cause
from freezedesk.services.views import case_view, iso
from freezedesk.store.tables import events, monitoring_alerts, screening_hits
from freezedesk.store.uow import Store, UnitOfWork, utcnow

#: What a customer sees of the internal case state. Escalation and reporting are never shown
#: (tipping-off): they read as "in review" like any other review.
CUSTOMER_STATUS = {
    "opened": "received",
    "awaiting_customer": "action_required",
    "appeal_window": "action_required",
    "under_review": "in_review",
    "escalated": "in_review",
    "reported": "in_review",
    "approved": "in_review",
    "cleared": "in_review",
    "restored": "in_review",
    "released": "in_review",
    "warned": "in_review",
    "offboarding": "closing",
    "resolved": "resolved",
    "closed": "closed",
}


def open_or_attach_case(
    uow: UnitOfWork, account_id: str, reason: ReasonCode, actor: Actor, now: datetime,
    *, account_locked: bool = False, no_open_case: bool = False,
) -> tuple[Case, bool]:
    """The account's open case for ``reason``'s cause, or a new one; ``(case, opened)``.

    The one place where "which case does this belong to?" is decided, for restrictions
    (:func:`freezedesk.services.restrictions.freeze_in`) and for evidence that restricts nothing
    (a monitoring alert whose rule only alerts). It registers the account if FreezeDesk has not
    seen it, then locks the account row for the rest of the caller's unit of work: two freezes or
    alerts of one account at the same instant serialise here and find the same case instead of
    opening twins. A new case gets its own inquiry number and the reason's SLA, and its opening
    is audited in the caller's transaction.

    ``account_locked=True`` says the caller has already registered the account (auditing that)
    and holds its row lock in this unit of work, so neither is done again (two round trips).
    ``no_open_case=True`` (only with ``account_locked``) says the caller knows the account has no
    open case for this cause — it created the account in this unit of work and has opened none
    for it since — so the look-up is skipped and a case is opened.
    """
    if not account_locked:
        if uow.accounts.ensure(account_id, now):
            uow.audit(actor.id, "account.registered", "account", account_id, account_id, {}, now)
        uow.accounts.lock(account_id)
    if not (account_locked and no_open_case):
        case = uow.cases.open_for(account_id, reason.cause, for_update=True)
        if case is not None:
            return case, False
    case = Case.open(account_id, reason.cause, reason.sla_hours, now)
    uow.cases.add(case)
    uow.cases.record_event(case.id, now, actor.id, "open", None, case.state)
    uow.audit(actor.id, "case.opened", "case", case.id, account_id,
              {"cause": case.cause.value, "inquiry_number": case.inquiry_number}, now)
    return case, True


def transition(store: Store, case_id: str, event: str, actor: Actor) -> dict[str, Any]:
    authorize_event(event, actor.role)
    now = utcnow()
    with store.unit_of_work() as uow:
        case = uow.cases.get(case_id, for_update=True)
        version = case.version
        before, after = case.apply(event, now)  # raises IllegalTransition, nothing written
        uow.cases.save(case, version)
        uow.cases.record_event(case.id, now, actor.id, event, before, after)
        uow.audit(actor.id, "case.transition", "case", case.id, case.account_id,
                  {"event": event, "from": before, "to": after}, now)
        return case_view(case, uow.cases.timeline(case.id))


def get_case(store: Store, case_id: str) -> dict[str, Any]:
    """The staff view: state, timeline and evidence.

    Evidence is what put the case on someone's desk: screening hits with their explanations, and
    monitoring alerts with the events that fired them (each alert lists its ``event_ids`` and
    carries the stored events themselves, so an investigator sees the transactions without a
    second query).
    """
    with store.read() as uow:
        case = uow.cases.get(case_id)
        hits = uow.conn.execute(
            select(screening_hits).where(screening_hits.c.case_id == case_id).order_by(screening_hits.c.created_at)
        ).all()
        alerts = uow.conn.execute(
            select(monitoring_alerts).where(monitoring_alerts.c.case_id == case_id)
            .order_by(monitoring_alerts.c.ts, monitoring_alerts.c.id)
        ).all()
        alert_event_ids = {eid: None for a in alerts for eid in json.loads(a.event_ids)}
        payloads: dict[str, Any] = {}
        wanted = list(alert_event_ids)
        for start in range(0, len(wanted), 500):
            payloads.update(
                (r.event_id, json.loads(r.payload)) for r in uow.conn.execute(
                    select(events.c.event_id, events.c.payload).where(events.c.event_id.in_(wanted[start:start + 500])))
            )
        view = case_view(case, uow.cases.timeline(case.id))
    view["evidence"] = {
        "screening_hits": [
            {"id": h.id, "entity_id": h.entity_id, "kind": h.kind, "score": h.score, "status": h.status,
             "query": json.loads(h.query), "explanation": json.loads(h.explanation), "at": iso(h.created_at)}
            for h in hits
        ],
        "monitoring_alerts": [
            {"id": a.id, "rule_id": a.rule_id, "reason_code": a.reason_code, "action": a.action,
             "ts": iso(a.ts), "event_ids": json.loads(a.event_ids), "restriction_id": a.restriction_id,
             "at": iso(a.created_at),
             "events": [payloads[e] for e in json.loads(a.event_ids) if e in payloads]}
            for a in alerts
        ],
    }
    return view


def get_inquiry(store: Store, catalogue: ReasonCatalogue, number: str, locale: str = "en") -> dict[str, Any]:
    """The customer-facing view of an inquiry: only what the reason catalogue lets us disclose.

    Tipping-off: nothing here may tell the customer that they are (or were) being monitored or
    investigated. So the view shows state changes only — never the timeline's evidence entries
    (monitoring alerts) — and it exists only from the case's first restriction on: a case that
    monitoring opened for an alert and that restricts nothing is an internal investigation and
    reads as an unknown inquiry number (the very same 404), and when a restriction joins such a
    case later, the customer's view starts at that restriction, not at the earlier alert.
    """
    printed = inquiry_numbers.normalize(number)
    now = utcnow()
    with store.read() as uow:
        case = uow.cases.by_inquiry(printed)
        restrictions = uow.restrictions.for_case(case.id)
        if not restrictions:
            raise NotFound(f"inquiry {printed} does not exist", inquiry_number=printed)
        events = uow.cases.timeline(case.id)
    visible_from = max(case.opened_at, min(r.starts_at for r in restrictions))
    items = []
    for r in restrictions:
        reason = catalogue.get(r.reason_code)
        status = r.effective_status(now)
        text_values = {
            "inquiry_number": printed,
            "policy_clause": reason.policy_clause or "",
            "appeal_window_days": reason.appeal_window_days or "",
            "hours": reason.sla_hours,
        }
        item: dict[str, Any] = {
            "blocked": r.scopes.sorted_names() if status in (Status.ACTIVE, Status.PERMANENT) else [],
            "status": status.value,
            "title": catalogue.text(reason.customer_title, locale, **text_values),
            "body": catalogue.text(reason.customer_body, locale, **text_values),
            "actions": catalogue.text(reason.customer_actions, locale, **text_values),
            "since": iso(r.starts_at),
            "until": iso(r.expires_at),
        }
        if reason.disclosure is Disclosure.FULL:
            item["reason_code"] = r.reason_code
        items.append(item)
    disclosed_cause = case.cause.value if case.cause in (Cause.KYC, Cause.SECURITY, Cause.POLICY) else None
    in_force = any(r.effective_status(now) in (Status.ACTIVE, Status.PERMANENT) for r in restrictions)

    def customer_status(state: str) -> str:
        # In the suspicious-activity playbook "closed" is reachable only through a report to the
        # authorities: the customer sees "in review" while blocked and "resolved" after.
        if case.cause is Cause.SUSPICIOUS_ACTIVITY and state == "closed":
            return "in_review" if in_force else "resolved"
        return CUSTOMER_STATUS.get(state, "in_review")

    # Customers see when their visible status changed, never internal steps (escalation, report)
    # nor evidence (entries without a state: monitoring alerts). What happened up to the first
    # restriction is one entry at its start, with the status the case had then; consecutive
    # entries with the same visible status are one entry.
    changes: list[tuple[datetime, str]] = []
    for event in events:
        if event["to"] is None:
            continue
        at, shown = max(event["at"], visible_from), customer_status(event["to"])
        if changes and changes[-1][0] == visible_from == at:
            changes[-1] = (at, shown)
        else:
            changes.append((at, shown))
    timeline: list[dict[str, Any]] = []
    for at, shown in changes:
        if not timeline or timeline[-1]["status"] != shown:
            timeline.append({"at": iso(at), "status": shown})
    return {
        "inquiry_number": printed,
        "status": customer_status(case.state),
        "cause": disclosed_cause,
        "opened_at": iso(visible_from),
        "expected_response_by": iso(case.sla_due_at) if case.is_open else None,
        "restrictions": items,
        "timeline": timeline,
    }
