"""Parity: the stream engine (generated Python) and the DuckDB backtest raise identical alerts.

A hypothesis strategy draws small, dense streams over few accounts, addresses and devices so that
every rule of the standard pack is exercised (same-millisecond ties, window edges, dedup), then
both engines run on the same JSON Lines file and must return exactly the same alert list.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freezedesk.monitoring.rules import backtest, load_pack

PACK = load_pack(None)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
EVM = "0x8589427373D6D84E98730D7795D8f6f8731FDA16"  # EIP-55 checksummed; listed in lower case below
LISTED = {"addr-listed", EVM.lower()}
ADDRS = ["addr-a", "addr-b", "addr-c", "addr-d", "addr-e", "addr-f", "addr-listed", EVM, EVM.lower(), "ADDR-LISTED"]
STEPS = [0, 0, 1, 1000, 60_000, 600_000, 3_600_000, 86_400_000, 86_400_000 - 1, 200 * 86_400_000]
VALUES = ["0", "9000", "9500.5", "9999.99999999", "10000", "1000", "60000", "0.000000015", "5000", "123.456789012",
          "123456789012345678901234.5"]  # the largest an event may carry: 24 integer digits


@st.composite
def streams(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    now = T0
    out: list[dict[str, Any]] = []
    for i in range(n):
        now += timedelta(milliseconds=draw(st.sampled_from(STEPS)))
        acct = draw(st.sampled_from(["a1", "a2"]))
        kind = draw(st.sampled_from(["deposit", "withdrawal", "transfer_in", "transfer_out", "login",
                                     "security_change", "trade"]))
        ev: dict[str, Any] = {"event_id": f"e{draw(st.integers(0, 9))}{i:03d}", "account_id": acct,
                              "ts": now.isoformat().replace("+00:00", "Z"), "type": kind}
        value = draw(st.sampled_from(VALUES))
        if kind in ("deposit", "withdrawal"):
            ev |= {"asset": "BTC", "amount": value, "value_usd": value, "chain": "BTC",
                   "address": draw(st.sampled_from(ADDRS))}
        elif kind in ("transfer_in", "transfer_out"):
            ev |= {"asset": "USDT", "amount": value, "value_usd": value,
                   "counterparty_account_id": draw(st.sampled_from(["p1", "p2", "p3"]))}
        elif kind == "trade":
            ev |= {"symbol": "BTC-USDT", "side": "buy", "amount": "1", "price": value, "value_usd": value}
        elif kind == "login":
            ev |= {"ip": "192.0.2.1", "country": draw(st.sampled_from(["JP", "US"])),
                   "device_id": draw(st.sampled_from(["d1", "d2", "d3"])), "success": draw(st.booleans())}
        else:
            ev |= {"change": draw(st.sampled_from(["password", "email", "phone"]))}
        out.append(ev)
    return out


def _run(path: Path) -> tuple[list[Any], list[Any]]:
    batch = [a.to_json() for a in backtest(path, PACK, LISTED, engine="batch")]
    stream = [a.to_json() for a in backtest(path, PACK, LISTED, engine="stream")]
    return batch, stream


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams())
def test_stream_and_batch_raise_identical_alerts(events: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    batch, stream = _run(path)
    assert batch == stream


def test_listed_evm_addresses_match_whatever_their_case(tmp_path: Path) -> None:
    """EIP-55 case is a checksum: a list printing the address in lower case still catches a
    withdrawal to its checksummed form (and the reverse); other chains stay case-sensitive."""
    lines = [{"event_id": f"w{i}", "account_id": f"a{i}", "ts": f"2025-01-0{i + 1}T00:00:00Z", "type": "withdrawal",
              "asset": "ETH", "amount": "1", "value_usd": "100", "chain": "ETH", "address": address}
             for i, address in enumerate([EVM, EVM.lower(), EVM.upper().replace("0X", "0x"), "ADDR-LISTED"])]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    for listed in ({EVM.lower()}, {EVM}):
        for engine in ("batch", "stream"):
            fired = {a.account_id for a in backtest(path, PACK, listed | {"addr-listed"}, engine=engine)
                     if a.rule_id == "listed_address"}
            assert fired == {"a0", "a1", "a2"}, (engine, listed)


def test_the_largest_money_values_do_not_break_the_batch_engine(tmp_path: Path) -> None:
    """24 integer digits (what an event may carry) overflowed DECIMAL(38) once scaled by 1e8."""
    big = "999999999999999999999999.999999999"
    lines = [{"event_id": f"d{i}", "account_id": "a", "ts": f"2025-01-01T00:0{i}:00Z", "type": "deposit",
              "asset": "X", "amount": big, "value_usd": value, "chain": "ETH", "address": f"src-{i}"}
             for i, value in enumerate([big, "9500", "9600", "9700"])]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    batch, stream = _run(path)
    assert batch == stream and [a["rule_id"] for a in batch] == ["structuring"]


def test_a_file_the_sql_check_refuses_but_python_accepts_runs_on_the_stream_engine(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Two ids with one 64-bit hash (or any disagreement of the SQL check with the parser) must not
    refuse a good file: the parser has the last word, and the stream engine gives the alerts."""
    from freezedesk.monitoring.rules import compile_sql

    lines = [{"event_id": f"d{i}", "account_id": "a", "ts": f"2025-01-01T00:0{i}:00Z", "type": "deposit",
              "asset": "X", "amount": "1", "value_usd": value, "chain": "ETH", "address": f"src-{i}"}
             for i, value in enumerate(["9500", "9600", "9700"])]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    expected = [a.to_json() for a in backtest(path, PACK, engine="stream")]
    monkeypatch.setattr(compile_sql, "row_problems_sql", lambda: "TRUE")
    assert [a.to_json() for a in backtest(path, PACK, engine="batch")] == expected
    assert [a["rule_id"] for a in expected] == ["structuring"]
