"""Domain errors map onto RFC 9457 problem documents without clashing with standard members."""

from __future__ import annotations

import pytest

from freezedesk.domain import errors
from freezedesk.domain.errors import DomainError

CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)]
RESERVED = {"type", "title", "status", "detail", "instance"}


def test_every_error_has_a_distinct_slug_title_and_http_status() -> None:
    assert len(CLASSES) >= 10
    slugs = [c.type for c in CLASSES]
    assert len(slugs) == len(set(slugs))
    for cls in CLASSES:
        assert cls.type and cls.type == cls.type.lower() and " " not in cls.type
        assert cls.title
        assert 400 <= cls.status < 500


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_error_keeps_its_detail_and_extra(cls: type[DomainError]) -> None:
    exc = cls("something broke", field="x")
    assert str(exc) == exc.detail == "something broke"
    assert exc.extra == {"field": "x"}
