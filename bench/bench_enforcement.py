"""Event → restriction enforced: how long from posting an event until the permission check denies.

Each round posts one deposit from a listed address for a fresh account (the ``listed_address``
rule: a full freeze) through the real ASGI app over an in-process transport (FastAPI TestClient:
middleware, auth, idempotency, the monitor, the unit of work, the after-commit view refresh — no
sockets), then asks ``GET /v1/accounts/{id}/permissions?action=withdraw`` until it says denied.
Because the monitor applies alerts before ``POST /v1/events`` returns, the first check already
denies; the figure is therefore POST latency + one check. Warm-up rounds are discarded; the store
holds every earlier round's events and restrictions, like a live system would.

Run from the project root:  .venv/bin/python bench/bench_enforcement.py [--rounds 300] [--db URL]
(``--db`` defaults to a fresh SQLite file; a PostgreSQL URL must name an empty, migratable database.)
Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from freezedesk.runtime import Runtime, Settings
from freezedesk.services.api_keys import create_key
from freezedesk.store.db import make_engine
from freezedesk.store.migrate import upgrade
from freezedesk.web.app import create_app

LISTED = "bc1qlistedaddressforbench000000000000000"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fd-bench-enf-"))
    url = args.db or f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    address_list = tmp / "listed.txt"
    address_list.write_text(f"# bench\n{LISTED}\n")
    runtime = Runtime(Settings(database_url=url, address_list_path=str(address_list), write_rate_per_second=1e6,
                               write_burst=1_000_000))
    key = create_key(runtime.store, "bench", None, None).key
    headers = {"Authorization": f"Bearer {key}"}
    base = datetime.now(UTC) - timedelta(hours=1)

    total: list[float] = []
    posted: list[float] = []
    checks_needed: list[int] = []
    with TestClient(create_app(runtime)) as client:
        for i in range(args.warmup + args.rounds):
            account = f"bench-{i}"
            event = {"event_id": f"bench-ev-{i}", "ts": (base + timedelta(milliseconds=i)).isoformat(),
                     "account_id": account, "type": "deposit", "asset": "BTC", "amount": "0.1",
                     "value_usd": "6000", "chain": "BTC", "address": LISTED}
            start = time.perf_counter()
            response = client.post("/v1/events", json={"events": [event]}, headers=headers)
            after_post = time.perf_counter()
            if response.status_code != 200 or not response.json()["alerts"]:
                raise SystemExit(f"the triggering event raised no alert: {response.text}")
            checks = 0
            while True:
                checks += 1
                check = client.get(f"/v1/accounts/{account}/permissions", params={"action": "withdraw"},
                                   headers=headers)
                if not check.json()["allowed"]:
                    break
            end = time.perf_counter()
            if i >= args.warmup:
                total.append(end - start)
                posted.append(after_post - start)
                checks_needed.append(checks)
    runtime.store.dispose()

    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"event → enforced ({backend}, in-process ASGI transport, {args.rounds} rounds after {args.warmup} warm-up)")
    for name, values in (("event → denied", total), ("POST /v1/events", posted)):
        ms = [v * 1000 for v in values]
        print(f"  {name:16s} p50 {pct(ms, 0.50):6.2f} ms   p90 {pct(ms, 0.90):6.2f} ms   "
              f"p99 {pct(ms, 0.99):6.2f} ms   max {max(ms):6.2f} ms   mean {statistics.fmean(ms):6.2f} ms")
    print(f"  checks until denied: {max(checks_needed)} at most (1 = enforced when the POST returned)")


if __name__ == "__main__":
    main()
