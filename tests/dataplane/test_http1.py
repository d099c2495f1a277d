"""The front server as an HTTP/1.1 server: pipelining, framing, limits, and the ASGI fallback."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shadowlab.dataplane import EndpointRoute, RoutingTable, VariantRoute
from tests.dataplane.harness import DataPlaneThread, ModelFarm, echo, slow_when

MiB = 1024 * 1024


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def read_responses(sock: socket.socket, n: int, *, head_only: bool = False) -> list[RawResponse]:
    """Read exactly `n` Content-Length framed responses from a raw socket."""
    buffer = b""
    found: list[RawResponse] = []
    while len(found) < n:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            lines = buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = 0 if head_only else int(headers.get("content-length", "0"))
            if len(buffer) >= end + 4 + length:
                body = buffer[end + 4 : end + 4 + length]
                found.append(RawResponse(int(lines[0].split()[1]), headers, body))
                buffer = buffer[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(found)} responses")
        buffer += chunk
    assert buffer == b"", buffer
    return found


def invocation(endpoint: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /endpoints/{endpoint}/invocations HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def make_app(events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello from lifespan"}
        events.append("shutdown")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "greeting": request.state.greeting})

    async def echo_body(request: Request) -> Response:
        body = await request.body()
        return PlainTextResponse(
            f"{request.method} {request.url.path}?{request.url.query} {body.decode()}",
            headers={"X-Client": str(request.client.host if request.client else None)},
        )

    async def boom(request: Request) -> Response:
        raise RuntimeError("app bug")

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/echo/{rest:path}", echo_body, methods=["POST", "GET"]),
            Route("/boom", boom),
        ],
        lifespan=lifespan,
    )


def test_pipelined_requests_are_answered_in_order(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    model = farm.add("pipe", slow_when(b"first", 0.1))
    routing.set("ep-pipe", EndpointRoute((VariantRoute("v", 1.0, (model.address,)),)))
    plane = start_dataplane(make_app([]))
    with socket.create_connection(("127.0.0.1", plane.port), timeout=10) as sock:
        # The first answer is the slowest; the others must still wait their turn.
        sock.sendall(
            invocation("ep-pipe", b"first")
            + invocation("ep-pipe", b"second")
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + invocation("ep-unknown", b"fourth")
            + invocation("ep-pipe", b"fifth")
        )
        replies = read_responses(sock, 5)
    assert [r.status for r in replies] == [200, 200, 200, 400, 200]
    assert replies[0].body == b"first" and replies[1].body == b"second"
    assert json.loads(replies[2].body)["status"] == "ok"
    assert b"ep-unknown" in replies[3].body
    assert replies[4].body == b"fifth"


def test_asgi_fallback_serves_other_paths_with_lifespan_state(
    start_dataplane: Callable[..., DataPlaneThread],
) -> None:
    events: list[str] = []
    plane = start_dataplane(make_app(events))
    assert events == ["startup"]
    conn = http.client.HTTPConnection("127.0.0.1", plane.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        assert reply.status == 200
        assert json.loads(reply.read()) == {"status": "ok", "greeting": "hello from lifespan"}

        conn.request("POST", "/echo/a%20b?x=1&y=2", body=b"payload")
        reply = conn.getresponse()
        assert reply.read() == b"POST /echo/a b?x=1&y=2 payload"
        assert reply.getheader("X-Client") == "127.0.0.1"

        # An invocation path with GET is not an invocation: the app answers it.
        conn.request("GET", "/endpoints/x/invocations")
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 404

        conn.request("HEAD", "/healthz")
        reply = conn.getresponse()
        assert reply.status == 200 and reply.read() == b""
        assert int(reply.getheader("Content-Length", "0")) > 0

        conn.request("GET", "/boom")
        reply = conn.getresponse()
        assert reply.status == 500 and reply.read() == b"Internal Server Error"

        conn.request("POST", "/echo/big", body=b"z" * (16 * MiB + 1))
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 413
    finally:
        conn.close()
    plane.close()
    assert events == ["startup", "shutdown"]


def test_without_an_app_other_paths_are_404(dataplane: DataPlaneThread) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        assert reply.status == 404 and reply.read() == b"Not Found"
    finally:
        conn.close()


def test_connection_close_and_http10_keep_alive(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("conn", echo)
    routing.set("ep-conn", EndpointRoute((VariantRoute("v", 1.0, (model.address,)),)))
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        sock.sendall(invocation("ep-conn", b"bye", "Connection: close\r\n"))
        [reply] = read_responses(sock, 1)
        assert reply.headers["connection"] == "close" and reply.body == b"bye"
        assert sock.recv(1) == b""  # the server hung up after answering
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        request = invocation("ep-conn", b"old", "Connection: keep-alive\r\n")
        request = request.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        sock.sendall(request + request)
        replies = read_responses(sock, 2)
        assert [r.headers["connection"] for r in replies] == ["keep-alive"] * 2


def test_protocol_errors_are_answered_then_closed(dataplane: DataPlaneThread) -> None:
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        [reply] = read_responses(sock, 1)
        assert reply.status == 400
        assert sock.recv(1) == b""
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        # A head that keeps coming over several reads is cut off, not buffered for.
        sock.sendall(b"GET / HTTP/1.1\r\nX-Filler: ")
        for _ in range(4):
            time.sleep(0.02)
            sock.sendall(b"a" * 30_000)
        [reply] = read_responses(sock, 1)
        assert reply.status == 431
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")
        [reply] = read_responses(sock, 1)
        assert reply.status == 431


def test_expect_continue(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("expect", echo)
    routing.set("ep-expect", EndpointRoute((VariantRoute("v", 1.0, (model.address,)),)))
    head = (
        "POST /endpoints/ep-expect/invocations HTTP/1.1\r\nHost: x\r\n"
        "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        # Too large: refused at once, before the client spends the upload.
        sock.sendall(head.format(7 * MiB).encode())
        [reply] = read_responses(sock, 1)
        assert reply.status == 400 and reply.headers["connection"] == "close"
    with socket.create_connection(("127.0.0.1", dataplane.port), timeout=10) as sock:
        sock.sendall(head.format(2).encode())
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ok")
        [reply] = read_responses(sock, 1)
        assert reply.status == 200 and reply.body == b"ok"
