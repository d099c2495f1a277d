"""The adaptive in-flight limit, driven by simulated shadows in simulated time.

A small discrete-event simulation stands in for the data plane and a shadow: requests arrive at
a fixed rate, are admitted while fewer than `limit` are in flight, and are served by `workers`
processes that each run one at a time (or, for an I/O-bound shadow, all at once with a fixed
latency). No real time passes, so the properties are checked exactly and quickly; the real-time
behaviour is tested in tests/contract/test_shadow_admission.py.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from shadowlab.dataplane.admission import AdaptiveLimit


@dataclass
class Outcome:
    offered: int = 0
    admitted: int = 0
    completed: int = 0
    timeouts: int = 0
    limits: list[int] = field(default_factory=list)
    admitted_at: list[float] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    limit: AdaptiveLimit,
    clock: SimulatedClock,
    *,
    rate: float,
    service_s: float,
    workers: int = 1,
    sequential: bool = True,
    duration_s: float = 60.0,
    timeout_s: float = 2.0,
) -> Outcome:
    """Offer `rate` requests/s for `duration_s`; return what became of them."""
    out = Outcome()
    free_at = [0.0] * workers  # when each worker process is next idle
    done: list[tuple[float, float]] = []  # (completion time, arrival time)
    in_flight = 0
    step = 1.0 / rate
    now = 0.0
    while now < duration_s:
        clock.now = now
        while done and done[0][0] <= now:
            finished, arrived = heapq.heappop(done)
            rtt = finished - arrived
            timed_out = rtt > timeout_s
            if timed_out:
                out.timeouts += 1
            else:
                out.completed += 1
                out.rtts.append(rtt)
            limit.on_sample(min(rtt, timeout_s), in_flight, dropped=timed_out)
            in_flight -= 1
        out.offered += 1
        if in_flight < limit.limit:
            in_flight += 1
            out.admitted += 1
            out.admitted_at.append(now)
            if sequential:
                k = min(range(workers), key=free_at.__getitem__)
                start = max(now, free_at[k])
                free_at[k] = start + service_s
                heapq.heappush(done, (start + service_s, now))
            else:
                heapq.heappush(done, (now + service_s, now))
        out.limits.append(limit.limit)
        now += step
    return out


def share(admitted_at: list[float], start: float, end: float, rate: float) -> float:
    return sum(1 for t in admitted_at if start <= t < end) / ((end - start) * rate)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_shadow_slower_than_its_load_gets_its_capacity_steadily(workers: int) -> None:
    # Production sends 100 req/s; the shadow serves 10 per second per process.
    service_s, rate = 0.1, 100.0
    capacity = workers / service_s
    clock = SimulatedClock()
    limit = AdaptiveLimit(clock=clock)
    out = simulate(limit, clock, rate=rate, service_s=service_s, workers=workers)

    assert out.completed >= 0.95 * capacity * 60
    assert out.timeouts == 0
    # The limit settles a few copies above the number of processes: no long queue builds.
    settled = out.limits[len(out.limits) // 2 :]
    probing = [value for value in settled if value == 1]  # re-measuring the baseline
    assert len(probing) < 0.05 * len(settled)
    steady = [value for value in settled if value != 1]
    assert workers + 1 <= min(steady) and max(steady) <= workers + 12, set(steady)
    # After the first seconds (the initial limit is a guess) no copy waits long.
    assert max(out.rtts[len(out.rtts) // 10 :]) < 15 * service_s
    # The admitted share does not decay: last third within 10% of the first (after warm-up).
    first = share(out.admitted_at, 5, 20, rate)
    last = share(out.admitted_at, 45, 60, rate)
    assert abs(last - first) <= 0.1 * first, (first, last)


def test_a_shadow_whose_latency_does_not_grow_gets_every_copy() -> None:
    # An I/O-bound shadow: 20 ms whatever the concurrency; 2000 req/s needs ~40 in flight.
    clock = SimulatedClock()
    limit = AdaptiveLimit(initial=5, max_limit=1024, clock=clock)
    out = simulate(limit, clock, rate=2000.0, service_s=0.02, sequential=False, duration_s=30.0)

    # Re-measuring the baseline (every 10 s) sheds a few dozen copies each time; nothing else.
    assert out.admitted >= 0.99 * out.offered
    assert limit.limit >= 40


def test_the_cap_bounds_the_limit() -> None:
    clock = SimulatedClock()
    limit = AdaptiveLimit(initial=5, max_limit=16, clock=clock)
    simulate(limit, clock, rate=2000.0, service_s=0.02, sequential=False, duration_s=5.0)
    assert limit.limit == 16


def test_timeouts_shrink_the_limit_multiplicatively_down_to_the_minimum() -> None:
    limit = AdaptiveLimit(initial=100, min_limit=2, backoff=0.5)
    limit.on_sample(2.0, 100, dropped=True)
    assert limit.limit == 50
    for _ in range(20):
        limit.on_sample(2.0, 10, dropped=True)
    assert limit.limit == 2


def test_nothing_is_learned_while_the_shadow_is_not_the_bottleneck() -> None:
    limit = AdaptiveLimit(initial=40)
    for _ in range(50):
        limit.on_sample(0.01, 3, dropped=False)  # 3 of 40 in use: no evidence to grow
    assert limit.limit == 40


def test_a_shadow_that_became_slower_for_good_is_measured_again() -> None:
    clock = SimulatedClock()
    limit = AdaptiveLimit(clock=clock)
    simulate(limit, clock, rate=100.0, service_s=0.01, duration_s=30.0)
    assert limit.rtt_noload == pytest.approx(0.01, rel=0.05)
    # The same shadow, now 5x slower (another tenant, a bigger model): the baseline follows, so
    # the limit is not driven to its floor by a queue that is not there.
    clock.now = 0.0
    limit._last_probe = -100.0
    out = simulate(limit, clock, rate=100.0, service_s=0.05, duration_s=30.0)
    assert limit.rtt_noload == pytest.approx(0.05, rel=0.05)
    assert out.completed >= 0.95 * 20 * 30
    assert 2 <= limit.limit <= 12


def test_while_probing_one_copy_at_a_time_is_admitted_and_then_the_limit_returns() -> None:
    clock = SimulatedClock()
    limit = AdaptiveLimit(initial=10, probe_every=1, probe_interval_s=0.0, clock=clock)
    limit.on_sample(0.01, 10, dropped=False)  # first sample: the baseline
    for _ in range(9):  # after probe_every * limit samples the probe is due
        limit.on_sample(0.02, 10, dropped=False)
    assert limit.limit == 1  # drain to one in flight
    limit.on_sample(0.02, 5, dropped=False)
    assert limit.limit == 1
    limit.on_sample(0.02, 1, dropped=False)  # the last one out
    limit.on_sample(0.03, 1, dropped=False)  # waited behind nothing: the new baseline
    assert limit.rtt_noload == pytest.approx(0.03)
    assert limit.limit >= 10


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimit(min_limit=5, max_limit=4)
    assert AdaptiveLimit(initial=500, max_limit=64).limit == 64
