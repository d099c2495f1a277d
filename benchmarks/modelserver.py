"""A trivial keep-alive model server for the benchmark: production, fast shadows, slow shadows.

Speaks the SageMaker container contract that shadowlab and nginx forward to: `POST /invocations`
echoes the body, `GET /ping` answers 200. `GET /count` answers what it did with the invocations
it received (`invocations` received, `served` answered 200, and in serial mode `expired` and
`abandoned`), so the benchmark can check from the shadow's side how many copies really arrived
and were answered (for nginx too, which keeps no such counter).

It is an `asyncio.Protocol` on uvloop with httptools, not a framework: the model server must be
much faster than the proxies under test, or the benchmark measures it instead of them.

Three modes:
- default: answers at once (production, and the fast shadow);
- `--delay-ms X`: answers each request X ms later through `call_later`, without holding up the
  connection's other work or other connections, so a 20 ms model still serves thousands of
  requests per second, as a real model server with enough workers would;
- `--serial-ms X`: one prediction at a time, as one SageMaker model server worker: requests wait
  in a FIFO queue (over all connections) and each takes X ms of wall time, so the server answers
  at most 1000 / X requests per second however many are offered. The "prediction" is a timer
  (`call_at`), not CPU, because this server shares its core with the load generator. Turns run
  back to back on a schedule (each starts when the previous one was due to end), so libuv's
  millisecond timer granularity delays single answers but does not lower the capacity. Like
  shadowlab's own workers, it honours `X-Shadowlab-Timeout-Ms`: a request whose deadline passed
  before its turn is not run, and is answered 503 with `X-Shadowlab-Shed: expired`; a request
  whose client hung up before its turn is skipped. Neither takes a turn's time.

Run: `python benchmarks/modelserver.py --port 8081 [--delay-ms 20 | --serial-ms 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import deque
from typing import cast

import httptools
import uvloop

_PING = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_EXPIRED_BODY = b'{"message": "the request\'s deadline passed while it was queued"}'
_EXPIRED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"X-Shadowlab-Shed: expired\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_EXPIRED_BODY), _EXPIRED_BODY)
)
_TIMEOUT_HEADER = b"x-shadowlab-timeout-ms"


class _Counter:
    """Invocations since start. received = served + expired + abandoned + not yet answered."""

    invocations = 0  # received
    served = 0  # answered 200
    expired = 0  # serial mode: the deadline passed before the request's turn; answered 503
    abandoned = 0  # serial mode: the client hung up before the request's turn

    @classmethod
    def as_json(cls) -> bytes:
        return json.dumps(
            {
                "invocations": cls.invocations,
                "served": cls.served,
                "expired": cls.expired,
                "abandoned": cls.abandoned,
            }
        ).encode()


class ModelConnection(asyncio.Protocol):
    """One client connection; answers in request order (equal delays keep timers in order)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self._loop = loop
        self._delay_s = delay_s
        self._deferred = delay_s > 0  # invocations go through `_invoke`
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, only the same interface.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url  # may arrive in pieces

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        if self._url == b"/invocations":
            _Counter.invocations += 1
            body = b"".join(self._body)
            response = (_OK_HEAD % len(body)) + body
            if self._deferred:
                self._invoke(response, keep_alive)
            else:
                _Counter.served += 1
                self.send(response, keep_alive)
            return
        if self._url == b"/ping":
            response = _PING
        elif self._url == b"/count":
            count = _Counter.as_json()
            response = (_OK_HEAD % len(count)) + count
        else:
            response = _NOT_FOUND
        self.send(response, keep_alive)

    # -- helpers ---------------------------------------------------------------------------
    def _invoke(self, response: bytes, keep_alive: bool) -> None:
        """Answer an invocation later (`_deferred` only: the immediate path is inlined)."""
        self._loop.call_later(self._delay_s, self._answer, response, keep_alive)

    def _answer(self, response: bytes, keep_alive: bool) -> None:
        if self.alive:
            _Counter.served += 1
        self.send(response, keep_alive)

    @property
    def alive(self) -> bool:
        transport = self._transport
        return transport is not None and not transport.is_closing()

    def send(self, response: bytes, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the client went away while we "computed"
        transport.write(response)
        if not keep_alive:
            transport.close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Job:
    __slots__ = ("conn", "deadline", "keep_alive", "response")

    def __init__(
        self, conn: ModelConnection, response: bytes, keep_alive: bool, deadline: float | None
    ) -> None:
        self.conn = conn
        self.response = response
        self.keep_alive = keep_alive
        self.deadline = deadline  # loop time after which nobody waits for the answer


class SerialQueue:
    """One "worker": a FIFO over all connections, one request at a time, `service_s` each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, service_s: float) -> None:
        self._loop = loop
        self._service_s = service_s
        self._queue: deque[_Job] = deque()
        self._busy = False
        self._free_at = 0.0  # loop time at which the current (or last) turn ends

    def submit(self, job: _Job) -> None:
        self._queue.append(job)
        if not self._busy:
            self._next(max(self._loop.time(), self._free_at))

    def _next(self, start: float) -> None:
        """Start the next runnable request at `start` (the end of the previous turn)."""
        queue = self._queue
        while queue:
            job = queue.popleft()
            if not job.conn.alive:
                _Counter.abandoned += 1
                continue
            if job.deadline is not None and start >= job.deadline:
                _Counter.expired += 1
                job.conn.send(_EXPIRED, job.keep_alive)
                continue
            self._busy = True
            self._free_at = start + self._service_s
            self._loop.call_at(self._free_at, self._finish, job)
            return
        self._busy = False

    def _finish(self, job: _Job) -> None:
        if job.conn.alive:
            _Counter.served += 1
            job.conn.send(job.response, job.keep_alive)
        else:
            _Counter.abandoned += 1
        # Back to back: the next turn starts when this one was due to end, not when the timer
        # fired, so timer lateness does not eat into the capacity.
        self._next(self._free_at)


class SerialConnection(ModelConnection):
    """A connection whose invocations queue for the one `SerialQueue`. A separate class because
    httptools calls `on_header` only on protocols that define it, and the fast servers must not
    pay for a Python callback per header."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: SerialQueue) -> None:
        super().__init__(loop, 0.0)
        self._deferred = True
        self._serial = queue
        self._timeout_ms: int | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._timeout_ms = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == _TIMEOUT_HEADER and value.strip().isdigit():
            self._timeout_ms = int(value)

    def _invoke(self, response: bytes, keep_alive: bool) -> None:
        deadline = None
        if self._timeout_ms is not None:
            deadline = self._loop.time() + self._timeout_ms / 1000.0
        self._serial.submit(_Job(self, response, keep_alive, deadline))


async def serve(host: str, port: int, delay_s: float, serial_s: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if serial_s > 0:
        queue = SerialQueue(loop, serial_s)
        server = await loop.create_server(
            lambda: SerialConnection(loop, queue), host, port, backlog=4096, reuse_address=True
        )
    else:
        server = await loop.create_server(
            lambda: ModelConnection(loop, delay_s), host, port, backlog=4096, reuse_address=True
        )
    try:
        await stop.wait()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--delay-ms", type=float, default=0.0, help="answer each this much later")
    modes.add_argument(
        "--serial-ms", type=float, default=0.0, help="one request at a time, this long each"
    )
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.delay_ms / 1000.0, args.serial_ms / 1000.0))


if __name__ == "__main__":
    main()
