"""Public representations shared by the API and the webhook payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freezedesk.domain.cases import Case
from freezedesk.domain.restrictions import Restriction, Status


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def restriction_view(r: Restriction, inquiry_number: str | None, now: datetime) -> dict[str, Any]:
    status = r.effective_status(now)
    pending = r.lift_request if status is Status.ACTIVE else None
    return {
        "id": r.id,
        "account_id": r.account_id,
        "cause": r.cause.value,
        "reason_code": r.reason_code,
        "scopes": r.scopes.sorted_names(),
        "close_only": r.scopes.close_only,
        "status": status.value,
        "source": r.source.value,
        "disclosure": r.disclosure,
        "legal_basis": r.legal_basis,
        "starts_at": iso(r.starts_at),
        "expires_at": iso(r.expires_at),
        "lifted_at": iso(r.lifted_at),
        "disposition": r.disposition.value if r.disposition else None,
        "case_id": r.case_id,
        "inquiry_number": inquiry_number,
        "pending_lift": None
        if pending is None
        else {
            "requested_by": pending.requested_by,
            "requested_at": iso(pending.requested_at),
            "approvers": list(pending.approvers),
        },
    }


def case_view(case: Case, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": case.id,
        "account_id": case.account_id,
        "cause": case.cause.value,
        "state": case.state,
        "opened_at": iso(case.opened_at),
        "sla_due_at": iso(case.sla_due_at),
        "closed_at": iso(case.closed_at),
        "inquiry_number": case.inquiry_number,
        "restriction_ids": list(case.restriction_ids),
        "timeline": [{**e, "at": iso(e["at"])} for e in timeline],
    }
