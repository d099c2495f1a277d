"""Shadow mirroring: sampled, fire-and-forget copies of production requests, admitted while
the shadow has capacity for them.

The production answer never waits for a copy (nginx's `mirror` does, which cost it 20x under a
20 ms shadow). Each shadow variant has an adaptive in-flight limit (`admission.AdaptiveLimit`,
capped by `max_in_flight`) that follows what the shadow can actually serve; a copy that finds
the limit reached is shed at once and counted, so a slow shadow gets the share it can answer,
steadily, instead of a queue in which every copy times out. Whether a copy is shed depends only
on how many copies are in flight when its request arrives, never on the request itself, so the
admitted copies stay a time-uniform sample of the sampled ones; the effective rate (sent /
eligible) is reported per minute for the comparison to state.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from shadowlab.dataplane.admission import AdaptiveLimit
from shadowlab.dataplane.observer import (
    InvocationEvent,
    InvocationObserver,
    Outcome,
    invocation_record,
)
from shadowlab.dataplane.pool import UpstreamClient
from shadowlab.dataplane.routing import ShadowRoute
from shadowlab.dataplane.stats import ShadowStats, by_endpoint_variant
from shadowlab.dataplane.upstream import Exchange, Failure


@dataclass(frozen=True)
class MirrorSettings:
    max_in_flight: int = 1024  # cap of the adaptive limit, per (endpoint, shadow variant)
    timeout_s: float = 2.0  # per copy, from the decision to copy until the shadow's answer
    initial_limit: int = 8  # where the adaptive limit starts; it doubles per round trip


class _Copy:
    __slots__ = ("event", "started", "stats", "variant")

    def __init__(
        self, stats: ShadowStats, variant: str, event: InvocationEvent | None, started: float
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
        self.stats: dict[tuple[str, str, str], ShadowStats] = {}  # (region, endpoint, shadow)

    def copy(
        self,
        region: str,
        endpoint: str,
        shadows: tuple[ShadowRoute, ...],
        header_block: bytes,
        body: bytes,
        event: InvocationEvent | None,
    ) -> None:
        """Send each due copy. `header_block` is the request head after the Host line."""
        minute = int(time.time()) // 60
        for shadow in shadows:
            key = (region, endpoint, shadow.name)
            stats = self.stats.get(key)
            if stats is None:
                stats = self.stats[key] = self._new_stats(region, endpoint, shadow.name)
            if stats.minute != minute:
                stats.roll(minute)
            stats.eligible += 1
            stats.minute_eligible += 1
            share = shadow.sampling_percentage
            if share <= 0 or (share < 100 and random.random() * 100.0 >= share):
                continue
            stats.sampled += 1
            if stats.in_flight >= stats.limit.limit:
                stats.shed += 1
                self._observe_unsent(shadow.name, event, "shed", "shed: the shadow is at capacity")
                continue
            if not shadow.instances:
                stats.dropped += 1
                self._observe_unsent(
                    shadow.name, event, "failed", "the shadow variant has no live instance"
                )
                continue
            stats.sent += 1
            stats.minute_sent += 1
            stats.in_flight += 1
            pool = self._client.pick(shadow.instances)
            context = _Copy(stats, shadow.name, event, time.perf_counter())
            exchange = Exchange(
                header_block, body, self._done, context, keep_body=event is not None
            )
            pool.send(exchange, self._settings.timeout_s)

    def _new_stats(self, region: str, endpoint: str, variant: str) -> ShadowStats:
        settings = self._settings
        limit = AdaptiveLimit(
            initial=min(settings.initial_limit, settings.max_in_flight),
            max_limit=settings.max_in_flight,
        )
        return ShadowStats(limit, region, endpoint, variant)

    def _done(self, exchange: Exchange) -> None:
        context: _Copy = exchange.context
        stats = context.stats
        elapsed = time.perf_counter() - context.started
        in_flight = stats.in_flight
        stats.in_flight = in_flight - 1
        failure = exchange.failure
        outcome: Outcome
        if failure is None:
            status = exchange.status
            if 200 <= status < 300:
                stats.completed += 1
                stats.model_latencies.append(elapsed)
                outcome = "answered"
            elif exchange.refused:
                stats.shed += 1
                outcome = "shed"
            else:
                stats.errors += 1
                if 400 <= status < 500:
                    stats.invocation_4xx += 1
                elif status >= 500:
                    stats.invocation_5xx += 1
                outcome = "answered"
        elif failure is Failure.TIMEOUT:
            stats.timeouts += 1
            outcome = "timeout"
        else:
            stats.errors += 1
            outcome = "failed"
        # Timeouts and refusals mean the shadow is past its capacity; errors say nothing of it.
        stats.limit.on_sample(elapsed, in_flight, outcome == "timeout" or outcome == "shed")
        if context.event is not None and self._observer is not None:
            # Every field, in order (see observer.py: this runs for every captured copy).
            answered = failure is None
            self._observer.observe(
                (
                    context.event,
                    "shadow",
                    context.variant,
                    exchange.status if answered else 0,
                    exchange.response_body if answered else b"",
                    exchange.content_type,
                    None if answered else exchange.detail,
                    elapsed,
                    outcome,
                )
            )

    def _observe_unsent(
        self, variant: str, event: InvocationEvent | None, outcome: Outcome, reason: str
    ) -> None:
        if self._observer is None or event is None:
            return
        self._observer.observe(
            invocation_record(
                event=event,
                role="shadow",
                variant=variant,
                status=0,
                response_body=b"",
                response_content_type=None,
                error=reason,
                latency_s=0.0,
                outcome=outcome,
            )
        )

    def snapshot(self) -> dict[tuple[str, str], dict[str, object]]:
        return by_endpoint_variant(list(self.stats.values()))
