"""Worker processes under supervision: start, fail, crash and restart, scale, upstream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from shadowlab.hosting.supervisor import (
    Address,
    VariantInstances,
    WorkerProcess,
    WorkerSpec,
    WorkerStartError,
)
from tests.hosting.modelfiles import (
    ECHO_INFERENCE,
    FAILING_INFERENCE,
    code_only_model_dir,
    request,
)

# The app runs on uvloop; plain asyncio must work too (tests, embedding).
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    return RUNNERS[request.param]


@pytest.fixture
def spec(tmp_path: Path) -> WorkerSpec:
    model_dir = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
    return WorkerSpec(model_dir, {"MODEL_GREETING": "hi"}, tmp_path / "logs" / "worker.log")


async def invoke(address: Address, body: bytes = b"x") -> tuple[int, bytes]:
    status, _, answer = await asyncio.to_thread(
        request, address[1], "POST", "/invocations", body, {"Content-Type": "text/plain"}
    )
    return status, answer


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_worker_process_starts_serves_and_stops(
    spec: WorkerSpec, run: Callable[[Awaitable[None]], None]
) -> None:
    async def scenario() -> None:
        worker = WorkerProcess(spec)
        await worker.start()
        try:
            assert worker.alive and worker.pid is not None
            assert worker.address[0] == "127.0.0.1"
            status, answer = await invoke(worker.address, b"hello")
            assert status == 200 and answer == b"pid=%d body=hello" % worker.pid
        finally:
            code = await worker.stop(grace=5)
        assert code == 0 and not worker.alive

    run(scenario())


def test_load_failure_raises_with_the_workers_own_error(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", FAILING_INFERENCE)
    spec = WorkerSpec(model_dir, {}, tmp_path / "worker.log")

    async def scenario() -> None:
        worker = WorkerProcess(spec)
        with pytest.raises(WorkerStartError) as caught:
            await worker.start()
        assert "weights are corrupt: checksum mismatch" in caught.value.reason
        assert not worker.alive
        # The same for a variant: nothing is left running, nothing was published.
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 2, published.append)
        with pytest.raises(WorkerStartError, match="weights are corrupt"):
            await variant.start()
        assert published == [] and variant.addresses == []
        assert all(not worker.alive for worker in variant.workers)

    uvloop.run(scenario())


def test_a_worker_dying_before_ready_reports_its_log(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", "import os\nos._exit(9)\n")
    spec = WorkerSpec(model_dir, {}, tmp_path / "worker.log")

    async def scenario() -> None:
        with pytest.raises(WorkerStartError, match="exited with code 9 before it was ready"):
            await WorkerProcess(spec).start()

    uvloop.run(scenario())


def test_killed_worker_is_restarted(
    spec: WorkerSpec, run: Callable[[Awaitable[None]], None]
) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, drain_grace=0)
        await variant.start()
        try:
            [first] = variant.addresses
            assert published == [[first]]
            old_pid = variant.workers[0].pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            await eventually(lambda: len(published) >= 3)
            # Out of rotation as soon as it died, back once the replacement answered.
            assert published[1] == []
            [second] = published[2]
            assert variant.addresses == [second] and variant.restarts == 1
            status, answer = await invoke(second)
            new_pid = variant.workers[0].pid
            assert new_pid is not None and new_pid != old_pid
            assert status == 200 and answer.startswith(b"pid=%d " % new_pid)
        finally:
            await variant.stop()
        assert published[-1] == []

    run(scenario())


def test_a_worker_crashing_on_a_request_is_replaced(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append)
        await variant.start()
        try:
            [address] = variant.addresses
            with pytest.raises(ConnectionError):
                await invoke(address, b"die")
            await eventually(lambda: len(variant.addresses) == 1 and variant.restarts == 1)
            assert (await invoke(variant.addresses[0]))[0] == 200
        finally:
            await variant.stop()

    uvloop.run(scenario())


def test_scale_up_and_down(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, drain_grace=0.2)
        await variant.start()
        try:
            await variant.scale(3)
            assert len(variant.addresses) == 3 and len(set(variant.addresses)) == 3
            assert published[-1] == variant.addresses
            for address in variant.addresses:
                assert (await invoke(address))[0] == 200

            kept, dropped = variant.addresses[:1], variant.addresses[1:]
            dropped_workers = variant.workers[1:]
            scaling = asyncio.create_task(variant.scale(1))
            await eventually(lambda: published[-1] == kept)
            # Removed from rotation first; still answering during the drain grace.
            assert all(worker.alive for worker in dropped_workers)
            assert (await invoke(dropped[0]))[0] == 200
            await scaling
            assert not any(worker.alive for worker in dropped_workers)
            assert variant.addresses == kept and variant.count == 1
        finally:
            await variant.stop()
        assert published[-1] == []

    uvloop.run(scenario())


def test_upstream_url_variant_uses_a_running_server(spec: WorkerSpec, tmp_path: Path) -> None:
    async def scenario() -> None:
        server = WorkerProcess(spec)
        await server.start()
        try:
            host, port = server.address
            upstream = WorkerSpec(
                tmp_path / "unused",
                {"SHADOWLAB_UPSTREAM_URL": f"http://{host}:{port}"},
                spec.log_path,
            )
            published: list[list[Address]] = []
            variant = VariantInstances(upstream, 2, published.append)
            await variant.start()
            assert variant.is_upstream and variant.addresses == [(host, port)]
            assert published == [[(host, port)]] and variant.workers == []
            await variant.scale(4)  # nothing to start: the server scales itself
            assert variant.addresses == [(host, port)] and variant.count == 4
            await variant.stop()
            assert published[-1] == []
        finally:
            await server.stop()

    uvloop.run(scenario())


def test_upstream_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    async def scenario() -> None:
        for url, text in [
            (f"http://127.0.0.1:{closed_port}", "did not answer /ping"),
            ("https://example.com", "expected http://host:port"),
            ("http://127.0.0.1:1/prefix", "no path"),
        ]:
            upstream = WorkerSpec(tmp_path, {"SHADOWLAB_UPSTREAM_URL": url}, tmp_path / "w.log")
            variant = VariantInstances(upstream, 1, lambda addresses: None)
            with pytest.raises(WorkerStartError, match=text) as caught:
                await variant.start()
            assert url in caught.value.reason
            assert variant.addresses == []

    uvloop.run(scenario())


def test_failed_restarts_back_off_and_recover(spec: WorkerSpec) -> None:
    inference = spec.model_dir / "code" / "inference.py"

    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, max_backoff=0.2)
        await variant.start()
        try:
            # The model breaks underneath a running worker, which then dies.
            inference.write_text(FAILING_INFERENCE)
            pid = variant.workers[0].pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: variant.last_error is not None)
            assert "weights are corrupt" in (variant.last_error or "")
            assert variant.addresses == [] and published[-1] == []
            # Fixed again: the next attempt brings the instance back.
            inference.write_text(ECHO_INFERENCE)
            await eventually(lambda: len(variant.addresses) == 1)
            assert variant.last_error is None and variant.restarts == 1
            assert (await invoke(variant.addresses[0]))[0] == 200
        finally:
            await variant.stop()

    uvloop.run(scenario())


def test_restarts_are_bounded_per_window(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        variant = VariantInstances(
            spec, 1, lambda addresses: None, max_restarts_per_minute=1, restart_window=1.0
        )
        await variant.start()
        try:
            loop = asyncio.get_running_loop()
            for expected in (1, 2):
                pid = variant.workers[0].pid
                assert pid is not None
                killed_at = loop.time()
                os.kill(pid, signal.SIGKILL)
                await eventually(lambda: variant.restarts == expected)  # noqa: B023
                took = loop.time() - killed_at
            # The first restart is immediate; the second waits for the window to pass.
            assert took > 0.6, took
        finally:
            await variant.stop()

    uvloop.run(scenario())
