"""Two monitors — two server processes — storing events for the same accounts at the same time.

Each thread owns a :class:`~freezedesk.monitoring.live.Monitor` with its own engine and connection
pool (what a second ``freezedesk serve`` has) and posts every other deposit of the same structuring
bursts; every batch names all three accounts, so the transactions contend for the same account
locks. On PostgreSQL the two run truly in parallel; on SQLite the writer lock interleaves them.

Whatever the interleaving, the result must be what one monitor would have raised given the same
batches in the order they committed (the audit chain's order of their ``events.ingested`` entries):
the same alerts — account, rule, firing time and evidence — each recorded once.

The threads take each step together (a barrier): the two batches of a step race each other, but
neither thread runs bursts ahead. Without it, a thread could post a whole burst before the other
posts the previous one's last deposit — events days out of time order — and a monitor that catches
up replays stored history in time order (as after a restart), where one monitor fed in commit order
would have counted the stragglers at the account's latest time: a different, equally defensible
answer, not the property under test.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import select

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.monitoring.events import Event, parse_batch
from freezedesk.monitoring.live import Monitor
from freezedesk.monitoring.rules.engine import StreamEngine
from freezedesk.store.tables import audit_log, monitoring_alerts, restrictions
from freezedesk.store.uow import Store
from tests.integration.test_monitoring_live import deposit

ACCOUNTS = ("acct-c0", "acct-c1", "acct-c2")
BURSTS = 4  # per account, three days apart: past the 24 h window and dedup, so each one alerts anew
PER_BURST = 6  # deposits just below 10,000 USD, ten minutes apart; the threads take turns

AlertKey = tuple[str, str, datetime, tuple[str, ...]]


def batches_of(thread: int) -> list[list[Event]]:
    """Thread 0 posts the even deposits of every burst, thread 1 the odd ones; one per account a batch
    (in opposite account order on the two threads: the locks are taken in id order anyway)."""
    out = []
    for burst in range(BURSTS):
        for i in range(thread, PER_BURST, 2):
            names = ACCOUNTS if thread == 0 else tuple(reversed(ACCOUNTS))
            raw = [deposit(f"{a}-{burst}-{i}", a, burst * 3 * 24 * 60 + i * 10 + n) for n, a in enumerate(names)]
            out.append(parse_batch("\n".join(json.dumps(e) for e in raw)))
    return out


def key(account: str, rule: str, ts: datetime, event_ids: Any) -> AlertKey:
    # The evidence as a set: a monitor that caught up replayed the other's events in time order,
    # which may list them in another order than one monitor that received them late did.
    return account, rule, ts, tuple(sorted(event_ids))


def test_two_monitors_posting_at_once_raise_what_one_monitor_would(
    db_url: str, catalogue: ReasonCatalogue,
) -> None:
    monitors = [Monitor.from_env(Store(db_url), catalogue) for _ in range(2)]
    for monitor in monitors:
        monitor.warm()
    work = [batches_of(0), batches_of(1)]
    batch_ids: dict[str, list[Event]] = {}
    returned: list[AlertKey] = []
    errors: list[BaseException] = []
    step = threading.Barrier(2)
    record = threading.Lock()

    def post(thread: int) -> None:
        try:
            for batch in work[thread]:
                step.wait(timeout=60)
                submitted = monitors[thread].submit(batch, "test", f"thread-{thread}")
                with record:
                    assert submitted.ingest.batch_id is not None
                    batch_ids[submitted.ingest.batch_id] = batch
                    returned.extend(key(a["account_id"], a["rule_id"], datetime.fromisoformat(a["ts"]),
                                        a["event_ids"]) for a in submitted.alerts)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
            step.abort()  # the other thread must not wait for a partner that is gone

    threads = [threading.Thread(target=post, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    store = Store(db_url)
    try:
        with store.read() as uow:
            committed = [row.entity_id for row in uow.conn.execute(
                select(audit_log.c.entity_id).where(audit_log.c.action == "events.ingested").order_by(audit_log.c.seq))]
            recorded = [key(r.account_id, r.rule_id, r.ts, json.loads(r.event_ids))
                        for r in uow.conn.execute(select(monitoring_alerts))]
            restricted = sorted(r.account_id for r in uow.conn.execute(select(restrictions.c.account_id)))
    finally:
        store.dispose()
        for monitor in monitors:
            monitor.store.dispose()
    assert sorted(committed) == sorted(batch_ids)

    # One monitor, the same batches in commit order, each batch's events in time order (as submit does).
    single = StreamEngine(monitors[0].pack)
    expected = [key(alert.account_id, alert.rule_id, alert.ts, alert.event_ids)
                for batch_id in committed
                for event in sorted(batch_ids[batch_id], key=lambda e: e.ts)
                for alert in single.process(event)]

    assert len(expected) == len(ACCOUNTS) * BURSTS  # one structuring alert per burst and account
    assert {rule for _a, rule, _t, _e in expected} == {"structuring"}
    assert sorted(recorded) == sorted(expected)
    assert sorted(returned) == sorted(expected)  # and each reported once, by the process that raised it
    assert restricted == sorted(ACCOUNTS)  # later bursts are evidence on the first one's hold
    assert sum(monitor.caught_up for monitor in monitors) > 0
