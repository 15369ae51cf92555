"""Screening through the API: onboarding hits, decisions, list updates, address freezes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from freezedesk.domain.restrictions import Actor
from freezedesk.reference import load_catalogue
from freezedesk.screening.service import ScreeningService
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth

LISTED_WALLET = "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"


def person(pid: str, name: str, birth: str, nationality: str, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "schema": "Person", "target": True,
            "properties": {"name": [name], "birthDate": [birth], "nationality": [nationality],
                           "topics": ["sanction"], **extra}}


def write_list(path: Path, entities: list[dict[str, Any]]) -> str:
    wallet = {"id": "wallet-1", "schema": "CryptoWallet", "target": False,
              "properties": {"publicKey": [LISTED_WALLET], "currency": ["ETH"], "holder": ["p-1"]}}
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in [*entities, wallet]) + "\n")
    return f"ftm@test:{path}"


BASE = [
    person("p-1", "Viktor Aleksandrovich Petrenko", "1961-04-12", "ru"),
    person("p-2", "Kim Sung Chol", "1972-09-01", "kp"),
]


@pytest.fixture
def list_spec(tmp_path: Path) -> str:
    return write_list(tmp_path / "list.jsonl", BASE)


@pytest.fixture
def loaded(db_url: str, store: Store, list_spec: str, staff: Staff) -> Iterator[TestClient]:
    ScreeningService(store, load_catalogue()).load_lists([list_spec], Actor("test"))
    with api_client(db_url) as client:
        yield client


def onboard(client: TestClient, key: str, account: str, name: str, **extra: Any) -> dict[str, Any]:
    response = client.put(f"/v1/accounts/{account}", json={"legal_name": name, **extra}, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def allowed(client: TestClient, key: str, account: str, action: str) -> bool:
    r = client.get(f"/v1/accounts/{account}/permissions", params={"action": action}, headers=auth(key))
    return bool(r.json()["allowed"])


def test_onboarding_hit_opens_a_regulatory_case_with_a_hold(loaded: TestClient, staff: Staff) -> None:
    result = onboard(loaded, staff.partner, "acct-1", "PETRENKO Viktor")
    assert result["screened"] is True
    [hit] = result["screening_hits"]
    assert hit["entity_id"] == "test-p-1" and hit["status"] == "pending_review"
    assert hit["explanation"]  # stored with the case: why it matched
    assert not allowed(loaded, staff.partner, "acct-1", "withdraw")
    assert allowed(loaded, staff.partner, "acct-1", "trade")  # a hold, not a freeze, until reviewed
    case = loaded.get(f"/v1/cases/{hit['case_id']}", headers=auth(staff.partner)).json()
    assert case["cause"] == "regulatory"
    [evidence] = case["evidence"]["screening_hits"]
    assert evidence["entity_id"] == "test-p-1" and evidence["explanation"]["token_matches"]
    # same name, birth date and nationality: above the auto-freeze score, a full freeze at once
    strong = onboard(loaded, staff.partner, "acct-4", "PETRENKO Viktor", birth_date="1961-04-12", country="RU")
    assert float(strong["screening_hits"][0]["score"]) >= 0.97
    assert not allowed(loaded, staff.partner, "acct-4", "trade")
    clean = onboard(loaded, staff.partner, "acct-2", "Hanako Sato", birth_date="1990-01-01", country="JP")
    assert clean["screening_hits"] == [] and allowed(loaded, staff.partner, "acct-2", "withdraw")


def test_not_this_person_is_remembered_until_the_entry_changes(
    loaded: TestClient, staff: Staff, store: Store, tmp_path: Path
) -> None:
    [hit] = onboard(loaded, staff.partner, "acct-1", "Viktor Petrenko")["screening_hits"]
    refused = loaded.post(f"/v1/screening/hits/{hit['id']}/dismiss", headers=auth(staff.partner),
                          json={"reason": "different person", "legal_reference": "SOP-7"})
    assert refused.status_code == 403
    dismissed = loaded.post(f"/v1/screening/hits/{hit['id']}/dismiss", headers=auth(staff.compliance),
                            json={"reason": "customer born 1988, passport checked", "legal_reference": "SOP-7"})
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed" and dismissed.json()["lift"]["approvals_needed"] == 1
    approve = loaded.post(f"/v1/restrictions/{hit['restriction_id']}/approvals", headers=auth(staff.compliance2))
    assert approve.status_code == 200
    assert allowed(loaded, staff.partner, "acct-1", "withdraw")
    again = loaded.post(f"/v1/screening/hits/{hit['id']}/dismiss", headers=auth(staff.compliance),
                        json={"reason": "twice", "legal_reference": "x"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/hit-already-decided"

    # a new name for the holder, same entity, entry unchanged: not raised again
    onboard(loaded, staff.partner, "acct-1", "Viktor A. Petrenko")
    service = ScreeningService(store, load_catalogue())
    spec = write_list(tmp_path / "same.jsonl", BASE)
    report = service.load_lists([spec], Actor("test"))
    assert (len(report.diff.added), len(report.diff.changed), len(report.diff.removed)) == (0, 0, 0)
    assert report.new_hits == 0
    # the list entry changes (new passport): raised again, against the changed entity only
    changed = [person("p-1", "Viktor Aleksandrovich Petrenko", "1961-04-12", "ru", passportNumber=["X1"]), BASE[1]]
    report = service.load_lists([write_list(tmp_path / "changed.jsonl", changed)], Actor("test"))
    assert report.diff.changed == ("test-p-1",) and report.new_hits == 1
    hits = loaded.get("/v1/screening/hits", params={"account_id": "acct-1"}, headers=auth(staff.partner)).json()
    assert [h["status"] for h in hits["items"]] == ["dismissed", "pending_review"]


def test_confirmed_hit_fully_freezes(loaded: TestClient, staff: Staff) -> None:
    [hit] = onboard(loaded, staff.partner, "acct-3", "Kim Sung Chol", country="KP")["screening_hits"]
    by_investigator = loaded.post(f"/v1/screening/hits/{hit['id']}/confirm", headers=auth(staff.investigator),
                                  json={"note": "looks like him"})
    assert by_investigator.status_code == 403
    confirmed = loaded.post(f"/v1/screening/hits/{hit['id']}/confirm", headers=auth(staff.compliance),
                            json={"note": "same passport"})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert not allowed(loaded, staff.partner, "acct-3", "trade")
    assert not allowed(loaded, staff.partner, "acct-3", "login")


def test_listed_address_freezes_at_once(loaded: TestClient, staff: Staff) -> None:
    lookup = loaded.post("/v1/screening/addresses", headers=auth(staff.partner),
                         json={"addresses": [{"address": LISTED_WALLET.upper().replace("0X", "0x")},
                                             {"address": "0x0000000000000000000000000000000000000001"}]})
    assert lookup.status_code == 200
    first, second = lookup.json()["results"]
    assert first["entity_ids"] == ["test-p-1"] and second["entity_ids"] == []
    assert allowed(loaded, staff.partner, "acct-9", "withdraw")  # a lookup alone changes nothing
    frozen = loaded.post("/v1/screening/addresses", headers=auth(staff.partner),
                         json={"account_id": "acct-9", "addresses": [{"address": LISTED_WALLET, "currency": "ETH"}]})
    assert frozen.status_code == 200
    assert frozen.json()["results"][0]["hits"][0]["kind"] == "address"
    for action in ("withdraw", "trade", "login", "deposit"):
        assert not allowed(loaded, staff.partner, "acct-9", action)


def test_name_endpoint_and_bad_input(loaded: TestClient, staff: Staff) -> None:
    found = loaded.post("/v1/screening/names", headers=auth(staff.partner),
                        json={"name": "Sung Chol KIM", "schema": "person"})
    assert found.status_code == 200
    assert found.json()["matches"][0]["entity_id"] == "test-p-2"
    assert found.json()["elapsed_us"] >= 0
    for body in ({"name": ""}, {"name": "x", "birth_date": "12/03/1961"}, {"name": "x", "schema": "ghost"},
                 {"name": "x", "country": "Japan"}):
        bad = loaded.post("/v1/screening/names", headers=auth(staff.partner), json=body)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    bad_identity = loaded.put("/v1/accounts/acct-5", headers=auth(staff.partner),
                              json={"legal_name": "A B", "birth_date": "1990-13-45"})
    assert bad_identity.status_code == 422


def test_screening_without_lists_is_a_clear_conflict(client: TestClient, staff: Staff) -> None:
    response = client.post("/v1/screening/names", headers=auth(staff.partner), json={"name": "Anyone"})
    assert response.status_code == 409 and response.json()["type"] == "/problems/lists-not-loaded"
