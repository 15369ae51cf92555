"""Playbook state machines and cases."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest

from freezedesk.domain import inquiry
from freezedesk.domain.cases import Case
from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import IllegalTransition
from freezedesk.domain.playbooks import INITIAL_STATE, PLAYBOOKS, TERMINAL_STATES, all_events, next_state
from freezedesk.domain.scopes import Cause
from tests.unit.conftest import NOW

CAUSES = list(Cause)

#: One documented walk per outcome (DESIGN.md, "The five playbooks").
LEGAL_PATHS: list[tuple[Cause, list[str], str]] = [
    (Cause.KYC, ["request_documents", "submit", "reject_document", "submit", "accept_all", "resolve"], "resolved"),
    (Cause.SUSPICIOUS_ACTIVITY, ["request_information", "submit", "ask_more", "submit", "clear", "resolve"],
     "resolved"),
    (Cause.SUSPICIOUS_ACTIVITY, ["request_information", "submit", "escalate", "report", "close"], "closed"),
    (Cause.SUSPICIOUS_ACTIVITY, ["escalate", "report", "clear", "resolve"], "resolved"),
    (Cause.SECURITY, ["request_recovery", "submit", "ask_more", "submit", "restore", "resolve"], "resolved"),
    (Cause.REGULATORY, ["review", "make_permanent"], "closed"),
    (Cause.REGULATORY, ["review", "release", "resolve"], "resolved"),
    (Cause.POLICY, ["notify", "appeal", "lift_with_warning", "resolve"], "resolved"),
    (Cause.POLICY, ["notify", "appeal", "offboard", "close"], "closed"),
    (Cause.POLICY, ["notify", "window_passed", "make_permanent"], "closed"),
]


def states_of(cause: Cause) -> set[str]:
    table = PLAYBOOKS[cause]
    return set(table) | {target for events in table.values() for target in events.values()}


def shortest_path_without_resolve(cause: Cause, goal: set[str]) -> list[str] | None:
    """Breadth-first search over the table's own events (the catch-all ``resolve`` excluded)."""
    queue: deque[tuple[str, list[str]]] = deque([(INITIAL_STATE, [])])
    seen = {INITIAL_STATE}
    while queue:
        state, path = queue.popleft()
        if state in goal:
            return path
        for event, target in sorted(PLAYBOOKS[cause].get(state, {}).items()):
            if event != "resolve" and target not in seen:
                seen.add(target)
                queue.append((target, [*path, event]))
    return None


def test_there_is_one_playbook_per_cause() -> None:
    assert set(PLAYBOOKS) == set(Cause)
    assert {"resolved", "closed"} == TERMINAL_STATES
    for cause in CAUSES:
        assert INITIAL_STATE in PLAYBOOKS[cause]
        assert not TERMINAL_STATES & set(PLAYBOOKS[cause]), "terminal states have no outgoing events"
        assert "resolve" in all_events(cause)


@pytest.mark.parametrize("cause", CAUSES)
def test_every_state_is_reachable_and_no_state_is_a_dead_end(cause: Cause) -> None:
    table = PLAYBOOKS[cause]
    for state in states_of(cause):
        assert state in table or state in TERMINAL_STATES, f"{cause}: {state} has no transitions"
    reachable = {INITIAL_STATE}
    frontier = [INITIAL_STATE]
    while frontier:
        for target in table.get(frontier.pop(), {}).values():
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == states_of(cause)
    assert reachable & TERMINAL_STATES


@pytest.mark.parametrize(("cause", "events", "end"), LEGAL_PATHS)
def test_documented_walk_reaches_its_terminal_state(cause: Cause, events: list[str], end: str) -> None:
    case = Case.open("acct-1", cause, 24, NOW)
    for step, event in enumerate(events, start=1):
        before = case.state
        assert case.is_open
        assert case.closed_at is None
        moved = case.apply(event, NOW + timedelta(minutes=step))
        assert moved == (before, case.state)
        assert case.version == 1 + step
    assert case.state == end
    assert not case.is_open
    assert case.closed_at == NOW + timedelta(minutes=len(events))


@pytest.mark.parametrize("cause", CAUSES)
def test_each_cause_reaches_a_terminal_state_through_its_own_steps(cause: Cause) -> None:
    path = shortest_path_without_resolve(cause, {"resolved", "closed"})
    if path is None:  # kyc and security only finish by lifting: reach their success state, then resolve
        success = {state for state, events in PLAYBOOKS[cause].items() if set(events) == {"resolve"}}
        path = shortest_path_without_resolve(cause, success)
        assert path is not None
        assert len(path) >= 3
        path.append("resolve")
    state = INITIAL_STATE
    for event in path:
        state = next_state(cause, state, event)
    assert state in TERMINAL_STATES


def _illegal_pairs() -> list[tuple[Cause, str, str]]:
    pairs = []
    for cause in CAUSES:
        events = all_events(cause) | {"fly_to_the_moon"}
        for state, allowed in PLAYBOOKS[cause].items():
            pairs += [(cause, state, e) for e in sorted(events - set(allowed) - {"resolve"})]
    return pairs


ILLEGAL = _illegal_pairs()


def test_there_are_illegal_events_to_check() -> None:
    assert len(ILLEGAL) > 50


@pytest.mark.parametrize(("cause", "state", "event"), ILLEGAL)
def test_illegal_event_is_refused_and_changes_nothing(cause: Cause, state: str, event: str) -> None:
    case = Case.open("acct-1", cause, 24, NOW)
    case.state = state
    with pytest.raises(IllegalTransition) as info:
        case.apply(event, NOW + timedelta(hours=1))
    allowed = sorted({*PLAYBOOKS[cause][state], "resolve"})
    assert info.value.extra["allowed"] == allowed
    for name in allowed:
        assert name in info.value.detail
    assert repr(event) in info.value.detail
    assert repr(state) in info.value.detail
    assert (case.state, case.version, case.closed_at) == (state, 1, None)


@pytest.mark.parametrize("cause", CAUSES)
def test_illegal_transition_lists_every_event_the_state_accepts(cause: Cause) -> None:
    """The ``allowed`` list must tell the caller everything that would have worked, ``resolve`` included."""
    for state in PLAYBOOKS[cause]:
        accepted = set()
        for event in all_events(cause):
            try:
                next_state(cause, state, event)
            except IllegalTransition:
                continue
            accepted.add(event)
        with pytest.raises(IllegalTransition) as info:
            next_state(cause, state, "fly_to_the_moon")
        assert set(info.value.extra["allowed"]) == accepted, (cause.value, state)


@pytest.mark.parametrize("cause", CAUSES)
@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_terminal_states_accept_nothing(cause: Cause, terminal: str) -> None:
    for event in sorted(all_events(cause)):
        with pytest.raises(IllegalTransition, match="no further"):
            next_state(cause, terminal, event)
    case = Case.open("acct-1", cause, 24, NOW)
    case.state, case.closed_at, case.version = terminal, NOW, 7
    for event in sorted(all_events(cause)):
        with pytest.raises(IllegalTransition):
            case.apply(event, NOW + timedelta(days=1))
    assert (case.state, case.version, case.closed_at) == (terminal, 7, NOW)


@pytest.mark.parametrize(("cause", "state"), [(c, s) for c in CAUSES for s in PLAYBOOKS[c]])
def test_resolve_works_from_every_open_state(cause: Cause, state: str) -> None:
    assert next_state(cause, state, "resolve") == "resolved"
    case = Case.open("acct-1", cause, 24, NOW)
    case.state = state
    assert case.apply("resolve", NOW + timedelta(hours=2)) == (state, "resolved")
    assert case.closed_at == NOW + timedelta(hours=2)
    assert case.version == 2


def test_case_open_sets_sla_and_inquiry_number(catalogue: ReasonCatalogue) -> None:
    numbers = set()
    for reason in catalogue:
        case = Case.open("acct-9", reason.playbook, reason.sla_hours, NOW)
        assert case.id.startswith("case_")
        assert len(case.id) == 5 + 26
        assert (case.account_id, case.cause, case.state, case.version) == ("acct-9", reason.cause, "opened", 1)
        assert case.opened_at == NOW
        assert case.sla_due_at == NOW + timedelta(hours=reason.sla_hours)
        assert case.sla_due_at - case.opened_at == timedelta(hours=reason.sla_hours)
        assert inquiry.normalize(case.inquiry_number) == case.inquiry_number
        assert case.closed_at is None
        assert case.restriction_ids == []
        assert case.is_open
        numbers.add(case.inquiry_number)
    assert len(numbers) == len(catalogue)


def test_cases_do_not_share_restriction_lists() -> None:
    a = Case.open("acct-1", Cause.KYC, 1, NOW)
    b = Case.open("acct-1", Cause.KYC, 1, NOW)
    a.restriction_ids.append("rst_x")
    assert b.restriction_ids == []
    assert a.id != b.id
