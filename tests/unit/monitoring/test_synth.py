"""The synthetic dataset: deterministic, valid, sorted, every typology and decoy present — and
fit for measuring the standard pack: dormant accounts really are dormant, decoys of every kind stay
quiet, and every planted typology is found by its own rule."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from freezedesk.monitoring.events import Deposit, Event, EventType, Withdrawal, parse_batch
from freezedesk.monitoring.rules import Alert, backtest, load_pack
from freezedesk.monitoring.rules.scoring import ALSO_RIGHT, load_labels, score, true_labels
from freezedesk.monitoring.synth import (
    DORMANT_DAYS,
    NORMAL,
    Decoy,
    ListedAddress,
    SynthConfig,
    Typology,
    addresses_path,
    generate,
)

LISTED = (ListedAddress("BTC", "BTC", "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"),
          ListedAddress("ETH", "ETH", "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c"))


def run(tmp_path: Path, name: str, seed: int = 7, accounts: int = 300, days: int = 30) -> tuple[Path, Path]:
    out, labels = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.csv"
    generate(SynthConfig(accounts=accounts, days=days, seed=seed, listed=LISTED), out, labels)
    return out, labels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return run(tmp_path_factory.mktemp("synth"), "a")


def test_same_seed_same_bytes(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    out, labels = run(tmp_path, "b")
    assert out.read_bytes() == dataset[0].read_bytes()
    assert labels.read_bytes() == dataset[1].read_bytes()
    other, _ = run(tmp_path, "c", seed=8)
    assert other.read_bytes() != out.read_bytes()


def test_every_event_is_valid_unique_and_sorted(dataset: tuple[Path, Path]) -> None:
    with dataset[0].open(encoding="utf-8") as lines:
        events = parse_batch(lines, str(dataset[0]))  # raises on any bad or repeated event
    assert len(events) > 10_000
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))
    assert {e.type.value for e in events} == {"deposit", "withdrawal", "trade", "transfer_in", "transfer_out",
                                              "login", "security_change", "account_opened", "kyc_update"}


def test_every_typology_and_decoy_is_labelled(dataset: tuple[Path, Path]) -> None:
    with dataset[1].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 and len({r["account_id"] for r in rows}) == 300
    labels = {r["label"] for r in rows}
    assert labels == {NORMAL} | {t.value for t in Typology} | {d.label for d in Decoy}
    listed = addresses_path(dataset[1]).read_text().split("\n")
    assert {a.address for a in LISTED} <= set(listed)


def test_planted_listed_addresses_appear_in_the_events(dataset: tuple[Path, Path]) -> None:
    text = dataset[0].read_text()
    assert any(a.address in text for a in LISTED)


def test_too_short_a_run_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 14"):
        SynthConfig(accounts=10, days=3, seed=1, listed=LISTED)


# -- fit for measuring the standard pack -----------------------------------------------------------

START = date(2025, 1, 1)  # SynthConfig's default first day
MONEY = {EventType.DEPOSIT, EventType.WITHDRAWAL, EventType.TRADE, EventType.TRANSFER_IN, EventType.TRANSFER_OUT}


def events_of(events_path: Path, accounts: set[str]) -> dict[str, list[Event]]:
    """The given accounts' events, in file order (the file is sorted by time)."""
    keys = tuple(f'"account_id":"{a}"' for a in accounts)
    with events_path.open(encoding="utf-8") as lines:
        events = parse_batch((line for line in lines if any(k in line for k in keys)), str(events_path))
    out: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        out[event.account_id].append(event)
    return out


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Long enough for six months of dormancy; enough accounts for several decoys of each kind."""
    return run(tmp_path_factory.mktemp("synth-long"), "long", seed=7, accounts=400, days=200)


@pytest.fixture(scope="module")
def long_run_alerts(long_run: tuple[Path, Path]) -> list[Alert]:
    return list(backtest(long_run[0], load_pack(None), [a.address for a in LISTED], engine="batch"))


def test_a_dormant_account_has_a_funded_history_then_six_months_of_silence(long_run: tuple[Path, Path]) -> None:
    labels = load_labels(long_run[1])
    dormant = {a for a, label in labels.items() if label == Typology.DORMANT_REACTIVATION}
    assert len(dormant) == 4
    events = events_of(long_run[0], dormant)
    for account in dormant:
        mine = events[account]
        reactivation = next(i for i, (a, b) in enumerate(itertools.pairwise(mine), 1)
                            if b.ts - a.ts >= timedelta(days=DORMANT_DAYS))
        history, after = mine[:reactivation], mine[reactivation:]
        # An established account with money in its history: the funds it will withdraw arrive on
        # the run's first day ...
        assert history[0].ts.date() == START
        assert any(isinstance(e, Deposit) and e.value_usd >= 5000 for e in history)
        # ... then at least DORMANT_DAYS without any event at all, then a login and a large
        # withdrawal before any other money movement.
        assert after[0].ts - history[-1].ts >= timedelta(days=DORMANT_DAYS)
        assert after[0].type == EventType.LOGIN
        first_money = next(e for e in after if e.type in MONEY)
        assert isinstance(first_money, Withdrawal) and first_money.value_usd >= 5000


def test_in_a_short_run_a_dormant_account_is_silent_until_its_reactivation(dataset: tuple[Path, Path]) -> None:
    labels = load_labels(dataset[1])
    dormant = {a for a, label in labels.items() if label == Typology.DORMANT_REACTIVATION}
    events = events_of(dataset[0], dormant)
    assert len(events) == len(dormant) == 3
    for account in dormant:
        mine = events[account]
        days = sorted({e.ts.date() for e in mine})
        # Money on day 0, then nothing until the reactivation on the run's second-to-last day (day 28
        # of 30; ordinary activity may resume on the last day).
        assert days[0] == START and any(isinstance(e, Deposit) for e in mine if e.ts.date() == START)
        assert days[1] == START + timedelta(days=28)
        reactivation = [e for e in mine if e.ts.date() == days[1]]
        assert reactivation[0].type == EventType.LOGIN
        assert isinstance(next(e for e in reactivation if e.type in MONEY), Withdrawal)


def test_every_decoy_kind_is_present_and_stays_quiet(long_run: tuple[Path, Path],
                                                     long_run_alerts: list[Alert]) -> None:
    labels = load_labels(long_run[1])
    alerted = {a.account_id for a in long_run_alerts}
    for decoy in Decoy:
        accounts = {a for a, label in labels.items() if label == decoy.label}
        assert accounts, decoy
        assert not accounts & alerted, f"{decoy.label}: {sorted(accounts & alerted)}"


def test_every_planted_typology_is_found_by_its_own_rule(long_run: tuple[Path, Path],
                                                         long_run_alerts: list[Alert]) -> None:
    labels = load_labels(long_run[1])
    scores = {s.rule_id: s for s in score(load_pack(None), long_run_alerts, labels)}
    assert {label for rule in scores for label in true_labels(rule)} == {t.value for t in Typology}
    assert {rule: s.recall for rule, s in scores.items()} == dict.fromkeys(scores, 1.0)


def test_other_alerts_are_rare_and_only_the_documented_overlap(long_run: tuple[Path, Path],
                                                               long_run_alerts: list[Alert]) -> None:
    labels = load_labels(long_run[1])
    normal = {a for a, label in labels.items() if label == NORMAL}
    alerted_normal = {a.account_id for a in long_run_alerts} & normal
    assert len(alerted_normal) <= len(normal) // 100  # at most 1% of ordinary customers
    for alert in long_run_alerts:
        label = labels[alert.account_id]
        if label in {t.value for t in Typology}:
            assert label in true_labels(alert.rule_id) | ALSO_RIGHT.get(alert.rule_id, frozenset()), alert
