"""EU consolidated list of financial sanctions, XML ("xmlFullSanctionsList_1_1", root ``export``).

One ``sanctionEntity`` per listing (``logicalId`` is the native id, so ``eu-13``), with
attributes rather than text:

* ``subjectType/@code`` — "person" or "enterprise" (``classificationCode`` P or E);
* ``nameAlias`` — ``wholeName`` (or first/middle/last), ``strong`` "true"/"false" (the EU's own
  strong/weak alias flag), ``nameLanguage`` (names in Russian, Arabic, … are in that script);
* ``birthdate`` — ``birthdate`` (ISO) or ``year``/``monthOfYear``/``dayOfMonth``;
* ``citizenship/@countryIso2Code`` — already alpha-2 ("00" = unknown);
* ``identification`` — ``identificationTypeCode`` ("passport", "id", "fiscalcode", …) + ``number``;
* ``regulation/@programme`` — the regime code ("IRQ", "RUS", "TAQA", …).

The first strong Latin ``nameAlias`` is the name. The CSV edition of the same file is not read:
it flattens one entity into many rows and carries nothing the XML lacks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from freezedesk.screening.lists._common import (
    children,
    clean,
    dedupe,
    detect_script,
    identifier_kind,
    identifier_value,
    iso_date,
    merge_names,
    parse_date,
    stream_xml,
)
from freezedesk.screening.lists.countries import country_code
from freezedesk.screening.model import Entity, EntityName, ListFormatError, NameStrength, Schema

SOURCE = "eu"
_SCHEMAS: dict[str, Schema] = {"person": "person", "enterprise": "organisation", "vessel": "vessel",
                               "aircraft": "aircraft"}
_ID_KINDS = {"id": "national_id", "fiscalcode": "tax_id", "regnumber": "registration", "swiftbic": "swift_bic",
             "imo": "imo", "passport": "passport"}


def _name(alias: ET.Element) -> str | None:
    whole = clean(alias.get("wholeName"))
    if whole:
        return whole
    parts = (clean(alias.get(a)) for a in ("firstName", "middleName", "lastName"))
    return clean(" ".join(p for p in parts if p))


def _birth_date(element: ET.Element) -> str | None:
    if full := clean(element.get("birthdate")):
        return parse_date(full)
    return iso_date(element.get("year"), element.get("monthOfYear"), element.get("dayOfMonth"))


def _record(record: ET.Element, path: Path) -> Entity:
    logical_id = record.get("logicalId")
    if not logical_id:
        raise ListFormatError(str(path), "sanctionEntity without a logicalId")
    subject = next(children(record, "subjectType"), None)
    code = (subject.get("code") or "") if subject is not None else ""
    schema = _SCHEMAS.get(code.lower(), "organisation")

    names: list[EntityName] = []
    for alias in children(record, "nameAlias"):
        text = _name(alias)
        if text:
            strength: NameStrength = "weak" if alias.get("strong", "true").lower() == "false" else "strong"
            names.append(EntityName(text, strength, detect_script(text)))
    primary = next((n for n in names if n.strength == "strong" and n.script is None), None)
    primary = primary or next((n for n in names if n.script is None), None) or (names[0] if names else None)
    if primary is None:
        raise ListFormatError(str(path), f"sanctionEntity {logical_id} has no name")

    births = [d for b in children(record, "birthdate") if (d := _birth_date(b))]
    nationalities = [country_code(c.get("countryIso2Code")) or country_code(c.get("countryDescription"))
                     for c in children(record, "citizenship")]
    identifiers: list[tuple[str, str]] = []
    for ident in children(record, "identification"):
        type_code = (ident.get("identificationTypeCode") or "").lower()
        kind = _ID_KINDS.get(type_code) or identifier_kind(ident.get("identificationTypeDescription") or type_code)
        if value := identifier_value(kind, ident.get("number") or ident.get("latinNumber") or ""):
            identifiers.append((kind, value))
    programmes = [clean(r.get("programme")) for r in children(record, "regulation")]
    remarks = [clean(r.text) for r in children(record, "remark")]
    return Entity(
        id=f"{SOURCE}-{logical_id}",
        source=SOURCE,
        schema=schema,
        name=primary.text,
        aliases=merge_names(primary.text, [n for n in names if n is not primary]),
        birth_dates=dedupe(births),
        nationalities=dedupe(n for n in nationalities if n),
        identifiers=tuple(dict.fromkeys(identifiers)),
        programmes=dedupe(p for p in programmes if p),
        remarks="\n".join(r for r in remarks if r) or None,
    )


def load(path: str | Path) -> list[Entity]:
    """Every sanctionEntity of an EU financial-sanctions XML file, streamed."""
    file = Path(path)
    entities = [_record(r, file) for r in stream_xml(file, frozenset({"sanctionEntity"}), frozenset({"export"}),
                                                     "an EU financial sanctions file")]
    if not entities:
        raise ListFormatError(str(file), "no entities found")
    return entities
