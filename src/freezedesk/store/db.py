"""Engines: SQLite by default, PostgreSQL (psycopg 3) when FREEZEDESK_DATABASE_URL says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_SQLITE_PATH = Path("var/freezedesk.db")


def database_url(explicit: str | None = None) -> str:
    """The configured database URL in SQLAlchemy form.

    Accepts the usual ``postgresql://user@host:port/db`` and turns it into the psycopg 3
    dialect; defaults to ``sqlite:///var/freezedesk.db``.
    """
    raw = explicit or os.environ.get("FREEZEDESK_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    for plain in ("postgresql://", "postgres://"):
        if raw.startswith(plain):
            return "postgresql+psycopg://" + raw[len(plain):]
    return raw


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = database_url(url)
    # Logged errors must never carry values (webhook secrets, key hashes, customer data).
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN; we take the write lock up front
    # (BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.info.get("freezedesk_readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
