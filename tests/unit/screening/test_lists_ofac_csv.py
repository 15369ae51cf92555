"""OFAC legacy CSV set: the shared sample files, parsed in full."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from freezedesk.screening.lists import ofac_csv
from freezedesk.screening.model import DigitalAddress, Entity, EntityName, ListFormatError

from .listdata import OFAC_DIR


@pytest.fixture(scope="module")
def entities() -> dict[str, Entity]:
    return {e.id: e for e in ofac_csv.load(OFAC_DIR)}


def _raw_remarks() -> dict[str, str]:
    """Remarks straight from the files, joined with their continuation, without the loader."""
    with (OFAC_DIR / "sdn.csv").open(encoding="utf-8", newline="") as fh:
        remarks = {row[0]: row[11] for row in csv.reader(fh) if len(row) == 12}
    with (OFAC_DIR / "sdn_comments.csv").open(encoding="utf-8", newline="") as fh:
        for num, more in csv.reader(fh):
            remarks[num] = remarks.get(num, "").replace("-0-", "").rstrip() + more
    return remarks


def test_counts_by_schema(entities: dict[str, Entity]) -> None:
    assert len(entities) == 8976
    assert Counter(e.schema for e in entities.values()) == {
        "person": 4620, "organisation": 3673, "vessel": 406, "aircraft": 277}
    assert all(e.source == "ofac" and e.id == f"ofac-{int(e.id[5:])}" for e in entities.values())


def test_organisation_with_strong_and_weak_aliases(entities: dict[str, Entity]) -> None:
    bank = entities["ofac-306"]
    assert (bank.name, bank.schema, bank.programmes) == ("BANCO NACIONAL DE CUBA", "organisation", ("CUBA",))
    assert EntityName("NATIONAL BANK OF CUBA", "strong") in bank.aliases  # alt.csv aka
    assert EntityName("BNC", "weak") in bank.aliases  # quoted a.k.a. in the remarks: OFAC's weak AKA


def test_person_with_birth_date_nationality_identifiers_and_natural_order_alias(entities: dict[str, Entity]) -> None:
    person = entities["ofac-29703"]
    assert person.name == "ANDREYEV, Anton Nikolaeyvich"
    assert EntityName("Anton Nikolaeyvich ANDREYEV", "strong") in person.aliases
    assert person.birth_dates == ("1985-03-03",)
    assert person.nationalities == ("RU",)
    assert ("passport", "4005504207") in person.identifiers
    assert person.programmes == ("CYBER2", "ELECTION-EO13848")


def test_every_form_of_birth_date(entities: dict[str, Entity]) -> None:
    # "DOB 1951 to 1953; alt. DOB 1960 to 1962; alt. DOB Apr 1961; alt. DOB 1953"
    assert entities["ofac-12057"].birth_dates == ("1951", "1952", "1953", "1960", "1961", "1962", "1961-04")
    assert entities["ofac-12057"].programmes[:3] == ("SDGT", "NPWMD", "IRGC")
    assert entities["ofac-7782"].birth_dates == ("1951",)  # "DOB circa 1951"


def test_vessel_keeps_imo_mmsi_call_sign_flag_and_weak_fka(entities: dict[str, Entity]) -> None:
    vessel = entities["ofac-15036"]
    assert vessel.schema == "vessel" and vessel.name == "ARTAVIL"
    assert {("imo", "9187629"), ("mmsi", "572469210"), ("call_sign", "T2EU4")} <= set(vessel.identifiers)
    assert vessel.nationalities == ("IR",)  # flag state
    assert EntityName("ALPHA", "weak") in vessel.aliases


def test_aircraft_and_dash_zero_dash_is_empty(entities: dict[str, Entity]) -> None:
    plane = entities["ofac-15431"]
    assert plane.schema == "aircraft" and plane.name == "EP-GOM"
    assert ("aircraft_msn", "1023409321") in plane.identifiers
    plain = entities["ofac-36"]  # every optional column is "-0- "
    assert (plain.remarks, plain.identifiers, plain.aliases[0].text) == (None, (), "AERO-CARIBBEAN")
    assert not any("-0-" in n.text for e in entities.values() for n in e.names())
    assert not any("-0-" in v for e in entities.values() for _, v in e.identifiers)


def test_remarks_continue_in_sdn_comments(entities: dict[str, Entity]) -> None:
    # sdn.csv stops at "…Digital Currency Addres"; sdn_comments.csv goes on "s - ETH 0x8576…".
    andreyev = entities["ofac-29703"]
    assert DigitalAddress("ETH", "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c") in andreyev.addresses
    assert DigitalAddress("BSV", "12sjrrhoFEsedNRhtgwvvRqjFTh8fZTDX9") in andreyev.addresses
    # An address cut in two ("…XBT 1Gq" + "ChmWq…") is whole again.
    assert DigitalAddress("XBT", "1GqChmWqGtsaLrGbHfgdrV5Nkvahtjjuxr") in entities["ofac-30518"].addresses
    # A weak alias cut in two ("'snowsjo" + "hn'").
    assert EntityName("snowsjohn", "weak") in entities["ofac-28263"].aliases
    assert entities["ofac-12300"].remarks is not None and entities["ofac-12300"].remarks.endswith("R D I S.A.")


def test_every_digital_currency_address_is_captured(entities: dict[str, Entity]) -> None:
    pattern = re.compile(r"Digital Currency Address - ([A-Z0-9]+) ([^;\s]+?)\.?(?=;|\s|$)")
    expected = {(f"ofac-{num}", code, addr) for num, text in _raw_remarks().items()
                for code, addr in pattern.findall(text)}
    got = {(e.id, a.currency, a.address) for e in entities.values() for a in e.addresses}
    assert len(expected) == 97
    assert got == expected
    codes = {c for _, c, _ in got}
    assert {"XBT", "ETH", "XMR", "LTC", "ZEC", "DASH", "BTG", "ETC", "BSV", "BCH", "XVG"} <= codes


def test_bad_ent_num_names_file_and_line(tmp_path: Path) -> None:
    lines = (OFAC_DIR / "sdn.csv").read_text(encoding="utf-8").splitlines()[:5]
    lines[3] = "X12" + lines[3][lines[3].index(","):]
    (tmp_path / "sdn.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ListFormatError) as err:
        ofac_csv.load(tmp_path)
    assert err.value.file.endswith("sdn.csv") and err.value.line == 4
    assert "sdn.csv:4" in str(err.value) and "X12" in str(err.value)


def test_wrong_column_count_and_bad_alt_row(tmp_path: Path) -> None:
    (tmp_path / "sdn.csv").write_text('36,"AEROCARIBBEAN AIRLINES",-0- ,"CUBA"\n', encoding="utf-8")
    with pytest.raises(ListFormatError, match=r"sdn\.csv:1: expected 12 fields, found 4"):
        ofac_csv.load(tmp_path)
    good = (OFAC_DIR / "sdn.csv").read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "sdn.csv").write_text("\n".join(good) + "\n", encoding="utf-8")
    (tmp_path / "alt.csv").write_text('36,12,"aka","AERO-CARIBBEAN",-0- \n,13,"aka","X",-0- \n', encoding="utf-8")
    with pytest.raises(ListFormatError) as err:
        ofac_csv.load(tmp_path)
    assert err.value.file.endswith("alt.csv") and err.value.line == 2


def test_empty_file_and_missing_file_fail(tmp_path: Path) -> None:
    with pytest.raises(ListFormatError, match="file not found"):
        ofac_csv.load(tmp_path)
    (tmp_path / "sdn.csv").write_text("\x1a", encoding="utf-8")  # only the DOS end-of-file byte
    with pytest.raises(ListFormatError, match=r"sdn\.csv: no entities found"):
        ofac_csv.load(tmp_path)


def test_windows_1252_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "sdn.csv").write_bytes('99,"PE\xd1A, Jos\xe9","individual","SDNTK",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
                                       '"DOB 01 Jan 1970; nationality Mexico."\r\n'.encode("cp1252"))
    [person] = ofac_csv.load(tmp_path / "sdn.csv")
    assert (person.name, person.nationalities, person.birth_dates) == ("PEÑA, José", ("MX",), ("1970-01-01",))
    assert EntityName("José PEÑA", "strong") in person.aliases
