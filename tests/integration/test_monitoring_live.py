"""In-process monitoring through the API: events in, alerts → cases → restrictions enforced at once.

Every test posts events the way the exchange core would (``POST /v1/events``) and checks what a
partner and an investigator would see next: the alerts in the response, the case evidence, the
restriction, the permission check, the webhook — on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from freezedesk.store.tables import accounts, monitoring_alerts, restrictions
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth
from tests.receiver import Receiver

#: Event times: recent, so nothing depends on a replay lookback.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def deposit(eid: str, account: str, minutes: float, usd: str = "9500", address: str = "bc1qsrc") -> dict[str, Any]:
    return {"event_id": eid, "ts": at(minutes), "account_id": account, "type": "deposit", "asset": "USD",
            "amount": usd, "value_usd": usd, "chain": "FIAT", "address": address}


def withdrawal(eid: str, account: str, minutes: float, usd: str = "2000", address: str = "bc1qdst") -> dict[str, Any]:
    return {"event_id": eid, "ts": at(minutes), "account_id": account, "type": "withdrawal", "asset": "BTC",
            "amount": "0.03", "value_usd": usd, "chain": "BTC", "address": address}


def login(eid: str, account: str, minutes: float, device: str, country: str) -> dict[str, Any]:
    return {"event_id": eid, "ts": at(minutes), "account_id": account, "type": "login", "ip": "203.0.113.9",
            "country": country, "device_id": device, "success": True}


def structuring_burst(account: str, prefix: str = "s") -> list[dict[str, Any]]:
    """Three deposits just below 10,000 USD within an hour: the structuring rule's typology."""
    return [deposit(f"{prefix}-{i}", account, 20 * i) for i in range(3)]


def takeover(account: str) -> list[dict[str, Any]]:
    """An established account: a login from a new device and country, a password change, a withdrawal."""
    day = 24 * 60
    return [
        {"event_id": f"{account}-open", "ts": at(-30 * day), "account_id": account, "type": "account_opened",
         "country": "JP", "kyc_level": 2},
        login(f"{account}-l1", account, -30 * day + 5, "dev-home", "JP"),
        login(f"{account}-l2", account, 0, "dev-evil", "RO"),
        {"event_id": f"{account}-pw", "ts": at(5), "account_id": account, "type": "security_change",
         "change": "password"},
        withdrawal(f"{account}-w", account, 10, usd="4000", address="bc1qthief"),
    ]


def post(client: TestClient, key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/events", json={"events": batch}, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def allowed(client: TestClient, key: str, account: str, action: str) -> bool:
    r = client.get(f"/v1/accounts/{account}/permissions", params={"action": action}, headers=auth(key))
    assert r.status_code == 200, r.text
    return bool(r.json()["allowed"])


def count(store: Store, table: Any) -> int:
    with store.read() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_structuring_burst_is_one_alert_a_case_and_a_withdrawal_hold(
    hooked: TestClient, staff: Staff, store: Store, receiver: Receiver,
) -> None:
    created = hooked.post("/v1/webhooks", json={"url": receiver.url, "events": ["restriction.created"]},
                          headers=auth(staff.partner))
    assert created.status_code == 201, created.text
    assert allowed(hooked, staff.partner, "acct-s", "withdraw")

    body = post(hooked, staff.partner, structuring_burst("acct-s"))
    assert body["accepted"] == 3
    [alert] = body["alerts"]  # one burst, one alert — not one per deposit
    assert (alert["rule_id"], alert["reason_code"], alert["action"]) == ("structuring", "SUS_STRUCTURING", "hold")
    assert alert["event_ids"] == ["s-0", "s-1", "s-2"]
    assert alert["restriction_id"] and alert["restriction_in_force"] == alert["restriction_id"]
    assert alert["inquiry_number"]

    # enforced by the very next check: withdrawals held, trading goes on
    assert not allowed(hooked, staff.partner, "acct-s", "withdraw")
    assert allowed(hooked, staff.partner, "acct-s", "trade")
    restriction = hooked.get(f"/v1/restrictions/{alert['restriction_id']}", headers=auth(staff.partner)).json()
    assert restriction["reason_code"] == "SUS_STRUCTURING" and restriction["scopes"] == ["withdraw"]
    assert restriction["case_id"] == alert["case_id"]

    case = hooked.get(f"/v1/cases/{alert['case_id']}", headers=auth(staff.investigator)).json()
    assert case["cause"] == "suspicious_activity"
    [evidence] = case["evidence"]["monitoring_alerts"]
    assert evidence["id"] == alert["id"] and evidence["event_ids"] == ["s-0", "s-1", "s-2"]
    assert [e["event_id"] for e in evidence["events"]] == ["s-0", "s-1", "s-2"]

    [hook] = receiver.wait_for(1)
    assert hook.json["type"] == "restriction.created"
    assert hook.json["data"]["id"] == alert["restriction_id"]

    # a fourth deposit in the same burst: still the same alert, still one restriction
    assert post(hooked, staff.partner, [deposit("s-3", "acct-s", 70)])["alerts"] == []
    assert count(store, restrictions) == 1 and count(store, monitoring_alerts) == 1


def test_replaying_a_batch_raises_nothing_new(client: TestClient, staff: Staff, store: Store) -> None:
    batch = structuring_burst("acct-r")
    assert len(post(client, staff.partner, batch)["alerts"]) == 1
    again = post(client, staff.partner, batch)
    assert (again["accepted"], again["duplicates"], again["alerts"]) == (0, 3, [])
    assert count(store, restrictions) == 1 and count(store, monitoring_alerts) == 1


def test_account_takeover_freezes_login(client: TestClient, staff: Staff) -> None:
    body = post(client, staff.partner, takeover("acct-t"))
    [alert] = body["alerts"]
    assert (alert["rule_id"], alert["reason_code"], alert["action"]) == (
        "account_takeover", "SEC_ACCOUNT_TAKEOVER", "freeze")
    for action in ("login", "withdraw", "api"):
        assert not allowed(client, staff.partner, "acct-t", action)
    case = client.get(f"/v1/cases/{alert['case_id']}", headers=auth(staff.security)).json()
    assert case["cause"] == "security"
    assert case["evidence"]["monitoring_alerts"][0]["event_ids"][-1] == "acct-t-w"


def test_a_later_burst_of_the_same_rule_is_evidence_not_a_second_restriction(
    client: TestClient, staff: Staff, store: Store,
) -> None:
    [first] = post(client, staff.partner, structuring_burst("acct-b"))["alerts"]
    later = [deposit(f"b2-{i}", "acct-b", 2 * 24 * 60 + 20 * i) for i in range(3)]  # past the 24 h dedup
    [second] = post(client, staff.partner, later)["alerts"]
    assert second["restriction_id"] is None and second["restriction_in_force"] == first["restriction_id"]
    assert second["case_id"] == first["case_id"]
    assert count(store, restrictions) == 1
    case = client.get(f"/v1/cases/{first['case_id']}", headers=auth(staff.investigator)).json()
    assert [a["id"] for a in case["evidence"]["monitoring_alerts"]] == [first["id"], second["id"]]


def test_an_alert_only_rule_opens_a_case_without_restricting(client: TestClient, staff: Staff, store: Store) -> None:
    fan_out = [withdrawal(f"f-{i}", "acct-f", 10 * i, usd="300", address=f"bc1qdest{i}") for i in range(5)]
    [alert] = post(client, staff.partner, fan_out)["alerts"]
    assert (alert["rule_id"], alert["action"], alert["restriction_id"]) == ("fan_out", "alert", None)
    assert allowed(client, staff.partner, "acct-f", "withdraw")
    assert count(store, restrictions) == 0
    case = client.get(f"/v1/cases/{alert['case_id']}", headers=auth(staff.investigator)).json()
    assert case["state"] == "opened" and len(case["evidence"]["monitoring_alerts"]) == 1


def test_window_state_survives_a_restart(db_url: str, staff: Staff, store: Store) -> None:
    burst = structuring_burst("acct-x")
    with api_client(db_url) as first:
        assert post(first, staff.partner, burst[:2])["alerts"] == []
    with api_client(db_url) as second:  # a new process: the engine is rebuilt from stored events
        [alert] = post(second, staff.partner, burst[2:])["alerts"]
        assert alert["event_ids"] == ["s-0", "s-1", "s-2"]
        assert not allowed(second, staff.partner, "acct-x", "withdraw")
    with api_client(db_url) as third:  # the replay restores dedup too: no second alert for this burst
        assert post(third, staff.partner, [deposit("s-3", "acct-x", 70)])["alerts"] == []
    assert count(store, monitoring_alerts) == 1 and count(store, restrictions) == 1


def test_a_failed_transaction_leaves_the_engine_as_the_database(
    store: Store, catalogue: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine ran but the commit failed: the retry must not count the first attempt's events."""
    from freezedesk.monitoring import live
    from freezedesk.monitoring.events import parse_batch

    monitor = live.Monitor.from_env(store, catalogue)
    monitor.warm()
    burst = parse_batch("\n".join(json.dumps(e) for e in structuring_burst("acct-f")))
    assert monitor.submit(burst[:2], "test", "unit").alerts == []

    def broken(*args: Any) -> list[dict[str, Any]]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(live, "apply_alerts", broken)
    with pytest.raises(RuntimeError):
        monitor.submit(burst[2:], "test", "unit")  # engine fired, transaction rolled back
    monkeypatch.undo()
    [alert] = monitor.submit(burst[2:], "test", "unit").alerts  # fires again: the rollback was forgotten
    assert alert["event_ids"] == ["s-0", "s-1", "s-2"]
    assert count(store, monitoring_alerts) == 1


# -- two server processes on one database ------------------------------------------------------------
# Two runtimes (each with its own monitor, engine and connection pool) on the same database stand for
# two `freezedesk serve` processes behind a load balancer.


def events_counted(store: Store, account: str) -> int:
    with store.read() as uow:
        return int(uow.conn.execute(select(accounts.c.events_counted).where(accounts.c.id == account)).scalar_one())


def test_a_burst_split_across_two_processes_fires_once_on_the_process_completing_it(
    db_url: str, staff: Staff, store: Store,
) -> None:
    s0, s1, s2, s3 = [deposit(f"s-{i}", "acct-ha", 20 * i) for i in range(4)]
    with api_client(db_url) as a, api_client(db_url) as b:
        assert post(a, staff.partner, [s0])["alerts"] == []
        assert post(b, staff.partner, [s1])["alerts"] == []
        [alert] = post(a, staff.partner, [s2])["alerts"]  # a's engine learns of s-1 before counting s-2
        assert (alert["rule_id"], alert["event_ids"]) == ("structuring", ["s-0", "s-1", "s-2"])
        assert not allowed(a, staff.partner, "acct-ha", "withdraw")  # enforced when the POST returned
        # b catches up too: the burst is deduplicated there as well, not alerted again
        assert post(b, staff.partner, [s3])["alerts"] == []
    assert count(store, monitoring_alerts) == 1
    with store.read() as uow:
        [row] = uow.conn.execute(select(restrictions.c.reason_code, restrictions.c.status)).all()
    assert tuple(row) == ("SUS_STRUCTURING", "active")
    assert events_counted(store, "acct-ha") == 4


def test_dedup_holds_across_processes(db_url: str, staff: Staff, store: Store) -> None:
    burst = [deposit(f"d-{i}", "acct-dd", 20 * i) for i in range(6)]  # two bursts' worth within 24 h
    with api_client(db_url) as a, api_client(db_url) as b:
        [alert] = post(a, staff.partner, burst[:3])["alerts"]
        assert alert["event_ids"] == ["d-0", "d-1", "d-2"]
        # within the rule's 24 h dedup: b must know that a already alerted on this account
        assert post(b, staff.partner, burst[3:])["alerts"] == []
    assert count(store, monitoring_alerts) == 1 and count(store, restrictions) == 1


def test_a_duplicate_posted_to_the_other_process_changes_nothing(db_url: str, staff: Staff, store: Store) -> None:
    s0, s1, s2 = structuring_burst("acct-dup")
    with api_client(db_url) as a, api_client(db_url) as b:
        assert post(a, staff.partner, [s0, s1])["alerts"] == []
        again = post(b, staff.partner, [s1])
        assert (again["accepted"], again["duplicates"], again["alerts"]) == (0, 1, [])
        assert events_counted(store, "acct-dup") == 2  # a duplicate is not counted
        [alert] = post(b, staff.partner, [s2])["alerts"]  # s-1 counted once, on b as on a
        assert alert["event_ids"] == ["s-0", "s-1", "s-2"]
        everything = post(a, staff.partner, [s0, s1, s2])
        assert (everything["accepted"], everything["duplicates"], everything["alerts"]) == (0, 3, [])
    assert count(store, monitoring_alerts) == 1 and count(store, restrictions) == 1
    assert events_counted(store, "acct-dup") == 3


def test_a_failed_transaction_forgets_the_other_processes_events_it_caught_up_on(
    store: Store, catalogue: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A monitor caught up on another's events, then its transaction failed: what it knows must be
    what the database says, so the other process's later events are not taken as already counted."""
    from freezedesk.monitoring import live
    from freezedesk.monitoring.events import parse_batch

    a, b = (live.Monitor.from_env(Store(store.url), catalogue) for _ in range(2))
    for monitor in (a, b):
        monitor.warm()
    s0, s1, s2 = parse_batch("\n".join(json.dumps(e) for e in structuring_burst("acct-fx")))
    assert a.submit([s0], "test", "unit").alerts == []

    def broken(*args: Any) -> list[dict[str, Any]]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(live, "apply_alerts", broken)
    with pytest.raises(RuntimeError):
        b.submit([s1], "test", "unit")  # b caught up on s-0 and counted s-1; rolled back
    monkeypatch.undo()
    assert a.submit([s1], "test", "unit").alerts == []  # s-1 stored by a after all
    [alert] = b.submit([s2], "test", "unit").alerts
    assert alert["event_ids"] == ["s-0", "s-1", "s-2"]
    assert count(store, monitoring_alerts) == 1
    for monitor in (a, b):
        monitor.store.dispose()
