"""Webhook security: destinations are checked (SSRF) at registration and at delivery, and signing
secrets are sealed at rest (the webhooks table and the stored idempotent responses), on SQLite and
PostgreSQL. Deliveries go to a real local HTTP receiver; DNS answers come from ``fake_dns``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

from freezedesk.notify.destinations import DestinationPolicy
from freezedesk.notify.secretbox import SecretBox, SecretKeyError, key_id, parse_key, sealed_key_id
from freezedesk.notify.webhooks import WebhookDispatcher, verify_signature
from freezedesk.runtime import Runtime, Settings
from freezedesk.services.api_keys import create_key
from freezedesk.store.tables import audit_log, idempotency_keys, webhook_deliveries, webhooks
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth
from tests.integration.conftest import LOCAL_RECEIVERS
from tests.receiver import Receiver

PUBLIC_IP = "93.184.215.14"
OTHER_KEY = "11" * 32


def counts(store: Store) -> dict[str, int]:
    with store.read() as uow:
        return {t.name: int(uow.conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (webhooks, audit_log, idempotency_keys, webhook_deliveries)}


def stored_text(store: Store) -> str:
    with store.read() as uow:
        rows = [*uow.conn.execute(select(webhooks)), *uow.conn.execute(select(idempotency_keys)),
                *uow.conn.execute(select(audit_log))]
    return "\n".join(repr(tuple(r)) for r in rows)


def register(client: TestClient, key: str, url: str, **headers: str) -> Any:
    return client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers={**auth(key), **headers})


def freeze(client: TestClient, key: str, account: str = "acct-1") -> None:
    response = client.post(f"/v1/accounts/{account}/restrictions", json={"reason_code": "KYC_INCOMPLETE"},
                           headers=auth(key))
    assert response.status_code == 201, response.text


def deliveries(store: Store) -> list[Any]:
    with store.read() as uow:
        return list(uow.conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)))


@contextmanager
def runtime_only(db_url: str, store: Store, **settings: Any) -> Iterator[Runtime]:
    """Build a server's runtime (what start-up does before serving), without serving."""
    rt = Runtime(Settings(database_url=db_url, background=False, **settings), store=store)
    try:
        yield rt
    finally:
        rt.dispatcher.stop()


# -- SSRF: registration -------------------------------------------------------------------------

FORBIDDEN = [
    ("ftp://hooks.partner.example/x", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme"),
    ("https://user:pw@hooks.partner.example/x", "credentials"),
    ("https://token@hooks.partner.example/x", "credentials"),
    ("http://127.0.0.1:8000/x", "loopback"),
    ("http://127.1/x", "loopback"),
    ("http://2130706433/x", "loopback"),
    ("http://0x7f.1/x", "loopback"),
    ("http://localhost:8000/x", "loopback"),
    ("http://[::1]/x", "loopback"),
    ("http://[::ffff:7f00:1]/x", "loopback"),
    ("http://10.0.0.5/x", "private"),
    ("http://192.168.1.1/x", "private"),
    ("http://172.16.3.4/x", "private"),
    ("http://[fc00::1]/x", "private"),
    ("http://[fd12:3456::1]/x", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://[::ffff:169.254.169.254]/x", "link-local"),
    ("http://0.0.0.0:8000/x", "unspecified"),
    ("http://[::]/x", "unspecified"),
    ("http://224.0.0.1/x", "multicast"),
    ("http://[ff02::1]/x", "multicast"),
    ("http://240.0.0.1/x", "reserved"),
    ("http://100.64.0.1/x", "non-global"),
    ("http://internal.partner.example/x", "private"),
    ("http://metadata.partner.example/x", "link-local"),
    ("https://mixed.partner.example/x", "private"),  # one public and one internal answer
]


def test_registration_refuses_every_forbidden_destination_and_writes_nothing(
        client: TestClient, staff: Staff, store: Store, fake_dns: dict[str, list[str]]) -> None:
    fake_dns.update({"localhost": ["127.0.0.1", "::1"], "internal.partner.example": ["10.20.0.7"],
                     "metadata.partner.example": ["169.254.169.254"],
                     "mixed.partner.example": [PUBLIC_IP, "fd00::5"], "hooks.partner.example": [PUBLIC_IP]})
    before = counts(store)
    for url, reason in FORBIDDEN:
        response = register(client, staff.partner, url)
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "/problems/webhook-url-forbidden", (url, problem)
        assert (problem["reason"], problem["field"]) == (reason, "url"), (url, problem)
        assert problem["detail"], url
        assert counts(store) == before, url
    assert client.get("/problems/webhook-url-forbidden").status_code == 200


def test_public_destinations_are_accepted(client: TestClient, staff: Staff, store: Store,
                                          fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.partner.example"] = [PUBLIC_IP, "2606:4700::1111"]
    for url in ("https://hooks.partner.example/freezedesk", f"http://{PUBLIC_IP}:8443/x",
                "https://[2606:4700::1111]/x",
                # does not resolve yet: accepted, every delivery checks again
                "https://not-yet.partner.example/x"):
        response = register(client, staff.partner, url)
        assert response.status_code == 201, (url, response.text)
    assert counts(store)["webhooks"] == 4


# -- SSRF: delivery -----------------------------------------------------------------------------


def test_a_host_re_pointed_at_an_internal_address_is_not_contacted(
        db_url: str, staff: Staff, store: Store, secret_key: str, receiver: Receiver,
        fake_dns: dict[str, list[str]]) -> None:
    port = receiver.server.server_address[1]
    fake_dns["hooks.partner.example"] = [PUBLIC_IP]
    with api_client(db_url, secret_key=secret_key, background=False) as client:  # default policy
        assert register(client, staff.partner, f"http://hooks.partner.example:{port}/hooks").status_code == 201
        fake_dns["hooks.partner.example"] = ["127.0.0.1"]  # DNS changed after registration
        # and a row that never went through registration (an earlier version, a manual insert)
        legacy_secret = "whsec_legacy"
        with store.unit_of_work() as uow:
            uow.conn.execute(insert(webhooks).values(
                id="whk_legacy", url=receiver.url, events="*", created_at=datetime.now(UTC),
                created_by="test", active=True,
                secret=SecretBox.from_settings(secret_key).seal(  # type: ignore[union-attr]
                    legacy_secret, "webhook-secret:whk_legacy")))
        freeze(client, staff.partner)
        dispatcher: WebhookDispatcher = client.app.state.runtime.dispatcher  # type: ignore[attr-defined]
        assert dispatcher.run_once() == 0
    assert receiver.attempts == 0 and receiver.received == []
    rows = deliveries(store)
    assert len(rows) == 2
    for row in rows:
        assert row.status == "pending" and row.attempts == 1 and row.delivered_at is None
        assert row.last_error.startswith("refused, not sent: url host "), row.last_error
        assert "127.0.0.1" in row.last_error and "loopback" in row.last_error
    assert any("hooks.partner.example" in row.last_error for row in rows)


def test_an_allowlisted_internal_name_is_delivered_end_to_end(
        db_url: str, staff: Staff, store: Store, secret_key: str, receiver: Receiver,
        fake_dns: dict[str, list[str]]) -> None:
    """The operator allows one name; it resolves to loopback and is reached (at the checked address,
    with its own Host header); the same address by another name or literally is still refused."""
    port = receiver.server.server_address[1]
    fake_dns.update({"receiver.internal": ["127.0.0.1"], "other.internal": ["127.0.0.1"]})
    with api_client(db_url, secret_key=secret_key, background=False,
                    webhook_allow_hosts=("Receiver.Internal",)) as client:
        created = register(client, staff.partner, f"http://receiver.internal:{port}/hooks")
        assert created.status_code == 201, created.text
        for refused in (f"http://127.0.0.1:{port}/hooks", f"http://other.internal:{port}/hooks"):
            assert register(client, staff.partner, refused).json()["reason"] == "loopback"
        freeze(client, staff.partner)
        assert client.app.state.runtime.dispatcher.run_once() == 1  # type: ignore[attr-defined]
    got = receiver.wait_for(1)
    assert len(got) == 1 and got[0].headers["host"] == f"receiver.internal:{port}"
    assert verify_signature(created.json()["secret"], got[0].headers["freezedesk-signature"], got[0].body)
    assert deliveries(store)[0].status == "delivered"


# -- secrets at rest ----------------------------------------------------------------------------


def test_idempotent_replay_returns_the_same_secret_from_a_sealed_record(
        client: TestClient, staff: Staff, store: Store, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.partner.example"] = [PUBLIC_IP]
    url = "https://hooks.partner.example/x"
    first = register(client, staff.partner, url, **{"Idempotency-Key": "hook-1"})
    again = register(client, staff.partner, url, **{"Idempotency-Key": "hook-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    with store.read() as uow:
        stored = uow.conn.execute(select(idempotency_keys.c.response_body)).scalar_one()
        hooks = uow.conn.execute(select(webhooks.c.id, webhooks.c.secret)).all()
    assert len(hooks) == 1 and stored.startswith("fdenc:v1:")
    assert secret not in stored_text(store) and secret.removeprefix("whsec_") not in stored_text(store)
    # the two sealed copies of the secret share no bytes: random nonces, per-record bindings
    assert stored.split(":")[3][:16] != hooks[0].secret.split(":")[3][:16]


def test_a_sealed_response_moved_to_another_record_is_not_replayed(
        client: TestClient, staff: Staff, store: Store, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.partner.example"] = [PUBLIC_IP]
    url = "https://hooks.partner.example/x"
    assert register(client, staff.partner, url, **{"Idempotency-Key": "a"}).status_code == 201
    assert register(client, staff.partner, url, **{"Idempotency-Key": "b"}).status_code == 201
    with store.unit_of_work() as uow:
        sealed_a = uow.conn.execute(select(idempotency_keys.c.response_body)
                                    .where(idempotency_keys.c.key == "a")).scalar_one()
        uow.conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == "b")
                         .values(response_body=sealed_a))
    replay = register(client, staff.partner, url, **{"Idempotency-Key": "b"})
    assert replay.status_code == 503 and replay.json()["type"] == "/problems/webhook-secrets-unavailable"
    assert "whsec_" not in replay.text


def test_without_a_key_registration_is_refused_and_writes_nothing(
        db_url: str, staff: Staff, store: Store, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.partner.example"] = [PUBLIC_IP]
    before = counts(store)
    with api_client(db_url, secret_key=None, background=False) as client:
        response = register(client, staff.partner, "https://hooks.partner.example/x", **{"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/webhook-secrets-unavailable"
    assert "FREEZEDESK_SECRET_KEY" in response.json()["detail"]
    assert counts(store) == before


def test_start_up_fails_loudly_without_the_key_or_with_another_and_rotates_with_the_previous(
        client: TestClient, staff: Staff, store: Store, db_url: str, secret_key: str,
        fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.partner.example"] = [PUBLIC_IP]
    secret = register(client, staff.partner, "https://hooks.partner.example/x").json()["secret"]
    old_id, new_id = key_id(parse_key(secret_key)), key_id(parse_key(OTHER_KEY))

    with pytest.raises(SecretKeyError, match=r"1 webhook signing secret\(s\) \(1 encrypted\).*FREEZEDESK_SECRET_KEY"):
        Runtime(Settings(database_url=db_url, background=False, secret_key=None), store=store)
    with pytest.raises(SecretKeyError, match=f"key id\\(s\\) {old_id}.*FREEZEDESK_SECRET_KEY_PREVIOUS") as wrong:
        Runtime(Settings(database_url=db_url, background=False, secret_key=OTHER_KEY), store=store)
    assert OTHER_KEY not in str(wrong.value) and secret_key not in str(wrong.value)

    with runtime_only(db_url, store, secret_key=OTHER_KEY, previous_secret_keys=(secret_key,)):
        pass
    with store.read() as uow:
        sealed = uow.conn.execute(select(webhooks.c.id, webhooks.c.secret)).one()
        audited = uow.conn.execute(select(audit_log.c.data).where(
            audit_log.c.action == "webhook.secrets_sealed")).scalar_one()
    assert sealed_key_id(sealed.secret) == new_id
    new_box = SecretBox.from_settings(OTHER_KEY)
    assert new_box is not None and new_box.open(sealed.secret, f"webhook-secret:{sealed.id}") == secret
    assert new_id in str(audited)
    # the old key is no longer needed, and is no longer enough
    with runtime_only(db_url, store, secret_key=OTHER_KEY):
        pass
    with pytest.raises(SecretKeyError, match=new_id):
        Runtime(Settings(database_url=db_url, background=False, secret_key=secret_key), store=store)


def _fingerprint(raw: bytes) -> str:
    return hashlib.sha256(b"POST /v1/webhooks?\n" + raw).hexdigest()


def test_secrets_stored_in_clear_by_an_earlier_version_are_sealed_at_start_up(
        db_url: str, staff: Staff, store: Store, secret_key: str, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    legacy = "whsec_" + "L" * 43
    partner = create_key(store, "legacy partner")
    raw = json.dumps({"url": receiver.url, "events": ["*"]}).encode()
    now = datetime.now(UTC)
    with store.unit_of_work() as uow:
        uow.conn.execute(insert(webhooks).values(id="whk_old", url=receiver.url, events="*", secret=legacy,
                                                 created_at=now, created_by="test", active=True))
        uow.conn.execute(insert(idempotency_keys).values(
            api_key_id=partner.key_id, key="old-1", method="POST", path="/v1/webhooks",
            request_hash=_fingerprint(raw), status_code=201, created_at=now,
            response_body=json.dumps({"id": "whk_old", "url": receiver.url, "events": ["*"], "secret": legacy})))

    with pytest.raises(SecretKeyError, match=r"1 in clear"):
        Runtime(Settings(database_url=db_url, background=False, secret_key=None), store=store)

    caplog.set_level(logging.DEBUG)
    with api_client(db_url, secret_key=secret_key, webhook_base_delay=0.1, follower_interval=0.05,
                    webhook_allow_hosts=LOCAL_RECEIVERS) as client:
        assert legacy not in stored_text(store) and legacy.removeprefix("whsec_") not in stored_text(store)
        replay = client.post("/v1/webhooks", content=raw, headers={
            **auth(partner.key), "Idempotency-Key": "old-1", "Content-Type": "application/json"})
        assert replay.status_code == 201 and replay.json()["secret"] == legacy
        freeze(client, staff.partner)
        got = receiver.wait_for(1)
    assert len(got) == 1 and verify_signature(legacy, got[0].headers["freezedesk-signature"], got[0].body)
    assert "sealed 2 stored webhook secret(s)" in caplog.text
    assert legacy not in caplog.text and secret_key not in caplog.text


def test_a_delivery_whose_secret_cannot_be_opened_is_not_sent(
        db_url: str, staff: Staff, store: Store, secret_key: str, receiver: Receiver) -> None:
    with api_client(db_url, secret_key=secret_key, background=False, webhook_allow_hosts=LOCAL_RECEIVERS) as client:
        assert register(client, staff.partner, receiver.url).status_code == 201
        freeze(client, staff.partner)
    policy = DestinationPolicy(LOCAL_RECEIVERS)
    for box, expected in ((SecretBox(parse_key(OTHER_KEY)), key_id(parse_key(secret_key))),
                          (None, "FREEZEDESK_SECRET_KEY is not configured")):
        dispatcher = WebhookDispatcher(store, box=box, policy=policy, base_delay=0.0)
        try:
            assert dispatcher.run_once() == 0
        finally:
            dispatcher.stop()
        row = deliveries(store)[0]
        assert row.last_error.startswith("not sent: ") and expected in row.last_error, row.last_error
    assert deliveries(store)[0].attempts == 2
    assert receiver.attempts == 0


# -- the local demo -----------------------------------------------------------------------------


def test_demo_keeps_a_local_secret_key_that_serving_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEZEDESK_SECRET_KEY")}
    env.update(FREEZEDESK_DATABASE_URL=db_url, FREEZEDESK_DEMO_KEYS=str(tmp_path / "var" / "demo-keys.json"))
    cli = [sys.executable, "-m", "freezedesk.cli"]
    assert subprocess.run([*cli, "migrate"], env=env, capture_output=True, timeout=120).returncode == 0
    first = subprocess.run([*cli, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "var" / "secret.key"
    assert "created in" in first.stderr and str(key_file) in first.stderr
    key = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(parse_key(key)) == 32
    assert key.strip() not in first.stdout + first.stderr
    second = subprocess.run([*cli, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "kept in" in second.stderr
    assert key_file.read_text() == key and second.stdout == first.stdout

    monkeypatch.delenv("FREEZEDESK_SECRET_KEY", raising=False)
    monkeypatch.setenv("FREEZEDESK_SECRET_KEY_FILE", str(key_file))
    assert Settings().secret_key == key.strip()
    monkeypatch.setenv("FREEZEDESK_SECRET_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(SecretKeyError, match="FREEZEDESK_SECRET_KEY_FILE"):
        Settings()
