"""Prefixed ULIDs."""

from __future__ import annotations

import re
import time

from hypothesis import given
from hypothesis import strategies as st

from freezedesk.domain import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_MS = 2**48 - 1
ULID = re.compile(rf"^[0-7][{CROCKFORD}]{{25}}$")


def timestamp_ms(ulid: str) -> int:
    value = 0
    for ch in ulid[:10]:
        value = value * 32 + CROCKFORD.index(ch)
    return value


def test_crockford_alphabet_sorts_like_its_values() -> None:
    assert ids._CROCKFORD == CROCKFORD
    assert sorted(CROCKFORD) == list(CROCKFORD)


def test_new_id_has_prefix_and_a_26_character_ulid() -> None:
    before = int(time.time() * 1000)
    made = [ids.new_id("rst") for _ in range(100)]
    after = int(time.time() * 1000)
    assert len(set(made)) == 100
    for value in made:
        prefix, _, ulid = value.partition("_")
        assert prefix == "rst"
        assert len(ulid) == 26
        assert ULID.match(ulid), ulid
        assert before <= timestamp_ms(ulid) <= after
    assert ids.new_id("case").startswith("case_")


@given(st.integers(0, MAX_MS))
def test_ulid_encodes_the_millisecond(now_ms: int) -> None:
    value = ids.ulid(now_ms)
    assert ULID.match(value)
    assert timestamp_ms(value) == now_ms


@given(st.integers(0, MAX_MS - 1), st.integers(1, 10**9))
def test_ulid_sorts_by_time(now_ms: int, step: int) -> None:
    later = min(now_ms + step, MAX_MS)
    assert ids.ulid(now_ms) < ids.ulid(later)


@given(st.lists(st.integers(0, MAX_MS), min_size=2, max_size=30, unique=True))
def test_ulids_of_increasing_times_are_monotonic(times: list[int]) -> None:
    times.sort()
    made = [ids.ulid(ms) for ms in times]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_same_millisecond_gives_different_ids() -> None:
    made = {ids.ulid(1_700_000_000_000) for _ in range(200)}
    assert len(made) == 200
    assert {m[:10] for m in made} == {ids.ulid(1_700_000_000_000)[:10]}
