"""Concurrent lifts and approvals never double-apply (two connections at once, on each backend)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import DomainError
from freezedesk.domain.restrictions import Actor, Source
from freezedesk.services import restrictions as restriction_service
from freezedesk.store.tables import audit_log, cases, lift_approvals, outbox
from freezedesk.store.uow import Store


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same instant on separate threads (each with its own connection)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def runner(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except DomainError as exc:
            results[i] = exc
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def count(store: Store, table: Any, *where: Any) -> int:
    with store.read() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def frozen(store: Store, catalogue: ReasonCatalogue, code: str) -> str:
    f = restriction_service.freeze(store, catalogue, account_id="acct-1", reason_code=code,
                                   actor=Actor("tester"), source=Source.STAFF)
    return f.restriction.id


def test_two_second_approvers_at_once_lift_exactly_once(store: Store, catalogue: ReasonCatalogue) -> None:
    rid = frozen(store, catalogue, "SUS_HIGH_VOLUME")
    restriction_service.request_lift(store, catalogue, rid, Actor("stf_a", "investigator"), "explained")
    others = [Actor(f"stf_{n}", "investigator") for n in "bcd"]
    results = race(*[lambda a=a: restriction_service.approve_lift(store, catalogue, rid, a) for a in others])
    winners = [r for r in results if isinstance(r, tuple)]
    assert len(winners) == 1 and winners[0][1].lifted, results
    assert all(type(r).__name__ in ("RestrictionNotActive", "ConcurrentUpdate") for r in results
               if not isinstance(r, tuple)), results
    assert count(store, lift_approvals, lift_approvals.c.restriction_id == rid) == 2
    assert count(store, outbox, outbox.c.event_type == "restriction.lifted") == 1
    assert count(store, audit_log, audit_log.c.action == "restriction.lifted") == 1


def test_same_approver_twice_at_once_counts_once(store: Store, catalogue: ReasonCatalogue) -> None:
    rid = frozen(store, catalogue, "REG_SANCTIONS_MATCH")
    restriction_service.request_lift(store, catalogue, rid, Actor("stf_a", "compliance"), "false positive", "ref 1")
    twin = Actor("stf_b", "compliance")
    results = race(lambda: restriction_service.approve_lift(store, catalogue, rid, twin),
                   lambda: restriction_service.approve_lift(store, catalogue, rid, twin))
    assert sum(isinstance(r, tuple) for r in results) == 1, results
    assert count(store, lift_approvals, lift_approvals.c.restriction_id == rid) == 2
    assert count(store, outbox, outbox.c.event_type == "restriction.lifted") == 1


def test_two_lift_requests_at_once(store: Store, catalogue: ReasonCatalogue) -> None:
    rid = frozen(store, catalogue, "SEC_PHISHING")  # one approval lifts
    results = race(*[lambda n=n: restriction_service.request_lift(
        store, catalogue, rid, Actor(f"stf_{n}", "security"), "ok") for n in range(4)])
    assert sum(isinstance(r, tuple) for r in results) == 1, results
    assert count(store, outbox, outbox.c.event_type == "restriction.lifted") == 1
    assert count(store, lift_approvals, lift_approvals.c.restriction_id == rid) == 1


def test_concurrent_freezes_of_one_account_share_one_case(store: Store, catalogue: ReasonCatalogue) -> None:
    results = race(*[lambda: restriction_service.freeze(
        store, catalogue, account_id="acct-new", reason_code="KYC_MISMATCH", actor=Actor("t"),
        source=Source.STAFF) for _ in range(4)])
    assert all(not isinstance(r, Exception) for r in results), results
    assert count(store, cases, cases.c.account_id == "acct-new") == 1
    assert len({r.case.inquiry_number for r in results}) == 1
