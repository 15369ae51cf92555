"""OFAC SDN list, legacy CSV set: ``sdn.csv``, ``alt.csv``, ``sdn_comments.csv`` (and ``add.csv``).

The files have no header row; ``-0-`` means empty; a file may end with a DOS end-of-file byte
(0x1A). Columns of ``sdn.csv``: ent_num, name, type, programs, title, call sign, vessel type,
tonnage, GRT, vessel flag, vessel owner, remarks. Remarks longer than the column hold continue,
cut mid-word, in ``sdn_comments.csv`` (ent_num, continuation): the two are joined *without* a
separator before anything is parsed, so an address cut in two is whole again.

Most facts live in the remarks, "; "-separated: ``DOB 01 Jan 1970; alt. DOB 1971; POB …;
nationality Iran; Passport A123 (Iran); Digital Currency Address - XBT 1AbC…; a.k.a. 'NICK'``.

Names: the list writes people "LAST, First"; the name stays as written and, for people only, an
alias "First LAST" of the same strength is added (see ``reorder_person_name``). Aliases from
``alt.csv`` are strong for "aka" and "nka" (now-known-as is the current name) and weak for "fka"
(a former name). Quoted a.k.a.'s in the remarks are OFAC's "weak AKAs" and are weak.

``add.csv`` holds postal addresses, for which :class:`Entity` has no field; it is not read.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from freezedesk.screening.lists._common import (
    clean,
    dedupe,
    identifier_kind,
    identifier_value,
    merge_names,
    parse_dates,
    reorder_person_name,
)
from freezedesk.screening.lists.countries import country_code, country_codes
from freezedesk.screening.model import DigitalAddress, Entity, EntityName, ListFormatError, NameStrength, Schema

SOURCE = "ofac"
SDN_COLUMNS = 12
ALT_COLUMNS = 5
COMMENT_COLUMNS = 2

_SCHEMAS: dict[str, Schema] = {"individual": "person", "vessel": "vessel", "aircraft": "aircraft"}
_ALT_STRENGTH: dict[str, NameStrength] = {"aka": "strong", "nka": "strong", "fka": "weak"}

#: Every "Digital Currency Address - <CODE> <address>", whatever the code. The address runs to the
#: next separator; a final "." is the sentence's, never the address's.
DIGITAL_CURRENCY = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([^\s;]+)")
_WEAK_AKA = re.compile(r"\b[afn]\.k\.a\.\s+'(.+?)'(?=\s*;|\.?\s*$)")
_DOB = re.compile(r"^(?:alt\.\s+)?DOB\s+(.+)$")
_NATIONALITY = re.compile(r"^(?:alt\.\s+)?(?:Nationality of Registration|nationality|citizen)\s+(.+)$",
                          re.IGNORECASE)
# "<label> <value> (<country>) issued … expires …": the label is the text before the first
# token holding a digit; only labels identifier_kind() knows are kept.
_IDENTIFIER = re.compile(r"^(?:alt\.\s+)?(?P<label>[A-Za-z][A-Za-z .'/#()&-]*?)\s+(?P<value>(?:[A-Z]{1,4}\s)?"
                         r"[A-Za-z]*\d[^(]*?)(?:\s+\((?P<country>[^)]*)\))?(?:\s+(?:issued|expires)\b.*)?$")


def _find(directory: Path, name: str) -> Path | None:
    """The file of that name, in any case (OFAC has published both sdn.csv and SDN.CSV)."""
    exact = directory / name
    if exact.exists():
        return exact
    for candidate in directory.iterdir():
        if candidate.name.lower() == name:
            return candidate
    return None


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without BOM), else Windows-1252 as older OFAC files were."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ListFormatError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _rows(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each record; skips blank lines and the trailing 0x1A."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    line = 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ListFormatError(str(path), f"malformed CSV: {exc}", reader.line_num) from exc
        line = reader.line_num + 1
        if not row or all(not f.strip() or f.strip() == "\x1a" for f in row):
            continue
        if len(row) != width:
            raise ListFormatError(str(path), f"expected {width} fields, found {len(row)}", start)
        yield start, row


def _ent_num(path: Path, value: str, line: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ListFormatError(str(path), f"bad ent_num {value.strip()!r}", line) from None
    if number <= 0:
        raise ListFormatError(str(path), f"bad ent_num {number}", line)
    return number


def _programmes(text: str | None) -> list[str]:
    """"SDGT] [IFSR" (the CSV keeps the inner brackets of "[SDGT] [IFSR]") → ["SDGT", "IFSR"]."""
    if not text:
        return []
    return [p for p in (part.strip(" []") for part in text.split("] [")) if p]


def _remark_parts(remarks: str) -> list[str]:
    parts = [p.strip() for p in remarks.split(";")]
    if parts:
        parts[-1] = parts[-1].rstrip(".").strip()
    return [p for p in parts if p]


@dataclass(slots=True)
class RemarkFacts:
    """What the remarks of one entry say, in model form."""

    birth_dates: list[str] = field(default_factory=list)
    nationalities: list[str] = field(default_factory=list)  # alpha-2
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (kind, value)
    addresses: list[DigitalAddress] = field(default_factory=list)
    weak_aliases: list[str] = field(default_factory=list)


def parse_remarks(remarks: str) -> RemarkFacts:
    """The facts in an OFAC remarks text (already joined with its sdn_comments.csv continuation)."""
    facts = RemarkFacts()
    for part in _remark_parts(remarks):
        if m := _DOB.match(part):
            facts.birth_dates.extend(parse_dates(m[1]))
        elif m := _NATIONALITY.match(part):
            code = country_code(m[1])
            if code:
                facts.nationalities.append(code)
        elif "Digital Currency Address" in part:
            continue  # taken from the whole text below
        elif m := _IDENTIFIER.match(part):
            # "Identification Number IMO 5342883": the ship number hides behind a generic label.
            kind = "imo" if m["value"].startswith("IMO ") else identifier_kind(m["label"])
            value = identifier_value(kind, m["value"])
            if kind != "other" and value:
                facts.identifiers.append((kind, value))
    facts.addresses = [DigitalAddress(code.upper(), address.rstrip("."))
                       for code, address in DIGITAL_CURRENCY.findall(remarks)]
    facts.weak_aliases = [m[1] for m in _WEAK_AKA.finditer(remarks)]
    return facts


def load(path: str | Path) -> list[Entity]:
    """Every SDN entry of the CSV set in the directory ``path`` (or the directory of ``path``
    when it names ``sdn.csv``). Raises :class:`ListFormatError` on a malformed file or an empty list."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    if not directory.is_dir():
        raise ListFormatError(str(directory), "not a directory holding sdn.csv")
    sdn = _find(directory, "sdn.csv")
    if sdn is None:
        raise ListFormatError(str(directory / "sdn.csv"), "file not found")

    continuations: dict[int, str] = {}
    comments = _find(directory, "sdn_comments.csv")
    if comments is not None:
        for line, (raw_num, text) in _rows(comments, COMMENT_COLUMNS):
            key = _ent_num(comments, raw_num, line)
            continuations[key] = continuations.get(key, "") + text

    alt_names: dict[int, list[tuple[str, str]]] = {}
    alt = _find(directory, "alt.csv")
    if alt is not None:
        for line, (raw_num, _alt_num, alt_type, alt_name, _alt_remarks) in _rows(alt, ALT_COLUMNS):
            name = clean(alt_name)
            if name:
                kind = (clean(alt_type) or "aka").lower().replace(".", "")
                alt_names.setdefault(_ent_num(alt, raw_num, line), []).append((kind, name))

    entities: list[Entity] = []
    for line, row in _rows(sdn, SDN_COLUMNS):
        num = _ent_num(sdn, row[0], line)
        name = clean(row[1])
        if name is None:
            raise ListFormatError(str(sdn), f"entry {num} has no name", line)
        schema = _SCHEMAS.get((clean(row[2]) or "").lower(), "organisation")
        remarks = (clean(row[11]) or "") + continuations.get(num, "")
        facts = parse_remarks(remarks)

        names: list[EntityName] = []
        if schema == "person" and (natural := reorder_person_name(name)):
            names.append(EntityName(natural, "strong"))
        for kind, alias in alt_names.get(num, []):
            strength = _ALT_STRENGTH.get(kind, "strong")
            names.append(EntityName(alias, strength))
            if schema == "person" and (natural := reorder_person_name(alias)):
                names.append(EntityName(natural, strength))
        for alias in facts.weak_aliases:
            names.append(EntityName(alias, "weak"))
            if schema == "person" and (natural := reorder_person_name(alias)):
                names.append(EntityName(natural, "weak"))

        identifiers = list(facts.identifiers)
        if call_sign := clean(row[5]):
            identifiers.append(("call_sign", call_sign))
        nationalities = list(facts.nationalities)
        if schema in ("vessel", "aircraft"):
            nationalities += country_codes([clean(row[9])])  # the flag state
        entities.append(Entity(
            id=f"{SOURCE}-{num}",
            source=SOURCE,
            schema=schema,
            name=name,
            aliases=merge_names(name, names),
            birth_dates=dedupe(facts.birth_dates),
            nationalities=dedupe(nationalities),
            identifiers=tuple(dict.fromkeys(identifiers)),
            programmes=dedupe(_programmes(clean(row[3]))),
            addresses=tuple(dict.fromkeys(facts.addresses)),
            remarks=remarks or None,
        ))
    if not entities:
        raise ListFormatError(str(sdn), "no entities found")
    return entities
