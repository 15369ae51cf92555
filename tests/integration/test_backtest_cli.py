"""``freezedesk backtest`` end to end: synth → both engines → identical alert files; bad input → exit 2.

No database: the backtest reads a JSON Lines file and writes one. The CLI is run in-process with
typer's runner (same code path as the console script, minus a Python start-up per call).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freezedesk.cli import app

LISTED = "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h\n0x8589427373D6D84E98730D7795D8f6f8731FDA16\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("backtest")
    listed = tmp / "listed.txt"
    listed.write_text("# test list\n" + LISTED)
    events, labels = tmp / "events.jsonl", tmp / "labels.csv"
    result = runner.invoke(app, ["synth", "--accounts", "200", "--days", "30", "--seed", "7", "--out", str(events),
                                 "--labels", str(labels), "--address-list", str(listed)])
    assert result.exit_code == 0, result.output
    return events, labels, listed


def _backtest(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["backtest", *args])
    return result.exit_code, result.output


def test_both_engines_write_identical_alerts_and_print_precision_recall(synth: tuple[Path, Path, Path],
                                                                        tmp_path: Path) -> None:
    events, labels, listed = synth
    outputs = {}
    for engine in ("batch", "stream"):
        out = tmp_path / f"{engine}.jsonl"
        code, output = _backtest("--events", str(events), "--labels", str(labels), "--address-list", str(listed),
                                 "--out", str(out), "--engine", engine)
        assert code == 0, output
        assert "precision" in output and "recall" in output
        assert "structuring" in output and "100.0%" in output
        outputs[engine] = out.read_bytes()
    assert outputs["batch"] == outputs["stream"]
    alerts = [json.loads(line) for line in outputs["batch"].splitlines()]
    assert alerts, "the synthetic typologies must raise alerts"
    assert set(alerts[0]) == {"account_id", "rule_id", "reason_code", "ts", "event_ids"}
    assert {a["rule_id"] for a in alerts} >= {"high_volume", "structuring", "pass_through", "fan_in", "fan_out",
                                              "account_takeover", "listed_address"}


def test_default_engine_is_batch_and_labels_are_optional(synth: tuple[Path, Path, Path], tmp_path: Path) -> None:
    events, _labels, _listed = synth
    code, output = _backtest("--events", str(events), "--out", str(tmp_path / "a.jsonl"))
    assert code == 0, output
    assert "batch" in output and "precision" not in output


@pytest.mark.parametrize("engine", ["batch", "stream"])
def test_a_bad_event_line_names_file_line_and_field_and_leaves_no_output(synth: tuple[Path, Path, Path],
                                                                         tmp_path: Path, engine: str) -> None:
    events, _labels, _listed = synth
    lines = events.read_text().splitlines()[:50]
    broken = json.loads(lines[9])
    broken["ts"] = "2025-01-01 10:00"  # no T, no offset
    lines[9] = json.dumps(broken)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "alerts.jsonl"
    code, output = _backtest("--events", str(bad), "--out", str(out), "--engine", engine)
    assert code == 2
    assert f"{bad}:10: field 'ts'" in output
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize("engine", ["batch", "stream"])
def test_bad_json_and_missing_money_field(tmp_path: Path, engine: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event_id": "e1", "ts": "2025-01-01T00:00:00Z", "account_id": "a1", "type": "deposit", '
                   '"asset": "BTC", "amount": "1", "chain": "BTC", "address": "x1"}\n')
    code, output = _backtest("--events", str(bad), "--out", str(tmp_path / "o.jsonl"), "--engine", engine)
    assert code == 2 and f"{bad}:1: field 'value_usd'" in output
    bad.write_text('{"event_id": "e1", "ts": \n')
    code, output = _backtest("--events", str(bad), "--out", str(tmp_path / "o.jsonl"), "--engine", engine)
    assert code == 2 and f"{bad}:1:" in output and "not valid JSON" in output


def test_missing_files_and_malformed_rules_exit_2(synth: tuple[Path, Path, Path], tmp_path: Path) -> None:
    events, _labels, _listed = synth
    out = tmp_path / "o.jsonl"
    code, output = _backtest("--events", str(tmp_path / "nope.jsonl"), "--out", str(out))
    assert code == 2 and "nope.jsonl: file not found" in output
    rules = tmp_path / "rules.yaml"
    rules.write_text("pack: p\nrules:\n  - id: r1\n    title: t\n    intent: i\n    reason_code: SUS_FAN_IN\n"
                     "    action: alert\n    on: [deposit]\n    when: nonsense_feature >= 3\n")
    code, output = _backtest("--events", str(events), "--rules", str(rules), "--out", str(out))
    assert code == 2 and "rule 'r1', field 'when'" in output and "nonsense_feature" in output
    labels = tmp_path / "labels.csv"
    labels.write_text("account_id,label\nacct-1\n")
    code, output = _backtest("--events", str(events), "--labels", str(labels), "--out", str(out))
    assert code == 2 and f"{labels}:2:" in output
    assert not out.exists()
