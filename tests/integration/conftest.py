from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from freezedesk.notify import destinations
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client
from tests.receiver import Receiver

#: The local receiver listens on 127.0.0.1, which the default destination policy refuses (SSRF guard):
#: the fixtures that deliver allow it explicitly, as an operator would with FREEZEDESK_WEBHOOK_ALLOW_HOSTS.
LOCAL_RECEIVERS = ("127.0.0.1",)


@pytest.fixture(scope="session")
def secret_key() -> str:
    """The operator key sealing webhook secrets (FREEZEDESK_SECRET_KEY), one per test session."""
    return secrets.token_hex(32)


@pytest.fixture
def staff(store: Store) -> Staff:
    return Staff(store)


@pytest.fixture
def client(db_url: str, staff: Staff, secret_key: str) -> Iterator[TestClient]:
    """The default destination policy: webhooks may only go to public addresses."""
    with api_client(db_url, follower_interval=0.05, secret_key=secret_key) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP receiver for webhooks."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(db_url: str, staff: Staff, secret_key: str) -> Iterator[TestClient]:
    """An API client whose webhook dispatcher retries fast (tests wait for deliveries) and may reach
    the local receiver."""
    with api_client(db_url, webhook_base_delay=0.1, follower_interval=0.05, secret_key=secret_key,
                    webhook_allow_hosts=LOCAL_RECEIVERS) as c:
        yield c


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names → addresses for the webhook destination checks (registration and delivery), so tests
    do not depend on real DNS; a name not listed does not resolve."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        try:  # numeric forms getaddrinfo accepts too: 127.1, 2130706433, 0x7f.1
            return [socket.inet_ntoa(socket.inet_aton(host))]
        except OSError:
            pass
        if host.lower() not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(table[host.lower()])

    monkeypatch.setattr(destinations, "system_resolver", resolve)
    return table
