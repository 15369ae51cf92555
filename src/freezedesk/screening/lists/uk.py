"""UK Sanctions List (FCDO), XML edition: ``UK_Sanctions_List.xml``, root ``Designations``.

The FCDO's UK Sanctions List is the single official UK list since OFSI retired its Consolidated
List of Asset Freeze Targets (early 2026); it is published as XML, CSV, ODS and HTML. We read the
XML: the CSV repeats each designation once per name and has to be regrouped, the XML does not.

One ``Designation`` per listing, ``UniqueID`` the native id ("RUS0251" → ``uk-RUS0251``):

* ``IndividualEntityShip`` — "Individual", "Entity" or "Ship";
* ``Names/Name`` — ``Name1`` … ``Name5`` given names, ``Name6`` the family or entity name,
  ``NameType`` ("Primary Name", "Primary Name Variation", "Alias"), ``AliasStrength``
  ("Good quality" / "Low quality": low quality is weak);
* ``NonLatinNames`` — ``NameNonLatinScript`` with ``NonLatinScriptType``;
* ``RegimeName`` — the programme; ``OtherInformation`` — remarks;
* ``IndividualDetails/Individual`` — ``DOBs/DOB`` ("dd/mm/yyyy", "00" or "--" for unknown
  parts), ``Nationalities/Nationality`` (country names), passport and national-id numbers;
* ``ShipDetails/Ship`` — ``IMONumbers/IMONumber``, ``CurrentBelievedFlagOfShips``.

Names are joined given-names-first ("Dmitry Nikolayevich PATRUSHEV"), the way the list shows them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from freezedesk.screening.lists._common import (
    child_text,
    children,
    clean,
    dedupe,
    descendants,
    detect_script,
    identifier_value,
    local,
    merge_names,
    parse_dates,
    stream_xml,
)
from freezedesk.screening.lists.countries import country_codes
from freezedesk.screening.model import Entity, EntityName, ListFormatError, NameStrength, Schema

SOURCE = "uk"
_SCHEMAS: dict[str, Schema] = {"individual": "person", "entity": "organisation", "ship": "vessel"}
_NAME_PARTS = ("Name1", "Name2", "Name3", "Name4", "Name5", "Name6")
#: Elements holding an identifier, wherever they sit in the designation.
_IDENTIFIER_TAGS = {
    "PassportNumber": "passport", "NationalIdentifierNumber": "national_id", "NationalIdNumber": "national_id",
    "IMONumber": "imo", "BusinessRegistrationNumber": "registration", "SwiftBic": "swift_bic",
}


def _name(element: ET.Element) -> str | None:
    whole = child_text(element, "Name")  # some exports carry the whole name as well as its parts
    parts = [p for p in (child_text(element, n) for n in _NAME_PARTS) if p]
    return clean(" ".join(parts)) or whole


def _record(record: ET.Element, path: Path) -> Entity:
    unique_id = child_text(record, "UniqueID")
    if not unique_id:
        raise ListFormatError(str(path), "Designation without a UniqueID")
    kind = (child_text(record, "IndividualEntityShip") or "").lower()
    schema = _SCHEMAS.get(kind, "organisation")

    primary: str | None = None
    names: list[EntityName] = []
    for group in children(record, "Names"):
        for element in children(group, "Name"):
            text = _name(element)
            if not text:
                continue
            name_type = (child_text(element, "NameType") or "").lower()
            if primary is None and name_type == "primary name":
                primary = text
                continue
            low = "low" in (child_text(element, "AliasStrength") or "").lower()
            strength: NameStrength = "weak" if low else "strong"
            names.append(EntityName(text, strength))
    for element in descendants(record, "NameNonLatinScript"):
        if text := clean(element.text):
            names.append(EntityName(text, "strong", detect_script(text)))
    if primary is None:
        latin = [n for n in names if n.script is None]
        if not latin:
            raise ListFormatError(str(path), f"designation {unique_id} has no name")
        primary = latin[0].text

    births = [d for e in descendants(record, "DOB") for d in parse_dates(e.text or "")]
    nationality_names = [clean(e.text) for e in descendants(record, "Nationality")]
    if schema == "vessel":
        nationality_names += [clean(e.text) for e in descendants(record, "CurrentBelievedFlagOfShip")]
    identifiers: list[tuple[str, str]] = []
    for element in record.iter():
        id_kind = _IDENTIFIER_TAGS.get(local(element.tag))
        if id_kind and (value := identifier_value(id_kind, element.text or "")):
            identifiers.append((id_kind, value))
    programmes = [clean(e.text) for e in children(record, "RegimeName")]
    return Entity(
        id=f"{SOURCE}-{unique_id}",
        source=SOURCE,
        schema=schema,
        name=primary,
        aliases=merge_names(primary, names),
        birth_dates=dedupe(births),
        nationalities=tuple(country_codes(nationality_names)),
        identifiers=tuple(dict.fromkeys(identifiers)),
        programmes=dedupe(p for p in programmes if p),
        remarks=child_text(record, "OtherInformation"),
    )


def load(path: str | Path) -> list[Entity]:
    """Every designation of a UK Sanctions List XML file, streamed."""
    file = Path(path)
    entities = [_record(r, file) for r in stream_xml(file, frozenset({"Designation"}), frozenset({"Designations"}),
                                                     "a UK Sanctions List XML file")]
    if not entities:
        raise ListFormatError(str(file), "no entities found")
    return entities
