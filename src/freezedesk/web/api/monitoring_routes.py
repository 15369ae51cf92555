"""Monitoring endpoints: the exchange core reports what happened on its accounts."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from pydantic import Field

from freezedesk.monitoring.events import validate_values
from freezedesk.services.api_keys import Principal
from freezedesk.web.api.auth import require
from freezedesk.web.api.routes import RuntimeDep
from freezedesk.web.api.schemas import Body

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
