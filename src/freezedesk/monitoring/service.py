"""Acting on monitoring alerts: evidence on a case, a restriction when the rule says so, an audit entry.

The rule engines only *decide* (:class:`~freezedesk.monitoring.rules.Alert`); this module is where
an alert becomes a change of state, through the same services a person would use, so that every
consequence a manual freeze has — the case and its inquiry number, the audit entry, the
``restriction.created`` webhook, the refreshed permission view — follows from an alert too.

:func:`apply_alerts` runs inside a unit of work that the *caller* owns. The in-process monitor
(:mod:`freezedesk.monitoring.live`) calls it in the very transaction that stores the events, and
the NATS worker in the transaction that records its progress, so "events stored", "alert
recorded" and "account restricted" commit together or not at all.

What one alert does, by the rule's ``action``:

* ``alert`` — the alert is attached as evidence to the account's open case for the reason's cause,
  or a case is opened for it; nothing is restricted (an investigator decides).
* ``hold`` — as above, plus a withdrawal-hold restriction (scope preset ``withdrawal_hold``) with
  the rule's reason code.
* ``freeze`` — as above, plus a restriction with the reason's default scopes (e.g. login,
  withdraw and api for ``SEC_ACCOUNT_TAKEOVER``; everything for ``REG_SANCTIONS_MATCH``).

Two guards keep repetition harmless:

* **The same alert twice** (same account, rule and ``ts``) is skipped: the ``monitoring_alerts``
  table's unique key is the alert's identity, checked under the account's row lock, so a replayed
  batch or a worker's redelivery records and restricts once.
* **The same rule again while its restriction is in force** — a second burst days later, say —
  adds evidence to that restriction's case but no second restriction: lifting is a decision
  about the rule's finding, and two restrictions for one finding would need two lifts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.ids import new_id
from freezedesk.domain.restrictions import Actor, Source, Status
from freezedesk.monitoring.events import format_ts
from freezedesk.monitoring.rules.engine import Alert
from freezedesk.monitoring.rules.language import Pack, Rule
from freezedesk.services import cases as case_service
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.views import iso
from freezedesk.store.tables import monitoring_alerts
from freezedesk.store.uow import UnitOfWork, utcnow

#: Who acts when a rule restricts an account: the audit log and the restriction name the machine.
MONITOR_ACTOR: Final = Actor("system:monitoring")

#: Scopes of a ``hold``: withdrawals stop, trading and deposits continue while the case is reviewed.
HOLD_SCOPES: Final = ("withdrawal_hold",)


def apply_alerts(
    uow: UnitOfWork, catalogue: ReasonCatalogue, pack: Pack, alerts: Sequence[Alert], actor: Actor,
) -> list[dict[str, Any]]:
    """Record and act on ``alerts`` inside the caller's unit of work; the views of the new ones.

    ``pack`` is the pack that raised the alerts: it says what each rule's action is (an alert
    carries only the rule id). An alert naming a rule the pack does not have is a programming
    error (the engine and this call were given different packs) and raises ``KeyError`` before
    anything of that alert is written; the caller's transaction then rolls back as a whole.

    Alerts already recorded are skipped and absent from the result, so the result is exactly
    what this call changed. Each view is the stored alert plus the case's ``inquiry_number`` and
    ``restriction_in_force`` (the restriction that now enforces the finding: the one this alert
    created, or the earlier one from the same rule it was attached to; ``None`` for ``alert``).
    """
    rules = {rule.id: rule for rule in pack.rules}
    applied: list[dict[str, Any]] = []
    for alert in alerts:
        rule = rules[alert.rule_id]
        view = _apply_one(uow, catalogue, rule, alert, actor, utcnow())
        if view is not None:
            applied.append(view)
    return applied


def _already_recorded(uow: UnitOfWork, alert: Alert) -> bool:
    found = uow.conn.execute(select(monitoring_alerts.c.id).where(
        monitoring_alerts.c.account_id == alert.account_id,
        monitoring_alerts.c.rule_id == alert.rule_id,
        monitoring_alerts.c.ts == alert.ts,
    )).first()
    return found is not None


def _restriction_in_force(uow: UnitOfWork, alert: Alert, now: datetime) -> str | None:
    """The restriction an earlier alert of the same rule created on this account, if still in force."""
    created = uow.conn.execute(select(monitoring_alerts.c.restriction_id).distinct().where(
        monitoring_alerts.c.account_id == alert.account_id,
        monitoring_alerts.c.rule_id == alert.rule_id,
        monitoring_alerts.c.restriction_id.is_not(None),
    )).scalars().all()
    for restriction_id in created:
        restriction = uow.restrictions.get(str(restriction_id))
        if restriction.effective_status(now) in (Status.ACTIVE, Status.PERMANENT):
            return restriction.id
    return None


def _apply_one(
    uow: UnitOfWork, catalogue: ReasonCatalogue, rule: Rule, alert: Alert, actor: Actor, now: datetime,
) -> dict[str, Any] | None:
    account_id = alert.account_id
    # Lock the account first: two transactions applying the same alert (an API retry racing a
    # worker) serialise here, and the second one sees the first one's row and skips.
    if uow.accounts.ensure(account_id, now):
        uow.audit(actor.id, "account.registered", "account", account_id, account_id, {}, now)
    uow.accounts.lock(account_id)
    if _already_recorded(uow, alert):
        return None

    reason = catalogue.get(alert.reason_code)
    created_id: str | None = None
    in_force = _restriction_in_force(uow, alert, now) if rule.action != "alert" else None
    if in_force is not None:
        existing = uow.restrictions.get(in_force)
        assert existing.case_id is not None, "restrictions are always created with a case"
        case = uow.cases.get(existing.case_id)
    elif rule.action == "alert":
        case, _opened = case_service.open_or_attach_case(uow, account_id, reason, actor, now)
    else:
        frozen = restriction_service.freeze_in(
            uow, catalogue, account_id=account_id, reason_code=alert.reason_code, actor=actor,
            source=Source.RULE, scopes=HOLD_SCOPES if rule.action == "hold" else None,
            note=f"monitoring rule {rule.id}",
        )
        case, created_id, in_force = frozen.case, frozen.restriction.id, frozen.restriction.id

    alert_id = new_id("alr")
    uow.conn.execute(monitoring_alerts.insert().values(
        id=alert_id, account_id=account_id, rule_id=rule.id, reason_code=alert.reason_code,
        action=rule.action, ts=alert.ts, event_ids=json.dumps(list(alert.event_ids)),
        case_id=case.id, restriction_id=created_id, created_at=now,
    ))
    view: dict[str, Any] = {
        "id": alert_id, "account_id": account_id, "rule_id": rule.id, "reason_code": alert.reason_code,
        "action": rule.action, "ts": format_ts(alert.ts), "event_ids": list(alert.event_ids),
        "case_id": case.id, "restriction_id": created_id, "created_at": iso(now),
    }
    uow.audit(actor.id, "monitoring.alert", "monitoring_alert", alert_id, account_id, view, now)
    return {**view, "inquiry_number": case.inquiry_number, "restriction_in_force": in_force}

