"""Name-screening quality and speed: ours vs nomenklatura logic-v2 vs a plain rapidfuzz baseline.

    .venv/bin/python bench/screening_eval.py [--per-class 60] [--lv2-queries 0] [--seed N]

The labelled set comes from ``bench/screening_dataset.py`` (see its docstring for the classes).
For every query, each system's decision is its **top-1 entity at or above its threshold**:

* positive query: TP when that entity is one of the labels (the source entity or another entity
  listing the very same name), FP + FN when it is another entity, FN when nothing is returned;
* negative query: FP when anything is returned.

Systems:

* **ours** — :class:`freezedesk.screening.matcher.NameIndex` over the full OFAC + UN snapshot, at
  :data:`~freezedesk.screening.matcher.DEFAULT_THRESHOLD`.
* **logic-v2** — nomenklatura's ``logic-v2`` (``get_algorithm("logic-v2")``) comparing
  FollowTheMoney entities. It is a pairwise scorer with no index, and scoring one query against
  all ~10 000 entities takes seconds, so it is run on a candidate set per query: the labelled
  entities ∪ rapidfuzz's top 10 ∪ our top 10 (at any score). That is *generous* to logic-v2 — it
  never sees the other ~9 990 entities that could produce a false positive. Its per-pair time is
  measured on those calls (list-side caches warm, as they would be in production) and extrapolated
  to a full pairwise query (× number of entities). Threshold 0.7 (yente's default).
* **rapidfuzz** — ``process.extractOne`` with ``fuzz.token_sort_ratio`` and rapidfuzz's default
  processor over every list name, no transliteration; threshold 0.85.

The table also shows each system's best F1 over all thresholds (from the top-1 scores) so no
system is judged only at a threshold that happens not to suit it.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from freezedesk.screening.matcher import DEFAULT_THRESHOLD, NameIndex, Query
from freezedesk.screening.model import Entity, ListSnapshot
from screening_dataset import SEED, Case, build_cases

#: The official samples in ../shared beside the checkout.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sanctions"
SOURCES = [f"ofac-csv:{_SHARED / 'ofac'}", f"un-xml:{_SHARED / 'un' / 'consolidated.xml'}"]
LV2_THRESHOLD = 0.7
RF_THRESHOLD = 0.85
NEGATIVE_CLASSES = ("negative", "near_miss")


def rss_mb() -> float:
    """Current resident set size (Linux), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Outcome:
    """Top-1 (entity id, score) per case for one system; ``None`` = nothing at any score."""

    name: str
    threshold: float
    top: list[tuple[str, float] | None] = field(default_factory=list)


def confusion(cases: Sequence[Case], outcome: Outcome, threshold: float) -> dict[str, list[int]]:
    """Per class: [TP, FP, FN, n]."""
    table: dict[str, list[int]] = {}
    for case, top in zip(cases, outcome.top, strict=True):
        row = table.setdefault(case.cls, [0, 0, 0, 0])
        row[3] += 1
        hit = top if top is not None and top[1] >= threshold else None
        if not case.labels:
            if hit is not None:
                row[1] += 1
            continue
        if hit is None:
            row[2] += 1
        elif hit[0] in case.labels:
            row[0] += 1
        else:
            row[1] += 1
            row[2] += 1
    return table


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def overall(table: dict[str, list[int]]) -> tuple[float, float, float]:
    tp = sum(r[0] for r in table.values())
    fp = sum(r[1] for r in table.values())
    fn = sum(r[2] for r in table.values())
    return prf(tp, fp, fn)


def best_f1(cases: Sequence[Case], outcome: Outcome) -> tuple[float, float]:
    best = (0.0, 0.0)
    for t in [x / 100 for x in range(50, 100)]:
        f = overall(confusion(cases, outcome, t))[2]
        if f > best[0]:
            best = (f, t)
    return best


# --------------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------------


def run_ours(cases: Sequence[Case], reference: ListSnapshot) -> tuple[Outcome, NameIndex, dict[str, float]]:
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    index = NameIndex.build(reference)
    build = time.perf_counter() - started
    after = rss_mb()
    # warm-up: loads the Japanese dictionaries once, as a long-running service would
    index.search(Query("山田太郎"))
    times = []
    for case in cases:  # timed pass, as the service runs: default threshold, up to 10 matches
        t0 = time.perf_counter()
        index.search(Query(case.query, schema=case.schema))
        times.append(time.perf_counter() - t0)
    outcome = Outcome("ours", DEFAULT_THRESHOLD)
    for case in cases:
        res = index.search(Query(case.query, schema=case.schema), threshold=0.5, limit=1)
        outcome.top.append((res[0].entity_id, res[0].score) if res else None)
    times.sort()
    speed = {
        "build_s": build, "rss_before_mb": before, "rss_after_mb": after, "rss_now_mb": rss_mb(),
        "p50_ms": 1e3 * statistics.median(times), "p99_ms": 1e3 * times[int(0.99 * (len(times) - 1))],
        "max_ms": 1e3 * times[-1], "queries": len(times), "names": len(index.names), "entities": len(index),
    }  # fmt: skip
    return outcome, index, speed


def run_rapidfuzz(cases: Sequence[Case], reference: ListSnapshot) -> tuple[Outcome, list[list[str]], float]:
    from rapidfuzz import fuzz, process, utils

    names: list[str] = []
    owners: list[str] = []
    for e in reference.entities.values():
        for n in e.names():
            names.append(utils.default_process(n.text))
            owners.append(e.id)
    outcome = Outcome("rapidfuzz", RF_THRESHOLD)
    top10: list[list[str]] = []
    started = time.perf_counter()
    for case in cases:
        res = process.extract(utils.default_process(case.query), names, scorer=fuzz.token_sort_ratio,
                              processor=None, limit=30)
        ids: list[str] = []
        for _, _score, i in res:
            if owners[i] not in ids:
                ids.append(owners[i])
        top10.append(ids[:10])
        outcome.top.append((owners[res[0][2]], res[0][1] / 100) if res else None)
    per_query = (time.perf_counter() - started) / max(len(cases), 1)
    return outcome, top10, per_query


def _ftm_entity(entity: Entity) -> object:
    from followthemoney import model

    schema = {"person": "Person", "organisation": "Organization", "vessel": "Vessel", "aircraft": "Airplane"}
    proxy = model.make_entity(schema[entity.schema])
    proxy.id = entity.id
    for n in entity.names():
        proxy.add("weakAlias" if n.strength == "weak" else "name", n.text)
    if entity.schema == "person":
        proxy.add("birthDate", list(entity.birth_dates))
        proxy.add("nationality", [c.lower() for c in entity.nationalities])
    else:
        proxy.add("country", [c.lower() for c in entity.nationalities])
    return proxy


def run_logic_v2(cases: Sequence[Case], reference: ListSnapshot, candidates: list[list[str]],
                 limit: int) -> tuple[Outcome, list[int], dict[str, float]]:
    """logic-v2 on the candidate sets; only the first ``limit`` cases of each class (0 = all)."""
    from followthemoney import model
    from nomenklatura.matching import get_algorithm

    algorithm = get_algorithm("logic-v2")
    assert algorithm is not None
    config = algorithm.default_config()
    proxies: dict[str, object] = {}

    def proxy(eid: str) -> object:
        if eid not in proxies:
            proxies[eid] = _ftm_entity(reference.entities[eid])
        return proxies[eid]

    # warm-up: the first calls load logic-v2's reference data (several seconds); not timed below
    t0 = time.perf_counter()
    for i, name in enumerate(["Osama bin Laden", "Владимир Путин", "山田太郎", "Acme Trading LLC"]):
        warm = model.make_entity("LegalEntity")
        warm.id = f"warm{i}"
        warm.add("name", name)
        for eid in list(reference.entities)[:3]:
            algorithm.compare(warm, proxy(eid), config)  # type: ignore[arg-type]
    warmup = time.perf_counter() - t0

    outcome = Outcome("logic-v2", LV2_THRESHOLD)
    selected: list[int] = []
    per_class: dict[str, int] = {}
    pairs = 0
    spent = 0.0
    for i, case in enumerate(cases):
        per_class[case.cls] = per_class.get(case.cls, 0) + 1
        if limit and per_class[case.cls] > limit:
            outcome.top.append(None)
            continue
        selected.append(i)
        query = model.make_entity("Person" if case.schema == "person" else "LegalEntity")
        query.id = f"q{i}"
        query.add("name", case.query)
        best: tuple[str, float] | None = None
        for eid in candidates[i]:
            t0 = time.perf_counter()
            result = algorithm.compare(query, proxy(eid), config)  # type: ignore[arg-type]
            spent += time.perf_counter() - t0
            pairs += 1
            if best is None or result.score > best[1]:
                best = (eid, result.score)
        outcome.top.append(best)
    per_pair = spent / max(pairs, 1)
    return outcome, selected, {"pairs": pairs, "per_pair_ms": 1e3 * per_pair, "warmup_s": warmup,
                               "per_query_full_ms": 1e3 * per_pair * len(reference.entities)}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _cell(row: list[int] | None, negative: bool) -> str:
    if row is None:
        return f"{'-':>17}"
    if negative:
        return f"{'FP ' + str(row[1]) + '/' + str(row[3]):>17}"
    p, r, f = prf(row[0], row[1], row[2])
    return f"{p:5.2f} {r:5.2f} {f:5.2f}"


def report(cases: Sequence[Case], outcomes: list[tuple[Outcome, list[int]]]) -> None:
    classes: list[str] = []
    for c in cases:
        if c.cls not in classes:
            classes.append(c.cls)
    tables = []
    for outcome, subset in outcomes:
        sub_cases = [cases[i] for i in subset]
        sub_outcome = Outcome(outcome.name, outcome.threshold, [outcome.top[i] for i in subset])
        tables.append((outcome, sub_cases, sub_outcome, confusion(sub_cases, sub_outcome, outcome.threshold)))
    header = f"{'class':16} {'n':>4} " + " ".join(f"{o.name + ' P    R    F1':>17}" for o, *_ in tables)
    print(header)
    print("-" * len(header))
    for cls in classes:
        n = sum(1 for c in cases if c.cls == cls)
        cells = " ".join(_cell(t.get(cls), cls in NEGATIVE_CLASSES) for *_, t in tables)
        print(f"{cls:16} {n:>4} {cells}")
    print("-" * len(header))
    cells = " ".join("{:5.2f} {:5.2f} {:5.2f}".format(*overall(t)) for *_, t in tables)
    print(f"{'overall':16} {len(cases):>4} {cells}")
    for outcome, sub_cases, sub_outcome, _t in tables:
        f, t = best_f1(sub_cases, sub_outcome)
        print(f"  {outcome.name:10} at threshold {outcome.threshold:.2f} on {len(sub_cases)} queries; "
              f"best F1 over thresholds {f:.3f} at {t:.2f}")


def main(argv: Sequence[str] | None = None, load: Callable[[Sequence[str]], ListSnapshot] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--lv2-queries", type=int, default=0, help="logic-v2: at most N queries per class (0 = all)")
    parser.add_argument("--no-lv2", action="store_true", help="skip logic-v2 (quick iterations)")
    args = parser.parse_args(argv)

    if load is None:
        from freezedesk.screening.lists import load_snapshot as load
    t0 = time.perf_counter()
    snapshot = load(SOURCES)
    load_s = time.perf_counter() - t0
    cases, reference = build_cases(snapshot, args.seed, args.per_class)
    del snapshot
    print(f"lists: {len(reference.entities)} entities loaded in {load_s:.2f}s; {len(cases)} queries "
          f"({sum(1 for c in cases if c.labels)} positive), seed {args.seed}")

    ours, index, speed = run_ours(cases, reference)
    rf, rf_top, rf_per_query = run_rapidfuzz(cases, reference)
    outcomes = [(ours, list(range(len(cases)))), (rf, list(range(len(cases))))]
    lv2_speed: dict[str, float] = {}
    if not args.no_lv2:
        candidates = []
        for case, rf_ids in zip(cases, rf_top, strict=True):
            ours_ids = [m.entity_id for m in index.search(Query(case.query, schema=case.schema), threshold=0.0)]
            ids = list(dict.fromkeys([*sorted(case.labels), *rf_ids, *ours_ids]))
            candidates.append(ids)
        lv2, subset, lv2_speed = run_logic_v2(cases, reference, candidates, args.lv2_queries)
        outcomes.insert(1, (lv2, subset))
    print()
    report(cases, outcomes)
    print()
    print(f"ours      : build {speed['build_s']:.2f}s over {speed['entities']} entities / {speed['names']} names; "
          f"RSS {speed['rss_after_mb']:.0f} MiB after build (lists loaded: {speed['rss_before_mb']:.0f} MiB; "
          f"index ≈ {speed['rss_after_mb'] - speed['rss_before_mb']:.0f} MiB)")
    print(f"            per query p50 {speed['p50_ms']:.2f} ms, p99 {speed['p99_ms']:.2f} ms, max "
          f"{speed['max_ms']:.2f} ms over {speed['queries']} queries (full index, threshold {DEFAULT_THRESHOLD})")
    if lv2_speed:
        print(f"logic-v2  : {lv2_speed['pairs']:.0f} pairs, {lv2_speed['per_pair_ms']:.3f} ms per pair "
              f"(after {lv2_speed['warmup_s']:.1f}s warm-up) → ≈ {lv2_speed['per_query_full_ms']:.0f} ms per query "
              f"pairwise against all {len(reference.entities)} entities (extrapolated)")
    print(f"rapidfuzz : {1e3 * rf_per_query:.2f} ms per query (extract over all names)")
    print(f"process RSS at end: {rss_mb():.0f} MiB (includes nomenklatura); pid {os.getpid()}")


if __name__ == "__main__":
    main()
