"""Where an endpoint's invocations go: an in-memory table others fill in, swapped whole on update.

Writers (the reconciler, tests) may call `set`/`remove` from any thread; the data plane reads on
its event loop without a lock. Each write builds a new dict and rebinds one attribute, which is
atomic under the GIL, so a reader sees the old table or the new one, never half of an update.
A request keeps the `CompiledRoute` (and the instance addresses) it looked up, so a scale-down
or a promotion never pulls an address out from under a request in flight.
"""

from __future__ import annotations

import bisect
import random
import threading
from dataclasses import dataclass

Address = tuple[str, int]

# Endpoint names are unique per region, as on AWS; a request's region comes from its SigV4
# credential scope, and a request without one is in the server's default region.
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    instances: tuple[Address, ...]  # live instances; empty when none is healthy
    # A serverless variant's MaxConcurrency: requests in flight beyond it are throttled.
    # 0 (every instance-based variant): no cap, and the hot path pays one falsy test.
    max_concurrency: int = 0


@dataclass(frozen=True)
class ShadowRoute:
    name: str
    sampling_percentage: int  # 0..100
    instances: tuple[Address, ...]


@dataclass(frozen=True)
class EndpointRoute:
    production: tuple[VariantRoute, ...]
    shadows: tuple[ShadowRoute, ...] = ()
    # What data capture applies to the endpoint's traffic: opaque to the data plane, handed
    # to the observer with each event. Empty: no event is made, capture costs nothing.
    capture: tuple[object, ...] = ()


class CompiledRoute:
    """An `EndpointRoute` with what the hot path needs precomputed (cumulative weights, names)."""

    __slots__ = (
        "_cumulative",
        "_single",
        "_total",
        "_weighted",
        "by_name",
        "capture",
        "route",
        "shadows",
    )

    def __init__(self, route: EndpointRoute) -> None:
        self.route = route
        self.shadows = route.shadows
        self.capture = route.capture
        self.by_name: dict[str, VariantRoute] = {v.name: v for v in route.production}
        # SageMaker semantics: a variant gets weight / sum(weights); weight 0 gets no traffic
        # unless a caller targets it by name.
        weighted = tuple(v for v in route.production if v.weight > 0)
        weights = [v.weight for v in weighted]
        if not weighted:
            # Every weight is 0: spread evenly rather than refuse, so an endpoint whose weights
            # are briefly all zero mid-update still answers.
            weighted = route.production
            weights = [1.0] * len(weighted)
        self._weighted = weighted
        self._single = weighted[0] if len(weighted) == 1 else None
        self._cumulative: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self._cumulative.append(total)
        self._total = total

    def choose(self) -> VariantRoute | None:
        """A production variant by weight; None when the endpoint has no variant at all."""
        if self._single is not None:
            return self._single
        if not self._weighted:
            return None
        i = bisect.bisect_right(self._cumulative, random.random() * self._total)
        # random() < 1.0, but float rounding of the cumulative sum could push i past the end.
        return self._weighted[min(i, len(self._weighted) - 1)]


class RoutingTable:
    """(region, endpoint name) -> route. Reads are lock-free; writes copy the dict and swap it
    in."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], CompiledRoute] = {}
        self._write_lock = threading.Lock()
        # Bumped on every write so the data plane can notice changes cheaply (an int compare)
        # and retire connection pools of instances no route names any more.
        self.version = 0

    def set(self, endpoint_name: str, route: EndpointRoute, region: str = DEFAULT_REGION) -> None:
        compiled = CompiledRoute(route)
        with self._write_lock:
            routes = dict(self._routes)
            routes[region, endpoint_name] = compiled
            self._routes = routes
            self.version += 1

    def remove(self, endpoint_name: str, region: str = DEFAULT_REGION) -> None:
        with self._write_lock:
            if (region, endpoint_name) not in self._routes:
                return
            routes = dict(self._routes)
            del routes[region, endpoint_name]
            self._routes = routes
            self.version += 1

    def get(self, endpoint_name: str, region: str = DEFAULT_REGION) -> EndpointRoute | None:
        compiled = self._routes.get((region, endpoint_name))
        return compiled.route if compiled is not None else None

    def lookup(self, endpoint_name: str, region: str = DEFAULT_REGION) -> CompiledRoute | None:
        """The hot-path read: the precomputed form of the route."""
        return self._routes.get((region, endpoint_name))

    def routes(self) -> list[tuple[str, str, EndpointRoute]]:
        """(region, endpoint name, route) for every route, in no particular order."""
        return [(region, name, c.route) for (region, name), c in self._routes.items()]

    def addresses(self) -> frozenset[Address]:
        """Every instance address any route names (production or shadow)."""
        found: list[Address] = []
        for compiled in self._routes.values():
            for variant in compiled.route.production:
                found += variant.instances
            for shadow in compiled.route.shadows:
                found += shadow.instances
        return frozenset(found)
