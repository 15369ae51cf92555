"""Webhooks from the outbox, delivered to a real local HTTP receiver."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from freezedesk.notify.destinations import DestinationPolicy
from freezedesk.notify.secretbox import SecretBox
from freezedesk.notify.webhooks import WebhookDispatcher, verify_signature
from freezedesk.services import restrictions as restriction_service
from freezedesk.store.tables import audit_log, idempotency_keys, webhook_deliveries, webhooks
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth
from tests.integration.conftest import LOCAL_RECEIVERS
from tests.receiver import Receiver


def subscribe(client: TestClient, key: str, url: str, events: list[str]) -> str:
    response = client.post("/v1/webhooks", json={"url": url, "events": events}, headers=auth(key))
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    return str(secret)


def stored_text(store: Store) -> str:
    """Everything the database keeps about webhooks, their stored responses and their audit."""
    with store.read() as uow:
        rows = [*uow.conn.execute(select(webhooks)), *uow.conn.execute(select(idempotency_keys)),
                *uow.conn.execute(select(audit_log))]
    return "\n".join(repr(tuple(r)) for r in rows)


def test_lifecycle_events_are_signed_and_delivered(hooked: TestClient, staff: Staff, receiver: Receiver,
                                                   store: Store) -> None:
    secret = subscribe(hooked, staff.partner, receiver.url, ["*"])
    with store.read() as uow:
        sealed = uow.conn.execute(select(webhooks.c.secret)).scalar_one()
    assert sealed.startswith("fdenc:v1:") and secret not in sealed
    assert secret not in stored_text(store) and secret.removeprefix("whsec_") not in stored_text(store)
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


def test_failing_receiver_gets_retries_with_backoff(db_url: str, staff: Staff, store: Store, secret_key: str) -> None:
    flaky = Receiver(fail_first=2)
    try:
        with api_client(db_url, webhook_base_delay=0.2, secret_key=secret_key,
                        webhook_allow_hosts=LOCAL_RECEIVERS) as client:
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


def test_delivery_survives_a_restart(db_url: str, staff: Staff, store: Store, secret_key: str) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hooks"  # nobody listens yet: connection refused
    with api_client(db_url, webhook_base_delay=0.1, secret_key=secret_key,
                    webhook_allow_hosts=LOCAL_RECEIVERS) as client:
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
        dispatcher = WebhookDispatcher(Store(db_url), box=SecretBox.from_settings(secret_key),
                                       policy=DestinationPolicy(LOCAL_RECEIVERS), base_delay=0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not receiver.received:
            dispatcher.run_once()
            time.sleep(0.1)
        dispatcher.stop()
        assert len(receiver.received) == 1
        assert receiver.received[0].json["type"] == "restriction.created"
    finally:
        receiver.close()
