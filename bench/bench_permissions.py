"""In-process permission checks: throughput and per-call latency of PermissionView.check().

A view of 1,000,000 accounts of which 1 % (10,000) are restricted. The view is a deny-list:
unrestricted accounts are simply absent from it. Queries draw account ids from the whole
1 M space; two mixes are measured: 1 % of queries hit a restricted account (realistic) and 50 %.

Run from the project root:  .venv/bin/python bench/bench_permissions.py
Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from freezedesk.domain import inquiry
from freezedesk.domain.ids import new_id
from freezedesk.domain.scopes import PRESETS, Cause, Scope
from freezedesk.services.permissions import _BIT, PermissionView, ViewEntry

ACCOUNTS = 1_000_000
RESTRICTED = 10_000
TARGET_P99_US = 20.0
TARGET_RATE = 200_000

# (cause, reason code, scopes, close_only, weight) - roughly the shipped catalogue's defaults
PROFILES: list[tuple[Cause, str, frozenset[Scope], bool, int]] = [
    (Cause.KYC, "KYC_INCOMPLETE", frozenset({Scope.WITHDRAW, Scope.TRADE, Scope.P2P, Scope.TRANSFER}), False, 25),
    (Cause.KYC, "KYC_PERIODIC_REVIEW", PRESETS["withdrawal_hold"], False, 10),
    (Cause.SUSPICIOUS_ACTIVITY, "SUS_HIGH_VOLUME", PRESETS["withdrawal_hold"], False, 20),
    (Cause.SUSPICIOUS_ACTIVITY, "SUS_PASS_THROUGH",
     PRESETS["withdrawal_hold"] | {Scope.TRANSFER, Scope.P2P}, False, 5),
    (Cause.SECURITY, "SEC_LEAKED_PASSWORD", frozenset({Scope.LOGIN, Scope.WITHDRAW, Scope.API}), False, 15),
    (Cause.SECURITY, "SEC_COOLDOWN", PRESETS["withdrawal_hold"], False, 10),
    (Cause.REGULATORY, "REG_SANCTIONS_MATCH", PRESETS["full_freeze"], False, 5),
    (Cause.POLICY, "POL_PROHIBITED_JURISDICTION", PRESETS["close_only"], True, 10),
]

# what the exchange core asks, and how often
ACTIONS: list[tuple[Scope, int]] = [
    (Scope.WITHDRAW, 30), (Scope.TRADE, 35), (Scope.LOGIN, 20), (Scope.DEPOSIT, 5),
    (Scope.API, 5), (Scope.TRANSFER, 3), (Scope.P2P, 2),
]
REDUCE_ONLY_SHARE = 0.25  # of trade checks


def account_id(n: int) -> str:
    return f"acct-{n:07d}"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_entries(rng: random.Random, restricted: list[int], now: float) -> dict[str, tuple[ViewEntry, ...]]:
    """One to three restrictions per restricted account; ~10 % with an expiry (half already past)."""
    weights = [p[4] for p in PROFILES]
    entries: dict[str, tuple[ViewEntry, ...]] = {}
    for n in restricted:
        k = rng.choices((1, 2, 3), weights=(80, 16, 4))[0]
        items = []
        for cause, code, scopes, close_only, _w in rng.choices(PROFILES, weights=weights, k=k):
            bits = 0
            for s in scopes:
                bits |= _BIT[s]
            r = rng.random()
            if code == "SEC_COOLDOWN" or r < 0.05:
                expires = now + rng.uniform(60, 86_400)  # in the future: still blocks
            elif r < 0.10:
                expires = now - rng.uniform(1, 3_600)  # past, not yet swept: must not block
            else:
                expires = math.inf
            items.append(ViewEntry(
                bits=bits, close_only=close_only, expires=expires,
                public={"restriction_id": new_id("rst"), "reason_code": code, "cause": cause.value,
                        "inquiry_number": inquiry.generate()},
            ))
        entries[account_id(n)] = tuple(items)
    return entries


def make_queries(rng: random.Random, count: int, hit_share: float, restricted: list[int],
                 restricted_set: set[int]) -> list[tuple[str, Scope, bool]]:
    """Fresh string objects per query (their hash is not cached, as for ids parsed from a request)."""
    actions = [a for a, _ in ACTIONS]
    weights = [w for _, w in ACTIONS]
    picked = rng.choices(actions, weights=weights, k=count)
    out = []
    for action in picked:
        if rng.random() < hit_share:
            n = rng.choice(restricted)
        else:
            n = rng.randrange(ACCOUNTS)
            while n in restricted_set:
                n = rng.randrange(ACCOUNTS)
        reduce_only = action is Scope.TRADE and rng.random() < REDUCE_ONLY_SHARE
        out.append((account_id(n), action, reduce_only))
    return out


def throughput(check: Callable[[str, Scope, bool], Any], queries: list[tuple[str, Scope, bool]]) -> float:
    t0 = time.perf_counter()
    for a, act, ro in queries:
        check(a, act, ro)
    return len(queries) / (time.perf_counter() - t0)


def timed_samples(fn: Callable[[str, Scope, bool], Any], queries: list[tuple[str, Scope, bool]]) -> list[int]:
    clock = time.perf_counter_ns
    out = [0] * len(queries)
    for i, (a, act, ro) in enumerate(queries):
        t0 = clock()
        fn(a, act, ro)
        out[i] = clock() - t0
    return out


def pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def _noop(a: str, b: Scope, c: bool) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1_000_000, help="checks for the throughput run")
    parser.add_argument("--samples", type=int, default=300_000, help="individually timed checks")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rng = random.Random(args.seed)
    now = time.time()
    restricted = rng.sample(range(ACCOUNTS), RESTRICTED)
    restricted_set = set(restricted)

    # -- memory of the view: RSS delta for the real build, tracemalloc on an identical rebuild --
    gc.collect()
    rss0 = rss_bytes()
    entries = build_entries(random.Random(args.seed + 1), restricted, now)
    gc.collect()
    rss_delta = rss_bytes() - rss0
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    twin = build_entries(random.Random(args.seed + 1), restricted, now)
    traced = tracemalloc.get_traced_memory()[0] - t0
    tracemalloc.stop()
    del twin

    view = PermissionView(store=None)  # type: ignore[arg-type]  # load()/check() never touch the store
    view.load(entries)
    n_restrictions = sum(len(v) for v in entries.values())
    n_close_only = sum(e.close_only for v in entries.values() for e in v)
    n_expired = sum(e.expires <= now for v in entries.values() for e in v)
    n_expiring = sum(now < e.expires < math.inf for v in entries.values() for e in v)

    print(f"PermissionView: {ACCOUNTS:,} accounts, {view.restricted_accounts():,} restricted "
          f"({n_restrictions:,} restrictions: {n_close_only:,} close-only, {n_expiring:,} expiring later, "
          f"{n_expired:,} already past expiry)")
    print(f"memory of the view (10k restricted accounts): tracemalloc {traced / 2**20:.2f} MiB "
          f"({traced / RESTRICTED:.0f} B/account), RSS delta {rss_delta / 2**20:.2f} MiB")
    cpu = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"python {sys.version.split()[0]}, pinned to CPU {cpu}, GC enabled (as in the server)")
    print()

    # -- timer overhead: an empty timed call with the same arguments ---------------------------
    probe = make_queries(rng, args.samples, 0.01, restricted, restricted_set)
    timed_samples(_noop, probe[:20_000])
    overhead = sorted(timed_samples(_noop, probe))
    overhead_ns = overhead[len(overhead) // 2]
    throughput(_noop, probe)
    loop_rate = throughput(_noop, probe)

    rows = []
    for label, hit in (("1 % restricted", 0.01), ("50 % restricted", 0.50)):
        queries = make_queries(rng, args.checks, hit, restricted, restricted_set)
        denied = sum(not view.check(a, act, ro)["allowed"] for a, act, ro in queries[:100_000])
        queries = make_queries(rng, args.checks, hit, restricted, restricted_set)  # fresh strings again
        gc.collect()
        rate = throughput(view.check, queries)
        samples_q = make_queries(rng, args.samples, hit, restricted, restricted_set)
        timed_samples(view.check, make_queries(rng, 20_000, hit, restricted, restricted_set))  # warm
        gc.collect()
        raw = timed_samples(view.check, samples_q)
        lat = sorted(max(0, s - overhead_ns) for s in raw)
        rows.append((label, denied / 1000.0, rate, pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999),
                     lat[-1] / 1000.0))
        del queries, samples_q, raw, lat

    print(f"throughput over {args.checks:,} checks of view.check(account_id, action, reduce_only) on one core; "
          f"latency over {args.samples:,} individually timed checks")
    print(f"latency = perf_counter_ns() around each call minus the median of an empty timed call "
          f"({overhead_ns} ns, measured the same way on a no-op function); the same loop calling the no-op runs "
          f"{loop_rate / 1e6:.1f} M iterations/s")
    print()
    header = f"{'query mix':<17}{'denied':>8}{'checks/s':>12}{'p50 µs':>9}{'p99 µs':>9}{'p99.9 µs':>10}{'max µs':>9}"
    print(header)
    print("-" * len(header))
    for label, denied, rate, p50, p99, p999, mx in rows:
        print(f"{label:<17}{denied:>7.1f}%{rate:>12,.0f}{p50:>9.2f}{p99:>9.2f}{p999:>10.2f}{mx:>9.1f}")
    print("-" * len(header))
    print(f"{'target':<17}{'':>8}{'≥ ' + format(TARGET_RATE, ','):>12}{'':>9}{'≤ ' + format(TARGET_P99_US, '.0f'):>9}")
    print()
    for label, _d, rate, _p50, p99, _p999, _mx in rows:
        ok_rate = "meets" if rate >= TARGET_RATE else "MISSES"
        ok_p99 = "meets" if p99 <= TARGET_P99_US else "MISSES"
        print(f"{label}: {ok_rate} the throughput target, {ok_p99} the p99 target")


if __name__ == "__main__":
    main()
