from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from freezedesk.store.uow import Store
from tests.factories import Staff, api_client
from tests.receiver import Receiver


@pytest.fixture
def staff(store: Store) -> Staff:
    return Staff(store)


@pytest.fixture
def client(db_url: str, staff: Staff) -> Iterator[TestClient]:
    with api_client(db_url, follower_interval=0.05) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP receiver for webhooks."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(db_url: str, staff: Staff) -> Iterator[TestClient]:
    """An API client whose webhook dispatcher retries fast (tests wait for deliveries)."""
    with api_client(db_url, webhook_base_delay=0.1, follower_interval=0.05) as c:
        yield c
