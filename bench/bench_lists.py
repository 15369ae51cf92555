"""List loading and address lookup: how long the shared OFAC CSV set and UN XML take to load,
and what one exact address lookup costs.

Lookups mix listed addresses (as listed, and with case changed where the chain ignores case)
with unlisted ones of every shape, 9 misses to 1 hit, as an exchange sees them.

Run from the project root:  .venv/bin/python bench/bench_lists.py [--shared ../shared/data/sanctions]
Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from freezedesk.screening.addresses import CASE_INSENSITIVE, AddressIndex, normalize_address
from freezedesk.screening.lists import load_source

ROOT = Path(__file__).resolve().parents[1]


def _time(fn: object, repeat: int) -> list[float]:
    assert callable(fn)
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data" / "sanctions")
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    specs = [f"ofac-csv:{args.shared / 'ofac'}", f"un-xml:{args.shared / 'un' / 'consolidated.xml'}"]

    entities = []
    total = 0.0
    for spec in specs:
        runs = _time(lambda spec=spec: load_source(spec), 5)
        _source, loaded = load_source(spec)
        entities.extend(loaded)
        total += statistics.median(runs)
        print(f"load {spec.split(':')[0]:9} {len(loaded):6d} entities  median {statistics.median(runs) * 1000:7.1f} ms"
              f"  (min {min(runs) * 1000:.1f}, max {max(runs) * 1000:.1f})")
    print(f"load both                          median {total * 1000:7.1f} ms")

    start = time.perf_counter()
    index = AddressIndex.build(entities)
    print(f"address index: {len(index)} keys, built in {(time.perf_counter() - start) * 1000:.1f} ms")

    rng = random.Random(5)
    listed = [(a.address, a.currency) for e in entities for a in e.addresses]
    hits = []
    for address, currency in listed:
        hits.append(address)
        if normalize_address(address, currency).chain_family in CASE_INSENSITIVE:
            hits.append("".join(c.swapcase() if rng.random() < 0.5 else c for c in address))
    misses = ["0x" + rng.randbytes(20).hex(), "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
              "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "TNiq9AXBp9EjUqhDhrwrfvAA8U3GUQZH81"]
    queries = [rng.choice(hits) if rng.random() < 0.1 else rng.choice(misses) for _ in range(args.lookups)]

    for name, fn in (("find", index.find), ("lookup", lambda q: index.lookup(q))):
        samples = []
        for q in queries[: min(len(queries), 50_000)]:
            t0 = time.perf_counter_ns()
            fn(q)
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
        start = time.perf_counter()
        for q in queries:
            fn(q)
        per_call = (time.perf_counter() - start) / len(queries) * 1e6
        p50, p99 = samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000
        print(f"address {name:6}: {per_call:.2f} µs/call in a loop; single-call p50 {p50:.2f} µs, p99 {p99:.2f} µs")

    # lookup() adds the query's validation, cached; uncached it costs what its chain's checksum costs.
    uncached = normalize_address.__wrapped__
    for family, sample in (("evm lower", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
                           ("evm EIP-55", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
                           ("base58check", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
                           ("bech32", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")):
        count = 20_000
        start = time.perf_counter()
        for _ in range(count):
            uncached(sample, None)
        print(f"normalize (uncached) {family:11}: {(time.perf_counter() - start) / count * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
