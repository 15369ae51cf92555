"""Cases (internal) and inquiries (customer-facing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from freezedesk.domain import inquiry as inquiry_numbers
from freezedesk.domain.ids import new_id
from freezedesk.domain.playbooks import INITIAL_STATE, TERMINAL_STATES, next_state
from freezedesk.domain.scopes import Cause


@dataclass(slots=True)
class Case:
    id: str
    account_id: str
    cause: Cause
    state: str
    opened_at: datetime
    sla_due_at: datetime
    inquiry_number: str
    restriction_ids: list[str] = field(default_factory=list)
    closed_at: datetime | None = None
    version: int = 1

    @classmethod
    def open(cls, account_id: str, cause: Cause, sla_hours: int, now: datetime) -> Case:
        return cls(
            id=new_id("case"),
            account_id=account_id,
            cause=cause,
            state=INITIAL_STATE,
            opened_at=now,
            sla_due_at=now + timedelta(hours=sla_hours),
            inquiry_number=inquiry_numbers.generate(),
        )

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL_STATES

    def apply(self, event: str, now: datetime) -> tuple[str, str]:
        """Move along the playbook; returns ``(from_state, to_state)``."""
        before = self.state
        self.state = next_state(self.cause, self.state, event)
        if self.state in TERMINAL_STATES:
            self.closed_at = now
        self.version += 1
        return before, self.state
