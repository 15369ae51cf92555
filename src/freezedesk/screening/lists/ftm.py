"""FollowTheMoney entities as JSON lines (OpenSanctions and other aggregated-data exports).

One JSON object per line: ``{"id", "schema", "properties": {prop: [values]}, "target"?}``.

* Listed parties are ``Person``, ``Organization``, ``Company``, ``LegalEntity``, ``PublicBody``,
  ``Vessel`` and ``Airplane``. When a line says ``"target": false`` the entity is only context
  (an owner, an address) and is skipped; exports without the flag are taken whole.
* Names: ``name`` (the first is the primary name), ``alias``, ``weakAlias`` and ``previousName``
  (weak). Names in another script get their script.
* Facts: ``birthDate``; ``nationality``/``citizenship`` (people) or ``jurisdiction``/``country``/
  ``flag`` (the rest), lower-case alpha-2 in FtM; ``passportNumber``, ``idNumber``,
  ``taxNumber``, ``registrationNumber``, ``imoNumber``, ``mmsi``, ``swiftBic``, ``innCode``, ``ogrnCode``.
* Other entities point at the party: ``CryptoWallet`` (``publicKey``, ``currency``, ``holder``),
  ``Sanction`` (``entity``, ``program``/``programId``), ``Passport``/``Identification``
  (``holder``, ``number``). They may come before or after the party, so they are collected and
  attached once the whole file is read.

Ids: ``<prefix>-<FtM id>`` with a configurable prefix ("ftm" by default), so two licensed
datasets can be loaded side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from freezedesk.screening.lists._common import (
    clean,
    dedupe,
    detect_script,
    identifier_value,
    merge_names,
    parse_date,
)
from freezedesk.screening.lists.countries import country_codes
from freezedesk.screening.model import DigitalAddress, Entity, EntityName, ListFormatError, NameStrength, Schema

DEFAULT_PREFIX = "ftm"
_SCHEMAS: dict[str, Schema] = {
    "Person": "person", "Organization": "organisation", "Company": "organisation", "LegalEntity": "organisation",
    "PublicBody": "organisation", "Vessel": "vessel", "Airplane": "aircraft",
}
_NAME_PROPS: tuple[tuple[str, NameStrength], ...] = (
    ("name", "strong"), ("alias", "strong"), ("weakAlias", "weak"), ("previousName", "weak"))
_ID_PROPS = {
    "passportNumber": "passport", "idNumber": "national_id", "taxNumber": "tax_id", "innCode": "tax_id",
    "registrationNumber": "registration", "ogrnCode": "registration", "imoNumber": "imo", "mmsi": "mmsi",
    "swiftBic": "swift_bic", "callSign": "call_sign",
}
_DOCUMENT_KINDS = {"Passport": "passport", "Identification": "national_id"}


def _values(props: Mapping[str, Any], name: str) -> list[str]:
    raw = props.get(name) or []
    if isinstance(raw, str):
        raw = [raw]
    return [text for v in raw if isinstance(v, str) and (text := clean(v))]


def _refs(props: Mapping[str, Any], name: str) -> list[str]:
    """Entity references: plain ids, or nested ``{"id": …}`` objects in nested exports."""
    raw = props.get(name) or []
    if isinstance(raw, str | dict):
        raw = [raw]
    out = []
    for v in raw:
        ref = v.get("id") if isinstance(v, dict) else v
        if isinstance(ref, str) and ref:
            out.append(ref)
    return out


def _programmes(props: Mapping[str, Any]) -> list[str]:
    """The programme codes ("EU-UKR"); the programme's title only where no code is given."""
    return _values(props, "programId") or _values(props, "program")


def _party(prefix: str, data: Mapping[str, Any], schema: Schema, path: Path, line: int) -> Entity:
    props = data.get("properties") or {}
    if not isinstance(props, dict):
        raise ListFormatError(str(path), "properties is not an object", line)
    names: list[EntityName] = []
    for prop, strength in _NAME_PROPS:
        names.extend(EntityName(v, strength, detect_script(v)) for v in _values(props, prop))
    primary = next((n.text for n in names if n.script is None), None) or (names[0].text if names else None)
    primary = primary or clean(data.get("caption") if isinstance(data.get("caption"), str) else None)
    if primary is None:
        raise ListFormatError(str(path), f"entity {data.get('id')} has no name", line)
    country_props = ("nationality", "citizenship") if schema == "person" else ("jurisdiction", "country", "flag")
    countries = country_codes([c for p in country_props for c in _values(props, p)])
    identifiers = [(kind, value) for prop, kind in _ID_PROPS.items() for v in _values(props, prop)
                   if (value := identifier_value(kind, v))]
    return Entity(
        id=f"{prefix}-{data['id']}",
        source=prefix,
        schema=schema,
        name=primary,
        aliases=merge_names(primary, names),
        birth_dates=dedupe(d for v in _values(props, "birthDate") if (d := parse_date(v))),
        nationalities=tuple(countries),
        identifiers=tuple(dict.fromkeys(identifiers)),
        programmes=dedupe(_programmes(props)),
        remarks="; ".join(_values(props, "notes")) or None,
    )


def load(path: str | Path, prefix: str = DEFAULT_PREFIX) -> list[Entity]:
    """Every listed party of a FollowTheMoney JSON-lines file, with its wallets, programmes and
    documents attached."""
    file = Path(path)
    parties: dict[str, Entity] = {}
    wallets: dict[str, list[DigitalAddress]] = {}
    programmes: dict[str, list[str]] = {}
    documents: dict[str, list[tuple[str, str]]] = {}
    try:
        handle = file.open(encoding="utf-8")
    except OSError as exc:
        raise ListFormatError(str(file), f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        line = 0
        try:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ListFormatError(str(file), f"not JSON: {exc.msg}", line) from exc
                if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data.get("schema"):
                    raise ListFormatError(str(file), "a line must be an object with id and schema", line)
                _take(prefix, data, line, file, parties, wallets, programmes, documents)
        except UnicodeDecodeError as exc:
            raise ListFormatError(str(file), f"not UTF-8: {exc.reason}", line + 1) from exc
    entities = [_attach(e, wallets, programmes, documents, prefix) for e in parties.values()]
    if not entities:
        raise ListFormatError(str(file), "no entities found")
    return entities


def _take(prefix: str, data: dict[str, Any], line: int, file: Path, parties: dict[str, Entity],
          wallets: dict[str, list[DigitalAddress]], programmes: dict[str, list[str]],
          documents: dict[str, list[tuple[str, str]]]) -> None:
    """File one line: a listed party, or a fact about one."""
    schema_name = str(data["schema"])
    props = data.get("properties") or {}
    if schema_name in _SCHEMAS:
        if data.get("target") is not False:
            parties[data["id"]] = _party(prefix, data, _SCHEMAS[schema_name], file, line)
    elif schema_name == "CryptoWallet":
        currency = (_values(props, "currency") or ["?"])[0].upper()
        for holder in _refs(props, "holder"):
            wallets.setdefault(holder, []).extend(DigitalAddress(currency, k) for k in _values(props, "publicKey"))
    elif schema_name == "Sanction":
        found = _programmes(props)
        for entity in _refs(props, "entity"):
            programmes.setdefault(entity, []).extend(found)
    elif schema_name in _DOCUMENT_KINDS:
        kind = _DOCUMENT_KINDS[schema_name]
        for holder in _refs(props, "holder"):
            documents.setdefault(holder, []).extend(
                (kind, v) for n in _values(props, "number") if (v := identifier_value(kind, n)))


def _attach(entity: Entity, wallets: Mapping[str, Sequence[DigitalAddress]], programmes: Mapping[str, list[str]],
            documents: Mapping[str, list[tuple[str, str]]], prefix: str) -> Entity:
    native = entity.id[len(prefix) + 1:]
    if native not in wallets and native not in programmes and native not in documents:
        return entity
    return replace(
        entity,
        addresses=tuple(dict.fromkeys((*entity.addresses, *wallets.get(native, ())))),
        programmes=dedupe([*entity.programmes, *programmes.get(native, [])]),
        identifiers=tuple(dict.fromkeys((*entity.identifiers, *documents.get(native, [])))),
    )
