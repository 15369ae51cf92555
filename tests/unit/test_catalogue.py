"""The shipped reason catalogue and its customer texts (en, ja)."""

from __future__ import annotations

import re
import string
from collections import defaultdict

import pytest

from freezedesk.domain.catalogue import STAFF_ROLES, Disclosure, ReasonCatalogue, ReasonCode
from freezedesk.domain.errors import UnknownReasonCode
from freezedesk.domain.scopes import ALL_SCOPES, Cause
from tests.unit.conftest import PLACEHOLDERS

PREFIX_CAUSE = {
    "KYC_": Cause.KYC,
    "SUS_": Cause.SUSPICIOUS_ACTIVITY,
    "SEC_": Cause.SECURITY,
    "REG_": Cause.REGULATORY,
    "POL_": Cause.POLICY,
}
TEXT_FIELDS = ("customer_title", "customer_body", "customer_actions")

#: Words that would tip a customer off about an investigation, a report or an order.
TIPPING_OFF = (
    "investigation", "investigate", "suspicious", "suspicion", "laundering", "sanction", "police",
    "law enforcement", "court", "authorit", "report", "tax",
    "捜査", "警察", "通報", "疑わしい", "疑い", "不審", "制裁", "裁判", "税務", "当局", "報告",
)


def texts_of(catalogue: ReasonCatalogue, reason: ReasonCode) -> list[tuple[str, str, str]]:
    return [
        (locale, key, catalogue.messages[locale][key])
        for key in (getattr(reason, f) for f in TEXT_FIELDS)
        for locale in ("en", "ja")
    ]


def test_shipped_catalogue_has_enough_codes_for_all_five_causes(catalogue: ReasonCatalogue) -> None:
    assert len(catalogue) >= 20
    assert {r.cause for r in catalogue} == set(Cause)
    per_cause = defaultdict(int)
    for reason in catalogue:
        per_cause[reason.cause] += 1
    assert min(per_cause.values()) >= 3, per_cause


def test_codes_are_named_after_their_cause_and_playbook(catalogue: ReasonCatalogue) -> None:
    for reason in catalogue:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]{2,63}", reason.code)
        assert catalogue.get(reason.code) is reason
        prefix = reason.code[:4]
        assert PREFIX_CAUSE[prefix] is reason.cause, reason.code
        assert reason.playbook is reason.cause, reason.code
        assert reason.sla_hours > 0
        assert reason.lift.roles
        assert reason.lift.roles <= set(STAFF_ROLES)
        assert 1 <= reason.lift.approvals <= 5


def test_iteration_is_ordered_by_cause_then_code(catalogue: ReasonCatalogue) -> None:
    order = [(r.cause.value, r.code) for r in catalogue]
    assert order == sorted(order)
    assert len(order) == len(catalogue)


def test_unknown_code_raises(catalogue: ReasonCatalogue) -> None:
    with pytest.raises(UnknownReasonCode, match="NOPE_CODE") as info:
        catalogue.get("NOPE_CODE")
    assert info.value.extra["reason_code"] == "NOPE_CODE"


def test_regulatory_reasons_need_two_compliance_approvals_and_a_legal_reference(
    catalogue: ReasonCatalogue,
) -> None:
    regulatory = [r for r in catalogue if r.code.startswith("REG_")]
    assert len(regulatory) >= 3
    for reason in regulatory:
        assert reason.cause is Cause.REGULATORY
        assert reason.lift.roles == {"compliance"}
        assert reason.lift.approvals == 2
        assert reason.lift.legal_reference_required is True
        assert reason.disclosure is not Disclosure.FULL
        assert reason.default_scopes.scopes == ALL_SCOPES, "regulatory reasons are a full freeze"


def test_suspicious_activity_reasons_need_two_approvals_and_hide_the_reason(catalogue: ReasonCatalogue) -> None:
    suspicious = [r for r in catalogue if r.code.startswith("SUS_")]
    assert len(suspicious) >= 5
    for reason in suspicious:
        assert reason.cause is Cause.SUSPICIOUS_ACTIVITY
        assert reason.lift.approvals == 2
        assert reason.disclosure is Disclosure.GENERIC
        assert "withdraw" in reason.default_scopes.sorted_names()


def test_policy_reasons_cite_a_clause_and_an_appeal_window(catalogue: ReasonCatalogue) -> None:
    for reason in catalogue:
        if reason.cause is Cause.POLICY:
            assert reason.policy_clause
            assert reason.policy_clause.startswith("ToS")
            assert isinstance(reason.appeal_window_days, int)
            assert reason.appeal_window_days > 0
            assert reason.disclosure is Disclosure.FULL


def test_security_reasons_lock_login_and_withdrawals(catalogue: ReasonCatalogue) -> None:
    for reason in catalogue:
        if reason.cause is Cause.SECURITY and reason.code != "SEC_COOLDOWN":
            assert {"login", "withdraw"} <= set(reason.default_scopes.sorted_names()), reason.code
    assert catalogue.get("SEC_COOLDOWN").default_scopes.sorted_names() == ["withdraw"]


def test_every_message_key_exists_in_en_and_ja(catalogue: ReasonCatalogue) -> None:
    assert set(catalogue.messages) >= {"en", "ja"}
    assert set(catalogue.messages["en"]) == set(catalogue.messages["ja"])
    for reason in catalogue:
        for locale, key, text in texts_of(catalogue, reason):
            assert text.strip(), (reason.code, locale, key)
    # Every scope and status has a label in both languages.
    for locale in ("en", "ja"):
        for name in ("login", "trade", "withdraw", "deposit", "api", "p2p", "transfer"):
            assert catalogue.messages[locale][f"scope.{name}"]
        for status in ("active", "lifted", "expired", "permanent"):
            assert catalogue.messages[locale][f"status.{status}"]


def test_japanese_texts_are_japanese(catalogue: ReasonCatalogue) -> None:
    kana = re.compile(r"[\u3040-\u30ff]")
    for reason in catalogue:
        for locale, key, text in texts_of(catalogue, reason):
            if locale == "ja":
                assert kana.search(text), key
                assert text != catalogue.messages["en"][key]


def test_every_text_formats_with_the_documented_placeholders(catalogue: ReasonCatalogue) -> None:
    formatter = string.Formatter()
    for locale, table in catalogue.messages.items():
        for key, template in table.items():
            used = {name for _, name, _, _ in formatter.parse(template) if name is not None}
            assert used <= set(PLACEHOLDERS), (locale, key, used)
            rendered = catalogue.text(key, locale, **PLACEHOLDERS)
            for name in used:
                assert str(PLACEHOLDERS[name]) in rendered, (locale, key, name)


def test_texts_of_policy_reasons_use_their_clause_and_window(catalogue: ReasonCatalogue) -> None:
    for reason in catalogue:
        if reason.cause is Cause.POLICY:
            for locale in ("en", "ja"):
                body = catalogue.messages[locale][reason.customer_body]
                actions = catalogue.messages[locale][reason.customer_actions]
                assert "{policy_clause}" in body + actions, (reason.code, locale)
                assert "{appeal_window_days}" in actions, (reason.code, locale)


def test_text_falls_back_to_english_for_an_unknown_locale(catalogue: ReasonCatalogue) -> None:
    key = "notice.sla"
    assert catalogue.text(key, "fr", hours=5) == catalogue.text(key, "en", hours=5)
    assert "5" in catalogue.text(key, "ja", hours=5)
    assert catalogue.text(key, "ja", hours=5) != catalogue.text(key, "en", hours=5)


def test_no_tipping_off_in_generic_or_silent_texts(catalogue: ReasonCatalogue) -> None:
    hidden = [r for r in catalogue if r.disclosure is not Disclosure.FULL]
    assert {r.cause for r in hidden} == {Cause.SUSPICIOUS_ACTIVITY, Cause.REGULATORY}
    leaks = []
    for reason in hidden:
        for locale, key, text in texts_of(catalogue, reason):
            rendered = text.format(**PLACEHOLDERS).casefold()
            leaks += [(reason.code, locale, key, word) for word in TIPPING_OFF if word.casefold() in rendered]
    assert leaks == []


def test_tipping_off_word_list_would_catch_a_leak() -> None:
    # guard against a check that can never fire (e.g. case handling)
    text = "Your account is under INVESTIGATION after a Suspicious Activity Report; 当局への報告".casefold()
    assert {w for w in TIPPING_OFF if w.casefold() in text} >= {"investigation", "suspicious", "report", "当局"}


def test_hidden_reasons_share_one_wording_per_cause_and_disclosure(catalogue: ReasonCatalogue) -> None:
    """A customer must not be able to tell which hidden reason code applies from its text."""
    groups: dict[tuple[Cause, Disclosure], set[tuple[str, ...]]] = defaultdict(set)
    for reason in catalogue:
        if reason.disclosure is not Disclosure.FULL:
            wording = tuple(text for _, _, text in texts_of(catalogue, reason))
            groups[reason.cause, reason.disclosure].add(wording)
    assert groups
    for group, wordings in groups.items():
        assert len(wordings) == 1, group


def test_public_view_describes_the_reason(catalogue: ReasonCatalogue) -> None:
    view = catalogue.get("POL_PROHIBITED_JURISDICTION").public_view()
    assert view["code"] == "POL_PROHIBITED_JURISDICTION"
    assert view["cause"] == "policy"
    assert view["default_scopes"] == ["deposit", "p2p", "trade", "transfer"]
    assert view["close_only"] is True
    assert view["lift_policy"] == {"roles": ["admin", "compliance"], "approvals": 1, "legal_reference_required": False}
    assert view["policy_clause"] == "ToS §3.2"
    assert view["appeal_window_days"] == 30
    assert set(view["customer_text_keys"]) == {"title", "body", "actions"}
    # the public view never carries customer text itself, only keys
    assert all(v.startswith("reason.") for v in view["customer_text_keys"].values())
