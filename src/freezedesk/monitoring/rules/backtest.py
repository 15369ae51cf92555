# ruff: noqa: S608 — this module *generates* SQL; every identifier comes from a validated rule pack
# (lower_snake_case ids, catalogue attribute names) and every value is a typed literal.
"""Backtests: run a pack over a JSON Lines file with DuckDB (``batch``) or the stream engine.

Both paths return alerts sorted by (ts, account_id, rule_id) so that their outputs can be
compared line by line (``--engine stream`` exists precisely so anyone can check parity).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from freezedesk.monitoring.events import Event, decode_lines, validate_values
from freezedesk.monitoring.rules.compile_sql import compile_sql, evidence_sql, read_events_sql
from freezedesk.monitoring.rules.engine import Alert, StreamEngine, load_address_list
from freezedesk.monitoring.rules.features import TIE_SLOTS
from freezedesk.monitoring.rules.language import Pack

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sort_key(a: Alert) -> tuple[datetime, str, str]:
    return (a.ts, a.account_id, a.rule_id)


def backtest(events_path: str | Path, pack: Pack, address_list: str | Path | Iterable[str] | None = None,
             engine: Literal["batch", "stream"] = "batch", *, threads: int | None = None) -> Iterator[Alert]:
    """Alerts the pack would have raised on the events of ``events_path`` (JSON Lines)."""
    listed = load_address_list(address_list)
    if engine == "stream":
        return iter(sorted(_stream(events_path, pack, listed), key=_sort_key))
    return iter(_batch(events_path, pack, listed, threads))


def read_events(events_path: str | Path) -> list[Event]:
    with Path(events_path).open(encoding="utf-8") as fh:
        return validate_values(decode_lines(fh), str(events_path))


def _stream(events_path: str | Path, pack: Pack, listed: frozenset[str]) -> list[Alert]:
    events = read_events(events_path)
    # The backtest order: by time, ties by event_id (what the SQL key ranks by).
    events.sort(key=lambda e: (e.ts, e.event_id))
    eng = StreamEngine(pack, listed)
    out: list[Alert] = []
    for event in events:
        out.extend(eng.process(event))
    return out


def _batch(events_path: str | Path, pack: Pack, listed: frozenset[str], threads: int | None) -> list[Alert]:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("CREATE TEMP TABLE listed_addresses (address VARCHAR)")
    if listed:
        con.executemany("INSERT INTO listed_addresses VALUES (?)", [(a,) for a in sorted(listed)])
    prepare, detect = compile_sql(pack, "raw")
    con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {read_events_sql(repr(str(events_path)))}")
    con.execute(prepare)
    con.execute(f"CREATE TEMP TABLE alerts AS {detect}")
    rows = con.execute(
        f"WITH ids AS ({evidence_sql(pack)}) "
        "SELECT a.account_id, a.rule_id, a.reason_code, a.ts_ms, "
        "list(i.event_id ORDER BY i.k, i.event_id) FROM alerts a JOIN ids i "
        "ON i.account_id = a.account_id AND i.rule_id = a.rule_id AND i.ak = a.k "
        "GROUP BY ALL ORDER BY a.ts_ms, a.account_id, a.rule_id").fetchall()
    con.close()
    return [Alert(acct, rule, reason, _EPOCH + timedelta(milliseconds=ts), tuple(dict.fromkeys(ids)))
            for acct, rule, reason, ts, ids in rows]


__all__ = ["TIE_SLOTS", "backtest", "read_events"]
