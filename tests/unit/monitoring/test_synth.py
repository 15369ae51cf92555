"""The synthetic dataset: deterministic, valid, sorted, and every typology and decoy present."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from freezedesk.monitoring.events import parse_batch
from freezedesk.monitoring.synth import (
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
