"""Domain errors.

Every error carries a stable ``type`` slug. The web edge turns it into an RFC 9457
problem document (``https://freezedesk.dev/problems/<type>``) and the CLI into a
message; nothing else needs to know how to present it.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the domain was broken; nothing has been changed."""

    type: str = "domain-error"
    title: str = "The request breaks a rule of FreezeDesk"
    status: int = 422

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class UnknownReasonCode(DomainError):
    type = "unknown-reason-code"
    title = "Unknown reason code"


class UnknownScope(DomainError):
    type = "unknown-scope"
    title = "Unknown scope or preset"


class InvalidExpiry(DomainError):
    type = "invalid-expiry"
    title = "Expiry must be in the future"


class NotFound(DomainError):
    type = "not-found"
    title = "Not found"
    status = 404


class RestrictionNotActive(DomainError):
    type = "restriction-not-active"
    title = "The restriction is not active"
    status = 409


class LiftAlreadyRequested(DomainError):
    type = "lift-already-requested"
    title = "A lift is already waiting for approval"
    status = 409


class NoPendingLift(DomainError):
    type = "no-pending-lift"
    title = "There is no lift waiting for approval"
    status = 409


class DuplicateApproval(DomainError):
    type = "duplicate-approval"
    title = "The same person cannot approve twice"
    status = 409


class RoleNotAllowed(DomainError):
    type = "role-not-allowed"
    title = "Your role may not do this"
    status = 403


class LegalReferenceRequired(DomainError):
    type = "legal-reference-required"
    title = "A legal reference is required"


class IllegalTransition(DomainError):
    type = "illegal-transition"
    title = "Illegal playbook transition"
    status = 409


class PermanenceNotAllowed(DomainError):
    type = "permanence-not-allowed"
    title = "Only regulatory or policy restrictions can become permanent"
    status = 409


class InvalidInquiryNumber(DomainError):
    type = "invalid-inquiry-number"
    title = "Inquiry number is not valid"
