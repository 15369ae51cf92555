"""Webhooks from the transactional outbox.

Events are written to ``outbox`` (and one ``webhook_deliveries`` row per subscribed endpoint)
in the same transaction as the change they announce, so an event exists if and only if the
change committed. The dispatcher sends due deliveries, signs each body, and retries failures
with exponential backoff. Its state lives in the database: a restart resumes where it stopped.

Receivers verify ``FreezeDesk-Signature: t=<unix seconds>,v1=<hex>`` where
``v1 = HMAC-SHA256(secret, "<t>." + raw body)``, reject old timestamps, and dedupe on
``FreezeDesk-Event-Id`` (delivery is at least once).

Security: signing secrets are stored sealed with the operator key (``notify.secretbox``) and
opened only to sign; destinations must be public http(s) endpoints unless the operator allows
more (``notify.destinations``), checked at registration and again on every connection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from sqlalchemy import and_, delete, insert, select, update

from freezedesk.domain.errors import DomainError
from freezedesk.domain.ids import new_id
from freezedesk.notify.destinations import DestinationPolicy, WebhookUrlForbidden
from freezedesk.notify.secretbox import (
    SecretBox,
    SecretKeyError,
    idempotent_response_context,
    is_sealed,
    sealed_key_id,
    webhook_secret_context,
)
from freezedesk.store.tables import idempotency_keys, outbox, webhook_deliveries, webhooks
from freezedesk.store.uow import Store, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "restriction.created",
    "restriction.lifted",
    "restriction.expired",
    "restriction.approval_required",
)


#: The registration route; its stored idempotent responses hold a secret and are sealed too.
WEBHOOKS_PATH = "/v1/webhooks"


class InvalidWebhook(DomainError):
    type = "invalid-webhook"
    title = "Invalid webhook"


class WebhookSecretsUnavailable(DomainError):
    type = "webhook-secrets-unavailable"
    title = "Webhook signing secrets cannot be stored or read: the operator key is not configured"
    status = 503


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


def register(store: Store, url: str, events: list[str], created_by: str, *,
             box: SecretBox | None, policy: DestinationPolicy) -> RegisteredWebhook:
    """Store a subscription; the returned secret is in clear (the caller shows it once), the stored
    one is sealed. Raises before writing anything if the URL or the events are refused."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ("", "http", "https") and not parts.hostname:
        raise InvalidWebhook("url must be an absolute http(s) URL", field="url")
    policy.check_static(url)  # scheme, credentials, literal addresses
    if not events:
        raise InvalidWebhook("subscribe to at least one event", field="events")
    unknown = [e for e in events if e not in EVENT_TYPES and e != "*"]
    if unknown:
        raise InvalidWebhook(
            f"unknown event {unknown[0]!r}; expected {', '.join(EVENT_TYPES)} or *", field="events"
        )
    policy.check_url(url)  # resolves the host: after the cheap checks
    if box is None:
        raise WebhookSecretsUnavailable(
            "webhook signing secrets are stored encrypted and no key is configured; "
            "the operator must set FREEZEDESK_SECRET_KEY")
    hook = RegisteredWebhook(new_id("whk"), url, sorted(set(events)), "whsec_" + secrets.token_urlsafe(32))
    now = utcnow()
    with store.unit_of_work() as uow:
        uow.conn.execute(
            insert(webhooks).values(
                id=hook.id, url=url, events=",".join(hook.events),
                secret=box.seal(hook.secret, webhook_secret_context(hook.id)),
                created_at=now, created_by=created_by, active=True,
            )
        )
        # never the secret: the audit log is readable by auditors
        uow.audit(created_by, "webhook.registered", "webhook", hook.id, None,
                  {"url": url, "events": hook.events}, now)
    return hook


def seal_stored_secrets(store: Store, box: SecretBox | None) -> int:
    """At start-up: make sure every stored signing secret is sealed under the current key.

    A migration cannot know the key, so secrets stored in clear by earlier versions (and the
    stored idempotent responses of ``POST /v1/webhooks`` that carry them) are sealed here, as are
    values sealed under a previous key (rotation). Fails loudly, naming what to configure, when
    the database holds secrets this process cannot use: no key at all, or a key id that is not
    configured. Returns how many values were (re)sealed; never logs a secret.
    """
    with store.read() as uow:
        hooks = uow.conn.execute(select(webhooks.c.id, webhooks.c.secret)).all()
        responses = uow.conn.execute(
            select(idempotency_keys.c.api_key_id, idempotency_keys.c.key, idempotency_keys.c.response_body)
            .where(idempotency_keys.c.path == WEBHOOKS_PATH, idempotency_keys.c.response_body.is_not(None))
        ).all()
    if box is None:
        if hooks:
            sealed = sum(1 for h in hooks if is_sealed(h.secret))
            state = (f"{sealed} encrypted" if sealed == len(hooks)
                     else f"{len(hooks) - sealed} in clear" + (f", {sealed} encrypted" if sealed else ""))
            raise SecretKeyError(
                f"the database holds {len(hooks)} webhook signing secret(s) ({state}) and FREEZEDESK_SECRET_KEY "
                "is not set: set it to the key they were sealed with (secrets in clear are encrypted at start-up)")
        return 0
    unknown = sorted({kid for h in hooks if (kid := sealed_key_id(h.secret)) is not None and not box.knows(kid)})
    if unknown:
        raise SecretKeyError(
            f"webhook signing secrets are sealed with key id(s) {', '.join(unknown)}, which FREEZEDESK_SECRET_KEY "
            f"(key id {box.current_key_id}) is not: configure that key, or list it in "
            "FREEZEDESK_SECRET_KEY_PREVIOUS while rotating")
    resealed = 0
    with store.unit_of_work() as uow:
        for h in hooks:
            if not box.needs_reseal(h.secret):
                continue
            context = webhook_secret_context(h.id)
            clear = box.open(h.secret, context) if is_sealed(h.secret) else h.secret
            # compare-and-set: another process starting at the same time may have sealed it already
            uow.conn.execute(update(webhooks).where(webhooks.c.id == h.id, webhooks.c.secret == h.secret)
                             .values(secret=box.seal(clear, context)))
            resealed += 1
        for r in responses:
            if not box.needs_reseal(r.response_body):
                continue
            where = (idempotency_keys.c.api_key_id == r.api_key_id) & (idempotency_keys.c.key == r.key) & (
                idempotency_keys.c.response_body == r.response_body)
            context = idempotent_response_context(r.api_key_id, r.key)
            kid = sealed_key_id(r.response_body)
            if kid is not None and not box.knows(kid):
                uow.conn.execute(delete(idempotency_keys).where(where))  # cannot be replayed any more
                continue
            clear = box.open(r.response_body, context) if kid is not None else r.response_body
            uow.conn.execute(update(idempotency_keys).where(where).values(response_body=box.seal(clear, context)))
            resealed += 1
        if resealed:
            uow.audit("system:startup", "webhook.secrets_sealed", "webhook", "*", None,
                      {"count": resealed, "key_id": box.current_key_id})
    if resealed:
        log.warning("sealed %d stored webhook secret(s) under key id %s", resealed, box.current_key_id)
    return resealed


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves, checks every address against the policy, then connects to a checked address."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port)  # raises WebhookUrlForbidden
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose every TCP connection is checked.

    TLS still verifies the certificate against the URL's host name (httpcore passes it as SNI and
    server_hostname), whatever address was connected to.
    """

    def __init__(self, policy: DestinationPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                             network_backend=_GuardedBackend(policy))


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    webhook_id: str
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
        box: SecretBox | None = None,
        policy: DestinationPolicy | None = None,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        max_attempts: int = 12,
        timeout: float = 5.0,
        lease: float = 60.0,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.box = box
        self.policy = policy or DestinationPolicy()
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.lease = lease
        self.interval = interval
        # no redirects (a 3xx could point anywhere), no proxies from the environment, checked connections
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                                    transport=GuardedTransport(self.policy))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))

    def _claim(self, now: datetime, limit: int) -> list[_Due]:
        """Take due deliveries and lease them, so a second dispatcher does not send them too."""
        with self.store.unit_of_work() as uow:
            rows = uow.conn.execute(
                select(
                    webhook_deliveries.c.id, webhook_deliveries.c.webhook_id, webhook_deliveries.c.event_id,
                    webhook_deliveries.c.attempts,
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
        return [_Due(r.id, r.webhook_id, r.event_id, r.event_type, r.attempts, r.payload, r.url, r.secret)
                for r in rows]

    def _send(self, due: _Due) -> str | None:
        """None when delivered, else why not (recorded as the attempt's error; never a secret)."""
        try:
            self.policy.check_static(due.url)
        except WebhookUrlForbidden as exc:
            return f"refused, not sent: {exc.detail}"
        if self.box is None:
            return "not sent: FREEZEDESK_SECRET_KEY is not configured, the signing secret cannot be opened"
        try:
            secret = self.box.open(due.secret, webhook_secret_context(due.webhook_id))
        except SecretKeyError as exc:
            return f"not sent: {exc}"[:500]
        body = due.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FreezeDesk-Webhooks/1",
            "FreezeDesk-Event-Id": due.event_id,
            "FreezeDesk-Event-Type": due.event_type,
            "FreezeDesk-Signature": sign(secret, int(time.time()), body),
        }
        try:
            response = self._client.post(due.url, content=body, headers=headers)
        except WebhookUrlForbidden as exc:  # raised by the guarded connection, before any byte is sent
            return f"refused, not sent: {exc.detail}"[:500]
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
