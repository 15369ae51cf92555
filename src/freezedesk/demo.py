"""Demo data: a handful of accounts, one restriction for each cause, open cases, and keys.

Safe to run twice: it loads the data once and reuses the keys it saved in ``var/demo-keys.json``
(a local demo only; real keys are printed once and never stored in clear).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.restrictions import Actor, Source
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.api_keys import KeyRing, create_key
from freezedesk.store.uow import Store, utcnow

DEMO_RESTRICTIONS = [
    # account, reason code, scopes (None = the reason's defaults), expires in hours
    ("acct-1001", "KYC_DOCUMENT_EXPIRED", None, None),
    ("acct-1002", "SUS_HIGH_VOLUME", None, None),
    ("acct-1003", "SEC_ACCOUNT_TAKEOVER", None, None),
    ("acct-1003", "SEC_COOLDOWN", None, 24),
    ("acct-1004", "REG_SANCTIONS_MATCH", None, None),
    ("acct-1005", "POL_PROHIBITED_JURISDICTION", ["close_only"], None),
]
DEMO_PROFILES = {
    "acct-1001": ("ja", "佐藤 花子"),
    "acct-1002": ("ja", "鈴木 一郎"),
    "acct-1003": ("en", "Alex Morgan"),
    "acct-1004": ("en", "Demo Entity"),
    "acct-1005": ("ja", "田中 健"),
    "acct-1006": ("en", "Jamie Chen"),  # unrestricted
}
DEMO_STAFF = [
    # label in demo-keys.json, owner name, role (None = a machine partner key), the person's handle.
    # Every staff key belongs to a different person: compliance and compliance2 (and investigator and
    # investigator2) are the two people a four-eyes lift needs.
    ("partner", "demo partner (exchange core)", None, None),
    ("agent", "Aiko Agent", "agent", "aiko.agent@demo.example"),
    ("investigator", "Ken Investigator", "investigator", "ken.investigator@demo.example"),
    ("investigator2", "Ivy Investigator", "investigator", "ivy.investigator@demo.example"),
    ("security", "Sam Security", "security", "sam.security@demo.example"),
    ("compliance", "Chika Compliance", "compliance", "chika.compliance@demo.example"),
    ("compliance2", "Colin Compliance", "compliance", "colin.compliance@demo.example"),
]


@dataclass
class DemoResult:
    loaded: bool
    keys: dict[str, str]


def _keys_file() -> Path:
    return Path(os.environ.get("FREEZEDESK_DEMO_KEYS", "var/demo-keys.json"))


def load_demo(store: Store, catalogue: ReasonCatalogue) -> DemoResult:
    keys = _load_or_create_keys(store)
    with store.read() as uow:
        if uow.accounts.exists("acct-1001"):
            return DemoResult(False, keys)
    actor = Actor("system:demo")
    now = utcnow()
    with store.unit_of_work() as uow:
        for account_id, (locale, name) in DEMO_PROFILES.items():
            uow.accounts.upsert(account_id, now, locale=locale, display_name=name,
                                email=f"{account_id}@example.test")
            uow.audit(actor.id, "account.registered", "account", account_id, account_id, {}, now)
    for account_id, code, scopes, hours in DEMO_RESTRICTIONS:
        restriction_service.freeze(
            store, catalogue, account_id=account_id, reason_code=code, actor=actor, source=Source.STAFF,
            scopes=scopes, expires_at=now + timedelta(hours=hours) if hours else None,
            legal_basis="UN/OFAC list entry (demo)" if code.startswith("REG_") else None,
            note="demo data",
        )
    return DemoResult(True, keys)


def _load_or_create_keys(store: Store) -> dict[str, str]:
    file = _keys_file()
    if file.is_file():
        saved: dict[str, str] = json.loads(file.read_text())
        ring = KeyRing(store)
        if all(ring.authenticate(k) is not None for k in saved.values()):
            return saved
    keys = {
        label: create_key(store, f"demo key ({label})" if handle else name, role=role, staff_handle=handle,
                          staff_name=name if handle else None).key
        for label, name, role, handle in DEMO_STAFF
    }
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(keys, indent=2))
    file.chmod(0o600)
    return keys
