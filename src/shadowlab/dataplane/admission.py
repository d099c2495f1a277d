"""How many copies a shadow variant may have in flight: a limit that follows its capacity.

A fixed large limit (the old default was 1024) lets a shadow slower than its offered load build a
queue in front of its worker; once that queue holds more than the copy timeout, every copy times
out while the worker still runs each one (measured: a 3x slower shadow decayed from 38% to 0% of
copies answered within seconds). A copy that cannot be admitted is better shed at once.

The limit is TCP Vegas applied to concurrency, as Netflix's concurrency-limits `VegasLimit` does
(no well-kept Python package implements it; this is ~100 lines and tested on its own):

- `rtt_noload` is the smallest round trip seen lately (what a copy costs with no queue);
- `queue = limit * (1 - rtt_noload / rtt)` estimates how many copies wait at the shadow;
- below `alpha` the limit grows, above `beta` it shrinks; in between it holds;
- a timeout or a copy the shadow refused for overload ("drop") shrinks it multiplicatively;
- while fewer than half the allowed copies are in flight the shadow is not the bottleneck,
  so nothing is learned (the limit would otherwise climb without evidence);
- now and then (every `probe_every * limit` samples, at most every `probe_interval_s`)
  `rtt_noload` is measured again, as Envoy's adaptive-concurrency filter does: admission drops
  to one copy until nothing is in flight, and the round trip of the next copy, which waited
  behind nothing, is the new baseline. Re-measuring from a copy that waited in a queue would
  take the queue for the baseline and let the limit ratchet up (the simulation showed it).

For a worker that runs one prediction at a time, `rtt ~ limit * service`, so `queue ~ limit - 1`
and the limit settles a few copies above the number of worker processes: the worker never idles
and copies wait at most a few service times. A shadow whose latency does not grow with
concurrency (an I/O-bound server) lets the limit climb to the cap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["AdaptiveLimit"]

_NOT_PROBING, _DRAINING, _MEASURING = 0, 1, 2


class AdaptiveLimit:
    """The in-flight limit of one shadow variant. Called on the event loop only."""

    __slots__ = (
        "_clock",
        "_estimate",
        "_last_probe",
        "_probe_at",
        "_probing",
        "_refilling",
        "_samples",
        "backoff",
        "limit",
        "max_limit",
        "min_limit",
        "probe_every",
        "probe_interval_s",
        "rtt_noload",
    )

    def __init__(
        self,
        *,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 1024,
        probe_every: int = 30,
        probe_interval_s: float = 10.0,
        backoff: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit ({min_limit}) <= max_limit ({max_limit})")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.probe_every = probe_every
        self.probe_interval_s = probe_interval_s
        self.backoff = backoff
        self._clock = clock
        self._estimate = float(min(max(initial, min_limit), max_limit))
        self.limit = int(self._estimate)  # what admission compares against
        self.rtt_noload = 0.0  # 0: nothing measured yet
        self._samples = 0
        self._probe_at = self._next_probe()
        self._last_probe = clock()
        self._probing = _NOT_PROBING
        self._refilling = 0  # samples after a probe during which the limit does not grow

    def on_sample(self, rtt_s: float, in_flight: int, dropped: bool) -> None:
        """One copy finished after `rtt_s`; `in_flight` counts it; `dropped`: timeout or shed."""
        self._samples += 1
        if self._probing != _NOT_PROBING:
            self._probe(rtt_s, in_flight)
            return
        estimate = self._estimate
        if dropped:
            self._set(estimate * self.backoff)
            return
        if rtt_s <= 0.0:
            return
        if self._samples >= self._probe_at:
            now = self._clock()
            if now - self._last_probe >= self.probe_interval_s:
                self._last_probe = now
                self._probing = _DRAINING
                self.limit = 1
                self._probe(rtt_s, in_flight)
                return
            self._samples = 0
        if self.rtt_noload == 0.0 or rtt_s < self.rtt_noload:
            self.rtt_noload = rtt_s
            return
        if in_flight * 2 < estimate:
            return  # not using what it has: no evidence either way
        log_limit = max(1.0, math.log10(estimate))
        queue = estimate * (1.0 - self.rtt_noload / rtt_s)
        if queue > 6.0 * log_limit:
            self._set(estimate - log_limit)
        elif self._refilling > 0:
            # Just after a probe the queue was drained on purpose: short round trips now say
            # nothing about spare capacity until the copies admitted since have come back.
            self._refilling -= 1
        elif queue <= log_limit:
            self._set(estimate + 6.0 * log_limit)  # far from any queue: grow fast
        elif queue < 3.0 * log_limit:
            self._set(estimate + log_limit)

    def _probe(self, rtt_s: float, in_flight: int) -> None:
        if self._probing == _DRAINING:
            if in_flight <= 1:  # this was the last copy out: the next one waits behind nothing
                self._probing = _MEASURING
            return
        self.rtt_noload = rtt_s
        self._probing = _NOT_PROBING
        self._samples = 0
        self.limit = int(self._estimate)
        self._refilling = self.limit
        self._probe_at = self._next_probe()

    def _set(self, estimate: float) -> None:
        estimate = min(max(estimate, float(self.min_limit)), float(self.max_limit))
        self._estimate = estimate
        self.limit = int(estimate)

    def _next_probe(self) -> int:
        return self.probe_every * max(self.limit, 1)

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, rtt_noload={self.rtt_noload * 1000:.2f}ms)"
