"""Every kind of bad input gets a clear problem+json and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from freezedesk.services.api_keys import list_keys, revoke_key
from freezedesk.store.tables import audit_log, cases, lift_approvals, outbox, restrictions
from freezedesk.store.uow import Store
from tests.factories import Staff, auth, make_key


def snapshot(store: Store) -> dict[str, int]:
    with store.read() as uow:
        return {t.name: uow.conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (restrictions, cases, lift_approvals, outbox, audit_log)}


def assert_problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    assert body["title"] and body["detail"]
    return body


def future(hours: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


FREEZE = "/v1/accounts/acct-1/restrictions"


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"reason_code": "NOT_A_REASON"}, 422, "unknown-reason-code"),
        ({"reason_code": "KYC_INCOMPLETE", "scopes": ["withdraw", "teleport"]}, 422, "unknown-scope"),
        ({"reason_code": "KYC_INCOMPLETE", "scopes": []}, 422, "unknown-scope"),
        ({"reason_code": "KYC_INCOMPLETE", "expires_at": "2020-01-01T00:00:00Z"}, 422, "invalid-expiry"),
        ({"reason_code": "KYC_INCOMPLETE", "expires_at": "2099-01-01T00:00:00"}, 422, "validation-error"),
        ({"reason_code": "KYC_INCOMPLETE", "surprise": 1}, 422, "validation-error"),
        ({}, 422, "validation-error"),
        ({"reason_code": "KYC_INCOMPLETE", "note": "x" * 5000}, 422, "validation-error"),
    ],
)
def test_bad_freeze_bodies(client: TestClient, staff: Staff, store: Store,
                           body: dict[str, Any], status: int, slug: str) -> None:
    before = snapshot(store)
    assert_problem(client.post(FREEZE, json=body, headers=auth(staff.partner)), status, slug)
    assert snapshot(store) == before


def test_malformed_json_and_oversized_body(client: TestClient, staff: Staff, store: Store) -> None:
    before = snapshot(store)
    headers = {**auth(staff.partner), "content-type": "application/json"}
    assert_problem(client.post(FREEZE, content=b'{"reason_code": ', headers=headers), 400, "malformed-json")
    huge = b'{"reason_code": "KYC_INCOMPLETE", "note": "' + b"x" * 70_000 + b'"}'
    assert_problem(client.post(FREEZE, content=huge, headers=headers), 413, "payload-too-large")

    def chunks() -> Any:  # no Content-Length: the limit still holds while streaming
        for _ in range(100):
            yield b"x" * 1024

    assert_problem(client.post(FREEZE, content=chunks(), headers=headers), 413, "payload-too-large")
    assert snapshot(store) == before


def test_bad_account_id_in_path(client: TestClient, staff: Staff, store: Store) -> None:
    before = snapshot(store)
    response = client.post("/v1/accounts/%20drop%20table/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                           headers=auth(staff.partner))
    assert_problem(response, 422, "validation-error")
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("headers", "slug"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": "Bearer fd_not_a_real_key"}, "invalid-api-key"),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, "unauthenticated"),
    ],
)
def test_missing_or_invalid_key(client: TestClient, store: Store, headers: dict[str, str], slug: str) -> None:
    before = snapshot(store)
    for method, url in [("POST", FREEZE), ("GET", "/v1/accounts/acct-1/permissions?action=withdraw"),
                        ("GET", "/v1/reason-codes")]:
        response = client.request(method, url, json={"reason_code": "KYC_INCOMPLETE"}, headers=headers)
        assert_problem(response, 401, slug)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert snapshot(store) == before


def test_revoked_key_is_refused(client: TestClient, store: Store) -> None:
    key = make_key(store, name="soon revoked")
    assert client.get("/v1/reason-codes", headers=auth(key)).status_code == 200
    key_id = next(k["id"] for k in list_keys(store) if k["name"] == "soon revoked")
    revoke_key(store, key_id)  # as `freezedesk api-keys revoke` does, through the database
    # the follower sees the audited revocation and empties the cache within its poll interval
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    status = 200
    while datetime.now(UTC) < deadline:
        status = client.get("/v1/reason-codes", headers=auth(key)).status_code
        if status == 401:
            break
    assert status == 401


def test_key_without_scope(client: TestClient, store: Store) -> None:
    reader = make_key(store, scopes=["permissions:read"])
    before = snapshot(store)
    body = assert_problem(client.post(FREEZE, json={"reason_code": "KYC_INCOMPLETE"}, headers=auth(reader)),
                          403, "insufficient-scope")
    assert body["required_scope"] == "restrictions:write"
    assert client.get("/v1/accounts/acct-1/permissions?action=login", headers=auth(reader)).status_code == 200
    assert snapshot(store) == before


def _frozen(client: TestClient, key: str, reason: str = "SUS_HIGH_VOLUME", account: str = "acct-1") -> str:
    response = client.post(f"/v1/accounts/{account}/restrictions", json={"reason_code": reason}, headers=auth(key))
    assert response.status_code == 201
    return str(response.json()["id"])


def test_lift_needs_a_staff_key(client: TestClient, staff: Staff, store: Store) -> None:
    rid = _frozen(client, staff.partner, "KYC_INCOMPLETE")
    before = snapshot(store)
    assert_problem(client.post(f"/v1/restrictions/{rid}/lift", json={"reason": "x"}, headers=auth(staff.partner)),
                   403, "staff-key-required")
    assert_problem(client.post(f"/v1/restrictions/{rid}/lift", json={"reason": "x"}, headers=auth(staff.auditor)),
                   403, "role-not-allowed")
    assert snapshot(store) == before


def test_same_approver_twice_and_lift_of_lifted(client: TestClient, staff: Staff, store: Store) -> None:
    rid = _frozen(client, staff.partner)
    url = f"/v1/restrictions/{rid}"
    assert client.post(f"{url}/lift", json={"reason": "ok"}, headers=auth(staff.investigator)).status_code == 202
    before = snapshot(store)
    assert_problem(client.post(f"{url}/approvals", headers=auth(staff.investigator)), 409, "duplicate-approval")
    assert_problem(client.post(f"{url}/lift", json={"reason": "again"}, headers=auth(staff.investigator2)),
                   409, "lift-already-requested")
    assert snapshot(store) == before
    assert client.post(f"{url}/approvals", headers=auth(staff.investigator2)).status_code == 200
    before = snapshot(store)
    assert_problem(client.post(f"{url}/lift", json={"reason": "again"}, headers=auth(staff.investigator)),
                   409, "restriction-not-active")
    assert_problem(client.post(f"{url}/approvals", headers=auth(staff.compliance)), 409, "restriction-not-active")
    assert snapshot(store) == before


def test_approval_without_request(client: TestClient, staff: Staff, store: Store) -> None:
    rid = _frozen(client, staff.partner)
    before = snapshot(store)
    assert_problem(client.post(f"/v1/restrictions/{rid}/approvals", headers=auth(staff.investigator)),
                   409, "no-pending-lift")
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("method", "url", "slug"),
    [
        ("GET", "/v1/restrictions/rst_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "not-found"),
        ("POST", "/v1/restrictions/rst_01ZZZZZZZZZZZZZZZZZZZZZZZZ/lift", "not-found"),
        ("GET", "/v1/accounts/nobody/restrictions", "not-found"),
        ("GET", "/v1/cases/case_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "not-found"),
        ("GET", "/v1/inquiries/2222-2222-2", "not-found"),
        ("GET", "/v1/nowhere", "not-found"),
    ],
)
def test_unknown_ids(client: TestClient, staff: Staff, store: Store, method: str, url: str, slug: str) -> None:
    before = snapshot(store)
    response = client.request(method, url, json={"reason": "x"}, headers=auth(staff.compliance))
    assert_problem(response, 404, slug)
    assert snapshot(store) == before


def test_inquiry_number_with_typo(client: TestClient, staff: Staff) -> None:
    assert_problem(client.get("/v1/inquiries/2222-2222-3", headers=auth(staff.partner)), 422,
                   "invalid-inquiry-number")
    body = assert_problem(client.get("/v1/inquiries/O222-2222-2", headers=auth(staff.partner)), 422,
                          "invalid-inquiry-number")
    assert "'O'" in body["detail"]


def test_illegal_playbook_transition(client: TestClient, staff: Staff, store: Store) -> None:
    response = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                           headers=auth(staff.partner))
    case_id = response.json()["case_id"]
    before = snapshot(store)
    body = assert_problem(client.post(f"/v1/cases/{case_id}/transitions", json={"event": "accept_all"},
                                      headers=auth(staff.agent)), 409, "illegal-transition")
    assert body["state"] == "opened" and "request_documents" in body["allowed"]
    assert client.get(f"/v1/cases/{case_id}", headers=auth(staff.agent)).json()["state"] == "opened"
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("params", "slug"),
    [({"action": "fly"}, "unknown-scope"), ({}, "validation-error"),
     ({"action": "trade", "reduce_only": "maybe"}, "validation-error")],
)
def test_bad_permission_queries(client: TestClient, staff: Staff, params: dict[str, str], slug: str) -> None:
    response = client.get("/v1/accounts/acct-1/permissions", params=params, headers=auth(staff.partner))
    assert_problem(response, 422, slug)
    bad_account = client.get("/v1/accounts/%20x%3B/permissions", params={"action": "login"},
                             headers=auth(staff.partner))
    assert assert_problem(bad_account, 422, "validation-error")["errors"][0]["field"] == "path.account_id"


def test_batch_check_is_all_or_nothing(client: TestClient, staff: Staff) -> None:
    checks = [{"account_id": "acct-1", "action": "withdraw"}, {"account_id": "acct-1", "action": "fly"}]
    assert_problem(client.post("/v1/permissions/check", json={"checks": checks}, headers=auth(staff.partner)),
                   422, "unknown-scope")
    many = [{"account_id": "a", "action": "login"}] * 1001
    assert_problem(client.post("/v1/permissions/check", json={"checks": many}, headers=auth(staff.partner)),
                   422, "validation-error")


@pytest.mark.parametrize(
    "body",
    [{"url": "ftp://example.test/x", "events": ["restriction.created"]},
     {"url": "http://127.0.0.1:9/x", "events": ["restriction.exploded"]},
     {"url": "http://127.0.0.1:9/x", "events": []}],
)
def test_bad_webhooks(client: TestClient, staff: Staff, store: Store, body: dict[str, Any]) -> None:
    before = snapshot(store)
    response = client.post("/v1/webhooks", json=body, headers=auth(staff.partner))
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert snapshot(store) == before


def test_error_bodies_never_leak_internals(client: TestClient, staff: Staff) -> None:
    checks: list[Callable[[], Response]] = [
        lambda: client.get("/v1/restrictions/' OR 1=1 --", headers=auth(staff.partner)),
        lambda: client.post(FREEZE, content=b"\xff\xfe", headers={**auth(staff.partner),
                                                                  "content-type": "application/json"}),
    ]
    for call in checks:
        response = call()
        assert 400 <= response.status_code < 500
        assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()


def test_write_flood_is_rate_limited(db_url: str, staff: Staff, store: Store) -> None:
    from tests.factories import api_client

    with api_client(db_url, write_rate_per_second=0.5, write_burst=2) as limited:
        codes = [limited.post(FREEZE, json={"reason_code": "KYC_INCOMPLETE"}, headers=auth(staff.partner)).status_code
                 for _ in range(3)]
        assert codes == [201, 201, 429]
        before = snapshot(store)
        response = limited.post(FREEZE, json={"reason_code": "KYC_INCOMPLETE"}, headers=auth(staff.partner))
        body = assert_problem(response, 429, "rate-limited")
        assert int(response.headers["retry-after"]) >= 1 and "retry" in body["detail"]
        assert snapshot(store) == before
        # another client is not affected, and reads are never limited
        assert limited.post(FREEZE, json={"reason_code": "KYC_INCOMPLETE"},
                            headers=auth(staff.compliance)).status_code == 201
        read = limited.get("/v1/accounts/acct-1/permissions?action=login", headers=auth(staff.partner))
        assert read.status_code == 200
