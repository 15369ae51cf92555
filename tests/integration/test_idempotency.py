"""Idempotency-Key on every POST: same key + same body → same response; different body → 422."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from freezedesk.store.tables import restrictions
from freezedesk.store.uow import Store
from tests.factories import Staff, auth, make_key


def count_restrictions(store: Store) -> int:
    with store.read() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(restrictions)).scalar_one())


def test_replay_returns_the_first_response_and_writes_once(client: TestClient, staff: Staff, store: Store) -> None:
    headers = {**auth(staff.partner), "Idempotency-Key": "freeze-acct-1-001"}
    body = {"reason_code": "SEC_MALWARE"}
    first = client.post("/v1/accounts/acct-1/restrictions", json=body, headers=headers)
    second = client.post("/v1/accounts/acct-1/restrictions", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert count_restrictions(store) == 1


def test_same_key_different_body_is_rejected(client: TestClient, staff: Staff, store: Store) -> None:
    headers = {**auth(staff.partner), "Idempotency-Key": "k-2"}
    assert client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "SEC_MALWARE"},
                       headers=headers).status_code == 201
    other = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "SEC_PHISHING"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    other_path = client.post("/v1/accounts/acct-2/restrictions", json={"reason_code": "SEC_MALWARE"},
                             headers=headers)
    assert other_path.json()["type"] == "/problems/idempotency-key-reused"
    assert count_restrictions(store) == 1


def test_keys_are_scoped_per_api_key(client: TestClient, staff: Staff, store: Store) -> None:
    other_partner = make_key(store, name="second partner")
    body = {"reason_code": "SEC_MALWARE"}
    a = client.post("/v1/accounts/acct-1/restrictions", json=body,
                    headers={**auth(staff.partner), "Idempotency-Key": "shared"})
    b = client.post("/v1/accounts/acct-1/restrictions", json=body,
                    headers={**auth(other_partner), "Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]  # no response of one client is replayed to another


def test_errors_are_replayed_too_and_lifts_are_idempotent(client: TestClient, staff: Staff, store: Store) -> None:
    rid = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "SUS_FAN_IN"},
                      headers=auth(staff.partner)).json()["id"]
    headers = {**auth(staff.investigator), "Idempotency-Key": "lift-1"}
    first = client.post(f"/v1/restrictions/{rid}/lift", json={"reason": "ok"}, headers=headers)
    again = client.post(f"/v1/restrictions/{rid}/lift", json={"reason": "ok"}, headers=headers)
    assert first.status_code == again.status_code == 202  # not a 409 "already requested"
    assert first.json() == again.json()
    bad = {**auth(staff.partner), "Idempotency-Key": "bad-1"}
    e1 = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "NOPE"}, headers=bad)
    e2 = client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "NOPE"}, headers=bad)
    assert e1.status_code == e2.status_code == 422 and e1.json() == e2.json()
    assert e2.headers["content-type"].startswith("application/problem+json")


def test_keys_are_forgotten_after_their_retention(client: TestClient, staff: Staff, store: Store) -> None:
    from datetime import timedelta

    from freezedesk.store.uow import forget_idempotency_keys

    headers = {**auth(staff.partner), "Idempotency-Key": "old"}
    body = {"reason_code": "SEC_MALWARE"}
    first = client.post("/v1/accounts/acct-1/restrictions", json=body, headers=headers)
    assert forget_idempotency_keys(store, older_than=timedelta(hours=24)) == 0  # still fresh
    assert forget_idempotency_keys(store, older_than=timedelta(seconds=0)) == 1
    later = client.post("/v1/accounts/acct-1/restrictions", json=body, headers=headers)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
