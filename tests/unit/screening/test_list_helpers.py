"""The shared loader helpers: partial dates, country names, scripts, identifier kinds, names."""

from __future__ import annotations

import pytest

from freezedesk.screening.lists._common import (
    date_span,
    detect_script,
    identifier_kind,
    merge_names,
    parse_date,
    parse_dates,
    reorder_person_name,
)
from freezedesk.screening.lists.countries import country_code
from freezedesk.screening.model import EntityName


@pytest.mark.parametrize(("text", "dates"), [
    ("10 Dec 1948", ["1948-12-10"]), ("Sep 1938", ["1938-09"]), ("1946", ["1946"]), ("circa 1951", ["1951"]),
    ("1951 to 1953", ["1951", "1952", "1953"]), ("01 Jan 1961 to 31 Dec 1962", ["1961", "1962"]),
    ("Mar 1962 to Feb 1963", ["1962-03", "1963-02"]), ("circa 1979-1982", ["1979", "1980", "1981", "1982"]),
    ("circa 07 Jul 1966", ["1966-07-07"]), ("1900 to 1990", ["1900", "1990"]),  # too wide to enumerate
    ("31/01/1970", ["1970-01-31"]), ("00/00/1965", ["1965"]), ("--/--/1965", ["1965"]),
    ("1970-01-31T00:00:00", ["1970-01-31"]), ("31 Feb 1970", ["1970-02"]), ("unknown", []), ("", []),
])
def test_dates(text: str, dates: list[str]) -> None:
    assert parse_dates(text) == dates


def test_date_spans() -> None:
    assert date_span("1961-04-01", "1961-04-30") == ["1961-04"]
    assert date_span("1960-02-01", "1960-02-29") == ["1960-02"]  # leap year
    assert date_span("1960-03-05", "1960-03-10") == ["1960-03-05", "1960-03-10"]
    assert date_span(None, "1970") == ["1970"]
    assert parse_date("Foo 1970") is None


@pytest.mark.parametrize(("name", "code"), [
    ("Iran", "IR"), ("Iran (Islamic Republic of)", "IR"), ("Korea, North", "KP"),
    ("Democratic People's Republic of Korea", "KP"), ("Congo, Democratic Republic of the", "CD"),
    ("Democratic Republic of the Congo", "CD"), ("Congo", "CG"), ("Burma", "MM"), ("Russia", "RU"),
    ("Russian Federation", "RU"), ("Türkiye", "TR"), ("Turkey", "TR"), ("Palestinian", "PS"),
    ("possibly Palestinian", "PS"), ("State of Palestine", "PS"),
    ("United Kingdom of Great Britain and Northern Ireland", "GB"),
    ("United States", "US"), ("Syria", "SY"), ("Syrian Arab Republic", "SY"), ("The Gambia", "GM"),
    ("Macedonia, The Former Yugoslav Republic of", "MK"), ("Kosovo", "XK"), ("Viet Nam", "VN"), ("Vietnam", "VN"),
    ("Côte d'Ivoire", "CI"), ("Cote d Ivoire", "CI"), ("Guinea-Bissau", "GW"), ("Guinea", "GN"), ("Niger", "NE"),
    ("Nigeria", "NG"), ("iq", "IQ"), ("IRN", "IR"), ("former Soviet Union", None), ("", None),
    ("na", "NA"),  # a code (FtM writes lower case); the UN's "na" (not available) is dropped earlier, by clean()
])
def test_country_codes(name: str, code: str | None) -> None:
    assert country_code(name) == code


@pytest.mark.parametrize(("text", "script"), [
    ("Иван Петров", "cyrillic"), ("صدام حسين", "arabic"), ("王小明", "han"), ("山田たろう", "hiragana"),
    ("ヤマダ タロウ", "katakana"), ("김정은", "hangul"), ("Αλέξης", "greek"), ("José ʿAbd", None), ("", None),
])
def test_scripts(text: str, script: str | None) -> None:
    assert detect_script(text) == script


@pytest.mark.parametrize(("label", "kind"), [
    ("Passport", "passport"), ("Diplomatic Passport", "passport"), ("Numéro de passeport ", "passport"),
    ("National ID No.", "national_id"), ("National Identification\n   Number", "national_id"),
    ("Cedula No.", "national_id"), ("Tax ID No.", "tax_id"), ("NIT #", "tax_id"), ("R.F.C.", "tax_id"),
    ("Vessel Registration Identification", "imo"), ("Identification Number IMO", "imo"), ("MMSI", "mmsi"),
    ("Registration Number", "registration"), ("SWIFT/BIC", "swift_bic"), ("Phone Number", "other"),
    ("Passportless", "other"),
])
def test_identifier_kinds(label: str, kind: str) -> None:
    assert identifier_kind(label) == kind


def test_names() -> None:
    assert reorder_person_name("NORIEGA, Manuel Antonio") == "Manuel Antonio NORIEGA"
    assert reorder_person_name("ANGLO-CARIBBEAN CO., LTD., X") is None
    assert reorder_person_name("SMITH,") is None
    merged = merge_names("ACME", [EntityName("acme"), EntityName("Acme Corp", "weak"), EntityName("ACME  CORP"),
                                  EntityName("-0-")])
    assert merged == (EntityName("ACME  CORP".replace("  ", " "), "strong"),)
