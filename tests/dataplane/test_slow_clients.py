"""Slow and greedy clients: head, body and idle timeouts, the connection cap, the body budget,
the header cap within one read, and normal traffic while hundreds of hostile sockets are open.

Timeouts are 0.5 s here; assertions allow generous margins (2 shared, noisy cores)."""

from __future__ import annotations

import gc
import http.client
import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shadowlab.dataplane.http1 import FrontConnection
from shadowlab.dataplane.limits import ConnectionLimits, Guard
from shadowlab.dataplane.request import Request
from tests.dataplane.harness import DataPlaneThread
from tests.dataplane.test_http1 import make_app, read_responses
from tests.sockets import read_until_closed

pytestmark = pytest.mark.serial  # timeouts measured against the clock

KiB, MiB = 1024, 1024 * 1024
TIMEOUT = 0.5
MARGIN = 2.0  # beyond the timeout: the sweep's granularity plus a noisy machine


def quick(**overrides: Any) -> ConnectionLimits:
    values: dict[str, Any] = {
        "head_timeout_s": TIMEOUT,
        "body_timeout_s": TIMEOUT,
        "body_min_rate": 1000,
        "keepalive_timeout_s": TIMEOUT,
    }
    values.update(overrides)
    return ConnectionLimits(**values)


@pytest.fixture
def plane(start_dataplane: Callable[..., DataPlaneThread]) -> DataPlaneThread:
    return start_dataplane(make_app([]), limits=quick())


def connect(plane: DataPlaneThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", plane.port), timeout=10)


def stats(plane: DataPlaneThread) -> dict[str, int]:
    return plane.server.connection_stats()


def wait_for(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def healthz(plane: DataPlaneThread) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", plane.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def test_a_trickled_head_gets_408_and_is_closed(plane: DataPlaneThread) -> None:
    with connect(plane) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for byte in b"X-Slow: " + b"a" * 1000:  # one byte every 20 ms, for up to 20 s
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.02)[0]:
                answer = read_until_closed(sock)
                break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert TIMEOUT * 0.8 < elapsed < TIMEOUT + MARGIN
    # A connection that never sends a byte is closed as late, without an answer.
    with connect(plane) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert TIMEOUT * 0.8 < time.monotonic() - started < TIMEOUT + MARGIN
    assert stats(plane)["head_timeouts"] == 2


def test_a_stalled_body_gets_408_while_a_slow_steady_one_is_served(
    plane: DataPlaneThread,
) -> None:
    head = b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    with connect(plane) as stalled, connect(plane) as steady:
        started = time.monotonic()
        stalled.sendall(head % 100_000 + b"z" * 10_000)
        # 200 bytes every 50 ms is 4000 B/s, four times the minimum rate: never timed out.
        steady.sendall(head % 4000)
        for _ in range(20):
            steady.sendall(b"y" * 200)
            time.sleep(0.05)
        [reply] = read_responses(steady, 1)
        assert reply.status == 200 and reply.body.endswith(b"y" * 4000)
        answer = read_until_closed(stalled)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert TIMEOUT < elapsed < TIMEOUT + MARGIN + 1.0  # + the steady upload's 1 s
    counters = stats(plane)
    assert counters["body_timeouts"] == 1 and counters["head_timeouts"] == 0
    wait_for(lambda: stats(plane)["buffered_body_bytes"] == 0)


def test_an_idle_keep_alive_connection_is_closed(plane: DataPlaneThread) -> None:
    with connect(plane) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        [reply] = read_responses(sock, 1)
        assert reply.status == 200
        idle_from = time.monotonic()
        assert read_until_closed(sock) == b""
        assert TIMEOUT * 0.8 < time.monotonic() - idle_from < TIMEOUT + MARGIN
    counters = stats(plane)
    assert counters["idle_closed"] == 1 and counters["head_timeouts"] == 0


def test_connections_beyond_the_cap_are_refused_while_the_others_work(
    start_dataplane: Callable[..., DataPlaneThread],
) -> None:
    plane = start_dataplane(make_app([]), limits=quick(keepalive_timeout_s=30, max_connections=3))
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    kept = [connect(plane) for _ in range(3)]
    try:
        for sock in kept:
            sock.sendall(request)
            assert read_responses(sock, 1)[0].status == 200
        for _ in range(5):
            with connect(plane) as extra:
                started = time.monotonic()
                answer = read_until_closed(extra)
                assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer
                assert time.monotonic() - started < 1.0
        for sock in kept:  # those already in are served as before
            sock.sendall(request)
            assert read_responses(sock, 1)[0].status == 200
        counters = stats(plane)
        assert counters["refused"] == 5 and counters["open"] == 3
    finally:
        for sock in kept:
            sock.close()
    wait_for(lambda: stats(plane)["open"] == 0)
    assert healthz(plane) == 200


def _big_requests() -> list[Request]:
    found = []
    for obj in gc.get_objects():
        # type(), not isinstance(): isinstance reads __class__, which a dead weakref.proxy among
        # the heap's objects answers with ReferenceError.
        if issubclass(type(obj), Request) and sum(len(c) for c in obj.chunks) >= 100 * KiB:
            found.append(obj)
    return found


def test_the_body_budget_refuses_with_503_and_is_given_back(
    start_dataplane: Callable[..., DataPlaneThread],
) -> None:
    limits = quick(body_timeout_s=30, max_buffered_body_bytes=4 * MiB)
    plane = start_dataplane(make_app([]), limits=limits)
    part = b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MiB + 1)
    # Three uploads stop one byte short: 3 MiB + 3 of the 4 MiB budget are held.
    greedy = [connect(plane) for _ in range(3)]
    try:
        for sock in greedy:
            sock.sendall(part + b"g" * MiB)
        wait_for(lambda: stats(plane)["buffered_body_bytes"] == 3 * (MiB + 1))
        with connect(plane) as sock:
            sock.sendall(part + b"h" * (MiB + 1))  # does not fit: discarded, answered 503
            [reply] = read_responses(sock, 1)
            assert reply.status == 503 and reply.headers["retry-after"] == "1"
            invocation = b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: x\r\n"
            sock.sendall(invocation + b"Content-Length: %d\r\n\r\n" % MiB + b"i" * MiB)
            [reply] = read_responses(sock, 1)  # the same connection stays in step
            assert reply.status == 503
            assert reply.headers["x-amzn-errortype"].startswith("ServiceUnavailable:")
        assert stats(plane)["body_budget_rejections"] == 2
        assert len(_big_requests()) == 3
    finally:
        for sock in greedy:
            sock.close()
    wait_for(lambda: stats(plane)["buffered_body_bytes"] == 0)
    # No reference to the dead uploads is left: freed at once, not at the next collection.
    assert _big_requests() == []
    with connect(plane) as sock:
        sock.sendall(part + b"k" * (MiB + 1))
        [reply] = read_responses(sock, 1)
        assert reply.status == 200 and reply.body.endswith(b"k" * 1000)
    assert stats(plane)["buffered_body_bytes"] == 0


def test_a_300_kb_header_in_one_write_gets_431(plane: DataPlaneThread) -> None:
    with connect(plane) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, data: list[bytes]) -> None:
        self.written += b"".join(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Dispatcher:
    invocation_body_limit = other_body_limit = MiB

    def other_limit(self, req: object) -> int:
        return self.other_body_limit

    def __init__(self) -> None:
        self.loop = self
        self.seen: list[Request] = []
        self.invoke = self.other

    def time(self) -> float:
        return time.monotonic()

    def other(self, conn: FrontConnection, req: Request) -> None:
        self.seen.append(req)
        conn.respond(req, b"HTTP/1.1 204 No Content\r\n\r\n")


def test_the_header_cap_holds_within_one_read() -> None:
    """Whatever the kernel hands over at once: one data_received with the whole head."""
    dispatcher = _Dispatcher()
    conn = FrontConnection(dispatcher, set(), Guard(ConnectionLimits()))  # type: ignore[arg-type]
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"GET /ok HTTP/1.1\r\nX-Fine: " + b"a" * 1000 + b"\r\n\r\n")
    assert [r.url for r in dispatcher.seen] == [b"/ok"]
    many = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 3000) for i in range(100))  # 300 KB
    conn.data_received(b"GET /big HTTP/1.1\r\n" + many + b"\r\n")
    assert [r.url for r in dispatcher.seen] == [b"/ok"]
    assert transport.written.startswith(b"HTTP/1.1 204 ")
    assert b"HTTP/1.1 431 " in transport.written and transport.closed


@pytest.fixture
def hostile_plane(start_dataplane: Callable[..., DataPlaneThread]) -> Iterator[DataPlaneThread]:
    yield start_dataplane(make_app([]), limits=quick(head_timeout_s=1.0, body_timeout_s=1.0))


def test_normal_requests_are_answered_while_500_hostile_connections_are_open(
    hostile_plane: DataPlaneThread, caplog: pytest.LogCaptureFixture
) -> None:
    plane = hostile_plane
    caplog.set_level(logging.INFO, "shadowlab.dataplane.limits")
    hostile: list[socket.socket] = []
    try:
        for i in range(500):
            sock = connect(plane)
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                sock.sendall(b"POST /echo/x HTTP/1.1\r\nContent-Length: 100000\r\n\r\nzzz")
            hostile.append(sock)
        wait_for(lambda: stats(plane)["open"] >= 500)
        for _ in range(10):
            started = time.monotonic()
            assert healthz(plane) == 200
            assert time.monotonic() - started < 0.5
        for sock in hostile[1::2]:  # the heads trickle on: still too slow
            sock.sendall(b"a")
        wait_for(lambda: stats(plane)["open"] == 0, 1.0 + MARGIN + 2.0)
    finally:
        for sock in hostile:
            sock.close()
    counters = stats(plane)
    assert counters["head_timeouts"] == 250 and counters["body_timeouts"] == 250
    assert counters["buffered_body_bytes"] == 0
    assert healthz(plane) == 200
    # Logged, without a traceback, and not once per connection.
    lines = [r for r in caplog.records if r.name == "shadowlab.dataplane.limits"]
    assert 1 <= len(lines) <= 2 and all(r.exc_info is None for r in lines)
    assert "request head not received" in lines[0].getMessage()
