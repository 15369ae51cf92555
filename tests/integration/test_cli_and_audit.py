"""The CLI as an operator uses it, and the audit chain catching tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text, update

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.restrictions import Actor, Source
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.api_keys import KeyRing
from freezedesk.store.tables import audit_log
from freezedesk.store.uow import Store

CLI = [sys.executable, "-m", "freezedesk.cli"]


def run(db_url: str, *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FREEZEDESK_DATABASE_URL": db_url, **(extra_env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def test_api_keys_create_prints_only_the_key(db_url: str, store: Store) -> None:
    result = run(db_url, "api-keys", "create", "--name", "exchange core")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("fd_") and "\n" not in key
    principal = KeyRing(store).authenticate(key)
    assert principal is not None and principal.staff_id is None
    assert "restrictions:write" in principal.scopes and "permissions:read" in principal.scopes

    staff_key = run(db_url, "api-keys", "create", "--name", "Chika desk", "--role", "compliance",
                    "--staff", "Chika@Exchange.Example", "--staff-name", "Chika Compliance",
                    "--scopes", "restrictions:read,restrictions:write").stdout.strip()
    staff = KeyRing(store).authenticate(staff_key)
    assert staff is not None and staff.role == "compliance" and staff.staff_id is not None
    assert staff.scopes == {"restrictions:read", "restrictions:write"}
    # a second key of the same person (no --role: theirs) is the same staff member
    laptop = run(db_url, "api-keys", "create", "--name", "Chika laptop", "--staff", "chika@exchange.example")
    assert laptop.returncode == 0, laptop.stderr
    second = KeyRing(store).authenticate(laptop.stdout.strip())
    assert second is not None and second.staff_id == staff.staff_id and second.role == "compliance"
    assert staff.staff_id in laptop.stderr
    listed = run(db_url, "api-keys", "list").stdout
    assert "exchange core" in listed and "compliance" in listed and key not in listed
    assert listed.count("chika@exchange.example") == 2 and "Chika laptop" in listed
    people = run(db_url, "staff", "list").stdout.splitlines()
    assert len(people) == 1
    assert people[0].split()[:4] == [staff.staff_id, "active", "compliance", "chika@exchange.example"]
    assert "Chika Compliance" in people[0] and "2 active keys" in people[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--role", "overlord", "--staff", "x@exchange.example"], "--role: unknown role 'overlord'"),
        (["--name", "x", "--scopes", "restrictions:write,root"], "--scopes: unknown scope 'root'"),
        (["--name", "  "], "--name: the key needs a name"),
        (["--name", "x", "--role", "compliance"], "--staff is required with --role"),
        (["--name", "x", "--role", "compliance", "--staff", "Alice Smith"], "--staff: 'Alice Smith' is not an e-mail"),
        (["--name", "x", "--role", "compliance", "--staff", "alice@"], "--staff: 'alice@' is not an e-mail"),
        (["--name", "x", "--staff", "nobody@exchange.example"], "--role: nobody@exchange.example is not a staff"),
        (["--name", "x", "--change-role"], "--change-role: changing a role needs"),
        (["--name", "x", "--staff-name", "Alice"], "--staff-name: a staff name needs"),
    ],
)
def test_api_keys_create_rejects_bad_options(db_url: str, args: list[str], message: str) -> None:
    result = run(db_url, "api-keys", "create", *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_a_persons_role_changes_only_with_change_role(db_url: str, store: Store) -> None:
    first = run(db_url, "api-keys", "create", "--name", "desk", "--role", "compliance", "--staff", "dana")
    assert first.returncode == 0, first.stderr
    refused = run(db_url, "api-keys", "create", "--name", "laptop", "--role", "investigator", "--staff", "DANA")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--role investigator: dana" in refused.stderr and "is compliance" in refused.stderr
    assert "--change-role" in refused.stderr
    assert "compliance" in run(db_url, "staff", "list").stdout
    changed = run(db_url, "api-keys", "create", "--name", "laptop", "--role", "investigator", "--staff", "dana",
                  "--change-role")
    assert changed.returncode == 0, changed.stderr
    for key in (first.stdout.strip(), changed.stdout.strip()):
        principal = KeyRing(store).authenticate(key)
        assert principal is not None and principal.role == "investigator"
    assert "investigator  dana" in run(db_url, "staff", "list").stdout
    with store.read() as uow:
        changes = uow.conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'staff.role_changed'"))
        assert changes.scalar_one() == 1
    assert run(db_url, "audit", "verify").returncode == 0


def test_staff_deactivate_revokes_every_key_of_the_person(db_url: str, store: Store) -> None:
    keys = [run(db_url, "api-keys", "create", "--name", f"k{n}", "--role", "agent", "--staff", "erin").stdout.strip()
            for n in range(2)]
    other = run(db_url, "api-keys", "create", "--name", "k", "--role", "agent", "--staff", "finn").stdout.strip()
    staff_id = KeyRing(store).authenticate(keys[0]).staff_id  # type: ignore[union-attr]
    done = run(db_url, "staff", "deactivate", "ERIN")
    assert done.returncode == 0, done.stderr
    assert f"deactivated {staff_id} (erin); 2 keys revoked" in done.stderr
    ring = KeyRing(store)
    assert [ring.authenticate(k) for k in keys] == [None, None] and ring.authenticate(other) is not None
    assert run(db_url, "api-keys", "list").stdout.count("revoked") == 2
    assert "deactivated  agent         erin" in run(db_url, "staff", "list").stdout
    again = run(db_url, "staff", "deactivate", staff_id)
    assert again.returncode == 2 and "no active staff member" in again.stderr
    refused = run(db_url, "api-keys", "create", "--name", "k3", "--staff", "erin")
    assert refused.returncode == 2 and "deactivated" in refused.stderr and refused.stdout == ""


def test_revoke_unknown_key_fails(db_url: str) -> None:
    result = run(db_url, "api-keys", "revoke", "key_nope")
    assert result.returncode == 2 and "no active API key" in result.stderr


def _some_history(store: Store, catalogue: ReasonCatalogue) -> None:
    actor = Actor("tester")
    for account in ("a-1", "a-2", "a-3"):
        restriction_service.freeze(store, catalogue, account_id=account, reason_code="SEC_PHISHING",
                                   actor=actor, source=Source.STAFF)


def test_audit_verify_ok_then_catches_tampering(db_url: str, store: Store, catalogue: ReasonCatalogue) -> None:
    _some_history(store, catalogue)
    ok = run(db_url, "audit", "verify")
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    with store.unit_of_work() as uow:  # someone edits history directly in the database
        uow.conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(actor="innocent bystander"))
    broken = run(db_url, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at entry 4" in broken.stdout


def test_audit_verify_catches_deleted_rows(db_url: str, store: Store, catalogue: ReasonCatalogue) -> None:
    _some_history(store, catalogue)
    with store.unit_of_work() as uow:
        last = uow.conn.execute(text("SELECT max(seq) FROM audit_log")).scalar_one()
        uow.conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": last})
    result = run(db_url, "audit", "verify")
    assert result.returncode == 1 and "BROKEN" in result.stdout
    with store.unit_of_work() as uow:
        uow.conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = run(db_url, "audit", "verify")
    assert result.returncode == 1 and "entry 2" in result.stdout


def test_every_change_is_audited_in_its_transaction(store: Store, catalogue: ReasonCatalogue) -> None:
    frozen = restriction_service.freeze(store, catalogue, account_id="a-9", reason_code="KYC_INCOMPLETE",
                                        actor=Actor("tester"), source=Source.STAFF)
    with store.read() as uow:
        actions = [r.action for r in uow.conn.execute(
            text("SELECT action FROM audit_log WHERE account_id = 'a-9' ORDER BY seq"))]
    assert actions == ["account.registered", "case.opened", "restriction.created"]
    def fail_midway() -> None:
        with store.unit_of_work() as uow:
            uow.audit("tester", "restriction.noted", "restriction", frozen.restriction.id, "a-9", {})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    with store.read() as uow:
        count = uow.conn.execute(text("SELECT count(*) FROM audit_log WHERE account_id = 'a-9'")).scalar_one()
    assert count == 3


def test_migrate_and_demo_are_repeatable(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"FREEZEDESK_DEMO_KEYS": str(tmp_path / "keys.json")}
    assert run(db_url, "migrate").returncode == 0
    first = run(db_url, "demo", extra_env=env)
    assert first.returncode == 0, first.stderr
    assert "demo data loaded" in first.stderr and "partner" in first.stdout
    assert run(db_url, "migrate").returncode == 0
    second = run(db_url, "demo", extra_env=env)
    assert "already present" in second.stderr and second.stdout == first.stdout
    store = Store(db_url)
    saved = json.loads((tmp_path / "keys.json").read_text())
    assert set(saved) == {"partner", "agent", "investigator", "investigator2", "security", "compliance",
                          "compliance2"}
    ring = KeyRing(store)
    who = {label: ring.authenticate(key) for label, key in saved.items()}
    assert all(p is not None for p in who.values())
    people = {label: (p.staff_id, p.role) for label, p in who.items() if p is not None}
    assert people["partner"] == (None, None)
    # the four-eyes pairs are different people of the same role; every staff key has its own person
    assert people["compliance"][1] == people["compliance2"][1] == "compliance"
    assert people["investigator"][1] == people["investigator2"][1] == "investigator"
    staff_ids = [p[0] for label, p in people.items() if label != "partner"]
    assert None not in staff_ids and len(set(staff_ids)) == len(staff_ids) == 6
    assert len(run(db_url, "staff", "list").stdout.splitlines()) == 6
    with store.read() as uow:
        causes = {r[0] for r in uow.conn.execute(text("SELECT DISTINCT cause FROM restrictions"))}
        open_cases = uow.conn.execute(text("SELECT count(*) FROM cases WHERE closed_at IS NULL")).scalar_one()
    assert causes == {"kyc", "suspicious_activity", "security", "regulatory", "policy"}
    assert open_cases >= 5
    assert run(db_url, "audit", "verify").returncode == 0


def test_bad_operator_catalogue_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "reasons.toml"
    bad.write_text('[[reason]]\ncode = "MY_REASON"\ncause = "gossip"\n')
    result = run(f"sqlite:///{tmp_path / 'x.db'}", "demo", extra_env={"FREEZEDESK_REASON_CATALOGUE": str(bad)})
    assert result.returncode == 2
    assert str(bad) in result.stderr and "MY_REASON" in result.stderr
