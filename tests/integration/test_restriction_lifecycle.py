"""Freeze → denied → lift (with the approvals the reason needs) → allowed, through the HTTP API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import Staff, auth


def freeze(client: TestClient, key: str, account: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/accounts/{account}/restrictions", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def check(client: TestClient, key: str, account: str, action: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/accounts/{account}/permissions", params={"action": action, **params},
                          headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_freeze_check_lift_check(client: TestClient, staff: Staff) -> None:
    assert check(client, staff.partner, "acct-1", "withdraw")["allowed"] is True
    r = freeze(client, staff.partner, "acct-1", reason_code="SEC_ACCOUNT_TAKEOVER")
    assert r["status"] == "active" and r["cause"] == "security"
    assert r["scopes"] == ["api", "login", "withdraw"]
    assert r["case_id"].startswith("case_") and len(r["inquiry_number"]) == 11

    denied = check(client, staff.partner, "acct-1", "withdraw")
    assert denied["allowed"] is False
    assert denied["blocking"] == [{"restriction_id": r["id"], "reason_code": "SEC_ACCOUNT_TAKEOVER",
                                   "cause": "security", "inquiry_number": r["inquiry_number"]}]
    assert check(client, staff.partner, "acct-1", "trade")["allowed"] is True  # outside the scope

    lifted = client.post(f"/v1/restrictions/{r['id']}/lift", json={"reason": "customer re-verified"},
                         headers=auth(staff.security))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["status"] == "lifted" and lifted.json()["approvals_needed"] == 0
    assert check(client, staff.partner, "acct-1", "withdraw")["allowed"] is True
    case = client.get(f"/v1/cases/{r['case_id']}", headers=auth(staff.partner)).json()
    assert case["state"] == "resolved"  # the last restriction of the case was lifted


def test_suspicious_activity_needs_two_distinct_approvers(client: TestClient, staff: Staff) -> None:
    r = freeze(client, staff.partner, "acct-2", reason_code="SUS_STRUCTURING")
    assert r["scopes"] == ["withdraw"]  # withdrawal hold by default
    first = client.post(f"/v1/restrictions/{r['id']}/lift", json={"reason": "explained"},
                        headers=auth(staff.investigator))
    assert first.status_code == 202 and first.json()["approvals_needed"] == 1
    again = client.post(f"/v1/restrictions/{r['id']}/approvals", headers=auth(staff.investigator))
    assert again.status_code == 409 and again.json()["type"] == "/problems/duplicate-approval"
    assert check(client, staff.partner, "acct-2", "withdraw")["allowed"] is False
    second = client.post(f"/v1/restrictions/{r['id']}/approvals", headers=auth(staff.investigator2))
    assert second.status_code == 200 and second.json()["status"] == "lifted"
    assert check(client, staff.partner, "acct-2", "withdraw")["allowed"] is True


def test_regulatory_lift_needs_compliance_legal_reference_and_second_approver(
    client: TestClient, staff: Staff
) -> None:
    r = freeze(client, staff.partner, "acct-3", reason_code="REG_SANCTIONS_MATCH", legal_basis="OFAC SDN")
    assert r["scopes"] == ["api", "deposit", "login", "p2p", "trade", "transfer", "withdraw"]
    url = f"/v1/restrictions/{r['id']}/lift"
    by_investigator = client.post(url, json={"reason": "false positive", "legal_reference": "x"},
                                  headers=auth(staff.investigator))
    assert by_investigator.status_code == 403 and by_investigator.json()["type"] == "/problems/role-not-allowed"
    no_reference = client.post(url, json={"reason": "false positive"}, headers=auth(staff.compliance))
    assert no_reference.status_code == 422
    assert no_reference.json()["type"] == "/problems/legal-reference-required"
    ok = client.post(url, json={"reason": "false positive", "legal_reference": "OFAC FAQ 5"},
                     headers=auth(staff.compliance))
    assert ok.status_code == 202
    assert check(client, staff.partner, "acct-3", "login")["allowed"] is False
    done = client.post(f"/v1/restrictions/{r['id']}/approvals", headers=auth(staff.compliance2))
    assert done.status_code == 200
    assert check(client, staff.partner, "acct-3", "login")["allowed"] is True


def test_lifting_one_restriction_never_lifts_another(client: TestClient, staff: Staff) -> None:
    kyc = freeze(client, staff.partner, "acct-4", reason_code="KYC_DOCUMENT_EXPIRED")
    sec = freeze(client, staff.partner, "acct-4", reason_code="SEC_PHISHING")
    assert kyc["case_id"] != sec["case_id"]  # different causes, different cases
    again = freeze(client, staff.partner, "acct-4", reason_code="KYC_MISMATCH")
    assert again["case_id"] == kyc["case_id"]  # same cause: attached to the open case
    assert again["inquiry_number"] == kyc["inquiry_number"]
    client.post(f"/v1/restrictions/{sec['id']}/lift", json={"reason": "ok"}, headers=auth(staff.security))
    denied = check(client, staff.partner, "acct-4", "withdraw")
    assert denied["allowed"] is False
    assert {b["restriction_id"] for b in denied["blocking"]} == {kyc["id"], again["id"]}
    assert check(client, staff.partner, "acct-4", "login")["allowed"] is True
    listed = client.get("/v1/accounts/acct-4/restrictions", params={"status": "active"},
                        headers=auth(staff.partner)).json()
    assert {i["id"] for i in listed["items"]} == {kyc["id"], again["id"]}
    lifted = client.get("/v1/accounts/acct-4/restrictions", params={"status": "lifted"},
                        headers=auth(staff.partner)).json()
    assert [i["id"] for i in lifted["items"]] == [sec["id"]]


def test_close_only_lets_reducing_trades_through(client: TestClient, staff: Staff) -> None:
    freeze(client, staff.partner, "acct-5", reason_code="POL_PROHIBITED_JURISDICTION", scopes=["close_only"])
    assert check(client, staff.partner, "acct-5", "trade")["allowed"] is False
    assert check(client, staff.partner, "acct-5", "trade", reduce_only="true")["allowed"] is True
    assert check(client, staff.partner, "acct-5", "withdraw")["allowed"] is True
    assert check(client, staff.partner, "acct-5", "deposit")["allowed"] is False
    # a second restriction that blocks all trading wins over close-only
    freeze(client, staff.partner, "acct-5", reason_code="POL_WASH_TRADING", scopes=["trade"])
    assert check(client, staff.partner, "acct-5", "trade", reduce_only="true")["allowed"] is False


def test_expiry_is_honoured_at_check_time(client: TestClient, staff: Staff) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    r = freeze(client, staff.partner, "acct-6", reason_code="SEC_COOLDOWN", expires_at=expires.isoformat())
    assert r["scopes"] == ["withdraw"]
    assert check(client, staff.partner, "acct-6", "withdraw")["allowed"] is False
    time.sleep(1.6)
    assert check(client, staff.partner, "acct-6", "withdraw")["allowed"] is True
    shown = client.get(f"/v1/restrictions/{r['id']}", headers=auth(staff.partner)).json()
    assert shown["status"] == "expired"
    lift = client.post(f"/v1/restrictions/{r['id']}/lift", json={"reason": "x"}, headers=auth(staff.security))
    assert lift.status_code == 409 and lift.json()["type"] == "/problems/restriction-not-active"


def test_batch_check(client: TestClient, staff: Staff) -> None:
    freeze(client, staff.partner, "acct-7", reason_code="SUS_FAN_OUT")
    response = client.post("/v1/permissions/check", headers=auth(staff.partner), json={"checks": [
        {"account_id": "acct-7", "action": "withdraw"},
        {"account_id": "acct-7", "action": "trade"},
        {"account_id": "acct-never-seen", "action": "withdraw"},
    ]})
    assert response.status_code == 200
    assert [r["allowed"] for r in response.json()["results"]] == [False, True, True]


def test_permanent_only_for_regulatory_with_disposition(client: TestClient, staff: Staff) -> None:
    reg = freeze(client, staff.partner, "acct-8", reason_code="REG_COURT_ORDER", legal_basis="Order 2026-17")
    kyc = freeze(client, staff.partner, "acct-8", reason_code="KYC_INCOMPLETE")
    body = {"disposition": "transferred_per_order", "note": "per court order 2026-17"}
    refused = client.post(f"/v1/restrictions/{kyc['id']}/permanent", json=body, headers=auth(staff.compliance))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/permanence-not-allowed"
    made = client.post(f"/v1/restrictions/{reg['id']}/permanent", json=body, headers=auth(staff.compliance))
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "permanent" and made.json()["disposition"] == "transferred_per_order"
    assert check(client, staff.partner, "acct-8", "withdraw")["allowed"] is False
    lift = client.post(f"/v1/restrictions/{reg['id']}/lift", json={"reason": "x", "legal_reference": "y"},
                       headers=auth(staff.compliance))
    assert lift.status_code == 409


def test_playbook_transitions_and_inquiry_view(client: TestClient, staff: Staff) -> None:
    r = freeze(client, staff.partner, "acct-9", reason_code="SUS_PASS_THROUGH")
    case_url = f"/v1/cases/{r['case_id']}/transitions"
    illegal = client.post(case_url, json={"event": "report"}, headers=auth(staff.compliance))
    assert illegal.status_code == 409 and illegal.json()["type"] == "/problems/illegal-transition"
    assert "escalate" in illegal.json()["allowed"]
    for event in ("request_information", "submit", "escalate"):
        moved = client.post(case_url, json={"event": event}, headers=auth(staff.investigator))
        assert moved.status_code == 200, moved.text
    by_investigator = client.post(case_url, json={"event": "report"}, headers=auth(staff.investigator))
    assert by_investigator.status_code == 403  # reporting is the compliance officer's decision
    moved = client.post(case_url, json={"event": "report"}, headers=auth(staff.compliance))
    assert moved.json()["state"] == "reported"
    # what the customer sees: no reason code, no cause, no trace of the report
    inquiry = client.get(f"/v1/inquiries/{r['inquiry_number'].lower()}", params={"locale": "en"},
                         headers=auth(staff.partner)).json()
    assert inquiry["status"] == "in_review" and inquiry["cause"] is None
    assert "reason_code" not in inquiry["restrictions"][0]
    text = str(inquiry).lower()
    for word in ("report", "suspicious", "escalat", "pass_through", "sus_"):
        assert word not in text
    assert {e["status"] for e in inquiry["timeline"]} <= {"received", "action_required", "in_review"}


def test_reason_codes_catalogue(client: TestClient, staff: Staff) -> None:
    items = client.get("/v1/reason-codes", headers=auth(staff.partner)).json()["items"]
    assert len(items) >= 20
    reg = next(i for i in items if i["code"] == "REG_SANCTIONS_MATCH")
    assert reg["lift_policy"] == {"roles": ["compliance"], "approvals": 2, "legal_reference_required": True}
    assert {i["cause"] for i in items} == {"kyc", "suspicious_activity", "security", "regulatory", "policy"}


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/accounts/{account_id}/permissions" in spec["paths"]
    assert "/v1/restrictions/{restriction_id}/lift" in spec["paths"]


def test_account_profile_and_problem_catalogue(client: TestClient, staff: Staff) -> None:
    created = client.put("/v1/accounts/acct-50", json={"locale": "en", "email": "a@example.test"},
                         headers=auth(staff.partner))
    assert created.status_code == 200
    assert created.json() == {"id": "acct-50", "locale": "en", "created": True, "screened": False,
                              "screening_hits": []}
    again = client.put("/v1/accounts/acct-50", json={"locale": "ja"}, headers=auth(staff.partner))
    assert again.json()["locale"] == "ja" and again.json()["created"] is False
    assert client.get("/v1/accounts/acct-50/restrictions", headers=auth(staff.partner)).json()["items"] == []
    bad = client.put("/v1/accounts/acct-50", json={"locale": "fr"}, headers=auth(staff.partner))
    assert bad.status_code == 422
    types = {p["type"] for p in client.get("/problems").json()["items"]}
    assert {"/problems/duplicate-approval", "/problems/idempotency-key-reused", "/problems/invalid-webhook"} <= types
    assert client.get("/problems/duplicate-approval").json()["title"]
