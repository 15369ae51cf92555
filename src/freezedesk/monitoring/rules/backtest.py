"""Backtests: run a pack over a JSON Lines file with DuckDB (``batch``) or the stream engine.

Both paths return alerts sorted by (ts, account_id, rule_id) so that their outputs can be
compared line by line (``--engine stream`` exists precisely so anyone can check parity).

Both paths reject a bad file whole, with :class:`~freezedesk.monitoring.events.EventValidationError`
naming the line and field of every problem:

* ``stream`` validates every event with the shared Python parser (it needs Event objects anyway);
* ``batch`` cannot afford a Python pass over 10 M events, so DuckDB checks the same rules in SQL
  while it reads the file (:func:`~.compile_sql.row_problems_sql`: required fields per type, id /
  time / decimal shapes, event types; repeated ids by a 64-bit hash of the id), in the same query
  that computes the alerts; only when something is wrong — or DuckDB cannot even read the JSON —
  is the file re-read by the Python parser to name the exact lines and fields. (Should the Python
  parser then find nothing wrong — two ids with one hash, about 3e-6 for 10 M events — the file
  is run through the stream engine instead, which gives the same alerts.) Known gap: two things
  the Python parser refuses pass the SQL check (a money value written as a JSON *number*, and
  fields unknown to the event model, which DuckDB's explicit-schema reader drops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from freezedesk.monitoring.events import Event, EventValidationError, Problem, decode_lines, validate_values
from freezedesk.monitoring.rules.compile_sql import backtest_sql, read_events_sql
from freezedesk.monitoring.rules.engine import Alert, StreamEngine, fold_listed, load_address_list
from freezedesk.monitoring.rules.features import TIE_SLOTS
from freezedesk.monitoring.rules.language import Pack

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ``progress(done, total)``: called as the backtest advances (events for ``stream``; ``batch`` is one
#: DuckDB query and reports ``(1, 1)`` once it is done).
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


def _python_problems(events_path: str | Path) -> EventValidationError | None:
    """The Python parser's verdict on a file the SQL check refused; None if it finds nothing wrong."""
    try:
        read_events(events_path)
    except EventValidationError as exc:
        return exc
    except UnicodeDecodeError as exc:
        return EventValidationError([Problem(0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")],
                                    str(events_path))
    return None


def _batch(events_path: str | Path, pack: Pack, listed: frozenset[str], threads: int | None,
           progress: Progress | None = None) -> list[Alert]:
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")  # every result is ordered explicitly
        # The CTEs' row estimates are unknown to the planner (the JSON is read inside the query);
        # without this it would answer the since features' ASOF joins with a nested loop.
        con.execute("SET asof_loop_join_threshold = 0")
        con.execute("CREATE TEMP TABLE listed_addresses (address VARCHAR)")
        if listed:
            con.executemany("INSERT INTO listed_addresses VALUES (?)", [(a,) for a in sorted(fold_listed(listed))])
        query = backtest_sql(pack, read_events_sql(repr(str(events_path))))
        try:
            rows = con.execute(query).fetchall()
        except duckdb.Error:  # not JSON, not UTF-8, a value of the wrong JSON type ...
            rows = [(1, 0, None, None, None, None, None)]
    finally:
        con.close()
    bad, dupes = rows[0][0], rows[0][1]
    if bad or dupes:
        problems = _python_problems(events_path)
        if problems is not None:
            raise problems
        # Every event parses: the SQL check saw two ids with one hash (or disagrees with the
        # parser, a bug). The stream engine gives the same alerts, from the parsed events.
        return sorted(_stream(events_path, pack, listed, None), key=_sort_key)
    if progress is not None:  # one query: nothing to report until it is done
        progress(1, 1)
    return [Alert(acct, rule, reason, _EPOCH + timedelta(milliseconds=ts), tuple(dict.fromkeys(ids)))
            for _bad, _dupes, acct, rule, reason, ts, ids in rows if acct is not None]


__all__ = ["TIE_SLOTS", "Progress", "backtest", "read_events"]
