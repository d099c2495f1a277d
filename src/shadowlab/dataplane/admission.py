"""How many copies a shadow variant may have in flight: a limit that follows its capacity.

A fixed large limit (the old default was 1024) lets a shadow slower than its offered load build a
queue in front of its worker; once that queue holds more than the copy timeout, every copy times
out while the worker still runs each one (measured: a 3x slower shadow decayed from 38% to 0% of
copies answered within seconds). A copy that cannot be admitted is better shed at once.

The limit follows the queueing a copy meets, in the spirit of TCP Vegas and of Envoy's
adaptive-concurrency gradient (no well-kept Python package implements either; this is ~150
lines and tested on its own, in simulated time):

- `rtt_noload` is the smallest round trip seen lately (what a copy costs with no queue);
- the *budget* is how long a copy may take before the shadow counts as queueing:
  `max(tolerance * rtt_noload, rtt_noload + slack_s)`. Both terms matter: the ratio catches a
  queue in front of a slow model (a 20 ms model whose copies take 60 ms has two waiting), the
  absolute slack ignores delays too small to matter, above all the data plane's own event-loop
  delay when it is busy, which a pure ratio would mistake for a queue at a fast shadow and shed
  its copies for nothing (measured: a 0.1 ms shadow at a saturated data plane got 25% of its
  copies under a ratio-only rule);
- a round trip over the budget shrinks the limit; one well under it grows the limit (fast while
  far under); in between it holds;
- a timeout or a copy the shadow refused for overload ("drop") shrinks it multiplicatively;
- while fewer than half the allowed copies are in flight the shadow is not the bottleneck,
  so nothing is learned (the limit would otherwise climb without evidence);
- now and then (every `probe_every * limit` samples, at most every `probe_interval_s`)
  `rtt_noload` is measured again, as Envoy's adaptive-concurrency filter does: admission drops
  to one copy until nothing is in flight, and the round trip of the next copy, which waited
  behind nothing, is the new baseline. Re-measuring from a copy that waited in a queue would
  take the queue for the baseline and let the limit ratchet up (the simulation showed it).

For a worker that runs one prediction at a time, `rtt ~ limit * service`, so the limit settles
where `limit * service` meets the budget: a copy or two waiting per worker process for a slow
model, more for a fast one, and the worker never idles. A shadow whose latency does not grow
with concurrency (an I/O-bound server) lets the limit climb to the cap.
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
        "_samples",
        "_settling",
        "backoff",
        "limit",
        "max_limit",
        "min_limit",
        "probe_every",
        "probe_interval_s",
        "rtt_noload",
        "slack_s",
        "tolerance",
    )

    def __init__(
        self,
        *,
        initial: int = 8,
        min_limit: int = 1,
        max_limit: int = 1024,
        probe_every: int = 30,
        probe_interval_s: float = 10.0,
        backoff: float = 0.9,
        tolerance: float = 2.5,
        slack_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit ({min_limit}) <= max_limit ({max_limit})")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.probe_every = probe_every
        self.probe_interval_s = probe_interval_s
        self.backoff = backoff
        self.tolerance = tolerance
        self.slack_s = slack_s
        self._clock = clock
        self._estimate = float(min(max(initial, min_limit), max_limit))
        self.limit = int(self._estimate)  # what admission compares against
        self.rtt_noload = 0.0  # 0: nothing measured yet
        self._samples = 0
        self._probe_at = self._next_probe()
        self._last_probe = clock()
        self._probing = _NOT_PROBING
        self._settling = 0  # samples to let pass before the limit is judged again

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
        if self._settling > 0:
            # The copies still out were admitted under the previous limit: their round trips
            # say what that limit did, not this one. Judge again once they are back, so the
            # limit changes about once per round trip (as TCP's window does) and does not
            # swing on stale evidence. The same after a probe, which drained the queue.
            self._settling -= 1
            return
        log_limit = max(1.0, math.log10(estimate))
        noload = self.rtt_noload
        budget = max(self.tolerance * noload, noload + self.slack_s)
        if rtt_s > budget:
            # Shrink in proportion to how far over the budget the round trip was (at most by
            # half per round trip): a queue far too long drains in a few round trips.
            self._set(min(estimate - log_limit, estimate * max(0.5, budget / rtt_s)))
        elif rtt_s <= noload + 0.2 * (budget - noload):
            # Far from any queue: grow fast, at most doubling per round trip.
            self._set(estimate + min(6.0 * log_limit, estimate))
        elif rtt_s <= noload + 0.5 * (budget - noload):
            self._set(estimate + log_limit)
        else:
            return
        self._settling = in_flight - 1

    def _probe(self, rtt_s: float, in_flight: int) -> None:
        if self._probing == _DRAINING:
            if in_flight <= 1:  # this was the last copy out: the next one waits behind nothing
                self._probing = _MEASURING
            return
        self.rtt_noload = rtt_s
        self._probing = _NOT_PROBING
        self._samples = 0
        self.limit = int(self._estimate)
        self._settling = self.limit
        self._probe_at = self._next_probe()

    def _set(self, estimate: float) -> None:
        estimate = min(max(estimate, float(self.min_limit)), float(self.max_limit))
        self._estimate = estimate
        self.limit = int(estimate)

    def _next_probe(self) -> int:
        return self.probe_every * max(self.limit, 1)

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, rtt_noload={self.rtt_noload * 1000:.2f}ms)"
