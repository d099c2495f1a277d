"""The capture writer's bounds and periods, in one place (see `writer` for what each buys)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriterOptions:
    flush_interval: float = 1.0  # fsync period: the crash loss bound
    poll_interval: float = 0.02  # how often the spool thread drains the queue
    max_file_bytes: int = 64 << 20
    max_file_age: float = 60.0
    max_queue_records: int = 100_000
    max_queue_bytes: int = 64 << 20  # request + response bytes waiting to be encoded
    max_spool_bytes: int = 1 << 30  # local disk used while the store lags or is down
    batch_records: int = 4096  # encoded per drain before the spool thread looks around again
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    stop_timeout: float = 30.0
