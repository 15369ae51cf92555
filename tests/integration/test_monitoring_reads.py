"""What staff see of monitoring, and what a customer must not: the alert list and detail, the
active rules, the case timeline — and the inquiry view, which never reveals any of it.

Events go in as the exchange core sends them (``POST /v1/events``); every read is over HTTP, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from freezedesk.domain.restrictions import Actor
from freezedesk.reference import load_catalogue
from freezedesk.screening.service import ScreeningService
from freezedesk.store.uow import Store
from tests.factories import Staff, api_client, auth
from tests.integration.test_monitoring_live import T0, allowed, deposit, post, structuring_burst, withdrawal

PROBLEM = "application/problem+json"


def fan_out(account: str, prefix: str = "f") -> list[dict[str, Any]]:
    """Withdrawals to five never-used addresses within the hour: an alert-only rule (fan_out)."""
    return [withdrawal(f"{prefix}-{i}", account, 10 * i, usd="300", address=f"bc1q{prefix}dest{i}") for i in range(5)]


def get(client: TestClient, key: str, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(client: TestClient, key: str | None, path: str, status: int, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params, headers=auth(key) if key else {})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


# -- the case timeline and the customer's inquiry ------------------------------------------------


def test_the_staff_timeline_shows_each_alert_and_the_inquiry_shows_none(client: TestClient, staff: Staff) -> None:
    [first] = post(client, staff.partner, structuring_burst("acct-s"))["alerts"]
    later = [deposit(f"b2-{i}", "acct-s", 2 * 24 * 60 + 20 * i) for i in range(3)]  # past the 24 h dedup
    [second] = post(client, staff.partner, later)["alerts"]

    case = get(client, staff.investigator, f"/v1/cases/{first['case_id']}")
    entries = [e for e in case["timeline"] if e["event"] == "monitoring_alert"]
    assert [(e["data"]["alert_id"], e["data"]["outcome"], e["data"]["restriction_id"]) for e in entries] == [
        (first["id"], "restricted", first["restriction_id"]),
        (second["id"], "attached_to_restriction", first["restriction_id"]),
    ]
    assert entries[0]["data"] | {"alert_id": None, "restriction_id": None} == {
        "alert_id": None, "rule_id": "structuring", "reason_code": "SUS_STRUCTURING", "ts": first["ts"],
        "event_count": 3, "action": "hold", "outcome": "restricted", "restriction_id": None}
    assert entries[0]["from"] is None and entries[0]["to"] is None and entries[0]["actor"] == "system:monitoring"

    # The same restriction imposed by hand: the customer cannot tell the two apart.
    manual = client.post("/v1/accounts/acct-m/restrictions", headers=auth(staff.partner),
                         json={"reason_code": "SUS_STRUCTURING", "scopes": ["withdrawal_hold"]})
    assert manual.status_code == 201, manual.text
    seen = get(client, staff.partner, f"/v1/inquiries/{first['inquiry_number']}", locale="en")
    control = get(client, staff.partner, f"/v1/inquiries/{manual.json()['inquiry_number']}", locale="en")
    assert [e["status"] for e in seen["timeline"]] == [e["status"] for e in control["timeline"]] == ["received"]
    assert seen["status"] == control["status"] and seen["cause"] is control["cause"] is None

    def shape(view: dict[str, Any]) -> list[dict[str, Any]]:  # the texts quote the inquiry number
        return [{k: v.replace(view["inquiry_number"], "#") if isinstance(v, str) else v
                 for k, v in r.items() if k not in ("since", "until")} for r in view["restrictions"]]

    assert shape(seen) == shape(control)
    text = json.dumps(seen).lower()
    for secret in ("alert", "monitor", "rule", "structuring", "sus_", first["id"].lower(), "investigat"):
        assert secret not in text, (secret, seen)


def test_an_alert_that_restricts_nothing_has_no_customer_inquiry(client: TestClient, staff: Staff) -> None:
    [alert] = post(client, staff.partner, fan_out("acct-f"))["alerts"]
    assert (alert["rule_id"], alert["restriction_id"]) == ("fan_out", None)
    hidden = problem(client, staff.partner, f"/v1/inquiries/{alert['inquiry_number']}", 404)
    assert hidden["type"] == "/problems/not-found"
    assert hidden["detail"] == f"inquiry {alert['inquiry_number']} does not exist"  # as for a number never issued


def test_a_restriction_joining_a_monitoring_case_shows_only_from_its_start(client: TestClient, staff: Staff) -> None:
    """fan_out opened a suspicious-activity case (alert only); a structuring hold joins it later.
    The customer's inquiry starts at the hold: the earlier, silent investigation does not show."""
    [quiet] = post(client, staff.partner, fan_out("acct-j"))["alerts"]
    [held] = post(client, staff.partner, structuring_burst("acct-j", prefix="j"))["alerts"]
    assert held["case_id"] == quiet["case_id"] and held["restriction_id"]
    case = get(client, staff.investigator, f"/v1/cases/{held['case_id']}")
    seen = get(client, staff.partner, f"/v1/inquiries/{held['inquiry_number']}", locale="en")
    [restriction] = seen["restrictions"]
    assert case["opened_at"] < restriction["since"]
    assert seen["opened_at"] == restriction["since"]
    assert seen["timeline"] == [{"at": restriction["since"], "status": "received"}]


# -- GET /v1/monitoring/alerts ---------------------------------------------------------------------


def test_the_alert_list_is_staff_only(client: TestClient, staff: Staff) -> None:
    post(client, staff.partner, structuring_burst("acct-s"))
    for key in (staff.compliance, staff.investigator, staff.auditor, staff.agent):
        assert len(get(client, key, "/v1/monitoring/alerts")["items"]) == 1
    for path in ("/v1/monitoring/alerts", "/v1/monitoring/rules"):
        assert problem(client, staff.partner, path, 403)["type"] == "/problems/staff-key-required"
        assert problem(client, None, path, 401)["type"] == "/problems/unauthenticated"


def test_filters_order_and_pages(client: TestClient, staff: Staff) -> None:
    [a1] = post(client, staff.partner, structuring_burst("acct-a", prefix="a"))["alerts"]  # ts = minute 40
    [b1] = post(client, staff.partner, fan_out("acct-b"))["alerts"]  # minute 40 too: same ts, ordered by id
    [a2] = post(client, staff.partner, [deposit(f"a2-{i}", "acct-a", 2 * 24 * 60 + 20 * i) for i in range(3)])["alerts"]
    [c1] = post(client, staff.partner, [deposit(f"c-{i}", "acct-c", 60 + 20 * i) for i in range(3)])["alerts"]
    newest_first = [a2["id"], c1["id"], *sorted([a1["id"], b1["id"]], reverse=True)]

    listing = get(client, staff.compliance, "/v1/monitoring/alerts")
    assert [a["id"] for a in listing["items"]] == newest_first and listing["next_cursor"] is None
    item = listing["items"][0]
    assert item == {**item, "account_id": "acct-a", "rule_id": "structuring", "rule_title": item["rule_title"],
                    "reason_code": "SUS_STRUCTURING", "action": "hold", "case_id": a1["case_id"],
                    "inquiry_number": a1["inquiry_number"], "restriction_id": None,
                    "event_ids": ["a2-0", "a2-1", "a2-2"]}
    assert item["rule_title"].startswith("Repeated deposits")

    def ids(**params: Any) -> list[str]:
        return [a["id"] for a in get(client, staff.auditor, "/v1/monitoring/alerts", **params)["items"]]

    assert ids(account_id="acct-a") == [a2["id"], a1["id"]]
    assert ids(rule_id="fan_out") == [b1["id"]]
    assert ids(reason_code="SUS_STRUCTURING") == [a2["id"], c1["id"], a1["id"]]
    assert ids(rule_id="no_such_rule") == []
    assert ids(since=iso(60)) == [a2["id"], c1["id"]]  # since is inclusive …
    assert ids(since=iso(40), until=iso(100)) == sorted([a1["id"], b1["id"]], reverse=True)  # … until is not
    assert ids(until=iso(100.001), account_id="acct-c") == [c1["id"]]

    # one at a time: every alert once, in the same order, then no cursor
    seen: list[str] = []
    cursor = None
    for _ in range(len(newest_first)):
        page = get(client, staff.compliance, "/v1/monitoring/alerts", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
    assert seen == newest_first and cursor is None
    # an alert arriving between pages (older than the page read: events come late) is found
    # further on; nothing read before repeats or is skipped
    two = get(client, staff.compliance, "/v1/monitoring/alerts", limit=2)
    assert [a["id"] for a in two["items"]] == newest_first[:2]
    [d1] = post(client, staff.partner, fan_out("acct-d", prefix="d"))["alerts"]  # ts = minute 40, newest id
    rest = get(client, staff.compliance, "/v1/monitoring/alerts", limit=10, cursor=two["next_cursor"])
    assert [a["id"] for a in rest["items"]] == [d1["id"], *newest_first[2:]] and rest["next_cursor"] is None


def test_bad_filters_are_problems(client: TestClient, staff: Staff) -> None:
    path = "/v1/monitoring/alerts"
    backwards = problem(client, staff.compliance, path, 422, since=iso(60), until=iso(0))
    assert (backwards["type"], backwards["field"]) == ("/problems/invalid-query", "since")
    assert problem(client, staff.compliance, path, 422, since=iso(0), until=iso(0))["type"] == "/problems/invalid-query"
    for cursor in ("not-a-cursor", "W10", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiYSJd"):  # garbage, [], a naive time
        bad = problem(client, staff.compliance, path, 422, cursor=cursor)
        assert (bad["type"], bad["field"]) == ("/problems/invalid-query", "cursor"), bad
    for params in ({"since": "2026-01-01T00:00:00"}, {"until": "yesterday"}, {"limit": 0}, {"limit": 501},
                   {"rule_id": "Not A Rule"}, {"reason_code": "x"}, {"account_id": "bad id"}):
        assert problem(client, staff.compliance, path, 422, **params)["type"] == "/problems/validation-error", params
    assert "/problems/invalid-query" in {p["type"] for p in client.get("/problems").json()["items"]}


# -- GET /v1/monitoring/alerts/{id} ---------------------------------------------------------------


def test_one_alert_with_its_events_case_and_restriction(client: TestClient, staff: Staff) -> None:
    [first] = post(client, staff.partner, structuring_burst("acct-s"))["alerts"]
    later = [deposit(f"b2-{i}", "acct-s", 2 * 24 * 60 + 20 * i) for i in range(3)]  # past the 24 h dedup
    [second] = post(client, staff.partner, later)["alerts"]
    [evidence] = post(client, staff.partner, fan_out("acct-s", prefix="sf"))["alerts"]

    one = get(client, staff.auditor, f"/v1/monitoring/alerts/{first['id']}")
    assert [e["event_id"] for e in one["events"]] == ["s-0", "s-1", "s-2"]
    assert one["events"][0]["value_usd"] == "9500" and one["events"][0]["type"] == "deposit"
    assert one["case"] == {"id": first["case_id"], "cause": "suspicious_activity", "state": "opened",
                           "inquiry_number": first["inquiry_number"]}
    assert one["restriction_id"] == one["restriction"]["id"] == first["restriction_id"]
    assert (one["restriction"]["status"], one["restriction"]["scopes"]) == ("active", ["withdraw"])
    assert one["rule"]["id"] == "structuring" and one["rule"]["action"] == "hold"

    # added to the first one's restriction: that is what enforces it
    again = get(client, staff.auditor, f"/v1/monitoring/alerts/{second['id']}")
    assert again["restriction_id"] is None and again["restriction"]["id"] == first["restriction_id"]
    # an alert-only rule restricts nothing
    quiet = get(client, staff.auditor, f"/v1/monitoring/alerts/{evidence['id']}")
    assert quiet["restriction"] is None and len(quiet["events"]) == 5

    missing = problem(client, staff.compliance, "/v1/monitoring/alerts/alr_nope", 404)
    assert missing["type"] == "/problems/not-found"
    assert problem(client, staff.partner, f"/v1/monitoring/alerts/{first['id']}", 403)["type"] == (
        "/problems/staff-key-required")


# -- GET /v1/monitoring/rules ---------------------------------------------------------------------


PACK = """
pack: house
params: {threshold: 10000}
rules:
  - id: near_threshold
    title: Deposits just below the threshold
    intent: Several deposits a little below the threshold within a day.
    reason_code: SUS_STRUCTURING
    action: hold
    on: [deposit]
    params: {near: 0.9, min_count: 3}
    features:
      near_24h:
        count: events
        window: 24h
        where: {type: deposit, value_usd: {gte: "${near} * ${threshold}", lt: "${threshold}"}}
    when: near_24h >= ${min_count}
  - id: quiet_then_out
    title: A large withdrawal to a new address after a quiet spell
    intent: Nothing moved for 90 days, then a withdrawal to a never-used address well above normal.
    reason_code: SEC_ACCOUNT_TAKEOVER
    action: freeze
    on: [withdrawal]
    dedup: 12h
    features:
      idle: {since: events, default: 0d, where: {type: [deposit, withdrawal]}}
      fresh: {first_use: address, where: {type: withdrawal}}
      normal: {baseline: value_usd, days: 30, where: {type: withdrawal}}
    when: idle >= 90d and fresh and value_usd > 5 * normal
  - id: many_sources
    title: Many sources
    intent: Deposits from 10 or more addresses within a day.
    reason_code: SUS_FAN_IN
    action: alert
    on: [deposit]
    features:
      sources: {distinct: address, window: 90m, where: {type: deposit}}
    when: sources >= 10
"""


def test_the_rules_say_what_each_rule_looks_for_and_does(db_url: str, staff: Staff, tmp_path: Path) -> None:
    (tmp_path / "house.yaml").write_text(PACK)
    with api_client(db_url, rules_path=str(tmp_path / "house.yaml")) as client:
        pack = get(client, staff.auditor, "/v1/monitoring/rules")
        assert problem(client, staff.partner, "/v1/monitoring/rules", 403)["type"] == "/problems/staff-key-required"
    assert (pack["pack"], pack["listed_addresses"]) == ("house", 0)
    near, quiet, many = pack["rules"]
    assert near == {
        "id": "near_threshold", "title": "Deposits just below the threshold",
        "intent": "Several deposits a little below the threshold within a day.",
        "reason_code": "SUS_STRUCTURING", "cause": "suspicious_activity", "action": "hold", "restricts": ["withdraw"],
        "on": ["deposit"], "params": {"threshold": "10000", "near": "0.9", "min_count": "3"},
        "when": "near_24h >= ${min_count}", "dedup": "1d",
        "features": [{"name": "near_24h", "kind": "window", "aggregate": "count", "of": "events", "window": "1d",
                      "where": ["type eq deposit", "value_usd gte 9000", "value_usd lt 10000"]}],
    }
    assert (quiet["action"], quiet["cause"], quiet["restricts"], quiet["dedup"]) == (
        "freeze", "security", ["api", "login", "withdraw"], "12h")
    assert quiet["features"] == [
        {"name": "idle", "kind": "since", "default": "0s", "where": ["type in deposit, withdrawal"]},
        {"name": "fresh", "kind": "first_use", "of": "address", "where": ["type eq withdrawal"]},
        {"name": "normal", "kind": "baseline", "of": "value_usd", "days": 30, "where": ["type eq withdrawal"]},
    ]
    assert (many["action"], many["restricts"], many["features"][0]["window"]) == ("alert", [], "90m")


# -- lists loaded while the server runs -----------------------------------------------------------


def write_list(path: Path, wallets: list[str]) -> str:
    entities: list[dict[str, Any]] = [{"id": "p-1", "schema": "Person", "target": True,
                                       "properties": {"name": ["Viktor Petrenko"], "topics": ["sanction"]}}]
    entities += [{"id": f"wallet-{i}", "schema": "CryptoWallet", "target": False,
                  "properties": {"publicKey": [w], "currency": ["XBT"], "holder": ["p-1"]}}
                 for i, w in enumerate(wallets)]
    path.write_text("\n".join(json.dumps(e) for e in entities) + "\n")
    return f"ftm@test:{path}"


def test_a_list_loaded_while_serving_is_matched_without_a_restart(
    client: TestClient, staff: Staff, store: Store, tmp_path: Path,
) -> None:
    wallet = "bc1qnewlylisted0000000000000000000000000"
    lists = ScreeningService(store, load_catalogue())  # as `freezedesk lists load` does, in its own process
    before = get(client, staff.compliance, "/v1/monitoring/rules")["listed_addresses"]
    assert post(client, staff.partner, [withdrawal("w-1", "acct-l", 0, address=wallet)])["alerts"] == []
    burst = structuring_burst("acct-l", prefix="ls")
    assert post(client, staff.partner, burst[:2])["alerts"] == []  # window state from before the load …

    lists.load_lists([write_list(tmp_path / "v1.jsonl", [wallet])], Actor("cli:lists-load"))

    [listed] = post(client, staff.partner, [withdrawal("w-2", "acct-l", 30, address=wallet)])["alerts"]
    assert (listed["rule_id"], listed["action"], listed["reason_code"]) == ("listed_address", "freeze",
                                                                           "REG_SANCTIONS_MATCH")
    assert listed["event_ids"] == ["w-2"] and listed["restriction_id"]
    assert not allowed(client, staff.partner, "acct-l", "withdraw")
    assert get(client, staff.compliance, "/v1/monitoring/rules")["listed_addresses"] == before + 1
    [structuring] = post(client, staff.partner, burst[2:])["alerts"]  # … carried over the swap
    assert structuring["rule_id"] == "structuring" and structuring["event_ids"] == ["ls-0", "ls-1", "ls-2"]

    # taken off the list: no longer matched (another account, so no dedup is involved)
    lists.load_lists([write_list(tmp_path / "v2.jsonl", [])], Actor("cli:lists-load"))
    assert post(client, staff.partner, [withdrawal("w-3", "acct-k", 60, address=wallet)])["alerts"] == []
    assert allowed(client, staff.partner, "acct-k", "withdraw")
