"""Restrictions: imposing, expiry against the given clock, lifting with approvals, permanence."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freezedesk.domain.catalogue import LiftPolicy, ReasonCatalogue
from freezedesk.domain.errors import (
    DomainError,
    DuplicateApproval,
    InvalidExpiry,
    LegalReferenceRequired,
    LiftAlreadyRequested,
    NoPendingLift,
    PermanenceNotAllowed,
    RestrictionNotActive,
    RoleNotAllowed,
)
from freezedesk.domain.restrictions import Actor, Disposition, Restriction, Source, Status
from freezedesk.domain.scopes import Cause, Scope, resolve_scopes
from tests.unit.conftest import NOW

Impose = Callable[..., Restriction]
HOUR = timedelta(hours=1)

MACHINE = Actor("partner-key-1")
AGENT = Actor("agent-1", "agent")
AUDITOR = Actor("auditor-1", "auditor")
ADMIN = Actor("admin-1", "admin")
SECURITY = Actor("sec-1", "security")
INVESTIGATOR_A = Actor("inv-a", "investigator")
INVESTIGATOR_B = Actor("inv-b", "investigator")
COMPLIANCE_A = Actor("cmp-a", "compliance")
COMPLIANCE_B = Actor("cmp-b", "compliance")


# -- imposing -----------------------------------------------------------------------------------


def test_impose_uses_the_reason_defaults(impose: Impose, catalogue: ReasonCatalogue) -> None:
    r = impose("SUS_PASS_THROUGH", actor=MACHINE, source=Source.RULE)
    reason = catalogue.get("SUS_PASS_THROUGH")
    assert r.id.startswith("rst_")
    assert len(r.id) == 4 + 26
    assert (r.account_id, r.cause, r.reason_code) == ("acct-1", Cause.SUSPICIOUS_ACTIVITY, "SUS_PASS_THROUGH")
    assert r.scopes == reason.default_scopes
    assert r.scopes.sorted_names() == ["p2p", "transfer", "withdraw"]
    assert r.disclosure == "generic"
    assert (r.status, r.version, r.starts_at, r.expires_at) == (Status.ACTIVE, 1, NOW, None)
    assert r.created_by == MACHINE.id
    assert r.source is Source.RULE
    assert r.lift_request is None


def test_impose_with_explicit_scopes_and_policy_clause_as_legal_basis(impose: Impose) -> None:
    r = impose("POL_WASH_TRADING", scopes=resolve_scopes(["full_freeze"]))
    assert r.scopes.scopes == frozenset(Scope)
    assert r.legal_basis == "ToS §10.2"
    assert impose("REG_COURT_ORDER", legal_basis="Order 2025-17").legal_basis == "Order 2025-17"
    assert impose("KYC_INCOMPLETE").legal_basis is None


def test_each_restriction_gets_its_own_id(impose: Impose) -> None:
    assert len({impose("KYC_INCOMPLETE").id for _ in range(50)}) == 50


@pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=400)])
def test_impose_with_a_past_expiry_is_rejected(impose: Impose, expires_at: datetime) -> None:
    with pytest.raises(InvalidExpiry, match="past"):
        impose("SEC_COOLDOWN", expires_at=expires_at)


def test_impose_with_a_naive_expiry_is_rejected(impose: Impose) -> None:
    naive = (NOW + timedelta(days=1)).replace(tzinfo=None)
    with pytest.raises(InvalidExpiry, match="timezone"):
        impose("SEC_COOLDOWN", expires_at=naive)


def test_impose_with_a_future_expiry_in_any_timezone(impose: Impose) -> None:
    tokyo = timezone(timedelta(hours=9))
    expires = (NOW + HOUR).astimezone(tokyo)
    r = impose("SEC_COOLDOWN", expires_at=expires)
    assert r.expires_at == NOW + HOUR
    assert r.is_in_force(NOW + HOUR - timedelta(microseconds=1))
    assert not r.is_in_force(NOW + HOUR)


# -- expiry against the given clock -------------------------------------------------------------


def test_expiry_follows_the_given_clock(impose: Impose) -> None:
    r = impose("SEC_COOLDOWN", expires_at=NOW + 24 * HOUR)
    end = NOW + 24 * HOUR
    assert r.is_in_force(NOW)
    assert r.blocks(Scope.WITHDRAW, NOW)
    assert r.is_in_force(end - timedelta(seconds=1))
    assert r.effective_status(end - timedelta(seconds=1)) is Status.ACTIVE
    for later in (end, end + timedelta(days=3)):
        assert not r.is_in_force(later)
        assert not r.blocks(Scope.WITHDRAW, later)
        assert r.effective_status(later) is Status.EXPIRED
    # reading never mutates
    assert (r.status, r.version) == (Status.ACTIVE, 1)


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=-10_000, max_value=20_000))
def test_blocks_exactly_while_in_force(catalogue: ReasonCatalogue, lifetime_s: int, offset_s: int) -> None:
    reason = catalogue.get("SEC_COOLDOWN")
    r = Restriction.impose(
        account_id="a", reason=reason, scopes=None, source=Source.RULE, actor=MACHINE, now=NOW,
        expires_at=NOW + timedelta(seconds=lifetime_s),
    )
    at = NOW + timedelta(seconds=offset_s)
    in_force = at < NOW + timedelta(seconds=lifetime_s)
    assert r.is_in_force(at) is in_force
    assert r.blocks(Scope.WITHDRAW, at) is in_force
    assert r.blocks(Scope.LOGIN, at) is False
    assert r.effective_status(at) is (Status.ACTIVE if in_force else Status.EXPIRED)


def test_restriction_without_expiry_stays_in_force(impose: Impose) -> None:
    r = impose("KYC_INCOMPLETE")
    far = NOW + timedelta(days=3650)
    assert r.is_in_force(far)
    assert r.effective_status(far) is Status.ACTIVE
    assert r.blocks(Scope.WITHDRAW, far)
    assert not r.blocks(Scope.LOGIN, far)
    assert not r.blocks(Scope.DEPOSIT, far)


def test_close_only_restriction_lets_reduce_only_trades_through(impose: Impose) -> None:
    r = impose("POL_PROHIBITED_JURISDICTION")
    assert r.blocks(Scope.TRADE, NOW)
    assert not r.blocks(Scope.TRADE, NOW, reduce_only=True)
    assert not r.blocks(Scope.WITHDRAW, NOW)
    assert r.blocks(Scope.DEPOSIT, NOW)


def test_expire_records_the_status_once(impose: Impose) -> None:
    r = impose("SEC_COOLDOWN", expires_at=NOW + HOUR)
    assert r.expire(NOW) is False
    assert (r.status, r.version) == (Status.ACTIVE, 1)
    assert r.expire(NOW + HOUR) is True
    assert (r.status, r.version) == (Status.EXPIRED, 2)
    assert r.expire(NOW + 2 * HOUR) is False
    assert r.version == 2
    assert impose("KYC_INCOMPLETE").expire(NOW + timedelta(days=999)) is False


# -- lifting ------------------------------------------------------------------------------------


def test_machine_actor_may_not_lift(impose: Impose, catalogue: ReasonCatalogue) -> None:
    r = impose("KYC_INCOMPLETE")
    with pytest.raises(RoleNotAllowed, match="staff"):
        r.request_lift(catalogue.get("KYC_INCOMPLETE"), MACHINE, "docs ok", None, NOW)
    assert not MACHINE.is_staff
    assert AGENT.is_staff


@pytest.mark.parametrize(
    ("code", "actor"),
    [
        ("KYC_INCOMPLETE", AUDITOR),
        ("KYC_INCOMPLETE", SECURITY),
        ("SUS_HIGH_VOLUME", AGENT),
        ("SUS_HIGH_VOLUME", ADMIN),
        ("SEC_PHISHING", AGENT),
        ("REG_SANCTIONS_MATCH", ADMIN),
        ("REG_SANCTIONS_MATCH", INVESTIGATOR_A),
        ("POL_WASH_TRADING", AGENT),
    ],
)
def test_role_outside_the_lift_policy_may_not_lift(
    impose: Impose, catalogue: ReasonCatalogue, code: str, actor: Actor
) -> None:
    reason = catalogue.get(code)
    assert actor.role not in reason.lift.roles
    r = impose(code)
    with pytest.raises(RoleNotAllowed) as info:
        r.request_lift(reason, actor, "why", "ref-1", NOW)
    assert repr(actor.role) in info.value.detail
    assert code in info.value.detail
    assert info.value.extra["role"] == actor.role


@pytest.mark.parametrize("legal_reference", [None, "", "   "])
def test_regulatory_lift_needs_a_legal_reference(
    impose: Impose, catalogue: ReasonCatalogue, legal_reference: str | None
) -> None:
    for code in ("REG_SANCTIONS_MATCH", "REG_LAW_ENFORCEMENT_ORDER", "REG_COURT_ORDER", "REG_TAX_AUTHORITY"):
        r = impose(code)
        with pytest.raises(LegalReferenceRequired):
            r.request_lift(catalogue.get(code), COMPLIANCE_A, "order withdrawn", legal_reference, NOW)
        assert r.lift_request is None


@pytest.mark.parametrize(
    ("code", "actor"),
    [("KYC_INCOMPLETE", AGENT), ("SEC_PHISHING", SECURITY), ("POL_WASH_TRADING", ADMIN), ("SEC_SELF_LOCK", AGENT)],
)
def test_one_approval_reasons_lift_at_once(
    impose: Impose, catalogue: ReasonCatalogue, code: str, actor: Actor
) -> None:
    reason = catalogue.get(code)
    assert reason.lift.approvals == 1
    r = impose(code)
    later = NOW + HOUR
    outcome = r.request_lift(reason, actor, "customer verified", None, later)
    assert (outcome.lifted, outcome.approvals_needed, outcome.approvers) == (True, 0, (actor.id,))
    assert (r.status, r.version, r.lifted_at, r.lift_reason) == (Status.LIFTED, 2, later, "customer verified")
    assert not r.is_in_force(later)
    assert not any(r.blocks(action, later) for action in Scope)
    assert r.effective_status(later + timedelta(days=1)) is Status.LIFTED


def test_two_approval_lift_needs_two_different_people(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("SUS_HIGH_VOLUME")
    r = impose("SUS_HIGH_VOLUME")
    first = r.request_lift(reason, INVESTIGATOR_A, "explained: salary", None, NOW)
    assert (first.lifted, first.approvals_needed, first.approvers) == (False, 1, ("inv-a",))
    assert (r.status, r.version) == (Status.ACTIVE, 2)
    assert r.blocks(Scope.WITHDRAW, NOW)

    with pytest.raises(DuplicateApproval, match="inv-a"):
        r.approve(reason, INVESTIGATOR_A, NOW + HOUR)
    # same id with another role is still the same person
    with pytest.raises(DuplicateApproval):
        r.approve(reason, Actor("inv-a", "compliance"), NOW + HOUR)
    assert r.version == 2
    assert r.status is Status.ACTIVE

    second = r.approve(reason, COMPLIANCE_B, NOW + 2 * HOUR)
    assert (second.lifted, second.approvals_needed, second.approvers) == (True, 0, ("inv-a", "cmp-b"))
    assert (r.status, r.version, r.lifted_at) == (Status.LIFTED, 3, NOW + 2 * HOUR)
    assert r.lift_reason == "explained: salary"
    assert not r.blocks(Scope.WITHDRAW, NOW + 2 * HOUR)


def test_regulatory_lift_by_two_compliance_officers(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("REG_SANCTIONS_MATCH")
    r = impose("REG_SANCTIONS_MATCH")
    assert r.request_lift(reason, COMPLIANCE_A, "false positive", "OFAC-FP-123", NOW).lifted is False
    assert r.lift_request is not None
    assert r.lift_request.legal_reference == "OFAC-FP-123"
    with pytest.raises(RoleNotAllowed):
        r.approve(reason, ADMIN, NOW)
    assert r.approve(reason, COMPLIANCE_B, NOW).lifted is True
    assert r.status is Status.LIFTED


def test_second_approver_needs_an_allowed_role(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("SUS_FAN_IN")
    r = impose("SUS_FAN_IN")
    r.request_lift(reason, INVESTIGATOR_A, "ok", None, NOW)
    for actor in (AGENT, ADMIN, MACHINE):
        with pytest.raises(RoleNotAllowed):
            r.approve(reason, actor, NOW)
    assert r.lift_request is not None
    assert r.lift_request.approvers == ["inv-a"]


def test_second_request_while_one_is_pending(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("SUS_STRUCTURING")
    r = impose("SUS_STRUCTURING")
    r.request_lift(reason, INVESTIGATOR_A, "ok", None, NOW)
    with pytest.raises(LiftAlreadyRequested):
        r.request_lift(reason, INVESTIGATOR_B, "me too", None, NOW)
    assert r.lift_request is not None
    assert r.lift_request.requested_by == "inv-a"


def test_approve_without_a_pending_lift(impose: Impose, catalogue: ReasonCatalogue) -> None:
    r = impose("SUS_STRUCTURING")
    with pytest.raises(NoPendingLift):
        r.approve(catalogue.get("SUS_STRUCTURING"), INVESTIGATOR_B, NOW)


def test_lifting_a_lifted_restriction(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("KYC_MISMATCH")
    r = impose("KYC_MISMATCH")
    r.request_lift(reason, AGENT, "fixed", None, NOW)
    with pytest.raises(RestrictionNotActive, match="lifted") as info:
        r.request_lift(reason, ADMIN, "again", None, NOW)
    assert "lifted" in info.value.extra.values()
    with pytest.raises(RestrictionNotActive):
        r.approve(reason, ADMIN, NOW)


def test_lifting_an_expired_restriction(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("SEC_COOLDOWN")
    r = impose("SEC_COOLDOWN", expires_at=NOW + HOUR)
    with pytest.raises(RestrictionNotActive, match="expired"):
        r.request_lift(reason, SECURITY, "early", None, NOW + 2 * HOUR)
    r.expire(NOW + 2 * HOUR)
    with pytest.raises(RestrictionNotActive, match="expired"):
        r.request_lift(reason, SECURITY, "early", None, NOW + 2 * HOUR)


def test_pending_lift_cannot_be_approved_after_expiry(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("SUS_FAN_OUT")
    r = impose("SUS_FAN_OUT", expires_at=NOW + HOUR)
    r.request_lift(reason, INVESTIGATOR_A, "ok", None, NOW)
    with pytest.raises(RestrictionNotActive):
        r.approve(reason, INVESTIGATOR_B, NOW + HOUR)
    assert r.status is Status.ACTIVE
    assert r.lifted_at is None


def test_lifting_one_restriction_never_lifts_another(impose: Impose, catalogue: ReasonCatalogue) -> None:
    kyc = impose("KYC_INCOMPLETE")
    sus = impose("SUS_HIGH_VOLUME")
    kyc.request_lift(catalogue.get("KYC_INCOMPLETE"), AGENT, "done", None, NOW)
    assert kyc.status is Status.LIFTED
    assert sus.status is Status.ACTIVE
    assert sus.blocks(Scope.WITHDRAW, NOW)
    assert sus.version == 1


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=7))
def test_lifted_exactly_when_enough_distinct_people_approve(
    catalogue: ReasonCatalogue, approvals: int, people: int
) -> None:
    reason = replace(catalogue.get("SUS_HIGH_VOLUME"), lift=LiftPolicy(frozenset({"investigator"}), approvals, False))
    r = Restriction.impose(account_id="a", reason=reason, scopes=None, source=Source.RULE, actor=MACHINE, now=NOW)
    staff = [Actor(f"inv-{i}", "investigator") for i in range(people)]
    outcome = r.request_lift(reason, staff[0], "ok", None, NOW)
    for i, actor in enumerate(staff[1:], start=2):
        if outcome.lifted:
            with pytest.raises(RestrictionNotActive):
                r.approve(reason, actor, NOW)
            break
        outcome = r.approve(reason, actor, NOW)
        assert len(outcome.approvers) == i
    assert outcome.lifted is (people >= approvals)
    assert outcome.approvals_needed == max(approvals - people, 0)
    assert (r.status is Status.LIFTED) is (people >= approvals)
    assert r.version == 1 + min(people, approvals)


# -- permanence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["KYC_INCOMPLETE", "SUS_HIGH_VOLUME", "SEC_ACCOUNT_TAKEOVER"])
def test_only_regulatory_or_policy_can_become_permanent(
    impose: Impose, catalogue: ReasonCatalogue, code: str
) -> None:
    r = impose(code)
    with pytest.raises(PermanenceNotAllowed):
        r.make_permanent(catalogue.get(code), ADMIN, Disposition.HELD, NOW)
    assert (r.status, r.disposition, r.version) == (Status.ACTIVE, None, 1)


@pytest.mark.parametrize(
    ("code", "actor", "disposition"),
    [
        ("REG_COURT_ORDER", COMPLIANCE_A, Disposition.TRANSFERRED_PER_ORDER),
        ("REG_SANCTIONS_MATCH", COMPLIANCE_B, Disposition.HELD),
        ("POL_MULTIPLE_ACCOUNTS", ADMIN, Disposition.RETURNED),
    ],
)
def test_make_permanent_records_the_disposition(
    impose: Impose, catalogue: ReasonCatalogue, code: str, actor: Actor, disposition: Disposition
) -> None:
    reason = catalogue.get(code)
    r = impose(code, expires_at=NOW + timedelta(days=30))
    r.make_permanent(reason, actor, disposition, NOW + HOUR)
    assert (r.status, r.disposition, r.expires_at, r.version) == (Status.PERMANENT, disposition, None, 2)
    far = NOW + timedelta(days=3650)
    assert r.is_in_force(far)
    assert r.effective_status(far) is Status.PERMANENT
    assert r.blocks(Scope.DEPOSIT, far)
    with pytest.raises(RestrictionNotActive, match="permanent"):
        r.request_lift(reason, actor, "lift", "ref", far)
    assert r.expire(far) is False


def test_make_permanent_clears_a_pending_lift(impose: Impose, catalogue: ReasonCatalogue) -> None:
    reason = catalogue.get("REG_TAX_AUTHORITY")
    r = impose("REG_TAX_AUTHORITY")
    r.request_lift(reason, COMPLIANCE_A, "paid", "NTA-1", NOW)
    r.make_permanent(reason, COMPLIANCE_B, Disposition.TRANSFERRED_PER_ORDER, NOW)
    assert r.lift_request is None
    assert r.status is Status.PERMANENT
    with pytest.raises(RestrictionNotActive):
        r.approve(reason, COMPLIANCE_B, NOW)


def test_make_permanent_needs_an_allowed_role_and_an_active_restriction(
    impose: Impose, catalogue: ReasonCatalogue
) -> None:
    reason = catalogue.get("REG_COURT_ORDER")
    r = impose("REG_COURT_ORDER")
    for actor in (MACHINE, ADMIN, AGENT):
        with pytest.raises(RoleNotAllowed):
            r.make_permanent(reason, actor, Disposition.HELD, NOW)
    expiring = impose("REG_COURT_ORDER", expires_at=NOW + HOUR)
    with pytest.raises(RestrictionNotActive):
        expiring.make_permanent(reason, COMPLIANCE_A, Disposition.HELD, NOW + HOUR)
    assert expiring.status is Status.ACTIVE


# -- a failed operation changes nothing ---------------------------------------------------------


def _pending_sus(impose: Impose, catalogue: ReasonCatalogue) -> Restriction:
    r = impose("SUS_HIGH_VOLUME", expires_at=NOW + 10 * HOUR)
    r.request_lift(catalogue.get("SUS_HIGH_VOLUME"), INVESTIGATOR_A, "ok", None, NOW)
    return r


def _lifted_kyc(impose: Impose, catalogue: ReasonCatalogue) -> Restriction:
    r = impose("KYC_INCOMPLETE")
    r.request_lift(catalogue.get("KYC_INCOMPLETE"), AGENT, "ok", None, NOW)
    return r


def _lifted_policy(impose: Impose, catalogue: ReasonCatalogue) -> Restriction:
    r = impose("POL_WASH_TRADING")
    r.request_lift(catalogue.get("POL_WASH_TRADING"), ADMIN, "warned", None, NOW)
    return r


FAILURES: dict[str, tuple[Callable[[Impose, ReasonCatalogue], Restriction], Callable[..., object], type]] = {
    "machine requests lift": (
        lambda i, c: i("KYC_INCOMPLETE"),
        lambda r, c: r.request_lift(c.get("KYC_INCOMPLETE"), MACHINE, "x", None, NOW),
        RoleNotAllowed,
    ),
    "wrong role requests lift": (
        lambda i, c: i("SUS_HIGH_VOLUME"),
        lambda r, c: r.request_lift(c.get("SUS_HIGH_VOLUME"), AGENT, "x", None, NOW),
        RoleNotAllowed,
    ),
    "no legal reference": (
        lambda i, c: i("REG_SANCTIONS_MATCH"),
        lambda r, c: r.request_lift(c.get("REG_SANCTIONS_MATCH"), COMPLIANCE_A, "x", " ", NOW),
        LegalReferenceRequired,
    ),
    "duplicate approval": (
        _pending_sus,
        lambda r, c: r.approve(c.get("SUS_HIGH_VOLUME"), INVESTIGATOR_A, NOW),
        DuplicateApproval,
    ),
    "approver with wrong role": (
        _pending_sus,
        lambda r, c: r.approve(c.get("SUS_HIGH_VOLUME"), ADMIN, NOW),
        RoleNotAllowed,
    ),
    "second request": (
        _pending_sus,
        lambda r, c: r.request_lift(c.get("SUS_HIGH_VOLUME"), INVESTIGATOR_B, "x", None, NOW),
        LiftAlreadyRequested,
    ),
    "approve after expiry": (
        _pending_sus,
        lambda r, c: r.approve(c.get("SUS_HIGH_VOLUME"), INVESTIGATOR_B, NOW + 10 * HOUR),
        RestrictionNotActive,
    ),
    "approve without request": (
        lambda i, c: i("SUS_HIGH_VOLUME"),
        lambda r, c: r.approve(c.get("SUS_HIGH_VOLUME"), INVESTIGATOR_B, NOW),
        NoPendingLift,
    ),
    "lift a lifted one": (
        _lifted_kyc,
        lambda r, c: r.request_lift(c.get("KYC_INCOMPLETE"), ADMIN, "x", None, NOW),
        RestrictionNotActive,
    ),
    "permanent for security": (
        lambda i, c: i("SEC_MALWARE"),
        lambda r, c: r.make_permanent(c.get("SEC_MALWARE"), ADMIN, Disposition.HELD, NOW),
        PermanenceNotAllowed,
    ),
    "permanent by wrong role": (
        lambda i, c: i("REG_COURT_ORDER"),
        lambda r, c: r.make_permanent(c.get("REG_COURT_ORDER"), ADMIN, Disposition.HELD, NOW),
        RoleNotAllowed,
    ),
    "permanent of a lifted one": (
        lambda i, c: _lifted_policy(i, c),
        lambda r, c: r.make_permanent(c.get("POL_WASH_TRADING"), ADMIN, Disposition.HELD, NOW),
        RestrictionNotActive,
    ),
}


@pytest.mark.parametrize(("make", "operation", "error"), list(FAILURES.values()), ids=list(FAILURES))
def test_failed_operation_leaves_the_restriction_unchanged(
    impose: Impose,
    catalogue: ReasonCatalogue,
    make: Callable[[Impose, ReasonCatalogue], Restriction],
    operation: Callable[..., object],
    error: type[DomainError],
) -> None:
    r = make(impose, catalogue)
    before = copy.deepcopy(r)
    approvers = list(r.lift_request.approvers) if r.lift_request else None
    with pytest.raises(error):
        operation(r, catalogue)
    assert r == before
    assert (r.status, r.version) == (before.status, before.version)
    assert (list(r.lift_request.approvers) if r.lift_request else None) == approvers


def test_times_are_utc_aware(impose: Impose) -> None:
    r = impose("KYC_INCOMPLETE", now=datetime(2025, 1, 1, tzinfo=UTC))
    assert r.starts_at.tzinfo is not None


@pytest.mark.parametrize(("actor", "code"), [(AGENT, "SUS_PASS_THROUGH"), (ADMIN, "REG_COURT_ORDER"),
                                             (AUDITOR, "KYC_INCOMPLETE"), (SECURITY, "SUS_FAN_IN")])
def test_a_person_may_impose_only_what_their_role_may_lift(impose: Impose, actor: Actor, code: str) -> None:
    with pytest.raises(RoleNotAllowed, match=code):
        impose(code, actor=actor)


def test_compliance_and_machines_may_impose_any_reason(impose: Impose, catalogue: ReasonCatalogue) -> None:
    for reason in catalogue:
        assert impose(reason.code, actor=COMPLIANCE_A).reason_code == reason.code
        assert impose(reason.code, actor=MACHINE).reason_code == reason.code
