"""The event parser: every type accepted, every kind of bad field named with its line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from freezedesk.monitoring.events import (
    Deposit,
    EventType,
    EventValidationError,
    Login,
    Problem,
    Side,
    Trade,
    parse_batch,
    parse_event,
)

BASE: dict[str, Any] = {"ts": "2025-03-01T09:00:00Z", "account_id": "acct-1"}
VALID: dict[str, dict[str, Any]] = {
    "deposit": {"asset": "BTC", "amount": "0.5", "value_usd": "30000.00", "chain": "BTC", "address": "bc1qxyz"},
    "withdrawal": {"asset": "USD", "amount": "100", "value_usd": "100", "chain": "FIAT", "address": "bank-1"},
    "trade": {"symbol": "BTC-USDT", "side": "buy", "amount": "0.01", "price": "60000", "value_usd": "600"},
    "transfer_in": {"asset": "USDT", "amount": "5", "value_usd": "5", "counterparty_account_id": "acct-2"},
    "transfer_out": {"asset": "USDT", "amount": "5", "value_usd": "5", "counterparty_account_id": "acct-2"},
    "login": {"ip": "203.0.113.9", "country": "JP", "device_id": "dev-1", "success": True},
    "security_change": {"change": "2fa_disabled"},
    "account_opened": {"country": "JP", "kyc_level": 0},
    "kyc_update": {"kyc_level": 2, "status": "approved"},
}


def event(kind: str, event_id: str = "e1", **override: Any) -> dict[str, Any]:
    obj = {"event_id": event_id, **BASE, "type": kind, **VALID[kind], **override}
    return {k: v for k, v in obj.items() if v is not ...}


def problems(obj: object, line: int = 7) -> list[Problem]:
    with pytest.raises(EventValidationError) as caught:
        parse_event(obj, line)
    assert all(p.line == line for p in caught.value.problems)
    return list(caught.value.problems)


def fields_of(found: list[Problem]) -> set[str]:
    return {p.field for p in found}


@pytest.mark.parametrize("kind", list(VALID))
def test_every_type_parses_and_round_trips(kind: str) -> None:
    parsed = parse_event(event(kind), 1)
    assert parsed.type is EventType(kind)
    assert parsed.ts == datetime(2025, 3, 1, 9, tzinfo=UTC)
    assert parse_event(parsed.to_json(), 1) == parsed
    assert json.loads(json.dumps(parsed.to_json())) == parsed.to_json()


def test_values_are_typed_exactly() -> None:
    deposit = parse_event(event("deposit"), 1)
    assert isinstance(deposit, Deposit) and deposit.amount == Decimal("0.5") and deposit.chain == "BTC"
    trade = parse_event(event("trade"), 1)
    assert isinstance(trade, Trade) and trade.side is Side.BUY and trade.price == Decimal("60000")
    login = parse_event(event("login", ip="2001:DB8::1"), 1)
    assert isinstance(login, Login) and login.ip == "2001:db8::1" and login.success is True


def test_any_offset_becomes_utc_but_a_missing_offset_is_rejected() -> None:
    assert parse_event(event("login", ts="2025-03-01T09:00:00+09:00"), 1).ts == datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_event(event("login", ts="2025-03-01T09:00:00.123456789Z"), 1).ts.microsecond == 123456
    (naive,) = problems(event("login", ts="2025-03-01T09:00:00"))
    assert naive.field == "ts" and "offset" in naive.message
    for bad in ("2025-03-01", "2025-02-30T00:00:00Z", "yesterday", 1740819600):
        assert fields_of(problems(event("login", ts=bad))) == {"ts"}


@pytest.mark.parametrize("amount", [0.5, 1, 1e-7])
def test_json_numbers_are_refused_for_money(amount: Any) -> None:
    (found,) = problems(event("deposit", amount=amount))
    assert found.field == "amount" and "decimal string" in found.message and "JSON number" in found.message


@pytest.mark.parametrize("amount", ["-1", "1e5", "1,000", " 1", "1.", ".5", "NaN", "1." + "0" * 19, "9" * 25, ""])
def test_bad_decimal_strings(amount: str) -> None:
    assert fields_of(problems(event("deposit", amount=amount))) == {"amount"}


@pytest.mark.parametrize(
    ("kind", "override", "field"),
    [
        ("deposit", {"asset": "btc"}, "asset"),
        ("deposit", {"chain": "x"}, "chain"),
        ("deposit", {"address": "has space"}, "address"),
        ("deposit", {"value_usd": ...}, "value_usd"),
        ("trade", {"side": "hold"}, "side"),
        ("trade", {"symbol": "BTC USDT"}, "symbol"),
        ("transfer_out", {"counterparty_account_id": "acct-1"}, "counterparty_account_id"),
        ("login", {"ip": "999.1.1.1"}, "ip"),
        ("login", {"country": "ZZ"}, "country"),
        ("login", {"country": "jp"}, "country"),
        ("login", {"success": "true"}, "success"),
        ("login", {"success": 1}, "success"),
        ("security_change", {"change": "hair_colour"}, "change"),
        ("account_opened", {"kyc_level": True}, "kyc_level"),
        ("kyc_update", {"kyc_level": 10}, "kyc_level"),
        ("kyc_update", {"status": "maybe"}, "status"),
        ("kyc_update", {"amout": "1"}, "amout"),
    ],
)
def test_each_bad_field_is_named(kind: str, override: dict[str, Any], field: str) -> None:
    assert fields_of(problems(event(kind, **override))) == {field}


def test_every_problem_of_an_event_is_listed() -> None:
    bad = event("deposit", event_id="", account_id="has space", ts="soon", amount=1.5, value_usd="-3", chain=None)
    assert fields_of(problems(bad)) == {"event_id", "account_id", "ts", "amount", "value_usd", "chain"}


def test_unknown_type_and_non_objects() -> None:
    found = problems({**BASE, "event_id": "e1", "type": "airdrop"})
    assert fields_of(found) == {"type"} and "deposit" in found[0].message
    assert problems([1, 2])[0].field == ""
    assert fields_of(problems({})) == {"event_id", "ts", "account_id", "type"}


def test_batch_json_lines_names_lines_and_lists_every_problem() -> None:
    lines = [json.dumps(event("login", "a")), "", json.dumps(event("deposit", "b", amount=2.5)), "{not json",
             json.dumps(event("login", "a")), json.dumps(event("trade", "c", side="up", price="x"))]
    with pytest.raises(EventValidationError) as caught:
        parse_batch("\n".join(lines), "batch.jsonl")
    rendered = caught.value.lines()
    assert rendered[0].startswith("batch.jsonl:3: field 'amount': ")
    assert rendered[1].startswith("batch.jsonl:4: not valid JSON")
    assert rendered[2].startswith("batch.jsonl:5: field 'event_id': ") and "line 1" not in rendered[2]
    assert {r.split(": ")[1] for r in rendered[3:]} == {"field 'side'", "field 'price'"}


def test_batch_json_array_keeps_the_line_of_each_element() -> None:
    text = "[\n" + ",\n".join(json.dumps(event("login", f"e{i}"), indent=1) for i in range(3)) + "\n]\n"
    assert [e.event_id for e in parse_batch(text)] == ["e0", "e1", "e2"]
    broken = text.replace('"success": true', '"success": "yes"', 1).replace('"e2"', '"e0"')
    with pytest.raises(EventValidationError) as caught:
        parse_batch(broken, "f.json")
    span = json.dumps(event("login"), indent=1).count("\n") + 1  # lines per element
    # Each problem points at the line where its element starts: element 0 on line 2, element 2 below.
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "success"), (2 + 2 * span, "event_id")]
    assert caught.value.lines()[0].startswith("f.json:2: field 'success'")
    assert parse_batch("[]") == [] and parse_batch("") == []
    for junk in ("[1 2]", "[{}] x", '[{"a": 1, "a": 2}]'):
        with pytest.raises(EventValidationError):
            parse_batch(junk)


def test_duplicate_keys_inside_one_object_are_refused() -> None:
    line = '{"event_id": "e1", "amount": "1", "amount": "1000"}'
    with pytest.raises(EventValidationError, match="appears twice"):
        parse_batch(line)
