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
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.ids import new_id
from freezedesk.domain.restrictions import Actor, Restriction, Source, Status
from freezedesk.domain.scopes import Cause
from freezedesk.monitoring.events import format_ts
from freezedesk.monitoring.ingest import Registered
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

#: Accounts per ``IN (…)`` list when reading what is already recorded (SQLite's parameter limit).
CHUNK: Final = 500


def apply_alerts(
    uow: UnitOfWork, catalogue: ReasonCatalogue, pack: Pack, alerts: Sequence[Alert], actor: Actor,
    registered: Registered | None = None,
) -> list[dict[str, Any]]:
    """Record and act on ``alerts`` inside the caller's unit of work; the views of the new ones.

    ``pack`` is the pack that raised the alerts: it says what each rule's action is (an alert
    carries only the rule id). An alert naming a rule the pack does not have is a programming
    error (the engine and this call were given different packs) and raises ``KeyError`` before
    anything of the alerts is written; the caller's transaction then rolls back as a whole.

    ``registered`` names accounts the caller has already registered in this unit of work (the
    live monitor: every account of the events it just stored), so they are not registered again;
    those it *created* need neither a lock nor a look at recorded alerts (nothing else can see
    them yet, and nothing can reference an account that did not exist).

    Alerts already recorded are skipped and absent from the result, so the result is exactly
    what this call changed. Each view is the stored alert plus the case's ``inquiry_number`` and
    ``restriction_in_force`` (the restriction that now enforces the finding: the one this alert
    created, or the earlier one from the same rule it was attached to; ``None`` for ``alert``).

    Round trips are per batch, not per alert: the alerts' accounts are registered (those not in
    ``registered``) and locked in one statement each, in id order; then the alerts already
    recorded for those accounts and rules — and the restrictions earlier alerts created, with
    their cases' inquiry numbers — are read once, under the locks, and kept up to date in memory
    as this call records more.
    """
    rules = {rule.id: rule for rule in pack.rules}
    work = [(rules[alert.rule_id], alert) for alert in alerts]
    if not work:
        return []
    accounts = sorted({alert.account_id for alert in alerts})
    known_accounts = registered.accounts if registered is not None else frozenset()
    unregistered = uow.accounts.register([a for a in accounts if a not in known_accounts], utcnow())
    fresh = unregistered | (registered.created if registered is not None else frozenset())
    # Lock the accounts first: two transactions applying the same alert (an API retry racing a
    # worker) serialise here, and the second one sees the first one's rows and skips. Accounts
    # this unit of work created are invisible to others until commit: already exclusively ours.
    existing = [a for a in accounts if a not in fresh]
    uow.accounts.lock_many(existing)
    known = _Recorded.load(uow, existing, sorted({alert.rule_id for alert in alerts}))
    applied: list[dict[str, Any]] = []
    for rule, alert in work:
        now = utcnow()
        if alert.account_id in unregistered:  # audited at the account's first alert, as it always was
            unregistered.discard(alert.account_id)
            uow.audit(actor.id, "account.registered", "account", alert.account_id, alert.account_id, {}, now)
        view = _apply_one(uow, catalogue, rule, alert, actor, now, known, fresh)
        if view is not None:
            applied.append(view)
    return applied


@dataclass(frozen=True, slots=True)
class _InForce:
    """A restriction an alert created, with what an alert attached to it needs of its case."""

    restriction: Restriction
    case_id: str
    inquiry_number: str


@dataclass(slots=True)
class _Recorded:
    """What ``monitoring_alerts`` holds for the accounts being worked on (read once, under their
    locks), plus what this unit of work has added since."""

    keys: set[tuple[str, str, datetime]] = field(default_factory=set)  # (account, rule, ts)
    created: dict[tuple[str, str], list[_InForce]] = field(default_factory=dict)  # (account, rule)
    cases_opened: set[tuple[str, Cause]] = field(default_factory=set)  # (account, cause) attached to

    @classmethod
    def load(cls, uow: UnitOfWork, accounts: Sequence[str], rule_ids: Sequence[str]) -> _Recorded:
        known = cls()
        by_pair: dict[tuple[str, str], list[str]] = {}
        for start in range(0, len(accounts), CHUNK):
            for row in uow.conn.execute(select(
                monitoring_alerts.c.account_id, monitoring_alerts.c.rule_id, monitoring_alerts.c.ts,
                monitoring_alerts.c.restriction_id,
            ).where(monitoring_alerts.c.account_id.in_(accounts[start:start + CHUNK]),
                    monitoring_alerts.c.rule_id.in_(rule_ids))):
                known.keys.add((row.account_id, row.rule_id, row.ts))
                if row.restriction_id is not None:
                    ids = by_pair.setdefault((row.account_id, row.rule_id), [])
                    if row.restriction_id not in ids:
                        ids.append(str(row.restriction_id))
        if by_pair:
            restrictions = {r.id: r for r in uow.restrictions.get_many(i for ids in by_pair.values() for i in ids)}
            inquiries = uow.cases.inquiry_numbers(r.case_id for r in restrictions.values() if r.case_id)
            for pair, ids in by_pair.items():
                for restriction_id in sorted(ids):
                    r = restrictions[restriction_id]
                    assert r.case_id is not None, "restrictions are always created with a case"
                    known.created.setdefault(pair, []).append(_InForce(r, r.case_id, inquiries[r.case_id]))
        return known

    def in_force(self, alert: Alert, now: datetime) -> _InForce | None:
        """The restriction an earlier alert of the same rule created on this account, if still in force."""
        for candidate in self.created.get((alert.account_id, alert.rule_id), ()):
            if candidate.restriction.effective_status(now) in (Status.ACTIVE, Status.PERMANENT):
                return candidate
        return None


def _apply_one(
    uow: UnitOfWork, catalogue: ReasonCatalogue, rule: Rule, alert: Alert, actor: Actor, now: datetime,
    known: _Recorded, fresh: AbstractSet[str],
) -> dict[str, Any] | None:
    account_id = alert.account_id
    key = (account_id, rule.id, alert.ts)
    if key in known.keys:
        return None

    reason = catalogue.get(alert.reason_code)
    created_id: str | None = None
    in_force: str | None = None
    earlier = known.in_force(alert, now) if rule.action != "alert" else None
    # An account this unit of work created had no case at all; it has an open one for this cause
    # only if this call opened it (then the look-up finds it, as always).
    no_open_case = account_id in fresh and (account_id, reason.cause) not in known.cases_opened
    if earlier is not None:
        case_id, inquiry_number, in_force = earlier.case_id, earlier.inquiry_number, earlier.restriction.id
    elif rule.action == "alert":
        case, _opened = case_service.open_or_attach_case(uow, account_id, reason, actor, now, account_locked=True,
                                                         no_open_case=no_open_case)
        case_id, inquiry_number = case.id, case.inquiry_number
        known.cases_opened.add((account_id, reason.cause))
    else:
        frozen = restriction_service.freeze_in(
            uow, catalogue, account_id=account_id, reason_code=alert.reason_code, actor=actor,
            source=Source.RULE, scopes=HOLD_SCOPES if rule.action == "hold" else None,
            note=f"monitoring rule {rule.id}", account_locked=True, no_open_case=no_open_case,
        )
        case_id, inquiry_number = frozen.case.id, frozen.case.inquiry_number
        known.cases_opened.add((account_id, reason.cause))
        created_id = in_force = frozen.restriction.id
        known.created.setdefault((account_id, rule.id), []).append(
            _InForce(frozen.restriction, case_id, inquiry_number))

    alert_id = new_id("alr")
    uow.conn.execute(monitoring_alerts.insert().values(
        id=alert_id, account_id=account_id, rule_id=rule.id, reason_code=alert.reason_code,
        action=rule.action, ts=alert.ts, event_ids=json.dumps(list(alert.event_ids)),
        case_id=case_id, restriction_id=created_id, created_at=now,
    ))
    known.keys.add(key)
    view: dict[str, Any] = {
        "id": alert_id, "account_id": account_id, "rule_id": rule.id, "reason_code": alert.reason_code,
        "action": rule.action, "ts": format_ts(alert.ts), "event_ids": list(alert.event_ids),
        "case_id": case_id, "restriction_id": created_id, "created_at": iso(now),
    }
    uow.audit(actor.id, "monitoring.alert", "monitoring_alert", alert_id, account_id, view, now)
    return {**view, "inquiry_number": inquiry_number, "restriction_in_force": in_force}
