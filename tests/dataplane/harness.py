"""Real servers on 127.0.0.1 for data-plane tests: tiny model servers and a threaded data plane.

Each runs on its own event loop in a background thread, so tests drive them with ordinary
blocking clients (boto3, http.client, raw sockets) exactly as users would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop

from shadowlab.dataplane import DataPlaneServer

T = TypeVar("T")


class LoopThread:
    """An event loop (uvloop) running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# -- model servers ---------------------------------------------------------------------------
Behaviour = Callable[["ModelServer", "ModelRequest"], Awaitable["ModelReply | None"]]


@dataclass
class ModelRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    nth_on_connection: int = 1


@dataclass
class ModelReply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # hang up after answering
    raw: bytes | None = None  # written verbatim instead, then the connection is closed
    # Sent as a chunked body, one chunk per piece, each flushed as it comes; a piece that is
    # BREAK aborts the connection there (a model that dies mid-stream).
    stream: AsyncIterator[bytes] | None = None
    # status 0 means: never answer, hold the connection open until the client leaves


@dataclass
class ModelServer:
    """A SageMaker-contract model server (`POST /invocations`, `GET /ping`) with a behaviour."""

    name: str
    behaviour: Behaviour
    port: int = 0
    hits: int = 0
    connections: int = 0
    seen: list[ModelRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0)
        await self._server.wait_closed()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        served_here = 0
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.hits += 1
                if len(self.seen) < 10_000:
                    self.seen.append(request)
                served_here += 1
                request.nth_on_connection = served_here
                reply = await self.behaviour(self, request)
                if reply is None:  # hang up without a word
                    return
                if reply.raw is not None:
                    writer.write(reply.raw)
                    await writer.drain()
                    return
                if reply.stream is not None:
                    if not await _send_stream(writer, reply):
                        return
                    continue
                if reply.status == 0:  # hang: never answer, hold the connection
                    await reader.read()  # until the client goes away
                    return
                head = [f"HTTP/1.1 {reply.status} X", f"Content-Length: {len(reply.body)}"]
                head += [f"{k}: {v}" for k, v in reply.headers.items()]
                if reply.close:
                    head.append("Connection: close")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)
                await writer.drain()
                if reply.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


BREAK = b"<break>"


async def _send_stream(writer: asyncio.StreamWriter, reply: ModelReply) -> bool:
    """A chunked answer, piece by piece; False when it broke off (the connection is gone)."""
    assert reply.stream is not None
    head = [f"HTTP/1.1 {reply.status} X", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in reply.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    async for piece in reply.stream:
        if piece == BREAK:
            writer.transport.abort()
            return False
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


async def _read_request(reader: asyncio.StreamReader) -> ModelRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return ModelRequest(method, path, headers, body)


# Behaviours --------------------------------------------------------------------------------
async def echo(server: ModelServer, req: ModelRequest) -> ModelReply | None:
    headers = {
        "Content-Type": req.headers.get("content-type", "application/octet-stream"),
        "X-Model": server.name,
    }
    if "x-amzn-sagemaker-custom-attributes" in req.headers:
        attrs = req.headers["x-amzn-sagemaker-custom-attributes"]
        headers["X-Amzn-SageMaker-Custom-Attributes"] = f"seen:{attrs}"
    return ModelReply(200, req.body, headers)


def slow(delay_s: float) -> Behaviour:
    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        await asyncio.sleep(delay_s)
        return await echo(server, req)

    return behaviour


def slow_when(marker: bytes, delay_s: float) -> Behaviour:
    """Slow only for requests whose body is `marker`; an echo otherwise."""

    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        if req.body == marker:
            await asyncio.sleep(delay_s)
        return await echo(server, req)

    return behaviour


def failing(status: int, text: str) -> Behaviour:
    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        return ModelReply(status, text.encode(), {"Content-Type": "text/plain"})

    return behaviour


def raw(data: bytes) -> Behaviour:
    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        return ModelReply(raw=data)

    return behaviour


async def hang(server: ModelServer, req: ModelRequest) -> ModelReply | None:
    return ModelReply(status=0)


async def hang_up(server: ModelServer, req: ModelRequest) -> ModelReply | None:
    return None


def one_per_connection() -> Behaviour:
    """Answers (keep-alive!) the first request of each connection, hangs up on the second:
    what a reused connection looks like when the server's keep-alive timeout just fired."""

    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        if req.nth_on_connection > 1:
            return None
        return await echo(server, req)

    return behaviour


def streaming(
    pieces: Sequence[bytes],
    gap_s: float = 0.0,
    *,
    content_type: str = "text/plain",
    after_first: Callable[[], Awaitable[None]] | None = None,
    sent: list[float] | None = None,
) -> Behaviour:
    """A model that streams `pieces`, `gap_s` apart; `after_first` is awaited after the first
    piece went out (a test holds the rest back until its client has seen that piece); the
    monotonic time each piece was written is appended to `sent`."""

    async def behaviour(server: ModelServer, req: ModelRequest) -> ModelReply | None:
        async def produce() -> AsyncIterator[bytes]:
            for index, piece in enumerate(pieces):
                if index and gap_s:
                    await asyncio.sleep(gap_s)
                if sent is not None:
                    sent.append(time.monotonic())
                yield piece
                if index == 0 and after_first is not None:
                    await after_first()

        headers = {"Content-Type": content_type, "X-Model": server.name}
        if "x-amzn-sagemaker-custom-attributes" in req.headers:
            attrs = req.headers["x-amzn-sagemaker-custom-attributes"]
            headers["X-Amzn-SageMaker-Custom-Attributes"] = f"seen:{attrs}"
        return ModelReply(200, headers=headers, stream=produce())

    return behaviour


def wait_for_event(event: threading.Event, timeout_s: float) -> Callable[[], Awaitable[None]]:
    """An `after_first` that waits (without blocking the farm's loop) until `event` is set."""

    async def wait() -> None:
        deadline = time.monotonic() + timeout_s
        while not event.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    return wait


class ModelFarm:
    """Model servers sharing one loop thread."""

    def __init__(self) -> None:
        self.thread = LoopThread("model-farm")
        self.servers: list[ModelServer] = []

    def add(self, name: str, behaviour: Behaviour) -> ModelServer:
        server = ModelServer(name, behaviour)
        self.thread.call(server.start())
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            self.thread.call(server.stop())
        self.thread.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DataPlaneThread:
    """A DataPlaneServer on its own uvloop loop thread."""

    def __init__(self, server: DataPlaneServer) -> None:
        self.server = server
        self.thread = LoopThread("data-plane")
        self.port = self.thread.call(server.start("127.0.0.1", 0))
        self.closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.thread.call(self.server.stop())
        self.thread.close()
