"""UN consolidated list XML: the shared sample file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from freezedesk.screening.lists import un_xml
from freezedesk.screening.model import Entity, EntityName, ListFormatError

from .listdata import UN_XML


@pytest.fixture(scope="module")
def entities() -> dict[str, Entity]:
    return {e.id: e for e in un_xml.load(UN_XML)}


def test_counts_by_schema_and_programme(entities: dict[str, Entity]) -> None:
    assert len(entities) == 1003
    assert Counter(e.schema for e in entities.values()) == {"person": 730, "organisation": 273}
    programmes = Counter(p for e in entities.values() for p in e.programmes)
    assert programmes["Al-Qaida"] == 341 and programmes["DPRK"] == 155
    assert sum(1 for e in entities.values() if e.nationalities) == 624


def test_person_with_year_of_birth_and_nationality(entities: dict[str, Entity]) -> None:
    eric = entities["un-6907993"]
    assert (eric.name, eric.schema, eric.programmes) == ("ERIC BADEGE", "person", ("DRC",))
    assert eric.birth_dates == ("1971",)
    assert eric.nationalities == ("CD",)  # "Democratic Republic of the Congo"


def test_original_script_and_alias_quality(entities: dict[str, Entity]) -> None:
    saddam = entities["un-6908048"]
    assert saddam.name == "SADDAM HUSSEIN AL-TIKRITI"
    assert saddam.birth_dates == ("1937-04-28",)
    assert saddam.nationalities == ("IQ",)
    assert EntityName("صدام حسين التكريتي", "strong", "arabic") in saddam.aliases
    assert EntityName("Abu Ali", "weak") in saddam.aliases  # QUALITY Low


def test_alias_lists_split_and_fka_is_weak(entities: dict[str, Entity]) -> None:
    names = {n.text: n.strength for e in entities.values() for n in e.aliases}
    assert names["Azim Adhajani"] == "strong" and names["Azim Agha-Jani"] == "strong"
    adf = next(e for e in entities.values() if e.name == "ADF")
    assert adf.schema == "organisation"
    assert EntityName("Allied Democratic Forces", "strong") in adf.aliases  # QUALITY a.k.a.
    assert EntityName("NALU", "weak") in adf.aliases  # QUALITY f.k.a.


def test_year_ranges_and_documents(entities: dict[str, Entity]) -> None:
    ranged = [e for e in entities.values() if len(e.birth_dates) > 1 and all(len(d) == 4 for d in e.birth_dates)]
    assert ranged  # FROM_YEAR–TO_YEAR became every year of the range
    kinds = Counter(kind for e in entities.values() for kind, _ in e.identifiers)
    # French and Spanish labels ("Numéro de passeport", "Número de pasaporte") are passports too.
    assert kinds["passport"] == 304 and kinds["national_id"] == 144 and "other" not in kinds


def test_truncated_file_names_file_and_line(tmp_path: Path) -> None:
    text = UN_XML.read_text(encoding="utf-8")
    cut = tmp_path / "cut.xml"
    cut.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ListFormatError) as err:
        un_xml.load(cut)
    assert err.value.file == str(cut) and err.value.line is not None and err.value.line > 1000
    assert "malformed XML" in str(err.value)


def test_wrong_root_and_empty_list_fail(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<export><sanctionEntity/></export>", encoding="utf-8")
    with pytest.raises(ListFormatError, match=r"other\.xml:1: not a UN consolidated list"):
        un_xml.load(other)
    empty = tmp_path / "empty.xml"
    empty.write_text("<CONSOLIDATED_LIST><INDIVIDUALS/><ENTITIES/></CONSOLIDATED_LIST>", encoding="utf-8")
    with pytest.raises(ListFormatError, match="no entities found"):
        un_xml.load(empty)
    nothing = tmp_path / "nothing.xml"
    nothing.write_bytes(b"")
    with pytest.raises(ListFormatError, match="malformed XML"):
        un_xml.load(nothing)
