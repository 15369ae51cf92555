"""Each standard-pack rule fires on a small hand-written stream that embodies it, and stays quiet on
the busy-but-normal customer that resembles it (market maker, salary, a large deposit then traded,
a traveller). Every stream runs through BOTH engines, which must agree alert for alert.

The streams are written the way an analyst would describe the case ("deposit 20,000, ten minutes
later withdraw 18,000 to an address never seen"), so a failing test reads as a broken intent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from freezedesk.monitoring.rules import Alert, backtest, load_pack

PACK = load_pack(None)
T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
LISTED = {"bc1qlisted0000000000000000000000000000"}


class Stream:
    """Builds events for one account; ``at(days, hours, minutes)`` is the offset from T0."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.events: list[dict[str, Any]] = []

    def _add(self, when: timedelta, kind: str, **fields: Any) -> Stream:
        ts = (T0 + when).isoformat().replace("+00:00", "Z")
        self.events.append({"event_id": f"{self.account}-{len(self.events):04d}", "ts": ts,
                            "account_id": self.account, "type": kind, **fields})
        return self

    def money(self, when: timedelta, kind: str, usd: str, address: str) -> Stream:
        return self._add(when, kind, asset="USDT", amount=usd, value_usd=usd, chain="TRON", address=address)

    def trade(self, when: timedelta, usd: str) -> Stream:
        return self._add(when, "trade", symbol="BTC-USDT", side="buy", amount="1", price=usd, value_usd=usd)

    def login(self, when: timedelta, device: str, country: str) -> Stream:
        return self._add(when, "login", ip="192.0.2.7", country=country, device_id=device, success=True)

    def change(self, when: timedelta, change: str) -> Stream:
        return self._add(when, "security_change", change=change)

    def transfer(self, when: timedelta, kind: str, usd: str, peer: str) -> Stream:
        return self._add(when, kind, asset="USDT", amount=usd, value_usd=usd, counterparty_account_id=peer)


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> timedelta:
    return timedelta(days=days, hours=hours, minutes=minutes)


def run(tmp_path: Path, *streams: Stream) -> set[tuple[str, str]]:
    """(account, rule) pairs that fired; asserts that both engines produce identical alerts."""
    events = sorted((e for s in streams for e in s.events), key=lambda e: e["ts"])
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    batch: list[Alert] = list(backtest(path, PACK, LISTED, engine="batch"))
    stream: list[Alert] = list(backtest(path, PACK, LISTED, engine="stream"))
    assert [a.to_json() for a in batch] == [a.to_json() for a in stream]
    return {(a.account_id, a.rule_id) for a in batch}


# -- the streams ------------------------------------------------------------------------------------


def high_volume() -> Stream:
    s = Stream("hv").money(at(0), "deposit", "90000", "src-1")
    for day in range(1, 35):  # a small, steady normal: one 100 USD withdrawal a day
        s.money(at(day), "withdrawal", "100", "own-1")
    for i in range(4):  # then 80,000 leaves within three hours
        s.money(at(35, hours=i), "withdrawal", "20000", "own-1")
    return s


def market_maker() -> Stream:
    """Moves 100,000 a day every day; a busy day of 3 × 40,000 is only 1.2 × its normal."""
    s = Stream("mm")
    for day in range(40):
        s.money(at(day, hours=1), "deposit", "100000", "mm-desk")
        for i in range(20):
            s.trade(at(day, hours=2, minutes=i), "50000")
        s.money(at(day, hours=12), "withdrawal", "100000", "mm-desk")
    for i in range(3):
        s.money(at(40, hours=13 + i), "withdrawal", "40000", "mm-desk")
    for i in range(12):  # rebalancing deposits, all from its one desk address: one source, not fan-in
        s.money(at(40, hours=14, minutes=i), "deposit", "50000", "mm-desk")
    return s


def dormant() -> Stream:
    return (Stream("dorm").money(at(0), "deposit", "30000", "src-1").trade(at(1), "500")
            .money(at(200), "withdrawal", "25000", "own-1"))


def salary() -> Stream:
    """A large salary just under 10,000 every month, then a big purchase paid out after 200 days."""
    s = Stream("sal").money(at(0), "deposit", "9800", "bank-1")
    for month in range(1, 8):
        s.money(at(30 * month), "deposit", "9800", "bank-1")
    return s.money(at(211), "withdrawal", "25000", "bank-1")


def structuring() -> Stream:
    s = Stream("struct")
    for i, usd in enumerate(("9500", "9900", "9100", "9999.99")):
        s.money(at(3, hours=3 * i), "deposit", usd, f"bank-{i}")
    return s


def pass_through() -> Stream:
    return (Stream("pt").money(at(0), "deposit", "50", "src-0")
            .money(at(5), "deposit", "20000", "src-1").money(at(5, minutes=12), "withdrawal", "18000", "fresh-1"))


def large_deposit_traded() -> Stream:
    s = Stream("ldt").money(at(5), "deposit", "80000", "bank-1")
    for i in range(6):
        s.trade(at(5, hours=1 + i), "12000")
    return s.money(at(5, hours=8), "withdrawal", "900", "own-known").money(at(0), "deposit", "10", "own-known")


def account_takeover() -> Stream:
    return (Stream("ato").login(at(0), "dev-home", "JP").trade(at(0, 1), "100")
            .login(at(10), "dev-home", "JP")
            .login(at(20), "dev-new", "NG").change(at(20, minutes=3), "password")
            .change(at(20, minutes=5), "withdraw_address_added")
            .money(at(20, minutes=30), "withdrawal", "7000", "fresh-1"))


def traveller() -> Stream:
    """Logs in from Thailand on a new phone, changes its phone number, withdraws to a known address."""
    return (Stream("trav").login(at(0), "dev-home", "JP").money(at(0, 1), "withdrawal", "50", "own-1")
            .login(at(20), "dev-phone2", "TH").change(at(20, minutes=3), "phone")
            .money(at(20, minutes=30), "withdrawal", "3000", "own-1"))


def fan_in() -> Stream:
    s = Stream("fin")
    for i in range(7):
        s.money(at(3, minutes=20 * i), "deposit", "300", f"src-{i}")
    for i in range(3):
        s.transfer(at(3, hours=4, minutes=i), "transfer_in", "200", f"peer-{i}")
    return s


def fan_out() -> Stream:
    s = Stream("fout").money(at(0), "deposit", "5000", "src-1")
    for i in range(5):
        s.money(at(3, minutes=20 * i), "withdrawal", "300", f"fresh-{i}")
    return s


def payroll() -> Stream:
    """Pays the same five addresses every week: many destinations, none new (each was first paid
    alone, on the day that person joined)."""
    s = Stream("pay").money(at(0), "deposit", "50000", "src-1")
    for i in range(5):
        s.money(at(i + 1), "withdrawal", "100", f"staff-{i}")
    for week in range(1, 5):
        for i in range(5):
            s.money(at(7 * week + 1, minutes=10 * i), "withdrawal", "900", f"staff-{i}")
    return s


def listed() -> Stream:
    return Stream("lst").money(at(1), "deposit", "700", next(iter(LISTED))).money(at(2), "deposit", "700", "ok-1")


FIRES = {
    "high_volume": high_volume, "structuring": structuring, "pass_through": pass_through,
    "dormant_reactivation": dormant, "account_takeover": account_takeover, "fan_in": fan_in,
    "fan_out": fan_out, "listed_address": listed,
}
DECOYS = {"market_maker": market_maker, "salary": salary, "large_deposit_traded": large_deposit_traded,
          "traveller": traveller, "payroll": payroll}


def test_every_pack_rule_has_a_stream() -> None:
    assert set(FIRES) == {r.id for r in PACK.rules}


@pytest.mark.parametrize("rule_id", sorted(FIRES))
def test_rule_fires_on_its_typology_in_both_engines(rule_id: str, tmp_path: Path) -> None:
    stream = FIRES[rule_id]()
    fired = run(tmp_path, stream)
    assert (stream.account, rule_id) in fired
    assert {r for _a, r in fired} == {rule_id}, "only the rule the stream embodies"


@pytest.mark.parametrize("decoy", sorted(DECOYS))
def test_busy_but_normal_customers_stay_quiet(decoy: str, tmp_path: Path) -> None:
    assert run(tmp_path, DECOYS[decoy]()) == set()


def test_one_burst_is_one_alert(tmp_path: Path) -> None:
    s = Stream("burst")
    for i in range(12):  # structuring keeps being true on every deposit from the third on
        s.money(at(3, minutes=30 * i), "deposit", "9500", f"bank-{i}")
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in s.events))
    for engine in ("batch", "stream"):
        alerts = [a for a in backtest(events, PACK, LISTED, engine=engine) if a.rule_id == "structuring"]
        assert len(alerts) == 1
        assert len(alerts[0].event_ids) == 3  # the trigger and the window's matching deposits


def test_all_streams_together_keep_parity(tmp_path: Path) -> None:
    streams = [f() for f in (*FIRES.values(), *DECOYS.values())]
    fired = run(tmp_path, *streams)
    assert {r for _a, r in fired} == set(FIRES)
    assert not {a for a, _r in fired} & {"mm", "sal", "ldt", "trav", "pay"}
