"""The capture writer's bounds and periods, in one place (see `writer` for what each buys)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriterOptions:
    flush_interval: float = 1.0  # fsync period: the crash loss bound
    # How often the spool thread drains the queue (at most flush_interval). Each wake-up starts
    # cold (caches, the GIL hand-over), so rarer wake-ups cost less CPU per record
    # (docs/benchmarks.md, capture); what arrived meanwhile is taken in chunks (batch_records).
    poll_interval: float = 0.1
    max_file_bytes: int = 64 << 20
    max_file_age: float = 60.0
    max_queue_records: int = 100_000
    max_queue_bytes: int = 64 << 20  # request + response bytes waiting to be encoded
    max_spool_bytes: int = 1 << 30  # local disk used while the store lags or is down
    # Encoded per drain; after a full chunk the spool thread pauses for chunk_pause, which
    # hands the GIL back to the event loop: a chunk is a stall of the loop (~2-3 ms here).
    batch_records: int = 256
    chunk_pause: float = 0.001
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    stop_timeout: float = 30.0
