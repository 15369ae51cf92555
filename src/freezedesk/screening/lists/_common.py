"""What every list loader shares: partial dates, scripts, identifier kinds, names and XML streaming.

The official lists write the same facts in many ways ("DOB 01 Jan 1970", ``<YEAR>1970</YEAR>``,
``birthdate="1970-01-01"``); these helpers turn them into the one form :mod:`..model` expects, so
the matcher never sees a list's quirks.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO

from freezedesk.screening.model import EntityName, ListFormatError

# -- dates ---------------------------------------------------------------------------------------

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}

#: A range of birth years wider than this is kept as its two ends only: enumerating "1900 to 1990"
#: would let almost any query year "match".
MAX_YEAR_SPAN = 20

_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def iso_date(year: int | str | None, month: int | str | None = None, day: int | str | None = None) -> str | None:
    """ISO 8601 with the precision the list gives: "1970", "1970-01" or "1970-01-31".

    Returns None when the year is missing or out of range; drops a day or month that cannot exist
    (lists write "00" or "0" for "unknown")."""
    try:
        y = int(year) if year not in (None, "") else 0
        m = int(month) if month not in (None, "") else 0
        d = int(day) if day not in (None, "") else 0
    except (TypeError, ValueError):
        return None
    if not 1000 <= y <= 2999:
        return None
    if not 1 <= m <= 12:
        return f"{y:04d}"
    if not 1 <= d <= _DAYS_IN_MONTH[m - 1]:
        return f"{y:04d}-{m:02d}"
    return f"{y:04d}-{m:02d}-{d:02d}"


def year_range(first: int, last: int) -> list[str]:
    """Every year of a short range ("1951 to 1953" → 1951, 1952, 1953), or the two ends of a long one."""
    if first > last:
        first, last = last, first
    if last - first <= MAX_YEAR_SPAN:
        return [f"{y:04d}" for y in range(first, last + 1)]
    return [f"{first:04d}", f"{last:04d}"]


def _month_end(date: str) -> bool:
    if len(date) == 7:
        return True
    return len(date) == 10 and int(date[8:]) == calendar.monthrange(int(date[:4]), int(date[5:7]))[1]


def date_span(start: str | None, end: str | None) -> list[str]:
    """The birth dates a "from … to …" statement stands for.

    A span of whole years (1 Jan y1 … 31 Dec y2, or two bare years) becomes the years, a span of
    whole months the months ("1961-04-01 … 1961-04-30" is "1961-04"); anything else keeps its two
    ends, each as precise as written."""
    if not start or not end:
        return [d for d in (start, end) if d]
    if start == end:
        return [start]
    if (len(start) == 4 or start[4:] == "-01-01") and (len(end) == 4 or end[4:] == "-12-31"):
        return year_range(int(start[:4]), int(end[:4]))
    if len(start) >= 7 and start[7:] in ("", "-01") and len(end) >= 7 and _month_end(end):
        return list(dict.fromkeys((start[:7], end[:7])))
    return [start, end]


_TEXT_DATE = re.compile(
    r"^(?:(?P<day>\d{1,2})\s+)?(?:(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+)?(?P<year>\d{4})$")
_ISO_DATE = re.compile(r"^(?P<year>\d{4})(?:-(?P<mon>\d{1,2})(?:-(?P<day>\d{1,2}))?)?(?:T.*)?$")
_NUMERIC_DATE = re.compile(r"^(?P<day>\d{1,2}|-{1,2}|x{1,2})[/.](?P<mon>\d{1,2}|-{1,2}|x{1,2})[/.](?P<year>\d{4})$",
                           re.IGNORECASE)


def parse_date(text: str) -> str | None:
    """One date as lists write it: "01 Jan 1970", "Jan 1970", "1970", "1970-01-31", "31/01/1970"
    (day first, as the UK and EU write it; "00" or "--" for an unknown part)."""
    text = text.strip()
    if m := _ISO_DATE.match(text):
        return iso_date(m["year"], m["mon"], m["day"])
    if m := _TEXT_DATE.match(text):
        month = MONTHS.get(m["mon"].lower()) if m["mon"] else None
        if m["mon"] and month is None:
            return None
        return iso_date(m["year"], month, m["day"] if month else None)
    if m := _NUMERIC_DATE.match(text):
        mon = m["mon"] if m["mon"].isdigit() else None
        day = m["day"] if m["day"].isdigit() and mon else None
        return iso_date(m["year"], mon, day)
    return None


def parse_dates(text: str) -> list[str]:
    """A date or a range: "1951 to 1953", "circa 1979-1982", "01 Jan 1961 to 31 Dec 1962"."""
    text = re.sub(r"^(?:circa|approx(?:imately)?\.?|about|c\.)\s+", "", text.strip(), flags=re.IGNORECASE)
    text = text.rstrip(". ")
    if m := re.fullmatch(r"(\d{4})\s*-\s*(\d{4})", text):
        return year_range(int(m[1]), int(m[2]))
    parts = re.split(r"\s+to\s+|\s+-\s+", text, maxsplit=1)
    if len(parts) == 2:
        return date_span(parse_date(parts[0]), parse_date(parts[1]))
    single = parse_date(text)
    return [single] if single else []


# -- scripts ---------------------------------------------------------------------------------------

# The first word of a character's Unicode name says its script ("CYRILLIC CAPITAL LETTER A").
_SCRIPT_WORDS = {
    "ARABIC": "arabic", "CYRILLIC": "cyrillic", "GREEK": "greek", "HEBREW": "hebrew", "CJK": "han",
    "HIRAGANA": "hiragana", "KATAKANA": "katakana", "HALFWIDTH": "katakana", "HANGUL": "hangul",
    "THAI": "thai", "DEVANAGARI": "devanagari", "GEORGIAN": "georgian", "ARMENIAN": "armenian",
    "BENGALI": "bengali", "TAMIL": "tamil", "ETHIOPIC": "ethiopic", "KHMER": "khmer", "LAO": "lao",
    "MYANMAR": "myanmar", "SYRIAC": "syriac", "THAANA": "thaana", "GUJARATI": "gujarati",
    "GURMUKHI": "gurmukhi", "KANNADA": "kannada", "MALAYALAM": "malayalam", "TELUGU": "telugu",
    "SINHALA": "sinhala", "TIBETAN": "tibetan", "MONGOLIAN": "mongolian",
}


def detect_script(text: str) -> str | None:
    """The dominant non-Latin script of a name ("cyrillic", "arabic", "han", …), None for Latin.

    Kana beats kanji: 山田たろう is Japanese, so it reports "hiragana" and a transliterator can tell
    it from Chinese; a name in kanji alone reports "han"."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isascii() or not ch.isalpha():
            continue
        word = unicodedata.name(ch, "").split(" ", 1)[0]
        script = _SCRIPT_WORDS.get(word)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    kana = {k: v for k, v in counts.items() if k in ("hiragana", "katakana")}
    pool = kana or counts
    return max(pool, key=lambda k: pool[k])


# -- names -----------------------------------------------------------------------------------------

def clean(text: str | None) -> str | None:
    """Collapse whitespace; None for empty text and for the "-0-" or "na" placeholders."""
    if text is None:
        return None
    text = " ".join(text.split())  # str.split() is several times faster than a regex here
    if text in ("", "-0-", "na", "n/a", "N/A"):
        return None
    return text


def reorder_person_name(name: str) -> str | None:
    """"LAST, First Middle" → "First Middle LAST"; None when the name is not in that form.

    OFAC and UK write people surname first; a customer types the given name first. The matcher is
    order-independent, but an explicit alias in natural order also serves exact lookups and shows
    the analyst which form matched."""
    if name.count(",") != 1:
        return None
    last, first = (p.strip() for p in name.split(","))
    if not last or not first:
        return None
    return f"{first} {last}"


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def merge_names(primary: str, names: Iterable[EntityName]) -> tuple[EntityName, ...]:
    """Aliases without duplicates: drops copies of the primary name, and keeps the strongest
    strength when the same text arrives twice (e.g. once a.k.a., once low-quality a.k.a.)."""
    rank = {"primary": 0, "strong": 1, "weak": 2}
    seen: dict[tuple[str, str | None], EntityName] = {}
    primary_key = _key(primary)
    for name in names:
        text = clean(name.text)
        if text is None:
            continue
        key = (_key(text), name.script)
        if key[0] == primary_key:
            continue
        old = seen.get(key)
        if old is None or rank[name.strength] < rank[old.strength]:
            seen[key] = EntityName(text, name.strength, name.script)
    return tuple(seen.values())


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    """Keep the first of equal strings, in order."""
    return tuple(dict.fromkeys(i for i in items if i))


# -- identifiers -----------------------------------------------------------------------------------

# A label (as the lists write it, lower-cased) → the identifier kind the matcher and analysts see.
# Checked by "the label starts with", longest first, so "passport no." and "diplomatic passport"
# both land on "passport".
_IDENTIFIER_KINDS: dict[str, str] = {
    "passport": "passport", "numero de passeport": "passport", "numero de pasaporte": "passport",
    "passport number": "passport", "diplomatic passport": "passport", "stateless person passport": "passport",
    "seafarer's identification document": "passport", "travel document number": "passport",
    "national id": "national_id", "national identification": "national_id",
    "national foreign id": "national_id", "personal id card": "national_id", "identification number": "national_id",
    "id card": "national_id", "identity card": "national_id", "cedula": "national_id", "d.n.i.": "national_id",
    "c.u.r.p.": "national_id", "curp": "national_id", "citizen's card": "national_id", "kenyan id": "national_id",
    "turkish identification": "national_id", "numero de identidad": "national_id", "i.f.e.": "national_id",
    "credencial electoral": "national_id", "electoral registry": "national_id", "ssn": "national_id",
    "le number": "national_id", "residency number": "national_id", "birth certificate": "national_id",
    "driver's license": "national_id", "c.u.i.p.": "national_id", "pinfl": "national_id", "id": "national_id",
    "tax id": "tax_id", "tax identification": "tax_id", "nit #": "tax_id", "r.f.c.": "tax_id", "rfc": "tax_id",
    "ruc #": "tax_id", "v.a.t.": "tax_id", "vat": "tax_id", "italian fiscal code": "tax_id", "fiscal code": "tax_id",
    "c.u.i.t.": "tax_id", "us fein": "tax_id", "rtn": "tax_id", "c.u.i.": "tax_id", "inn": "tax_id",
    "registration": "registration", "company number": "registration", "uk company number": "registration",
    "business registration": "registration", "commercial registry": "registration",
    "matricula mercantil": "registration", "folio mercantil": "registration", "trade license": "registration",
    "c.r. no.": "registration", "public registration": "registration", "chamber of commerce": "registration",
    "certificate of incorporation": "registration", "legal entity number": "registration",
    "enterprise number": "registration", "government gazette": "registration", "ogrn": "registration",
    "united social credit code": "registration", "unified social credit code": "registration",
    "d-u-n-s": "registration", "registered charity": "registration", "regnumber": "registration",
    "vessel registration identification": "imo", "imo": "imo", "mmsi": "mmsi", "swift/bic": "swift_bic",
    "swift": "swift_bic", "bic": "swift_bic", "aircraft manufacturer's serial number": "aircraft_msn",
    "aircraft tail number": "aircraft_tail", "call sign": "call_sign", "vessel call sign": "call_sign",
}
_KIND_LABELS = sorted(_IDENTIFIER_KINDS, key=len, reverse=True)


@cache
def identifier_kind(label: str) -> str:
    """The kind of an identifier from the label a list gives it ("Passport No." → "passport");
    "other" when the label is unknown, so the number is still kept."""
    text = "".join(c for c in unicodedata.normalize("NFKD", _key(label)) if not unicodedata.combining(c))
    if re.search(r"\bimo\b", text):  # "Identification Number IMO", "Company Number IMO": ship numbers
        return "imo"
    for known in _KIND_LABELS:
        if text.startswith(known) and (len(text) == len(known) or not text[len(known)].isalnum()):
            return _IDENTIFIER_KINDS[known]
    return "other"


def identifier_value(kind: str, number: str) -> str | None:
    """The number as the list writes it, minus "IMO" prefixes; None when empty."""
    value = clean(number)
    if value is None:
        return None
    if kind == "imo":
        value = re.sub(r"^IMO\s*", "", value, flags=re.IGNORECASE)
    return value or None


# -- XML -------------------------------------------------------------------------------------------

def local(tag: str) -> str:
    """The tag without its namespace: lists have moved namespaces before, the names stay."""
    return tag.rsplit("}", 1)[-1]


def child_text(element: ET.Element, name: str) -> str | None:
    """The cleaned text of the first direct child with this local name."""
    for child in element:
        if local(child.tag) == name:
            return clean(child.text)
    return None


def children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children with this local name, in document order."""
    return (c for c in element if local(c.tag) == name)


def descendants(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Descendants with this local name, in document order."""
    return (c for c in element.iter() if local(c.tag) == name)


def _root_tag(source: BinaryIO) -> str:
    for _event, element in ET.iterparse(source, events=("start",)):  # noqa: S314 -- see stream_xml
        return str(element.tag)
    raise ET.ParseError("no element found")


def stream_xml(path: Path, records: frozenset[str], root_names: frozenset[str],
               what: str) -> Iterator[ET.Element]:
    """Stream the record elements of a big XML file, each complete when yielded.

    Memory stays flat: a record is cleared once the caller is done with it (keep what you need,
    not the element). ``records`` are local tag names that never nest in one another; the root
    must be one of ``root_names`` (a wrong file fails at once instead of yielding nothing). XML
    syntax errors and unreadable files become :class:`ListFormatError` with expat's line number."""
    try:
        # Our own handle, so the file is closed even when a caller stops early on a bad record.
        with path.open("rb") as source:
            root = local(_root_tag(source))
            if root not in root_names:
                raise ListFormatError(str(path), f"not {what}: root element <{root}>", 1)
            source.seek(0)
            # Official list files, read with expat >= 2.4 (entity-expansion limits built in); ElementTree
            # never fetches external entities or DTDs, the attacks defusedxml guards against.
            wanted: dict[str, bool] = {}  # full tag → is a record; saves a namespace split per element
            for _event, element in ET.iterparse(source, events=("end",)):  # noqa: S314
                is_record = wanted.get(element.tag)
                if is_record is None:
                    is_record = wanted[element.tag] = local(element.tag) in records
                if is_record:
                    yield element
                    element.clear()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise ListFormatError(str(path), f"malformed XML: {exc}", line) from exc
    except OSError as exc:
        raise ListFormatError(str(path), f"cannot read: {exc.strerror or exc}") from exc
