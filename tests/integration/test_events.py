"""Event ingestion on SQLite and PostgreSQL: stored once, audited per batch, a bad batch writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from freezedesk.monitoring.events import parse_batch
from freezedesk.monitoring.ingest import ingest
from freezedesk.store.tables import accounts, audit_log, events
from freezedesk.store.uow import Store
from tests.factories import Staff, auth, make_key
from tests.integration.test_bad_input import assert_problem
from tests.integration.test_cli_and_audit import run
from tests.unit.monitoring.test_events import VALID, event


def counts(store: Store) -> dict[str, int]:
    with store.read() as uow:
        return {t.name: uow.conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (events, accounts, audit_log)}


def one_of_each() -> list[dict[str, Any]]:
    return [event(kind, f"ev-{i}", account_id=f"acct-{i % 3}") for i, kind in enumerate(VALID)]


def test_ingest_stores_once_and_replay_changes_nothing(store: Store) -> None:
    batch = parse_batch("\n".join(json.dumps(e) for e in one_of_each()))
    first = ingest(store, batch, "test", "unit")
    assert (first.accepted, first.duplicates, first.accounts_registered) == (len(VALID), 0, 3)
    after_first = counts(store)
    assert after_first["events"] == len(VALID) and after_first["accounts"] == 3
    again = ingest(store, batch, "test", "unit")
    assert (again.accepted, again.duplicates, again.batch_id) == (0, len(VALID), None)
    assert counts(store) == after_first  # nothing stored, nothing audited
    with store.read() as uow:
        row = uow.conn.execute(select(events).where(events.c.event_id == "ev-0")).one()
        entry = uow.conn.execute(select(audit_log).where(audit_log.c.action == "events.ingested")).one()
    assert json.loads(row.payload) == batch[0].to_json() and row.ts == batch[0].ts
    assert json.loads(entry.data)["accepted"] == len(VALID) and "address" not in entry.data


def test_api_accepts_a_batch_and_counts_duplicates(client: TestClient, staff: Staff, store: Store) -> None:
    body = {"events": one_of_each()}
    response = client.post("/v1/events", json=body, headers=auth(staff.partner))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(VALID), "duplicates": 0, "alerts": []}
    mixed = {"events": [*one_of_each()[:2], event("login", "ev-new")]}
    assert client.post("/v1/events", json=mixed, headers=auth(staff.partner)).json() == {
        "accepted": 1, "duplicates": 2, "alerts": []}
    assert counts(store)["events"] == len(VALID) + 1


def test_api_rejects_a_bad_batch_whole_naming_index_and_field(client: TestClient, staff: Staff,
                                                             store: Store) -> None:
    before = counts(store)
    bad = {"events": [event("login", "ok-1"), event("deposit", "bad-1", amount=1.5),
                      event("login", "ok-1"), {"type": "nope"}]}
    body = assert_problem(client.post("/v1/events", json=bad, headers=auth(staff.partner)), 422, "invalid-events")
    errors = {(e["index"], e["field"]) for e in body["errors"]}
    assert {(1, "amount"), (2, "event_id"), (3, "type"), (3, "event_id")} <= errors
    assert counts(store) == before


def test_api_needs_the_scope_and_bounds_the_batch(client: TestClient, staff: Staff, store: Store) -> None:
    reader = make_key(store, scopes=["permissions:read"])
    assert_problem(client.post("/v1/events", json={"events": [event("login")]}, headers=auth(reader)),
                   403, "insufficient-scope")
    too_many = {"events": [event("login", f"e{i}") for i in range(5001)]}
    assert_problem(client.post("/v1/events", json=too_many, headers=auth(staff.partner)), 422, "validation-error")
    assert_problem(client.post("/v1/events", json={"events": []}, headers=auth(staff.partner)),
                   422, "validation-error")


def test_api_takes_bodies_larger_than_the_default_limit(client: TestClient, staff: Staff, store: Store) -> None:
    batch = {"events": [event("deposit", f"big-{i}", address="x" * 150) for i in range(1500)]}
    assert len(json.dumps(batch)) > 64 * 1024
    response = client.post("/v1/events", json=batch, headers=auth(staff.partner))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1500
    # ... while other endpoints keep the small default
    huge = {"reason_code": "KYC_INCOMPLETE", "note": "x" * 70_000}
    assert_problem(client.post("/v1/accounts/a/restrictions", json=huge, headers=auth(staff.partner)),
                   413, "payload-too-large")
    over = b'{"events": [' + b" " * (4 * 1024 * 1024) + b"]}"
    assert_problem(client.post("/v1/events", content=over, headers={**auth(staff.partner),
                                                                     "content-type": "application/json"}),
                   413, "payload-too-large")


def test_cli_ingests_json_lines_and_arrays(db_url: str, store: Store, tmp_path: Path) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in one_of_each()) + "\n")
    result = run(db_url, "events", "ingest", str(lines))
    assert result.returncode == 0, result.stderr
    assert f"{len(VALID)} events stored, 0 duplicates" in result.stdout
    array = tmp_path / "events.json"
    array.write_text(json.dumps([*one_of_each(), event("login", "extra")], indent=2))
    result = run(db_url, "events", "ingest", str(array))
    assert result.returncode == 0, result.stderr
    assert f"1 events stored, {len(VALID)} duplicates" in result.stdout
    assert counts(store)["events"] == len(VALID) + 1


def test_cli_reports_every_problem_and_writes_nothing(db_url: str, store: Store, tmp_path: Path) -> None:
    before = counts(store)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(event("login", "a")), json.dumps(event("deposit", "b", amount=3.0)),
                              json.dumps(event("login", "c", ts="2025-03-01T09:00:00")),
                              json.dumps(event("login", "a"))]) + "\n")
    result = run(db_url, "events", "ingest", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: field 'amount': " in result.stderr
    assert f"{bad}:3: field 'ts': " in result.stderr
    assert f"{bad}:4: field 'event_id': " in result.stderr
    assert counts(store) == before
    missing = run(db_url, "events", "ingest", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_cli_synth_writes_events_labels_and_listed_addresses(tmp_path: Path) -> None:
    out, labels = tmp_path / "ev.jsonl", tmp_path / "labels.csv"
    result = run("sqlite:///unused.db", "synth", "--accounts", "40", "--days", "14", "--seed", "3",
                 "--out", str(out), "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    assert "events/s" in result.stderr
    listed = (tmp_path / "labels.addresses.txt").read_text().splitlines()[1:]
    assert listed and all(listed)  # real OFAC addresses from ../shared
    assert len(parse_batch(out.read_text())) > 0
    bad = run("sqlite:///unused.db", "synth", "--accounts", "40", "--days", "3", "--out", str(out),
              "--labels", str(labels))
    assert bad.returncode == 2 and "at least 14" in bad.stderr
