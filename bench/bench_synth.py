"""Synthetic data generation speed: events per second, written to a temporary file.

Run from the project root:  .venv/bin/python bench/bench_synth.py [--accounts 20000 --days 30]
Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from freezedesk.monitoring.synth import ListedAddress, SynthConfig, generate

LISTED = (ListedAddress("BTC", "BTC", "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, labels = Path(tmp) / "events.jsonl", Path(tmp) / "labels.csv"
        started = time.perf_counter()
        result = generate(SynthConfig(args.accounts, args.days, args.seed, listed=LISTED), out, labels)
        elapsed = time.perf_counter() - started
        size = out.stat().st_size
    print(f"synth: {result.events:,} events, {args.accounts:,} accounts x {args.days} days in {elapsed:.1f} s "
          f"= {result.events / elapsed:,.0f} events/s ({size / result.events:.0f} bytes/event, "
          f"{size / elapsed / 1e6:.1f} MB/s)")


if __name__ == "__main__":
    main()
