"""Deactivating a person with the CLI, while a `freezedesk serve` process answers requests: every key
of that person stops working there (the audited change reaches the server's key cache), and no one
else's does."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from freezedesk.services.api_keys import create_key
from freezedesk.store.uow import Store
from tests.e2e.test_served import server, wait_until  # noqa: F401 (server is a fixture)
from tests.factories import auth


def test_staff_deactivate_stops_every_key_of_the_person_on_a_running_server(
        server: str, store: Store, db_url: str) -> None:  # noqa: F811
    keys = [create_key(store, f"desk {n}", role="compliance", staff_handle="gail@exchange.example").key
            for n in range(2)]
    other = create_key(store, "desk", role="compliance", staff_handle="hugo@exchange.example").key

    def status(key: str) -> int:
        return httpx.get(f"{server}/v1/reason-codes", headers=auth(key), timeout=5).status_code

    assert [status(k) for k in (*keys, other)] == [200, 200, 200]  # and now in the server's cache
    env = {**os.environ, "FREEZEDESK_DATABASE_URL": db_url}
    done = subprocess.run([sys.executable, "-m", "freezedesk.cli", "staff", "deactivate", "Gail@Exchange.Example"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: [status(k) for k in keys] == [401, 401])
    assert status(other) == 200
