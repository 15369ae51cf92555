"""The hash-chained, append-only audit log.

Each entry hashes its canonical content together with the previous entry's hash, so
changing, deleting or reordering any row breaks every hash after it. Appends take a lock
on the single ``audit_head`` row: the chain is one line, never a tree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from freezedesk.store.tables import audit_head, audit_log

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    account_id: str | None
    data: dict[str, Any]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(seq: int, entry: dict[str, Any], prev_hash: str) -> str:
    content = canonical_json(
        {
            "seq": seq,
            "at": entry["at"],
            "actor": entry["actor"],
            "action": entry["action"],
            "entity_type": entry["entity_type"],
            "entity_id": entry["entity_id"],
            "account_id": entry["account_id"],
            "data": entry["data"],
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def append(conn: Connection, entries: list[AuditEntry]) -> None:
    """Append entries at the head of the chain, inside the caller's transaction."""
    if not entries:
        return
    head = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    seq, prev = int(head.seq), str(head.hash)
    rows = []
    for entry in entries:
        seq += 1
        data_json = canonical_json(entry.data)
        row = {
            "at": _timestamp(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "entity_type": entry.entity_type,
            "entity_id": entry.entity_id,
            "account_id": entry.account_id,
            "data": data_json,
        }
        digest = entry_hash(seq, row, prev)
        rows.append({**row, "at": entry.at, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    conn.execute(audit_log.insert(), rows)
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    broken_seq: int | None = None
    problem: str | None = None


def verify(conn: Connection, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain; report the first entry whose hash or link does not hold."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    last = 0
    while True:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, count, expected_seq, f"entry {expected_seq} is missing")
            if row.prev_hash != prev:
                return VerifyResult(False, count, row.seq, "link to the previous entry is broken")
            content = {
                "at": _timestamp(row.at),
                "actor": row.actor,
                "action": row.action,
                "entity_type": row.entity_type,
                "entity_id": row.entity_id,
                "account_id": row.account_id,
                "data": row.data,
            }
            if entry_hash(row.seq, content, prev) != row.hash:
                return VerifyResult(False, count, row.seq, "content does not match its hash")
            prev = row.hash
            expected_seq += 1
            count += 1
            last = row.seq
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != count or head.hash != prev:
        return VerifyResult(False, count, head.seq, "the chain head does not match the last entry (rows deleted?)")
    return VerifyResult(True, count)
