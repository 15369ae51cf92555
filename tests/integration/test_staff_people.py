"""A staff identity is a person, not a key: the four-eyes rule counts people.

Every staff key names its person (a handle: e-mail or stable handle, case-insensitive); a second
key of the same person is the same approver and the same actor in the audit log. A person's role
changes only on purpose, and deactivating a person revokes all their keys at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from freezedesk.domain.errors import NotFound
from freezedesk.services.api_keys import (
    InvalidKeySpec,
    InvalidStaffHandle,
    KeyRing,
    StaffDeactivated,
    StaffRoleConflict,
    create_key,
    deactivate_staff,
    list_keys,
    list_staff,
    normalize_handle,
)
from freezedesk.store.migrate import alembic_config, upgrade
from freezedesk.store.tables import api_keys, audit_log
from freezedesk.store.uow import Store
from tests.factories import Staff, auth
from tests.integration.test_events_counted import unmigrated  # noqa: F401 (a fixture)


def lift(client: TestClient, key: str, restriction_id: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"/v1/restrictions/{restriction_id}/lift", json={"reason": "explained"},
                           headers=auth(key))
    return response.status_code, response.json()


def approve(client: TestClient, key: str, restriction_id: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"/v1/restrictions/{restriction_id}/approvals", headers=auth(key))
    return response.status_code, response.json()


def held(client: TestClient, staff: Staff, account: str) -> str:
    response = client.post(f"/v1/accounts/{account}/restrictions", json={"reason_code": "SUS_STRUCTURING"},
                           headers=auth(staff.partner))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_two_keys_of_one_person_cannot_give_the_two_approvals(client: TestClient, staff: Staff,
                                                              store: Store) -> None:
    desk = create_key(store, "alice desk", role="investigator", staff_handle="alice@exchange.example")
    laptop = create_key(store, "alice laptop", role="investigator", staff_handle="Alice@Exchange.Example")
    assert desk.staff_id is not None and laptop.staff_id == desk.staff_id  # one person, two keys
    rid = held(client, staff, "acct-4e1")

    status, body = lift(client, desk.key, rid)
    assert status == 202 and body["approvals_needed"] == 1
    status, body = approve(client, laptop.key, rid)  # the same human with their other key
    assert status == 409 and body["type"] == "/problems/duplicate-approval"
    assert desk.staff_id in str(body["detail"])

    bob = create_key(store, "bob desk", role="investigator", staff_handle="bob@exchange.example")
    status, body = approve(client, bob.key, rid)  # a different person
    assert status == 200 and body["status"] == "lifted"
    with store.read() as uow:
        actors = set(uow.conn.execute(
            select(audit_log.c.actor).where(audit_log.c.entity_id == rid,
                                            audit_log.c.action.in_(["restriction.lift_requested",
                                                                    "restriction.lift_approved"]))
        ).scalars())
    assert desk.staff_id in actors and bob.staff_id in actors and f"key:{laptop.key_id}" not in actors


def test_the_requester_cannot_approve_with_a_second_key_either(client: TestClient, staff: Staff,
                                                               store: Store) -> None:
    rid = held(client, staff, "acct-4e2")
    first = create_key(store, "carol 1", role="investigator", staff_handle="carol")
    status, _ = lift(client, first.key, rid)
    assert status == 202
    second = create_key(store, "carol 2", staff_handle="CAROL")  # no --role: keeps hers
    assert second.staff_id == first.staff_id
    status, body = approve(client, second.key, rid)
    assert status == 409 and body["type"] == "/problems/duplicate-approval"
    status, body = approve(client, staff.investigator2, rid)
    assert status == 200 and body["status"] == "lifted"


def test_a_different_role_for_an_existing_person_is_refused_unless_asked(store: Store) -> None:
    first = create_key(store, "dana desk", role="compliance", staff_handle="dana@exchange.example")
    keys_before = len(list_keys(store))
    with pytest.raises(StaffRoleConflict, match="is compliance, not investigator"):
        create_key(store, "dana laptop", role="investigator", staff_handle="dana@exchange.example")
    assert len(list_keys(store)) == keys_before  # nothing created
    ring = KeyRing(store)
    assert (principal := ring.authenticate(first.key)) is not None and principal.role == "compliance"

    second = create_key(store, "dana laptop", role="investigator", staff_handle="dana@exchange.example",
                        change_role=True)
    assert second.staff_id == first.staff_id
    fresh = KeyRing(store)  # the role is the person's: all their keys now carry the new one
    for key in (first.key, second.key):
        principal = fresh.authenticate(key)
        assert principal is not None and principal.role == "investigator"
    with store.read() as uow:
        changes = [dict(r.data) if isinstance(r.data, dict) else r.data for r in uow.conn.execute(
            select(audit_log.c.data).where(audit_log.c.action == "staff.role_changed",
                                           audit_log.c.entity_id == first.staff_id))]
    assert len(changes) == 1 and "compliance" in str(changes[0]) and "investigator" in str(changes[0])
    people = [p for p in list_staff(store) if p["id"] == first.staff_id]
    assert people[0]["role"] == "investigator" and people[0]["active_keys"] == 2


def test_a_new_person_needs_a_role_and_change_role_needs_a_person(store: Store) -> None:
    with pytest.raises(InvalidKeySpec, match="needs a role") as new_person:
        create_key(store, "x", staff_handle="erin@exchange.example")
    assert new_person.value.extra["option"] == "role"
    with pytest.raises(InvalidKeySpec) as no_person:
        create_key(store, "x", role="agent", change_role=True)
    assert no_person.value.extra["option"] == "change-role"
    assert list_staff(store) == [] and list_keys(store) == []


@pytest.mark.parametrize("raw", ["", "  ", "alice smith", "alice@", "@exchange.example", "alice@localhost",
                                 "-alice", "alice.", "a" * 65, "al/ice", "ålice@exchange.example"])
def test_bad_handles_are_refused(raw: str) -> None:
    with pytest.raises(InvalidStaffHandle) as caught:
        normalize_handle(raw)
    assert caught.value.extra["option"] == "staff"


@pytest.mark.parametrize(("raw", "stored"), [("Alice@Exchange.Example", "alice@exchange.example"),
                                             (" a.smith-2 ", "a.smith-2"), ("ops+night@x.co.jp", "ops+night@x.co.jp"),
                                             ("stf_01JABC", "stf_01jabc")])
def test_handles_are_stored_lower_case(raw: str, stored: str) -> None:
    assert normalize_handle(raw) == stored


def test_deactivating_a_person_revokes_all_their_keys(client: TestClient, store: Store) -> None:
    keys = [create_key(store, f"frank {n}", role="security", staff_handle="frank@exchange.example")
            for n in range(2)]
    other = create_key(store, "gina", role="security", staff_handle="gina@exchange.example")
    for created in (*keys, other):
        assert client.get("/v1/reason-codes", headers=auth(created.key)).status_code == 200  # now cached

    done = deactivate_staff(store, "FRANK@exchange.example")
    assert done.staff_id == keys[0].staff_id and set(done.revoked_keys) == {k.key_id for k in keys}

    deadline = datetime.now(UTC) + timedelta(seconds=5)  # the follower empties every server's cache
    statuses: list[int] = []
    while datetime.now(UTC) < deadline:
        statuses = [client.get("/v1/reason-codes", headers=auth(k.key)).status_code for k in keys]
        if statuses == [401, 401]:
            break
    assert statuses == [401, 401]
    assert client.get("/v1/reason-codes", headers=auth(other.key)).status_code == 200
    with pytest.raises(StaffDeactivated):
        create_key(store, "frank 3", staff_handle="frank@exchange.example")
    with pytest.raises(NotFound, match="no active staff member"):
        deactivate_staff(store, keys[0].staff_id or "")
    person = next(p for p in list_staff(store) if p["id"] == done.staff_id)
    assert person["deactivated_at"] is not None and person["active_keys"] == 0


def test_a_deactivated_persons_key_is_refused_even_if_not_revoked(store: Store) -> None:
    created = create_key(store, "hana", role="agent", staff_handle="hana")
    deactivate_staff(store, created.staff_id or "")
    with store.unit_of_work() as uow:  # say someone un-revokes the key by hand
        uow.conn.execute(update(api_keys).where(api_keys.c.id == created.key_id).values(revoked_at=None))
    assert KeyRing(store).authenticate(created.key) is None


def test_migration_0008_gives_existing_staff_their_id_as_handle(unmigrated: Engine) -> None:  # noqa: F811
    upgrade(unmigrated, "0007")
    at = "2026-01-01T00:00:00+00:00"
    with unmigrated.begin() as conn:
        for staff_id in ("stf_01OLDA", "stf_01OLDB"):
            conn.execute(text("INSERT INTO staff (id, name, role, created_at) VALUES (:id, 'old', 'compliance', :t)"),
                         {"id": staff_id, "t": at})
        conn.execute(text("INSERT INTO api_keys (id, name, key_hash, scopes, staff_id, created_at) "
                          "VALUES ('key_old', 'old', :h, 'restrictions:read', 'stf_01OLDA', :t)"),
                     {"h": "ab" * 32, "t": at})
    upgrade(unmigrated)
    with unmigrated.connect() as conn:
        rows = {r.id: (r.handle, r.deactivated_at) for r in conn.execute(text("SELECT * FROM staff"))}
    assert rows == {"stf_01OLDA": ("stf_01olda", None), "stf_01OLDB": ("stf_01oldb", None)}

    store = Store(engine=unmigrated)
    again = create_key(store, "new key of an old person", staff_handle="STF_01OLDA")
    assert again.staff_id == "stf_01OLDA"
    with pytest.raises(IntegrityError), unmigrated.begin() as conn:  # handles stay unique
        conn.execute(text("INSERT INTO staff (id, name, role, created_at, handle) "
                          "VALUES ('stf_x', 'x', 'agent', :t, 'stf_01olda')"), {"t": at})

    from alembic import command

    config = alembic_config(unmigrated)
    with unmigrated.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0007")
    assert "handle" not in {c["name"] for c in inspect(unmigrated).get_columns("staff")}
