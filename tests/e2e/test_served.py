"""The served app as a partner sees it: a real `freezedesk serve` process over real HTTP.

Also proves the cross-process guarantee: a restriction committed by another process (here,
this test process writing through the services) is enforced by the server's in-memory view
without a restart — through LISTEN/NOTIFY on PostgreSQL and polling on SQLite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.restrictions import Actor, Source
from freezedesk.services import restrictions as restriction_service
from freezedesk.store.uow import Store
from tests.factories import auth, make_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(db_url: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "FREEZEDESK_DATABASE_URL": db_url, "FREEZEDESK_FOLLOW_INTERVAL": "0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "freezedesk.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until(predicate: object, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_partner_flow_over_http(server: str, store: Store) -> None:
    partner, security = make_key(store), make_key(store, "security")
    with httpx.Client(base_url=server, timeout=10) as http:
        created = http.post("/v1/accounts/acct-42/restrictions", json={"reason_code": "SEC_LEAKED_PASSWORD"},
                            headers={**auth(partner), "Idempotency-Key": "e2e-1"})
        assert created.status_code == 201
        rid, inquiry = created.json()["id"], created.json()["inquiry_number"]
        denied = http.get("/v1/accounts/acct-42/permissions", params={"action": "login"}, headers=auth(partner))
        assert denied.json()["allowed"] is False
        assert denied.json()["blocking"][0]["inquiry_number"] == inquiry
        lifted = http.post(f"/v1/restrictions/{rid}/lift", json={"reason": "password reset, TOTP enrolled"},
                           headers=auth(security))
        assert lifted.status_code == 200
        allowed = http.get("/v1/accounts/acct-42/permissions", params={"action": "login"}, headers=auth(partner))
        assert allowed.json()["allowed"] is True
        assert http.get("/openapi.json").json()["info"]["title"] == "FreezeDesk partner API"


def test_restrictions_from_another_process_are_enforced(server: str, store: Store,
                                                       catalogue: ReasonCatalogue) -> None:
    partner = make_key(store)

    def allowed() -> bool:
        r = httpx.get(f"{server}/v1/accounts/acct-77/permissions", params={"action": "withdraw"},
                      headers=auth(partner), timeout=5)
        return bool(r.json()["allowed"])

    assert allowed()
    frozen = restriction_service.freeze(store, catalogue, account_id="acct-77", reason_code="SUS_FAN_IN",
                                        actor=Actor("other-process"), source=Source.STAFF)
    wait_until(lambda: not allowed())
    rid = frozen.restriction.id
    restriction_service.request_lift(store, catalogue, rid, Actor("stf_x", "investigator"), "cleared")
    assert not allowed()  # one approval of two: still blocked
    restriction_service.approve_lift(store, catalogue, rid, Actor("stf_y", "compliance"))
    wait_until(allowed)
