"""Bounded keep-alive connection pools per model-server address, and the choice between them.

Retry rule (POST /invocations is not idempotent in general): an exchange is sent again only when
it went out on a *reused* connection and that connection closed before a single response byte
came back, the classic race with a server's keep-alive timeout. The retry goes to a brand-new
connection, once. A request written to a fresh connection is never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from shadowlab.dataplane.deadlines import Deadlines
from shadowlab.dataplane.routing import Address
from shadowlab.dataplane.upstream import Exchange, Failure, UpstreamConnection

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class PoolLimits:
    max_connections: int = 1024  # per instance address; 1024 carried a 20 ms shadow at 100%
    connect_timeout_s: float = 5.0
    max_response_bytes: int = 6 * MiB  # SageMaker's real-time response limit


class UpstreamPool:
    """Connections to one address. `outstanding` counts exchanges accepted and not yet done."""

    def __init__(
        self, address: Address, limits: PoolLimits, deadlines: Deadlines[Exchange]
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.address = address
        self.limits = limits
        self._deadlines = deadlines
        host, port = address
        self.request_prefix = f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        self.outstanding = 0
        self.closed = False
        self.retired = False  # no route names this address any more: drain, then go
        self._open = 0  # connections connected or connecting
        self._idle: list[UpstreamConnection] = []  # a stack: the most recently used is warmest
        self._all: set[UpstreamConnection] = set()
        self._waiters: deque[Exchange] = deque()  # timed-out ones are skipped lazily
        self._connecting: set[asyncio.Task[None]] = set()

    # -- entry -----------------------------------------------------------------------------
    def send(self, exchange: Exchange, timeout_s: float) -> None:
        self.outstanding += 1
        exchange.pool = self
        exchange.timeout_s = timeout_s
        exchange.expires_at = self.loop.time() + timeout_s
        exchange.deadline_key = self._deadlines.add(exchange, timeout_s)
        self._dispatch(exchange)

    def _dispatch(self, exchange: Exchange) -> None:
        if self.closed:
            self.exchange_failed(exchange, Failure.CONNECT, "the data plane is shutting down")
            return
        if not exchange.fresh_only:
            idle = self._idle
            while idle:
                conn = idle.pop()
                if conn.usable():
                    conn.send(exchange)
                    return
        # A retry may exceed max_connections by one: it replaces a connection that just died.
        if self._open < self.limits.max_connections or exchange.fresh_only:
            self._connect_for(exchange)
        else:
            self._waiters.append(exchange)

    # -- connecting ------------------------------------------------------------------------
    def _connect_for(self, exchange: Exchange) -> None:
        self._open += 1
        task = self.loop.create_task(self._connect(exchange))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, exchange: Exchange) -> None:
        host, port = self.address
        try:
            async with asyncio.timeout(self.limits.connect_timeout_s):
                _, conn = await self.loop.create_connection(self._new_connection, host, port)
        except asyncio.CancelledError:
            self._open -= 1
            self.exchange_failed(exchange, Failure.CONNECT, "the data plane is shutting down")
            raise
        except Exception as exc:  # refused, unreachable, timed out ... or a bug: never leak
            self._open -= 1
            if isinstance(exc, TimeoutError):
                reason = "timed out"
            elif isinstance(exc, OSError):
                reason = exc.strerror or str(exc)
            else:
                log.exception("unexpected error connecting to %s:%d", host, port)
                reason = repr(exc)
            self.exchange_failed(
                exchange, Failure.CONNECT, f"cannot connect to the model at {host}:{port}: {reason}"
            )
            self._start_next_waiter()
            return
        if exchange.done:  # timed out while connecting: the connection serves someone else
            self.release(conn, keep_alive=True)
        else:
            conn.send(exchange)

    def _new_connection(self) -> UpstreamConnection:
        conn = UpstreamConnection(self, self.limits.max_response_bytes)
        self._all.add(conn)
        return conn

    def _start_next_waiter(self) -> None:
        waiters = self._waiters
        while waiters and self._open < self.limits.max_connections and not self.closed:
            exchange = waiters.popleft()
            if not exchange.done:
                self._connect_for(exchange)
                return

    # -- called by connections -------------------------------------------------------------
    def release(self, conn: UpstreamConnection, keep_alive: bool) -> None:
        """A connection finished an exchange: hand it to a waiter, park it, or close it."""
        # conn.lost suffices here: we never close a connection that is then released.
        if not keep_alive or self.closed or conn.lost:
            conn.close()
            return
        waiters = self._waiters
        while waiters:
            exchange = waiters.popleft()
            if not exchange.done:
                conn.send(exchange)
                return
        if self.retired:
            conn.close()
            return
        self._idle.append(conn)

    def connection_lost(self, conn: UpstreamConnection, exchange: Exchange | None) -> None:
        self._open -= 1
        self._all.discard(conn)
        if conn in self._idle:  # the server closed an idle keep-alive connection
            self._idle.remove(conn)
        if exchange is not None and not exchange.done:
            if (
                conn.reused_for_current
                and not conn.got_bytes
                and not exchange.retried
                and not self.closed
            ):
                exchange.retried = True
                exchange.fresh_only = True
                self._connect_for(exchange)
            else:
                detail = (
                    "the model closed the connection in the middle of its response"
                    if conn.got_bytes
                    else "the model closed the connection without responding"
                )
                self.exchange_failed(exchange, Failure.DISCONNECTED, detail)
        self._start_next_waiter()

    def exchange_failed(self, exchange: Exchange, failure: Failure, detail: str) -> None:
        if exchange.done:
            return
        exchange.failure = failure
        exchange.detail = detail
        self.exchange_finished(exchange)

    def exchange_finished(self, exchange: Exchange) -> None:
        """Settle `exchange` (response or failure recorded on it) and tell its owner."""
        exchange.done = True
        self.outstanding -= 1
        self._deadlines.discard(exchange, exchange.deadline_key)
        try:
            exchange.on_done(exchange)
        except Exception:
            # A bug in a callback must not wedge the pool's bookkeeping for everyone else.
            log.exception("upstream completion callback failed")

    def timed_out(self, exchange: Exchange) -> None:
        if exchange.done:
            return
        timeout_s = exchange.timeout_s
        conn = exchange.connection
        if conn is not None and conn.exchange is exchange:
            # The answer may still arrive later; the stream is unusable, so drop it.
            conn.detach_and_abort()
            detail = f"no response from the model within {timeout_s:g} s"
        elif exchange.sent:
            detail = f"no response from the model within {timeout_s:g} s (after a retry)"
        else:
            detail = f"no connection to the model within {timeout_s:g} s"
        self.exchange_failed(exchange, Failure.TIMEOUT, detail)

    # -- lifecycle -------------------------------------------------------------------------
    def retire(self) -> None:
        """Stop parking connections; exchanges in flight and queued still complete."""
        self.retired = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Abort everything now: in-flight exchanges fail, queued ones fail, tasks cancelled."""
        self.closed = True
        for task in list(self._connecting):
            task.cancel()
        waiters, self._waiters = self._waiters, deque()
        for exchange in waiters:
            self.exchange_failed(exchange, Failure.CONNECT, "the data plane is shutting down")
        self._idle = []
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.abort()

    @property
    def open_connections(self) -> int:
        return self._open


class UpstreamClient:
    """All pools of one data plane, keyed by address; picks the least busy instance."""

    def __init__(self, limits: PoolLimits | None = None) -> None:
        self.limits = limits or PoolLimits()
        self._pools: dict[Address, UpstreamPool] = {}
        self._retired: list[UpstreamPool] = []
        self._closing: list[UpstreamPool] = []
        self._turn = 0
        self._deadlines: Deadlines[Exchange] | None = None  # created on the loop, when needed

    def pool(self, address: Address) -> UpstreamPool:
        pool = self._pools.get(address)
        if pool is None:
            if self._deadlines is None:
                self._deadlines = Deadlines(_expire)
            pool = self._pools[address] = UpstreamPool(address, self.limits, self._deadlines)
        return pool

    def pick(self, instances: tuple[Address, ...]) -> UpstreamPool:
        """Least outstanding requests among `instances` (non-empty); ties rotate."""
        n = len(instances)
        if n == 1:
            pool = self._pools.get(instances[0])
            return pool if pool is not None else self.pool(instances[0])
        # Start the scan at a rotating offset so that ties (an idle fleet) spread evenly.
        self._turn = start = (self._turn + 1) % n
        best = self.pool(instances[start])
        for k in range(1, n):
            candidate = self.pool(instances[(start + k) % n])
            if candidate.outstanding < best.outstanding:
                best = candidate
        return best

    def retain_only(self, live: frozenset[Address]) -> None:
        """Retire pools of addresses no route names any more (scale-down, deleted endpoints)."""
        for address in [a for a in self._pools if a not in live]:
            pool = self._pools.pop(address)
            pool.retire()
            self._retired.append(pool)
        # Forget retired pools once they have nothing left in flight.
        self._retired = [p for p in self._retired if p.outstanding or p.open_connections]

    def close(self) -> None:
        self._closing = [*self._pools.values(), *self._retired]
        for pool in self._closing:
            pool.close()
        self._pools.clear()
        self._retired.clear()
        if self._deadlines is not None:
            self._deadlines.close()

    async def wait_closed(self, timeout_s: float = 1.0) -> None:
        """Give aborted transports a few loop turns to deliver connection_lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if not any(p.open_connections for p in self._closing):
                return
            await asyncio.sleep(0.01)


def _expire(exchange: Exchange) -> None:
    if exchange.pool is not None:
        exchange.pool.timed_out(exchange)
