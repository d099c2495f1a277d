"""What metrics cost each request: `python -m tests.metrics.bench_hot_path` (not a test).

1. The hot path: exactly the statements metrics added to `Invoker.invoke`/`_answered` (two
   clock reads, a subtraction, two appends) and to `Mirror._done` (one append), timed in a loop.
2. The drain: `MetricsAggregator.collect` once a second over a second's latencies, per request.
3. For comparison, what feeding DDSketch on the hot path (`DDSketch.add`) would have cost.
"""

from __future__ import annotations

import time
import timeit

import numpy as np
from ddsketch import DDSketch

from shadowlab.metrics import MetricsAggregator
from tests.metrics.support import production, shadow

N = 200_000


# What Invoker.invoke / Invoker._answered now run per answered request (their other lines are
# unchanged), and what Mirror._done runs per completed copy.
_PRODUCTION = """
arrived = perf_counter()
answered = perf_counter()
model_s = answered - started
if failure is None and not refused:
    stats.model_latencies.append(model_s)
    stats.overhead_latencies.append(perf_counter() - arrived - model_s)
"""
_SHADOW = "copies.model_latencies.append(elapsed)"


def hot_path_ns() -> tuple[float, float]:
    names = {
        "perf_counter": time.perf_counter,
        "stats": production("ep", "prod"),
        "copies": shadow("ep", "candidate"),
        "started": time.perf_counter(),
        "elapsed": 0.001,
        "failure": None,
        "refused": False,
    }

    def best(statement: str) -> float:
        runs = timeit.repeat(statement, globals=names, number=N, repeat=7)
        names["stats"], names["copies"] = production("ep", "prod"), shadow("ep", "candidate")
        return min(runs) / N * 1e9

    empty = best("pass")
    return best(_PRODUCTION) - empty, best(_SHADOW) - empty


def drain_ns(per_second: int) -> float:
    aggregator = MetricsAggregator("bench")
    stats, copies = production("ep", "prod"), shadow("ep", "candidate")
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(np.log(0.001), 0.5, per_second).tolist()
    aggregator.collect(0.0, [stats], [copies])
    total, rounds = 0.0, 20
    for second in range(1, rounds + 1):
        stats.invocations += per_second
        stats.model_latencies = list(latencies)
        stats.overhead_latencies = [x / 20 for x in latencies]
        copies.eligible += per_second
        copies.sent += per_second
        copies.completed += per_second
        copies.model_latencies = list(latencies)
        begin = time.perf_counter()
        aggregator.collect(float(second), [stats], [copies])
        total += time.perf_counter() - begin
    return total / rounds / per_second * 1e9


def ddsketch_add_ns() -> float:
    sketch = DDSketch(0.01)
    values = np.random.default_rng(1).lognormal(np.log(1000.0), 0.5, 50_000).tolist()
    begin = time.perf_counter()
    for value in values:
        sketch.add(value)
    return (time.perf_counter() - begin) / len(values) * 1e9


def main() -> None:
    production_ns, shadow_ns = hot_path_ns()
    print(f"hot path, per production request answered: {production_ns:6.0f} ns")
    print(f"hot path, per completed shadow copy:        {shadow_ns:6.0f} ns")
    for rate in (1_000, 10_000, 50_000):
        print(f"drain at {rate:>6} req/s (3 latencies each), per request: {drain_ns(rate):6.0f} ns")
    print(f"DDSketch.add per value, had the hot path fed sketches: {ddsketch_add_ns():6.0f} ns")


if __name__ == "__main__":
    main()
