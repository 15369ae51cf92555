"""Monitoring endpoints: the exchange core reports what happened on its accounts; staff read the
alerts it raised and the rules that raised them.

The reads are staff-only (a staff API key of any role — case workers and auditors — with
``cases:read``: alerts are case evidence, and rule thresholds are not for the exchange core's
screens, let alone a customer's). FreezeDesk serves one exchange, so there is no per-key account
scoping to apply: a staff member sees every account's alerts, as they see every case.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, Field

from freezedesk.monitoring import service as monitoring_service
from freezedesk.monitoring.events import validate_values
from freezedesk.services.api_keys import Principal
from freezedesk.web.api.auth import require
from freezedesk.web.api.routes import RuntimeDep
from freezedesk.web.api.schemas import ACCOUNT_ID_PATTERN, Body

router = APIRouter(prefix="/v1", tags=["monitoring"])

EVENTS_PATH: Final = "/v1/events"
#: Events per call. With the 4 MiB body allowance this leaves ~800 bytes per event, several times
#: the size of the largest event type, so the count — not the byte limit — is what callers meet.
MAX_EVENTS_PER_CALL: Final = 5000


class EventsRequest(Body):
    # Items stay untyped on purpose: monitoring.events validates them, so the API reports the very
    # same problems (with the event's index and field) as `freezedesk events ingest` does.
    events: list[Any] = Field(
        min_length=1, max_length=MAX_EVENTS_PER_CALL,
        description="Event objects (see issue 4's event model). Amounts, prices and value_usd are decimal "
                    "strings; ts is RFC 3339 with an offset.")


@router.post(EVENTS_PATH.removeprefix("/v1"), summary="Report a batch of events (accepted whole or not at all)")
def post_events(
    body: EventsRequest, rt: RuntimeDep, who: Annotated[Principal, Depends(require("events:write"))],
) -> dict[str, Any]:
    """Validate every event; store the new ones and evaluate them against the rules — one transaction.

    A batch with any invalid event is rejected with 422 ``invalid-events`` whose ``errors`` name
    every problem as ``{index, field, message}``; nothing is stored. Sending the same batch again
    stores nothing, reports every event as a duplicate and raises no alert.

    The new events run through the monitoring rules (in time order) before the response returns;
    ``alerts`` lists what they fired, each with its case, inquiry number and — for ``hold`` and
    ``freeze`` rules — the restriction now in force, which the next permission check enforces.
    """
    batch = validate_values(enumerate(body.events), source="events", position="index")
    done = rt.monitor.submit(batch, who.actor.id, source=f"api:{who.key_id}")
    return {"accepted": done.ingest.accepted, "duplicates": done.ingest.duplicates, "alerts": done.alerts}


#: Staff reads: any staff role (auditors included), never a partner (machine) key.
StaffReader = Annotated[Principal, Depends(require("cases:read", staff=True))]


@router.get("/monitoring/alerts", summary="Monitoring alerts, newest first (staff)")
def list_alerts(
    rt: RuntimeDep, _: StaffReader,
    account_id: Annotated[str | None, Query(pattern=ACCOUNT_ID_PATTERN, max_length=128)] = None,
    rule_id: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    reason_code: Annotated[str | None, Query(pattern=r"^[A-Z][A-Z0-9_]{2,63}$")] = None,
    since: Annotated[AwareDatetime | None, Query(description="alerts whose ts is at or after this (RFC 3339)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="alerts whose ts is before this (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=monitoring_service.PAGE_MAX)] = monitoring_service.PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Alerts the rules raised and FreezeDesk acted on, newest first by the firing event's ``ts``
    (then by id): ``{items, next_cursor}``. Pass ``next_cursor`` back as ``cursor`` with the same
    filters for the next page; it is ``null`` on the last one. ``since`` is inclusive, ``until``
    exclusive; ``since`` not before ``until``, or a cursor this API did not return, is a 422
    ``invalid-query`` naming the ``field``; a malformed parameter is a 422 ``validation-error``.
    """
    filters = monitoring_service.AlertFilter(account_id, rule_id, reason_code, since, until)
    return monitoring_service.list_alerts(rt.store, rt.monitor.pack, filters, limit, cursor)


@router.get("/monitoring/alerts/{alert_id}", summary="One monitoring alert with its events, case and restriction")
def get_alert(alert_id: Annotated[str, Path(max_length=64)], rt: RuntimeDep, _: StaffReader) -> dict[str, Any]:
    """The alert, the stored events that fired it (in the alert's order), its case (id, cause,
    state, inquiry number), the restriction that enforces the finding (the one this alert created,
    or the one of the same rule it was added to; ``null`` for an ``alert`` rule) with its current
    status, and the rule as the active pack defines it. An unknown id is a 404 ``not-found``."""
    return monitoring_service.get_alert(rt.store, rt.monitor.pack, alert_id)


@router.get("/monitoring/rules", summary="The active rule pack: what each rule looks for and does (staff)")
def list_rules(rt: RuntimeDep, _: StaffReader) -> dict[str, Any]:
    """Per rule: ``id``, ``title``, ``intent``, the condition ``when`` as written, ``params`` (the
    pack's and the rule's, as substituted), ``features`` (windows, first use, since, baselines with
    their filters), ``on`` (event types), ``dedup``, ``action`` (alert / hold / freeze), the
    ``reason_code`` and its ``cause``, and ``restricts`` — the scopes a ``hold``/``freeze`` blocks.
    ``listed_addresses`` is how many addresses the ``listed`` feature matches now."""
    return monitoring_service.rules_view(rt.monitor.pack, rt.catalogue, rt.monitor.listed_count)
