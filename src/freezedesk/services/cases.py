"""Cases and inquiries: playbook transitions, the staff view and the customer view."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from freezedesk.domain import inquiry as inquiry_numbers
from freezedesk.domain.catalogue import Disclosure, ReasonCatalogue
from freezedesk.domain.playbooks import authorize_event
from freezedesk.domain.restrictions import Actor, Status
from freezedesk.domain.scopes import Cause
from freezedesk.services.views import case_view, iso
from freezedesk.store.tables import screening_hits
from freezedesk.store.uow import Store, utcnow

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
    """The staff view: state, timeline and evidence (screening hits with their explanations)."""
    with store.read() as uow:
        case = uow.cases.get(case_id)
        hits = uow.conn.execute(
            select(screening_hits).where(screening_hits.c.case_id == case_id).order_by(screening_hits.c.created_at)
        ).all()
        view = case_view(case, uow.cases.timeline(case.id))
    view["evidence"] = {
        "screening_hits": [
            {"id": h.id, "entity_id": h.entity_id, "kind": h.kind, "score": h.score, "status": h.status,
             "query": json.loads(h.query), "explanation": json.loads(h.explanation), "at": iso(h.created_at)}
            for h in hits
        ]
    }
    return view


def get_inquiry(store: Store, catalogue: ReasonCatalogue, number: str, locale: str = "en") -> dict[str, Any]:
    """The customer-facing view of an inquiry: only what the reason catalogue lets us disclose."""
    printed = inquiry_numbers.normalize(number)
    now = utcnow()
    with store.read() as uow:
        case = uow.cases.by_inquiry(printed)
        restrictions = uow.restrictions.for_case(case.id)
        events = uow.cases.timeline(case.id)
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

    # Customers see when their visible status changed, never internal steps (escalation, report):
    # consecutive entries with the same visible status are one entry.
    timeline: list[dict[str, Any]] = []
    for event in events:
        shown = customer_status(event["to"])
        if not timeline or timeline[-1]["status"] != shown:
            timeline.append({"at": iso(event["at"]), "status": shown})
    return {
        "inquiry_number": printed,
        "status": customer_status(case.state),
        "cause": disclosed_cause,
        "opened_at": iso(case.opened_at),
        "expected_response_by": iso(case.sla_due_at) if case.is_open else None,
        "restrictions": items,
        "timeline": timeline,
    }
