"""Acting on monitoring alerts: evidence on a case, a restriction when the rule says so, an audit entry.

The rule engines only *decide* (:class:`~freezedesk.monitoring.rules.Alert`); this module is where
an alert becomes a change of state, through the same services a person would use, so that every
consequence a manual freeze has — the case and its inquiry number, the audit entry, the
``restriction.created`` webhook, the refreshed permission view — follows from an alert too.

:func:`apply_alerts` runs inside a unit of work that the *caller* owns, and both callers call it in
the transaction that stores the events which fired the alerts
(:func:`~freezedesk.monitoring.ingest.ingest_in`), so "events stored", "alert recorded" and
"account restricted" commit together or not at all; the earlier events an alert cites were
committed by earlier batches, so every event of a recorded alert is in the ``events`` table for
:func:`get_alert` to show (events counted before they were stored anywhere — a worker run without
``--apply`` — excepted):

* the in-process monitor (:mod:`freezedesk.monitoring.live`): one transaction per ``POST
  /v1/events`` batch;
* the NATS worker with ``--apply`` (``DatabaseAlertSink`` in :mod:`freezedesk.monitoring.worker`):
  one transaction per fetched batch of a partition, holding every event the worker counted in it.
  The worker's *progress* is not in that transaction: it is in snapshot files, written after the
  commit. A crash between the two replays the batch from the stream, which is harmless — the
  events are stored already (``ingest_in`` skips known ids) and the alerts recorded already (the
  ``monitoring_alerts`` unique key below) — so each is stored and acted on once.

What one alert does, by the rule's ``action``:

* ``alert`` — the alert is attached as evidence to the account's open case for the reason's cause,
  or a case is opened for it; nothing is restricted (an investigator decides).
* ``hold`` — as above, plus a withdrawal-hold restriction (scope preset ``withdrawal_hold``) with
  the rule's reason code.
* ``freeze`` — as above, plus a restriction with the reason's default scopes (e.g. login,
  withdraw and api for ``SEC_ACCOUNT_TAKEOVER``; everything for ``REG_SANCTIONS_MATCH``).

Whatever the action, the alert is also an entry of its case's timeline (``monitoring_alert``, no
state change; ``data`` names the alert, rule, reason code, the firing event's ``ts``, how many
events it rests on, the rule's action, the ``outcome`` — ``restricted``, ``attached_to_restriction``
or ``evidence`` — and the restriction that enforces it), written in the same transaction. The staff
case view shows it; the customer's inquiry view never does (:func:`freezedesk.services.cases.get_inquiry`).

The second half of this module is what staff read: :func:`list_alerts`, :func:`get_alert` and
:func:`rules_view` (``GET /v1/monitoring/alerts``, ``…/alerts/{id}``, ``…/rules``).

Two guards keep repetition harmless:

* **The same alert twice** (same account, rule and ``ts``) is skipped: the ``monitoring_alerts``
  table's unique key is the alert's identity, checked under the account's row lock, so a replayed
  batch or a worker's redelivery records and restricts once.
* **The same rule again while its restriction is in force** — a second burst days later, say —
  adds evidence to that restriction's case but no second restriction: lifting is a decision
  about the rule's finding, and two restrictions for one finding would need two lifts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import and_, or_, select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import DomainError, NotFound
from freezedesk.domain.ids import new_id
from freezedesk.domain.restrictions import Actor, Restriction, Source, Status
from freezedesk.domain.scopes import Cause, resolve_scopes
from freezedesk.monitoring.events import format_ts
from freezedesk.monitoring.ingest import Registered
from freezedesk.monitoring.rules.engine import Alert
from freezedesk.monitoring.rules.language import Feature, Literal_, Pack, Rule
from freezedesk.services import cases as case_service
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.views import iso, restriction_view
from freezedesk.store.tables import cases, events, monitoring_alerts
from freezedesk.store.uow import Store, UnitOfWork, utcnow

#: Who acts when a rule restricts an account: the audit log and the restriction name the machine.
MONITOR_ACTOR: Final = Actor("system:monitoring")

#: Scopes of a ``hold``: withdrawals stop, trading and deposits continue while the case is reviewed.
HOLD_SCOPES: Final = ("withdrawal_hold",)

#: Accounts per ``IN (…)`` list when reading what is already recorded (SQLite's parameter limit).
CHUNK: Final = 500

#: The case-timeline entry an applied alert writes (``case_events.event``; no state change).
TIMELINE_EVENT: Final = "monitoring_alert"


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
    live monitor: every account of the events it just stored), so they are not registered again
    nor locked again (``ingest_in`` holds their row locks to commit); those it *created* need
    neither a lock nor a look at recorded alerts (nothing else can see them yet, and nothing can
    reference an account that did not exist).

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
    # this unit of work created are invisible to others until commit: already exclusively ours;
    # those ``registered`` names were locked by ingest_in in this unit of work already.
    existing = [a for a in accounts if a not in fresh]
    uow.accounts.lock_many([a for a in existing if a not in known_accounts])
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
    # The case's timeline shows the alert beside its state changes (staff view only: it is an
    # entry without a state, which the customer's inquiry timeline never shows).
    uow.cases.record_event(case_id, now, actor.id, TIMELINE_EVENT, None, None, {
        "alert_id": alert_id, "rule_id": rule.id, "reason_code": alert.reason_code, "ts": format_ts(alert.ts),
        "event_count": len(alert.event_ids), "action": rule.action,
        "outcome": "restricted" if created_id else "attached_to_restriction" if in_force else "evidence",
        "restriction_id": in_force,
    })
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


# -- what staff read: alerts and the rules behind them ---------------------------------------------

#: Alerts per page of ``GET /v1/monitoring/alerts``: the default and the most one page may ask for.
PAGE_DEFAULT: Final = 50
PAGE_MAX: Final = 500


class InvalidQuery(DomainError):
    """A list's filters or cursor are not valid (``field`` names the query parameter)."""

    type = "invalid-query"
    title = "The query parameters are not valid"


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters of the alert list; ``since`` is inclusive and ``until`` exclusive, on the alert's ``ts``."""

    account_id: str | None = None
    rule_id: str | None = None
    reason_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(ts: datetime, alert_id: str) -> str:
    """The opaque position after the alert ``(ts, alert_id)`` in the list's order."""
    raw = json.dumps([ts.astimezone(UTC).isoformat(), alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ts, alert_id = raw
        at = datetime.fromisoformat(ts)
        if at.tzinfo is None or not isinstance(alert_id, str) or not alert_id:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidQuery("the cursor is not one this API returned (use next_cursor as given)",
                           field="cursor") from None
    return at.astimezone(UTC), alert_id


def list_alerts(
    store: Store, pack: Pack, filters: AlertFilter, limit: int = PAGE_DEFAULT, cursor: str | None = None,
) -> dict[str, Any]:
    """Recorded alerts, newest first (by the firing event's ``ts``, then id), one page at a time.

    Keyset pagination: ``next_cursor`` (None on the last page) continues after the page's last
    alert, so alerts recorded meanwhile never shift a page or repeat one. Each item is the stored
    alert with its case's inquiry number and the active pack's title of the rule (None when the
    rule is no longer in the pack).
    """
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidQuery(f"limit must be from 1 to {PAGE_MAX}", field="limit")
    since, until = filters.since, filters.until
    if since is not None and until is not None and since >= until:
        raise InvalidQuery("since must be earlier than until", field="since")
    a = monitoring_alerts
    query = select(a, cases.c.inquiry_number).join(cases, cases.c.id == a.c.case_id)
    for column, value in ((a.c.account_id, filters.account_id), (a.c.rule_id, filters.rule_id),
                          (a.c.reason_code, filters.reason_code)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(a.c.ts >= since)
    if until is not None:
        query = query.where(a.c.ts < until)
    if cursor is not None:
        after_ts, after_id = decode_cursor(cursor)
        query = query.where(or_(a.c.ts < after_ts, and_(a.c.ts == after_ts, a.c.id < after_id)))
    query = query.order_by(a.c.ts.desc(), a.c.id.desc()).limit(limit + 1)
    with store.read() as uow:
        rows = uow.conn.execute(query).all()
    titles = {rule.id: rule.title for rule in pack.rules}
    page = rows[:limit]
    return {
        "items": [_alert_view(row, titles) for row in page],
        "next_cursor": encode_cursor(page[-1].ts, page[-1].id) if len(rows) > limit else None,
    }


def get_alert(store: Store, pack: Pack, alert_id: str) -> dict[str, Any]:
    """One alert as an investigator needs it: the events that fired it (stored payloads, in the
    alert's order), its case (id, cause, state, inquiry number), the rule as the active pack
    defines it, and ``restriction`` — the one that enforces the finding: the restriction this
    alert created, or for an alert that found one of the same rule already in force, that one
    (its current status; None for an ``alert`` rule)."""
    now = utcnow()
    a = monitoring_alerts
    with store.read() as uow:
        row = uow.conn.execute(
            select(a, cases.c.inquiry_number).join(cases, cases.c.id == a.c.case_id).where(a.c.id == alert_id)
        ).first()
        if row is None:
            raise NotFound(f"alert {alert_id!r} does not exist", alert_id=alert_id)
        case = uow.cases.get(row.case_id)
        event_ids: list[str] = json.loads(row.event_ids)
        payloads: dict[str, Any] = {}
        for start in range(0, len(event_ids), CHUNK):
            chunk = event_ids[start:start + CHUNK]
            payloads.update((r.event_id, json.loads(r.payload)) for r in uow.conn.execute(
                select(events.c.event_id, events.c.payload).where(events.c.event_id.in_(chunk))))
        enforcing = row.restriction_id
        if enforcing is None and row.action != "alert":
            # Attached to an earlier alert's restriction: the latest one of this rule on this
            # account's case recorded before this alert (the one that was in force then).
            enforcing = uow.conn.execute(
                select(a.c.restriction_id).where(
                    a.c.account_id == row.account_id, a.c.rule_id == row.rule_id, a.c.case_id == row.case_id,
                    a.c.restriction_id.is_not(None),
                    or_(a.c.created_at < row.created_at, and_(a.c.created_at == row.created_at, a.c.id < row.id)),
                ).order_by(a.c.created_at.desc(), a.c.id.desc()).limit(1)
            ).scalar()
        restriction = uow.restrictions.get(enforcing) if enforcing is not None else None
    rules = {rule.id: rule for rule in pack.rules}
    rule = rules.get(row.rule_id)
    return {
        **_alert_view(row, {r: rules[r].title for r in rules}),
        "events": [payloads[e] for e in event_ids if e in payloads],
        "case": {"id": case.id, "cause": case.cause.value, "state": case.state,
                 "inquiry_number": case.inquiry_number},
        "restriction": restriction_view(restriction, case.inquiry_number, now) if restriction else None,
        "rule": rule_view(rule) if rule is not None else None,
    }


def _alert_view(row: Any, titles: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.id, "account_id": row.account_id, "rule_id": row.rule_id, "rule_title": titles.get(row.rule_id),
        "reason_code": row.reason_code, "action": row.action, "ts": format_ts(row.ts),
        "event_ids": json.loads(row.event_ids), "case_id": row.case_id, "inquiry_number": row.inquiry_number,
        "restriction_id": row.restriction_id, "created_at": iso(row.created_at),
    }


def rules_view(pack: Pack, catalogue: ReasonCatalogue, listed_addresses: int) -> dict[str, Any]:
    """The active pack as an analyst reads it: per rule what it looks for (intent, the condition
    as written, its parameters and features) and what it does (action, reason code, the scopes a
    ``hold``/``freeze`` restricts)."""
    items = []
    for rule in pack.rules:
        reason = catalogue.get(rule.reason_code)
        restricts = ([] if rule.action == "alert" else resolve_scopes(HOLD_SCOPES).sorted_names()
                     if rule.action == "hold" else reason.default_scopes.sorted_names())
        items.append({**rule_view(rule), "cause": reason.cause.value, "restricts": restricts})
    return {"pack": pack.name, "listed_addresses": listed_addresses, "rules": items}


def rule_view(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id, "title": rule.title, "intent": rule.intent, "reason_code": rule.reason_code,
        "action": rule.action, "on": list(rule.on), "params": dict(rule.params), "when": rule.when_text,
        "features": [_feature_view(f) for f in rule.features], "dedup": _duration_text(rule.dedup_ms),
    }


def _feature_view(feature: Feature) -> dict[str, Any]:
    view: dict[str, Any] = {"name": feature.name, "kind": feature.kind}
    if feature.kind == "window":
        view.update(aggregate=feature.agg, of=feature.of.name if feature.of else "events",
                    window=_duration_text(feature.window_ms))
    elif feature.kind == "since":
        view.update(default=_duration_text(feature.default_ms))
    elif feature.kind == "baseline":
        view.update(of=feature.of.name if feature.of else None, days=feature.days)
    else:
        view.update(of=feature.of.name if feature.of else None)
    view["where"] = [f"{c.attr.name} {c.op} {', '.join(_literal_text(v, c.attr.scale) for v in c.values)}"
                     for c in feature.where]
    return view


def _literal_text(value: Literal_, attr_scale: int) -> str:
    """A filter value as the analyst wrote it (a number in the attribute's units: a filter's literal
    is stored at the attribute's scale, e.g. money in 1e-8 USD)."""
    if value.kind == "bool":
        return "true" if value.code else "false"
    if value.kind == "str":
        return str(value.code)
    if value.kind == "duration" and isinstance(value.code, int):
        return _duration_text(value.code)
    assert isinstance(value.code, int)
    return format(Decimal(value.code).scaleb(-(value.scale + attr_scale)).normalize(), "f")


def _duration_text(ms: int) -> str:
    """Milliseconds in the rule language's largest whole unit (``24h`` reads ``1d``)."""
    if ms == 0:
        return "0s"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
