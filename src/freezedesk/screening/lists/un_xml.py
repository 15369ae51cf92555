"""UN Security Council consolidated list, XML (``consolidated.xml``, root ``CONSOLIDATED_LIST``).

``INDIVIDUALS/INDIVIDUAL`` and ``ENTITIES/ENTITY``, each with ``DATAID`` (the native id, so
``un-6907993``), names in ``FIRST_NAME`` … ``FOURTH_NAME`` (joined in that order: the UN writes
given names first), ``UN_LIST_TYPE`` (the regime: "Al-Qaida", "DPRK", … — our programme),
``NAME_ORIGINAL_SCRIPT``, ``NATIONALITY/VALUE`` (country names), ``INDIVIDUAL_DATE_OF_BIRTH`` (a
``DATE``, a ``YEAR``, or ``FROM_YEAR``–``TO_YEAR`` for "BETWEEN") and ``INDIVIDUAL_DOCUMENT``.

Aliases: ``QUALITY`` "Good" or "a.k.a." is strong, "Low" or "f.k.a." is weak; one ``ALIAS_NAME``
sometimes lists several spellings separated by ";", each kept. An alias may carry its own date of
birth, which joins the entity's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from freezedesk.screening.lists._common import (
    child_text,
    children,
    clean,
    date_span,
    dedupe,
    detect_script,
    identifier_kind,
    identifier_value,
    iso_date,
    merge_names,
    parse_date,
    stream_xml,
    year_range,
)
from freezedesk.screening.lists.countries import country_codes
from freezedesk.screening.model import Entity, EntityName, ListFormatError, NameStrength, Schema

SOURCE = "un"
_WEAK_QUALITIES = frozenset({"low", "f.k.a.", "fka"})
_NAME_FIELDS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")


def _birth_dates(element: ET.Element) -> list[str]:
    """One ``INDIVIDUAL_DATE_OF_BIRTH``: an exact or approximate date or year, or a range of years."""
    date = child_text(element, "DATE")
    if date:
        parsed = parse_date(date)
        return [parsed] if parsed else []
    year = child_text(element, "YEAR")
    if year:
        parsed = iso_date(year)
        return [parsed] if parsed else []
    first, last = child_text(element, "FROM_YEAR"), child_text(element, "TO_YEAR")
    if first and last and first.isdigit() and last.isdigit():
        return year_range(int(first), int(last))
    return date_span(iso_date(first), iso_date(last))


def _aliases(record: ET.Element) -> tuple[list[EntityName], list[str]]:
    """The aliases of a record and the birth dates written on them."""
    names: list[EntityName] = []
    births: list[str] = []
    for alias in record:
        if not alias.tag.endswith("_ALIAS"):
            continue
        text = child_text(alias, "ALIAS_NAME")
        if not text:
            continue
        quality = (child_text(alias, "QUALITY") or "").lower()
        strength: NameStrength = "weak" if quality in _WEAK_QUALITIES else "strong"
        for spelling in text.split(";"):
            if spelling := spelling.strip():
                names.append(EntityName(spelling, strength, detect_script(spelling)))
        if dob := child_text(alias, "DATE_OF_BIRTH"):
            births.extend(d for d in [parse_date(dob)] if d)
    return names, births


def _record(record: ET.Element, schema: Schema, path: Path) -> Entity:
    data_id = child_text(record, "DATAID")
    if not data_id or not data_id.isdigit():
        raise ListFormatError(str(path), f"{record.tag} without a numeric DATAID ({data_id!r})")
    name = clean(" ".join(filter(None, (child_text(record, f) for f in _NAME_FIELDS))))
    if name is None:
        raise ListFormatError(str(path), f"{record.tag} {data_id} has no name")
    names, births = _aliases(record)
    for original in children(record, "NAME_ORIGINAL_SCRIPT"):
        if text := clean(original.text):
            names.append(EntityName(text, "strong", detect_script(text)))
    for dob in children(record, "INDIVIDUAL_DATE_OF_BIRTH"):
        births.extend(_birth_dates(dob))
    nationalities = [clean(v.text) for n in children(record, "NATIONALITY") for v in children(n, "VALUE")]
    identifiers: list[tuple[str, str]] = []
    for doc in children(record, "INDIVIDUAL_DOCUMENT"):
        label = child_text(doc, "TYPE_OF_DOCUMENT") or child_text(doc, "TYPE_OF_DOCUMENT2") or ""
        kind = identifier_kind(label)
        value = identifier_value(kind, child_text(doc, "NUMBER") or "")
        if value:
            identifiers.append((kind, value))
    programme = child_text(record, "UN_LIST_TYPE")
    return Entity(
        id=f"{SOURCE}-{data_id}",
        source=SOURCE,
        schema=schema,
        name=name,
        aliases=merge_names(name, names),
        birth_dates=dedupe(births),
        nationalities=tuple(country_codes(nationalities)),
        identifiers=tuple(dict.fromkeys(identifiers)),
        programmes=(programme,) if programme else (),
        remarks=child_text(record, "COMMENTS1"),
    )


def load(path: str | Path) -> list[Entity]:
    """Every individual and entity of a UN consolidated list XML file, streamed."""
    file = Path(path)
    entities = [
        _record(record, "person" if record.tag.endswith("INDIVIDUAL") else "organisation", file)
        for record in stream_xml(file, frozenset({"INDIVIDUAL", "ENTITY"}), frozenset({"CONSOLIDATED_LIST"}),
                                 "a UN consolidated list")
    ]
    if not entities:
        raise ListFormatError(str(file), "no entities found")
    return entities
