"""Shared helpers for the domain unit tests: no I/O except the packaged catalogue and tmp files."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from freezedesk.domain.catalogue import ReasonCatalogue, ReasonCode
from freezedesk.domain.restrictions import Actor, Restriction, Source
from freezedesk.reference import load_catalogue

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

#: The placeholders a customer text may use (messages/en.toml header).
PLACEHOLDERS: dict[str, Any] = {
    "inquiry_number": "K7M3-Q9TR-X",
    "policy_clause": "ToS §9.9",
    "appeal_window_days": 14,
    "hours": 72,
    "code": "PLUM-42",
}


@pytest.fixture(scope="session")
def catalogue() -> ReasonCatalogue:
    """The shipped catalogue, never an operator file named by the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FREEZEDESK_REASON_CATALOGUE", raising=False)
        return load_catalogue()


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def impose(catalogue: ReasonCatalogue) -> Callable[..., Restriction]:
    """Impose a restriction for a shipped reason code; keyword arguments override the defaults."""

    def _impose(code: str, **kwargs: Any) -> Restriction:
        args: dict[str, Any] = {
            "account_id": "acct-1",
            "reason": catalogue.get(code),
            "scopes": None,
            "source": Source.STAFF,
            "actor": Actor("staff-0", "compliance"),
            "now": NOW,
        }
        args.update(kwargs)
        return Restriction.impose(**args)

    return _impose


# -- writing operator catalogue files --------------------------------------------------------


def reason_fields(reason: ReasonCode) -> dict[str, Any]:
    """A shipped reason as the raw mapping an operator file would contain."""
    fields: dict[str, Any] = {
        "code": reason.code,
        "cause": reason.cause.value,
        "summary": reason.summary,
        "default_scopes": list(reason.default_scope_names),
        "disclosure": reason.disclosure.value,
        "playbook": reason.playbook.value,
        "sla_hours": reason.sla_hours,
        "customer_title": reason.customer_title,
        "customer_body": reason.customer_body,
        "customer_actions": reason.customer_actions,
        "lift": {
            "roles": sorted(reason.lift.roles),
            "approvals": reason.lift.approvals,
            "legal_reference_required": reason.lift.legal_reference_required,
        },
    }
    if reason.policy_clause is not None:
        fields["policy_clause"] = reason.policy_clause
    if reason.appeal_window_days is not None:
        fields["appeal_window_days"] = reason.appeal_window_days
    return fields


def _value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of those are valid TOML values.
    return json.dumps(value)


def reason_toml(fields: Mapping[str, Any]) -> str:
    lines = ["[[reason]]"]
    lines += [f"{name} = {_value(value)}" for name, value in fields.items() if name != "lift"]
    if "lift" in fields:
        lines.append("[reason.lift]")
        lines += [f"{name} = {_value(value)}" for name, value in fields["lift"].items()]
    return "\n".join(lines) + "\n"


def messages_toml(messages: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for locale, table in messages.items():
        out.append(f"[messages.{locale}]")
        out += [f"{_value(key)} = {_value(text)}" for key, text in table.items()]
    return "\n".join(out) + "\n"


def write_catalogue(
    directory: Path,
    reasons: list[Mapping[str, Any]],
    messages: Mapping[str, Mapping[str, str]] | None = None,
    name: str = "operator-reasons.toml",
) -> Path:
    text = "\n".join(reason_toml(r) for r in reasons)
    if messages:
        text += "\n" + messages_toml(messages)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
