"""The partner REST API, under /v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from freezedesk.domain.restrictions import Source
from freezedesk.domain.scopes import parse_action
from freezedesk.notify import webhooks
from freezedesk.runtime import Runtime
from freezedesk.services import cases as case_service
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.api_keys import Principal
from freezedesk.services.views import restriction_view
from freezedesk.store.uow import utcnow
from freezedesk.web.api.auth import require
from freezedesk.web.api.schemas import (
    ACCOUNT_ID_PATTERN,
    AccountProfile,
    BatchCheckRequest,
    FreezeRequest,
    LiftRequestBody,
    PermanentRequest,
    TransitionRequest,
    WebhookRequest,
)

router = APIRouter(prefix="/v1")
AccountPath = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, max_length=128)]
IdPath = Annotated[str, Path(max_length=64)]


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def _lift_response(view: dict[str, Any], lifted: bool, needed: int) -> JSONResponse:
    body = {**view, "approvals_needed": needed}
    return JSONResponse(body, status_code=200 if lifted else 202)


@router.put("/accounts/{account_id}", tags=["accounts"], summary="Register or update an account")
def upsert_account(
    account_id: AccountPath, body: AccountProfile, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("accounts:write"))],
) -> dict[str, Any]:
    now = utcnow()
    profile = body.model_dump(include={"locale", "email", "display_name"})
    with rt.store.unit_of_work() as uow:
        created = uow.accounts.upsert(account_id, now, **profile)
        identity_changed = body.legal_name is not None and rt.screening.set_identity(
            uow, account_id, body.legal_name, body.entity_type, body.birth_date, body.country)
        uow.audit(who.actor.id, "account.registered" if created else "account.updated", "account",
                  account_id, account_id, body.model_dump(exclude_none=True), now)
        account = uow.accounts.get(account_id)
    # Screened after the identity is committed: onboarding and every name change.
    hits = rt.screening.screen_account(account_id, who.actor) if identity_changed else []
    return {"id": account["id"], "locale": account["locale"], "created": created,
            "screened": identity_changed and rt.screening.loaded, "screening_hits": hits}


@router.post("/accounts/{account_id}/restrictions", status_code=201, tags=["restrictions"],
             summary="Restrict an account")
def create_restriction(
    account_id: AccountPath, body: FreezeRequest, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("restrictions:write"))],
) -> dict[str, Any]:
    frozen = restriction_service.freeze(
        rt.store, rt.catalogue,
        account_id=account_id, reason_code=body.reason_code, actor=who.actor,
        source=Source.STAFF if who.staff_id else Source.PARTNER_API,
        scopes=body.scopes, expires_at=body.expires_at, legal_basis=body.legal_basis, note=body.note,
    )
    return restriction_view(frozen.restriction, frozen.case.inquiry_number, utcnow())


@router.get("/accounts/{account_id}/restrictions", tags=["restrictions"])
def list_restrictions(
    account_id: AccountPath, rt: RuntimeDep,
    _: Annotated[Principal, Depends(require("restrictions:read"))],
    status: Annotated[str | None, Query(pattern="^(active|lifted|expired|permanent)$")] = None,
) -> dict[str, Any]:
    return {"account_id": account_id, "items": restriction_service.list_for_account(rt.store, account_id, status)}


@router.get("/restrictions/{restriction_id}", tags=["restrictions"])
def get_restriction(
    restriction_id: IdPath, rt: RuntimeDep, _: Annotated[Principal, Depends(require("restrictions:read"))],
) -> dict[str, Any]:
    return restriction_service.get_restriction(rt.store, restriction_id)


@router.post("/restrictions/{restriction_id}/lift", tags=["restrictions"],
             summary="Ask to lift; 200 when lifted, 202 when more approvals are needed",
             responses={202: {"description": "Waiting for more approvals"}})
def lift_restriction(
    restriction_id: IdPath, body: LiftRequestBody, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("restrictions:write", staff=True))],
) -> JSONResponse:
    view, outcome = restriction_service.request_lift(
        rt.store, rt.catalogue, restriction_id, who.actor, body.reason, body.legal_reference
    )
    return _lift_response(view, outcome.lifted, outcome.approvals_needed)


@router.post("/restrictions/{restriction_id}/approvals", tags=["restrictions"],
             summary="Approve a pending lift", responses={202: {"description": "Waiting for more approvals"}})
def approve_lift(
    restriction_id: IdPath, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("restrictions:write", staff=True))],
) -> JSONResponse:
    view, outcome = restriction_service.approve_lift(rt.store, rt.catalogue, restriction_id, who.actor)
    return _lift_response(view, outcome.lifted, outcome.approvals_needed)


@router.post("/restrictions/{restriction_id}/permanent", tags=["restrictions"],
             summary="Make a regulatory or policy restriction permanent, recording the assets' disposition")
def make_permanent(
    restriction_id: IdPath, body: PermanentRequest, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("restrictions:write", staff=True))],
) -> dict[str, Any]:
    return restriction_service.make_permanent(
        rt.store, rt.catalogue, restriction_id, who.actor, body.disposition, body.note
    )


@router.get("/accounts/{account_id}/permissions", tags=["permissions"],
            summary="May this account do this action now?",
            description="Served from memory by `PermissionFastPath` ahead of the router (same rules); "
                        "this route documents it and answers if the fast path is not installed.")
async def check_permission(
    request: Request,
    account_id: AccountPath,
    action: Annotated[str, Query(max_length=16)],
    _: Annotated[Principal, Depends(require("permissions:read"))],
    reduce_only: bool = False,
) -> Response:
    result = runtime(request).view.check(account_id, parse_action(action), reduce_only)
    return JSONResponse(result)


@router.post("/permissions/check", tags=["permissions"], summary="Many checks in one call")
async def check_permissions(
    request: Request, body: BatchCheckRequest,
    _: Annotated[Principal, Depends(require("permissions:read"))],
) -> dict[str, Any]:
    view = runtime(request).view
    actions = [parse_action(q.action) for q in body.checks]  # all valid, or a 422 for the batch
    return {"results": [view.check(q.account_id, a, q.reduce_only) for q, a in zip(body.checks, actions, strict=True)]}


@router.get("/cases/{case_id}", tags=["cases"])
def get_case(
    case_id: IdPath, rt: RuntimeDep, _: Annotated[Principal, Depends(require("cases:read"))],
) -> dict[str, Any]:
    return case_service.get_case(rt.store, case_id)


@router.post("/cases/{case_id}/transitions", tags=["cases"], summary="Move a case along its playbook")
def transition_case(
    case_id: IdPath, body: TransitionRequest, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("cases:write", staff=True))],
) -> dict[str, Any]:
    return case_service.transition(rt.store, case_id, body.event, who.actor)


@router.get("/inquiries/{inquiry_number}", tags=["cases"],
            summary="The customer's view of an inquiry (what the reason catalogue lets us disclose)")
def get_inquiry(
    inquiry_number: Annotated[str, Path(max_length=20)], rt: RuntimeDep,
    _: Annotated[Principal, Depends(require("cases:read"))],
    locale: Annotated[str, Query(pattern="^(ja|en)$")] = "ja",
) -> dict[str, Any]:
    return case_service.get_inquiry(rt.store, rt.catalogue, inquiry_number, locale)


@router.post("/webhooks", status_code=201, tags=["webhooks"],
             summary="Subscribe an endpoint; the signing secret is returned only once",
             responses={422: {"description": "Invalid events, or a URL that is not a public http(s) endpoint "
                                             "(`/problems/webhook-url-forbidden`, with `reason`)"},
                        503: {"description": "No operator key to seal the secret with "
                                             "(`/problems/webhook-secrets-unavailable`)"}})
def create_webhook(
    body: WebhookRequest, rt: RuntimeDep, who: Annotated[Principal, Depends(require("webhooks:write"))],
) -> dict[str, Any]:
    """Subscribe `url` to `events` (or `*`). The response carries the signing secret in clear; this is
    the only time it is shown (it is stored encrypted with the operator key and only opened to sign).

    **Destination.** `url` must be http(s), without credentials, and its host must be (and resolve to)
    a public address; loopback, private, link-local (cloud metadata), multicast, reserved and
    unspecified addresses are refused with `422 /problems/webhook-url-forbidden`, whose `reason`
    names the rule (`scheme`, `credentials`, `loopback`, `private`, `link-local`, ...), unless the
    operator allows the host in `FREEZEDESK_WEBHOOK_ALLOW_HOSTS`. Every delivery checks again
    before connecting: a host re-pointed at an internal address is not contacted and the attempt
    is recorded as failed.

    **Idempotent retries.** With an `Idempotency-Key`, a retry of the same request by the same API
    key within 24 h replays the first response, *including the same secret* (header
    `Idempotent-Replayed: true`) and registers nothing new, so a client that lost the response
    does not end up with a subscription it cannot verify. The stored response is encrypted with
    the operator key like the secret itself; if that key is no longer configured the replay
    answers `503 /problems/webhook-secrets-unavailable` instead.
    """
    hook = webhooks.register(rt.store, body.url, body.events, who.actor.id,
                             box=rt.secret_box, policy=rt.webhook_policy)
    return {"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret}


@router.get("/reason-codes", tags=["reference"], summary="The active reason catalogue")
async def reason_codes(
    request: Request, _: Annotated[Principal, Depends(require("reasons:read"))],
) -> dict[str, Any]:
    return {"items": [r.public_view() for r in runtime(request).catalogue]}

