"""Screening from the command line, as a compliance analyst runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli_and_audit import run

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sanctions"


def sources() -> list[str]:
    return ["--source", f"ofac-csv:{SHARED / 'ofac'}", "--source", f"un-xml:{SHARED / 'un' / 'consolidated.xml'}"]


def test_screen_batch_against_full_lists(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"id": "listed", "name": "Eric Badege", "schema": "person"},
        {"id": "reordered-typo", "name": "Jnog-Un KIM"},
        {"id": "japanese", "name": "サダム・フセイン"},
        {"id": "clean", "name": "山田 太郎", "birth_date": "1985-02-03", "country": "JP"},
    ]) + "\n")
    out = tmp_path / "results.jsonl"
    result = run("sqlite:///unused.db", "screen", "batch", *sources(), "--in", str(queries), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(lines) == {"listed", "reordered-typo", "japanese", "clean"}
    assert {"un-6907993", "ofac-15718"} <= {m["entity_id"] for m in lines["listed"]["matches"]}
    assert lines["reordered-typo"]["matches"][0]["entity_id"] == "ofac-20157"
    assert any("HUSSEIN" in m["matched_name"].upper() or "HUSSAIN" in m["matched_name"].upper()
               for m in lines["japanese"]["matches"])
    assert lines["clean"]["matches"] == []
    for line in lines.values():
        assert line["elapsed_us"] >= 0
        assert all(m["score"] >= 0.8 and m["explanation"] for m in line["matches"])


def test_screen_batch_rejects_a_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "1", "name": "A"}\n{"id": "2", "name": "B", "country": "Japan"}\n')
    out = tmp_path / "results.jsonl"
    result = run("sqlite:///unused.db", "screen", "batch", *sources(), "--in", str(queries), "--out", str(out))
    assert result.returncode == 2
    assert f"{queries}:2: field 'country'" in result.stderr
    assert not out.exists()


def test_bad_list_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "un.xml"
    broken.write_text("<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID>")
    result = run("sqlite:///unused.db", "screen", "name", "Someone", "--source", f"un-xml:{broken}")
    assert result.returncode == 2 and str(broken) in result.stderr
    unknown = run("sqlite:///unused.db", "screen", "name", "Someone", "--source", "bogus:/x")
    assert unknown.returncode == 2 and "bogus" in unknown.stderr


def test_lists_load_reports_changes_and_screen_name_uses_the_database(db_url: str, tmp_path: Path) -> None:
    listing = tmp_path / "list.jsonl"
    entity = {"id": "x-1", "schema": "Person", "target": True,
              "properties": {"name": ["Ardashir Pourmand"], "topics": ["sanction"]}}
    listing.write_text(json.dumps(entity) + "\n")
    first = run(db_url, "lists", "load", "--source", f"ftm@t:{listing}")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("1 entities: 1 added, 0 changed, 0 removed")
    entity["properties"]["birthDate"] = ["1970"]  # type: ignore[index]
    listing.write_text(json.dumps(entity) + "\n")
    second = run(db_url, "lists", "load", "--source", f"ftm@t:{listing}")
    assert "0 added, 1 changed, 0 removed" in second.stdout
    found = run(db_url, "screen", "name", "Pourmand Ardashir")
    assert found.returncode == 0 and json.loads(found.stdout.splitlines()[0])["entity_id"] == "t-x-1"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    failed = run(db_url, "lists", "load", "--source", f"ftm@t:{empty}")
    assert failed.returncode == 2 and str(empty) in failed.stderr
    still = run(db_url, "screen", "name", "Pourmand Ardashir")
    assert json.loads(still.stdout.splitlines()[0])["entity_id"] == "t-x-1"  # the old list still serves
