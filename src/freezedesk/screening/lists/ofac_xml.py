"""OFAC SDN list in its XML forms: "advanced" (``SDN_ADVANCED.XML``) and "enhanced" (``SDN_ENHANCED.XML``).

Which one a file is follows from its root element, so one loader takes both.

**Advanced** (``<Sanctions>``, the UN-style "Advanced Sanctions Data Model") is normalised:
``ReferenceValueSets`` map numeric ids to words (alias types, name-part types, feature types,
countries, scripts, document types); ``Locations`` and ``IDRegDocuments`` come before the
``DistinctParties`` that point at them; ``SanctionsEntries`` (the programmes) come after. The
file is streamed in one pass: reference values, locations and documents are kept in small
dictionaries, each party is reduced to an entity as soon as it is complete, and programmes are
attached at the end. ``DistinctParty/@FixedRef`` is the ent_num of the CSV, so ids match
(``ofac-306`` from either format).

**Enhanced** (``<sanctionsData>``) writes each ``entity`` whole, with words instead of ids:
``generalInfo/entityType``, ``sanctionsPrograms``, ``names/name/translations/translation``
(``formattedFirstName``, ``formattedLastName``, ``formattedFullName``, ``script``), ``features``
(``type`` + ``value`` or ``valueDate``) and ``identityDocuments``.

In both, a person's name is written "LAST, First" as in the CSV, with the natural-order alias.
Alias types: "A.K.A." strong (weak when flagged low quality), "N.K.A." strong, "F.K.A." weak.
Names in another script (Cyrillic, Arabic, Chinese…) become strong aliases with their script.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from os.path import commonprefix
from pathlib import Path

from freezedesk.screening.lists._common import (
    child_text,
    children,
    clean,
    date_span,
    dedupe,
    descendants,
    detect_script,
    identifier_kind,
    identifier_value,
    iso_date,
    local,
    merge_names,
    parse_date,
    parse_dates,
    reorder_person_name,
    stream_xml,
)
from freezedesk.screening.lists.countries import country_code
from freezedesk.screening.model import DigitalAddress, Entity, EntityName, ListFormatError, NameStrength, Schema

SOURCE = "ofac"
_ADVANCED_RECORDS = frozenset({"ReferenceValueSets", "Location", "IDRegDocument", "DistinctParty", "SanctionsEntry"})
_ENHANCED_RECORDS = frozenset({"entity"})
_ROOTS = frozenset({"Sanctions", "sanctionsData"})

_SCHEMAS: dict[str, Schema] = {"individual": "person", "entity": "organisation", "vessel": "vessel",
                               "aircraft": "aircraft"}
_COUNTRY_FEATURES = frozenset({"nationality country", "citizenship country", "nationality of registration"})
_FLAG_FEATURES = frozenset({"vessel flag", "aircraft flag"})
_DIGITAL = "Digital Currency Address - "


def _alias_strength(alias_type: str, low_quality: bool) -> NameStrength:
    kind = alias_type.lower().replace(".", "").replace(" ", "")
    if kind == "fka" or low_quality:
        return "weak"
    return "strong"


def _with_natural_order(names: list[EntityName], schema: Schema) -> list[EntityName]:
    """Add "First LAST" after every Latin "LAST, First" of a person."""
    if schema != "person":
        return names
    out: list[EntityName] = []
    for name in names:
        out.append(name)
        if name.script is None and (natural := reorder_person_name(name.text)):
            out.append(EntityName(natural, "strong" if name.strength == "primary" else name.strength))
    return out


@dataclass(slots=True)
class _Facts:
    """What the features of one party say."""

    birth_dates: list[str] = field(default_factory=list)
    nationalities: list[str] = field(default_factory=list)
    identifiers: list[tuple[str, str]] = field(default_factory=list)
    addresses: list[DigitalAddress] = field(default_factory=list)

    def feature(self, label: str, schema: Schema, text: str | None, countries: list[str],
                dates: list[str]) -> None:
        """Take one feature: its label, and its value as text, countries or dates."""
        lowered = label.lower()
        if label.startswith(_DIGITAL):
            if text:
                self.addresses.append(DigitalAddress(label[len(_DIGITAL):].strip().upper(), text))
        elif lowered == "birthdate":
            self.birth_dates.extend(dates)
        elif lowered in _COUNTRY_FEATURES or (lowered in _FLAG_FEATURES and schema in ("vessel", "aircraft")):
            # Advanced files point at a location (countries given); enhanced ones write the name.
            code = None if countries else country_code(text)
            self.nationalities.extend(countries or ([code] if code else []))
        elif text and (kind := identifier_kind(label)) != "other" and (value := identifier_value(kind, text)):
            self.identifiers.append((kind, value))


def _entity(ent_id: str, schema: Schema, names: list[EntityName], facts: _Facts, programmes: list[str],
            remarks: str | None, path: Path) -> Entity:
    primary = next((n for n in names if n.strength == "primary" and n.script is None), None)
    primary = primary or next((n for n in names if n.strength == "primary"), None) or (names[0] if names else None)
    if primary is None:
        raise ListFormatError(str(path), f"OFAC entry {ent_id} has no name")
    others = [n for n in _with_natural_order(names, schema) if n is not primary]
    others = [EntityName(n.text, "strong", n.script) if n.strength == "primary" else n for n in others]
    return Entity(
        id=f"{SOURCE}-{ent_id}",
        source=SOURCE,
        schema=schema,
        name=primary.text,
        aliases=merge_names(primary.text, others),
        birth_dates=dedupe(facts.birth_dates),
        nationalities=dedupe(facts.nationalities),
        identifiers=tuple(dict.fromkeys(facts.identifiers)),
        programmes=dedupe(programmes),
        addresses=tuple(dict.fromkeys(facts.addresses)),
        remarks=remarks,
    )


def _span(start_from: str | None, start_to: str | None, end_from: str | None, end_to: str | None) -> list[str]:
    """OFAC date periods bound the start and the end each by a from/to pair; what two bounds
    share is what is known ("1970-01-01" and "1970-12-31" share "1970")."""

    def known(a: str | None, b: str | None) -> str | None:
        if not a or not b:
            return a or b
        prefix = commonprefix([a, b])  # noqa: RUF071 -- ISO date strings, compared character by character
        for size in (10, 7, 4):
            if len(prefix) >= size:
                return prefix[:size]
        return None

    return date_span(known(start_from, start_to), known(end_from, end_to))


# -- advanced --------------------------------------------------------------------------------------

class _Advanced:
    """State of one pass over an advanced file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.refs: dict[tuple[str, str], ET.Element] = {}
        self.location_countries: dict[str, list[str]] = {}
        self.documents: dict[str, list[tuple[str, str]]] = {}
        self.entities: dict[str, Entity] = {}  # by profile id
        self.programmes: dict[str, list[str]] = {}

    def ref(self, kind: str, ref_id: str | None) -> ET.Element | None:
        return self.refs.get((kind, ref_id or ""))

    def ref_text(self, kind: str, ref_id: str | None) -> str:
        element = self.ref(kind, ref_id)
        return clean(element.text) or "" if element is not None else ""

    def reference_values(self, element: ET.Element) -> None:
        for value_set in element:
            for value in value_set:
                self.refs[(local(value.tag), value.get("ID", ""))] = value

    def location(self, element: ET.Element) -> None:
        codes: list[str] = []
        for country in children(element, "LocationCountry"):
            ref = self.ref("Country", country.get("CountryID"))
            if ref is not None:
                code = ref.get("ISO2") or country_code(clean(ref.text))
                if code:
                    codes.append(code.upper())
        self.location_countries[element.get("ID", "")] = codes

    def document(self, element: ET.Element) -> None:
        kind = identifier_kind(self.ref_text("IDRegDocType", element.get("IDRegDocTypeID")))
        number = child_text(element, "IDRegistrationNo") or ""
        if number.upper().startswith("IMO "):
            kind = "imo"
        value = identifier_value(kind, number)
        if value:
            self.documents.setdefault(element.get("IdentityID", ""), []).append((kind, value))

    def schema(self, profile: ET.Element) -> Schema:
        subtype = self.ref("PartySubType", profile.get("PartySubTypeID"))
        if subtype is None:
            raise ListFormatError(str(self.path), f"profile {profile.get('ID')} has an unknown PartySubTypeID")
        text = (clean(subtype.text) or "").lower()
        if text == "unknown":
            text = self.ref_text("PartyType", subtype.get("PartyTypeID")).lower()
        return _SCHEMAS.get(text, "organisation")

    def documented_name(self, documented: ET.Element, part_types: dict[str, str],
                        schema: Schema) -> tuple[str, str | None]:
        """(name, script) of one DocumentedName; a person's is "LAST, Given Names"."""
        parts: dict[str, list[str]] = {}
        order: list[str] = []
        script_code = "Latn"
        for value in descendants(documented, "NamePartValue"):
            text = clean(value.text)
            if not text:
                continue
            part = part_types.get(value.get("NamePartGroupID", ""), "")
            parts.setdefault(part, []).append(text)
            order.append(text)
            script = self.ref("Script", value.get("ScriptID"))
            if script is not None:
                script_code = script.get("ScriptCode") or clean(script.text) or "Latn"
        last = " ".join(parts.get("Last Name", []))
        given = " ".join(v for p in ("First Name", "Middle Name", "Patronymic", "Matronymic")
                         for v in parts.get(p, []))
        latin = script_code in ("Latn", "Latin")
        if latin and schema == "person" and last and given:
            return f"{last}, {given}", None
        # Other scripts keep the parts in the list's order, without the Latin "LAST, First" comma.
        name = " ".join(order)
        return name, None if latin else (detect_script(name) or script_code.lower())

    def party(self, element: ET.Element) -> None:
        ent_id = element.get("FixedRef")
        profile = next(children(element, "Profile"), None)
        if not ent_id or profile is None:
            raise ListFormatError(str(self.path), f"DistinctParty without FixedRef or Profile ({ent_id!r})")
        schema = self.schema(profile)
        identities = list(children(profile, "Identity"))
        identity = next((i for i in identities if i.get("Primary") == "true"), identities[0] if identities else None)
        names: list[EntityName] = []
        facts = _Facts()
        if identity is not None:
            part_types = {g.get("ID", ""): self.ref_text("NamePartType", g.get("NamePartTypeID"))
                          for g in descendants(identity, "NamePartGroup")}
            for alias in children(identity, "Alias"):
                alias_type = self.ref_text("AliasType", alias.get("AliasTypeID"))
                is_primary = alias.get("Primary") == "true" or alias_type.lower() == "name"
                strength: NameStrength = "primary" if is_primary else _alias_strength(
                    alias_type, alias.get("LowQuality") == "true")
                for documented in children(alias, "DocumentedName"):
                    written, script = self.documented_name(documented, part_types, schema)
                    if written:
                        names.append(EntityName(written, "strong" if script and is_primary else strength, script))
            for i in identities:
                facts.identifiers.extend(self.documents.get(i.get("ID", ""), []))
        for feature in children(profile, "Feature"):
            label = self.ref_text("FeatureType", feature.get("FeatureTypeID"))
            text: str | None = None
            countries: list[str] = []
            dates: list[str] = []
            for version in children(feature, "FeatureVersion"):
                for detail in children(version, "VersionDetail"):
                    text = clean(detail.text) or text
                for loc in children(version, "VersionLocation"):
                    countries.extend(self.location_countries.get(loc.get("LocationID", ""), []))
                for period in children(version, "DatePeriod"):
                    dates.extend(self._period(period))
            facts.feature(label, schema, text, countries, dates)
        remarks = child_text(element, "Comment")
        self.entities[profile.get("ID") or ent_id] = _entity(ent_id, schema, names, facts, [], remarks, self.path)

    @staticmethod
    def _period(period: ET.Element) -> list[str]:
        def bound(side: str, which: str) -> str | None:
            for s in children(period, side):
                for w in children(s, which):
                    return iso_date(child_text(w, "Year"), child_text(w, "Month"), child_text(w, "Day"))
            return None

        return _span(bound("Start", "From"), bound("Start", "To"), bound("End", "From"), bound("End", "To"))

    def sanctions_entry(self, element: ET.Element) -> None:
        profile_id = element.get("ProfileID", "")
        for measure in children(element, "SanctionsMeasure"):
            is_programme = self.ref_text("SanctionsType", measure.get("SanctionsTypeID")).lower() == "program"
            if is_programme and (programme := child_text(measure, "Comment")):
                self.programmes.setdefault(profile_id, []).append(programme)

    def result(self) -> list[Entity]:
        return [replace(e, programmes=dedupe(self.programmes.get(pid, []))) if pid in self.programmes else e
                for pid, e in self.entities.items()]


# -- enhanced --------------------------------------------------------------------------------------

def _bool(element: ET.Element, name: str) -> bool:
    return (child_text(element, name) or "").lower() == "true"


def _enhanced_name(translation: ET.Element, schema: Schema, latin: bool) -> str | None:
    last = child_text(translation, "formattedLastName")
    first = child_text(translation, "formattedFirstName")
    if latin and schema == "person" and last and first:
        return f"{last}, {first}"
    full = child_text(translation, "formattedFullName")
    if full:
        return full
    parts = [clean(p.text) for np in children(translation, "nameParts") for part in children(np, "namePart")
             for p in children(part, "value")]
    return clean(" ".join(p for p in parts if p))


def _enhanced_entity(element: ET.Element, path: Path) -> Entity:
    ent_id = element.get("id")
    if not ent_id:
        raise ListFormatError(str(path), "entity without an id attribute")
    info = next(children(element, "generalInfo"), None)
    type_text = (child_text(info, "entityType") or "") if info is not None else ""
    schema = _SCHEMAS.get(type_text.lower(), "organisation")
    names: list[EntityName] = []
    for name in (n for group in children(element, "names") for n in children(group, "name")):
        is_primary = _bool(name, "isPrimary")
        strength: NameStrength = "primary" if is_primary else _alias_strength(
            child_text(name, "aliasType") or "A.K.A.", _bool(name, "isLowQuality"))
        for translation in descendants(name, "translation"):
            script_name = (child_text(translation, "script") or "Latin").lower()
            text = _enhanced_name(translation, schema, script_name == "latin")
            if not text:
                continue
            script = None if script_name == "latin" else (detect_script(text) or script_name)
            names.append(EntityName(text, "strong" if script and is_primary else strength, script))
    facts = _Facts()
    for feature in (f for group in children(element, "features") for f in children(group, "feature")):
        label = child_text(feature, "type") or ""
        text = child_text(feature, "value")
        dates: list[str] = []
        for vd in children(feature, "valueDate"):
            dates = _span(*(parse_date(child_text(vd, n) or "") for n in
                            ("fromDateBegin", "fromDateEnd", "toDateBegin", "toDateEnd")))
        if not dates and text and label.lower() == "birthdate":
            dates = parse_dates(text)
        facts.feature(label, schema, text, [], dates)
    for doc in (d for group in children(element, "identityDocuments") for d in children(group, "identityDocument")):
        number = child_text(doc, "documentNumber") or ""
        kind = "imo" if number.upper().startswith("IMO ") else identifier_kind(child_text(doc, "type") or "")
        if value := identifier_value(kind, number):
            facts.identifiers.append((kind, value))
    programmes = [p for sp in children(element, "sanctionsPrograms") for p in
                  (clean(x.text) for x in children(sp, "sanctionsProgram")) if p]
    remarks = child_text(info, "remarks") if info is not None else None
    return _entity(ent_id, schema, names, facts, programmes, remarks, path)


def load(path: str | Path) -> list[Entity]:
    """Every entry of an OFAC advanced or enhanced XML file, streamed in one pass."""
    file = Path(path)
    advanced = _Advanced(file)
    enhanced: list[Entity] = []
    handlers = {
        "ReferenceValueSets": advanced.reference_values,
        "Location": advanced.location,
        "IDRegDocument": advanced.document,
        "DistinctParty": advanced.party,
        "SanctionsEntry": advanced.sanctions_entry,
    }
    for record in stream_xml(file, _ADVANCED_RECORDS | _ENHANCED_RECORDS, _ROOTS, "an OFAC advanced/enhanced XML"):
        tag = local(record.tag)
        if tag == "entity":
            enhanced.append(_enhanced_entity(record, file))
        else:
            handlers[tag](record)
    entities = enhanced + advanced.result()
    if not entities:
        raise ListFormatError(str(file), "no entities found")
    return entities
