from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from freezedesk.store.uow import Store
from tests.factories import Staff, api_client


@pytest.fixture
def staff(store: Store) -> Staff:
    return Staff(store)


@pytest.fixture
def client(db_url: str, staff: Staff) -> Iterator[TestClient]:
    with api_client(db_url, follower_interval=0.05) as c:
        yield c
