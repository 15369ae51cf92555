"""Factories for tests: keys, clients and frozen accounts, the way a user would make them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from freezedesk.runtime import Runtime, Settings
from freezedesk.services.api_keys import create_key
from freezedesk.store.uow import Store
from freezedesk.web.app import create_app


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(store: Store, role: str | None = None, scopes: list[str] | None = None, name: str = "") -> str:
    return create_key(store, name or f"test {role or 'partner'}", scopes, role).key


@contextmanager
def api_client(db_url: str, **settings: Any) -> Iterator[TestClient]:
    """The real ASGI app (lifespan, background workers) over an in-process HTTP transport."""
    runtime = Runtime(Settings(database_url=db_url, **settings))
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield client
    runtime.store.dispose()


class Staff:
    """Keys for a small team, created once per test."""

    def __init__(self, store: Store) -> None:
        self.partner = make_key(store)
        self.agent = make_key(store, "agent")
        self.investigator = make_key(store, "investigator")
        self.investigator2 = make_key(store, "investigator")
        self.security = make_key(store, "security")
        self.compliance = make_key(store, "compliance")
        self.compliance2 = make_key(store, "compliance")
        self.auditor = make_key(store, "auditor")
