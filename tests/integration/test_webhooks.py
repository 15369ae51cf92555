"""Webhooks from the outbox, delivered to a real local HTTP receiver."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from freezedesk.notify.webhooks import WebhookDispatcher, verify_signature
from freezedesk.services import restrictions as restriction_service
from freezedesk.store.tables import webhook_deliveries
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth
from tests.receiver import Receiver


def subscribe(client: TestClient, key: str, url: str, events: list[str]) -> str:
    response = client.post("/v1/webhooks", json={"url": url, "events": events}, headers=auth(key))
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    return str(secret)


def test_lifecycle_events_are_signed_and_delivered(hooked: TestClient, staff: Staff, receiver: Receiver) -> None:
    secret = subscribe(hooked, staff.partner, receiver.url, ["*"])
    rid = hooked.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "SUS_HIGH_VOLUME"},
                      headers=auth(staff.partner)).json()["id"]
    hooked.post(f"/v1/restrictions/{rid}/lift", json={"reason": "fine"}, headers=auth(staff.investigator))
    hooked.post(f"/v1/restrictions/{rid}/approvals", headers=auth(staff.investigator2))
    got = receiver.wait_for(3)
    assert [g.json["type"] for g in got] == [
        "restriction.created", "restriction.approval_required", "restriction.lifted"]
    for g in got:
        assert verify_signature(secret, g.headers["freezedesk-signature"], g.body)
        assert not verify_signature("whsec_wrong", g.headers["freezedesk-signature"], g.body)
        assert g.headers["freezedesk-event-id"] == g.json["id"]
        assert g.json["data"]["id"] == rid
    assert got[1].json["data"]["approvals_needed"] == 1
    assert len({g.json["id"] for g in got}) == 3


def test_expiry_is_announced(hooked: TestClient, staff: Staff, receiver: Receiver, store: Store) -> None:
    subscribe(hooked, staff.partner, receiver.url, ["restriction.expired"])
    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    rid = hooked.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "SEC_COOLDOWN", "expires_at": expires},
                      headers=auth(staff.partner)).json()["id"]
    time.sleep(1.1)
    assert restriction_service.expire_due(store) == 1
    assert restriction_service.expire_due(store) == 0  # announced once
    got = receiver.wait_for(1)
    assert [g.json["type"] for g in got] == ["restriction.expired"]
    assert got[0].json["data"]["id"] == rid and got[0].json["data"]["status"] == "expired"


def test_failing_receiver_gets_retries_with_backoff(db_url: str, staff: Staff, store: Store) -> None:
    flaky = Receiver(fail_first=2)
    try:
        with api_client(db_url, webhook_base_delay=0.2) as client:
            subscribe(client, staff.partner, flaky.url, ["restriction.created"])
            client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                        headers=auth(staff.partner))
            got = flaky.wait_for(1, timeout=15)
        assert len(got) == 1 and flaky.attempts == 3
        with store.read() as uow:
            row = uow.conn.execute(select(webhook_deliveries)).one()
        assert row.status == "delivered" and row.attempts == 3
    finally:
        flaky.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_delivery_survives_a_restart(db_url: str, staff: Staff, store: Store) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hooks"  # nobody listens yet: connection refused
    with api_client(db_url, webhook_base_delay=0.1) as client:
        subscribe(client, staff.partner, url, ["restriction.created"])
        client.post("/v1/accounts/acct-1/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                    headers=auth(staff.partner))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with store.read() as uow:
                attempts = uow.conn.execute(select(webhook_deliveries.c.attempts)).scalar_one()
            if attempts >= 1:
                break
            time.sleep(0.05)
        assert attempts >= 1
    # the process is gone; a new one starts and the receiver is now up
    receiver = Receiver(port=port)
    try:
        dispatcher = WebhookDispatcher(Store(db_url), base_delay=0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not receiver.received:
            dispatcher.run_once()
            time.sleep(0.1)
        dispatcher.stop()
        assert len(receiver.received) == 1
        assert receiver.received[0].json["type"] == "restriction.created"
    finally:
        receiver.close()
