"""apply_alerts directly, as the NATS worker calls it: batched reads must decide as alert-by-alert did.

The live API tests cover one alert per call; these cover several alerts of one account in one
call (the second finds the restriction and case the first created, in memory), an account nobody
registered yet (registered and audited once, at its first alert), replays (skipped, in one call
and across calls) and a restriction no longer in force (a new one is created).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.monitoring.rules.engine import Alert
from freezedesk.monitoring.rules.language import load_pack
from freezedesk.monitoring.service import MONITOR_ACTOR, apply_alerts
from freezedesk.store.tables import audit_log, cases, monitoring_alerts, restrictions
from freezedesk.store.uow import Store

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def alert(account: str, rule: str, reason: str, minutes: int) -> Alert:
    return Alert(account, rule, reason, T0 + timedelta(minutes=minutes), (f"{account}-{rule}-{minutes}",))


def apply(store: Store, catalogue: ReasonCatalogue, alerts: list[Alert]) -> list[dict[str, object]]:
    pack = load_pack(known_reasons=frozenset(r.code for r in catalogue))
    with store.unit_of_work() as uow:
        return apply_alerts(uow, catalogue, pack, alerts, MONITOR_ACTOR)


def count(store: Store, table: object) -> int:
    with store.read() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_several_alerts_of_a_new_account_in_one_call(store: Store, catalogue: ReasonCatalogue) -> None:
    first, second, evidence, sanctions = apply(store, catalogue, [
        alert("acct-n", "structuring", "SUS_STRUCTURING", 0),
        alert("acct-n", "structuring", "SUS_STRUCTURING", 60 * 30),
        alert("acct-n", "high_volume", "SUS_HIGH_VOLUME", 60 * 31),
        alert("acct-n", "listed_address", "REG_SANCTIONS_MATCH", 60 * 32),
    ])
    assert first["restriction_id"] and first["restriction_in_force"] == first["restriction_id"]
    assert second["restriction_id"] is None and second["restriction_in_force"] == first["restriction_id"]
    assert second["case_id"] == first["case_id"] and second["inquiry_number"] == first["inquiry_number"]
    assert evidence["case_id"] == first["case_id"] and evidence["restriction_in_force"] is None
    assert sanctions["restriction_id"] and sanctions["case_id"] != first["case_id"]
    assert count(store, restrictions) == 2 and count(store, cases) == 2 and count(store, monitoring_alerts) == 4
    with store.read() as uow:
        actions = uow.conn.execute(
            select(audit_log.c.action).where(audit_log.c.account_id == "acct-n").order_by(audit_log.c.seq)
        ).scalars().all()
    assert actions == [
        "account.registered", "case.opened", "restriction.created", "monitoring.alert",
        "monitoring.alert", "monitoring.alert", "case.opened", "restriction.created", "monitoring.alert",
    ]


def test_replayed_alerts_are_skipped_within_and_across_calls(store: Store, catalogue: ReasonCatalogue) -> None:
    burst = alert("acct-r", "structuring", "SUS_STRUCTURING", 0)
    assert len(apply(store, catalogue, [burst, burst])) == 1
    assert apply(store, catalogue, [burst]) == []
    assert count(store, monitoring_alerts) == 1 and count(store, restrictions) == 1


def test_a_later_alert_attaches_to_the_restriction_in_force_of_an_earlier_call(
    store: Store, catalogue: ReasonCatalogue,
) -> None:
    [first] = apply(store, catalogue, [alert("acct-l", "structuring", "SUS_STRUCTURING", 0)])
    [second] = apply(store, catalogue, [alert("acct-l", "structuring", "SUS_STRUCTURING", 60 * 48)])
    assert second["restriction_id"] is None and second["restriction_in_force"] == first["restriction_id"]
    assert (second["case_id"], second["inquiry_number"]) == (first["case_id"], first["inquiry_number"])


def test_a_restriction_no_longer_in_force_is_not_reused(store: Store, catalogue: ReasonCatalogue) -> None:
    [first] = apply(store, catalogue, [alert("acct-x", "structuring", "SUS_STRUCTURING", 0)])
    with store.unit_of_work() as uow:
        uow.conn.execute(update(restrictions).where(restrictions.c.id == first["restriction_id"])
                         .values(status="lifted", lifted_at=datetime.now(UTC)))
    [second] = apply(store, catalogue, [alert("acct-x", "structuring", "SUS_STRUCTURING", 60 * 48)])
    assert second["restriction_id"] not in (None, first["restriction_id"])
    assert second["restriction_in_force"] == second["restriction_id"]
    assert second["case_id"] == first["case_id"]  # the case is still open: the new restriction joins it
    assert count(store, restrictions) == 2


def test_each_applied_alert_is_a_timeline_entry_of_its_case(store: Store, catalogue: ReasonCatalogue) -> None:
    """Restricting, added to the restriction in force, evidence only: each says so on the case's
    timeline, written with the alert (a replay adds no entry)."""
    burst = alert("acct-t", "structuring", "SUS_STRUCTURING", 0)
    restricted, attached, evidence = apply(store, catalogue, [
        burst,
        alert("acct-t", "structuring", "SUS_STRUCTURING", 60 * 30),
        Alert("acct-t", "high_volume", "SUS_HIGH_VOLUME", T0 + timedelta(hours=31), ("h-1", "h-2", "h-3")),
    ])
    assert apply(store, catalogue, [burst]) == []
    with store.read() as uow:
        timeline = uow.cases.timeline(restricted["case_id"])
    assert [(e["event"], e["from"], e["to"]) for e in timeline] == [
        ("open", None, "opened"), *[("monitoring_alert", None, None)] * 3]
    assert all(e["actor"] == MONITOR_ACTOR.id for e in timeline)
    assert [e["data"] for e in timeline[1:]] == [
        {"alert_id": restricted["id"], "rule_id": "structuring", "reason_code": "SUS_STRUCTURING",
         "ts": restricted["ts"], "event_count": 1, "action": "hold", "outcome": "restricted",
         "restriction_id": restricted["restriction_id"]},
        {"alert_id": attached["id"], "rule_id": "structuring", "reason_code": "SUS_STRUCTURING",
         "ts": attached["ts"], "event_count": 1, "action": "hold", "outcome": "attached_to_restriction",
         "restriction_id": restricted["restriction_id"]},
        {"alert_id": evidence["id"], "rule_id": "high_volume", "reason_code": "SUS_HIGH_VOLUME",
         "ts": evidence["ts"], "event_count": 3, "action": "alert", "outcome": "evidence",
         "restriction_id": None},
    ]
