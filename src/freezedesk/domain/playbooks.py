"""Playbooks: the state machine of a case, one per cause (DESIGN.md, "The five playbooks").

States and events are plain data so the console can draw them and a test can walk them.
Every playbook shares ``opened`` as its first state and ends in ``resolved`` (all
restrictions lifted or expired) or, for regulatory and policy cases, in ``closed``
(permanent restriction / offboarded).
"""

from __future__ import annotations

from collections.abc import Mapping

from freezedesk.domain.errors import IllegalTransition, RoleNotAllowed
from freezedesk.domain.scopes import Cause

Transitions = Mapping[str, Mapping[str, str]]  # state -> event -> next state

PLAYBOOKS: dict[Cause, Transitions] = {
    # ID document, proof of address, optional selfie; each document reviewed on its own.
    Cause.KYC: {
        "opened": {"request_documents": "awaiting_customer", "resolve": "resolved"},
        "awaiting_customer": {"submit": "under_review", "resolve": "resolved"},
        "under_review": {
            "reject_document": "awaiting_customer",
            "accept_all": "approved",
            "resolve": "resolved",
        },
        "approved": {"resolve": "resolved"},
    },
    # Questionnaire, review, ask more, escalate to the MLRO, report (never shown to the customer).
    Cause.SUSPICIOUS_ACTIVITY: {
        "opened": {"request_information": "awaiting_customer", "escalate": "escalated"},
        "awaiting_customer": {"submit": "under_review", "escalate": "escalated"},
        "under_review": {
            "ask_more": "awaiting_customer",
            "clear": "cleared",
            "escalate": "escalated",
        },
        "escalated": {"clear": "cleared", "report": "reported"},
        "reported": {"clear": "cleared", "close": "closed"},
        "cleared": {"resolve": "resolved"},
    },
    # Re-verify identity, new password, TOTP, review devices/keys/addresses, restore + cooldown.
    Cause.SECURITY: {
        "opened": {"request_recovery": "awaiting_customer", "resolve": "resolved"},
        "awaiting_customer": {"submit": "under_review", "resolve": "resolved"},
        "under_review": {"ask_more": "awaiting_customer", "restore": "restored"},
        "restored": {"resolve": "resolved"},
    },
    # No customer appeal; a compliance officer decides; may end permanent.
    Cause.REGULATORY: {
        "opened": {"review": "under_review"},
        "under_review": {"release": "released", "make_permanent": "closed"},
        "released": {"resolve": "resolved"},
    },
    # Notice citing the clause, appeal window; lift with warning or offboarding.
    Cause.POLICY: {
        "opened": {"notify": "appeal_window"},
        "appeal_window": {"appeal": "under_review", "window_passed": "offboarding"},
        "under_review": {"lift_with_warning": "warned", "offboard": "offboarding"},
        "warned": {"resolve": "resolved"},
        "offboarding": {"close": "closed", "make_permanent": "closed"},
    },
}

TERMINAL_STATES = frozenset({"resolved", "closed"})

#: Staff who work cases; auditors only read.
CASE_WORKERS = frozenset({"agent", "investigator", "security", "compliance", "admin"})
#: Decisions reserved to some roles. Reporting to the authorities, closing a reported case and
#: releasing a regulatory case are the compliance officer's (MLRO's) decisions.
EVENT_ROLES: dict[str, frozenset[str]] = {
    "escalate": frozenset({"investigator", "compliance"}),
    "report": frozenset({"compliance"}),
    "close": frozenset({"compliance"}),
    "release": frozenset({"compliance"}),
    "clear": frozenset({"investigator", "compliance"}),
    "offboard": frozenset({"compliance", "admin"}),
    "lift_with_warning": frozenset({"compliance", "admin"}),
}
#: Taken by FreezeDesk itself: "resolve" when the last restriction of a case is lifted or expires,
#: "make_permanent" when a restriction is made permanent. Never by hand, so a case can never read
#: "resolved" while its restrictions still block the customer.
SYSTEM_EVENTS = frozenset({"resolve", "make_permanent"})
INITIAL_STATE = "opened"


def next_state(cause: Cause, state: str, event: str) -> str:
    """The state after ``event``; raises :class:`IllegalTransition` and changes nothing."""
    if state in TERMINAL_STATES:
        raise IllegalTransition(f"the case is {state}; no further transitions", state=state)
    # Lifting the last restriction resolves any open case, whatever step it was on.
    if event == "resolve":
        return "resolved"
    table = PLAYBOOKS[cause].get(state, {})
    if event not in table:
        allowed = sorted({*table, "resolve"})
        raise IllegalTransition(
            f"{cause.value} case in state {state!r} cannot take event {event!r}; allowed: {', '.join(allowed)}",
            state=state,
            event=event,
            allowed=allowed,
        )
    return table[event]


def authorize_event(event: str, role: str | None) -> None:
    """Raise unless a staff member with ``role`` may take ``event`` by hand."""
    if event in SYSTEM_EVENTS:
        raise IllegalTransition(
            f"{event!r} happens by itself (when the last restriction is lifted, or one is made permanent)",
            event=event,
        )
    allowed = EVENT_ROLES.get(event, CASE_WORKERS)
    if role not in allowed:
        raise RoleNotAllowed(
            f"role {role!r} may not take {event!r}; allowed: {', '.join(sorted(allowed))}", role=role
        )


def all_events(cause: Cause) -> set[str]:
    return {event for table in PLAYBOOKS[cause].values() for event in table} | {"resolve"}
