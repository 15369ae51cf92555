"""Domain errors map onto RFC 9457 problem documents without clashing with standard members."""

from __future__ import annotations

from datetime import timedelta

import pytest

from freezedesk.domain import errors
from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import DomainError
from freezedesk.domain.inquiry import normalize
from freezedesk.domain.playbooks import next_state
from freezedesk.domain.restrictions import Actor, Restriction, Source
from freezedesk.domain.scopes import Cause, parse_action, resolve_scopes
from tests.unit.conftest import NOW

CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)]
RESERVED = {"type", "title", "status", "detail", "instance"}


def test_every_error_has_a_distinct_slug_title_and_http_status() -> None:
    assert len(CLASSES) >= 10
    slugs = [c.type for c in CLASSES]
    assert len(slugs) == len(set(slugs))
    for cls in CLASSES:
        assert cls.type
        assert cls.type == cls.type.lower()
        assert " " not in cls.type
        assert cls.title
        assert 400 <= cls.status < 500


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_error_keeps_its_detail_and_extra(cls: type[DomainError]) -> None:
    exc = cls("something broke", field="x")
    assert str(exc) == exc.detail == "something broke"
    assert exc.extra == {"field": "x"}


def _raised(catalogue: ReasonCatalogue) -> list[DomainError]:
    """Real errors raised by the domain, with the extra members they carry."""
    found: list[DomainError] = []
    reason = catalogue.get("KYC_INCOMPLETE")
    restriction = Restriction.impose(
        account_id="a", reason=reason, scopes=None, source=Source.STAFF, actor=Actor("s", "agent"), now=NOW
    )
    restriction.request_lift(reason, Actor("s", "agent"), "ok", None, NOW)
    fresh = Restriction.impose(
        account_id="a", reason=reason, scopes=None, source=Source.STAFF, actor=Actor("s"), now=NOW
    )
    attempts = [
        lambda: resolve_scopes(["teleport"]),
        lambda: parse_action("fly"),
        lambda: catalogue.get("NOPE_CODE"),
        lambda: Restriction.impose(account_id="a", reason=reason, scopes=None, source=Source.STAFF,
                                   actor=Actor("s", "agent"), now=NOW, expires_at=NOW - timedelta(hours=1)),
        lambda: restriction.request_lift(reason, Actor("s", "agent"), "again", None, NOW),
        lambda: fresh.request_lift(reason, Actor("x", "auditor"), "", None, NOW),
        lambda: next_state(Cause.KYC, "opened", "fly"),
        lambda: next_state(Cause.KYC, "resolved", "resolve"),
        lambda: normalize("0000-0000-0"),
    ]
    for attempt in attempts:
        with pytest.raises(DomainError) as info:
            attempt()
        found.append(info.value)
    return found


def test_extra_members_never_clash_with_standard_problem_members(catalogue: ReasonCatalogue) -> None:
    raised = _raised(catalogue)
    assert sum(bool(e.extra) for e in raised) >= 6
    for error in raised:
        assert not RESERVED & set(error.extra), (type(error).__name__, error.extra)
