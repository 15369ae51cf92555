# ruff: noqa: S608 — this module *generates* SQL; every identifier comes from a validated rule pack
# (lower_snake_case ids, catalogue attribute names) and every value is a typed literal.
"""Backtests: run a pack over a JSON Lines file with DuckDB (``batch``) or the stream engine.

Both paths return alerts sorted by (ts, account_id, rule_id) so that their outputs can be
compared line by line (``--engine stream`` exists precisely so anyone can check parity).

Both paths reject a bad file whole, with :class:`~freezedesk.monitoring.events.EventValidationError`
naming the line and field of every problem:

* ``stream`` validates every event with the shared Python parser (it needs Event objects anyway);
* ``batch`` cannot afford a Python pass over 10 M events, so DuckDB checks the same rules in SQL
  (:func:`validation_sql`: required fields per type, id / time / decimal shapes, event types,
  duplicate ids) and only when something is wrong — or DuckDB cannot even read the JSON — is the
  file re-read by the Python parser to name the exact lines and fields. Known gap: two things the
  Python parser refuses pass the SQL check (a money value written as a JSON *number*, and fields
  unknown to the event model, which DuckDB's explicit-schema reader drops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from freezedesk.monitoring.events import (
    _DECIMAL,
    _ID,
    _RFC3339,
    EVENT_CLASSES,
    Event,
    EventValidationError,
    decode_lines,
    validate_values,
)
from freezedesk.monitoring.rules.compile_sql import compile_sql, evidence_sql, read_events_sql
from freezedesk.monitoring.rules.engine import Alert, StreamEngine, load_address_list
from freezedesk.monitoring.rules.features import ATTRIBUTES, TIE_SLOTS
from freezedesk.monitoring.rules.language import Pack

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ``progress(done, total)``: called as the backtest advances (events for ``stream``, stages for ``batch``).
Progress = Callable[[int, int], None]


def _sort_key(a: Alert) -> tuple[datetime, str, str]:
    return (a.ts, a.account_id, a.rule_id)


def backtest(events_path: str | Path, pack: Pack, address_list: str | Path | Iterable[str] | None = None,
             engine: Literal["batch", "stream"] = "batch", *, threads: int | None = None,
             progress: Progress | None = None) -> Iterator[Alert]:
    """Alerts the pack would have raised on the events of ``events_path`` (JSON Lines).

    Raises :class:`EventValidationError` (every bad line and field) before any alert is produced.
    """
    listed = load_address_list(address_list)
    if engine == "stream":
        return iter(sorted(_stream(events_path, pack, listed, progress), key=_sort_key))
    return iter(_batch(events_path, pack, listed, threads, progress))


def read_events(events_path: str | Path) -> list[Event]:
    with Path(events_path).open(encoding="utf-8") as fh:
        return validate_values(decode_lines(fh), str(events_path))


def _stream(events_path: str | Path, pack: Pack, listed: frozenset[str], progress: Progress | None) -> list[Alert]:
    events = read_events(events_path)
    # The backtest order: by time, ties by event_id (what the SQL key ranks by).
    events.sort(key=lambda e: (e.ts, e.event_id))
    eng = StreamEngine(pack, listed)
    process = eng.process
    out: list[Alert] = []
    total = len(events)
    step = 65_536
    for start in range(0, total, step):
        for event in events[start:start + step]:
            fired = process(event)
            if fired:
                out.extend(fired)
        if progress is not None:
            progress(min(start + step, total), total)
    return out


_MONEY = tuple(name for name, kind in ATTRIBUTES.items() if kind == "money")


def _sql_regex(pattern: str) -> str:
    # Python's fullmatch patterns are RE2-compatible here; anchor them for regexp_full_match.
    return "'" + pattern.replace("'", "''") + "'"


def validation_sql(relation: str = "raw") -> str:
    """One row ``(bad_rows, duplicate_ids)``: how many events the Python parser would reject.

    The per-type required fields come from the event model itself (``EVENT_CLASSES``), so a field
    added there is checked here without anyone remembering to.
    """
    common = {"event_id", "ts", "account_id", "type"}
    per_type = []
    for kind, cls in EVENT_CLASSES.items():
        own = [f for f in cls.__dataclass_fields__ if f not in common]
        missing = " OR ".join(f"{f} IS NULL" for f in own) or "FALSE"
        foreign = " OR ".join(f"{f} IS NOT NULL" for f in ATTRIBUTES if f not in own and f != "type") or "FALSE"
        per_type.append(f"WHEN '{kind.value}' THEN ({missing}) OR ({foreign})")
    money = " OR ".join(f"({m} IS NOT NULL AND NOT regexp_full_match({m}, {_sql_regex(_DECIMAL.pattern)}))"
                        for m in _MONEY)
    ident = _sql_regex(_ID.pattern)
    bad = (f"event_id IS NULL OR account_id IS NULL OR ts IS NULL OR type IS NULL "
           f"OR NOT regexp_full_match(event_id, {ident}) OR NOT regexp_full_match(account_id, {ident}) "
           f"OR NOT regexp_full_match(ts, {_sql_regex(_RFC3339.pattern)}) OR regexp_matches(ts, '\\d$') "
           f"OR TRY_CAST(ts AS TIMESTAMPTZ) IS NULL OR ({money}) "
           f"OR CASE type {' '.join(per_type)} ELSE TRUE END")
    return (f"SELECT count(*) FILTER (WHERE {bad}), count(*) - count(DISTINCT event_id) FROM {relation}")


def _python_problems(events_path: str | Path) -> EventValidationError:
    try:
        read_events(events_path)
    except EventValidationError as exc:
        return exc
    except UnicodeDecodeError as exc:
        from freezedesk.monitoring.events import Problem

        return EventValidationError([Problem(0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")],
                                    str(events_path))
    from freezedesk.monitoring.events import Problem

    # SQL and Python disagree: report it rather than guess (should not happen; a bug if it does).
    return EventValidationError([Problem(0, "", "DuckDB rejected the file but every event parses; "
                                                "run with --engine stream")], str(events_path))


def _batch(events_path: str | Path, pack: Pack, listed: frozenset[str], threads: int | None,
           progress: Progress | None = None) -> list[Alert]:
    stages = 4

    def tick(done: int) -> None:
        if progress is not None:
            progress(done, stages)

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("CREATE TEMP TABLE listed_addresses (address VARCHAR)")
    if listed:
        con.executemany("INSERT INTO listed_addresses VALUES (?)", [(a,) for a in sorted(listed)])
    prepare, detect = compile_sql(pack, "raw", "rowid")
    con.execute("SET preserve_insertion_order = false")  # every result below is ordered explicitly
    try:
        # The JSON is parsed once: validation and the feature query both read this table.
        con.execute(f"CREATE TEMP TABLE raw AS SELECT * FROM {read_events_sql(repr(str(events_path)))}")
        bad, dupes = con.execute(validation_sql("raw")).fetchone() or (0, 0)
    except duckdb.Error:  # not JSON, not UTF-8, a value of the wrong JSON type ...
        bad, dupes = 1, 0
    if bad or dupes:
        con.close()
        raise _python_problems(events_path)
    tick(1)
    con.execute(prepare)
    tick(2)
    con.execute(f"CREATE TEMP TABLE alerts AS {detect}")
    tick(3)
    rows = con.execute(
        f"WITH ids AS ({evidence_sql(pack)}) "
        "SELECT a.account_id, a.rule_id, a.reason_code, a.ts_ms, "
        "list(i.event_id ORDER BY i.k, i.event_id) FROM alerts a JOIN ids i "
        "ON i.account_id = a.account_id AND i.rule_id = a.rule_id AND i.ak = a.k "
        "GROUP BY ALL ORDER BY a.ts_ms, a.account_id, a.rule_id").fetchall()
    con.close()
    tick(4)
    return [Alert(acct, rule, reason, _EPOCH + timedelta(milliseconds=ts), tuple(dict.fromkeys(ids)))
            for acct, rule, reason, ts, ids in rows]


__all__ = ["TIE_SLOTS", "Progress", "backtest", "read_events", "validation_sql"]
