"""Restrictions and the rules for lifting them.

A restriction is one reason to block some actions of one account. An account may carry
several; lifting one never touches another. Expiry is a property of time, not of a cron
job: :meth:`Restriction.is_in_force` looks at the clock it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from freezedesk.domain.catalogue import ReasonCode
from freezedesk.domain.errors import (
    DuplicateApproval,
    InvalidExpiry,
    LegalReferenceRequired,
    LiftAlreadyRequested,
    NoPendingLift,
    PermanenceNotAllowed,
    RestrictionNotActive,
    RoleNotAllowed,
)
from freezedesk.domain.ids import new_id
from freezedesk.domain.scopes import Cause, Scope, ScopeSet


class Status(StrEnum):
    ACTIVE = "active"
    LIFTED = "lifted"
    EXPIRED = "expired"
    PERMANENT = "permanent"


class Source(StrEnum):
    RULE = "rule"
    SCREENING = "screening"
    STAFF = "staff"
    PARTNER_API = "partner_api"
    CUSTOMER = "customer"


class Disposition(StrEnum):
    """What happens to the assets of a permanently restricted account."""

    HELD = "held"
    TRANSFERRED_PER_ORDER = "transferred_per_order"
    RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a staff member (with a role) or a machine client (role ``None``)."""

    id: str
    role: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role is not None


@dataclass(slots=True)
class LiftRequest:
    requested_by: str
    reason: str
    legal_reference: str | None
    requested_at: datetime
    approvers: list[str]


@dataclass(frozen=True, slots=True)
class LiftOutcome:
    lifted: bool
    approvals_needed: int
    approvers: tuple[str, ...]


@dataclass(slots=True)
class Restriction:
    id: str
    account_id: str
    cause: Cause
    reason_code: str
    scopes: ScopeSet
    source: Source
    disclosure: str
    starts_at: datetime
    expires_at: datetime | None
    status: Status
    created_by: str
    legal_basis: str | None = None
    note: str | None = None
    case_id: str | None = None
    lift_request: LiftRequest | None = None
    lifted_at: datetime | None = None
    lift_reason: str | None = None
    disposition: Disposition | None = None
    version: int = 1

    @classmethod
    def impose(
        cls,
        *,
        account_id: str,
        reason: ReasonCode,
        scopes: ScopeSet | None,
        source: Source,
        actor: Actor,
        now: datetime,
        expires_at: datetime | None = None,
        legal_basis: str | None = None,
        note: str | None = None,
    ) -> Restriction:
        if actor.role is not None and actor.role not in reason.lift.roles | {"compliance"}:
            # A person may impose what they (or a compliance officer) may lift; auditors never write.
            raise RoleNotAllowed(
                f"role {actor.role!r} may not impose {reason.code}; allowed: "
                + ", ".join(sorted(reason.lift.roles | {"compliance"})),
                role=actor.role,
            )
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidExpiry("expires_at must carry a timezone (use UTC, e.g. ...Z)")
            if expires_at <= now:
                raise InvalidExpiry("expires_at is in the past", expires_at=expires_at.isoformat())
        return cls(
            id=new_id("rst"),
            account_id=account_id,
            cause=reason.cause,
            reason_code=reason.code,
            scopes=scopes or reason.default_scopes,
            source=source,
            disclosure=reason.disclosure.value,
            starts_at=now,
            expires_at=expires_at,
            status=Status.ACTIVE,
            created_by=actor.id,
            legal_basis=legal_basis or reason.policy_clause,
            note=note,
        )

    # -- checking -------------------------------------------------------------------------
    def is_in_force(self, now: datetime) -> bool:
        if self.status is Status.PERMANENT:
            return True
        if self.status is not Status.ACTIVE:
            return False
        return self.expires_at is None or now < self.expires_at

    def blocks(self, action: Scope, now: datetime, reduce_only: bool = False) -> bool:
        return self.is_in_force(now) and self.scopes.blocks(action, reduce_only)

    def effective_status(self, now: datetime) -> Status:
        """The status a reader should see: an active restriction past its expiry is expired."""
        if self.status is Status.ACTIVE and self.expires_at is not None and now >= self.expires_at:
            return Status.EXPIRED
        return self.status

    # -- lifting --------------------------------------------------------------------------
    def _require_liftable(self, now: datetime) -> None:
        status = self.effective_status(now)
        if status is not Status.ACTIVE:
            raise RestrictionNotActive(
                f"restriction {self.id} is {status.value}; only an active one can be lifted",
                restriction_status=status.value,
            )

    @staticmethod
    def _require_role(reason: ReasonCode, actor: Actor) -> None:
        if actor.role is None:
            raise RoleNotAllowed("lifting needs a staff API key (created with --role and --staff)")
        if actor.role not in reason.lift.roles:
            raise RoleNotAllowed(
                f"role {actor.role!r} may not lift {reason.code}; allowed: "
                + ", ".join(sorted(reason.lift.roles)),
                role=actor.role,
            )

    def request_lift(
        self,
        reason: ReasonCode,
        actor: Actor,
        why: str,
        legal_reference: str | None,
        now: datetime,
    ) -> LiftOutcome:
        """Ask to lift. The requester is the first approver; one approval may be enough."""
        self._require_liftable(now)
        if self.lift_request is not None:
            raise LiftAlreadyRequested(
                f"a lift of {self.id} is waiting for approval; approve it instead"
            )
        self._require_role(reason, actor)
        if reason.lift.legal_reference_required and not (legal_reference or "").strip():
            raise LegalReferenceRequired(f"lifting {reason.code} needs a legal_reference")
        self.lift_request = LiftRequest(actor.id, why, legal_reference, now, [actor.id])
        return self._settle(reason, now)

    def approve(self, reason: ReasonCode, actor: Actor, now: datetime) -> LiftOutcome:
        self._require_liftable(now)
        if self.lift_request is None:
            raise NoPendingLift(f"nobody has asked to lift {self.id}")
        self._require_role(reason, actor)
        if actor.id in self.lift_request.approvers:
            raise DuplicateApproval(f"{actor.id} has already approved lifting {self.id}")
        self.lift_request.approvers.append(actor.id)
        return self._settle(reason, now)

    def _settle(self, reason: ReasonCode, now: datetime) -> LiftOutcome:
        assert self.lift_request is not None
        approvers = tuple(self.lift_request.approvers)
        missing = max(reason.lift.approvals - len(approvers), 0)
        if missing == 0:
            self.status = Status.LIFTED
            self.lifted_at = now
            self.lift_reason = self.lift_request.reason
        self.version += 1
        return LiftOutcome(lifted=missing == 0, approvals_needed=missing, approvers=approvers)

    def expire(self, now: datetime) -> bool:
        """Record that an active restriction ran out. True when the status changed."""
        if self.effective_status(now) is Status.EXPIRED and self.status is Status.ACTIVE:
            self.status = Status.EXPIRED
            self.version += 1
            return True
        return False

    def make_permanent(
        self, reason: ReasonCode, actor: Actor, disposition: Disposition, now: datetime
    ) -> None:
        """Only the regulatory and policy playbooks end in a permanent restriction."""
        if self.cause not in (Cause.REGULATORY, Cause.POLICY):
            raise PermanenceNotAllowed(f"{self.cause.value} restrictions cannot become permanent")
        self._require_liftable(now)
        self._require_role(reason, actor)
        self.status = Status.PERMANENT
        self.expires_at = None
        self.disposition = disposition
        self.lift_request = None
        self.version += 1
