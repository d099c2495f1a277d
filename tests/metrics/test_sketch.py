"""The latency sketch: bulk adds equal DDSketch's own, JSON round trips, merges, accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ddsketch import DDSketch

from shadowlab.metrics.sketch import RELATIVE_ACCURACY, LatencySketch, merged


def _latencies(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Microseconds: a lognormal body around 1 ms with a long tail, and a few exact zeros.
    values = rng.lognormal(np.log(1000.0), 0.8, n)
    values[:3] = 0.0
    return values


def test_add_many_builds_the_same_sketch_as_ddsketch_add() -> None:
    values = _latencies(1, 20_000)
    ours = LatencySketch()
    ours.add_many(values)
    reference = DDSketch(RELATIVE_ACCURACY)
    for value in values.tolist():
        reference.add(value)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        expected = reference.get_quantile_value(q)
        assert ours.quantile(q) == pytest.approx(min(max(expected, 0.0), values.max()))
    assert ours.count == reference.count == 20_000
    assert ours.sum == pytest.approx(reference.sum)
    assert ours.min == 0.0 and ours.max == pytest.approx(values.max())


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_percentiles_are_within_the_relative_accuracy(q: float) -> None:
    values = _latencies(2, 50_000)
    sketch = LatencySketch()
    for chunk in np.array_split(values, 50):  # as the data plane feeds it: a batch a second
        sketch.add_many(chunk)
    exact = float(np.percentile(values, q * 100, method="lower"))
    assert abs(sketch.quantile(q) - exact) <= RELATIVE_ACCURACY * exact  # type: ignore[operator]


def test_json_round_trip_and_merge_equal_one_sketch_of_everything() -> None:
    parts = [_latencies(seed, 5_000) * (1 + seed) for seed in range(4)]
    sketches = []
    for part in parts:
        sketch = LatencySketch()
        sketch.add_many(part)
        sketches.append(json.loads(json.dumps(sketch.encode())))  # through real JSON
    together = merged([*sketches, None])
    every = np.concatenate(parts)
    whole = LatencySketch()
    whole.add_many(every)
    assert together.count == whole.count == every.size
    assert together.sum == pytest.approx(whole.sum)
    for q in (0.5, 0.9, 0.99):
        assert together.quantile(q) == whole.quantile(q)
    pairwise = LatencySketch.decode(sketches[0])
    for encoded in sketches[1:]:
        pairwise.merge(LatencySketch.decode(encoded))
    assert pairwise.quantile(0.99) == whole.quantile(0.99)


def test_empty_sketches_and_foreign_accuracy() -> None:
    empty = LatencySketch()
    assert empty.count == 0 and empty.quantile(0.5) is None and empty.avg is None
    assert merged([]).count == 0 and merged([None, empty.encode()]).count == 0
    other = empty.encode() | {"relative_accuracy": 0.02, "count": 1}
    with pytest.raises(ValueError, match="relative accuracy"):
        merged([other])


def test_encoding_is_compact() -> None:
    sketch = LatencySketch()
    sketch.add_many(_latencies(3, 100_000))
    # 100k latencies spanning ~4 decades fit in well under 4 KB of JSON.
    assert len(json.dumps(sketch.encode())) < 4096
