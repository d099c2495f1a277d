"""The slow- and greedy-client settings of `shadowlab serve`, through its environment
(`SHADOWLAB_HEAD_TIMEOUT`, `_MAX_CONNECTIONS`, `_MAX_BUFFERED_BODY_BYTES`) and its counters in
`GET /shadowlab/stats`. The rules themselves are tested in tests/dataplane/test_slow_clients.py."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ServerProcess, signed_urlopen
from tests.sockets import read_until_closed

pytestmark = pytest.mark.serial  # idle timeouts measured against the clock

CAP = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("limits")
    env = {
        "SHADOWLAB_HEAD_TIMEOUT": "1",
        "SHADOWLAB_MAX_CONNECTIONS": str(CAP),
        "SHADOWLAB_MAX_BUFFERED_BODY_BYTES": str(64 * 1024),
        "SHADOWLAB_KEEPALIVE_TIMEOUT": "1",
        "SHADOWLAB_BODY_TIMEOUT": "1",
        "SHADOWLAB_BODY_MIN_RATE": "1000",
    }
    proc = ServerProcess(data_dir=root / "data", extra_env=env).start()
    yield proc
    proc.stop()


def connections(server: ServerProcess) -> dict[str, Any]:
    with signed_urlopen(server.url + "/shadowlab/stats", timeout=10) as reply:
        return dict(json.loads(reply.read())["connections"])


def test_a_head_that_never_completes_gets_408_within_the_timeout(server: ServerProcess) -> None:
    before = connections(server)["head_timeouts"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 < waited < 4.0, waited  # 1 s, plus the sweep's granularity
    assert connections(server)["head_timeouts"] == before + 1


def test_connections_beyond_the_cap_are_refused_at_once(server: ServerProcess) -> None:
    before = connections(server)
    assert before["max"] == CAP
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(CAP)]
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            assert read_until_closed(extra, 5.0).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    # Once they are gone (closed by the client, or by the head timeout), service is back.
    deadline = time.monotonic() + 10
    while True:
        try:
            after = connections(server)
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert after["refused"] >= before["refused"] + 1


def test_a_body_beyond_the_buffer_budget_gets_503(server: ServerProcess) -> None:
    before = connections(server)["body_budget_rejections"]
    body = b"x" * (128 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /endpoints/any/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 503 ")
    assert connections(server)["body_budget_rejections"] == before + 1


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    before = connections(server)["idle_closed"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert waited < 4.0, waited  # 1 s idle, plus the sweep's granularity
    assert connections(server)["idle_closed"] == before + 1


def test_a_body_slower_than_the_minimum_rate_gets_408(server: ServerProcess) -> None:
    before = connections(server)["body_timeouts"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /endpoints/any/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 10000\r\n\r\n" + b"x" * 100
        )
        answer = read_until_closed(sock)  # 100 bytes in the first second: under 1000 B/s
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert connections(server)["body_timeouts"] == before + 1
