"""Operator catalogue files: overrides win, bad files are rejected naming file, entry and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from freezedesk.domain.catalogue import CatalogueError, ReasonCatalogue
from freezedesk.domain.scopes import Cause
from freezedesk.reference import load_catalogue
from tests.unit.conftest import reason_fields, write_catalogue

NEW_KEYS = {
    "customer_title": "reason.kyc_source_of_wealth.title",
    "customer_body": "reason.kyc_source_of_wealth.body",
    "customer_actions": "reason.kyc_source_of_wealth.actions",
}
NEW_MESSAGES = {
    "en": {
        NEW_KEYS["customer_title"]: "Please tell us about your source of wealth",
        NEW_KEYS["customer_body"]: "Withdrawals are paused until we receive your answers.",
        NEW_KEYS["customer_actions"]: "Answer the questionnaire and quote {inquiry_number}.",
    },
    "ja": {
        NEW_KEYS["customer_title"]: "資産の形成についてお知らせください",
        NEW_KEYS["customer_body"]: "ご回答をいただくまで出金を停止しております。",
        NEW_KEYS["customer_actions"]: "質問票にご回答ください。お問い合わせ番号:{inquiry_number}",
    },
}


def new_kyc_reason() -> dict[str, Any]:
    return {
        "code": "KYC_SOURCE_OF_WEALTH",
        "cause": "kyc",
        "summary": "Source-of-wealth questionnaire outstanding",
        "default_scopes": ["withdrawal_hold"],
        "disclosure": "full",
        "playbook": "kyc",
        "sla_hours": 96,
        **NEW_KEYS,
        "lift": {"roles": ["agent", "compliance"], "approvals": 1, "legal_reference_required": False},
    }


@pytest.fixture(autouse=True)
def _no_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FREEZEDESK_REASON_CATALOGUE", raising=False)


@pytest.fixture
def shipped(catalogue: ReasonCatalogue) -> Callable[[str], dict[str, Any]]:
    return lambda code: reason_fields(catalogue.get(code))


def test_shipped_entry_written_back_unchanged_loads_identically(
    tmp_path: Path, catalogue: ReasonCatalogue, shipped: Callable[[str], dict[str, Any]]
) -> None:
    # guards the helper that writes operator files: a faithful copy must change nothing
    path = write_catalogue(tmp_path, [shipped(code) for code in ("SEC_COOLDOWN", "REG_COURT_ORDER")])
    loaded = load_catalogue(override=path)
    assert dict(loaded.reasons) == dict(catalogue.reasons)


def test_override_changes_one_code_and_adds_another(
    tmp_path: Path, catalogue: ReasonCatalogue, shipped: Callable[[str], dict[str, Any]]
) -> None:
    cooldown = shipped("SEC_COOLDOWN") | {"sla_hours": 6}
    path = write_catalogue(tmp_path, [cooldown, new_kyc_reason()], NEW_MESSAGES)
    loaded = load_catalogue(override=path)

    assert loaded.get("SEC_COOLDOWN").sla_hours == 6
    assert catalogue.get("SEC_COOLDOWN").sla_hours == 24  # the shipped catalogue is untouched
    new = loaded.get("KYC_SOURCE_OF_WEALTH")
    assert new.cause is Cause.KYC
    assert new.default_scopes.sorted_names() == ["withdraw"]
    assert len(loaded) == len(catalogue) + 1
    for code, reason in catalogue.reasons.items():
        if code != "SEC_COOLDOWN":
            assert loaded.get(code) == reason
    assert loaded.text(new.customer_title, "ja") == NEW_MESSAGES["ja"][NEW_KEYS["customer_title"]]
    assert loaded.text(new.customer_actions, "en", inquiry_number="K7M3-Q9TR-X").endswith("K7M3-Q9TR-X.")
    # shipped texts are still there
    assert loaded.messages["en"]["notice.sla"] == catalogue.messages["en"]["notice.sla"]


def test_override_may_replace_a_shipped_text(tmp_path: Path, shipped: Callable[[str], dict[str, Any]]) -> None:
    key = "reason.sec_cooldown.title"
    path = write_catalogue(tmp_path, [shipped("SEC_COOLDOWN")], {"en": {key: "Short pause on withdrawals"}})
    loaded = load_catalogue(override=path)
    assert loaded.text(key, "en") == "Short pause on withdrawals"
    assert loaded.text(key, "ja") != "Short pause on withdrawals"


def test_environment_variable_names_the_operator_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: Callable[[str], dict[str, Any]]
) -> None:
    path = write_catalogue(tmp_path, [shipped("SEC_COOLDOWN") | {"sla_hours": 12}])
    monkeypatch.setenv("FREEZEDESK_REASON_CATALOGUE", str(path))
    assert load_catalogue().get("SEC_COOLDOWN").sla_hours == 12


def test_missing_operator_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(CatalogueError, match="file not found") as info:
        load_catalogue(override=path)
    assert str(path) in str(info.value)


def test_invalid_toml_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[[reason]]\ncode = "SEC_COOLDOWN\nsla_hours = 3\n', encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid TOML") as info:
        load_catalogue(override=path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)


def test_file_without_reasons_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "only-messages.toml"
    path.write_text('[messages.en]\n"x" = "y"\n', encoding="utf-8")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    assert str(path) in str(info.value)
    assert info.value.field_name == "reason"


# -- one bad entry per case: (base code, change, expected field) ------------------------------

DROP = object()


BAD_ENTRIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "unknown cause": ("KYC_INCOMPLETE", {"cause": "fraud"}, "cause"),
    "unknown playbook": ("KYC_INCOMPLETE", {"playbook": "fraud"}, "playbook"),
    "unknown disclosure": ("KYC_INCOMPLETE", {"disclosure": "partial"}, "disclosure"),
    "bad scope in default_scopes": ("KYC_INCOMPLETE", {"default_scopes": ["withdraw", "teleport"]}, "default_scopes"),
    "empty default_scopes": ("KYC_INCOMPLETE", {"default_scopes": []}, "default_scopes"),
    "missing summary": ("KYC_INCOMPLETE", {"summary": DROP}, "summary"),
    "missing lift": ("KYC_INCOMPLETE", {"lift": DROP}, "lift"),
    "missing customer_body": ("KYC_INCOMPLETE", {"customer_body": DROP}, "customer_body"),
    "unknown extra field": ("KYC_INCOMPLETE", {"colour": "red"}, "colour"),
    "sla_hours as string": ("KYC_INCOMPLETE", {"sla_hours": "72"}, "sla_hours"),
    "sla_hours as bool": ("KYC_INCOMPLETE", {"sla_hours": True}, "sla_hours"),
    "sla_hours as float": ("KYC_INCOMPLETE", {"sla_hours": 7.5}, "sla_hours"),
    "sla_hours zero": ("KYC_INCOMPLETE", {"sla_hours": 0}, "sla_hours"),
    "default_scopes as string": ("KYC_INCOMPLETE", {"default_scopes": "withdraw"}, "default_scopes"),
    "summary as number": ("KYC_INCOMPLETE", {"summary": 5}, "summary"),
    "lowercase code": ("KYC_INCOMPLETE", {"code": "kyc_incomplete"}, "code"),
    "unknown lift role": (
        "KYC_INCOMPLETE",
        {"lift": {"roles": ["agent", "janitor"], "approvals": 1, "legal_reference_required": False}},
        "lift.roles",
    ),
    "too many approvals": (
        "KYC_INCOMPLETE",
        {"lift": {"roles": ["agent"], "approvals": 6, "legal_reference_required": False}},
        "lift.approvals",
    ),
    "legal_reference_required as string": (
        "KYC_INCOMPLETE",
        {"lift": {"roles": ["agent"], "approvals": 1, "legal_reference_required": "no"}},
        "lift.legal_reference_required",
    ),
    "regulatory with one approval": (
        "REG_SANCTIONS_MATCH",
        {"lift": {"roles": ["compliance"], "approvals": 1, "legal_reference_required": True}},
        "lift",
    ),
    "regulatory without legal reference": (
        "REG_SANCTIONS_MATCH",
        {"lift": {"roles": ["compliance"], "approvals": 2, "legal_reference_required": False}},
        "lift",
    ),
    "regulatory lifted by an admin": (
        "REG_SANCTIONS_MATCH",
        {"lift": {"roles": ["compliance", "admin"], "approvals": 2, "legal_reference_required": True}},
        "lift",
    ),
    "regulatory with full disclosure": ("REG_COURT_ORDER", {"disclosure": "full"}, "disclosure"),
    "suspicious with one approval": (
        "SUS_STRUCTURING",
        {"lift": {"roles": ["investigator"], "approvals": 1, "legal_reference_required": False}},
        "lift.approvals",
    ),
    "suspicious with full disclosure": ("SUS_STRUCTURING", {"disclosure": "full"}, "disclosure"),
    "policy without policy_clause": ("POL_WASH_TRADING", {"policy_clause": DROP}, "policy_clause"),
    "policy without appeal window": ("POL_WASH_TRADING", {"appeal_window_days": DROP}, "appeal_window_days"),
    "appeal window as string": ("POL_WASH_TRADING", {"appeal_window_days": "14"}, "appeal_window_days"),
    "policy_clause as number": ("POL_WASH_TRADING", {"policy_clause": 32}, "policy_clause"),
}


@pytest.mark.parametrize(("base", "changes", "field"), list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_entry_is_rejected_naming_file_entry_and_field(
    tmp_path: Path,
    shipped: Callable[[str], dict[str, Any]],
    base: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    fields = shipped(base)
    for name, value in changes.items():
        if value is DROP:
            del fields[name]
        else:
            fields[name] = value
    path = write_catalogue(tmp_path, [shipped("SEC_COOLDOWN"), fields])
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    error = info.value
    message = str(error)
    entry = fields["code"]
    assert str(path) in message
    assert f"reason {entry}" in message
    assert f"field {field!r}" in message
    assert (error.source, error.entry, error.field_name) == (str(path), entry, field)


def test_bad_scope_error_names_the_scope(tmp_path: Path, shipped: Callable[[str], dict[str, Any]]) -> None:
    path = write_catalogue(tmp_path, [shipped("KYC_INCOMPLETE") | {"default_scopes": ["teleport"]}])
    with pytest.raises(CatalogueError, match="teleport"):
        load_catalogue(override=path)


def test_entry_without_code_is_named_by_position(tmp_path: Path, shipped: Callable[[str], dict[str, Any]]) -> None:
    nameless = shipped("KYC_INCOMPLETE")
    del nameless["code"]
    path = write_catalogue(tmp_path, [shipped("SEC_COOLDOWN"), nameless])
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    assert (info.value.entry, info.value.field_name) == ("#2", "code")
    assert str(path) in str(info.value)


def test_duplicate_code_in_one_file_is_rejected(tmp_path: Path, shipped: Callable[[str], dict[str, Any]]) -> None:
    path = write_catalogue(tmp_path, [shipped("SEC_COOLDOWN"), shipped("SEC_COOLDOWN") | {"sla_hours": 3}])
    with pytest.raises(CatalogueError, match="twice") as info:
        load_catalogue(override=path)
    assert (info.value.source, info.value.entry, info.value.field_name) == (str(path), "SEC_COOLDOWN", "code")


def test_message_key_without_japanese_text_is_rejected(tmp_path: Path) -> None:
    path = write_catalogue(tmp_path, [new_kyc_reason()], {"en": NEW_MESSAGES["en"]})
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    message = str(info.value)
    assert str(path) in message
    assert "KYC_SOURCE_OF_WEALTH" in message
    assert "customer_title" in message
    assert "'ja'" in message or " ja " in message
    assert NEW_KEYS["customer_title"] in message


def test_message_key_without_english_text_is_rejected(tmp_path: Path) -> None:
    path = write_catalogue(tmp_path, [new_kyc_reason()], {"ja": NEW_MESSAGES["ja"]})
    with pytest.raises(CatalogueError, match="en text") as info:
        load_catalogue(override=path)
    assert info.value.entry == "KYC_SOURCE_OF_WEALTH"


def test_one_missing_text_among_three_is_named(tmp_path: Path) -> None:
    ja = dict(NEW_MESSAGES["ja"])
    del ja[NEW_KEYS["customer_actions"]]
    path = write_catalogue(tmp_path, [new_kyc_reason()], {"en": NEW_MESSAGES["en"], "ja": ja})
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    assert info.value.field_name == "customer_actions"


def test_boolean_appeal_window_is_rejected_as_a_wrong_type(
    tmp_path: Path, shipped: Callable[[str], dict[str, Any]]
) -> None:
    """Required integers reject booleans (``sla_hours = true``); the optional integer must too."""
    path = write_catalogue(tmp_path, [shipped("POL_WASH_TRADING") | {"appeal_window_days": True}])
    with pytest.raises(CatalogueError) as info:
        load_catalogue(override=path)
    assert (info.value.entry, info.value.field_name) == ("POL_WASH_TRADING", "appeal_window_days")
