"""Bounds on what clients may hold: time (head, body, idle), connections, buffered body bytes.

Nothing here runs per request on the hot path: FrontConnection charges bodies to the shared
`Guard` with a few integer operations; `sweep`, run by the server on a timer, finds the
connections that are too slow by comparing what it saw on its previous pass with what it sees
now (a request object's identity and its byte count): no per-request timer or clock read.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shadowlab.dataplane import wire
from shadowlab.dataplane.request import Request
from shadowlab.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shadowlab.dataplane.http1 import FrontConnection

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_LOG_INTERVAL_S = 10.0  # under a flood, one line per interval, not one per socket
# File descriptors kept for everything but client connections (upstream connections to the
# model servers, the store, capture files, worker pipes): clients get at most half the limit.
_FD_SHARE_FOR_CLIENTS = 2
# Bodies arrive as many 64-256 KiB reads; freed, glibc keeps them in its heap (measured: 10
# dropped 15 MB uploads left RSS at 200 MB, not 35). Once this much is released, trim it.
_TRIM_AFTER_BYTES = 32 * MiB


def _malloc_trim() -> None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc only; elsewhere nothing to do
    except (AttributeError, OSError):
        return
    trim(0)


@dataclass(frozen=True)
class ConnectionLimits:
    """The defaults follow servers whose defaults real clients have met for decades: Apache's
    mod_reqtimeout ("body=20,MinRate=500": a body must average 500 B/s, judged over 20 s) and
    nginx (keepalive_timeout 75 s; client_header_timeout 60 s, tightened to 10 s here because a
    request head is a few hundred bytes and this server is reached over loopback or a LAN)."""

    # The whole request head must arrive within this long (for a new connection: of accept).
    head_timeout_s: float = 10.0
    # A body must move at least body_min_rate bytes/s, averaged over each window of this long.
    body_timeout_s: float = 20.0
    body_min_rate: int = 500
    # An idle keep-alive connection is closed after this long.
    keepalive_timeout_s: float = 75.0
    # Connections beyond this are answered 503 at once and closed (also capped by the fd limit).
    max_connections: int = 10_000
    # Request bodies buffered across all connections; a body that does not fit gets a 503.
    max_buffered_body_bytes: int = 256 * MiB

    @property
    def sweep_interval_s(self) -> float:
        """A quarter of the smallest timeout (a timeout fires at most two intervals late), but
        at most 1 s and at least 50 ms: a pass over 10k connections costs ~8 ms here."""
        smallest = min(self.head_timeout_s, self.body_timeout_s, self.keepalive_timeout_s)
        return min(1.0, max(0.05, smallest / 4))


class Guard:
    """The shared state of the limits: the body budget and the counters, for all connections."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections  # lowered by `fit_fd_limit`
        self.body_available = limits.max_buffered_body_bytes
        self.refused = 0
        self.head_timeouts = 0
        self.body_timeouts = 0
        self.idle_closed = 0
        self.body_budget_rejections = 0
        self._request_ids = wire.RequestIds()
        self._peak_buffered = 0  # the most buffered seen by the sweep since the last trim
        self._logged = (0, 0, 0)  # refused, head_timeouts, body_timeouts when last logged
        self._logged_at = float("-inf")

    def refuse_connection(self, transport: asyncio.Transport) -> None:
        """Over the cap: 503 and close before reading a byte (cheap, and the client learns at
        once); counted here, logged by the sweep."""
        self.refused += 1
        transport.write(REFUSED)
        transport.close()

    def fit_fd_limit(self) -> None:
        """Raise the soft open-files limit as far as the cap needs (the hard limit allows), and
        lower the cap to what the limit leaves: accept() failing with EMFILE would stall every
        client and leave no descriptor for the upstream connections of those already served."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.limits.max_connections * _FD_SHARE_FOR_CLIENTS
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft // _FD_SHARE_FOR_CLIENTS < self.max_connections:
            self.max_connections = max(1, soft // _FD_SHARE_FOR_CLIENTS)
            log.warning(
                "at most %d client connections (half the open-files limit %d), not %d",
                self.max_connections,
                soft,
                self.limits.max_connections,
            )

    # -- the body budget (FrontConnection reserves a Content-Length whole, inline) ----------
    def grow(self, req: Request) -> None:
        """Charge a body without Content-Length as it arrives, or refuse it."""
        if req.size > req.limit:
            req.too_large = True
            self.release(req)
            req.chunks = []
            return
        more = req.size - req.reserved
        if more > self.body_available:
            self.release(req)
            req.chunks = []
            self.refuse_body(req)
            return
        self.body_available -= more
        req.reserved = req.size

    def refuse_body(self, req: Request) -> None:
        req.too_large = True  # discarded as if too large, but answered 503 (`over_budget`)
        req.over_budget = True
        self.body_budget_rejections += 1

    def release(self, req: Request) -> None:
        if req.reserved:
            self.body_available += req.reserved
            req.reserved = 0

    def over_budget(self, req: Request) -> bytes:
        """The answer to a request whose body did not fit the buffer budget: 503, not 413,
        because the body is not too large (it fits once others finish) and botocore retries
        503 (ServiceUnavailable) by itself, while a 413 tells a client never to try again."""
        message = "The server is buffering too many request bodies; try again later."
        if req.endpoint is not None:
            error = ServiceUnavailable(message)
            return wire.aws_error(error, self._request_ids.next(), req.connection_header)
        return wire.plain_response(
            503,
            [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Retry-After", b"1")],
            message.encode("ascii"),
            req.connection_header,
        )

    def snapshot(self, open_connections: int) -> dict[str, int]:
        return {
            "open": open_connections,
            "max": self.max_connections,
            "refused": self.refused,
            "head_timeouts": self.head_timeouts,
            "body_timeouts": self.body_timeouts,
            "idle_closed": self.idle_closed,
            "body_budget_rejections": self.body_budget_rejections,
            "buffered_body_bytes": self.limits.max_buffered_body_bytes - self.body_available,
        }

    def give_back_memory(self) -> None:
        """After a big release of buffered bodies (many at once: an attack, or a burst of large
        uploads), hand the memory back to the system; the sweep calls this on every pass."""
        buffered = self.limits.max_buffered_body_bytes - self.body_available
        if buffered > self._peak_buffered:
            self._peak_buffered = buffered
        elif self._peak_buffered - buffered >= _TRIM_AFTER_BYTES:
            self._peak_buffered = buffered
            _malloc_trim()

    def log_changes(self, now: float) -> None:
        """One line for what was refused or timed out since the last (at once, then at most
        every _LOG_INTERVAL_S): a flood of slow clients must not flood the log too."""
        counts = (self.refused, self.head_timeouts, self.body_timeouts)
        if counts == self._logged or now - self._logged_at < _LOG_INTERVAL_S:
            return
        refused, heads, bodies = (new - old for new, old in zip(counts, self._logged, strict=True))
        self._logged, self._logged_at = counts, now
        limits = self.limits
        log.warning(
            "slow or excess clients: %d connections refused (at most %d open), %d closed for a "
            "request head not received within %.1f s, %d for a body slower than %d B/s",
            refused,
            self.max_connections,
            heads,
            limits.head_timeout_s,
            bodies,
            limits.body_min_rate,
        )


# 503 without reading a byte: over the connection cap the request is not even parsed.
REFUSED = wire.text_response(503, "Too many connections", wire.CONNECTION_CLOSE)


def sweep(connections: Iterable[FrontConnection], guard: Guard, now: float) -> None:
    """Close the connections that are too slow; see the module's docstring for how."""
    limits = guard.limits
    head_timeouts = body_timeouts = 0
    for conn in connections:
        if conn.closing:
            continue  # already answering its last, or gone
        req = conn.req
        if req is None:
            conn.mark_req = None
            if conn.pending:
                continue  # waiting for its answers: the invocation timeout bounds that
            if conn.idle_at < 0:  # nothing answered yet: the first head is late
                if now - conn.made_at > limits.head_timeout_s:
                    head_timeouts += 1
                    conn.time_out()
            elif now - conn.idle_at > limits.keepalive_timeout_s:
                guard.idle_closed += 1
                conn.close_when_idle()
            continue
        if conn.reading_paused:
            conn.mark_req = None  # we stopped reading (pipeline full, client not reading)
            continue
        if req is not conn.mark_req:  # first seen: start timing it from here
            conn.mark_req, conn.mark_at, conn.mark_size = req, now, req.size
            continue
        if not req.method:  # the head is incomplete
            started = conn.mark_at if conn.idle_at >= 0 else conn.made_at
            if now - started > limits.head_timeout_s:
                head_timeouts += 1
                conn.time_out()
            continue
        elapsed = now - conn.mark_at
        if elapsed >= limits.body_timeout_s:
            if req.size - conn.mark_size < limits.body_min_rate * elapsed:
                body_timeouts += 1
                conn.time_out()
            else:  # fast enough: judge the next window afresh
                conn.mark_at, conn.mark_size = now, req.size
    guard.head_timeouts += head_timeouts
    guard.body_timeouts += body_timeouts
    guard.log_changes(now)
    guard.give_back_memory()
