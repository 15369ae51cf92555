"""OFAC advanced/enhanced XML, EU, UK and FollowTheMoney loaders on their fixtures; source specs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from freezedesk.screening.lists import eu, ftm, load_snapshot, load_source, ofac_csv, ofac_xml, uk
from freezedesk.screening.model import SCHEMAS, DigitalAddress, Entity, EntityName, ListFormatError

from .listdata import FIXTURES, OFAC_DIR, UN_XML


def _by_id(entities: list[Entity]) -> dict[str, Entity]:
    return {e.id: e for e in entities}


@pytest.mark.parametrize("name", ["sdn_advanced.xml", "sdn_enhanced.xml"])
def test_ofac_xml_formats(name: str) -> None:
    entities = _by_id(ofac_xml.load(FIXTURES / name))
    assert set(entities) == {"ofac-306", "ofac-12057", "ofac-15036", "ofac-29703"}
    bank = entities["ofac-306"]
    assert (bank.schema, bank.programmes) == ("organisation", ("CUBA",))
    assert EntityName("NATIONAL BANK OF CUBA", "strong") in bank.aliases
    assert EntityName("BNC", "weak") in bank.aliases  # low-quality a.k.a.

    naqdi = entities["ofac-12057"]
    assert naqdi.name == "NAQDI, Mohammad Reza" and naqdi.schema == "person"
    assert naqdi.birth_dates == ("1951", "1952", "1953", "1961-04")
    assert naqdi.nationalities == ("IR",)
    assert naqdi.programmes == ("SDGT", "NPWMD", "IRGC")
    assert EntityName("Mohammad Reza NAQDI", "strong") in naqdi.aliases
    assert [n.script for n in naqdi.aliases if n.script] == ["arabic"]

    vessel = entities["ofac-15036"]
    assert vessel.schema == "vessel" and vessel.nationalities == ("IR",)
    assert {("imo", "9187629"), ("mmsi", "572469210"), ("call_sign", "T2EU4")} == set(vessel.identifiers)
    assert EntityName("ALPHA", "weak") in vessel.aliases  # F.K.A.

    andreyev = entities["ofac-29703"]
    assert andreyev.birth_dates == ("1985-03-03",) and andreyev.nationalities == ("RU",)
    assert andreyev.identifiers == (("passport", "4005504207"),)
    assert EntityName("АНДРЕЕВ Антон Николаевич", "strong", "cyrillic") in andreyev.aliases
    assert andreyev.addresses == (
        DigitalAddress("XBT", "1Fz29BQp82pE3vXXcsZoMNQ3KSHfMzfMe3"),
        DigitalAddress("ETH", "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"),
        DigitalAddress("LTC", "LWnbjLYUfqeokfbWM4FcU7uk2FP2DSxuWS"),
    )


def test_ofac_xml_agrees_with_the_csv_on_shared_facts() -> None:
    csv_entities = _by_id(ofac_csv.load(OFAC_DIR))
    for entity in ofac_xml.load(FIXTURES / "sdn_advanced.xml"):
        listed = csv_entities[entity.id]
        assert (entity.name, entity.schema) == (listed.name, listed.schema)
        assert set(entity.addresses) <= set(listed.addresses)
        assert set(entity.nationalities) <= set(listed.nationalities)


def test_eu_file() -> None:
    entities = _by_id(eu.load(FIXTURES / "eu_fsf.xml"))
    saddam = entities["eu-13"]
    assert (saddam.name, saddam.schema, saddam.programmes) == ("Saddam Hussein Al-Tikriti", "person", ("IRQ",))
    assert saddam.birth_dates == ("1937-04-28",) and saddam.nationalities == ("IQ",)
    assert EntityName("صدام حسين التكريتي", "strong", "arabic") in saddam.aliases
    sidorov = entities["eu-900001"]
    assert sidorov.birth_dates == ("1965",)  # year only
    assert EntityName("Vanya Sidorov", "weak") in sidorov.aliases  # strong="false"
    assert EntityName("Иван Петрович СИДОРОВ", "strong", "cyrillic") in sidorov.aliases
    assert sidorov.identifiers == (("passport", "721234567"), ("tax_id", "770123456789"))
    company = entities["eu-900002"]
    assert company.schema == "organisation" and company.nationalities == ()
    assert company.identifiers == (("registration", "1027700132195"),)


def test_uk_file() -> None:
    entities = _by_id(uk.load(FIXTURES / "uk_sanctions_list.xml"))
    person = entities["uk-RUS9001"]
    assert (person.name, person.schema, person.programmes) == ("Pyotr Ivanovich KUZNETSOV", "person", ("Russia",))
    assert person.birth_dates == ("1964-05-12", "1965")  # "00/00/1965": the year only
    assert person.nationalities == ("RU",) and person.identifiers == (("passport", "710123456"),)
    assert EntityName("Petr KUZNETSOV", "strong") in person.aliases
    assert EntityName("PETYA", "weak") in person.aliases  # Low quality
    assert EntityName("Пётр Иванович КУЗНЕЦОВ", "strong", "cyrillic") in person.aliases
    assert entities["uk-CYB9002"].schema == "organisation"
    ship = entities["uk-RUS9003"]
    assert (ship.schema, ship.identifiers, ship.nationalities) == ("vessel", (("imo", "9123456"),), ("GA",))


def test_ftm_file_attaches_wallets_programmes_and_documents() -> None:
    entities = _by_id(ftm.load(FIXTURES / "ftm_entities.jsonl"))
    assert set(entities) == {"ftm-fixture-person-1", "ftm-fixture-company-1", "ftm-fixture-person-2",
                             "ftm-fixture-vessel-1"}  # the non-target owner and the address are skipped
    ivan = entities["ftm-fixture-person-1"]
    assert ivan.addresses == (DigitalAddress("ETH", "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"),)
    assert ivan.programmes == ("EU-UKR",) and ivan.nationalities == ("RU",)
    assert EntityName("Vanya", "weak") in ivan.aliases
    assert EntityName("Иван Петрович Сидоров", "strong", "cyrillic") in ivan.aliases
    taro = entities["ftm-fixture-person-2"]
    assert taro.name == "Taro YAMADA" and taro.identifiers == (("passport", "TZ1234567"),)
    assert {n.script for n in taro.aliases} == {"han", "hiragana"}
    company = entities["ftm-fixture-company-1"]
    assert company.nationalities == ("KP",) and company.addresses[0].currency == "XBT"
    assert EntityName("Example Trading Co", "weak") in company.aliases  # previousName
    vessel = entities["ftm-fixture-vessel-1"]
    assert vessel.identifiers == (("imo", "9123456"), ("mmsi", "626123456")) and vessel.nationalities == ("GA",)
    renamed = ftm.load(FIXTURES / "ftm_entities.jsonl", prefix="os")
    assert {e.id.split("-")[0] for e in renamed} == {"os"} and {e.source for e in renamed} == {"os"}


def test_ftm_bad_json_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "schema": "Person", "properties": {"name": ["A B"]}}\n{"id": "b", \n',
                   encoding="utf-8")
    with pytest.raises(ListFormatError) as err:
        ftm.load(bad)
    assert (err.value.file, err.value.line) == (str(bad), 2)


@pytest.mark.parametrize(("spec", "source", "count"), [
    (f"ofac-xml:{FIXTURES / 'sdn_enhanced.xml'}", "ofac", 4),
    (f"eu-xml:{FIXTURES / 'eu_fsf.xml'}", "eu", 3),
    (f"uk-xml:{FIXTURES / 'uk_sanctions_list.xml'}", "uk", 3),
    (f"ftm:{FIXTURES / 'ftm_entities.jsonl'}", "ftm", 4),
    (f"ftm@opensanctions:{FIXTURES / 'ftm_entities.jsonl'}", "opensanctions", 4),
])
def test_load_source(spec: str, source: str, count: int) -> None:
    name, entities = load_source(spec)
    assert name == source and len(entities) == count
    assert all(e.id.startswith(f"{source}-") for e in entities)


def test_load_snapshot_of_the_shared_lists() -> None:
    snapshot = load_snapshot([f"ofac-csv:{OFAC_DIR}", f"un-xml:{UN_XML}"])
    assert snapshot.sources == ("ofac", "un") and len(snapshot.entities) == 8976 + 1003


def test_unknown_kind_and_bad_specs_name_the_spec(tmp_path: Path) -> None:
    with pytest.raises(ListFormatError, match=r"^opensanctions:x\.json: unknown list kind 'opensanctions'"):
        load_source("opensanctions:x.json")
    with pytest.raises(ListFormatError, match="KIND:PATH"):
        load_source("consolidated.xml")
    with pytest.raises(ListFormatError, match="file not found"):
        load_source(f"un-xml:{tmp_path / 'missing.xml'}")
    with pytest.raises(ListFormatError, match="at least one"):
        load_snapshot([])


@pytest.mark.parametrize("name", ["sdn_advanced.xml", "sdn_enhanced.xml", "eu_fsf.xml", "uk_sanctions_list.xml"])
def test_truncated_xml_fixtures_fail_with_a_line(name: str, tmp_path: Path) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    cut = tmp_path / name
    cut.write_text(text[: int(len(text) * 0.6)], encoding="utf-8")
    loader = {"sdn_advanced.xml": ofac_xml.load, "sdn_enhanced.xml": ofac_xml.load, "eu_fsf.xml": eu.load,
              "uk_sanctions_list.xml": uk.load}[name]
    with pytest.raises(ListFormatError) as err:
        loader(cut)
    assert err.value.file == str(cut) and err.value.line is not None and err.value.line > 1


def test_empty_files_fail(tmp_path: Path) -> None:
    for loader, text in ((ofac_xml.load, "<Sanctions><DistinctParties/></Sanctions>"),
                         (eu.load, '<export xmlns="http://eu.europa.ec/fpi/fsd/export"/>'),
                         (uk.load, "<Designations/>"), (ftm.load, "\n")):
        empty = tmp_path / "empty"
        empty.write_text(text, encoding="utf-8")
        with pytest.raises(ListFormatError, match="no entities found"):
            loader(empty)


ALL_SPECS = [f"ofac-csv:{OFAC_DIR}", f"un-xml:{UN_XML}", f"ofac-xml:{FIXTURES / 'sdn_advanced.xml'}",
             f"ofac-xml:{FIXTURES / 'sdn_enhanced.xml'}", f"eu-xml:{FIXTURES / 'eu_fsf.xml'}",
             f"uk-xml:{FIXTURES / 'uk_sanctions_list.xml'}", f"ftm:{FIXTURES / 'ftm_entities.jsonl'}"]


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_loader_keeps_the_model_invariants(spec: str) -> None:
    """What the matcher relies on, whatever the source."""
    source, entities = load_source(spec)
    assert len({e.id for e in entities}) == len(entities)
    iso = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
    for e in entities:
        assert e.source == source and e.id.startswith(f"{source}-") and e.schema in SCHEMAS
        assert e.name and e.name == e.name.strip() and "  " not in e.name
        assert all(a.strength in ("strong", "weak") and a.text and a.text != e.name for a in e.aliases)
        assert len({(a.text, a.script) for a in e.aliases}) == len(e.aliases)
        assert all(iso.match(d) for d in e.birth_dates), e.birth_dates
        assert all(len(n) == 2 and n.isupper() for n in e.nationalities), e.nationalities
        assert all(kind and value and value == value.strip() for kind, value in e.identifiers)
        assert all(a.currency.isupper() and a.address and " " not in a.address for a in e.addresses)
