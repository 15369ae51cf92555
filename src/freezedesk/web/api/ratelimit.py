"""Per-client token buckets for state-changing requests.

Writes are rare and deliberate in FreezeDesk; a client sending hundreds per second is broken or
hostile. Reads (the permission check) are not limited here: the exchange core is expected to
call them at high rate, and they cost no database work.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        t = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:  # bounded memory under a flood of ids
                    self._buckets.clear()
                bucket = self._buckets[client] = _Bucket(float(self.burst), t)
            bucket.tokens = min(self.burst, bucket.tokens + (t - bucket.updated) * self.rate)
            bucket.updated = t
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate
