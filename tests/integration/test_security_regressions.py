"""Regression tests from a security and compliance review: authentication before idempotency and rate
limits, tipping-off in the inquiry view, per-role decisions, key revocation races, screening confirms."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from freezedesk.domain.restrictions import Actor
from freezedesk.reference import load_catalogue
from freezedesk.screening.service import ScreeningService
from freezedesk.services.api_keys import KeyRing, create_key, revoke_key
from freezedesk.store.follower import Changes
from freezedesk.store.tables import audit_log, idempotency_keys
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth

LISTED_WALLET = "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"


def freeze(client: TestClient, key: str, account: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/accounts/{account}/restrictions", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def move(client: TestClient, key: str, case_id: str, *events: str) -> None:
    for event in events:
        moved = client.post(f"/v1/cases/{case_id}/transitions", json={"event": event}, headers=auth(key))
        assert moved.status_code == 200, moved.text


def inquiry(client: TestClient, key: str, number: str) -> dict[str, Any]:
    response = client.get(f"/v1/inquiries/{number}", params={"locale": "en"}, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def allowed(client: TestClient, key: str, account: str, action: str) -> bool:
    r = client.get(f"/v1/accounts/{account}/permissions", params={"action": action}, headers=auth(key))
    assert r.status_code == 200, r.text
    return bool(r.json()["allowed"])


# -- idempotency and the write path ------------------------------------------------------------


def test_revoked_key_cannot_replay_stored_responses(client: TestClient, store: Store,
                                                   fake_dns: dict[str, list[str]]) -> None:
    """A revoked (e.g. leaked) key must not read back stored responses such as a webhook secret."""
    fake_dns["partner.example"] = ["93.184.215.14"]
    created = create_key(store, "soon revoked")
    headers = {**auth(created.key), "Idempotency-Key": "hook-1"}
    body = {"url": "https://partner.example/hooks", "events": ["*"]}
    first = client.post("/v1/webhooks", json=body, headers=headers)
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    revoke_key(store, created.key_id)
    deadline = time.monotonic() + 5
    while client.get("/v1/reason-codes", headers=auth(created.key)).status_code != 401:
        assert time.monotonic() < deadline, "revocation never reached the server"
        time.sleep(0.05)
    replay = client.post("/v1/webhooks", json=body, headers=headers)
    assert replay.status_code == 401, f"revoked key got {replay.status_code}: {replay.text}"
    assert "whsec_" not in replay.text


def test_revocation_racing_a_cache_refill_is_not_lost(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyRing.authenticate reads the key, then caches it for 30 s; a revocation whose invalidation
    lands between the read and the cache write is forgotten and the revoked key keeps working."""
    created = create_key(store, "racy")
    ring = KeyRing(store)
    real_read = store.read

    @contextmanager
    def read_then_revoke() -> Iterator[Any]:
        with real_read() as uow:
            yield uow
        monkeypatch.setattr(store, "read", real_read)
        revoke_key(store, created.key_id)  # committed, and the follower tells this process at once:
        ring.on_changes(Changes(set(), {"api_key"}))

    monkeypatch.setattr(store, "read", read_then_revoke)
    ring.authenticate(created.key)  # valid when it was read: this answer is fine
    assert ring.authenticate(created.key) is None, "a revoked key is still accepted from the cache"


def test_unauthenticated_post_with_idempotency_key_writes_nothing(client: TestClient, store: Store) -> None:
    def rows() -> int:
        with store.read() as uow:
            return int(uow.conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())

    before = rows()
    for i in range(5):
        response = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                               headers={**auth(f"fd_not-a-key-{i}"), "Idempotency-Key": f"k-{i}"})
        assert response.status_code == 401
    assert rows() == before  # an anonymous caller must not be able to write to the database


def test_rotating_bogus_keys_does_not_bypass_the_write_rate_limit(db_url: str, staff: Staff) -> None:
    with api_client(db_url, write_rate_per_second=0.5, write_burst=2) as limited:
        codes = [limited.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                              headers=auth(f"fd_guess-{i}")).status_code for i in range(6)]
    assert 429 in codes, codes  # one client, six writes in a burst of two: some must be limited


def test_batch_permission_check_is_not_rate_limited(db_url: str, staff: Staff) -> None:
    """README: 'Permission checks are not limited' - the batch form is the exchange's hot path too."""
    body = {"checks": [{"account_id": "acct-1", "action": "withdraw"}]}
    with api_client(db_url, write_rate_per_second=0.5, write_burst=2) as limited:
        codes = [limited.post("/v1/permissions/check", json=body, headers=auth(staff.partner)).status_code
                 for _ in range(4)]
    assert codes == [200, 200, 200, 200]


def test_replayed_batch_check_never_allows_a_frozen_account(client: TestClient, staff: Staff) -> None:
    """A retried check (same Idempotency-Key, as the README asks on every POST) must not return a
    verdict older than a committed restriction."""
    headers = {**auth(staff.partner), "Idempotency-Key": "check-batch-1"}
    body = {"checks": [{"account_id": "acct-1", "action": "withdraw"}]}
    first = client.post("/v1/permissions/check", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["results"][0]["allowed"] is True
    freeze(client, staff.partner, "acct-1", reason_code="SEC_ACCOUNT_TAKEOVER")
    assert allowed(client, staff.partner, "acct-1", "withdraw") is False
    retried = client.post("/v1/permissions/check", json=body, headers=headers)
    assert retried.json()["results"][0]["allowed"] is False, retried.json()


# -- tipping-off in the customer's inquiry view ------------------------------------------------


def test_reported_suspicious_activity_case_does_not_show_closed(client: TestClient, staff: Staff) -> None:
    """In the suspicious-activity playbook 'closed' is reachable only from 'reported': showing it to
    the customer tells them a report to the authorities was filed."""
    r = freeze(client, staff.partner, "acct-1", reason_code="SUS_STRUCTURING")
    move(client, staff.compliance, r["case_id"], "request_information", "submit", "escalate", "report", "close")
    view = inquiry(client, staff.partner, r["inquiry_number"])
    statuses = [view["status"], *(e["status"] for e in view["timeline"])]
    assert "closed" not in statuses, statuses


def test_inquiry_timeline_does_not_reveal_escalation_or_report(client: TestClient, staff: Staff) -> None:
    """Two customers in the same visible position must see the same thing whether or not their case
    was escalated to the MLRO and reported."""
    quiet = freeze(client, staff.partner, "acct-1", reason_code="SUS_STRUCTURING")
    move(client, staff.compliance, quiet["case_id"], "request_information", "submit")
    reported = freeze(client, staff.partner, "acct-2", reason_code="SUS_STRUCTURING")
    move(client, staff.compliance, reported["case_id"], "request_information", "submit", "escalate", "report")
    a = inquiry(client, staff.partner, quiet["inquiry_number"])
    b = inquiry(client, staff.partner, reported["inquiry_number"])
    assert a["status"] == b["status"] == "in_review"
    assert [e["status"] for e in a["timeline"]] == [e["status"] for e in b["timeline"]], (a, b)


# -- authorisation per role, case integrity ----------------------------------------------------


def test_auditor_cannot_freeze_accounts(client: TestClient, staff: Staff) -> None:
    response = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "REG_COURT_ORDER"},
                           headers=auth(staff.auditor))
    assert response.status_code == 403, response.text


def test_auditor_cannot_move_a_case(client: TestClient, staff: Staff) -> None:
    r = freeze(client, staff.partner, "acct-1", reason_code="SUS_FAN_OUT")
    response = client.post(f"/v1/cases/{r['case_id']}/transitions", json={"event": "escalate"},
                           headers=auth(staff.auditor))
    assert response.status_code == 403, response.text


def test_agent_cannot_report_a_suspicious_activity_case(client: TestClient, staff: Staff) -> None:
    """Reporting to the authorities is the MLRO's (compliance) decision (DESIGN.md, playbook 2)."""
    r = freeze(client, staff.partner, "acct-1", reason_code="SUS_FAN_OUT")
    move(client, staff.investigator, r["case_id"], "escalate")
    response = client.post(f"/v1/cases/{r['case_id']}/transitions", json={"event": "report"},
                           headers=auth(staff.agent))
    assert response.status_code == 403, response.text


def test_case_cannot_be_resolved_while_its_restriction_is_active(client: TestClient, staff: Staff) -> None:
    r = freeze(client, staff.partner, "acct-1", reason_code="REG_SANCTIONS_MATCH", legal_basis="OFAC SDN")
    response = client.post(f"/v1/cases/{r['case_id']}/transitions", json={"event": "resolve"},
                           headers=auth(staff.agent))
    still_blocked = not allowed(client, staff.partner, "acct-1", "withdraw")
    view = inquiry(client, staff.partner, r["inquiry_number"])
    assert still_blocked
    assert response.status_code == 409, (response.status_code, view["status"])


def test_make_permanent_audits_the_case_transition(client: TestClient, staff: Staff, store: Store) -> None:
    r = freeze(client, staff.partner, "acct-1", reason_code="REG_COURT_ORDER", legal_basis="Order 2026-17")
    move(client, staff.compliance, r["case_id"], "review")
    made = client.post(f"/v1/restrictions/{r['id']}/permanent", headers=auth(staff.compliance),
                       json={"disposition": "held", "note": "per court order"})
    assert made.status_code == 200, made.text
    case = client.get(f"/v1/cases/{r['case_id']}", headers=auth(staff.partner)).json()
    assert case["state"] == "closed"
    with store.read() as uow:
        audited = [json.loads(row.data) for row in uow.conn.execute(
            select(audit_log.c.data).where(audit_log.c.entity_id == r["case_id"],
                                           audit_log.c.action == "case.transition"))]
    assert {"event": "make_permanent", "from": "under_review", "to": "closed"} in audited, audited


# -- screening decisions -----------------------------------------------------------------------


@pytest.fixture
def loaded(db_url: str, store: Store, staff: Staff, tmp_path: Path) -> Iterator[TestClient]:
    entities = [
        {"id": "p-1", "schema": "Person", "target": True,
         "properties": {"name": ["Viktor Aleksandrovich Petrenko"], "birthDate": ["1961-04-12"],
                        "nationality": ["ru"], "topics": ["sanction"]}},
        {"id": "wallet-1", "schema": "CryptoWallet", "target": False,
         "properties": {"publicKey": [LISTED_WALLET], "currency": ["ETH"], "holder": ["p-1"]}},
    ]
    path = tmp_path / "list.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entities) + "\n")
    ScreeningService(store, load_catalogue()).load_lists([f"ftm@test:{path}"], Actor("test"))
    with api_client(db_url) as client:
        yield client


def test_confirming_a_hit_freezes_even_if_its_first_restriction_was_lifted(loaded: TestClient, staff: Staff) -> None:
    frozen = loaded.post("/v1/screening/addresses", headers=auth(staff.partner),
                         json={"account_id": "acct-9", "addresses": [{"address": LISTED_WALLET, "currency": "ETH"}]})
    assert frozen.status_code == 200, frozen.text
    hit = frozen.json()["results"][0]["hits"][0]
    lift = loaded.post(f"/v1/restrictions/{hit['restriction_id']}/lift", headers=auth(staff.compliance),
                       json={"reason": "court released the funds", "legal_reference": "Order 7"})
    assert lift.status_code == 202
    assert loaded.post(f"/v1/restrictions/{hit['restriction_id']}/approvals",
                       headers=auth(staff.compliance2)).status_code == 200
    assert allowed(loaded, staff.partner, "acct-9", "withdraw")
    confirmed = loaded.post(f"/v1/screening/hits/{hit['id']}/confirm", headers=auth(staff.compliance),
                            json={"note": "same wallet, true match"})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    # a confirmed true match: "the account is fully frozen"
    assert not allowed(loaded, staff.partner, "acct-9", "withdraw")
