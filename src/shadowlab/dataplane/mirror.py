"""Shadow mirroring: sampled, fire-and-forget copies of production requests, bounded per shadow.

The production answer never waits for a copy (nginx's `mirror` does, which cost it 20x under a
20 ms shadow). Each shadow has an in-flight limit; a copy that finds it full is dropped and
counted, so a slow or hung shadow costs production a bounded amount of memory and nothing else.
The limit decides how much of a slow shadow's share arrives: measured at full load, 64 in flight
to a 20 ms shadow carried ~7% of copies and 1024 carried 100%, hence the default.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from shadowlab.dataplane.observer import InvocationEvent, InvocationObserver, InvocationRecord
from shadowlab.dataplane.pool import UpstreamClient
from shadowlab.dataplane.routing import ShadowRoute
from shadowlab.dataplane.stats import ShadowStats
from shadowlab.dataplane.upstream import Exchange, Failure


@dataclass(frozen=True)
class MirrorSettings:
    max_in_flight: int = 1024  # per (endpoint, shadow variant)
    timeout_s: float = 2.0  # per copy, from the decision to copy until the shadow's answer


class _ObservedCopy:
    __slots__ = ("event", "started", "stats", "variant")

    def __init__(
        self, stats: ShadowStats, variant: str, event: InvocationEvent, started: float
    ) -> None:
        self.stats = stats
        self.variant = variant
        self.event = event
        self.started = started


class Mirror:
    def __init__(
        self,
        client: UpstreamClient,
        settings: MirrorSettings,
        observer: InvocationObserver | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._observer = observer
        self.stats: dict[tuple[str, str], ShadowStats] = {}

    def copy(
        self,
        endpoint: str,
        shadows: tuple[ShadowRoute, ...],
        header_block: bytes,
        body: bytes,
        event: InvocationEvent | None,
    ) -> None:
        """Send each due copy. `header_block` is the request head after the Host line."""
        limit = self._settings.max_in_flight
        for shadow in shadows:
            share = shadow.sampling_percentage
            if share <= 0 or (share < 100 and random.random() * 100.0 >= share):
                continue
            key = (endpoint, shadow.name)
            stats = self.stats.get(key)
            if stats is None:
                stats = self.stats[key] = ShadowStats()
            if stats.in_flight >= limit:
                stats.dropped += 1
                continue
            stats.sent += 1
            if not shadow.instances:
                stats.errors += 1
                self._observe_unreachable(stats, shadow.name, event)
                continue
            pool = self._client.pick(shadow.instances)
            if event is None:
                exchange = Exchange(
                    pool.request_prefix + header_block, body, self._done, stats, keep_body=False
                )
            else:
                context = _ObservedCopy(stats, shadow.name, event, time.perf_counter())
                exchange = Exchange(pool.request_prefix + header_block, body, self._done, context)
            stats.in_flight += 1
            pool.send(exchange, self._settings.timeout_s)

    def _done(self, exchange: Exchange) -> None:
        context = exchange.context
        stats: ShadowStats = context if isinstance(context, ShadowStats) else context.stats
        stats.in_flight -= 1
        failure = exchange.failure
        if failure is None:
            if 200 <= exchange.status < 300:
                stats.completed += 1
            else:
                stats.errors += 1
        elif failure is Failure.TIMEOUT:
            stats.timeouts += 1
        else:
            stats.errors += 1
        if isinstance(context, _ObservedCopy) and self._observer is not None:
            ok = failure is None
            content_type = exchange.content_type
            self._observer.observe(
                InvocationRecord(
                    event=context.event,
                    role="shadow",
                    variant=context.variant,
                    status=exchange.status if ok else 0,
                    response_body=exchange.response_body if ok else b"",
                    response_content_type=content_type.decode("latin-1") if content_type else None,
                    error=None if ok else exchange.detail,
                    latency_s=time.perf_counter() - context.started,
                )
            )

    def _observe_unreachable(
        self, stats: ShadowStats, variant: str, event: InvocationEvent | None
    ) -> None:
        if self._observer is None or event is None:
            return
        self._observer.observe(
            InvocationRecord(
                event=event,
                role="shadow",
                variant=variant,
                status=0,
                response_body=b"",
                response_content_type=None,
                error="the shadow variant has no live instance",
                latency_s=0.0,
            )
        )

    def snapshot(self) -> dict[tuple[str, str], dict[str, int]]:
        return {key: stats.as_dict() for key, stats in list(self.stats.items())}
