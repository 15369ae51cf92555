"""Screening endpoints: name and address lookups, hits and analysts' decisions."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from freezedesk.screening.matcher import Query as NameQuery
from freezedesk.services.api_keys import Principal
from freezedesk.web.api.auth import require
from freezedesk.web.api.problems import ApiProblem
from freezedesk.web.api.routes import RuntimeDep
from freezedesk.web.api.schemas import AccountId, Body

router = APIRouter(prefix="/v1/screening", tags=["screening"])


class NameScreenRequest(Body):
    name: str = Field(min_length=1, max_length=400)
    schema_: Literal["person", "organisation", "vessel", "aircraft"] | None = Field(default=None, alias="schema")
    birth_date: str | None = Field(default=None, pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$")
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    limit: int = Field(default=10, ge=1, le=50)


class AddressItem(Body):
    address: str = Field(min_length=1, max_length=200)
    currency: str | None = Field(default=None, max_length=12)


class AddressScreenRequest(Body):
    addresses: list[AddressItem] = Field(min_length=1, max_length=1000)
    account_id: AccountId | None = Field(
        default=None, description="When given, a listed address freezes this account at once")


class DismissRequest(Body):
    reason: str = Field(min_length=3, max_length=4000, description="Why this is not the listed party")
    legal_reference: str = Field(min_length=1, max_length=500, description="Internal policy or guidance relied on")


class ConfirmRequest(Body):
    note: str = Field(min_length=3, max_length=4000)


@router.post("/names", summary="Screen one name against the loaded lists (no side effects)")
def screen_name(
    body: NameScreenRequest, rt: RuntimeDep, _: Annotated[Principal, Depends(require("screening:read"))],
) -> dict[str, Any]:
    started = time.perf_counter_ns()
    query = NameQuery(name=body.name, schema=body.schema_, birth_date=body.birth_date,
                      country=body.country.upper() if body.country else None)
    matches = rt.screening.search_names(query, body.threshold, body.limit)
    return {
        "matches": [{"entity_id": m.entity_id, "score": round(m.score, 4), "matched_name": m.matched_name,
                     "explanation": m.explanation} for m in matches],
        "elapsed_us": (time.perf_counter_ns() - started) // 1000,
    }


@router.post("/addresses", summary="Look addresses up exactly; with account_id, a hit freezes that account")
def screen_addresses(
    body: AddressScreenRequest, rt: RuntimeDep, who: Annotated[Principal, Depends(require("screening:read"))],
) -> dict[str, Any]:
    pairs = [(a.address, a.currency) for a in body.addresses]
    if body.account_id is None:
        return {"results": rt.screening.lookup_addresses(pairs)}
    if "screening:write" not in who.scopes:
        raise ApiProblem(403, "insufficient-scope", "screening for an account needs the 'screening:write' scope",
                         required_scope="screening:write")
    return {"account_id": body.account_id,
            "results": rt.screening.screen_account_addresses(body.account_id, pairs, who.actor)}


@router.get("/hits", summary="Screening hits, oldest first")
def list_hits(
    rt: RuntimeDep, _: Annotated[Principal, Depends(require("screening:read"))],
    status: Annotated[str | None, Query(pattern="^(pending_review|confirmed|dismissed)$")] = None,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    return {"items": rt.screening.list_hits(status, account_id)}


@router.post("/hits/{hit_id}/dismiss", summary="Not this person: record it and start lifting the hold")
def dismiss_hit(
    hit_id: Annotated[str, Path(max_length=64)], body: DismissRequest, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("screening:write", staff=True))],
) -> dict[str, Any]:
    return rt.screening.dismiss_hit(hit_id, who.actor, body.reason, body.legal_reference)


@router.post("/hits/{hit_id}/confirm", summary="A true match: the account is fully frozen")
def confirm_hit(
    hit_id: Annotated[str, Path(max_length=64)], body: ConfirmRequest, rt: RuntimeDep,
    who: Annotated[Principal, Depends(require("screening:write", staff=True))],
) -> dict[str, Any]:
    return rt.screening.confirm_hit(hit_id, who.actor, body.note)
