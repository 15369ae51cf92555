"""Webhooks from the transactional outbox.

Events are written to ``outbox`` (and one ``webhook_deliveries`` row per subscribed endpoint)
in the same transaction as the change they announce, so an event exists if and only if the
change committed. The dispatcher sends due deliveries, signs each body, and retries failures
with exponential backoff. Its state lives in the database: a restart resumes where it stopped.

Receivers verify ``FreezeDesk-Signature: t=<unix seconds>,v1=<hex>`` where
``v1 = HMAC-SHA256(secret, "<t>." + raw body)``, reject old timestamps, and dedupe on
``FreezeDesk-Event-Id`` (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, insert, select, update

from freezedesk.domain.errors import DomainError
from freezedesk.domain.ids import new_id
from freezedesk.store.tables import outbox, webhook_deliveries, webhooks
from freezedesk.store.uow import Store, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "restriction.created",
    "restriction.lifted",
    "restriction.expired",
    "restriction.approval_required",
)


class InvalidWebhook(DomainError):
    type = "invalid-webhook"
    title = "Invalid webhook"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does (shipped for partners' tests and ours)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


@dataclass(frozen=True, slots=True)
class RegisteredWebhook:
    id: str
    url: str
    events: list[str]
    secret: str


def register(store: Store, url: str, events: list[str], created_by: str) -> RegisteredWebhook:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("url must be an absolute http(s) URL", field="url")
    if not events:
        raise InvalidWebhook("subscribe to at least one event", field="events")
    unknown = [e for e in events if e not in EVENT_TYPES and e != "*"]
    if unknown:
        raise InvalidWebhook(
            f"unknown event {unknown[0]!r}; expected {', '.join(EVENT_TYPES)} or *", field="events"
        )
    hook = RegisteredWebhook(new_id("whk"), url, sorted(set(events)), "whsec_" + secrets.token_urlsafe(32))
    now = utcnow()
    with store.unit_of_work() as uow:
        uow.conn.execute(
            insert(webhooks).values(
                id=hook.id, url=url, events=",".join(hook.events), secret=hook.secret,
                created_at=now, created_by=created_by, active=True,
            )
        )
        # never the secret: the audit log is readable by auditors
        uow.audit(created_by, "webhook.registered", "webhook", hook.id, None,
                  {"url": url, "events": hook.events}, now)
    return hook


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    event_id: str
    event_type: str
    attempts: int
    payload: str
    url: str
    secret: str


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        *,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        max_attempts: int = 12,
        timeout: float = 5.0,
        lease: float = 60.0,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.lease = lease
        self.interval = interval
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))

    def _claim(self, now: datetime, limit: int) -> list[_Due]:
        """Take due deliveries and lease them, so a second dispatcher does not send them too."""
        with self.store.unit_of_work() as uow:
            rows = uow.conn.execute(
                select(
                    webhook_deliveries.c.id, webhook_deliveries.c.event_id, webhook_deliveries.c.attempts,
                    outbox.c.event_type, outbox.c.payload, webhooks.c.url, webhooks.c.secret,
                )
                .select_from(
                    webhook_deliveries.join(outbox, outbox.c.id == webhook_deliveries.c.event_id)
                    .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                )
                .where(and_(webhook_deliveries.c.status == "pending",
                            webhook_deliveries.c.next_attempt_at <= now))
                .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=webhook_deliveries)
            ).all()
            if rows:
                uow.conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=self.lease))
                )
        return [_Due(r.id, r.event_id, r.event_type, r.attempts, r.payload, r.url, r.secret) for r in rows]

    def _send(self, due: _Due) -> str | None:
        body = due.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FreezeDesk-Webhooks/1",
            "FreezeDesk-Event-Id": due.event_id,
            "FreezeDesk-Event-Type": due.event_type,
            "FreezeDesk-Signature": sign(due.secret, int(time.time()), body),
        }
        try:
            response = self._client.post(due.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now. Returns how many deliveries succeeded."""
        delivered = 0
        for due in self._claim(utcnow(), limit):
            error = self._send(due)
            now = utcnow()
            attempts = due.attempts + 1
            if error is None:
                values = {"status": "delivered", "attempts": attempts, "delivered_at": now, "last_error": None}
                delivered += 1
            elif attempts >= self.max_attempts:
                values = {"status": "failed", "attempts": attempts, "last_error": error}
                log.warning("webhook delivery %s gave up after %d attempts: %s", due.id, attempts, error)
            else:
                retry_at = now + timedelta(seconds=self.backoff(attempts))
                values = {"attempts": attempts, "last_error": error, "next_attempt_at": retry_at}
            with self.store.unit_of_work() as uow:
                uow.conn.execute(
                    update(webhook_deliveries).where(webhook_deliveries.c.id == due.id).values(**values)
                )
        return delivered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="freezedesk-webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("webhook dispatcher round failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.close()
