"""Name matching on small hand-made lists; one test builds the index over the shared OFAC + UN files."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from freezedesk.screening.matcher import (
    DEFAULT_THRESHOLD,
    WEAK_ALIAS_FACTOR,
    NameIndex,
    Query,
    birth_date_adjustment,
)
from freezedesk.screening.model import Entity, EntityName, ListSnapshot

ENTITIES = [
    Entity("ofac-6365", "ofac", "person", "BIN LADIN, Usama",
           aliases=(EntityName("BIN LADIN, Usama bin Muhammad bin Awad"), EntityName("BIN LADEN, Osama")),
           birth_dates=("1957-03-10", "1957"), nationalities=("SA",)),
    Entity("ofac-13072", "ofac", "person", "SHINODA, Kenichi", aliases=(EntityName("TSUKASA, Shinobu"),),
           birth_dates=("1942-01-25",), nationalities=("JP",)),
    Entity("ofac-21171", "ofac", "person", "PRIGOZHIN, Yevgeniy Viktorovich",
           aliases=(EntityName("PRIGOZHIN, Evgeny"),), birth_dates=("1961-06-01",), nationalities=("RU",)),
    Entity("ofac-306", "ofac", "organisation", "BANCO NACIONAL DE CUBA", aliases=(EntityName("BNC", "strong"),)),
    Entity("ofac-36", "ofac", "organisation", "AEROCARIBBEAN AIRLINES"),
    Entity("ofac-173", "ofac", "organisation", "ANGLO-CARIBBEAN CO., LTD."),
    Entity("ofac-9001", "ofac", "person", "SMITH, John Michael", birth_dates=("1970-01-31",), nationalities=("GB",)),
    Entity("ofac-9002", "ofac", "vessel", "SEA STAR"),
    Entity("ofac-20157", "ofac", "person", "KIM, Jong Un", birth_dates=("1984-01-08",), nationalities=("KP",)),
    Entity("un-1", "un", "person", "JANE DOE", aliases=(EntityName("THE NIGHT PHANTOM", "weak"),)),
    Entity("un-2", "un", "person", "SADDAM HUSSEIN AL-TIKRITI",
           aliases=(EntityName("صدام حسين التكريتي", "strong", "arabic"),)),
    Entity("ofac-8240", "ofac", "person", "NOORZAI, Haji Bashir"),
    Entity("ofac-11609", "ofac", "organisation", "ASCOTEC JAPAN K.K."),
]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> NameIndex:
    return NameIndex.build(ListSnapshot.of(ENTITIES, ["test"]))


def top(index: NameIndex, name: str, **kw: str) -> str | None:
    matches = index.search(Query(name, **kw))
    return matches[0].entity_id if matches else None


def score(index: NameIndex, name: str, entity_id: str, **kw: str) -> float:
    matches = index.search_entities(Query(name, **kw), [entity_id], threshold=0.0)
    return matches[0].score if matches else 0.0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Usama BIN LADIN", "ofac-6365"),  # exact alias, natural order
        ("bin ladin usama", "ofac-6365"),  # reordered, lower case
        ("Osama bin Laden", "ofac-6365"),  # romanisation variant
        ("Usama bin Ldain", "ofac-6365"),  # transposition
        ("Usama bin Muhamad Ladin", "ofac-6365"),  # typo + dropped middle names
        ("Mr. Usama Bin-Ladin", "ofac-6365"),  # title, punctuation
        ("Sheikh Bashir Noorzai", "ofac-8240"),  # title on the list side and in the query
        ("Yevgeny Prigozhin", "ofac-21171"),
        ("Evgenii Viktorovich PRIGOZHIN", "ofac-21171"),
        ("Ваnсо Nасional de Cuba", "ofac-306"),  # Cyrillic homoglyphs
        ("Banco\u200b Nacio\u200dnal de Cu\u00adba", "ofac-306"),  # zero-width and soft hyphen
        ("Banco Nacional de Cuba S.A.", "ofac-306"),  # legal form added
        ("Aero Caribbean Airlines", "ofac-36"),  # split differently
        ("Anglo Caribbean Company Limited", "ofac-173"),  # legal form spelled out
        ("Ascotec Japan Kabushiki Kaisha", "ofac-11609"),
        ("John M. Smith", "ofac-9001"),  # initial
        ("J. Michael SMITH", "ofac-9001"),
        ("Kim Jong-un", "ofac-20157"),
        ("SADDAM HUSAYN TIKRITI", "un-2"),
    ],
)
def test_variants_of_listed_names_match(index: NameIndex, query: str, expected: str) -> None:
    assert top(index, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("篠田建市", "ofac-13072"),  # kanji → shinoda kenichi (second reading of 建市)
        ("しのだ けんいち", "ofac-13072"),  # hiragana
        ("シノダ ケンイチ様", "ofac-13072"),  # katakana with an honorific
        ("オサマ・ビン・ラディン", "ofac-6365"),  # katakana rendering of a foreign name
        ("أسامة بن لادن", "ofac-6365"),  # Arabic script against Latin-only list names
        ("Евгений Пригожин", "ofac-21171"),  # Cyrillic
        ("김정은", "ofac-20157"),  # Hangul
        ("صدام حسين التكريتي", "un-2"),  # the list's own original-script name
    ],
)
def test_original_scripts_match_romanised_list_names(index: NameIndex, query: str, expected: str) -> None:
    assert top(index, query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "John Williams", "Mary Smith", "Jane Smith", "Tanaka Hiroshi", "佐藤健", "山田太郎", "やまだ はなこ",
        "Vladimir Petrov", "Иван Петров", "Kim Min-jun", "김민준", "Maria Garcia Lopez", "Wang Wei", "王伟",
        "Ahmed Hassan", "Sea Breeze Trading", "Usama Hamdan",
    ],
)  # fmt: skip
def test_names_that_are_not_listed_do_not_match(index: NameIndex, query: str) -> None:
    assert index.search(Query(query)) == []


def test_surname_alone_with_another_given_name_is_not_a_hit(index: NameIndex) -> None:
    assert score(index, "Mary Smith", "ofac-9001") < DEFAULT_THRESHOLD
    assert score(index, "Michael Smith", "ofac-9001") < score(index, "John Michael Smith", "ofac-9001")


def test_birth_date_raises_and_lowers_the_score(index: NameIndex) -> None:
    base = score(index, "Jon Michael Smith", "ofac-9001")
    same = score(index, "Jon Michael Smith", "ofac-9001", birth_date="1970-01-31")
    same_year = score(index, "Jon Michael Smith", "ofac-9001", birth_date="1970")
    other = score(index, "Jon Michael Smith", "ofac-9001", birth_date="1985-06-02")
    assert other < base < same_year < same
    assert birth_date_adjustment("1970-01-31", ["1970-01-31"]) > birth_date_adjustment("1970", ["1970-01-31"]) > 0
    assert birth_date_adjustment("1971-05-01", ["1970"]) < 0  # a year off: mild
    assert birth_date_adjustment("1990", ["1970"]) < birth_date_adjustment("1971", ["1970"])
    assert birth_date_adjustment(None, ["1970"]) == birth_date_adjustment("1970", []) == 0


def test_nationality_raises_and_lowers_the_score(index: NameIndex) -> None:
    base = score(index, "Jon Michael Smith", "ofac-9001")
    assert score(index, "Jon Michael Smith", "ofac-9001", country="GB") > base
    assert score(index, "Jon Michael Smith", "ofac-9001", country="FR") < base


def test_schema_conflict_lowers_the_score(index: NameIndex) -> None:
    assert top(index, "Sea Star", schema="vessel") == "ofac-9002"
    assert top(index, "Sea Star", schema="person") is None
    assert score(index, "Sea Star", "ofac-9002", schema="person") < score(index, "Sea Star", "ofac-9002")


def test_a_weak_alias_alone_supports_but_never_gives_a_top_score(index: NameIndex) -> None:
    match = index.search(Query("The Night Phantom"))[0]
    assert match.entity_id == "un-1"
    assert match.score <= WEAK_ALIAS_FACTOR < 0.9
    assert match.explanation["list_name"]["strength"] == "weak"
    assert match.explanation["features"]["alias_strength"] < 0


def test_explanation_says_what_matched_and_why(index: NameIndex) -> None:
    match = index.search(Query("Mr. Yousef Osama Bin-Ladn", birth_date="1957", country="SA"))[0]
    explanation = match.explanation
    json.dumps(explanation)  # stored with the case as JSON
    assert match.entity_id == "ofac-6365"
    assert explanation["query"]["name"] == "Mr. Yousef Osama Bin-Ladn"
    assert "removed:mr" in explanation["query"]["steps"] and "osama→usama" in explanation["query"]["steps"]
    assert explanation["list_name"]["text"] in match.matched_name
    hows = {m["list"]: m["how"] for m in explanation["token_matches"]}
    assert hows["usama"] == "exact" and hows["ladin"] == "typo"
    assert explanation["unmatched_query_tokens"] == ["yusuf"]
    features = explanation["features"]
    assert set(features) == {"name", "alias_strength", "birth_date", "nationality", "schema"}
    assert features["birth_date"] > 0 and features["nationality"] > 0
    assert explanation["score"] == match.score


def test_explanation_records_transliteration(index: NameIndex) -> None:
    explanation = index.search(Query("أسامة بن لادن"))[0].explanation
    assert "arabic→skeleton" in explanation["query"]["steps"]
    assert {m["how"] for m in explanation["token_matches"]} <= {"skeleton", "exact"}
    japanese = index.search(Query("篠田建市"))[0].explanation
    assert japanese["query"]["reading"] == "ja" and "japanese→romaji" in japanese["query"]["steps"]


def test_search_entities_scores_only_the_given_entities(index: NameIndex) -> None:
    assert index.search_entities(Query("Usama bin Ladin"), ["ofac-306", "nope"]) == []
    assert [m.entity_id for m in index.search_entities(Query("Usama bin Ladin"), ["ofac-6365"])] == ["ofac-6365"]


def test_limit_and_threshold(index: NameIndex) -> None:
    assert len(index.search(Query("Caribbean"), threshold=0.0, limit=1)) == 1
    assert all(m.score >= 0.9 for m in index.search(Query("Usama bin Ladin"), threshold=0.9))


def test_searches_from_many_threads_agree(index: NameIndex) -> None:
    queries = ["Usama bin Ladin", "篠田建市", "Евгений Пригожин", "김정은", "Banco Nacional de Cuba", "John Smith"] * 20
    expected = [[m.entity_id for m in index.search(Query(q))] for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda q: [m.entity_id for m in index.search(Query(q))], queries))
    assert got == expected


SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "sanctions"


def test_full_ofac_and_un_index() -> None:
    from freezedesk.screening.lists import load_snapshot

    snapshot = load_snapshot([f"ofac-csv:{SHARED / 'ofac'}", f"un-xml:{SHARED / 'un' / 'consolidated.xml'}"])
    index = NameIndex.build(snapshot)
    assert len(index) == len(snapshot.entities)
    assert "ofac-6365" in [m.entity_id for m in index.search(Query("Osama bin Laden"))]
    assert top(index, "Евгений Пригожин") == "ofac-21171"
    assert top(index, "篠田建市") == "ofac-13072"
    assert index.search(Query("Emily Johnson")) == []
    # "de", "banco", "nacional" are frequent on the lists, so the one distinctive word decides
    assert all(m.entity_id != "ofac-306" for m in index.search(Query("Banco Nacional de Chile")))
