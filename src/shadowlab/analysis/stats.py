"""Small statistics: bounded samples, confidence intervals, the two-sample KS test."""

from __future__ import annotations

import math
import random
import warnings
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Generic, TypeVar

T = TypeVar("T")


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


class Reservoir(Generic[T]):
    """A uniform sample of at most ``capacity`` items of a stream (Vitter's algorithm R).

    ``offer`` takes a factory, so an item is only built when it is kept.
    """

    __slots__ = ("_items", "_rng", "capacity", "seen")

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.seen = 0
        self._rng = rng
        self._items: list[tuple[int, T]] = []

    def offer(self, make: Callable[[], T]) -> None:
        self.seen += 1
        if len(self._items) < self.capacity:
            self._items.append((self.seen, make()))
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.capacity:
            self._items[slot] = (self.seen, make())

    @property
    def items(self) -> list[T]:
        """The kept items in stream order."""
        return [item for _seen, item in sorted(self._items, key=lambda pair: pair[0])]


class PairedSample:
    """A uniform sample of at most ``capacity`` number pairs, in two compact float arrays."""

    __slots__ = ("_rng", "capacity", "first", "second", "seen")

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.seen = 0
        self._rng = rng
        self.first = array("d")
        self.second = array("d")

    def add(self, a: float, b: float) -> None:
        self.seen += 1
        if len(self.first) < self.capacity:
            self.first.append(a)
            self.second.append(b)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.capacity:
            self.first[slot] = a
            self.second[slot] = b


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def quantile_ranks(n: int, q: float, z: float) -> tuple[float, float]:
    """Distribution-free CI for the q-quantile of n samples, as quantile levels (q_lo, q_hi).

    The order statistics of ranks ``n*q -/+ z*sqrt(n*q*(1-q))`` (normal approximation of the
    binomial) bracket the true quantile with the asked confidence; rank r (1-based) is read at
    level ``(r-1)/(n-1)``, the rank convention of DDSketch's ``get_quantile_value`` (rank
    ``floor(level * (n-1))``, 0-based).
    """
    if n <= 1:
        return 0.0, 1.0
    half = z * math.sqrt(n * q * (1 - q))
    low_rank = max(1, math.floor(n * q - half))
    high_rank = min(n, math.ceil(n * q + half))
    # A hair above the high rank, so that floor(level * (n - 1)) cannot round it down.
    return (low_rank - 1) / (n - 1), min(1.0, (high_rank - 1 + 1e-6) / (n - 1))


def wilson(successes: int, n: int, z: float) -> Interval | None:
    """Wilson score interval of a proportion; ``None`` without trials."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class KSResult:
    """Two-sample Kolmogorov-Smirnov test of production's outputs against the shadow's."""

    statistic: float
    p_value: float
    n_production: int
    n_shadow: int
    sampled_from: int  # value pairs seen; more than n when the sample is capped


def ks_test(first: Sequence[float], second: Sequence[float], seen: int) -> KSResult | None:
    if len(first) < 2 or len(second) < 2:
        return None
    # Imported here: scipy.stats takes ~1.5 s to import on this machine, and every `serve` and
    # CLI start would pay it although only a comparison runs this test.
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        # scipy warns when the exact method falls back to the asymptotic one; that is fine.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ks_2samp(first, second)
    return KSResult(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        n_production=len(first),
        n_shadow=len(second),
        sampled_from=seen,
    )


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
