"""``accounts.events_counted``: kept by ingestion, back-filled by migration 0006 — and the schema the
migrations build is the one ``tables.py`` describes, on both backends.

The live monitor relies on the counter being exactly the number of the account's stored events
(``monitoring.live``: a monitor that counted fewer knows another process stored the rest).
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text

from freezedesk.monitoring.events import Event, parse_batch
from freezedesk.monitoring.ingest import ingest_in
from freezedesk.store.db import make_engine
from freezedesk.store.migrate import alembic_config, upgrade
from freezedesk.store.tables import accounts, events, metadata
from freezedesk.store.uow import Store
from tests.conftest import BACKENDS, PG_URL
from tests.integration.test_monitoring_live import deposit


def test_the_migrations_build_the_schema_tables_py_describes(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def batch(raw: list[dict[str, object]]) -> list[Event]:
    return parse_batch("\n".join(json.dumps(e) for e in raw))


def stored_per_account(store: Store) -> dict[str, int]:
    with store.read() as uow:
        return {row.account_id: int(row.n) for row in uow.conn.execute(
            select(events.c.account_id, func.count().label("n")).group_by(events.c.account_id))}


def counters(store: Store) -> dict[str, int]:
    with store.read() as uow:
        return {row.id: int(row.events_counted) for row in uow.conn.execute(select(accounts))}


def test_ingestion_counts_each_accounts_stored_events(store: Store) -> None:
    # 1,200 accounts, more than one chunk (500) of the counting statement; 1-3 events each
    first = [deposit(f"e-{a}-{i}", f"acct-{a:04d}", i, usd="100") for a in range(1200) for i in range(1 + a % 3)]
    with store.unit_of_work() as uow:
        result, _stored, registered = ingest_in(uow, batch(first), "test", "unit")
    assert result.accepted == len(first)
    assert dict(registered.counted) == Counter(e["account_id"] for e in first)

    # again, with new events for every seventh account: duplicates are not counted, and only the
    # accounts that stored something are reported
    more = [deposit(f"f-{a}", f"acct-{a:04d}", 99, usd="100") for a in range(0, 1200, 7)]
    with store.unit_of_work() as uow:
        result, _stored, registered = ingest_in(uow, batch(first + more), "test", "unit")
    assert (result.accepted, result.duplicates) == (len(more), len(first))
    expected = stored_per_account(store)
    assert dict(registered.counted) == {e["account_id"]: expected[str(e["account_id"])] for e in more}
    assert counters(store) == expected

    # nothing new: nothing counted, nothing reported
    with store.unit_of_work() as uow:
        _result, _stored, registered = ingest_in(uow, batch(more), "test", "unit")
    assert dict(registered.counted) == {}
    assert counters(store) == expected


def test_accounts_without_events_count_zero(store: Store) -> None:
    now = "2026-01-01T00:00:00+00:00"
    with store.unit_of_work() as uow:  # registered the way a freeze or a PUT /v1/accounts does
        uow.conn.execute(text("INSERT INTO accounts (id, created_at, locale) VALUES ('acct-new', :t, 'ja')"),
                         {"t": now})
    assert counters(store) == {"acct-new": 0}


@pytest.fixture(params=BACKENDS)
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database (not migrated) on each backend: a fresh SQLite file, a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"fd_mig_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(f"{PG_URL}?options={quote(f'-csearch_path={schema}')}")
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_migration_0006_back_fills_the_counts_from_stored_events(unmigrated: Engine) -> None:
    upgrade(unmigrated, "0005")
    at = "2026-01-01T00:00:00+00:00"
    with unmigrated.begin() as conn:
        for account in ("acct-a", "acct-b", "acct-quiet"):
            conn.execute(text("INSERT INTO accounts (id, created_at, locale) VALUES (:id, :t, 'ja')"),
                         {"id": account, "t": at})
        for n, account in enumerate(["acct-a"] * 3 + ["acct-b"]):
            conn.execute(text("INSERT INTO events (event_id, account_id, type, ts, payload, ingested_at) "
                              "VALUES (:id, :account, 'deposit', :t, '{}', :t)"),
                         {"id": f"ev-{n}", "account": account, "t": at})
    upgrade(unmigrated)
    with unmigrated.connect() as conn:
        counted = {row.id: row.events_counted for row in conn.execute(text("SELECT id, events_counted FROM accounts"))}
    assert counted == {"acct-a": 3, "acct-b": 1, "acct-quiet": 0}

    # and back: the column goes, the rest stays
    config = alembic_config(unmigrated)
    with unmigrated.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    assert "events_counted" not in {c["name"] for c in inspect(unmigrated).get_columns("accounts")}
    with unmigrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 4
