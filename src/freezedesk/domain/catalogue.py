"""The reason catalogue: every reason code FreezeDesk can restrict an account for.

The catalogue is data (``reference/reasons.toml``), not code, so a compliance team can
review it and an operator can override entries with their own file. This module only
parses and validates an already-read mapping; reading files is the edge's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from freezedesk.domain.errors import UnknownReasonCode, UnknownScope
from freezedesk.domain.scopes import Cause, ScopeSet, resolve_scopes

STAFF_ROLES: tuple[str, ...] = ("agent", "investigator", "security", "compliance", "admin", "auditor")
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{2,63}$")


class Disclosure(StrEnum):
    FULL = "full"  # the customer is told the reason
    GENERIC = "generic"  # "your account is under review"
    NONE = "none"  # no reason at all (tipping-off rules)


@dataclass(frozen=True, slots=True)
class LiftPolicy:
    roles: frozenset[str]
    approvals: int
    legal_reference_required: bool


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    cause: Cause
    summary: str
    default_scope_names: tuple[str, ...]
    default_scopes: ScopeSet
    disclosure: Disclosure
    playbook: Cause
    sla_hours: int
    lift: LiftPolicy
    customer_title: str
    customer_body: str
    customer_actions: str
    policy_clause: str | None = None
    appeal_window_days: int | None = None

    def public_view(self) -> dict[str, Any]:
        """What a partner may see to build its own screens."""
        return {
            "code": self.code,
            "cause": self.cause.value,
            "summary": self.summary,
            "default_scopes": self.default_scopes.sorted_names(),
            "close_only": self.default_scopes.close_only,
            "disclosure": self.disclosure.value,
            "playbook": self.playbook.value,
            "sla_hours": self.sla_hours,
            "lift_policy": {
                "roles": sorted(self.lift.roles),
                "approvals": self.lift.approvals,
                "legal_reference_required": self.lift.legal_reference_required,
            },
            "customer_text_keys": {
                "title": self.customer_title,
                "body": self.customer_body,
                "actions": self.customer_actions,
            },
            "policy_clause": self.policy_clause,
            "appeal_window_days": self.appeal_window_days,
        }


class CatalogueError(ValueError):
    """A catalogue file is wrong. The message names the file, the entry and the field."""

    def __init__(self, source: str, entry: str, field_name: str, problem: str) -> None:
        super().__init__(f"{source}: reason {entry}: field {field_name!r}: {problem}")
        self.source = source
        self.entry = entry
        self.field_name = field_name


@dataclass(frozen=True)
class ReasonCatalogue:
    reasons: Mapping[str, ReasonCode]
    messages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def get(self, code: str) -> ReasonCode:
        try:
            return self.reasons[code]
        except KeyError:
            raise UnknownReasonCode(f"unknown reason code {code!r}", reason_code=code) from None

    def __iter__(self) -> Iterator[ReasonCode]:
        return iter(sorted(self.reasons.values(), key=lambda r: (r.cause.value, r.code)))

    def __len__(self) -> int:
        return len(self.reasons)

    def text(self, key: str, locale: str, **values: Any) -> str:
        table = self.messages.get(locale) or self.messages["en"]
        return table[key].format(**values)


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "code": str,
    "cause": str,
    "summary": str,
    "default_scopes": list,
    "disclosure": str,
    "playbook": str,
    "sla_hours": int,
    "customer_title": str,
    "customer_body": str,
    "customer_actions": str,
    "lift": dict,
}
_OPTIONAL: dict[str, type] = {"policy_clause": str, "appeal_window_days": int}


def _parse_reason(raw: Mapping[str, Any], source: str, index: int) -> ReasonCode:
    entry = str(raw.get("code") or f"#{index + 1}")

    def fail(field_name: str, problem: str) -> CatalogueError:
        return CatalogueError(source, entry, field_name, problem)

    for name, kind in _REQUIRED.items():
        if name not in raw:
            raise fail(name, "is missing")
        if not isinstance(raw[name], kind) or isinstance(raw[name], bool):
            raise fail(name, f"must be a {getattr(kind, '__name__', kind)}")
    for name, kind in _OPTIONAL.items():
        if name in raw and (not isinstance(raw[name], kind) or isinstance(raw[name], bool)):
            raise fail(name, f"must be a {kind.__name__}")
    if raw.get("appeal_window_days", 1) <= 0:
        raise fail("appeal_window_days", "must be a positive number of days")
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise fail(sorted(unknown)[0], "is not a known field")
    if not _CODE_RE.match(raw["code"]):
        raise fail("code", "must be UPPER_SNAKE_CASE, 3–64 characters")
    try:
        cause = Cause(raw["cause"])
    except ValueError:
        raise fail("cause", f"must be one of {', '.join(c.value for c in Cause)}") from None
    try:
        playbook = Cause(raw["playbook"])
    except ValueError:
        raise fail("playbook", f"must be one of {', '.join(c.value for c in Cause)}") from None
    try:
        disclosure = Disclosure(raw["disclosure"])
    except ValueError:
        raise fail("disclosure", "must be full, generic or none") from None
    if cause in (Cause.SUSPICIOUS_ACTIVITY, Cause.REGULATORY) and disclosure is Disclosure.FULL:
        # tipping-off: never tell a customer about an investigation or an order
        raise fail("disclosure", f"a {cause.value} reason cannot have full disclosure")
    try:
        scopes = resolve_scopes(raw["default_scopes"])
    except UnknownScope as exc:
        raise fail("default_scopes", exc.detail) from None
    if raw["sla_hours"] <= 0:
        raise fail("sla_hours", "must be a positive number of hours")
    lift = raw["lift"]
    roles = lift.get("roles")
    if not isinstance(roles, list) or not roles or any(r not in STAFF_ROLES for r in roles):
        raise fail("lift.roles", f"must be a non-empty list of roles from {', '.join(STAFF_ROLES)}")
    approvals = lift.get("approvals")
    if not isinstance(approvals, int) or isinstance(approvals, bool) or not 1 <= approvals <= 5:
        raise fail("lift.approvals", "must be an integer from 1 to 5")
    legal = lift.get("legal_reference_required", False)
    if not isinstance(legal, bool):
        raise fail("lift.legal_reference_required", "must be true or false")
    # The floors the law and DESIGN.md set cannot be loosened by an operator file.
    if cause is Cause.REGULATORY and (approvals < 2 or not legal or set(roles) != {"compliance"}):
        raise fail("lift", "regulatory reasons need 2 compliance approvals and a legal reference")
    if cause is Cause.SUSPICIOUS_ACTIVITY and approvals < 2:
        raise fail("lift.approvals", "suspicious-activity reasons need 2 approvals")
    if cause is Cause.POLICY:
        for name in ("policy_clause", "appeal_window_days"):
            if name not in raw:
                raise fail(name, "is required for policy reasons")
    return ReasonCode(
        code=raw["code"],
        cause=cause,
        summary=raw["summary"],
        default_scope_names=tuple(raw["default_scopes"]),
        default_scopes=scopes,
        disclosure=disclosure,
        playbook=playbook,
        sla_hours=raw["sla_hours"],
        lift=LiftPolicy(frozenset(roles), approvals, legal),
        customer_title=raw["customer_title"],
        customer_body=raw["customer_body"],
        customer_actions=raw["customer_actions"],
        policy_clause=raw.get("policy_clause"),
        appeal_window_days=raw.get("appeal_window_days"),
    )


def parse_catalogue(
    documents: Iterable[tuple[str, Mapping[str, Any]]],
    messages: Mapping[str, Mapping[str, str]],
) -> ReasonCatalogue:
    """Build a catalogue from one or more parsed documents, later ones overriding earlier ones.

    Each document is ``(source_name, mapping)`` where the mapping has a ``reason`` list and may
    carry ``messages.en`` / ``messages.ja`` tables that add customer texts.
    """
    reasons: dict[str, ReasonCode] = {}
    merged: dict[str, dict[str, str]] = {loc: dict(table) for loc, table in messages.items()}
    for source, doc in documents:
        extra = doc.get("messages", {})
        for locale, table in extra.items():
            merged.setdefault(locale, {}).update(table)
        items = doc.get("reason")
        if not isinstance(items, list) or not items:
            raise CatalogueError(source, "-", "reason", "needs at least one [[reason]] entry")
        seen: set[str] = set()
        for index, raw in enumerate(items):
            if not isinstance(raw, dict):
                raise CatalogueError(source, f"#{index + 1}", "reason", "must be a table")
            reason = _parse_reason(raw, source, index)
            if reason.code in seen:
                raise CatalogueError(source, reason.code, "code", "appears twice")
            seen.add(reason.code)
            reasons[reason.code] = reason
        for reason in reasons.values():
            for key_field in ("customer_title", "customer_body", "customer_actions"):
                key = getattr(reason, key_field)
                for locale in ("en", "ja"):
                    if key not in merged.get(locale, {}):
                        raise CatalogueError(
                            source, reason.code, key_field, f"message {key!r} has no {locale} text"
                        )
    return ReasonCatalogue(reasons, merged)
