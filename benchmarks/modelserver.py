"""A trivial keep-alive model server for the benchmark: production, fast shadow and slow shadow.

Speaks the SageMaker container contract that shadowlab and nginx forward to: `POST /invocations`
echoes the body, `GET /ping` answers 200. `GET /count` answers how many invocations it has served,
so the benchmark can check from the shadow's side how many copies really arrived (for nginx too,
which keeps no such counter).

It is an `asyncio.Protocol` on uvloop with httptools, not a framework: the model server must be
much faster than the proxies under test, or the benchmark measures it instead of them.
`--delay-ms` answers each request that much later through `call_later`, without holding up the
connection's other work or other connections, so a 20 ms model still serves thousands of
requests per second, as a real model server with enough workers would.

Run: `python benchmarks/modelserver.py --port 8081 [--delay-ms 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import httptools
import uvloop

_PING = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class _Counter:
    invocations = 0


class ModelConnection(asyncio.Protocol):
    """One client connection; answers in request order (equal delays keep timers in order)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self._loop = loop
        self._delay_s = delay_s
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
        elif self._url == b"/ping":
            response = _PING
        elif self._url == b"/count":
            count = b'{"invocations": %d}' % _Counter.invocations
            response = (_OK_HEAD % len(count)) + count
        else:
            response = _NOT_FOUND
        if self._delay_s > 0 and self._url == b"/invocations":
            self._loop.call_later(self._delay_s, self._send, response, keep_alive)
        else:
            self._send(response, keep_alive)

    # -- helpers ---------------------------------------------------------------------------
    def _send(self, response: bytes, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the client went away while we "computed"
        transport.write(response)
        if not keep_alive:
            transport.close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
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
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.delay_ms / 1000.0))


if __name__ == "__main__":
    main()
