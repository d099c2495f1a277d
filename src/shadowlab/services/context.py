"""What every service call needs to know about the caller, and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class RequestContext:
    region: str
    account: str


def now_ms() -> float:
    """Epoch seconds at millisecond precision, the precision of AWS timestamps on the wire.

    Storing finer times would make a timestamp read back from a response (rounded to the
    millisecond) compare unequal to the stored one, and list filters would straddle it.
    """
    return time.time_ns() // 1_000_000 / 1000


@dataclass
class Clock:
    """Epoch seconds; a field so the reconciler and services agree on one source of time."""

    now: Callable[[], float] = field(default=now_ms)


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def to_epoch(value: datetime) -> float:
    return value.timestamp()
