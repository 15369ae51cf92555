"""Database-backed screening: lists in the database, indexes in memory, hits as case evidence.

* ``load_lists`` reads list files, compares them with the loaded version (added / changed /
  removed entities), stores the new version atomically, and re-screens every known account holder
  against the touched entities only.
* ``screen_account`` screens one account holder's identity (at onboarding and on every change of
  name, birth date or country). A hit at or above the review threshold opens a regulatory case
  with a ``REG_SANCTIONS_MATCH`` restriction that holds assets (withdraw, transfer, p2p) until an
  analyst decides; at or above the auto-freeze threshold the restriction is a full freeze.
* ``screen_addresses`` looks addresses up exactly; a hit on an account's address freezes it at once.
* ``dismiss_hit`` records "not this person" (the pair is not raised again unless the list entry
  changes) and starts the four-eyes lift of the hold.

Every decision is audited; hits, cases and restrictions commit in one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from freezedesk.domain.catalogue import ReasonCatalogue
from freezedesk.domain.errors import DomainError, NotFound, RoleNotAllowed
from freezedesk.domain.ids import new_id
from freezedesk.domain.restrictions import Actor, Source, Status
from freezedesk.domain.scopes import Scope
from freezedesk.screening.addresses import AddressIndex
from freezedesk.screening.lists import load_snapshot
from freezedesk.screening.matcher import Match, NameIndex, Query
from freezedesk.screening.model import DigitalAddress, Entity, EntityName, ListDiff, ListSnapshot
from freezedesk.services import restrictions as restriction_service
from freezedesk.services.views import iso
from freezedesk.store.tables import (
    account_identities,
    list_loads,
    sanctions_entities,
    screening_hits,
)
from freezedesk.store.uow import Store, UnitOfWork, utcnow

log = logging.getLogger(__name__)

REASON = "REG_SANCTIONS_MATCH"
HOLD_SCOPES = ["withdraw", "transfer", "p2p"]  # pending review: nothing leaves the account
SCREENING_ROLES = frozenset({"compliance", "investigator"})


class InvalidIdentity(DomainError):
    type = "invalid-identity"
    title = "Invalid account holder identity"


class ListsNotLoaded(DomainError):
    type = "lists-not-loaded"
    title = "No sanctions lists are loaded"
    status = 409


class HitAlreadyDecided(DomainError):
    type = "hit-already-decided"
    title = "This hit has already been decided"
    status = 409


@dataclass(frozen=True)
class Thresholds:
    review: float = 0.80
    auto_freeze: float = 0.97

    @classmethod
    def from_env(cls) -> Thresholds:
        return cls(
            review=float(os.environ.get("FREEZEDESK_SCREENING_REVIEW", cls.review)),
            auto_freeze=float(os.environ.get("FREEZEDESK_SCREENING_FREEZE", cls.auto_freeze)),
        )


@dataclass(frozen=True)
class LoadReport:
    entities: int
    diff: ListDiff
    accounts_rescreened: int
    new_hits: int


def entity_to_json(entity: Entity) -> str:
    return json.dumps(asdict(entity), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def entity_from_json(text: str) -> Entity:
    raw = json.loads(text)
    return Entity(
        id=raw["id"], source=raw["source"], schema=raw["schema"], name=raw["name"],
        aliases=tuple(EntityName(**a) for a in raw["aliases"]),
        birth_dates=tuple(raw["birth_dates"]), nationalities=tuple(raw["nationalities"]),
        identifiers=tuple((kind, value) for kind, value in raw["identifiers"]),
        programmes=tuple(raw["programmes"]),
        addresses=tuple(DigitalAddress(**a) for a in raw["addresses"]),
        remarks=raw.get("remarks"),
    )


def _score_text(score: float) -> str:
    return str(Decimal(str(round(score, 4))))


class _Indexes:
    """One immutable generation of the in-memory indexes; swapped whole on reload."""

    def __init__(self, snapshot: ListSnapshot) -> None:
        self.snapshot = snapshot
        self.names = NameIndex.build(snapshot)
        self.addresses = AddressIndex.build(snapshot.entities.values())


class ScreeningService:
    def __init__(self, store: Store, catalogue: ReasonCatalogue, thresholds: Thresholds | None = None) -> None:
        self.store = store
        self.catalogue = catalogue
        self.thresholds = thresholds or Thresholds.from_env()
        self._indexes: _Indexes | None = None
        self._reload_lock = threading.Lock()

    # -- indexes -------------------------------------------------------------------------------
    def reload(self) -> int:
        """Rebuild the indexes from the database; the old ones serve until the new ones are complete."""
        with self._reload_lock:
            with self.store.read() as uow:
                rows = uow.conn.execute(select(sanctions_entities.c.payload, sanctions_entities.c.source)).all()
            entities = [entity_from_json(r.payload) for r in rows]
            sources = sorted({r.source for r in rows})
            self._indexes = _Indexes(ListSnapshot.of(entities, sources)) if entities else None
            return len(entities)

    def _require(self) -> _Indexes:
        if self._indexes is None:
            raise ListsNotLoaded("load sanctions lists first: freezedesk lists load --source …")
        return self._indexes

    @property
    def loaded(self) -> bool:
        return self._indexes is not None

    def listed_addresses(self) -> frozenset[str]:
        """The text of every digital-currency address on the loaded lists, as the lists print it.

        For consumers that match exactly (the monitoring rules' ``listed``); lookups that must
        tolerate case and formatting go through :meth:`lookup_addresses`.
        """
        indexes = self._indexes
        if indexes is None:
            return frozenset()
        return frozenset(a.address for e in indexes.snapshot.entities.values() for a in e.addresses)

    # -- pure lookups ----------------------------------------------------------------------------
    def search_names(self, query: Query, threshold: float | None = None, limit: int = 10) -> list[Match]:
        return self._require().names.search(query, threshold=threshold or self.thresholds.review, limit=limit)

    def lookup_addresses(self, addresses: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
        index = self._require()
        results = []
        for address, currency in addresses:
            found = index.addresses.lookup(address, currency)
            results.append({"address": address, "currency": currency, **found})
        return results

    # -- list loading ----------------------------------------------------------------------------
    def load_lists(self, specs: Sequence[str], actor: Actor) -> LoadReport:
        snapshot = load_snapshot(list(specs))  # fails loudly on a bad file; nothing written
        now = utcnow()
        with self.store.unit_of_work() as uow:
            old = {r.id: r.fingerprint for r in uow.conn.execute(
                select(sanctions_entities.c.id, sanctions_entities.c.fingerprint))}
            new_prints = {eid: e.fingerprint() for eid, e in snapshot.entities.items()}
            added = sorted(k for k in new_prints if k not in old)
            removed = sorted(k for k in old if k not in new_prints)
            changed = sorted(k for k in new_prints if k in old and old[k] != new_prints[k])
            if removed:
                uow.conn.execute(delete(sanctions_entities).where(sanctions_entities.c.id.in_(removed)))
            if changed:
                uow.conn.execute(delete(sanctions_entities).where(sanctions_entities.c.id.in_(changed)))
            rows = [{"id": k, "source": snapshot.entities[k].source, "fingerprint": new_prints[k],
                     "payload": entity_to_json(snapshot.entities[k]), "updated_at": now}
                    for k in added + changed]
            for start in range(0, len(rows), 2000):
                uow.conn.execute(insert(sanctions_entities), rows[start:start + 2000])
            report_diff = ListDiff(tuple(added), tuple(changed), tuple(removed))
            uow.conn.execute(insert(list_loads).values(
                id=new_id("lst"), at=now, sources=",".join(specs), entities=len(new_prints),
                added=len(added), changed=len(changed), removed=len(removed)))
            uow.audit(actor.id, "sanctions_list.loaded", "sanctions_list", ",".join(snapshot.sources), None,
                      {"sources": list(specs), "entities": len(new_prints), "added": len(added),
                       "changed": len(changed), "removed": len(removed)}, now)
        self.reload()
        rescreened, hits = self.rescreen(report_diff.touched, actor)
        return LoadReport(len(new_prints), report_diff, rescreened, hits)

    # -- account screening -----------------------------------------------------------------------
    def set_identity(self, uow: UnitOfWork, account_id: str, name: str, schema: str,
                     birth_date: str | None, country: str | None) -> bool:
        """Store what screening knows of the holder; True when something screening uses changed."""
        if schema not in ("person", "organisation"):
            raise InvalidIdentity("entity_type must be person or organisation", field="entity_type")
        if birth_date is not None:
            try:
                date.fromisoformat(birth_date)
            except ValueError:
                raise InvalidIdentity("birth_date must be YYYY-MM-DD", field="birth_date") from None
        if country is not None and (len(country) != 2 or not country.isalpha()):
            raise InvalidIdentity("country must be an ISO 3166 alpha-2 code", field="country")
        values = {"name": name.strip(), "schema": schema, "birth_date": birth_date,
                  "country": country.upper() if country else None}
        if not values["name"]:
            raise InvalidIdentity("the name is empty", field="legal_name")
        current = uow.conn.execute(select(account_identities).where(
            account_identities.c.account_id == account_id)).first()
        if current is not None and all(getattr(current, k) == v for k, v in values.items()):
            return False
        now = utcnow()
        if current is None:
            uow.conn.execute(insert(account_identities).values(account_id=account_id, updated_at=now, **values))
        else:
            uow.conn.execute(update(account_identities).where(
                account_identities.c.account_id == account_id).values(updated_at=now, **values))
        return True

    def screen_account(self, account_id: str, actor: Actor, only: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Screen one holder (against every entity, or ``only`` those ids); record new hits."""
        if self._indexes is None:
            return []
        with self.store.read() as uow:
            identity = uow.conn.execute(select(account_identities).where(
                account_identities.c.account_id == account_id)).first()
        if identity is None:
            return []
        query = Query(name=identity.name, schema=identity.schema, birth_date=identity.birth_date,
                      country=identity.country)
        index = self._indexes
        if only is None:
            matches = index.names.search(query, threshold=self.thresholds.review, limit=5)
        else:
            matches = [m for m in index.names.search_entities(query, list(only))
                       if m.score >= self.thresholds.review]
        recorded = []
        for match in matches:
            hit = self._record_name_hit(account_id, query, match, index, actor)
            if hit is not None:
                recorded.append(hit)
        return recorded

    def _record_name_hit(self, account_id: str, query: Query, match: Match, index: _Indexes,
                         actor: Actor) -> dict[str, Any] | None:
        entity = index.snapshot.entities[match.entity_id]
        fingerprint = entity.fingerprint()
        with self.store.unit_of_work() as uow:
            uow.accounts.lock(account_id)
            earlier = uow.conn.execute(select(screening_hits.c.status, screening_hits.c.entity_fingerprint).where(
                and_(screening_hits.c.account_id == account_id, screening_hits.c.entity_id == entity.id))).all()
            if any(e.status == "pending_review" or e.status == "confirmed" for e in earlier):
                return None  # already raised and not yet decided (or confirmed)
            if any(e.status == "dismissed" and e.entity_fingerprint == fingerprint for e in earlier):
                return None  # "not this person", and the list entry has not changed since
            full = match.score >= self.thresholds.auto_freeze
            return self._raise_hit(uow, account_id, entity, fingerprint, "name", match.score,
                                   {"name": query.name, "schema": query.schema, "birth_date": query.birth_date,
                                    "country": query.country},
                                   {**match.explanation, "matched_name": match.matched_name},
                                   ["full_freeze"] if full else HOLD_SCOPES, actor)

    def _raise_hit(self, uow: UnitOfWork, account_id: str, entity: Entity, fingerprint: str, kind: str,
                   score: float, query: dict[str, Any], explanation: dict[str, Any], scopes: list[str],
                   actor: Actor) -> dict[str, Any]:
        now = utcnow()
        frozen = restriction_service.freeze_in(
            uow, self.catalogue, account_id=account_id, reason_code=REASON, actor=actor, source=Source.SCREENING,
            scopes=scopes, legal_basis=f"{entity.id} ({', '.join(entity.programmes) or entity.source})",
            note=f"screening {kind} hit on {entity.id}, score {_score_text(score)}",
        )
        hit_id = new_id("hit")
        hit: dict[str, Any] = {
            "id": hit_id, "account_id": account_id, "entity_id": entity.id,
            "entity_fingerprint": fingerprint, "kind": kind, "score": _score_text(score),
            "query": json.dumps(query, ensure_ascii=False), "explanation": json.dumps(explanation, ensure_ascii=False),
            "status": "pending_review", "case_id": frozen.case.id, "restriction_id": frozen.restriction.id,
            "created_at": now,
        }
        uow.conn.execute(insert(screening_hits).values(**hit))
        uow.audit(actor.id, "screening.hit", "screening_hit", hit_id, account_id,
                  {"entity_id": entity.id, "kind": kind, "score": hit["score"], "scopes": scopes,
                   "case_id": frozen.case.id, "restriction_id": frozen.restriction.id}, now)
        return _hit_view(hit)

    def rescreen(self, entity_ids: Sequence[str], actor: Actor) -> tuple[int, int]:
        """Re-screen every known holder against these (new or changed) entities only."""
        if not entity_ids or self._indexes is None:
            return 0, 0
        with self.store.read() as uow:
            accounts = [r.account_id for r in uow.conn.execute(select(account_identities.c.account_id))]
        hits = 0
        for account_id in accounts:
            hits += len(self.screen_account(account_id, actor, only=entity_ids))
        return len(accounts), hits

    def screen_account_addresses(self, account_id: str, addresses: Sequence[tuple[str, str | None]],
                                 actor: Actor) -> list[dict[str, Any]]:
        """Exact address lookups for an account's counterparty addresses; a hit freezes at once."""
        index = self._require()
        results = self.lookup_addresses(addresses)
        for result in results:
            for entity_id in result.get("entity_ids", []):
                entity = index.snapshot.entities[entity_id]
                with self.store.unit_of_work() as uow:
                    uow.accounts.ensure(account_id, utcnow())
                    uow.accounts.lock(account_id)
                    open_pair = uow.conn.execute(select(screening_hits.c.id).where(and_(
                        screening_hits.c.account_id == account_id, screening_hits.c.entity_id == entity_id,
                        screening_hits.c.kind == "address", screening_hits.c.status != "dismissed"))).first()
                    if open_pair is None:
                        hit = self._raise_hit(uow, account_id, entity, entity.fingerprint(), "address", 1.0,
                                              {"address": result["address"], "currency": result["currency"]},
                                              {"matched_address": result.get("canonical"),
                                               "listed_currency": result.get("listed_currency")},
                                              ["full_freeze"], actor)
                        result.setdefault("hits", []).append(hit)
        return results

    # -- decisions -------------------------------------------------------------------------------
    def dismiss_hit(self, hit_id: str, actor: Actor, reason: str, legal_reference: str) -> dict[str, Any]:
        """"Not this person": records the decision and asks to lift the hold (a second compliance
        officer approves the lift, as for every regulatory restriction)."""
        self._require_role(actor)
        now = utcnow()
        with self.store.unit_of_work() as uow:
            hit = self._hit_for_update(uow, hit_id)
            uow.conn.execute(update(screening_hits).where(screening_hits.c.id == hit_id).values(
                status="dismissed", decided_by=actor.id, decided_at=now, decision_reason=reason))
            uow.audit(actor.id, "screening.dismissed", "screening_hit", hit_id, hit["account_id"],
                      {"entity_id": hit["entity_id"], "reason": reason}, now)
            lift = None
            if hit["restriction_id"] and actor.role == "compliance":
                r = uow.restrictions.get(hit["restriction_id"], for_update=True)
                if r.effective_status(now) is Status.ACTIVE and r.lift_request is None:
                    _, outcome = restriction_service.request_lift_in(
                        uow, self.catalogue, r.id, actor, f"screening false positive: {reason}", legal_reference)
                    lift = {"restriction_id": r.id, "approvals_needed": outcome.approvals_needed}
            hit.update(status="dismissed", decided_by=actor.id, decided_at=now, decision_reason=reason)
        return {**_hit_view(hit), "lift": lift}

    def confirm_hit(self, hit_id: str, actor: Actor, note: str) -> dict[str, Any]:
        """A true match: the account is fully frozen under the regulatory playbook. A compliance
        officer's decision (they alone may impose and lift regulatory restrictions)."""
        if actor.role != "compliance":
            raise RoleNotAllowed("confirming a sanctions match is a compliance officer's decision")
        now = utcnow()
        with self.store.unit_of_work() as uow:
            hit = self._hit_for_update(uow, hit_id)
            uow.conn.execute(update(screening_hits).where(screening_hits.c.id == hit_id).values(
                status="confirmed", decided_by=actor.id, decided_at=now, decision_reason=note))
            # Full freeze unless one is already in force for this reason (the hit's own restriction
            # may have been a hold, or lifted since).
            in_force = [r for r in uow.restrictions.for_account(hit["account_id"], [Status.ACTIVE, Status.PERMANENT])
                        if r.reason_code == REASON and r.is_in_force(now)]
            if not any(len(r.scopes.scopes) == len(Scope) for r in in_force):
                restriction_service.freeze_in(
                    uow, self.catalogue, account_id=hit["account_id"], reason_code=REASON, actor=actor,
                    source=Source.SCREENING, scopes=["full_freeze"], legal_basis=hit["entity_id"],
                    note=f"confirmed screening hit {hit_id}: {note}")
            uow.audit(actor.id, "screening.confirmed", "screening_hit", hit_id, hit["account_id"],
                      {"entity_id": hit["entity_id"], "note": note}, now)
            hit.update(status="confirmed", decided_by=actor.id, decided_at=now, decision_reason=note)
        return _hit_view(hit)

    @staticmethod
    def _require_role(actor: Actor) -> None:
        if actor.role not in SCREENING_ROLES:
            raise RoleNotAllowed("screening decisions are taken by compliance officers or investigators")

    @staticmethod
    def _hit_for_update(uow: UnitOfWork, hit_id: str) -> dict[str, Any]:
        row = uow.conn.execute(select(screening_hits).where(screening_hits.c.id == hit_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"screening hit {hit_id!r} does not exist", hit_id=hit_id)
        hit = dict(row._mapping)
        if hit["status"] != "pending_review":
            raise HitAlreadyDecided(f"hit {hit_id} is already {hit['status']}", hit_status=hit["status"])
        return hit

    def list_hits(self, status: str | None = None, account_id: str | None = None) -> list[dict[str, Any]]:
        query = select(screening_hits).order_by(screening_hits.c.created_at)
        if status:
            query = query.where(screening_hits.c.status == status)
        if account_id:
            query = query.where(screening_hits.c.account_id == account_id)
        with self.store.read() as uow:
            return [_hit_view(dict(r._mapping)) for r in uow.conn.execute(query.limit(500))]


def _hit_view(hit: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": hit["id"], "account_id": hit["account_id"], "entity_id": hit["entity_id"], "kind": hit["kind"],
        "score": hit["score"], "status": hit["status"], "query": json.loads(hit["query"]),
        "explanation": json.loads(hit["explanation"]), "case_id": hit["case_id"],
        "restriction_id": hit["restriction_id"], "created_at": iso(hit["created_at"]),
        "decided_by": hit.get("decided_by"), "decided_at": iso(hit.get("decided_at")),
        "decision_reason": hit.get("decision_reason"),
    }

