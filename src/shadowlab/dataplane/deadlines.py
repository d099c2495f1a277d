"""Coarse timeouts for many short-lived exchanges, with one loop timer for all of them.

`loop.call_later` + `cancel` per request costs ~1.9 us on uvloop (a libuv timer handle is
allocated, started, stopped and closed each time) and almost every one is cancelled. Here an
exchange goes into the bucket of the tick its deadline falls in (a dict insert) and leaves it
when it settles (a dict delete); one timer per tick expires whole buckets. Deadlines fire up to
one tick late, which is nothing against timeouts of seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deadlines(Generic[T]):
    def __init__(self, on_expired: Callable[[T], None], tick_s: float = 0.02) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_expired = on_expired
        self._tick_s = tick_s
        self._buckets: dict[int, dict[T, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._done_through = 0  # every bucket up to this tick has been expired

    def add(self, item: T, timeout_s: float) -> int:
        """Track `item`; returns the key `discard` needs."""
        tick = int((self._loop.time() + timeout_s) / self._tick_s) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            if self._timer is None:
                self._done_through = int(self._loop.time() / self._tick_s) - 1
                self._timer = self._loop.call_later(self._tick_s, self._expire)
        bucket[item] = None
        return tick

    def discard(self, item: T, key: int) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(item, None)  # an emptied bucket is dropped when its tick comes

    def _expire(self) -> None:
        self._timer = None
        now = int(self._loop.time() / self._tick_s)
        buckets = self._buckets
        for tick in range(self._done_through + 1, now + 1):
            bucket = buckets.pop(tick, None)
            if bucket:
                for item in list(bucket):
                    self._on_expired(item)
        self._done_through = now
        if buckets:
            self._timer = self._loop.call_later(self._tick_s, self._expire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())
