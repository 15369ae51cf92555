"""The composition root: builds the store, catalogue, permission view and background workers.

Everything that runs in a server process is wired here once, so the web edge, the CLI and
the tests share one way of assembling FreezeDesk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.monitoring.live import Monitor
from freezedesk.notify.destinations import DestinationPolicy
from freezedesk.notify.secretbox import SecretBox, SecretKeyError
from freezedesk.notify.webhooks import WebhookDispatcher, seal_stored_secrets
from freezedesk.reference import load_catalogue
from freezedesk.screening.service import ScreeningService
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.api_keys import KeyRing
from freezedesk.services.permissions import PermissionView
from freezedesk.store.follower import ChangeFollower, Changes
from freezedesk.store.uow import Store, forget_idempotency_keys

log = logging.getLogger(__name__)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _env_secret_key() -> str | None:
    """FREEZEDESK_SECRET_KEY, else the contents of the file FREEZEDESK_SECRET_KEY_FILE names."""
    key = os.environ.get("FREEZEDESK_SECRET_KEY", "").strip()
    if key:
        return key
    path = os.environ.get("FREEZEDESK_SECRET_KEY_FILE", "").strip()
    if not path:
        return None
    try:
        with open(path) as file:
            return file.read().strip() or None
    except OSError as exc:
        raise SecretKeyError(f"FREEZEDESK_SECRET_KEY_FILE={path} cannot be read: {exc.strerror}") from None


@dataclass
class Settings:
    database_url: str | None = None
    catalogue_path: str | None = None
    max_body_bytes: int = 64 * 1024
    max_events_body_bytes: int = 4 * 1024 * 1024  # POST /v1/events: up to 5,000 events per call
    webhook_base_delay: float = field(default_factory=lambda: _env_float("FREEZEDESK_WEBHOOK_BASE_DELAY", 2.0))
    follower_interval: float = field(default_factory=lambda: _env_float("FREEZEDESK_FOLLOW_INTERVAL", 0.25))
    expiry_interval: float = field(default_factory=lambda: _env_float("FREEZEDESK_EXPIRY_INTERVAL", 5.0))
    write_rate_per_second: float = field(default_factory=lambda: _env_float("FREEZEDESK_WRITE_RATE", 50.0))
    write_burst: int = 200
    background: bool = True
    #: Monitoring: the rule pack (None: FREEZEDESK_RULES or the shipped standard pack), the listed
    #: address file (None: FREEZEDESK_ADDRESS_LIST or none) and how many days of stored events
    #: rebuild the engine at start-up (None: FREEZEDESK_MONITOR_LOOKBACK_DAYS or all history).
    rules_path: str | None = None
    address_list_path: str | None = None
    monitor_lookback_days: float | None = None
    #: Webhooks: the key sealing signing secrets at rest (32 bytes, hex or base64; None: no webhooks
    #: can be registered), older keys still accepted while rotating, and the hosts/addresses/networks
    #: webhooks may reach although they are not public (development, internal receivers).
    secret_key: str | None = field(default_factory=_env_secret_key, repr=False)
    previous_secret_keys: tuple[str, ...] = field(
        default_factory=lambda: _env_list("FREEZEDESK_SECRET_KEY_PREVIOUS"), repr=False)
    webhook_allow_hosts: tuple[str, ...] = field(default_factory=lambda: _env_list("FREEZEDESK_WEBHOOK_ALLOW_HOSTS"))


class _Periodic:
    def __init__(self, name: str, interval: float, work: Callable[[], object]) -> None:
        self._stop = threading.Event()
        self._work = work
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._work()
            except Exception:
                log.exception("periodic task %s failed", self._thread.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Runtime:
    def __init__(self, settings: Settings | None = None, store: Store | None = None,
                 catalogue: ReasonCatalogue | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store or Store(self.settings.database_url)
        # A bad key, or stored secrets this key cannot open, stop start-up here (SecretKeyError);
        # secrets stored in clear by earlier versions are sealed now.
        self.secret_box = SecretBox.from_settings(self.settings.secret_key, self.settings.previous_secret_keys)
        seal_stored_secrets(self.store, self.secret_box)
        self.webhook_policy = DestinationPolicy(self.settings.webhook_allow_hosts)
        self.catalogue = catalogue or load_catalogue(self.settings.catalogue_path)
        self.view = PermissionView(self.store)
        self.keyring = KeyRing(self.store)
        self.follower = ChangeFollower(self.store, self.settings.follower_interval)
        self.follower.subscribe(self.view.on_changes)
        self.follower.subscribe(self.keyring.on_changes)
        self.store.on_change(self.view.refresh)
        self.screening = ScreeningService(self.store, self.catalogue)
        self.follower.subscribe(self._on_list_change)
        # Events posted to the API are evaluated in-process (monitoring.live); built here so a bad
        # rule pack stops start-up, warmed in start().
        self.monitor = Monitor.from_env(self.store, self.catalogue, self.settings.rules_path,
                                        self.settings.address_list_path, self.settings.monitor_lookback_days)
        self.dispatcher = WebhookDispatcher(self.store, box=self.secret_box, policy=self.webhook_policy,
                                            base_delay=self.settings.webhook_base_delay)
        self._expiry = _Periodic("freezedesk-housekeeping", self.settings.expiry_interval, self.housekeeping)
        self._started = False

    def housekeeping(self) -> None:
        """Mark and announce expired restrictions; forget idempotency keys older than a day."""
        restriction_service.expire_due(self.store)
        forget_idempotency_keys(self.store, older_than=timedelta(hours=24))

    def _on_list_change(self, changes: Changes) -> None:
        # Another process loaded new lists: rebuild off the follower's thread; the old index
        # serves until the new one is complete.
        if "sanctions_list" in changes.entity_types:
            threading.Thread(target=self.screening.reload, name="freezedesk-lists", daemon=True).start()

    def start(self) -> None:
        self.view.warm()
        self.screening.reload()
        # Rebuild window state from stored events before serving, so a restart loses nothing. The
        # monitor reads the lists' addresses itself, and again whenever a later load changes them.
        self.monitor.warm()
        if self.settings.background:
            self.follower.start()
            self.dispatcher.start()
            self._expiry.start()
        self._started = True

    def stop(self) -> None:
        if self._started and self.settings.background:
            self.follower.stop()
            self.dispatcher.stop()
            self._expiry.stop()
        self._started = False
